/* bench/cws.c — the bench tools' WebSocket client connection (see cws.h). The upgrade response head is
 * read into a growable buffer of at most HEAD_CAP bytes; the bytes that followed it are frames, handed to
 * wslay before anything read from the socket. Failures found where the owner's callback must not run
 * (inside bx_ws_open / bx_ws_send_text, inside wslay) are deferred to the next event or tick. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cws.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define HEAD_CAP (16 * 1024)
static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Masking keys and Sec-WebSocket-Key bytes: RFC 6455 wants them unpredictable to the peer's
 * intermediaries; a benchmark against its own server only needs them to vary (xorshift64). */
static uint64_t prng;
static void fill_random(uint8_t *buf, size_t len) {
  if (!prng) prng = (uint64_t)bx_now_us() * 0x9E3779B97F4A7C15ull | 1;
  for (size_t i = 0; i < len; i++) {
    prng ^= prng << 13;
    prng ^= prng >> 7;
    prng ^= prng << 17;
    buf[i] = (uint8_t)(prng >> 24);
  }
}

void bx_ws_init(struct bx_ws *w, int epfd, const struct sockaddr *addr, socklen_t addrlen, size_t msg_limit,
                bx_ws_msg_cb on_msg, bx_ws_state_cb on_state, void *user) {
  memset(w, 0, sizeof *w);
  w->fd = -1;
  w->epfd = epfd;
  w->addr = addr;
  w->addrlen = addrlen;
  w->msg_limit = msg_limit;
  w->on_msg = on_msg;
  w->on_state = on_state;
  w->user = user;
}

static void drop(struct bx_ws *w) {
  if (w->ctx) wslay_event_context_free(w->ctx);
  w->ctx = NULL;
  if (w->fd >= 0) close(w->fd);   /* also leaves the epoll set */
  w->fd = -1;
  w->state = BX_WS_IDLE;
  w->out.len = w->in.len = w->woff = w->ioff = 0;
  w->deadline = 0;
  w->err = NULL;
  w->deferred = w->want_out = w->doomed = false;
}

/* The owner hears of it last: it may open w again from its callback. */
static void fail(struct bx_ws *w, const char *err) {
  drop(w);
  w->on_state(w, err);
}

static void defer(struct bx_ws *w, const char *err) {
  if (!w->deferred) w->err = err;
  w->deferred = true;
}

static void watch(struct bx_ws *w, bool out) {
  if (w->fd < 0 || out == w->want_out) return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = w};
  epoll_ctl(w->epfd, EPOLL_CTL_MOD, w->fd, &ev);
  w->want_out = out;
}

/* ---- wslay callbacks ---------------------------------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
  (void)flags;
  struct bx_ws *w = user;
  if (w->doomed || w->deferred) {   /* stop reading: the owner closed w, or it failed */
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  if (w->ioff < w->in.len) {   /* frames that came with the upgrade response */
    size_t n = w->in.len - w->ioff < len ? w->in.len - w->ioff : len;
    memcpy(buf, w->in.p + w->ioff, n);
    w->ioff += n;
    if (w->ioff == w->in.len) w->in.len = w->ioff = 0;
    return (ssize_t)n;
  }
  for (;;) {
    ssize_t n = recv(w->fd, buf, len, 0);
    if (n > 0) return n;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
    w->err = n == 0 ? "closed" : bx_errname(errno);
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user) {
  struct bx_ws *w = user;
  for (;;) {
    ssize_t n = send(w->fd, data, len, MSG_NOSIGNAL | (flags & WSLAY_MSG_MORE ? MSG_MORE : 0));
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
    w->err = bx_errname(errno);
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
  (void)ctx;
  (void)user;
  fill_random(buf, len);
  return 0;
}

static void msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user) {
  (void)ctx;
  struct bx_ws *w = user;
  if (w->doomed || w->deferred) return;
  if (arg->opcode == WSLAY_TEXT_FRAME) w->on_msg(w, (const char *)arg->msg, arg->msg_length);
  else if (arg->opcode == WSLAY_BINARY_FRAME) defer(w, "ws-binary-frame");   /* Bayeux is text */
  /* close: wslay answers it (seen in settle()); ping: wslay answers it; pong: nothing to do */
}

/* ---- open connection ---------------------------------------------------------------------------- */

