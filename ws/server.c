/* server.c — listener, store, dispatch and the stop sequence of bayeux-ws. */
#include "server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "conn.h"
#include "deflate.h"
#include "log.h"

#define STOP_GRACE_MS 5000 /* close handshakes and broker calls in flight after SIGTERM */
#define BACKLOG 4096
#define ACCEPT_PAUSE_MS 200 /* after accept() failed (out of file descriptors) */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- gathered confirms --------------------------------------------------------- */

/* Written batches are confirmed once per loop pass, in one bx_confirm for every connection. */
static void on_confirm_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bx_dispatch_flush_confirms(((bx_ws_server *)arg)->d);
}

static void confirm_schedule(void *arg)
{
    bx_ws_server *s = arg;
    event_active(s->confirm_flush, 0, 0);
}

/* ---- wake-ups --------------------------------------------------------------- */

static bx_exchange *find(char kind, const char *key, void *arg)
{
    bx_ws_server *s = arg;
    return bx_ws_parked_exchange(kind == 'c' ? bx_parked_by_cid(s->parked, key) : bx_parked_by_token(s->parked, key));
}

static void on_wake(const char *payload, size_t len, void *arg)
{
    bx_ws_server *s = arg;
    if (len == 1 && payload[0] == 'r') { /* wake-ups may have been lost: re-drain every held connect (a
                                           * drain, not a push: a lost pushed batch must not be overtaken) */
        size_t n;
        char **tokens = bx_parked_tokens(s->parked, &n);
        bx_info("wake-up channel reconnected: re-draining %zu held connects", n);
        for (size_t i = 0; i < n; i++) {
            bx_exchange *ex = find('t', tokens[i], s);
            if (ex)
                bx_exchange_resync(ex);
            free(tokens[i]);
        }
        free(tokens);
        return;
    }
    bx_dispatch_wake(payload, len, find, s);
}

/* ---- accept ------------------------------------------------------------------- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l, (void)salen;
    bx_ws_server *s = arg;
    char host[INET6_ADDRSTRLEN] = "?", peer[64];
    int port = 0, one = 1;
    if (sa->sa_family == AF_INET) {
        evutil_inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)sa)->sin_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)(void *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        evutil_inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)sa)->sin6_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)(void *)sa)->sin6_port);
    }
    snprintf(peer, sizeof peer, "%s:%d", host, port);
    if (s->stopping) {
        evutil_closesocket(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* frames are small and latency matters */
    evutil_make_socket_nonblocking(fd);
    bx_ws_conn_new(s, fd, peer);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bx_ws_server *s = arg;
    if (!s->stopping)
        evconnlistener_enable(s->lis);
}

/* EMFILE and friends: the pending connection keeps the socket readable, so accepting again at once
 * would spin; pause accepting for ACCEPT_PAUSE_MS (one log line per pause). */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    bx_ws_server *s = arg;
    struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
    bx_warn("accept failed: %s (%zu connections open): pausing accepts for %d ms",
            evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()), s->n_conns, ACCEPT_PAUSE_MS);
    evconnlistener_disable(l);
    if (event_base_once(s->base, -1, EV_TIMEOUT, on_accept_resume, s, &tv) < 0)
        evconnlistener_enable(l);
}

