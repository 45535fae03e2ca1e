/* auth.c — the security policy: JWT verification (libjwt) and channel authorizer rules. */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <jwt.h>

#define MAX_KEY_BYTES (64 * 1024)
#define MAX_TOKEN_BYTES 8192
#define MAX_USER_BYTES 256
#define MAX_RULES 256

typedef enum { WHO_EVERYONE, WHO_AUTHENTICATED, WHO_ROLE, WHO_NOBODY } who_kind;

typedef struct rule {
    char *pattern;
    int ops;
    who_kind who;
    char *role;
} rule;

struct bx_auth {
    jwt_alg_t alg;          /* JWT_ALG_NONE: handshakes not checked */
    unsigned char *key;
    size_t key_len;
    int required;
    char *user_claim, *role_claim;
    rule *rules;
    size_t n_rules;
};

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s && *s ? s : dflt);
}

static int read_key_file(bx_auth *a, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "jwtPublicKeyFile %s: %s", path, strerror(errno));
        return -1;
    }
    a->key = malloc(MAX_KEY_BYTES + 1);
    size_t n = a->key ? fread(a->key, 1, MAX_KEY_BYTES + 1, f) : 0;
    fclose(f);
    if (!a->key || n == 0 || n > MAX_KEY_BYTES) {
        snprintf(err, errlen, "jwtPublicKeyFile %s: %s", path, !a->key ? "out of memory" : n ? "larger than 64 KiB" : "empty");
        return -1;
    }
    a->key[n] = 0;
    a->key_len = n;
    return 0;
}

bx_auth *bx_auth_new(const bx_config *cfg, char *err, size_t errlen)
{
    bx_auth *a = calloc(1, sizeof *a);
    if (!a || !(a->user_claim = dup_or(cfg->jwtUserClaim, "sub")) || !(a->role_claim = dup_or(cfg->jwtRoleClaim, "roles"))) {
        snprintf(err, errlen, "security policy: out of memory");
        bx_auth_free(a);
        return NULL;
    }
    a->alg = JWT_ALG_NONE;
    a->required = cfg->jwtRequired;
    const char *alg = cfg->jwtAlgorithm;
    if (alg && *alg) {
        if (strcmp(alg, "HS256") == 0) {
            a->alg = JWT_ALG_HS256;
            if (!cfg->jwtSecret || strlen(cfg->jwtSecret) < 16) {
                snprintf(err, errlen, "jwtAlgorithm HS256 needs jwtSecret of at least 16 bytes");
                bx_auth_free(a);
                return NULL;
            }
            a->key = (unsigned char *)strdup(cfg->jwtSecret);
            a->key_len = a->key ? strlen(cfg->jwtSecret) : 0;
        } else if (strcmp(alg, "RS256") == 0) {
            a->alg = JWT_ALG_RS256;
            if (!cfg->jwtPublicKeyFile || read_key_file(a, cfg->jwtPublicKeyFile, err, errlen) < 0) {
                if (!cfg->jwtPublicKeyFile)
                    snprintf(err, errlen, "jwtAlgorithm RS256 needs jwtPublicKeyFile (PEM public key)");
                bx_auth_free(a);
                return NULL;
            }
        } else {
            snprintf(err, errlen, "jwtAlgorithm '%s': HS256 or RS256 expected", alg);
            bx_auth_free(a);
            return NULL;
        }
        if (!a->key) {
            snprintf(err, errlen, "security policy: out of memory");
            bx_auth_free(a);
            return NULL;
        }
    } else if (a->required) {
        snprintf(err, errlen, "jwtRequired needs jwtAlgorithm");
        bx_auth_free(a);
        return NULL;
    }
    if (cfg->authorizers && bx_auth_set_rules(a, cfg->authorizers, err, errlen) < 0) {
        bx_auth_free(a);
        return NULL;
    }
    return a;
}

static void rules_free(bx_auth *a)
{
    for (size_t i = 0; i < a->n_rules; i++) {
        free(a->rules[i].pattern);
        free(a->rules[i].role);
    }
    free(a->rules);
    a->rules = NULL;
    a->n_rules = 0;
}

void bx_auth_free(bx_auth *a)
{
    if (!a)
        return;
    if (a->key)
        memset(a->key, 0, a->key_len);
    free(a->key);
    free(a->user_claim);
    free(a->role_claim);
    rules_free(a);
    free(a);
}

int bx_auth_jwt_enabled(const bx_auth *a) { return a && a->alg != JWT_ALG_NONE; }
int bx_auth_jwt_required(const bx_auth *a) { return a && a->required; }

/* ---- JWT ---- */

