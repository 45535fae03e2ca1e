/* store.c — the only C code that speaks to Redis (contract: store.h, API.md).
 *
 * Async face: two hiredis async contexts on the caller's libevent base. Each goes
 * DOWN → CONNECTING → (command connection only: LOADING the function library) → READY,
 * and back to DOWN when Redis goes away; a DOWN connection retries on an evtimer with
 * exponential backoff. hiredis runs every pending callback with a NULL reply when a
 * context dies, which is how callers learn that their FCALL failed.
 * Several FCALLs issued in one loop iteration leave in one write: hiredis buffers
 * them, which is the pipelining the worker relies on when it drains many sessions.
 *
 * Sentinel (bx_store_set_sentinels): every connect and reconnect first asks the
 * sentinels in turn (SENTINEL get-master-addr-by-name) and connects to the answer,
 * whose ROLE must say "master" (a sentinel can be behind). A READONLY error means the
 * master was demoted under us: both connections are dropped and the sentinels asked
 * again; the subscriber also moves whenever the command connection found a new master.
 * A third connection stays subscribed to a sentinel's +switch-master: a switch-over
 * leaves the old master up (accepting writes that its demotion will discard) until the
 * sentinel reconfigures it, so the workers move as soon as the sentinel announces it. */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define CONNECT_TIMEOUT_MS 2000
#define COMMAND_TIMEOUT_MS 5000
#define WATCHDOG_MS 250
#define SYNC_TIMEOUT_MS 2000
#define SYNC_COMMAND_TIMEOUT_S 30
#define ARGV_STACK 16

/* LOADING: connected, not ready yet (command: checking/loading the library; subscriber:
 * waiting for the SUBSCRIBE confirmation). */
typedef enum { CONN_DOWN = 0, CONN_RESOLVING, CONN_CONNECTING, CONN_LOADING, CONN_READY } conn_state;

typedef struct conn {
    bx_store *store;
    redisAsyncContext *ac;
    conn_state state;
    int is_sub;          /* subscriber connection (wake channel) */
    int was_ready;       /* has been READY before: a resubscribe may have lost wake-ups */
    int backoff_ms;
    struct event *retry; /* reconnect timer */
    struct event *ctimeout; /* connect timeout (hiredis 0.14 has none) */
    char *host;          /* where it connects: the store's address, or the master a sentinel named */
    int port;
    redisAsyncContext *sac; /* CONN_RESOLVING: the sentinel being asked */
    int si;              /* index of that sentinel */
} conn;

/* One sentinel of the list. */
typedef struct sentinel {
    char *host;
    int port;
} sentinel;

struct bx_store {
    struct event_base *base;
    char *host, *prefix, *worker, *wake_channel;
    int port;
    bx_wake_cb *wake;
    void *wake_arg;
    conn cmd, sub;
    int closing;
    int pending;             /* commands queued on cmd and not answered yet */
    long long progress_ms;   /* last time cmd answered (or went from idle to busy) */
    int command_timeout_ms;
    struct event *watchdog;
    bx_store_stats stats;    /* bx_store_get_stats */
    long long ready_since_ms; /* monotonic ms the command connection became ready; 0 while not */
    sentinel *sentinels;     /* bx_store_set_sentinels; n_sentinels 0: connect to host:port */
    int n_sentinels;
    char *master_name;
    redisAsyncContext *wac;  /* subscribed to +switch-master on sentinels[wi] */
    int wi;
    struct event *wretry;    /* reconnect of wac */
};

/* One pending FCALL. */
typedef struct call {
    bx_store *store;
    bx_store_cb *cb;
    void *arg;
    long long sent_us;   /* for the latency histogram */
} call;

/* Upper bounds (µs) of the latency buckets; the last bucket is everything above. */
static const long long latency_le_us[BX_STORE_LATENCY_BUCKETS - 1] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000,
};

static void conn_start(conn *c);
static void conn_drop(conn *c, const char *why);
static void sentinel_ask(conn *c);
static void conn_begin(conn *c);
static void on_role(redisAsyncContext *ac, void *r, void *priv);

static long long mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long mono_ms(void) { return mono_us() / 1000; }

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void set_err(char *err, size_t errlen, const char *fmt, const char *a) {
    if (err && errlen) snprintf(err, errlen, fmt, a ? a : "");
}

static const char *conn_name(const conn *c) { return c->is_sub ? "subscriber" : "command"; }