/* Once neither side wants more (the close handshake is over, or wslay gave up), the connection is done. */
static void settle(struct bx_ws *w) {
  if (wslay_event_want_read(w->ctx) || wslay_event_want_write(w->ctx)) return;
  if (wslay_event_get_close_received(w->ctx)) {
    defer(w, "ws-closed");
  } else {
    snprintf(w->errbuf, sizeof w->errbuf, "ws-close-%u", (unsigned)wslay_event_get_status_code_sent(w->ctx));
    defer(w, w->errbuf);   /* 1009: a message over the limit; 1002: a protocol error */
  }
}

static void pump_send(struct bx_ws *w) {
  if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0) {
    defer(w, w->err ? w->err : "ws-send-error");
    return;
  }
  watch(w, wslay_event_want_write(w->ctx));
  settle(w);
}

/* Best effort: a close frame if it can be written now; the peer sees the socket close either way. */
static void goodbye(struct bx_ws *w) {
  if (w->state == BX_WS_OPEN && !w->deferred && wslay_event_queue_close(w->ctx, 1000, NULL, 0) == 0)
    wslay_event_send(w->ctx);
  drop(w);
}

static void pump_recv(struct bx_ws *w) {
  w->in_recv = true;
  int rc = wslay_event_recv(w->ctx);
  w->in_recv = false;
  if (w->doomed) {
    goodbye(w);
    return;
  }
  if (rc != 0) {
    defer(w, w->err ? w->err : "ws-recv-error");
    return;
  }
  if (!w->deferred) pump_send(w);   /* what the message callbacks queued, pongs, the answer to a close */
}

/* ---- opening handshake -------------------------------------------------------------------------- */

static void flush_upgrade(struct bx_ws *w) {
  const char *err = NULL;
  int r = bx_send_all(w->fd, w->out.p, w->out.len, &w->woff, &err);
  if (r < 0) defer(w, err);
  else watch(w, r > 0);
}

