/* config.h — bayeux.conf: CometD's option names and defaults, our deployment keys.
 *
 * File format: INI-like "key = value" lines, '#' or ';' comments, blank lines.
 * Keys are CometD's names ("timeout", "maxInterval", "long-polling.timeout",
 * "ws.cometdURLMapping" ...). Transport prefixes follow CometD's lookup
 * (bayeux-notes.md §3): long-polling uses "long-polling.json.<k>", then
 * "long-polling.<k>", then "<k>"; callback-polling uses "long-polling.jsonp.<k>",
 * "long-polling.<k>", "<k>"; websocket "ws.<k>", "<k>".
 * Environment overrides: BX_<KEY> where the key is written in upper snake case:
 * camelCase humps, '.' and '-' become '_' (timeout → BX_TIMEOUT, maxInterval →
 * BX_MAX_INTERVAL, long-polling.timeout → BX_LONG_POLLING_TIMEOUT, redisPort →
 * BX_REDIS_PORT, logLevel → BX_LOG_LEVEL), applied after the file.
 * The whole table lives in config.c; every key is documented in conf/bayeux.conf. */
#ifndef BX_CONFIG_H
#define BX_CONFIG_H

#include <stddef.h>

#define BX_CONFIG_MAX_KEYS 64   /* rows of the key table in config.c (checked there) */

typedef enum { BX_TR_LONG_POLLING = 0, BX_TR_CALLBACK_POLLING, BX_TR_WEBSOCKET, BX_TR_COUNT } bx_transport;

/* Options that a transport prefix may override, resolved at load time. */
typedef struct bx_transport_opts {
    long timeout;               /* ms, held /meta/connect; default 20000 (CometD 8) */
    long interval;              /* ms, default 0 */
    long maxInterval;           /* ms, default 10000 */
    long maxLazyTimeout;        /* ms, default 5000 */
    long maxQueue;              /* -1 unbounded */
    long maxMessageSize;        /* bytes of a body/frame; default 1048576 (HTTP) */
    int  metaConnectDeliverOnly;/* callback-polling forces 1 */
} bx_transport_opts;