static void conn_schedule_retry(conn *c) {
    bx_store *s = c->store;
    if (s->closing) return;
    struct timeval tv = { c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000 };
    bx_debug("store: %s connection to %s:%d down, retry in %d ms", conn_name(c), c->host, c->port,
             c->backoff_ms);
    evtimer_add(c->retry, &tv);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void conn_down(conn *c, const char *why) {
    if (!c->store->closing && (c->state == CONN_READY || c->state == CONN_LOADING))
        bx_warn("store: %s connection to %s:%d lost: %s", conn_name(c), c->host, c->port, why);
    c->ac = NULL;
    c->state = CONN_DOWN;
    if (!c->is_sub) c->store->ready_since_ms = 0;
    evtimer_del(c->ctimeout);
    conn_schedule_retry(c);
}

static void conn_ready(conn *c) {
    if (!c->is_sub && c->was_ready) c->store->stats.reconnects++;
    if (!c->is_sub) c->was_ready = 1;
    if (!c->is_sub) c->store->ready_since_ms = mono_ms();
    c->state = CONN_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    bx_info("store: %s connection to %s:%d ready", conn_name(c), c->host, c->port);
    bx_store *s = c->store;
    /* After a failover the subscriber may still listen on the old master (a demoted master
     * keeps its pub/sub clients): follow the command connection. */
    if (!c->is_sub && s->n_sentinels && s->sub.ac && s->sub.state != CONN_RESOLVING &&
        (s->sub.port != c->port || strcmp(s->sub.host, c->host) != 0))
        conn_drop(&s->sub, "the master moved");
}

/* ---- command connection: library version check and load */

/* Count a command in flight on the command connection (for the watchdog). */
static void pending_add(bx_store *s) {
    if (s->pending++ == 0) s->progress_ms = mono_ms();
}

static void pending_done(bx_store *s) {
    s->pending--;
    s->progress_ms = mono_ms();
}

static void on_load(redisAsyncContext *ac, void *r, void *priv) {
    conn *c = priv;
    redisReply *reply = r;
    (void)ac;
    pending_done(c->store);
    if (!reply) return; /* connection died; the disconnect callback handles it */
    if (reply->type == REDIS_REPLY_ERROR) {
        bx_error("store: FUNCTION LOAD of the bayeux library failed: %s", reply->str);
        redisAsyncDisconnect(c->ac); /* retried with backoff; the error stays visible in the log */
        return;
    }
    bx_info("store: loaded function library bayeux version %s", bx_lua_version);
    conn_ready(c);
}

static void load_library(conn *c) {
    const char *argv[] = { "FUNCTION", "LOAD", "REPLACE", bx_lua_source };
    size_t lens[] = { 8, 4, 7, strlen(bx_lua_source) };
    c->state = CONN_LOADING;
    if (redisAsyncCommandArgv(c->ac, on_load, c, 4, argv, lens) == REDIS_OK) pending_add(c->store);
}

static void on_version(redisAsyncContext *ac, void *r, void *priv) {
    conn *c = priv;
    redisReply *reply = r;
    (void)ac;
    pending_done(c->store);
    if (!reply) return;
    if (reply->type == REDIS_REPLY_STRING && strcmp(reply->str, bx_lua_version) == 0) {
        bx_debug("store: function library version %s already loaded", bx_lua_version);
        conn_ready(c);
        return;
    }
    bx_info("store: function library is %s, want %s: loading",
            reply->type == REDIS_REPLY_STRING ? reply->str : "absent", bx_lua_version);
    load_library(c);
}

/* ---- subscriber connection */

static void on_sub_message(redisAsyncContext *ac, void *r, void *priv) {
    conn *c = priv;
    redisReply *reply = r;
    (void)ac;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "subscribe") == 0) {
        int again = c->was_ready;
        c->was_ready = 1;
        conn_ready(c);
        /* Wake-ups published while we were away are lost: tell the worker to re-drain. */
        if (again && c->store->wake) c->store->wake("r", 1, c->store->wake_arg);
        return;
    }
    if (strcmp(kind->str, "message") == 0 && reply->element[2]->type == REDIS_REPLY_STRING) {
        redisReply *p = reply->element[2];
        bx_debug("store: wake-up %.*s", (int)(p->len > 200 ? 200 : p->len), p->str);
        if (c->store->wake) c->store->wake(p->str, p->len, c->store->wake_arg);
    }
}

/* ---- connection life cycle */

static void on_connect(const redisAsyncContext *ac, int status) {
    conn *c = ac->data;
    evtimer_del(c->ctimeout);
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback and calls no disconnect callback. */
        bx_debug("store: %s connect to %s:%d failed: %s", conn_name(c), c->host, c->port, ac->errstr);
        conn_down(c, ac->errstr);
        return;
    }
    bx_debug("store: %s connection to %s:%d established", conn_name(c), c->host, c->port);
    /* A peer that vanished without a FIN (network partition) is noticed by TCP keepalive. */
    redisEnableKeepAlive(&c->ac->c);
    c->state = CONN_LOADING;
    if (c->store->n_sentinels) {
        /* The sentinel may have named a master that was demoted since: check before use. */
        if (redisAsyncCommand(c->ac, on_role, c, "ROLE") == REDIS_OK && !c->is_sub) pending_add(c->store);
        return;
    }
    conn_begin(c);
}

