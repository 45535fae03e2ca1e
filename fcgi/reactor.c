/* reactor.c — the thread that owns accepted requests: dispatch, parking, wake-ups, timers, signals.
 *
 * Accept threads push requests on a locked queue and activate qev; everything else
 * happens here. A held /meta/connect costs no thread: a bx_req with an evtimer
 * (hold timeout) and an EV_READ watch on its FastCGI connection (nginx closes it
 * when the browser goes away). */
#include "reactor.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "accept.h"
#include "dispatch.h"
#include "log.h"
#include "metrics.h"
#include "parked.h"
#include "store.h"
#include "transport.h"

#define STOP_GRACE_MS 10000   /* longest wait for in-flight work after SIGTERM */
#define STARTUP_WAIT_MS 2000  /* requests wait this long for the first Redis connection */
#define SWEEP_MAX "1000"
#define REFUSALS_LOGGED 20    /* warn lines per 10 s for refused requests */

/* An idle FastCGI connection the web server keeps for its next request (FCGI_KEEP_CONN). */
typedef struct kept {
    FCGX_Request *fr;
    struct event *ev;
    struct bx_reactor *r;
    struct kept *prev, *next;
} kept;

struct bx_reactor {
    const bx_config *cfg;
    char *conf_path;
    int cgi;
    struct event_base *base;
    bx_store *store;
    bx_dispatch *d;
    bx_parked *parked;
    pthread_mutex_t lock; /* guards the queue and threads */
    bx_req *qhead, *qtail;
    int threads;
    struct event *qev, *sweep, *sig_term, *sig_int, *sig_hup, *stopcheck;
    int stopping;
    long long started, deadline;
    void (*on_stop)(void *);
    void *on_stop_arg;
    long long refusal_window;
    int refusals_loud, refusals_quiet;
    kept *kept;           /* idle kept connections */
    int metrics_pending;  /* scrapes waiting for bx_stats (a stop waits for them) */
    char *worker;         /* worker id, the metrics' worker label */
    size_t n_kept;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval tv_ms(long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    return tv;
}

static void begin_stop(bx_reactor *r, const char *why);
static void keep_conn(bx_reactor *r, FCGX_Request *fr);

/* ---- request end ------------------------------------------------------ */

static void unregister(bx_reactor *r, bx_req *q)
{
    if (q->registered && q->ex)
        bx_parked_remove(r->parked, bx_exchange_client_id(q->ex), bx_exchange_token(q->ex), q);
    q->registered = 0;
}

/* The request is over; answered=1 when a response was written (the connection may be kept). */
static void req_done(bx_reactor *r, bx_req *q, int answered)
{
    unregister(r, q);
    if (q->timer)
        event_free(q->timer);
    if (q->watch)
        event_free(q->watch);
    q->timer = q->watch = NULL;
    bx_exchange_free(q->ex);
    q->ex = NULL;
    FCGX_Request *fr = NULL;
    if (bx_req_must_discard(q) && !r->cgi)
        bx_accept_discard(q); /* the web server may still be sending the refused body */
    else if (answered && !r->stopping)
        fr = bx_req_free_keep(q);
    else
        bx_req_free(q);
    if (fr)
        keep_conn(r, fr);
    if (r->cgi)
        begin_stop(r, "CGI request answered");
}

/* ---- kept connections ----------------------------------------------------- */

static void kept_free(bx_reactor *r, kept *k, int close_conn)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        r->kept = k->next;
    if (k->next)
        k->next->prev = k->prev;
    r->n_kept--;
    event_free(k->ev);
    if (close_conn) {
        FCGX_Free(k->fr, 1);
        free(k->fr);
    }
    free(k);
}

static void handle(bx_reactor *r, bx_req *q);

/* The web server sent the next request on a kept connection (or closed it). The records are
 * already there, so reading them here costs the reactor no waiting; the web server is trusted
 * to send a whole request at once (nginx buffers request bodies by default). */
static void on_kept_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    kept *k = arg;
    bx_reactor *r = k->r;
    FCGX_Request *fr = k->fr;
    kept_free(r, k, 0);
    fr->listen_sock = -1; /* a closed connection must not make FCGX_Accept_r wait in accept() */
    if (FCGX_Accept_r(fr) < 0) {
        FCGX_Free(fr, 1);
        free(fr);
        return;
    }
    bx_req *q = bx_req_from_fcgx(fr, r->cfg->tr[BX_TR_LONG_POLLING].maxMessageSize);
    bx_debug("next request on a kept FastCGI connection (%zu idle)", r->n_kept);
    if (q && q->reading)
        bx_accept_hand_over(r, q); /* the rest of its body is late: not on this thread */
    else if (q)
        handle(r, q);
}

