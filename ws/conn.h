/* conn.h — one WebSocket connection: the upgrade, wslay framing, and the exchanges its
 * frames started.
 *
 * Each inbound text frame (a JSON array of Bayeux messages) becomes one exchange of the
 * shared pipeline (dispatch.h, transport websocket, no HTTP rules); its replies go back in
 * one frame, deliveries before them ws.messagesPerFrame per frame (a frame with a /meta/connect
 * among other messages runs as up to three exchanges so the connect can be held). A held
 * /meta/connect stays with its connection until answered, superseded (dropped silently, as
 * CometD) or the connection ends (unparked, queue kept for the next connection of that session);
 * meanwhile messages published to its session are pushed (bx_push) and confirmed once written. */
#ifndef BX_WS_CONN_H
#define BX_WS_CONN_H

#include <stdint.h>
#include <event2/util.h>

#include "server.h"

/* Serve the accepted socket fd (owned from now on, closed on every path); peer is copied
 * for the log. NULL on OOM (fd closed). */
bx_ws_conn *bx_ws_conn_new(bx_ws_server *s, evutil_socket_t fd, const char *peer);
/* Every connection of s: send a close frame with code (1001 at shutdown), then free each once
 * it is written or after a short bound. Held connects are unparked at once (queues kept). */
void bx_ws_conn_close_all(bx_ws_server *s, uint16_t code, const char *reason);
/* Free every connection of s now, without a close frame (exit after the stop deadline). */
void bx_ws_conn_drop_all(bx_ws_server *s);
/* The exchange registered in the parked table under a value of that table (for wake-ups). */
bx_exchange *bx_ws_parked_exchange(void *val);

#endif