/* Connected to the right server: subscribe, or check the function library. */
static void conn_begin(conn *c) {
    if (c->is_sub) {
        const char *argv[] = { "SUBSCRIBE", c->store->wake_channel };
        size_t lens[] = { 9, strlen(c->store->wake_channel) };
        redisAsyncCommandArgv(c->ac, on_sub_message, c, 2, argv, lens);
    } else {
        const char *argv[] = { "FCALL", "bx_version", "0" };
        size_t lens[] = { 5, 10, 1 };
        if (redisAsyncCommandArgv(c->ac, on_version, c, 3, argv, lens) == REDIS_OK) pending_add(c->store);
    }
}

static void on_role(redisAsyncContext *ac, void *r, void *priv) {
    conn *c = priv;
    redisReply *reply = r;
    if (!c->is_sub) pending_done(c->store);
    if (!reply) return; /* connection died; the disconnect callback handles it */
    const redisReply *role = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 ? reply->element[0] : NULL;
    if (role && role->type == REDIS_REPLY_STRING && strcmp(role->str, "master") == 0) {
        conn_begin(c);
        return;
    }
    bx_warn("store: %s:%d, named master of %s by a sentinel, is not a master (role %.20s): asking again",
            c->host, c->port, c->store->master_name,
            role && role->type == REDIS_REPLY_STRING ? role->str : "unknown");
    redisAsyncDisconnect(ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    conn *c = ac->data;
    conn_down(c, status == REDIS_OK ? "closed" : ac->errstr);
}

/* Close a connection from outside hiredis' callbacks; pending callbacks get NULL and a
 * reconnect is scheduled. */
static void conn_drop(conn *c, const char *why) {
    redisAsyncContext *ac = c->ac;
    if (!ac) return;
    if (c->state == CONN_CONNECTING) {
        /* Not yet connected: hiredis calls neither callback on free, so go down ourselves. */
        c->ac = NULL;
        redisAsyncFree(ac);
        conn_down(c, why);
    } else {
        redisAsyncFree(ac); /* on_disconnect runs conn_down */
    }
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg) {
    conn *c = arg;
    (void)fd; (void)what;
    if (c->state == CONN_RESOLVING && c->sac) {
        sentinel *sn = &c->store->sentinels[c->si];
        bx_warn("store: sentinel %s:%d did not answer in time", sn->host, sn->port);
        redisAsyncContext *sac = c->sac;
        c->sac = NULL; /* its callbacks, run by the free, see a stale context and do nothing */
        redisAsyncFree(sac);
        c->si++;
        sentinel_ask(c);
        return;
    }
    if (c->state != CONN_CONNECTING || !c->ac) return;
    bx_warn("store: %s connect to %s:%d timed out", conn_name(c), c->host, c->port);
    conn_drop(c, "connect timeout");
}

/* Redis that accepts connections but does not answer (stopped, swapping, a runaway
 * script) would hang every caller: drop the connection, which fails them all. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg) {
    bx_store *s = arg;
    (void)fd; (void)what;
    conn *c = &s->cmd;
    if (!c->ac || s->pending == 0 || s->command_timeout_ms <= 0) return;
    long long waited = mono_ms() - s->progress_ms;
    if (waited < s->command_timeout_ms) return;
    bx_warn("store: Redis at %s:%d has not answered for %lld ms (%d commands pending): reconnecting",
            c->host, c->port, waited, s->pending);
    conn_drop(c, "command timeout");
    /* The subscriber connection goes to the same server: resubscribe too, which tells the
     * worker to re-drain its parked polls ("r") once Redis answers again. */
    conn_drop(&s->sub, "command timeout");
}

void bx_store_set_command_timeout(bx_store *s, int ms) {
    if (s) s->command_timeout_ms = ms;
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    conn_start(arg);
}