static void keep_conn(bx_reactor *r, FCGX_Request *fr)
{
    kept *k = calloc(1, sizeof *k);
    if (k)
        k->ev = event_new(r->base, fr->ipcFd, EV_READ, on_kept_readable, k);
    if (!k || !k->ev || event_add(k->ev, NULL) < 0) {
        if (k && k->ev)
            event_free(k->ev);
        free(k);
        FCGX_Free(fr, 1);
        free(fr);
        return;
    }
    k->fr = fr;
    k->r = r;
    k->next = r->kept;
    if (r->kept)
        r->kept->prev = k;
    r->kept = k;
    r->n_kept++;
}

static void close_kept(bx_reactor *r)
{
    while (r->kept)
        kept_free(r, r->kept, 1);
}

/* ---- exchange hooks ----------------------------------------------------- */

static void on_hold(bx_exchange *ex, void *arg)
{
    bx_req *q = arg;
    bx_reactor *r = q->owner;
    if (q->registered)
        return;
    if (bx_parked_add(r->parked, bx_exchange_client_id(ex), bx_exchange_token(ex), q) == 0)
        q->registered = 1;
    else
        bx_error("parked table: out of memory (token %s will only end by timeout)", bx_exchange_token(ex));
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bx_req *q = arg;
    bx_exchange_expire(q->ex);
}

/* The FastCGI connection of a parked request became readable: EOF (nginx closed it because
 * the browser went away) or anything else we did not ask for. Either way the poll is over. */
static void on_conn_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    bx_req *q = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(q->watch, NULL);
        return;
    }
    bx_debug("connect token %s: web server closed the connection (browser gone): unpark, keep the queue",
             bx_exchange_token(q->ex));
    bx_exchange_abandon(q->ex);
}

static void arm_parked(bx_reactor *r, bx_req *q)
{
    struct timeval tv = tv_ms(bx_exchange_hold_ms(q->ex));
    if (!q->timer)
        q->timer = evtimer_new(r->base, on_timeout, q);
    if (q->timer)
        evtimer_add(q->timer, &tv);
    int fd = bx_req_fd(q);
    if (fd >= 0 && !q->watch)
        q->watch = event_new(r->base, fd, EV_READ, on_conn_readable, q);
    if (q->watch)
        event_add(q->watch, NULL);
    if (!q->timer)
        bx_error("connect token %s: no timer (out of memory); answering now", bx_exchange_token(q->ex));
}

static void on_state(bx_exchange *ex, bx_ex_state st, void *arg)
{
    bx_req *q = arg;
    bx_reactor *r = q->owner;
    switch (st) {
    case BX_EX_PARKED:
        on_hold(ex, q);
        if (r->stopping) {
            bx_exchange_shutdown(ex);
            return;
        }
        arm_parked(r, q);
        if (!q->timer)
            bx_exchange_expire(ex);
        return;
    case BX_EX_REPLY:
        if (bx_transport_reply(r->cfg, q, ex) == 0)
            bx_exchange_confirm(ex);
        else
            bx_warn("reply not handed to the web server (connection gone): delivered messages stay in flight");
        break;
    case BX_EX_HTTP_ERROR:
        bx_transport_error(r->cfg, q, bx_exchange_http_status(ex), "superseded by a newer /meta/connect");
        break;
    case BX_EX_GONE:
        req_done(r, q, 0);
        return;
    }
    req_done(r, q, 1);
}

/* ---- metrics ---------------------------------------------------------------- */

