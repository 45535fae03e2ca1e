/* config.c — bayeux.conf, table-driven (one row per key, like Redis' config.c).
 *
 * Every value, defaults included, goes through the same parser and checks, so a
 * default can never be a value the file could not hold. Precedence follows
 * CometD's option lookup: a more specific transport prefix wins over a less
 * specific one whatever the order; at equal specificity the last write wins
 * (so the environment, applied after the file, overrides the same key). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

typedef enum { T_LONG, T_INT, T_BOOL, T_STR } val_type;
/* Where a row's field lives and which transport prefixes it accepts. */
typedef enum {
    S_GLOBAL,    /* bx_config field, no prefix */
    S_TRANSPORT, /* bx_transport_opts field, every prefix */
    S_HTTP,      /* bx_config field shared by both HTTP transports: "" or "long-polling." */
    S_JSONP      /* bx_config field of callback-polling: "", "long-polling.", "long-polling.jsonp." */
} scope;

typedef int check_fn(const char *v, char *why, size_t whylen);

typedef struct row {
    const char *name;
    val_type type;
    scope sc;
    size_t off;        /* into bx_config, or into bx_transport_opts for S_TRANSPORT */
    long min, max;     /* numbers */
    const char *def;   /* default as text; NULL = NULL string */
    check_fn *check;   /* strings: extra validation; NULL = any printable text */
} row;

enum { TR_LP = 1 << BX_TR_LONG_POLLING, TR_CP = 1 << BX_TR_CALLBACK_POLLING, TR_WS = 1 << BX_TR_WEBSOCKET };

static const struct prefix {
    const char *text;
    unsigned char level; /* specificity */
    unsigned mask;       /* transports it applies to */
    unsigned scopes;     /* bit per scope that accepts this prefix */
} prefixes[] = {
    { "", 0, TR_LP | TR_CP | TR_WS, 1u << S_GLOBAL | 1u << S_TRANSPORT | 1u << S_HTTP | 1u << S_JSONP },
    { "long-polling.", 1, TR_LP | TR_CP, 1u << S_TRANSPORT | 1u << S_HTTP | 1u << S_JSONP },
    { "long-polling.json.", 2, TR_LP, 1u << S_TRANSPORT },
    { "long-polling.jsonp.", 2, TR_CP, 1u << S_TRANSPORT | 1u << S_JSONP },
    { "ws.", 2, TR_WS, 1u << S_TRANSPORT },
};
#define NPREFIX (sizeof prefixes / sizeof prefixes[0])

static check_fn check_transports, check_level, check_samesite, check_cookie_attr, check_token,
    check_callback, check_word;

#define G(f) offsetof(bx_config, f)
#define TR(f) offsetof(bx_transport_opts, f)
#define DAY 86400000L