/* Connect c to host:port (copied into c->host unless it is c->host already). */
static void conn_connect(conn *c, const char *host, int port) {
    bx_store *s = c->store;
    if (host != c->host) {
        char *h = dup_str(host);
        if (!h) {
            conn_down(c, "out of memory");
            return;
        }
        free(c->host);
        c->host = h;
    }
    c->port = port;
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    if (!ac) {
        conn_down(c, "out of memory");
        return;
    }
    if (ac->err) {
        bx_debug("store: %s connect to %s:%d: %s", conn_name(c), c->host, c->port, ac->errstr);
        redisAsyncFree(ac);
        conn_down(c, "connect failed");
        return;
    }
    ac->data = c;
    if (redisLibeventAttach(ac, s->base) != REDIS_OK) {
        redisAsyncFree(ac);
        conn_down(c, "libevent attach failed");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->ac = ac;
    c->state = CONN_CONNECTING;
    struct timeval tv = { CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000 };
    evtimer_add(c->ctimeout, &tv);
}

/* ---- sentinel: where is the master? */

/* "host:port" from a sentinel's reply, checked (it comes from the network). */
static int master_addr(const redisReply *r, const char **host, int *port) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) return -1;
    const redisReply *h = r->element[0], *p = r->element[1];
    if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING) return -1;
    if (h->len == 0 || h->len > 255 || strlen(h->str) != h->len) return -1;
    char *end;
    long n = strtol(p->str, &end, 10);
    if (p->len == 0 || *end || n < 1 || n > 65535) return -1;
    *host = h->str;
    *port = (int)n;
    return 0;
}

static void on_sentinel_reply(redisAsyncContext *ac, void *r, void *priv) {
    conn *c = priv;
    if (ac != c->sac) return; /* a sentinel given up on (timeout) */
    sentinel *sn = &c->store->sentinels[c->si];
    const char *host;
    int port;
    c->sac = NULL;
    if (r) redisAsyncDisconnect(ac); /* freed by hiredis after this callback (NULL: it is going already) */
    if (master_addr(r, &host, &port) == 0) {
        evtimer_del(c->ctimeout);
        bx_debug("store: sentinel %s:%d: master %s is %s:%d", sn->host, sn->port, c->store->master_name, host, port);
        conn_connect(c, host, port);
        return;
    }
    bx_warn("store: sentinel %s:%d does not know master %s%s", sn->host, sn->port, c->store->master_name,
            r ? "" : " (connection lost)");
    c->si++;
    sentinel_ask(c);
}

static void on_sentinel_connect(const redisAsyncContext *ac, int status) {
    conn *c = ac->data;
    if (status == REDIS_OK || ac != c->sac) return;
    sentinel *sn = &c->store->sentinels[c->si];
    bx_warn("store: sentinel %s:%d: %s", sn->host, sn->port, ac->errstr);
    c->sac = NULL; /* hiredis frees it after this callback */
    c->si++;
    sentinel_ask(c);
}

static void on_sentinel_disconnect(const redisAsyncContext *ac, int status) {
    (void)ac; (void)status; /* the reply callback (NULL reply) already moved on */
}

/* Ask sentinel c->si, or go down (backoff, then the whole list again) past the last one. */
static void sentinel_ask(conn *c) {
    bx_store *s = c->store;
    if (s->closing) return;
    if (c->si >= s->n_sentinels) {
        evtimer_del(c->ctimeout);
        bx_warn("store: no sentinel named a master for %s", s->master_name);
        conn_down(c, "no master");
        return;
    }
    sentinel *sn = &s->sentinels[c->si];
    redisAsyncContext *ac = redisAsyncConnect(sn->host, sn->port);
    if (!ac || ac->err || redisLibeventAttach(ac, s->base) != REDIS_OK) {
        bx_warn("store: sentinel %s:%d: %s", sn->host, sn->port, ac && ac->err ? ac->errstr : "cannot connect");
        if (ac) redisAsyncFree(ac);
        c->si++;
        sentinel_ask(c);
        return;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(ac, on_sentinel_disconnect);
    c->sac = ac;
    c->state = CONN_RESOLVING;
    if (redisAsyncCommand(ac, on_sentinel_reply, c, "SENTINEL get-master-addr-by-name %s", s->master_name) != REDIS_OK) {
        c->sac = NULL;
        redisAsyncFree(ac);
        c->si++;
        sentinel_ask(c);
        return;
    }
    /* One timer bounds each sentinel's connect and answer. */
    struct timeval tv = { CONNECT_TIMEOUT_MS / 1000, (CONNECT_TIMEOUT_MS % 1000) * 1000 };
    evtimer_add(c->ctimeout, &tv);
}

static void conn_start(conn *c) {
    bx_store *s = c->store;
    if (s->n_sentinels) {
        c->si = 0;
        sentinel_ask(c);
    } else {
        conn_connect(c, s->host, s->port);
    }
}

static int conn_init(bx_store *s, conn *c, int is_sub) {
    c->store = s;
    c->is_sub = is_sub;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->retry = evtimer_new(s->base, on_retry, c);
    c->ctimeout = evtimer_new(s->base, on_connect_timeout, c);
    c->host = dup_str(s->host);
    c->port = s->port;
    return c->retry && c->ctimeout && c->host ? 0 : -1;
}

static void conn_close(conn *c) {
    if (c->sac) {
        redisAsyncContext *sac = c->sac;
        c->sac = NULL;
        redisAsyncFree(sac);
    }
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac); /* runs pending callbacks with NULL, then on_disconnect if connected */
    }
    if (c->retry) event_free(c->retry);
    if (c->ctimeout) event_free(c->ctimeout);
    c->retry = c->ctimeout = NULL;
    free(c->host);
    c->host = NULL;
}