static void metrics_answer(bx_reactor *r, bx_req *q, const redisReply *broker)
{
    bx_store_stats st;
    bx_store_get_stats(r->store, &st);
    bx_metrics_input in = { r->worker, &st, (long)bx_parked_count(r->parked),
                            (long)bx_dispatch_live(r->d), broker, bx_counters_get() };
    size_t len;
    char *text = bx_metrics_render(&in, &len);
    if (text)
        bx_req_respond(q, 200, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n", text, len);
    else
        bx_transport_error(r->cfg, q, 500, "out of memory");
    free(text);
    req_done(r, q, 1);
}

static void metrics_done(const redisReply *rep, const char *err, void *arg)
{
    bx_req *q = arg;
    bx_reactor *r = q->owner;
    r->metrics_pending--;
    if (!rep)
        bx_debug("metrics: bx_stats failed: %s", err ? err : "?");
    metrics_answer(r, q, rep);
}

/* GET metricsPath: allowed addresses only; broker counters when Redis answers, else without. */
static int metrics_request(bx_reactor *r, bx_req *q)
{
    const char *path = r->cfg->metricsPath;
    if (!path || !*path || !q->path || strcmp(q->path, path) != 0 || strcmp(q->method, "GET") != 0)
        return 0;
    if (!bx_metrics_allowed(r->cfg->metricsAllowedAddresses, q->remote_addr)) {
        bx_debug("metrics: %s not in metricsAllowedAddresses: 403", q->remote_addr ? q->remote_addr : "(no REMOTE_ADDR)");
        bx_transport_error(r->cfg, q, 403, "Forbidden");
        req_done(r, q, 1);
        return 1;
    }
    char err[160];
    if (bx_store_fcall(r->store, "bx_stats", 0, NULL, NULL, metrics_done, q, err, sizeof err) == 0)
        r->metrics_pending++;
    else
        metrics_answer(r, q, NULL);
    return 1;
}

/* ---- incoming requests ------------------------------------------------------ */

static void handle(bx_reactor *r, bx_req *q)
{
    bx_batch batch;
    const char *reason = "";
    q->owner = r;
    if (metrics_request(r, q))
        return;
    int rc = bx_transport_decode(r->cfg, q, &batch, &reason);
    if (rc == 1) {
        bx_debug("%s %s: %s", q->method, q->query, reason);
        req_done(r, q, 1);
        return;
    }
    if (rc) {
        /* hostile or broken input: one line each at warn, at most REFUSALS_LOGGED per 10 s
         * (one bad client cannot fill the log), the rest at debug */
        long long now = now_ms();
        if (now - r->refusal_window >= 10000) {
            if (r->refusals_quiet)
                bx_warn("%d more refusals in the last 10 s were logged at debug", r->refusals_quiet);
            r->refusal_window = now;
            r->refusals_loud = r->refusals_quiet = 0;
        }
        int loud = r->refusals_loud < REFUSALS_LOGGED;
        if (loud)
            r->refusals_loud++;
        else
            r->refusals_quiet++;
        bx_log(loud ? BX_LOG_WARN : BX_LOG_DEBUG, "%s request refused with HTTP %d: %s", q->method, rc, reason);
        bx_transport_error(r->cfg, q, rc, rc == 400 && strcmp(reason, "Unknown Bayeux Transport") == 0
                                              ? reason : rc >= 500 ? "Internal Server Error" : "Bad Request");
        bx_batch_free(&batch);
        req_done(r, q, 1);
        return;
    }
    char *browser = bx_req_cookie(q, r->cfg->browserCookieName);
    bx_request_info info = { q->transport, 1, browser };
    bx_exchange_hooks hooks = { on_hold, on_state, q };
    q->ex = bx_exchange_new(r->d, &batch, &info, &hooks);
    free(browser);
    if (!q->ex || (q->authorization && bx_exchange_set_authorization(q->ex, q->authorization) < 0)) {
        if (q->ex) {
            bx_exchange_free(q->ex);
            q->ex = NULL;
        }
        bx_transport_error(r->cfg, q, 500, "out of memory");
        req_done(r, q, 1);
        return;
    }
    bx_exchange_start(q->ex); /* q may be gone after this */
}

static void on_queue(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bx_reactor *r = arg;
    if (!bx_store_ready(r->store) && now_ms() - r->started < STARTUP_WAIT_MS) {
        struct timeval tv = tv_ms(20); /* first Redis connection still coming up */
        event_add(r->qev, &tv);
        return;
    }
    pthread_mutex_lock(&r->lock);
    bx_req *q = r->qhead;
    r->qhead = r->qtail = NULL;
    pthread_mutex_unlock(&r->lock);
    while (q) {
        bx_req *next = q->next;
        q->next = NULL;
        handle(r, q);
        q = next;
    }
}

void bx_reactor_submit(bx_reactor *r, bx_req *q)
{
    q->next = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->qtail)
        r->qtail->next = q;
    else
        r->qhead = q;
    r->qtail = q;
    pthread_mutex_unlock(&r->lock);
    event_active(r->qev, EV_READ, 0);
}

