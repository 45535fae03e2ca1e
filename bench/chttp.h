/* bench/chttp.h — a small non-blocking HTTP/1.1 client for the C bench tools (cgen.c, floor.c): one
 * request at a time per keep-alive connection, driven by the caller's epoll loop, Content-Length and
 * chunked bodies, Set-Cookie kept in a per-client jar and sent back. Every request has a deadline;
 * every failure reaches the callback exactly once (never a hang, never a silent drop). */
#ifndef BX_CHTTP_H
#define BX_CHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A growable byte buffer; len bytes used, always NUL-terminated once allocated. */
struct bx_gbuf {
  char *p;
  size_t len, cap;
};

/* Make room for n more bytes (plus the NUL); -1 when len + n would exceed limit. Exits on out of memory. */
int bx_gbuf_reserve(struct bx_gbuf *b, size_t n, size_t limit);
/* Append n bytes; -1 past limit. */
int bx_gbuf_append(struct bx_gbuf *b, const void *d, size_t n, size_t limit);
/* Append printf-formatted text (no limit: only our own text). */
void bx_gbuf_printf(struct bx_gbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees b->p; b is empty afterwards. */
void bx_gbuf_free(struct bx_gbuf *b);

/* Monotonic microseconds (CLOCK_MONOTONIC). */
int64_t bx_now_us(void);

/* A cookie jar: newest name=value per name, joined "a=1; b=2" in header (empty string when none). */
struct bx_jar {
  char **kv;
  size_t n;
  struct bx_gbuf header;
};
/* Keep the name=value of one Set-Cookie value (n bytes). The jar owns its copies; bx_jar_free frees them. */
void bx_jar_set(struct bx_jar *j, const char *v, size_t n);
void bx_jar_free(struct bx_jar *j);

/* An http:// URL resolved for bx_hconn: hostport is the Host header value, path the request target. */
struct bx_url {
  char *hostport, *path;
  struct sockaddr_storage addr;
  socklen_t addrlen;
};
/* Parse and resolve url (http://host[:port]/path, [IPv6] hosts, a "#fragment" dropped). 0, or -1 with
 * err set (the tools print it as a usage error). u's strings are the caller's: bx_url_free. */
int bx_url_parse(const char *url, struct bx_url *u, char *err, size_t errlen);
void bx_url_free(struct bx_url *u);

/* The errno name ("ECONNREFUSED"), a static string. */
const char *bx_errname(int e);
/* A non-blocking TCP_NODELAY socket connecting to addr, registered in epfd (EPOLLIN | EPOLLOUT, data.ptr
 * = ptr). The fd (the caller closes it), *connecting true while the connect is in progress; or -1 with
 * *err set (a static string). */
int bx_tcp_connect(const struct sockaddr *addr, socklen_t addrlen, int epfd, void *ptr, bool *connecting, const char **err);
/* Write p[*off, len) to non-blocking fd, advancing *off: 0 all written, 1 the socket is full (wait for
 * EPOLLOUT), -1 failed with *err set (a static string). */
int bx_send_all(int fd, const char *p, size_t len, size_t *off, const char **err);
/* Does header line [s, s+n) (no CRLF) have this name, case-insensitively? Sets *val and *vlen to its trimmed value. */
bool bx_http_hname(const char *s, size_t n, const char *name, const char **val, size_t *vlen);
/* Does header value v (n bytes) contain tok, case-insensitively? */
bool bx_http_has_token(const char *v, size_t n, const char *tok);

struct bx_hconn;
/* Completion: err NULL and status/body on a full response, else err names the failure ("timeout",
 * "closed", "ECONNREFUSED", "bad-chunk", ...) and body is NULL. body stays valid until the next
 * request on c or bx_hconn_free; the callback may post the next request on c or close it. */
typedef void (*bx_hconn_cb)(struct bx_hconn *c, const char *err, int status, const char *body, size_t len);

struct bx_hconn {
  int fd, epfd;
  const struct sockaddr *addr;
  socklen_t addrlen;
  struct bx_jar *jar;   /* cookies received are kept here; may be NULL */
  bx_hconn_cb cb;
  void *user;
  bool connecting, used, busy, reused, got, retried, want_out;
  const char *deferred;   /* a failure found while sending, reported by bx_hconn_tick */
  struct bx_gbuf out, in, body;
  size_t woff;
  int64_t deadline, timeout_us;
};

/* Set up c (no socket yet); addr must outlive c. */
void bx_hconn_init(struct bx_hconn *c, int epfd, const struct sockaddr *addr, socklen_t addrlen, struct bx_jar *jar,
                   bx_hconn_cb cb, void *user);
/* POST body (len bytes) to path with the jar's cookies. -1 when a request is already in flight on c
 * (nothing sent); otherwise 0 and the callback runs later, at the latest timeout_us from now. */
int bx_hconn_post(struct bx_hconn *c, const char *host, const char *path, const char *body, size_t len, int64_t timeout_us);
/* Handle epoll events for c (the caller registered data.ptr = c). */
void bx_hconn_event(struct bx_hconn *c, uint32_t events);
/* Report a deadline passed (or a deferred send failure) through the callback. */
void bx_hconn_tick(struct bx_hconn *c, int64_t now);
/* Drop the socket; a request in flight is abandoned without its callback. */
void bx_hconn_close(struct bx_hconn *c);
/* Close and free the buffers. */
void bx_hconn_free(struct bx_hconn *c);

#endif