bx_store *bx_store_new(struct event_base *base, const bx_store_opts *opts,
                       bx_wake_cb *wake, void *wake_arg, char *err, size_t errlen) {
    if (!base || !opts || !opts->host || !opts->prefix) {
        set_err(err, errlen, "store: base, host and prefix are required%s", NULL);
        return NULL;
    }
    bx_store *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->base = base;
    s->port = opts->port;
    s->wake = wake;
    s->wake_arg = wake_arg;
    s->host = dup_str(opts->host);
    s->prefix = dup_str(opts->prefix);
    if (!s->host || !s->prefix) goto oom;
    if (opts->worker) {
        size_t n = strlen(opts->prefix) + 5 + strlen(opts->worker) + 1;
        s->worker = dup_str(opts->worker);
        s->wake_channel = malloc(n);
        if (!s->worker || !s->wake_channel) goto oom;
        snprintf(s->wake_channel, n, "%swake:%s", opts->prefix, opts->worker);
    }
    if (conn_init(s, &s->cmd, 0) < 0 || conn_init(s, &s->sub, 1) < 0) goto oom;
    s->command_timeout_ms = COMMAND_TIMEOUT_MS;
    s->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, s);
    if (!s->watchdog) goto oom;
    struct timeval wd = { 0, WATCHDOG_MS * 1000 };
    event_add(s->watchdog, &wd);
    /* The first connects run from the event loop, so bx_store_set_sentinels called right
     * after this still decides where they go. */
    struct timeval now = { 0, 0 };
    evtimer_add(s->cmd.retry, &now);
    if (s->worker) evtimer_add(s->sub.retry, &now);
    return s;
oom:
    set_err(err, errlen, "store: out of memory%s", NULL);
    bx_store_free(s);
    return NULL;
}

int bx_store_ready(const bx_store *s) {
    return s && s->cmd.state == CONN_READY;
}

/* One answered (or failed) FCALL into the counters. */
static void stats_count(bx_store *s, long long sent_us, int failed) {
    long long us = mono_us() - sent_us;
    int b = 0;
    while (b < BX_STORE_LATENCY_BUCKETS - 1 && us > latency_le_us[b]) b++;
    s->stats.calls++;
    s->stats.failures += failed != 0;
    s->stats.latency_count[b]++;
    s->stats.latency_sum_us += (unsigned long long)(us > 0 ? us : 0);
}

void bx_store_get_stats(const bx_store *s, bx_store_stats *out) {
    *out = s->stats;
    out->ready = bx_store_ready(s);
    out->pending = s->pending;
}

long long bx_store_ready_for_ms(const bx_store *s) {
    return s && s->cmd.state == CONN_READY && s->ready_since_ms ? mono_ms() - s->ready_since_ms : -1;
}

long long bx_store_latency_le_us(int bucket) {
    return bucket >= 0 && bucket < BX_STORE_LATENCY_BUCKETS - 1 ? latency_le_us[bucket] : -1;
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
    call *cl = priv;
    redisReply *reply = r;
    pending_done(cl->store);
    stats_count(cl->store, cl->sent_us, !reply || reply->type == REDIS_REPLY_ERROR);
    if (!reply) {
        const char *why = cl->store->closing ? "store closed"
                          : (ac && ac->errstr[0]) ? ac->errstr : "Redis connection lost";
        cl->cb(NULL, why, cl->arg);
    } else if (reply->type == REDIS_REPLY_ERROR) {
        /* The library vanished (FUNCTION FLUSH, Redis restarted without our reload): load again. */
        conn *c = &cl->store->cmd;
        if (strstr(reply->str, "Function not found") && c->state == CONN_READY && c->ac) {
            bx_warn("store: function library missing in Redis, reloading");
            load_library(c);
        }
        /* The master became a replica (failover): find the new one. */
        if (strncmp(reply->str, "READONLY", 8) == 0 && c->state == CONN_READY && c->ac) {
            bx_warn("store: %s:%d is read-only now (failed over?): reconnecting", c->host, c->port);
            c->state = CONN_LOADING; /* one reconnect, however many replies say it */
            redisAsyncDisconnect(c->ac);
            conn_drop(&cl->store->sub, "master read-only");
        }
        cl->cb(NULL, reply->str, cl->arg);
    } else {
        cl->cb(reply, NULL, cl->arg);
    }
    free(cl);
}

