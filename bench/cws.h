/* bench/cws.h — a small non-blocking WebSocket client for the C load generator (bench/cgen.c): the
 * RFC 6455 opening handshake is done here (no extension offered, Sec-WebSocket-Accept checked), framing
 * and client masking by wslay's event API; one connection per struct bx_ws, driven by the caller's epoll
 * loop (data.ptr = the struct bx_ws). Text messages only; a message longer than the limit given to
 * bx_ws_init fails the connection (wslay closes it with 1009). Every failure reaches the state callback
 * exactly once per opened connection (never a hang: the opening handshake has a deadline). */
#ifndef BX_CWS_H
#define BX_CWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "chttp.h"

struct bx_ws;
/* A whole text message, len bytes (not NUL-terminated), valid only during the call. The callback may
 * send on w, or close it (the close takes effect when the callback returns; later messages of the same
 * read are dropped); it must not free w. */
typedef void (*bx_ws_msg_cb)(struct bx_ws *w, const char *msg, size_t len);
/* err NULL: the connection is open (bx_ws_send_text works from now on). Otherwise it failed or the peer
 * closed it; err names why ("ECONNREFUSED", "timeout", "closed", "upgrade-http-404", "ws-close-1009",
 * ...; a static string). w is already idle then, so the callback may bx_ws_open it again. */
typedef void (*bx_ws_state_cb)(struct bx_ws *w, const char *err);

enum bx_ws_state { BX_WS_IDLE, BX_WS_CONNECTING, BX_WS_UPGRADING, BX_WS_OPEN };

struct bx_ws {
  int fd, epfd;
  const struct sockaddr *addr;
  socklen_t addrlen;
  enum bx_ws_state state;
  wslay_event_context_ptr ctx;   /* while open */
  bx_ws_msg_cb on_msg;
  bx_ws_state_cb on_state;
  void *user;
  size_t msg_limit;
  struct bx_gbuf out, in;   /* upgrade request; upgrade response, then the frame bytes that followed it */
  size_t woff, ioff;        /* bytes of out written; bytes of in handed to wslay */
  char accept[32];          /* the Sec-WebSocket-Accept we expect */
  char errbuf[40];          /* err when it carries a number ("upgrade-http-404") */
  int64_t deadline;         /* of the opening handshake; 0 once open */
  const char *err;          /* why it failed, when deferred (or seen inside a wslay callback) */
  bool deferred;            /* a failure waits to be reported (bx_ws_event or bx_ws_tick) */
  bool want_out, in_recv, doomed;   /* doomed: closed inside a message callback */
};

/* Set up w (no socket yet); addr must outlive w. msg_limit bounds one received message. */
void bx_ws_init(struct bx_ws *w, int epfd, const struct sockaddr *addr, socklen_t addrlen, size_t msg_limit,
                bx_ws_msg_cb on_msg, bx_ws_state_cb on_state, void *user);
/* Connect and send "GET path" with Host: host and the upgrade headers; the state callback runs later
 * (open, or a failure at the latest timeout_us from now; never inside this call). -1 when w is not idle
 * (or is closing inside a message callback), 0 otherwise. */
int bx_ws_open(struct bx_ws *w, const char *host, const char *path, int64_t timeout_us);
/* Queue one text message (wslay copies it) and start sending it. -1 when w is not open. A send failure
 * is reported through the state callback later, never inside this call. */
int bx_ws_send_text(struct bx_ws *w, const char *data, size_t len);
/* Handle epoll events for w. */
void bx_ws_event(struct bx_ws *w, uint32_t events);
/* Report an expired opening handshake or a deferred failure through the state callback. */
void bx_ws_tick(struct bx_ws *w, int64_t now);
/* Send a close frame if it can go at once, then drop the socket; no callback. Inside a message callback
 * the drop waits until the callback returns. */
void bx_ws_close(struct bx_ws *w);
/* Close and free the buffers (not inside a callback). */
void bx_ws_free(struct bx_ws *w);

#endif