/* Roles claim (array of strings or one string) as "r1,r2"; malloc'd; NULL on a bad claim. */
static char *roles_of(jwt_t *jwt, const char *claim, char *why, size_t whylen)
{
    char *text = jwt_get_grants_json(jwt, claim);
    if (!text)
        return strdup("");
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) {
        const char *r = json_string_value(json_is_array(v) ? json_array_get(v, i) : v);
        if (!r || !*r || strchr(r, ',') || strlen(r) > 64) {
            snprintf(why, whylen, "claim %s: strings of 1..64 bytes without ',' expected", claim);
            json_decref(v);
            return NULL;
        }
        cap += strlen(r) + 1;
    }
    char *out = calloc(1, cap);
    for (size_t i = 0; out && i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, json_string_value(json_is_array(v) ? json_array_get(v, i) : v));
    }
    json_decref(v);
    if (!out)
        snprintf(why, whylen, "out of memory");
    return out;
}

/* A numeric time claim: 1 present (value in *t), 0 absent, -1 present but not a number. */
static int time_claim(jwt_t *jwt, const char *name, long *t)
{
    char *text = jwt_get_grants_json(jwt, name);
    if (!text)
        return 0;
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    int ok = json_is_number(v);
    *t = ok ? (long)json_number_value(v) : 0;
    json_decref(v);
    return ok ? 1 : -1;
}

int bx_auth_verify(const bx_auth *a, const char *token, char **user, char **roles, char *why, size_t whylen)
{
    *user = *roles = NULL;
    if (!bx_auth_jwt_enabled(a)) {
        snprintf(why, whylen, "no JWT algorithm configured");
        return -1;
    }
    size_t len = strnlen(token, MAX_TOKEN_BYTES + 1);
    if (len == 0 || len > MAX_TOKEN_BYTES) {
        snprintf(why, whylen, "token of %s bytes", len ? "too many" : "0");
        return -1;
    }
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, a->key, (int)a->key_len);
    if (rc != 0 || !jwt) {
        snprintf(why, whylen, "malformed token or bad signature (%s)", strerror(rc ? rc : EINVAL));
        jwt_free(jwt);
        return -1;
    }
    if (jwt_get_alg(jwt) != a->alg) {
        snprintf(why, whylen, "algorithm %s, %s expected", jwt_alg_str(jwt_get_alg(jwt)), jwt_alg_str(a->alg));
        jwt_free(jwt);
        return -1;
    }
    long now = (long)time(NULL), t = 0;
    int e = time_claim(jwt, "exp", &t);
    if (e < 0 || (e > 0 && now >= t)) {
        snprintf(why, whylen, e < 0 ? "exp is not a number" : "expired %ld s ago", now - t);
        jwt_free(jwt);
        return -1;
    }
    e = time_claim(jwt, "nbf", &t);
    if (e < 0 || (e > 0 && now < t)) {
        snprintf(why, whylen, e < 0 ? "nbf is not a number" : "not valid for another %ld s", t - now);
        jwt_free(jwt);
        return -1;
    }
    const char *u = jwt_get_grant(jwt, a->user_claim);
    if (!u || !*u || strlen(u) > MAX_USER_BYTES) {
        snprintf(why, whylen, "claim %s: a string of 1..%d bytes expected", a->user_claim, MAX_USER_BYTES);
        jwt_free(jwt);
        return -1;
    }
    *user = strdup(u);
    *roles = roles_of(jwt, a->role_claim, why, whylen);
    jwt_free(jwt);
    if (!*user || !*roles) {
        if (!*user)
            snprintf(why, whylen, "out of memory");
        free(*user);
        free(*roles);
        *user = *roles = NULL;
        return -1;
    }
    return 0;
}

/* ---- channel authorizers ---- */

static int parse_ops(const char *s, size_t n, int *ops)
{
    *ops = 0;
    if (n == 1 && s[0] == '*') {
        *ops = BX_OP_CREATE | BX_OP_SUBSCRIBE | BX_OP_PUBLISH;
        return 0;
    }
    while (n > 0) {
        size_t k = 0;
        while (k < n && s[k] != '+')
            k++;
        if (k == 6 && memcmp(s, "create", 6) == 0)
            *ops |= BX_OP_CREATE;
        else if (k == 9 && memcmp(s, "subscribe", 9) == 0)
            *ops |= BX_OP_SUBSCRIBE;
        else if (k == 7 && memcmp(s, "publish", 7) == 0)
            *ops |= BX_OP_PUBLISH;
        else
            return -1;
        s += k + (k < n);
        n -= k + (k < n);
    }
    return *ops ? 0 : -1;
}

