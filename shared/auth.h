/* auth.h — security policy: JWT handshake authentication and channel authorizers.
 *
 * Handshake: with jwtAlgorithm set (HS256 or RS256), a token in the handshake's ext.token
 * (or an "Authorization: Bearer" header the transport passes on) is verified with the key
 * from the configuration: signature, the configured algorithm exactly (no "none", no
 * HS256-with-the-RSA-key confusion), exp/nbf when present, the user claim. A bad token is
 * denied (403::handshake_denied); no token is denied when jwtRequired, else anonymous.
 * Channels: "authorizers" rules decide who may create, subscribe and publish:
 *   rule[;rule...]   rule = <channel pattern>=<ops>:<who>
 *   ops = create|subscribe|publish joined by '+', or '*' for all three
 *   who = everyone | authenticated | role:<name> | nobody
 * The first rule whose pattern matches the channel and whose ops include the operation
 * decides; no such rule: allowed (CometD's default policy; meta channels are refused by
 * the dispatcher already). Patterns: a channel name, "/a/" + "*" (one segment) or "/a/" + "**" (any depth). */
#ifndef BX_AUTH_H
#define BX_AUTH_H

#include <stddef.h>

#include "config.h"

typedef struct bx_auth bx_auth;

typedef enum { BX_OP_CREATE = 1, BX_OP_SUBSCRIBE = 2, BX_OP_PUBLISH = 4 } bx_auth_op;

/* Who the session is: authenticated = its handshake carried a valid token (a user id set by a
 * service, e.g. a chat member name, does not authenticate); roles comma separated. Borrowed strings. */
typedef struct bx_identity {
    int authenticated;
    const char *user;
    const char *roles;
} bx_identity;

/* From cfg (jwt* keys, authorizers): reads the key file. NULL + err when the configuration is unusable.
 * Caller frees with bx_auth_free. */
bx_auth *bx_auth_new(const bx_config *cfg, char *err, size_t errlen);
void bx_auth_free(bx_auth *a);

/* 1 when handshakes are checked (jwtAlgorithm set). */
int bx_auth_jwt_enabled(const bx_auth *a);
/* 1 when a handshake without a token must be denied. */
int bx_auth_jwt_required(const bx_auth *a);
/* Verify token (NUL-terminated, any bytes): 0 ok with *user and *roles malloc'd (caller frees; roles
 * comma separated, "" none); -1 denied with the reason in why (for an info log line). */
int bx_auth_verify(const bx_auth *a, const char *token, char **user, char **roles, char *why, size_t whylen);

/* Parse an authorizers string into a (for tests and config checks). 0 ok, -1 + err. */
int bx_auth_set_rules(bx_auth *a, const char *rules, char *err, size_t errlen);
/* 1 when deciding op on channel needs the session's identity (a rule other than everyone/nobody applies). */
int bx_auth_needs_identity(const bx_auth *a, const char *channel, int ops);
/* 1 allowed, 0 denied; id may be NULL when bx_auth_needs_identity said 0. */
int bx_auth_allows(const bx_auth *a, const char *channel, bx_auth_op op, const bx_identity *id);

#endif