static const row rows[] = {
    /* all transports (CometD's transport options, prefixable) */
    { "timeout", T_LONG, S_TRANSPORT, TR(timeout), 0, DAY, "20000", NULL },
    { "interval", T_LONG, S_TRANSPORT, TR(interval), 0, DAY, "0", NULL },
    { "maxInterval", T_LONG, S_TRANSPORT, TR(maxInterval), 0, DAY, "10000", NULL },
    { "maxLazyTimeout", T_LONG, S_TRANSPORT, TR(maxLazyTimeout), 0, DAY, "5000", NULL },
    { "maxQueue", T_LONG, S_TRANSPORT, TR(maxQueue), -1, LONG_MAX, "-1", NULL },
    { "maxMessageSize", T_LONG, S_TRANSPORT, TR(maxMessageSize), 1, 1L << 30, "1048576", NULL },
    { "metaConnectDeliverOnly", T_BOOL, S_TRANSPORT, TR(metaConnectDeliverOnly), 0, 1, "false", NULL },
    /* BayeuxServer */
    { "allowedTransports", T_STR, S_GLOBAL, G(allowedTransports), 0, 0, "long-polling,callback-polling", check_transports },
    { "validateMessageFields", T_BOOL, S_GLOBAL, G(validateMessageFields), 0, 1, "true", NULL },
    { "broadcastToPublisher", T_BOOL, S_GLOBAL, G(broadcastToPublisher), 0, 1, "true", NULL },
    { "sweepPeriod", T_LONG, S_GLOBAL, G(sweepPeriod), 1, DAY, "997", NULL },
    { "handshakeReconnect", T_BOOL, S_GLOBAL, G(handshakeReconnect), 0, 1, "false", NULL },
    /* HTTP transports */
    { "maxSessionsPerBrowser", T_LONG, S_HTTP, G(maxSessionsPerBrowser), -1, 1000000, "1", NULL },
    { "multiSessionInterval", T_LONG, S_HTTP, G(multiSessionInterval), -1, DAY, "2000", NULL },
    { "trustClientSession", T_BOOL, S_HTTP, G(trustClientSession), 0, 1, "false", NULL },
    { "browserCookieName", T_STR, S_HTTP, G(browserCookieName), 0, 0, "BAYEUX_BROWSER", check_token },
    { "browserCookieDomain", T_STR, S_HTTP, G(browserCookieDomain), 0, 0, NULL, check_cookie_attr },
    { "browserCookiePath", T_STR, S_HTTP, G(browserCookiePath), 0, 0, "/", check_cookie_attr },
    { "browserCookieMaxAge", T_LONG, S_HTTP, G(browserCookieMaxAge), -1, 315360000L, "-1", NULL },
    { "browserCookieSecure", T_BOOL, S_HTTP, G(browserCookieSecure), 0, 1, "false", NULL },
    { "browserCookieHttpOnly", T_BOOL, S_HTTP, G(browserCookieHttpOnly), 0, 1, "true", NULL },
    { "browserCookieSameSite", T_STR, S_HTTP, G(browserCookieSameSite), 0, 0, NULL, check_samesite },
    { "browserCookiePartitioned", T_BOOL, S_HTTP, G(browserCookiePartitioned), 0, 1, "false", NULL },
    { "duplicateMetaConnectHttpResponseCode", T_INT, S_HTTP, G(duplicateMetaConnectHttpResponseCode), 400, 599, "500", NULL },
    { "callbackParameter", T_STR, S_JSONP, G(callbackParameter), 0, 0, "jsonp", check_callback },
    { "callbackParameterMaxLength", T_LONG, S_JSONP, G(callbackParameterMaxLength), 1, 1024, "64", NULL },
    { "allowedOrigins", T_STR, S_HTTP, G(allowedOrigins), 0, 0, "*", check_word },
    /* limits (ours) */
    { "maxBatchMessages", T_LONG, S_GLOBAL, G(maxBatchMessages), 1, 1000000, "1000", NULL },
    { "maxNestingDepth", T_LONG, S_GLOBAL, G(maxNestingDepth), 2, 1000, "64", NULL },
    /* extensions (ours) */
    { "ackExtension", T_BOOL, S_GLOBAL, G(ackExtension), 0, 1, "true", NULL },
    { "timesyncExtension", T_BOOL, S_GLOBAL, G(timesyncExtension), 0, 1, "true", NULL },
    { "timestampExtension", T_BOOL, S_GLOBAL, G(timestampExtension), 0, 1, "false", NULL },
    /* deployment (ours) */
    { "redisHost", T_STR, S_GLOBAL, G(redisHost), 0, 0, "127.0.0.1", check_word },
    { "redisPort", T_INT, S_GLOBAL, G(redisPort), 1, 65535, "6379", NULL },
    { "redisPrefix", T_STR, S_GLOBAL, G(redisPrefix), 0, 0, "bayeux:", check_word },
    { "redisSentinels", T_STR, S_GLOBAL, G(redisSentinels), 0, 0, NULL, check_word },
    { "redisMasterName", T_STR, S_GLOBAL, G(redisMasterName), 0, 0, "mymaster", check_word },
    { "metricsPath", T_STR, S_GLOBAL, G(metricsPath), 0, 0, NULL, check_word },
    { "metricsAllowedAddresses", T_STR, S_GLOBAL, G(metricsAllowedAddresses), 0, 0, "127.0.0.1,::1", check_word },
    /* security policy and users (ours) */
    { "jwtAlgorithm", T_STR, S_GLOBAL, G(jwtAlgorithm), 0, 0, NULL, check_word },
    { "jwtSecret", T_STR, S_GLOBAL, G(jwtSecret), 0, 0, NULL, check_word },
    { "jwtPublicKeyFile", T_STR, S_GLOBAL, G(jwtPublicKeyFile), 0, 0, NULL, check_word },
    { "jwtRequired", T_BOOL, S_GLOBAL, G(jwtRequired), 0, 1, "false", NULL },
    { "jwtUserClaim", T_STR, S_GLOBAL, G(jwtUserClaim), 0, 0, "sub", check_word },
    { "jwtRoleClaim", T_STR, S_GLOBAL, G(jwtRoleClaim), 0, 0, "roles", check_word },
    { "authorizers", T_STR, S_GLOBAL, G(authorizers), 0, 0, NULL, check_word },
    { "presenceChannel", T_STR, S_GLOBAL, G(presenceChannel), 0, 0, NULL, check_word },
    { "externalServices", T_STR, S_GLOBAL, G(externalServices), 0, 0, NULL, check_word },
    { "externalServiceTimeout", T_LONG, S_GLOBAL, G(externalServiceTimeout), 1, DAY, "5000", NULL },
    { "listen", T_STR, S_GLOBAL, G(listen), 0, 0, ":fd0", check_word },
    { "acceptThreads", T_LONG, S_GLOBAL, G(acceptThreads), 1, 256, "2", NULL },
    { "logLevel", T_STR, S_GLOBAL, G(logLevel), 0, 0, "info", check_level },
    { "logSyslog", T_BOOL, S_GLOBAL, G(logSyslog), 0, 1, "false", NULL },
    /* bayeux-ws only: full names, so they never take a prefix (ws.timeout etc. are transport rows) */
    { "ws.listen", T_STR, S_GLOBAL, G(wsListen), 0, 0, "127.0.0.1:8090", check_word },
    { "ws.idleTimeout", T_LONG, S_GLOBAL, G(wsIdleTimeout), 0, DAY, "300000", NULL },
    { "ws.messagesPerFrame", T_LONG, S_GLOBAL, G(wsMessagesPerFrame), 1, 1000000, "1", NULL },
    { "ws.maxOutboundBytes", T_LONG, S_GLOBAL, G(wsMaxOutboundBytes), 1024, 1L << 30, "4194304", NULL },
    { "ws.requireHandshakePerConnection", T_BOOL, S_GLOBAL, G(wsRequireHandshakePerConnection), 0, 1, "false", NULL },
    { "ws.enableExtension.permessage-deflate", T_BOOL, S_GLOBAL, G(wsPermessageDeflate), 0, 1, "true", NULL },
};
#define NROWS (sizeof rows / sizeof rows[0])
_Static_assert(NROWS <= BX_CONFIG_MAX_KEYS, "raise BX_CONFIG_MAX_KEYS in config.h");