/* Build "FCALL fn 0 prefix argv..." in vec/lens (caller-provided, size argc+4). */
static void fcall_argv(const char *fn, const char *prefix, int argc, const char **argv,
                       const size_t *lens, const char **vec, size_t *vlens) {
    vec[0] = "FCALL"; vlens[0] = 5;
    vec[1] = fn;      vlens[1] = strlen(fn);
    vec[2] = "0";     vlens[2] = 1;
    vec[3] = prefix;  vlens[3] = strlen(prefix);
    for (int i = 0; i < argc; i++) {
        vec[i + 4] = argv[i];
        vlens[i + 4] = lens ? lens[i] : strlen(argv[i]);
    }
}

int bx_store_fcall(bx_store *s, const char *fn, int argc, const char **argv, const size_t *lens,
                   bx_store_cb *cb, void *arg, char *err, size_t errlen) {
    if (s && !s->closing && s->cmd.state != CONN_READY) s->stats.refused++;
    if (!s || s->closing || s->cmd.state != CONN_READY || !s->cmd.ac) {
        set_err(err, errlen, "Redis not connected%s",
                s && s->cmd.state == CONN_LOADING ? " (loading the function library)" : "");
        return -1;
    }
    if (argc < 0 || !cb) {
        set_err(err, errlen, "store: bad arguments to bx_store_fcall %s", fn);
        return -1;
    }
    const char *vstack[ARGV_STACK];
    size_t lstack[ARGV_STACK];
    const char **vec = vstack;
    size_t *vlens = lstack;
    int n = argc + 4;
    if (n > ARGV_STACK) {
        vec = malloc(sizeof *vec * (size_t)n);
        vlens = malloc(sizeof *vlens * (size_t)n);
    }
    call *cl = malloc(sizeof *cl);
    int rc = -1;
    if (!vec || !vlens || !cl) {
        set_err(err, errlen, "store: out of memory%s", NULL);
        goto done;
    }
    cl->store = s;
    cl->cb = cb;
    cl->arg = arg;
    cl->sent_us = mono_us();
    fcall_argv(fn, s->prefix, argc, argv, lens, vec, vlens);
    if (redisAsyncCommandArgv(s->cmd.ac, on_reply, cl, n, vec, vlens) != REDIS_OK) {
        set_err(err, errlen, "Redis command failed: %s", s->cmd.ac->errstr);
        goto done;
    }
    cl = NULL; /* owned by hiredis until on_reply */
    pending_add(s);
    rc = 0;
done:
    free(cl);
    if (vec != vstack) free(vec);
    if (vlens != lstack) free(vlens);
    return rc;
}

static void sentinels_free(sentinel *list, int n) {
    for (int i = 0; i < n; i++) free(list[i].host);
    free(list);
}

/* "host:port,host:port" → a malloc'd array (*n entries). 0, or -1 + err. */
static int sentinels_parse(const char *text, sentinel **out, int *n, char *err, size_t errlen) {
    *out = NULL;
    *n = 0;
    sentinel *list = NULL;
    int count = 0;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[300];
        if (len == 0 || len >= sizeof item) {
            set_err(err, errlen, "redisSentinels: empty or overlong entry in \"%s\"", text);
            goto fail;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        char *colon = strrchr(item, ':'), *pend;
        long port = colon ? strtol(colon + 1, &pend, 10) : 0;
        if (!colon || colon == item || colon[1] == '\0' || *pend || port < 1 || port > 65535) {
            set_err(err, errlen, "redisSentinels: \"%s\" is not host:port", item);
            goto fail;
        }
        *colon = '\0';
        sentinel *grown = realloc(list, sizeof *list * (size_t)(count + 1));
        if (!grown) goto oom;
        list = grown;
        if (!(list[count].host = dup_str(item))) goto oom;
        list[count++].port = (int)port;
        p = end ? end + 1 : p + len;
    }
    *out = list;
    *n = count;
    return 0;
oom:
    set_err(err, errlen, "store: out of memory%s", NULL);
fail:
    sentinels_free(list, count);
    return -1;
}

/* ---- sentinel watch: +switch-master */

static void watch_schedule(bx_store *s, int ms) {
    if (s->closing || !s->wretry) return;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(s->wretry, &tv);
}

/* "<name> <old-ip> <old-port> <new-ip> <new-port>": drop both connections when the new master
 * is not where the command connection is (they reconnect through the sentinels). */
static void watch_switch(bx_store *s, const char *payload, size_t len) {
    char buf[600], name[256], oh[256], nh[256];
    int op, np;
    if (len >= sizeof buf) return;
    memcpy(buf, payload, len);
    buf[len] = '\0';
    if (sscanf(buf, "%255s %255s %d %255s %d", name, oh, &op, nh, &np) != 5 || strcmp(name, s->master_name) != 0) return;
    if (s->cmd.port == np && s->cmd.host && strcmp(s->cmd.host, nh) == 0 && s->cmd.state == CONN_READY) return;
    bx_warn("store: sentinel announces master %s moved from %s:%d to %s:%d: reconnecting", name, oh, op, nh, np);
    conn_drop(&s->cmd, "master switched");
    conn_drop(&s->sub, "master switched");
}