void bx_reactor_thread_count(bx_reactor *r, int delta)
{
    pthread_mutex_lock(&r->lock);
    r->threads += delta;
    pthread_mutex_unlock(&r->lock);
}

/* ---- wake-ups ---------------------------------------------------------------- */

static bx_exchange *find(char kind, const char *key, void *arg)
{
    bx_reactor *r = arg;
    bx_req *q = kind == 'c' ? bx_parked_by_cid(r->parked, key) : bx_parked_by_token(r->parked, key);
    return q ? q->ex : NULL;
}

/* Apply fn to every registered exchange (the table may change under fn). */
static void each_parked(bx_reactor *r, void (*fn)(bx_exchange *))
{
    size_t n;
    char **tokens = bx_parked_tokens(r->parked, &n);
    for (size_t i = 0; i < n; i++) {
        bx_req *q = bx_parked_by_token(r->parked, tokens[i]);
        if (q && q->ex)
            fn(q->ex);
        free(tokens[i]);
    }
    free(tokens);
}

static void on_wake(const char *payload, size_t len, void *arg)
{
    bx_reactor *r = arg;
    if (len == 1 && payload[0] == 'r') {
        bx_info("wake-up channel reconnected: re-draining %zu parked connects", bx_parked_count(r->parked));
        each_parked(r, bx_exchange_wake);
        return;
    }
    bx_dispatch_wake(payload, len, find, r);
}

/* ---- sweeper, signals, stop ------------------------------------------------- */

static void sweep_done(const redisReply *rep, const char *err, void *arg)
{
    (void)arg;
    if (!rep)
        bx_debug("sweep failed: %s", err ? err : "?");
    else if (rep->type == REDIS_REPLY_INTEGER && rep->integer > 0)
        bx_debug("sweep removed %lld expired sessions", rep->integer);
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bx_reactor *r = arg;
    char err[160];
    const char *argv[1] = { SWEEP_MAX };
    size_t lens[1] = { strlen(SWEEP_MAX) };
    /* After Redis was away (or at start), clients get one full interval + maxInterval to come back
     * before this worker expires anyone: expiry times kept running while no connect could land. */
    const bx_transport_opts *t = &r->cfg->tr[BX_TR_LONG_POLLING];
    if (bx_store_ready(r->store) && bx_store_ready_for_ms(r->store) >= t->interval + t->maxInterval)
        bx_store_fcall(r->store, "bx_sweep", 1, argv, lens, sweep_done, NULL, err, sizeof err);
}

static void on_stopcheck(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bx_reactor *r = arg;
    pthread_mutex_lock(&r->lock);
    int idle = r->threads == 0 && !r->qhead, threads = r->threads;
    pthread_mutex_unlock(&r->lock);
    if (threads && r->on_stop)
        r->on_stop(r->on_stop_arg); /* again: a thread may have entered accept() after the first signal */
    if (idle && bx_dispatch_live(r->d) == 0 && r->metrics_pending == 0) {
        event_base_loopbreak(r->base);
    } else if (now_ms() > r->deadline) {
        bx_warn("stop: %zu exchanges still alive after %d ms, exiting anyway", bx_dispatch_live(r->d),
                STOP_GRACE_MS);
        event_base_loopbreak(r->base);
    }
}