/* CometD options that mean nothing here (JVM/Jetty plumbing): accepted with a warning
 * so a config copied from a CometD deployment loads, and the operator sees what is ignored. */
static const char *const ignored[] = {
    "transports", "jsonContext", "sweepThreads", "schedulerThreads", "executorMaxThreads", "services",
    "maxProcessing", "allowMessageDeliveryDuringHandshake", "http2MaxSessionsPerBrowser",
    "ws.cometdURLMapping", "ws.bufferSize", "ws.protocol",
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- string checks: each returns 0 ok, -1 with the reason in why ---- */

static int check_transports(const char *v, char *why, size_t n) {
    int seen = 0, count = 0;
    const char *p = v;
    while (*p) {
        size_t len = strcspn(p, ",");
        while (len && isspace((unsigned char)*p)) { p++; len--; }
        size_t tl = len;
        while (tl && isspace((unsigned char)p[tl - 1])) tl--;
        char name[32];
        if (tl == 0 || tl >= sizeof name) { set_err(why, n, "empty or overlong transport name"); return -1; }
        memcpy(name, p, tl);
        name[tl] = '\0';
        int t = bx_transport_from_name(name);
        if (t < 0) { set_err(why, n, "unknown transport '%s' (long-polling, callback-polling, websocket)", name); return -1; }
        if (seen & (1 << t)) { set_err(why, n, "transport '%s' listed twice", name); return -1; }
        seen |= 1 << t;
        count++;
        p += len;
        if (*p == ',' && *++p == '\0') { set_err(why, n, "empty transport name after ','"); return -1; }
    }
    if (!count) { set_err(why, n, "no transport listed"); return -1; }
    return 0;
}

static int check_level(const char *v, char *why, size_t n) {
    bx_log_level l;
    if (bx_log_parse_level(v, &l) == 0) return 0;
    set_err(why, n, "unknown log level '%s' (error, warn, info, debug)", v);
    return -1;
}

static int check_samesite(const char *v, char *why, size_t n) {
    if (!strcasecmp(v, "Strict") || !strcasecmp(v, "Lax") || !strcasecmp(v, "None")) return 0;
    set_err(why, n, "'%s' is not Strict, Lax or None", v);
    return -1;
}

/* Cookie attribute values go into a Set-Cookie header: no separators, no controls. */
static int check_cookie_attr(const char *v, char *why, size_t n) {
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == ';' || *p == ',' || *p == 0x7f) {
            set_err(why, n, "character 0x%02x not allowed in a cookie attribute", (unsigned char)*p);
            return -1;
        }
    return 0;
}

