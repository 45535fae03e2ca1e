/* main.c — bayeux-ws: options, configuration, logging; the server does the rest.
 *
 *   bayeux-ws [-c bayeux.conf] [-l host:port]
 *
 * nginx proxies WebSocket upgrades of the Bayeux URL here (same URL as long-polling).
 * It shares the dispatch pipeline and the broker with the FastCGI workers, so a
 * session lives on whichever transport carries its next message. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "clientid.h"
#include "config.h"
#include "log.h"
#include "server.h"

int main(int argc, char **argv)
{
    const char *path = NULL, *listen = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "c:l:h")) != -1) {
        if (opt == 'c')
            path = optarg;
        else if (opt == 'l')
            listen = optarg;
        else {
            fprintf(stderr, "usage: bayeux-ws [-c bayeux.conf] [-l host:port]   (default ws.listen of the conf)\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-write is an error return, not a death */
    json_object_seed(0);
    bx_config cfg;
    char err[512], id[BX_CLIENTID_LEN + 1], worker[BX_CLIENTID_LEN + 8];
    if (bx_config_defaults(&cfg) < 0)
        return 2;
    if ((path && bx_config_load_file(&cfg, path, 1, err, sizeof err) < 0) || bx_config_apply_env(&cfg, err, sizeof err) < 0 ||
        (listen && bx_config_set(&cfg, "ws.listen", listen, err, sizeof err) < 0)) {
        fprintf(stderr, "bayeux-ws: %s\n", err);
        bx_config_free(&cfg);
        return 2;
    }
    bx_log_level lvl = BX_LOG_INFO;
    if (bx_log_parse_level(cfg.logLevel, &lvl) < 0)
        fprintf(stderr, "bayeux-ws: unknown logLevel '%s', using info\n", cfg.logLevel);
    bx_log_open("bayeux-ws", lvl, cfg.logSyslog);
    if (!bx_config_transport_allowed(&cfg, BX_TR_WEBSOCKET))
        bx_warn("'websocket' is not in allowedTransports: handshake replies will not offer it");
    /* the wake-up channel name: random, so several bayeux-ws (and workers) never share one */
    if (bx_clientid_new(id, sizeof id, err, sizeof err) < 0) {
        bx_error("worker id: %s", err);
        bx_config_free(&cfg);
        return 1;
    }
    snprintf(worker, sizeof worker, "ws-%s", id);
    bx_ws_server *s = bx_ws_server_new(&cfg, path, worker, err, sizeof err);
    int rc = 1;
    if (!s) {
        bx_error("start: %s", err);
    } else {
        bx_info("bayeux-ws %s listening on %s (timeout %ld ms, maxMessageSize %ld, idleTimeout %ld ms)", worker,
                cfg.wsListen, cfg.tr[BX_TR_WEBSOCKET].timeout, cfg.tr[BX_TR_WEBSOCKET].maxMessageSize,
                cfg.wsIdleTimeout);
        rc = bx_ws_server_run(s) < 0 ? 1 : 0;
        bx_ws_server_free(s);
        bx_info("bayeux-ws %s stopped", worker);
    }
    bx_config_free(&cfg);
    return rc;
}