static void begin_stop(bx_reactor *r, const char *why)
{
    if (r->stopping)
        return;
    r->stopping = 1;
    r->deadline = now_ms() + STOP_GRACE_MS;
    if (!r->cgi)
        bx_info("stopping (%s): no new requests, %zu parked connects answered with reconnect retry", why,
                bx_parked_count(r->parked));
    if (r->on_stop)
        r->on_stop(r->on_stop_arg);
    event_del(r->sweep);
    close_kept(r); /* idle: the web server opens a new connection (to another worker) */
    each_parked(r, bx_exchange_shutdown);
    struct timeval tv = tv_ms(20);
    event_add(r->stopcheck, &tv);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    bx_reactor *r = arg;
    if (sig != SIGHUP) {
        begin_stop(r, sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
    /* SIGHUP: reread the log level from the file and the environment */
    char err[256];
    if (bx_config_reload_log_level(r->conf_path, err, sizeof err) < 0)
        bx_warn("SIGHUP: %s (log level unchanged)", err);
    else
        bx_info("SIGHUP: log level %s", bx_log_level_name((bx_log_level)bx_log_current));
}

/* ---- life cycle --------------------------------------------------------------- */

bx_reactor *bx_reactor_new(const bx_config *cfg, const char *conf_path, const char *worker, int cgi,
                           char *err, size_t errlen)
{
    bx_reactor *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->cfg = cfg;
    r->cgi = cgi;
    r->started = now_ms();
    if (!(r->worker = strdup(worker ? worker : "")) || (conf_path && !(r->conf_path = strdup(conf_path))))
        goto oom;
    if (evthread_use_pthreads() < 0 || !(r->base = event_base_new())) {
        snprintf(err, errlen, "libevent: cannot create the event base");
        goto fail;
    }
    bx_store_opts so = { cfg->redisHost, cfg->redisPort, cfg->redisPrefix, worker };
    if (!(r->store = bx_store_new(r->base, &so, on_wake, r, err, errlen)))
        goto fail;
    if (bx_store_set_sentinels(r->store, cfg->redisSentinels, cfg->redisMasterName, err, errlen) < 0)
        goto fail;
    if (!(r->d = bx_dispatch_new(cfg, r->store, worker, err, errlen)))
        goto fail;
    if (!(r->parked = bx_parked_new()))
        goto oom;
    r->qev = event_new(r->base, -1, 0, on_queue, r);
    r->sweep = event_new(r->base, -1, EV_PERSIST, on_sweep, r);
    r->stopcheck = event_new(r->base, -1, EV_PERSIST, on_stopcheck, r);
    r->sig_term = evsignal_new(r->base, SIGTERM, on_signal, r);
    r->sig_int = evsignal_new(r->base, SIGINT, on_signal, r);
    r->sig_hup = evsignal_new(r->base, SIGHUP, on_signal, r);
    if (!r->qev || !r->sweep || !r->stopcheck || !r->sig_term || !r->sig_int || !r->sig_hup)
        goto oom;
    long period = cfg->sweepPeriod > 0 ? cfg->sweepPeriod : 997;
    struct timeval tv = tv_ms(period);
    if (!cgi)
        event_add(r->sweep, &tv);
    event_add(r->sig_term, NULL);
    event_add(r->sig_int, NULL);
    event_add(r->sig_hup, NULL);
    return r;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    bx_reactor_free(r);
    return NULL;
}

void bx_reactor_on_stop(bx_reactor *r, void (*fn)(void *), void *arg)
{
    r->on_stop = fn;
    r->on_stop_arg = arg;
}

int bx_reactor_run(bx_reactor *r)
{
    return event_base_dispatch(r->base) < 0 ? -1 : 0;
}

/* Teardown of an exchange still parked after the grace period. */
static void drop_parked(bx_reactor *r)
{
    size_t n;
    char **tokens = bx_parked_tokens(r->parked, &n);
    for (size_t i = 0; i < n; i++) {
        bx_req *q = bx_parked_by_token(r->parked, tokens[i]);
        if (q && !(q->ex && bx_exchange_busy(q->ex))) {
            bx_transport_error(r->cfg, q, 503, "worker stopping");
            req_done(r, q, 0);
        }
        free(tokens[i]);
    }
    free(tokens);
}

void bx_reactor_free(bx_reactor *r)
{
    if (!r)
        return;
    r->cgi = 0; /* no begin_stop from req_done during teardown */
    r->stopping = 1;
    if (r->d)
        bx_dispatch_close(r->d);
    if (r->parked)
        drop_parked(r);
    if (r->store)
        bx_store_free(r->store); /* in-flight calls complete now with "broker down" */
    if (r->parked)
        drop_parked(r);
    bx_dispatch_free(r->d);
    for (bx_req *q = r->qhead, *next; q; q = next) {
        next = q->next;
        bx_req_free(q);
    }
    close_kept(r);
    bx_parked_free(r->parked);
    struct event *evs[] = { r->qev, r->sweep, r->stopcheck, r->sig_term, r->sig_int, r->sig_hup };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (evs[i])
            event_free(evs[i]);
    if (r->base)
        event_base_free(r->base);
    pthread_mutex_destroy(&r->lock);
    free(r->conf_path);
    free(r->worker);
    free(r);
}