/* RFC 6265 cookie-name token. */
static int check_token(const char *v, char *why, size_t n) {
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *p)) {
            set_err(why, n, "character '%c' not allowed in a cookie name", *p);
            return -1;
        }
    return 0;
}

/* A URL parameter name echoed nowhere but matched in query strings: keep it plain. */
static int check_callback(const char *v, char *why, size_t n) {
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) {
            set_err(why, n, "character '%c' not allowed (A-Z a-z 0-9 . _ -)", *p);
            return -1;
        }
    return 0;
}

/* Printable ASCII without spaces (hosts, prefixes, socket paths, origin lists). */
static int check_word(const char *v, char *why, size_t n) {
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            set_err(why, n, "character 0x%02x not allowed (printable ASCII, no spaces)", (unsigned char)*p);
            return -1;
        }
    return 0;
}

/* ---- parsing one value ---- */

static int parse_bool(const char *v, int *out) {
    static const char *const yes[] = { "true", "yes", "on", "1" }, *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) { *out = 1; return 0; }
        if (!strcasecmp(v, no[i])) { *out = 0; return 0; }
    }
    return -1;
}

static int parse_long(const row *r, const char *v, long *out, char *why, size_t n) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0') { set_err(why, n, "'%s' is not a number", v); return -1; }
    if (errno == ERANGE || x < r->min || x > r->max) {
        set_err(why, n, "%s out of range [%ld, %ld]", v, r->min, r->max);
        return -1;
    }
    *out = x;
    return 0;
}

/* Parsed form of a value, before it is stored. */
typedef struct parsed { long l; int b; char *s; } parsed;

static int parse_value(const row *r, const char *v, parsed *out, char *why, size_t n) {
    out->s = NULL;
    switch (r->type) {
    case T_LONG:
    case T_INT:
        return parse_long(r, v, &out->l, why, n);
    case T_BOOL:
        if (parse_bool(v, &out->b) == 0) return 0;
        set_err(why, n, "'%s' is not a boolean (true/false)", v);
        return -1;
    case T_STR:
        if (*v == '\0') {
            if (r->def == NULL) return 0; /* optional string: empty = unset */
            set_err(why, n, "must not be empty");
            return -1;
        }
        if (r->check ? r->check(v, why, n) != 0 : check_word(v, why, n) != 0) return -1;
        if (!(out->s = strdup(v))) { set_err(why, n, "out of memory"); return -1; }
        return 0;
    }
    return -1;
}

static void store(const row *r, void *base, parsed *v) {
    char *p = (char *)base + r->off;
    switch (r->type) {
    case T_LONG: *(long *)(void *)p = v->l; break;
    case T_INT: *(int *)(void *)p = (int)v->l; break;
    case T_BOOL: *(int *)(void *)p = v->b; break;
    case T_STR: {
        char **sp = (char **)(void *)p;
        free(*sp);
        *sp = v->s;
        v->s = NULL;
        break;
    }
    }
}