static void on_watch_message(redisAsyncContext *ac, void *r, void *priv) {
    bx_store *s = priv;
    redisReply *reply = r;
    if (ac != s->wac || !reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    const redisReply *kind = reply->element[0], *msg = reply->element[2];
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "message") == 0 && msg->type == REDIS_REPLY_STRING)
        watch_switch(s, msg->str, msg->len);
}

static void on_watch_connect(const redisAsyncContext *ac, int status) {
    bx_store *s = ac->data;
    if (status == REDIS_OK || ac != s->wac) return;
    s->wac = NULL; /* hiredis frees it */
    s->wi = (s->wi + 1) % s->n_sentinels;
    watch_schedule(s, 1000);
}

static void on_watch_disconnect(const redisAsyncContext *ac, int status) {
    bx_store *s = ac->data;
    (void)status;
    if (ac != s->wac) return;
    s->wac = NULL;
    s->wi = (s->wi + 1) % s->n_sentinels;
    watch_schedule(s, 1000);
}

static void watch_start(evutil_socket_t fd, short what, void *arg) {
    bx_store *s = arg;
    (void)fd; (void)what;
    if (s->closing || s->wac || !s->n_sentinels) return;
    sentinel *sn = &s->sentinels[s->wi];
    redisAsyncContext *ac = redisAsyncConnect(sn->host, sn->port);
    if (!ac || ac->err || redisLibeventAttach(ac, s->base) != REDIS_OK) {
        if (ac) redisAsyncFree(ac);
        s->wi = (s->wi + 1) % s->n_sentinels;
        watch_schedule(s, 1000);
        return;
    }
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_watch_connect);
    redisAsyncSetDisconnectCallback(ac, on_watch_disconnect);
    s->wac = ac;
    redisAsyncCommand(ac, on_watch_message, s, "SUBSCRIBE +switch-master");
}

int bx_store_set_sentinels(bx_store *s, const char *list, const char *master_name, char *err, size_t errlen) {
    if (!list || !*list) return 0;
    if (!master_name || !*master_name) {
        set_err(err, errlen, "redisMasterName is required with redisSentinels%s", NULL);
        return -1;
    }
    sentinel *parsed;
    int n;
    char *name = dup_str(master_name);
    if (!name) {
        set_err(err, errlen, "store: out of memory%s", NULL);
        return -1;
    }
    if (sentinels_parse(list, &parsed, &n, err, errlen) < 0) {
        free(name);
        return -1;
    }
    sentinels_free(s->sentinels, s->n_sentinels);
    free(s->master_name);
    s->sentinels = parsed;
    s->n_sentinels = n;
    s->master_name = name;
    s->wi = 0;
    if (!s->wretry && !(s->wretry = evtimer_new(s->base, watch_start, s))) {
        set_err(err, errlen, "store: out of memory%s", NULL);
        return -1;
    }
    if (!s->wac) watch_schedule(s, 0);
    bx_info("store: master %s from %d sentinel(s), first %s:%d", name, n, parsed[0].host, parsed[0].port);
    return 0;
}

void bx_store_free(bx_store *s) {
    if (!s) return;
    s->closing = 1;
    if (s->watchdog) event_free(s->watchdog);
    conn_close(&s->cmd);
    conn_close(&s->sub);
    if (s->wretry) event_free(s->wretry);
    if (s->wac) {
        redisAsyncContext *wac = s->wac;
        s->wac = NULL;
        redisAsyncFree(wac);
    }
    sentinels_free(s->sentinels, s->n_sentinels);
    free(s->master_name);
    free(s->host);
    free(s->prefix);
    free(s->worker);
    free(s->wake_channel);
    free(s);
}

/* ---- blocking face */

struct bx_store_sync {
    redisContext *c;
    char *prefix;
};