/* "host:port" (IPv6 as [addr]:port) → listener. */
static struct evconnlistener *listen_on(bx_ws_server *s, const char *addr, char *err, size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1]) {
        snprintf(err, errlen, "ws.listen '%s': expected host:port", addr);
        return NULL;
    }
    char host[256];
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)hl, h);
    struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = EVUTIL_AI_PASSIVE };
    struct evutil_addrinfo *ai = NULL;
    int rc = evutil_getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "ws.listen '%s': %s", addr, evutil_gai_strerror(rc));
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(s->base, on_accept, s,
                                                       LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, BACKLOG,
                                                       ai->ai_addr, (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!l) {
        snprintf(err, errlen, "ws.listen '%s': %s", addr, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return NULL;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    return l;
}

/* ---- stop ------------------------------------------------------------------------ */

static void on_stopcheck(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    bx_ws_server *s = arg;
    if (s->n_conns == 0 && bx_dispatch_live(s->d) == 0) {
        event_base_loopbreak(s->base);
    } else if (now_ms() > s->deadline) {
        bx_warn("stop: %zu connections and %zu exchanges still open after %d ms, exiting anyway", s->n_conns,
                bx_dispatch_live(s->d), STOP_GRACE_MS);
        event_base_loopbreak(s->base);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    bx_ws_server *s = arg;
    char err[256];
    if (sig == SIGHUP) {
        if (bx_config_reload_log_level(s->conf_path, err, sizeof err) < 0)
            bx_warn("SIGHUP: %s (log level unchanged)", err);
        else
            bx_info("SIGHUP: log level %s", bx_log_level_name((bx_log_level)bx_log_current));
        return;
    }
    if (s->stopping)
        return;
    s->stopping = 1;
    s->deadline = now_ms() + STOP_GRACE_MS;
    bx_info("stopping (%s): closing %zu connections with 1001, %zu held connects unparked (queues kept)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", s->n_conns, bx_parked_count(s->parked));
    evconnlistener_disable(s->lis);
    bx_ws_conn_close_all(s, 1001, "server shutting down");
    struct timeval tv = { 0, 20000 };
    event_add(s->stopcheck, &tv);
}

/* ---- life cycle ------------------------------------------------------------------- */

bx_ws_server *bx_ws_server_new(const bx_config *cfg, const char *conf_path, const char *worker, char *err,
                               size_t errlen)
{
    bx_ws_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->conf_path = conf_path;
    bx_store_opts so = { cfg->redisHost, cfg->redisPort, cfg->redisPrefix, worker };
    if (!(s->base = event_base_new()) || !(s->parked = bx_parked_new()))
        snprintf(err, errlen, "out of memory");
    else if (!(s->store = bx_store_new(s->base, &so, on_wake, s, err, errlen)) ||
             bx_store_set_sentinels(s->store, cfg->redisSentinels, cfg->redisMasterName, err, errlen) < 0 ||
             !(s->d = bx_dispatch_new(cfg, s->store, worker, err, errlen)) ||
             !(s->lis = listen_on(s, cfg->wsListen, err, errlen)))
        ;
    else if (!(s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s)) ||
             !(s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s)) ||
             !(s->sig_hup = evsignal_new(s->base, SIGHUP, on_signal, s)) ||
             !(s->stopcheck = event_new(s->base, -1, EV_PERSIST, on_stopcheck, s)) ||
             !(s->confirm_flush = event_new(s->base, -1, 0, on_confirm_flush, s)) ||
             event_add(s->sig_term, NULL) < 0 || event_add(s->sig_int, NULL) < 0 || event_add(s->sig_hup, NULL) < 0)
        snprintf(err, errlen, "cannot install signal handlers");
    else {
        bx_dispatch_gather_confirms(s->d, confirm_schedule, s);
        return s;
    }
    bx_ws_server_free(s);
    return NULL;
}

int bx_ws_server_run(bx_ws_server *s)
{
    return event_base_dispatch(s->base) < 0 ? -1 : 0;
}

void bx_ws_server_free(bx_ws_server *s)
{
    if (!s)
        return;
    if (s->lis)
        evconnlistener_free(s->lis);
    bx_ws_conn_drop_all(s);
    if (s->d)
        bx_dispatch_close(s->d); /* pending calls now fail at once: their exchanges end */
    bx_store_free(s->store);     /* runs pending callbacks with NULL */
    if (s->parked && bx_parked_count(s->parked))
        bx_error("%zu held connects still registered at exit", bx_parked_count(s->parked));
    bx_dispatch_free(s->d);
    bx_parked_free(s->parked);
    if (s->sig_term)
        event_free(s->sig_term);
    if (s->sig_int)
        event_free(s->sig_int);
    if (s->sig_hup)
        event_free(s->sig_hup);
    if (s->stopcheck)
        event_free(s->stopcheck);
    if (s->confirm_flush)
        event_free(s->confirm_flush);
    if (s->base)
        event_base_free(s->base);
    bx_ws_deflate_cleanup();
    free(s);
}