/* Apply a parsed value of row ri given with prefix pi, honouring specificity. */
static int apply(bx_config *cfg, size_t ri, size_t pi, const char *text, char *why, size_t n) {
    const row *r = &rows[ri];
    const struct prefix *px = &prefixes[pi];
    parsed v;
    if (parse_value(r, text, &v, why, n) != 0) return -1;
    if (r->sc == S_TRANSPORT) {
        for (int t = 0; t < BX_TR_COUNT; t++) {
            if (!(px->mask & (1u << t)) || px->level < cfg->set_level[ri][t]) continue;
            cfg->set_level[ri][t] = px->level;
            if (t == BX_TR_CALLBACK_POLLING && r->off == offsetof(bx_transport_opts, metaConnectDeliverOnly))
                continue; /* callback-polling always delivers on /meta/connect only, as CometD's JSONP transport */
            parsed copy = v;
            store(r, &cfg->tr[t], &copy);
        }
    } else if (px->level >= cfg->set_level[ri][0]) {
        cfg->set_level[ri][0] = px->level;
        store(r, cfg, &v);
    }
    free(v.s);
    return 0;
}

/* Find the row and prefix of key; 0 found, 1 ignored CometD key, -1 unknown. */
static int lookup(const char *key, size_t *ri, size_t *pi) {
    for (size_t p = 0; p < NPREFIX; p++) {
        size_t pl = strlen(prefixes[p].text);
        if (strncmp(key, prefixes[p].text, pl) != 0) continue;
        for (size_t i = 0; i < NROWS; i++) {
            if (strcmp(key + pl, rows[i].name) != 0) continue;
            if (!(prefixes[p].scopes & (1u << rows[i].sc))) return -1;
            *ri = i;
            *pi = p;
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        if (strcmp(key, ignored[i]) == 0) return 1;
    return -1;
}

int bx_config_set(bx_config *cfg, const char *key, const char *value, char *err, size_t errlen) {
    size_t ri, pi;
    char why[200];
    if (!cfg || !key || !value) { set_err(err, errlen, "missing key or value"); return -1; }
    int found = lookup(key, &ri, &pi);
    if (found < 0) { set_err(err, errlen, "unknown key '%s'", key); return -1; }
    if (found > 0) {
        bx_warn("config: '%s' is a CometD option with no meaning in bayeux-fcgi; ignored", key);
        return 0;
    }
    if (apply(cfg, ri, pi, value, why, sizeof why) != 0) {
        set_err(err, errlen, "%s: %s", key, why);
        return -1;
    }
    bx_debug("config: %s = %s", key, value);
    return 0;
}

int bx_config_defaults(bx_config *cfg) {
    if (!cfg) return -1;
    memset(cfg, 0, sizeof *cfg);
    char why[200];
    for (size_t i = 0; i < NROWS; i++) {
        if (!rows[i].def) continue;
        if (apply(cfg, i, 0, rows[i].def, why, sizeof why) != 0) { /* only OOM can get here */
            bx_error("config default %s: %s", rows[i].name, why);
            bx_config_free(cfg);
            return -1;
        }
    }
    cfg->tr[BX_TR_CALLBACK_POLLING].metaConnectDeliverOnly = 1;
    return 0;
}

void bx_config_free(bx_config *cfg) {
    if (!cfg) return;
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].type != T_STR) continue;
        char **sp = (char **)(void *)((char *)cfg + rows[i].off);
        free(*sp);
        *sp = NULL;
    }
}

/* Trim s in place; returns the first non-space character. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* One "key = value" line; 0 ok or blank/comment, -1 with the reason in why. */
static int parse_line(bx_config *cfg, char *line, size_t len, char *why, size_t n) {
    if (memchr(line, '\0', len)) { set_err(why, n, "NUL byte in line"); return -1; }
    char *s = trim(line);
    if (*s == '\0' || *s == '#' || *s == ';') return 0;
    /* an inline comment starts at whitespace followed by '#' or ';' */
    for (char *p = s + 1; *p; p++)
        if ((*p == '#' || *p == ';') && isspace((unsigned char)p[-1])) { *p = '\0'; break; }
    char *eq = strchr(s, '=');
    if (!eq) { set_err(why, n, "expected 'key = value'"); return -1; }
    *eq = '\0';
    char *key = trim(s), *val = trim(eq + 1);
    size_t vl = strlen(val);
    if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') { val[vl - 1] = '\0'; val++; }
    if (*key == '\0') { set_err(why, n, "empty key"); return -1; }
    return bx_config_set(cfg, key, val, why, n);
}