static int parse_rule(rule *r, const char *s, size_t n, char *err, size_t errlen)
{
    const char *eq = memchr(s, '=', n);
    const char *colon = eq ? memchr(eq, ':', (size_t)(s + n - eq)) : NULL;
    if (!eq || !colon || eq == s || s[0] != '/') {
        snprintf(err, errlen, "authorizers: rule '%.*s': <channel>=<ops>:<who> expected", (int)(n > 80 ? 80 : n), s);
        return -1;
    }
    if (parse_ops(eq + 1, (size_t)(colon - eq - 1), &r->ops) < 0) {
        snprintf(err, errlen, "authorizers: rule '%.*s': ops are create, subscribe, publish joined by '+', or '*'",
                 (int)(n > 80 ? 80 : n), s);
        return -1;
    }
    const char *who = colon + 1;
    size_t wn = (size_t)(s + n - who);
    if (wn == 8 && memcmp(who, "everyone", 8) == 0)
        r->who = WHO_EVERYONE;
    else if (wn == 13 && memcmp(who, "authenticated", 13) == 0)
        r->who = WHO_AUTHENTICATED;
    else if (wn == 6 && memcmp(who, "nobody", 6) == 0)
        r->who = WHO_NOBODY;
    else if (wn > 5 && memcmp(who, "role:", 5) == 0 && !memchr(who + 5, ',', wn - 5)) {
        r->who = WHO_ROLE;
        r->role = strndup(who + 5, wn - 5);
    } else {
        snprintf(err, errlen, "authorizers: rule '%.*s': who is everyone, authenticated, role:<name> or nobody",
                 (int)(n > 80 ? 80 : n), s);
        return -1;
    }
    r->pattern = strndup(s, (size_t)(eq - s));
    if (!r->pattern || (r->who == WHO_ROLE && !r->role)) {
        snprintf(err, errlen, "authorizers: out of memory");
        return -1;
    }
    return 0;
}

int bx_auth_set_rules(bx_auth *a, const char *rules, char *err, size_t errlen)
{
    rules_free(a);
    size_t cap = 1;
    for (const char *p = rules; *p; p++)
        cap += *p == ';';
    if (cap > MAX_RULES) {
        snprintf(err, errlen, "authorizers: more than %d rules", MAX_RULES);
        return -1;
    }
    a->rules = calloc(cap, sizeof *a->rules);
    if (!a->rules) {
        snprintf(err, errlen, "authorizers: out of memory");
        return -1;
    }
    for (const char *p = rules; *p;) {
        size_t n = strcspn(p, ";");
        if (n > 0) {
            rule *r = &a->rules[a->n_rules++];
            if (parse_rule(r, p, n, err, errlen) < 0) {
                rules_free(a);
                return -1;
            }
        }
        p += n + (p[n] == ';');
    }
    return 0;
}

/* Channel pattern match: exact; ending in "/" + "*": one more segment; "/" + "**": one or more. */
static int matches(const char *pattern, const char *channel)
{
    size_t pn = strlen(pattern);
    if (pn >= 2 && strcmp(pattern + pn - 2, "/*") == 0) {
        size_t base = pn - 1; /* keeps the '/' */
        return strncmp(channel, pattern, base) == 0 && channel[base] && !strchr(channel + base, '/');
    }
    if (pn >= 3 && strcmp(pattern + pn - 3, "/**") == 0) {
        size_t base = pn - 2;
        return strncmp(channel, pattern, base) == 0 && channel[base];
    }
    return strcmp(pattern, channel) == 0;
}

static const rule *decide(const bx_auth *a, const char *channel, int op)
{
    for (size_t i = 0; a && i < a->n_rules; i++)
        if ((a->rules[i].ops & op) && matches(a->rules[i].pattern, channel))
            return &a->rules[i];
    return NULL;
}

int bx_auth_needs_identity(const bx_auth *a, const char *channel, int ops)
{
    for (int op = BX_OP_CREATE; op <= BX_OP_PUBLISH; op <<= 1) {
        const rule *r = (ops & op) ? decide(a, channel, op) : NULL;
        if (r && (r->who == WHO_AUTHENTICATED || r->who == WHO_ROLE))
            return 1;
    }
    return 0;
}

static int has_role(const char *roles, const char *role)
{
    size_t n = strlen(role);
    for (const char *p = roles; p && *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && memcmp(p, role, n) == 0)
            return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

int bx_auth_allows(const bx_auth *a, const char *channel, bx_auth_op op, const bx_identity *id)
{
    const rule *r = decide(a, channel, op);
    if (!r || r->who == WHO_EVERYONE)
        return 1;
    if (r->who == WHO_NOBODY)
        return 0;
    int authenticated = id && id->authenticated;
    if (r->who == WHO_AUTHENTICATED)
        return authenticated;
    return authenticated && has_role(id->roles, r->role);
}
