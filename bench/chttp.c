/* bench/chttp.c — the bench tools' HTTP/1.1 client connection (see chttp.h). Responses are parsed
 * from a growable read buffer with every length checked: headers up to HEAD_CAP, bodies up to
 * BODY_CAP, chunk-size and trailer lines up to LINE_CAP. A request on a reused keep-alive socket that
 * the server closed before answering anything is retried once on a fresh socket (as browsers do). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "chttp.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define HEAD_CAP (64 * 1024)
#define BODY_CAP (64 * 1024 * 1024)
#define LINE_CAP 1024
#define READ_CAP (HEAD_CAP + 2 * BODY_CAP)   /* chunk framing on top of the body */
#define COOKIE_CAP 8192

/* ---- buffers -------------------------------------------------------------------------------- */

int bx_gbuf_reserve(struct bx_gbuf *b, size_t n, size_t limit) {
  if (n > limit || b->len > limit - n) return -1;
  size_t need = b->len + n + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) {
    fputs("bench: out of memory\n", stderr);
    exit(1);
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

int bx_gbuf_append(struct bx_gbuf *b, const void *d, size_t n, size_t limit) {
  if (bx_gbuf_reserve(b, n, limit) < 0) return -1;
  memcpy(b->p + b->len, d, n);
  b->len += n;
  b->p[b->len] = 0;
  return 0;
}

void bx_gbuf_printf(struct bx_gbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || bx_gbuf_reserve(b, (size_t)n, SIZE_MAX / 2) < 0) {
    fputs("bench: bad format\n", stderr);
    exit(1);
  }
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void bx_gbuf_free(struct bx_gbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

int64_t bx_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- cookie jar ----------------------------------------------------------------------------- */

static size_t trim(const char **s, size_t n) {
  while (n && (**s == ' ' || **s == '\t')) (*s)++, n--;
  while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t')) n--;
  return n;
}

void bx_jar_set(struct bx_jar *j, const char *v, size_t n) {
  const char *semi = memchr(v, ';', n);
  if (semi) n = (size_t)(semi - v);
  n = trim(&v, n);
  const char *eq = memchr(v, '=', n);
  if (!eq || eq == v) return;
  size_t nl = (size_t)(eq - v);
  char *kv = strndup(v, n);
  if (!kv) {
    fputs("bench: out of memory\n", stderr);
    exit(1);
  }
  size_t i;
  for (i = 0; i < j->n; i++)
    if (strncmp(j->kv[i], v, nl) == 0 && j->kv[i][nl] == '=') break;
  if (i < j->n) {
    free(j->kv[i]);
    j->kv[i] = kv;
  } else {
    char **a = realloc(j->kv, (j->n + 1) * sizeof *a);
    if (!a) {
      fputs("bench: out of memory\n", stderr);
      exit(1);
    }
    j->kv = a;
    j->kv[j->n++] = kv;
  }
  j->header.len = 0;
  for (i = 0; i < j->n; i++) {
    /* A server flooding cookies would grow every request: cap the header, drop the rest. */
    if (j->header.len + strlen(j->kv[i]) + 2 > COOKIE_CAP) break;
    bx_gbuf_printf(&j->header, "%s%s", i ? "; " : "", j->kv[i]);
  }
}

void bx_jar_free(struct bx_jar *j) {
  for (size_t i = 0; i < j->n; i++) free(j->kv[i]);
  free(j->kv);
  j->kv = NULL;
  j->n = 0;
  bx_gbuf_free(&j->header);
}

/* ---- connection ----------------------------------------------------------------------------- */

void bx_hconn_init(struct bx_hconn *c, int epfd, const struct sockaddr *addr, socklen_t addrlen, struct bx_jar *jar,
                   bx_hconn_cb cb, void *user) {
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->epfd = epfd;
  c->addr = addr;
  c->addrlen = addrlen;
  c->jar = jar;
  c->cb = cb;
  c->user = user;
}

const char *bx_errname(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "net-error";
}

int bx_tcp_connect(const struct sockaddr *addr, socklen_t addrlen, int epfd, void *ptr, bool *connecting, const char **err) {
  *connecting = false;
  int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = bx_errname(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = ptr};
  int rc = epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  if (rc == 0) rc = connect(fd, addr, addrlen);
  if (rc < 0 && errno != EINPROGRESS) {
    *err = bx_errname(errno);
    close(fd);   /* also leaves the epoll set */
    return -1;
  }
  *connecting = rc < 0;
  return fd;
}

static void drop_socket(struct bx_hconn *c) {
  if (c->fd >= 0) close(c->fd);   /* close() also removes it from the epoll set */
  c->fd = -1;
  c->connecting = c->want_out = false;
  c->in.len = 0;
}

void bx_hconn_close(struct bx_hconn *c) {
  drop_socket(c);
  c->busy = false;
  c->deferred = NULL;
}

void bx_hconn_free(struct bx_hconn *c) {
  bx_hconn_close(c);
  bx_gbuf_free(&c->out);
  bx_gbuf_free(&c->in);
  bx_gbuf_free(&c->body);
}

static void watch(struct bx_hconn *c, bool out) {
  if (c->fd < 0 || out == c->want_out) return;
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(c->epfd, EPOLL_CTL_MOD, c->fd, &ev);
  c->want_out = out;
}

static void send_request(struct bx_hconn *c);

/* Fail the request in flight, or retry it once on a fresh socket (retryable: the peer closed a
 * reused socket before sending anything). */
static void fail(struct bx_hconn *c, const char *err, bool retryable) {
  drop_socket(c);
  if (!c->busy) return;
  if (retryable && c->reused && !c->got && !c->retried &&
      (!strcmp(err, "closed") || !strcmp(err, "ECONNRESET") || !strcmp(err, "EPIPE"))) {
    c->retried = true;
    send_request(c);
    return;
  }
  c->busy = false;
  c->deferred = NULL;
  c->cb(c, err, 0, NULL, 0);
}

int bx_send_all(int fd, const char *p, size_t len, size_t *off, const char **err) {
  while (*off < len) {
    ssize_t n = send(fd, p + *off, len - *off, MSG_NOSIGNAL);
    if (n > 0) {
      *off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return 1;
    } else {
      *err = n < 0 ? bx_errname(errno) : "closed";
      return -1;
    }
  }
  return 0;
}

static void flush(struct bx_hconn *c) {
  const char *err = NULL;
  int r = bx_send_all(c->fd, c->out.p, c->out.len, &c->woff, &err);
  if (r < 0) fail(c, err, true);
  else watch(c, r > 0);
}

/* Open a socket if needed and write the request; failures are deferred to bx_hconn_tick so the
 * callback never runs inside bx_hconn_post. */
static void send_request(struct bx_hconn *c) {
  c->deadline = bx_now_us() + c->timeout_us;
  c->got = false;
  c->woff = 0;
  if (c->fd < 0) {
    c->used = false;
    c->fd = bx_tcp_connect(c->addr, c->addrlen, c->epfd, c, &c->connecting, &c->deferred);
    if (c->fd < 0) {
      c->deadline = 0;
      return;
    }
    c->want_out = true;
  }
  c->reused = c->used;
  c->used = true;
  if (!c->connecting) flush(c);
}

int bx_hconn_post(struct bx_hconn *c, const char *host, const char *path, const char *body, size_t len, int64_t timeout_us) {
  if (c->busy) return -1;
  c->out.len = 0;
  bx_gbuf_printf(&c->out, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json;charset=UTF-8\r\n", path, host);
  if (c->jar && c->jar->header.len) bx_gbuf_printf(&c->out, "Cookie: %s\r\n", c->jar->header.p);
  bx_gbuf_printf(&c->out, "Content-Length: %zu\r\n\r\n", len);
  bx_gbuf_append(&c->out, body, len, SIZE_MAX / 2);
  c->busy = true;
  c->retried = false;
  c->deferred = NULL;
  c->timeout_us = timeout_us;
  send_request(c);
  return 0;
}

void bx_hconn_tick(struct bx_hconn *c, int64_t now) {
  if (!c->busy || now < c->deadline) return;
  fail(c, c->deferred ? c->deferred : "timeout", false);
}

bool bx_http_hname(const char *s, size_t n, const char *name, const char **val, size_t *vlen) {
  size_t k = strlen(name);
  const char *colon = memchr(s, ':', n);
  if (!colon) return false;
  const char *nm = s;
  size_t nn = trim(&nm, (size_t)(colon - s));
  if (nn != k || strncasecmp(nm, name, k) != 0) return false;
  *val = colon + 1;
  *vlen = trim(val, n - (size_t)(colon + 1 - s));
  return true;
}

bool bx_http_has_token(const char *v, size_t n, const char *tok) {
  size_t k = strlen(tok);
  for (size_t i = 0; i + k <= n; i++)
    if (strncasecmp(v + i, tok, k) == 0) return true;
  return false;
}

/* Parse digits (base 10 or 16) into *out, at most max; -1 on no digit, another byte or overflow. */
static int parse_num(const char *v, size_t n, int base, uint64_t max, uint64_t *out) {
  uint64_t x = 0;
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    int d;
    char ch = v[i];
    if (ch >= '0' && ch <= '9') d = ch - '0';
    else if (base == 16 && ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
    else if (base == 16 && ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
    else return -1;
    if (x > (max - (uint64_t)d) / (uint64_t)base) return -1;
    x = x * (uint64_t)base + (uint64_t)d;
  }
  *out = x;
  return 0;
}

/* One response in c->in: 0 = incomplete, 1 = complete (status, body in c->body, *end = bytes used,
 * *close = the server closes after it), -1 = malformed (*err). */
static int parse(struct bx_hconn *c, int *status, size_t *end, bool *close_after, const char **err) {
  const char *b = c->in.p;
  size_t n = c->in.len;
  const char *he = memmem(b, n, "\r\n\r\n", 4);
  if (!he) {
    if (n > HEAD_CAP) return *err = "header-too-large", -1;
    return 0;
  }
  size_t hlen = (size_t)(he - b);
  if (hlen > HEAD_CAP) return *err = "header-too-large", -1;
  if (hlen < 12 || (memcmp(b, "HTTP/1.1 ", 9) != 0 && memcmp(b, "HTTP/1.0 ", 9) != 0)) return *err = "bad-status-line", -1;
  uint64_t st;
  if (parse_num(b + 9, 3, 10, 999, &st) < 0 || (hlen > 12 && b[12] != ' ' && b[12] != '\r')) return *err = "bad-status-line", -1;
  *status = (int)st;
  *close_after = b[7] == '0';
  bool chunked = false, have_len = false;
  uint64_t clen = 0;
  const char *ls = memmem(b, hlen + 2, "\r\n", 2) + 2;
  while (ls < he + 2) {
    const char *le = memmem(ls, (size_t)(he + 2 - ls), "\r\n", 2);
    size_t ln = (size_t)(le - ls), vl;
    const char *v;
    if (bx_http_hname(ls, ln, "content-length", &v, &vl)) {
      uint64_t x;
      if (parse_num(v, vl, 10, BODY_CAP, &x) < 0) return *err = "bad-content-length", -1;
      if (have_len && x != clen) return *err = "bad-content-length", -1;
      have_len = true;
      clen = x;
    } else if (bx_http_hname(ls, ln, "transfer-encoding", &v, &vl)) {
      chunked = bx_http_has_token(v, vl, "chunked");
    } else if (bx_http_hname(ls, ln, "connection", &v, &vl)) {
      if (bx_http_has_token(v, vl, "close")) *close_after = true;
      else if (bx_http_has_token(v, vl, "keep-alive")) *close_after = false;
    }
    ls = le + 2;
  }
  size_t p = hlen + 4;
  c->body.len = 0;
  if (chunked) {
    for (;;) {
      const char *le = memmem(b + p, n - p, "\r\n", 2);
      if (!le) return n - p > LINE_CAP ? (*err = "bad-chunk", -1) : 0;
      size_t ln = (size_t)(le - (b + p));
      if (ln > LINE_CAP) return *err = "bad-chunk", -1;
      const char *semi = memchr(b + p, ';', ln);
      const char *sz = b + p;
      size_t szn = trim(&sz, semi ? (size_t)(semi - sz) : ln);
      uint64_t x;
      if (parse_num(sz, szn, 16, BODY_CAP, &x) < 0) return *err = "bad-chunk", -1;
      size_t d = (size_t)(le + 2 - b);
      if (x == 0) {   /* trailers, then an empty line */
        for (;;) {
          const char *te = memmem(b + d, n - d, "\r\n", 2);
          if (!te) return n - d > HEAD_CAP ? (*err = "bad-trailer", -1) : 0;
          if (te == b + d) {
            *end = d + 2;
            return 1;
          }
          d = (size_t)(te + 2 - b);
        }
      }
      if (n - d < x + 2) return 0;
      if (b[d + x] != '\r' || b[d + x + 1] != '\n') return *err = "bad-chunk", -1;
      if (bx_gbuf_append(&c->body, b + d, x, BODY_CAP) < 0) return *err = "body-too-large", -1;
      p = d + x + 2;
    }
  }
  if (!have_len) {
    if (st / 100 == 1 || st == 204 || st == 304) clen = 0;
    else return *err = "no-content-length", -1;   /* read-until-close bodies: no server here uses them */
  }
  if (n - p < clen) return 0;
  bx_gbuf_append(&c->body, b + p, clen, BODY_CAP);
  *end = p + clen;
  return 1;
}

/* Keep the Set-Cookie values of the complete response head in c->in. */
static void take_cookies(struct bx_hconn *c) {
  const char *b = c->in.p, *he = memmem(b, c->in.len, "\r\n\r\n", 4);
  const char *ls = memmem(b, c->in.len, "\r\n", 2) + 2;
  while (ls < he + 2) {
    const char *le = memmem(ls, (size_t)(he + 2 - ls), "\r\n", 2);
    const char *v;
    size_t vl;
    if (bx_http_hname(ls, (size_t)(le - ls), "set-cookie", &v, &vl)) bx_jar_set(c->jar, v, vl);
    ls = le + 2;
  }
}

static void readable(struct bx_hconn *c) {
  bool eof = false;
  for (;;) {
    if (bx_gbuf_reserve(&c->in, 16384, READ_CAP) < 0) {
      fail(c, "response-too-large", false);
      return;
    }
    ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - 1 - c->in.len, 0);
    if (n > 0) {
      c->in.len += (size_t)n;
      if ((size_t)n < 16384) break;   /* drained for now (level-triggered: more wakes us again) */
    } else if (n == 0) {
      eof = true;
      break;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      fail(c, bx_errname(errno), true);
      return;
    }
  }
  if (!c->busy) {   /* bytes or EOF with nothing asked: the socket is not reusable */
    drop_socket(c);
    return;
  }
  if (c->in.len) c->got = true;
  int status = 0;
  size_t end = 0;
  bool close_after = false;
  const char *err = NULL;
  int r = parse(c, &status, &end, &close_after, &err);
  if (r < 0) {
    fail(c, err, false);
    return;
  }
  if (r == 0) {
    if (eof) fail(c, "closed", true);
    return;
  }
  if (c->jar) take_cookies(c);
  /* Anything after the response is unsolicited: the socket is not reusable either. */
  if (close_after || eof || end < c->in.len) drop_socket(c);
  else c->in.len = 0;
  c->busy = false;
  c->cb(c, NULL, status, c->body.p ? c->body.p : "", c->body.len);
}

void bx_hconn_event(struct bx_hconn *c, uint32_t events) {
  if (c->fd < 0) return;
  if (c->connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int e = 0;
    socklen_t l = sizeof e;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0) e = errno;
    if (e) {
      fail(c, bx_errname(e), false);
      return;
    }
    c->connecting = false;
    if (c->busy) flush(c);
    else watch(c, false);
    if (c->fd < 0) return;
  } else if ((events & EPOLLOUT) && c->busy && c->woff < c->out.len) {
    flush(c);
    if (c->fd < 0) return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) readable(c);
}

/* ---- URLs ----------------------------------------------------------------------------------- */

int bx_url_parse(const char *url, struct bx_url *u, char *err, size_t errlen) {
  memset(u, 0, sizeof *u);
  char *host = NULL;
  if (strncmp(url, "http://", 7) != 0) {
    snprintf(err, errlen, "--url must be http://host[:port]/path (long-polling), got '%s'", url);
    goto fail;
  }
  const char *h = url + 7, *slash = strchr(h, '/');
  size_t hp = slash ? (size_t)(slash - h) : strlen(h);
  if (hp == 0 || hp > 255 || memchr(h, '@', hp)) {
    snprintf(err, errlen, "--url '%s' has no usable host", url);
    goto fail;
  }
  u->hostport = strndup(h, hp);
  u->path = strdup(slash ? slash : "/");
  host = strdup(u->hostport);
  if (!u->hostport || !u->path || !host) {
    snprintf(err, errlen, "out of memory");
    goto fail;
  }
  char *frag = strchr(u->path, '#');
  if (frag) *frag = '\0';
  for (const char *p = u->path; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f) {
      snprintf(err, errlen, "--url path must not contain spaces or control characters");
      goto fail;
    }
  char *port = NULL;
  if (host[0] == '[') {   /* [IPv6]:port */
    char *rb = strchr(host, ']');
    if (!rb || (rb[1] && rb[1] != ':')) {
      snprintf(err, errlen, "--url '%s': bad [IPv6] host", url);
      goto fail;
    }
    if (rb[1] == ':') port = rb + 2;
    *rb = '\0';
    memmove(host, host + 1, strlen(host + 1) + 1);
  } else if ((port = strchr(host, ':')) != NULL) {
    *port++ = '\0';
  }
  if (port && (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 || atoi(port) < 1 ||
               atoi(port) > 65535)) {
    snprintf(err, errlen, "--url '%s': bad port", url);
    goto fail;
  }
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  int rc = getaddrinfo(host, port ? port : "80", &hints, &ai);
  if (rc) {
    snprintf(err, errlen, "--url host '%s': %s", host, gai_strerror(rc));
    goto fail;
  }
  memcpy(&u->addr, ai->ai_addr, ai->ai_addrlen);
  u->addrlen = ai->ai_addrlen;
  freeaddrinfo(ai);
  free(host);
  return 0;
fail:
  free(host);
  bx_url_free(u);
  return -1;
}

void bx_url_free(struct bx_url *u) {
  free(u->hostport);
  free(u->path);
  u->hostport = u->path = NULL;
}
