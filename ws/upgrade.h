/* upgrade.h — the HTTP/1.1 request that opens a WebSocket (RFC 6455 §4.2), and our answer.
 *
 * Pure functions over bytes: no sockets, so the rules are unit-tested directly.
 * The caller bounds the request head (BX_WS_HEAD_MAX) before calling. */
#ifndef BX_WS_UPGRADE_H
#define BX_WS_UPGRADE_H

#include <stddef.h>

#include "clientid.h"
#include "config.h"

#define BX_WS_HEAD_MAX 8192 /* longest request head accepted (request line + headers) */

typedef struct bx_ws_upgrade {
    int status;          /* 101 accept; 400 bad request; 405 not GET; 426 wrong Sec-WebSocket-Version */
    const char *reason;  /* static text for the log: what was wrong */
    char accept[32];     /* Sec-WebSocket-Accept value when status is 101 */
    char forwarded[48];  /* X-Forwarded-For / X-Real-IP as sent by nginx (truncated), "" if none */
    char browser[BX_ID_MAX_LEN + 1]; /* browser cookie value when valid, else "" */
    int secure;          /* X-Forwarded-Proto: https (nginx in front terminated TLS) */
    char *authorization; /* Authorization header value (malloc'd, see bx_ws_upgrade_clear), NULL if none */
    int deflate;         /* permessage-deflate accepted: our LZ77 window bits (9..15), 0 none (RFC 7692) */
    int deflate_server_bits; /* the offer named server_max_window_bits: echo it in the response */
} bx_ws_upgrade;

/* Judge one request head of len bytes (through the empty line; need not be NUL-terminated);
 * cookie is the browser cookie's name (browserCookieName). Always fills out; returns out->status. */
int bx_ws_upgrade_parse(const char *head, size_t len, const char *cookie, bx_ws_upgrade *out);
/* Free what parse allocated in u (the authorization copy); u stays usable. */
void bx_ws_upgrade_clear(bx_ws_upgrade *u);
/* The HTTP response for u: malloc'd text the caller frees, its length in *len; NULL on OOM.
 * A 101 sets the browser cookie (cfg's browserCookie* attributes) to new_browser when not NULL. */
char *bx_ws_upgrade_response(const bx_ws_upgrade *u, const bx_config *cfg, const char *new_browser, size_t *len);
/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)) into out (>= 29 bytes). 0 ok, -1 error. */
int bx_ws_accept_key(const char *key, size_t keylen, char *out, size_t outlen);

#endif