int bx_ws_open(struct bx_ws *w, const char *host, const char *path, int64_t timeout_us) {
  if (w->state != BX_WS_IDLE || w->doomed) return -1;
  uint8_t key[16];
  unsigned char key64[32], md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  char cat[sizeof key64 + sizeof GUID];
  fill_random(key, sizeof key);
  EVP_EncodeBlock(key64, key, (int)sizeof key);   /* 24 characters */
  int catlen = snprintf(cat, sizeof cat, "%s%s", (const char *)key64, GUID);
  w->state = BX_WS_CONNECTING;
  w->deadline = bx_now_us() + timeout_us;
  if (!EVP_Digest(cat, (size_t)catlen, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
    defer(w, "sha1-failed");
    return 0;
  }
  EVP_EncodeBlock((unsigned char *)w->accept, md, 20);   /* 28 characters */
  w->out.len = w->woff = 0;
  bx_gbuf_printf(&w->out,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 path, host, (const char *)key64);
  bool connecting;
  const char *err = NULL;
  w->fd = bx_tcp_connect(w->addr, w->addrlen, w->epfd, w, &connecting, &err);
  if (w->fd < 0) {
    defer(w, err);
    return 0;
  }
  w->want_out = true;
  if (!connecting) {
    w->state = BX_WS_UPGRADING;
    flush_upgrade(w);
  }
  return 0;
}

/* Check the complete response head (hlen bytes, CRLFCRLF excluded); NULL when it accepts the upgrade. */
static const char *check_upgrade(struct bx_ws *w, size_t hlen) {
  const char *b = w->in.p, *he = b + hlen;
  if (hlen < 12 || memcmp(b, "HTTP/1.1 ", 9) != 0) return "upgrade-bad-status-line";
  if (memcmp(b + 9, "101", 3) != 0) {
    snprintf(w->errbuf, sizeof w->errbuf, "upgrade-http-%.3s", b + 9);
    for (char *p = w->errbuf; *p; p++)
      if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
    return w->errbuf;
  }
  bool upgrade = false, connection = false, accept = false;
  const char *ls = memchr(b, '\n', hlen);
  while (ls && ++ls < he) {
    const char *le = memmem(ls, (size_t)(he - ls), "\r\n", 2);
    size_t ln = le ? (size_t)(le - ls) : (size_t)(he - ls), vl;
    const char *v;
    if (bx_http_hname(ls, ln, "upgrade", &v, &vl)) upgrade = bx_http_has_token(v, vl, "websocket");
    else if (bx_http_hname(ls, ln, "connection", &v, &vl)) connection = bx_http_has_token(v, vl, "upgrade");
    else if (bx_http_hname(ls, ln, "sec-websocket-accept", &v, &vl))
      accept = vl == strlen(w->accept) && !memcmp(v, w->accept, vl);
    else if (bx_http_hname(ls, ln, "sec-websocket-extensions", &v, &vl) && vl)
      return "upgrade-unasked-extension";   /* none was offered */
    ls = le ? le + 1 : NULL;
  }
  if (!upgrade || !connection) return "upgrade-not-websocket";
  if (!accept) return "upgrade-bad-accept";
  return NULL;
}

/* Read the upgrade response; on a complete head, check it and start wslay. true once open. */
static bool read_upgrade(struct bx_ws *w) {
  const char *he = NULL;
  while (!he) {
    if (bx_gbuf_reserve(&w->in, 4096, 2 * HEAD_CAP) < 0) {
      defer(w, "upgrade-too-large");
      return false;
    }
    ssize_t n = recv(w->fd, w->in.p + w->in.len, w->in.cap - 1 - w->in.len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (n <= 0) {
      defer(w, n == 0 ? "closed" : bx_errname(errno));
      return false;
    }
    w->in.len += (size_t)n;
    he = memmem(w->in.p, w->in.len, "\r\n\r\n", 4);
    if ((he ? (size_t)(he - w->in.p) : w->in.len) > HEAD_CAP) {
      defer(w, "upgrade-too-large");
      return false;
    }
  }
  size_t hlen = (size_t)(he - w->in.p);
  const char *err = check_upgrade(w, hlen);
  if (err) {
    defer(w, err);
    return false;
  }
  static const struct wslay_event_callbacks cbs = {recv_cb, send_cb, genmask_cb, NULL, NULL, NULL, msg_cb};
  if (wslay_event_context_client_init(&w->ctx, &cbs, w) != 0) {
    w->ctx = NULL;
    defer(w, "out-of-memory");
    return false;
  }
  wslay_event_config_set_max_recv_msg_length(w->ctx, (uint64_t)w->msg_limit);
  w->ioff = hlen + 4;   /* what follows the head is frames */
  if (w->ioff == w->in.len) w->in.len = w->ioff = 0;
  w->state = BX_WS_OPEN;
  w->deadline = 0;
  return true;
}

/* ---- the owner's entry points -------------------------------------------------------------------- */

void bx_ws_event(struct bx_ws *w, uint32_t events) {
  if (w->fd < 0) return;
  if (w->state == BX_WS_CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) e = errno;
    if (e) {
      fail(w, bx_errname(e));
      return;
    }
    w->state = BX_WS_UPGRADING;
    flush_upgrade(w);
  } else if (w->state == BX_WS_UPGRADING && (events & EPOLLOUT)) {
    flush_upgrade(w);
  } else if (w->state == BX_WS_OPEN && (events & EPOLLOUT) && !w->deferred) {
    pump_send(w);
  }
  if (!w->deferred && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    if (w->state == BX_WS_UPGRADING && read_upgrade(w)) {
      w->on_state(w, NULL);
      if (w->state != BX_WS_OPEN || w->deferred) return;   /* the owner closed (and maybe reopened) it */
      pump_recv(w);   /* frames that came with the head */
    } else if (w->state == BX_WS_OPEN) {
      pump_recv(w);
    }
  }
  if (w->deferred) fail(w, w->err ? w->err : "ws-error");
}

void bx_ws_tick(struct bx_ws *w, int64_t now) {
  if (w->state == BX_WS_IDLE || w->in_recv) return;
  if (w->deferred) fail(w, w->err ? w->err : "ws-error");
  else if (w->deadline && now >= w->deadline) fail(w, "timeout");
}

int bx_ws_send_text(struct bx_ws *w, const char *data, size_t len) {
  if (w->state != BX_WS_OPEN || w->doomed || w->deferred) return -1;
  struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
  if (wslay_event_queue_msg(w->ctx, &m) != 0) return -1;   /* a close is already queued */
  if (!w->in_recv) pump_send(w);   /* inside wslay_event_recv: pump_recv sends it on return */
  return 0;
}

void bx_ws_close(struct bx_ws *w) {
  if (w->in_recv) w->doomed = true;
  else goodbye(w);
}

void bx_ws_free(struct bx_ws *w) {
  bx_ws_close(w);
  bx_gbuf_free(&w->out);
  bx_gbuf_free(&w->in);
}