typedef struct bx_config {
    bx_transport_opts tr[BX_TR_COUNT];
    /* BayeuxServer */
    char *allowedTransports;    /* comma list, order = supportedConnectionTypes; default "long-polling,callback-polling" */
    int  validateMessageFields; /* 1 */
    int  broadcastToPublisher;  /* 1 */
    long sweepPeriod;           /* ms, 997 */
    int  handshakeReconnect;    /* 0: maxInterval in handshake advice when 1 */
    /* HTTP */
    long maxSessionsPerBrowser; /* 1; < 0 unlimited */
    long multiSessionInterval;  /* 2000 */
    int  trustClientSession;    /* 0 */
    char *browserCookieName;    /* "BAYEUX_BROWSER" */
    char *browserCookieDomain;  /* NULL */
    char *browserCookiePath;    /* "/" */
    long browserCookieMaxAge;   /* -1 */
    int  browserCookieSecure;   /* 0 */
    int  browserCookieHttpOnly; /* 1 */
    char *browserCookieSameSite;/* NULL | Strict | Lax | None */
    int  browserCookiePartitioned; /* 0 */
    int  duplicateMetaConnectHttpResponseCode; /* 500, must be >= 400 */
    char *callbackParameter;    /* "jsonp" */
    long callbackParameterMaxLength; /* 64 */
    char *allowedOrigins;       /* CORS: comma list, "*" any; default "*" */
    /* limits (ours) */
    long maxBatchMessages;      /* 1000 */
    long maxNestingDepth;       /* 64 */
    /* extensions (ours: CometD installs them in code) */
    int  ackExtension;          /* 1 */
    int  timesyncExtension;     /* 1 */
    int  timestampExtension;    /* 0 */
    /* deployment (ours) */
    char *redisHost;            /* "127.0.0.1" */
    int  redisPort;             /* 6379 */
    char *redisPrefix;          /* "bayeux:" */
    char *redisSentinels;       /* NULL: redisHost:redisPort; else "host:port,..." asked for redisMasterName */
    char *redisMasterName;      /* "mymaster" */
    char *metricsPath;          /* NULL: no metrics endpoint; else the request path that serves them (GET) */
    char *metricsAllowedAddresses; /* "127.0.0.1,::1": REMOTE_ADDRs allowed to scrape, "*" any */
    char *listen;               /* FastCGI socket: "/path.sock", "host:port", or ":fd0"; default ":fd0" */
    long acceptThreads;         /* 2 */
    char *logLevel;             /* "info" */
    int  logSyslog;             /* 0 */
    /* security policy and users (ours, shared/auth.h, shared/service.h) */
    char *jwtAlgorithm;         /* NULL: handshakes not authenticated; "HS256" or "RS256" */
    char *jwtSecret;            /* HS256 shared secret (>= 16 bytes) */
    char *jwtPublicKeyFile;     /* RS256: PEM public key file */
    int  jwtRequired;           /* 0: a handshake without a token is anonymous; 1: denied */
    char *jwtUserClaim;         /* "sub": the user id */
    char *jwtRoleClaim;         /* "roles": array of strings or one string */
    char *authorizers;          /* NULL none; "<channel>=<ops>:<who>;..." (auth.h) */
    char *presenceChannel;      /* NULL: no presence; else {user, presence:"joined"|"left"} published there */
    char *externalServices;     /* NULL none; "/service/a,/service/b": answered through Redis streams */
    long externalServiceTimeout;/* ms a caller waits for an external answer before 406::timeout; 5000 */
    /* bayeux-ws (ws.* keys that are not transport options) */
    char *wsListen;             /* "127.0.0.1:8090": host:port of the WebSocket listener */
    long wsIdleTimeout;         /* ms without any inbound frame before close 1001; 0 never; 300000 (Jetty) */
    long wsMessagesPerFrame;    /* queued messages per outbound frame; 1 */
    long wsMaxOutboundBytes;    /* ours: bytes queued to a client that does not read, then close; 4 MiB */
    int  wsRequireHandshakePerConnection; /* 0: a new connection may continue a session by clientId */
    int  wsPermessageDeflate;   /* ws.enableExtension.permessage-deflate: accept RFC 7692 offers; 1 */
    /* private to config.c: how specific the prefix was that set each (key, transport),
     * so "long-polling.timeout" beats "timeout" whatever the order of the lines */
    unsigned char set_level[BX_CONFIG_MAX_KEYS][BX_TR_COUNT];
} bx_config;

/* Fill cfg with defaults (strings malloc'd). 0 ok, -1 OOM. */
int bx_config_defaults(bx_config *cfg);
/* Read a file over cfg. On error returns -1 with "file:line: reason" in err. A missing
 * file is an error only when required=1. */
int bx_config_load_file(bx_config *cfg, const char *path, int required, char *err, size_t errlen);
/* Set one key from text (same checks and precedence as the file: a less specific key never
 * overrides a more specific one already set); 0 ok, -1 with reason in err. CometD options that
 * mean nothing here (jsonContext, transports, ws.cometdURLMapping ...) are accepted with a warning. */
int bx_config_set(bx_config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* Apply BX_* environment overrides; -1 with "env BX_X: reason" in err. */
int bx_config_apply_env(bx_config *cfg, char *err, size_t errlen);
/* Free strings owned by cfg. */
void bx_config_free(bx_config *cfg);
/* SIGHUP: reread logLevel from path (NULL: none) and the environment and apply it; 0 ok, -1 with the
 * reason in err (level unchanged). */
int bx_config_reload_log_level(const char *path, char *err, size_t errlen);
/* Name of the i-th key of the table (unprefixed, e.g. "maxInterval"), NULL past the end.
 * Static strings; for tests and bayeuxctl. */
const char *bx_config_key(size_t i);
/* Transport name ↔ enum ("long-polling", "callback-polling", "websocket"); -1 unknown. */
int bx_transport_from_name(const char *name);
const char *bx_transport_name(bx_transport t);
/* Is transport t listed in allowedTransports? */
int bx_config_transport_allowed(const bx_config *cfg, bx_transport t);

#endif
