/* server.h — the bayeux-ws process: listener, store, dispatch, wake-ups, signals, stop.
 *
 * One libevent base carries everything: the store's two Redis connections, every
 * WebSocket connection, every held /meta/connect timer. The struct is visible to
 * conn.c, which reads cfg, d, parked and stopping and links itself into conns. */
#ifndef BX_WS_SERVER_H
#define BX_WS_SERVER_H

#include <stddef.h>

#include "config.h"
#include "dispatch.h"
#include "store.h"
#include "../fcgi/parked.h"

struct event_base;
struct evconnlistener;
struct event;
typedef struct bx_ws_conn bx_ws_conn;

typedef struct bx_ws_server {
    const bx_config *cfg;
    const char *conf_path;    /* for SIGHUP (log level); NULL: none */
    struct event_base *base;
    bx_store *store;
    bx_dispatch *d;
    bx_parked *parked;        /* held connects by clientId and token → struct wsx (conn.c) */
    struct evconnlistener *lis;
    struct event *sig_term, *sig_int, *sig_hup, *stopcheck;
    struct event *confirm_flush; /* sends the confirms gathered in one loop pass */
    bx_ws_conn *conns;        /* every open connection (linked by conn.c) */
    size_t n_conns;
    unsigned long next_conn_id;
    int stopping;
    long long deadline;
} bx_ws_server;

/* Listen on cfg->wsListen, connect the store (wake channel of worker), install SIGTERM/SIGINT (stop)
 * and SIGHUP (reread logLevel from conf_path) handlers. cfg and conf_path (may be NULL) are borrowed
 * and must outlive the server. NULL + err on failure. */
bx_ws_server *bx_ws_server_new(const bx_config *cfg, const char *conf_path, const char *worker, char *err,
                               size_t errlen);
/* Run until SIGTERM/SIGINT: then close every connection with 1001 and wait for pending broker
 * calls (bounded). 0 clean, -1 loop error. */
int bx_ws_server_run(bx_ws_server *s);
/* Free everything (after run returned). */
void bx_ws_server_free(bx_ws_server *s);

#endif