int bx_config_load_file(bx_config *cfg, const char *path, int required, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && !required) {
            bx_debug("config: %s not found, using defaults", path);
            return 0;
        }
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL, why[256];
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (parse_line(cfg, line, (size_t)len, why, sizeof why) != 0) {
            set_err(err, errlen, "%s:%ld: %s", path, lineno, why);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        set_err(err, errlen, "%s:%ld: read error", path, lineno);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* "long-polling.maxInterval" → "BX_LONG_POLLING_MAX_INTERVAL". */
static void env_name(const char *key, char *out, size_t n) {
    size_t o = 0;
    const char *pre = "BX_";
    while (*pre && o + 1 < n) out[o++] = *pre++;
    for (const char *p = key; *p && o + 2 < n; p++) {
        if (*p == '.' || *p == '-') { out[o++] = '_'; continue; }
        if (isupper((unsigned char)*p) && p > key && (islower((unsigned char)p[-1]) || isdigit((unsigned char)p[-1])))
            out[o++] = '_';
        out[o++] = (char)toupper((unsigned char)*p);
    }
    out[o] = '\0';
}

int bx_config_apply_env(bx_config *cfg, char *err, size_t errlen) {
    char key[128], name[160], why[256];
    for (size_t p = 0; p < NPREFIX; p++) {
        for (size_t i = 0; i < NROWS; i++) {
            if (!(prefixes[p].scopes & (1u << rows[i].sc))) continue;
            snprintf(key, sizeof key, "%s%s", prefixes[p].text, rows[i].name);
            env_name(key, name, sizeof name);
            const char *v = getenv(name);
            if (!v) continue;
            if (apply(cfg, i, p, v, why, sizeof why) != 0) {
                set_err(err, errlen, "env %s: %s", name, why);
                return -1;
            }
            bx_debug("config: %s = %s (from env %s)", key, v, name);
        }
    }
    return 0;
}

static const char *const tr_names[BX_TR_COUNT] = { "long-polling", "callback-polling", "websocket" };

int bx_transport_from_name(const char *name) {
    for (int t = 0; name && t < BX_TR_COUNT; t++)
        if (strcmp(name, tr_names[t]) == 0) return t;
    return -1;
}

const char *bx_transport_name(bx_transport t) {
    return ((unsigned)t < BX_TR_COUNT) ? tr_names[t] : "unknown";
}

int bx_config_transport_allowed(const bx_config *cfg, bx_transport t) {
    if (!cfg || !cfg->allowedTransports || (unsigned)t >= BX_TR_COUNT) return 0;
    const char *want = tr_names[t];
    size_t wl = strlen(want);
    for (const char *p = cfg->allowedTransports; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        size_t len = strcspn(p, ",");
        size_t tl = len;
        while (tl && isspace((unsigned char)p[tl - 1])) tl--;
        if (tl == wl && strncmp(p, want, wl) == 0) return 1;
        p += len;
    }
    return 0;
}

const char *bx_config_key(size_t i) {
    return i < NROWS ? rows[i].name : NULL;
}

int bx_config_reload_log_level(const char *path, char *err, size_t errlen) {
    bx_config c;
    bx_log_level lvl;
    int rc = -1;
    if (bx_config_defaults(&c) < 0) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    if ((!path || bx_config_load_file(&c, path, 0, err, errlen) == 0) && bx_config_apply_env(&c, err, errlen) == 0) {
        if (bx_log_parse_level(c.logLevel, &lvl) == 0) {
            bx_log_set_level(lvl);
            rc = 0;
        } else {
            set_err(err, errlen, "unknown logLevel '%s'", c.logLevel);
        }
    }
    bx_config_free(&c);
    return rc;
}