static redisReply *sync_run(bx_store_sync *s, int argc, const char **argv, const size_t *lens,
                            char *err, size_t errlen) {
    redisReply *r = redisCommandArgv(s->c, argc, argv, lens);
    if (!r) {
        set_err(err, errlen, "Redis: %s", s->c->errstr[0] ? s->c->errstr : "connection lost");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        set_err(err, errlen, "%s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Load the embedded library unless Redis already has this version. */
static int sync_load(bx_store_sync *s, int force, char *err, size_t errlen) {
    if (!force) {
        const char *argv[] = { "FCALL", "bx_version", "0" };
        redisReply *r = redisCommandArgv(s->c, 3, argv, NULL);
        if (!r) {
            set_err(err, errlen, "Redis: %s", s->c->errstr);
            return -1;
        }
        int same = r->type == REDIS_REPLY_STRING && strcmp(r->str, bx_lua_version) == 0;
        freeReplyObject(r);
        if (same) return 0;
    }
    const char *argv[] = { "FUNCTION", "LOAD", "REPLACE", bx_lua_source };
    redisReply *r = sync_run(s, 4, argv, NULL, err, errlen);
    if (!r) return -1;
    freeReplyObject(r);
    return 0;
}

bx_store_sync *bx_store_sync_open(const char *host, int port, const char *prefix, char *err, size_t errlen) {
    struct timeval tv = { SYNC_TIMEOUT_MS / 1000, (SYNC_TIMEOUT_MS % 1000) * 1000 };
    bx_store_sync *s = calloc(1, sizeof *s);
    if (!s || !(s->prefix = dup_str(prefix ? prefix : "bayeux:"))) {
        set_err(err, errlen, "out of memory%s", NULL);
        bx_store_sync_close(s);
        return NULL;
    }
    s->c = redisConnectWithTimeout(host, port, tv);
    if (!s->c || s->c->err) {
        char where[300];
        snprintf(where, sizeof where, "%s:%d: %s", host, port, s->c ? s->c->errstr : "out of memory");
        set_err(err, errlen, "cannot connect to Redis at %s", where);
        bx_store_sync_close(s);
        return NULL;
    }
    struct timeval cmd_tv = { SYNC_COMMAND_TIMEOUT_S, 0 }; /* a sweep of many sessions takes a while */
    redisSetTimeout(s->c, cmd_tv);
    if (sync_load(s, 0, err, errlen) < 0) {
        bx_store_sync_close(s);
        return NULL;
    }
    return s;
}

bx_store_sync *bx_store_sync_open_sentinel(const char *list, const char *master_name, const char *prefix,
                                           char *err, size_t errlen) {
    sentinel *sl;
    int n;
    if (!master_name || !*master_name) {
        set_err(err, errlen, "a master name is required with sentinels%s", NULL);
        return NULL;
    }
    if (sentinels_parse(list ? list : "", &sl, &n, err, errlen) < 0) return NULL;
    set_err(err, errlen, "no sentinel given%s", NULL);
    bx_store_sync *s = NULL;
    for (int i = 0; i < n && !s; i++) {
        struct timeval tv = { SYNC_TIMEOUT_MS / 1000, (SYNC_TIMEOUT_MS % 1000) * 1000 };
        redisContext *c = redisConnectWithTimeout(sl[i].host, sl[i].port, tv);
        redisReply *r = c && !c->err ? redisCommand(c, "SENTINEL get-master-addr-by-name %s", master_name) : NULL;
        const char *host;
        int port;
        if (master_addr(r, &host, &port) == 0) {
            s = bx_store_sync_open(host, port, prefix, err, errlen);
        } else {
            char where[300];
            snprintf(where, sizeof where, "%s:%d: %s", sl[i].host, sl[i].port,
                     !c ? "out of memory" : c->err ? c->errstr : r && r->type == REDIS_REPLY_ERROR ? r->str
                     : "does not know the master");
            set_err(err, errlen, "sentinel %s", where);
        }
        if (r) freeReplyObject(r);
        if (c) redisFree(c);
    }
    sentinels_free(sl, n);
    return s;
}

int bx_store_sync_load(bx_store_sync *s, char *err, size_t errlen) {
    return sync_load(s, 1, err, errlen);
}

redisReply *bx_store_sync_fcall(bx_store_sync *s, const char *fn, int argc, const char **argv,
                                const size_t *lens, char *err, size_t errlen) {
    int n = argc + 4;
    const char **vec = malloc(sizeof *vec * (size_t)n);
    size_t *vlens = malloc(sizeof *vlens * (size_t)n);
    redisReply *r = NULL;
    if (!vec || !vlens) {
        set_err(err, errlen, "out of memory%s", NULL);
    } else {
        fcall_argv(fn, s->prefix, argc, argv, lens, vec, vlens);
        r = sync_run(s, n, vec, vlens, err, errlen);
    }
    free(vec);
    free(vlens);
    return r;
}

redisReply *bx_store_sync_command(bx_store_sync *s, int argc, const char **argv, const size_t *lens,
                                  char *err, size_t errlen) {
    return sync_run(s, argc, argv, lens, err, errlen);
}

const char *bx_store_sync_prefix(const bx_store_sync *s) { return s->prefix; }

void bx_store_sync_close(bx_store_sync *s) {
    if (!s) return;
    if (s->c) redisFree(s->c);
    free(s->prefix);
    free(s);
}
