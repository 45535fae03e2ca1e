/* bench/floor.c — the latency-floor probe: a single-threaded C Bayeux long-polling client measuring
 * publish→receive latency at light load, as precisely as the C prototypes that derived the ~0.35 ms
 * floor (shared/limits.md). The Node generator (bench.js) adds its own event-loop hops on both ends.
 *
 * Workload (bench.js's "latency floor" run): CLIENTS clients (2), each with its own cookie jar and two
 * keep-alive HTTP/1.1 connections like a browser (one for /meta/connect, one for the rest), all
 * subscribed to /chat/0; PUBLISHERS of them (default all, round-robin) send single-message publishes
 * at RATE/s for DURATION s. Every message carries {"p":publisher,"s":seq,"t":µs CLOCK_MONOTONIC taken
 * just before write()}; every delivery (on any reply) is timestamped when its last byte is read.
 * Output: a summary on stderr; with --json one line on stdout shaped like bench.js's results.
 * HTTP is bench/chttp.c's client (shared with bench/cgen.c): keep-alive, Content-Length and chunked
 * bodies, a cookie jar per client, capped buffers, a deadline on every request.
 * Exit 0 even when the server failed (the result has "error"), 2 on bad arguments, 1 out of memory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "chttp.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define CHANNEL "/chat/0"

/* ---- options ---------------------------------------------------------------------------------- */

static struct {
  const char *url, *label;
  double rate, duration, drain, connect_timeout, request_timeout, setup_timeout;
  int clients, publishers, size;
  bool json;
  struct bx_url u;   /* parsed --url */
} o;

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec + ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

static void oom(void) {
  fputs("floor: out of memory\n", stderr);
  exit(1);
}

/* ---- counters ------------------------------------------------------------------------------- */

struct lats {   /* latency samples, µs */
  int64_t *v;
  size_t n, cap;
};

static void lats_add(struct lats *l, int64_t us) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 4096;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v) oom();
  }
  l->v[l->n++] = us;
}

static struct {
  uint64_t published, publish_failed, skipped, expected, received, dup, ooo, foreign, connects, rehandshakes;
  uint64_t on_publish_reply;   /* deliveries that came on a publish reply (piggybacked) */
  struct lats lat, lat_others; /* every delivery; those to a client other than the publisher */
  json_t *errors;   /* kind → count */
  char fatal[256];  /* the run's error, "" when none */
} st;

static void count_error(const char *kind) {
  json_t *v = json_object_get(st.errors, kind);
  if (json_object_set_new(st.errors, kind, json_integer(v ? json_integer_value(v) + 1 : 1)) < 0) oom();
}

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ends the run with this error (the first one wins). */
static void fatal(const char *fmt, ...) {
  if (st.fatal[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st.fatal, sizeof st.fatal, fmt, ap);
  va_end(ap);
}

/* ---- connections ---------------------------------------------------------------------------- */

enum req { REQ_NONE, REQ_HANDSHAKE, REQ_SUBSCRIBE, REQ_CONNECT0, REQ_CONNECT, REQ_PUBLISH, REQ_DISCONNECT };

struct client;
struct conn {               /* one of a client's two HTTP connections and the Bayeux request on it */
  struct bx_hconn h;
  struct client *cl;
  enum req req;
  uint64_t pub_seq;         /* REQ_PUBLISH: the sequence number sent */
  char msg_id[24];          /* the Bayeux id of the request's message */
  int64_t t_read;           /* when the response was complete */
};

struct client {
  int idx;
  char *client_id;          /* NULL while not handshaken */
  char *client_id_json;     /* the same as a JSON string, for publish bodies */
  struct bx_jar jar;        /* shared by both connections, like a browser's */
  uint64_t msg_id, seq;
  bool ready, stopped;
  int64_t connect_at;       /* when the connect loop sends its next connect; 0 = not scheduled */
  int64_t handshake_at;     /* when a failed re-handshake is tried again; 0 = not scheduled */
  struct conn cc, pc;       /* connect connection, publish connection */
  /* per publisher: seen[seq] bitmap and the highest seq received */
  uint8_t *seen[MAX_CLIENTS];
  size_t seencap[MAX_CLIENTS];
  int64_t last[MAX_CLIENTS];
};

static int epfd = -1;
static struct client clients[MAX_CLIENTS];

static void on_reply(struct conn *c, const char *err, json_t *msgs);

/* chttp's completion: the status checked, the body parsed as JSON (an object becomes a batch of one). */
static void on_http(struct bx_hconn *h, const char *err, int status, const char *body, size_t len) {
  struct conn *c = h->user;
  c->t_read = bx_now_us();
  if (err) {
    on_reply(c, err, NULL);
    return;
  }
  if (status != 200) {
    char kind[24];
    snprintf(kind, sizeof kind, "http-%d", status);
    on_reply(c, kind, NULL);
    return;
  }
  json_error_t je;
  json_t *j = json_loadb(body, len, 0, &je);
  if (!j) {
    on_reply(c, "bad-json", NULL);
    return;
  }
  if (!json_is_array(j)) {
    json_t *a = json_array();
    if (!a || json_array_append_new(a, j) < 0) oom();
    j = a;
  }
  on_reply(c, NULL, j);
  json_decref(j);
}

/* Starts a request on c (never busy here: each connection carries one request at a time). */
static void conn_post(struct conn *c, enum req req, const char *body, size_t len, double timeout_s) {
  c->req = req;
  if (bx_hconn_post(&c->h, o.u.hostport, o.u.path, body, len, (int64_t)(timeout_s * 1e6)) < 0) {
    c->req = REQ_NONE;
    fatal("internal: a request posted on a busy connection");
  }
}

/* ---- Bayeux --------------------------------------------------------------------------------- */

static enum { P_SETUP, P_WARM, P_PUBLISH, P_DRAIN, P_BYE, P_END } phase;
static int64_t t_phase, t0, t_pub_end, t_last_recv;
static double cpu0;   /* the probe's CPU seconds when publishing started */
static uint64_t pub_due, pub_sent[MAX_CLIENTS];
static int next_publisher;
static char pad[65536];

static void post_json(struct conn *c, enum req req, json_t *msgs, double timeout_s) {
  char *s = json_dumps(msgs, JSON_COMPACT);
  if (!s) oom();
  conn_post(c, req, s, strlen(s), timeout_s);
  free(s);
  json_decref(msgs);
}

static json_t *meta(struct client *cl, struct conn *c, const char *channel) {
  snprintf(c->msg_id, sizeof c->msg_id, "%" PRIu64, ++cl->msg_id);
  json_t *m = json_pack("{s:s, s:s}", "channel", channel, "id", c->msg_id);
  if (!m) oom();
  if (cl->client_id && json_object_set_new(m, "clientId", json_string(cl->client_id)) < 0) oom();
  return m;
}

static json_t *batch1(json_t *m) {
  json_t *a = json_array();
  if (!a || json_array_append_new(a, m) < 0) oom();
  return a;
}

static void handshake(struct client *cl, struct conn *c) {
  free(cl->client_id);
  free(cl->client_id_json);
  cl->client_id = cl->client_id_json = NULL;
  cl->ready = false;
  json_t *m = meta(cl, c, "/meta/handshake");
  if (json_object_set_new(m, "version", json_string("1.0")) < 0 ||
      json_object_set_new(m, "minimumVersion", json_string("1.0")) < 0 ||
      json_object_set_new(m, "supportedConnectionTypes", json_pack("[s]", "long-polling")) < 0)
    oom();
  post_json(c, REQ_HANDSHAKE, batch1(m), o.request_timeout);
}

static void send_connect(struct client *cl, bool first) {
  json_t *m = meta(cl, &cl->cc, "/meta/connect");
  if (json_object_set_new(m, "connectionType", json_string("long-polling")) < 0) oom();
  /* The first connect is not held (CometD's client sends advice.timeout 0). */
  if (first && json_object_set_new(m, "advice", json_pack("{s:i}", "timeout", 0)) < 0) oom();
  post_json(&cl->cc, first ? REQ_CONNECT0 : REQ_CONNECT, batch1(m), first ? o.request_timeout : o.connect_timeout);
}

/* The reply to the request whose id we sent on c, on channel; NULL when absent. A delivery of our
 * own publish (piggybacked on its reply, with data) may carry the same channel and id: not a reply. */
static json_t *find_reply(json_t *msgs, struct conn *c, const char *channel) {
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    if (json_object_get(m, "data") && strncmp(channel, "/meta/", 6) != 0) continue;
    const char *ch = json_string_value(json_object_get(m, "channel"));
    const char *id = json_string_value(json_object_get(m, "id"));
    if (ch && strcmp(ch, channel) == 0 && (!id || strcmp(id, c->msg_id) == 0)) return m;
  }
  return NULL;
}

static bool successful(json_t *m) { return m && json_is_true(json_object_get(m, "successful")); }

/* An integer-valued JSON number within [lo, hi]. */
static bool int_in(json_t *v, double lo, double hi, int64_t *out) {
  if (!json_is_number(v)) return false;
  double d = json_number_value(v);
  if (!(d >= lo && d <= hi) || d != floor(d)) return false;
  *out = (int64_t)d;
  return true;
}

/* Deliveries can ride on any reply (CometD may piggyback them on a publish reply). */
static void take_deliveries(struct client *cl, json_t *msgs, int64_t t_read, bool publish_reply) {
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    const char *ch = json_string_value(json_object_get(m, "channel"));
    json_t *d = json_object_get(m, "data");
    if (!ch || strncmp(ch, "/meta/", 6) == 0 || !d) continue;
    int64_t p, s, t;
    if (!int_in(json_object_get(d, "p"), 0, o.clients - 1, &p) ||
        !int_in(json_object_get(d, "s"), 0, (double)pub_sent[p] - 1, &s) ||
        !int_in(json_object_get(d, "t"), 0, 9e15, &t) || strcmp(ch, CHANNEL) != 0) {
      st.foreign++;
      continue;
    }
    size_t need = (size_t)s / 8 + 1;
    if (need > cl->seencap[p]) {
      size_t cap = cl->seencap[p] ? cl->seencap[p] : 1024;
      while (cap < need) cap *= 2;
      uint8_t *n = realloc(cl->seen[p], cap);
      if (!n) oom();
      memset(n + cl->seencap[p], 0, cap - cl->seencap[p]);
      cl->seen[p] = n;
      cl->seencap[p] = cap;
    }
    uint8_t bit = (uint8_t)(1u << (s % 8));
    if (cl->seen[p][s / 8] & bit) {
      st.dup++;
      continue;
    }
    cl->seen[p][s / 8] |= bit;
    if (s < cl->last[p]) st.ooo++;
    else cl->last[p] = s;
    st.received++;
    t_last_recv = t_read;
    st.on_publish_reply += publish_reply;
    lats_add(&st.lat, t_read - t);
    if (p != cl->idx) lats_add(&st.lat_others, t_read - t);
  }
}

static int clients_ready(void) {
  int n = 0;
  for (int i = 0; i < o.clients; i++) n += clients[i].ready;
  return n;
}

/* A failed connect: follow the advice like CometD's client (handshake, retry after interval, none). */
static void connect_failed(struct client *cl, const char *err, json_t *r) {
  json_t *adv = r ? json_object_get(r, "advice") : NULL;
  const char *reconnect = json_string_value(json_object_get(adv, "reconnect"));
  const char *error = r ? json_string_value(json_object_get(r, "error")) : NULL;
  double interval = json_is_number(json_object_get(adv, "interval")) ? json_number_value(json_object_get(adv, "interval")) : 0;
  char kind[96];
  snprintf(kind, sizeof kind, "connect:%.80s", err ? err : error ? error : "refused");
  count_error(kind);
  if (reconnect && strcmp(reconnect, "none") == 0) {
    cl->stopped = true;
    cl->ready = false;
    fatal("client %d: server advised reconnect none (%s)", cl->idx, error ? error : "no error");
    return;
  }
  if ((reconnect && strcmp(reconnect, "handshake") == 0) || (error && strncmp(error, "402", 3) == 0)) {
    st.rehandshakes++;
    handshake(cl, &cl->cc);   /* cc is free: its connect just came back */
    return;
  }
  cl->connect_at = bx_now_us() + (int64_t)((err ? 200 : (interval > 100 ? interval : 100)) * 1000);
}

static void setup_failed(struct client *cl, const char *what, const char *err, json_t *r) {
  const char *error = r ? json_string_value(json_object_get(r, "error")) : NULL;
  if (phase == P_SETUP) {
    fatal("client %d: %s failed: %s", cl->idx, what, err ? err : error ? error : "refused");
    return;
  }
  char kind[96];
  snprintf(kind, sizeof kind, "rehandshake:%.40s:%.40s", what, err ? err : error ? error : "refused");
  count_error(kind);
  cl->handshake_at = bx_now_us() + 500000;
}

/* What each request is answered on, and its name in error messages. */
static const char *const req_channel[REQ_DISCONNECT + 1] = {[REQ_HANDSHAKE] = "/meta/handshake", [REQ_SUBSCRIBE] = "/meta/subscribe",
                                          [REQ_CONNECT0] = "/meta/connect",     [REQ_CONNECT] = "/meta/connect",
                                          [REQ_PUBLISH] = CHANNEL,              [REQ_DISCONNECT] = "/meta/disconnect"};
static const char *const req_name[REQ_DISCONNECT + 1] = {[REQ_HANDSHAKE] = "handshake", [REQ_SUBSCRIBE] = "subscribe", [REQ_CONNECT0] = "first connect"};

static void on_reply(struct conn *c, const char *err, json_t *msgs) {
  static int transport_failures;   /* in a row, over every connection */
  struct client *cl = c->cl;
  enum req req = c->req;
  c->req = REQ_NONE;
  if (!err || strncmp(err, "http-", 5) == 0 || strcmp(err, "bad-json") == 0) transport_failures = 0;
  else if (++transport_failures >= 10 && phase < P_BYE)
    fatal("server unreachable: %d requests in a row failed, the last with %s", transport_failures, err);
  if (msgs) take_deliveries(cl, msgs, c->t_read, req == REQ_PUBLISH);
  if (phase == P_END || req == REQ_NONE || req == REQ_DISCONNECT) return;
  json_t *r = msgs ? find_reply(msgs, c, req_channel[req]) : NULL;
  const char *id = json_string_value(json_object_get(r, "clientId"));
  bool ok = !err && successful(r) && (req != REQ_HANDSHAKE || id);
  if (!ok && req_name[req]) {   /* a setup step */
    setup_failed(cl, req_name[req], err, r);
    return;
  }
  switch (req) {
  case REQ_HANDSHAKE: {
    cl->client_id = strdup(id);
    cl->client_id_json = json_dumps(json_object_get(r, "clientId"), JSON_ENCODE_ANY);
    if (!cl->client_id || !cl->client_id_json) oom();
    json_t *m = meta(cl, c, "/meta/subscribe");
    if (json_object_set_new(m, "subscription", json_string(CHANNEL)) < 0) oom();
    post_json(c, REQ_SUBSCRIBE, batch1(m), o.request_timeout);
    return;
  }
  case REQ_SUBSCRIBE:
    send_connect(cl, true);
    return;
  case REQ_CONNECT0:
    cl->ready = true;
    send_connect(cl, false);
    return;
  case REQ_CONNECT: {
    if (!ok) {
      connect_failed(cl, err, r);
      return;
    }
    st.connects++;
    if (phase >= P_BYE) return;
    json_t *iv = json_object_get(json_object_get(r, "advice"), "interval");
    double interval = json_is_number(iv) ? json_number_value(iv) : 0;
    if (interval > 0) cl->connect_at = bx_now_us() + (int64_t)(interval * 1000);
    else send_connect(cl, false);
    return;
  }
  case REQ_PUBLISH:
    if (!ok) {
      st.publish_failed++;
      char kind[96];
      const char *error = r ? json_string_value(json_object_get(r, "error")) : NULL;
      snprintf(kind, sizeof kind, "publish:%.80s", err ? err : error ? error : "refused");
      count_error(kind);
      return;
    }
    st.published++;
    st.expected += (uint64_t)o.clients;   /* every client is subscribed to the one room */
    return;
  case REQ_DISCONNECT:
  case REQ_NONE:
    return;
  }
}

/* One publish from the next idle publisher (round-robin); skipped when none is idle. */
static void publish_one(void) {
  static struct bx_gbuf b;
  for (int k = 0; k < o.publishers; k++) {
    struct client *cl = &clients[(next_publisher + k) % o.publishers];
    if (!cl->ready || cl->pc.h.busy) continue;
    next_publisher = (cl->idx + 1) % o.publishers;
    struct conn *c = &cl->pc;
    snprintf(c->msg_id, sizeof c->msg_id, "%" PRIu64, ++cl->msg_id);
    c->pub_seq = cl->seq++;
    pub_sent[cl->idx] = cl->seq;
    b.len = 0;
    int64_t t = bx_now_us();   /* formatting and conn_post take ~1 µs before write() */
    bx_gbuf_printf(&b, "[{\"channel\":\"" CHANNEL "\",\"clientId\":%s,\"id\":\"%s\",\"data\":", cl->client_id_json, c->msg_id);
    size_t data_at = b.len;
    bx_gbuf_printf(&b, "{\"p\":%d,\"s\":%" PRIu64 ",\"t\":%" PRId64 ",\"x\":\"", cl->idx, c->pub_seq, t);
    /* data is padded to SIZE bytes like bench.js's ({"p":..,"x":"xxx"}) */
    size_t dlen = b.len - data_at + 2;
    size_t padn = (size_t)o.size > dlen ? (size_t)o.size - dlen : 0;
    bx_gbuf_printf(&b, "%.*s\"}}]", (int)padn, pad);
    conn_post(c, REQ_PUBLISH, b.p, b.len, o.request_timeout);
    return;
  }
  st.skipped++;
}

static bool publishes_in_flight(void) {
  for (int i = 0; i < o.clients; i++)
    if (clients[i].pc.h.busy && clients[i].pc.req == REQ_PUBLISH) return true;
  return false;
}

static void say_bye(void) {
  for (int i = 0; i < o.clients; i++) {
    struct client *cl = &clients[i];
    cl->connect_at = cl->handshake_at = 0;
    bx_hconn_close(&cl->cc.h);
    if (cl->client_id && !cl->pc.h.busy) post_json(&cl->pc, REQ_DISCONNECT, batch1(meta(cl, &cl->pc, "/meta/disconnect")), 2);
  }
}

/* ---- the run -------------------------------------------------------------------------------- */

static void timeouts(int64_t now) {
  for (int i = 0; i < o.clients; i++) {
    struct conn *cs[2] = {&clients[i].cc, &clients[i].pc};
    for (int k = 0; k < 2; k++)
      bx_hconn_tick(&cs[k]->h, now);   /* a passed deadline reaches on_http as "timeout" */
    if (clients[i].connect_at && now >= clients[i].connect_at && phase < P_BYE && !clients[i].cc.h.busy) {
      clients[i].connect_at = 0;
      send_connect(&clients[i], false);
    }
    if (clients[i].handshake_at && now >= clients[i].handshake_at && phase < P_BYE && !clients[i].cc.h.busy) {
      clients[i].handshake_at = 0;
      handshake(&clients[i], &clients[i].cc);
    }
  }
}

/* Phase changes; returns the time the loop must wake up next at the latest. */
static int64_t step(int64_t now) {
  int64_t wake = now + 100000;
  switch (phase) {
  case P_SETUP:
    if (clients_ready() == o.clients) {
      phase = P_WARM;
      t_phase = now;
      return step(now);
    } else if (now - t_phase > (int64_t)(o.setup_timeout * 1e6)) {
      fatal("only %d/%d clients set up within %g s", clients_ready(), o.clients, o.setup_timeout);
    }
    break;
  case P_WARM:   /* let every connect park before the first publish */
    if (now - t_phase >= 500000) {
      phase = P_PUBLISH;
      t0 = now;
      pub_due = 0;
      t_pub_end = t0 + (int64_t)(o.duration * 1e6);
      t_last_recv = now;
      cpu0 = cpu_s();
      return step(now);   /* the first publish is due now */
    } else if (t_phase + 500000 < wake) wake = t_phase + 500000;
    break;
  case P_PUBLISH: {
    if (now >= t_pub_end) {
      phase = P_DRAIN;
      t_phase = t_pub_end = now;
      break;
    }
    uint64_t want = 1 + (uint64_t)((double)(now - t0) * o.rate / 1e6);   /* first publish at t0 */
    while (pub_due < want) {
      pub_due++;
      publish_one();
    }
    int64_t next = t0 + (int64_t)ceil((double)pub_due * 1e6 / o.rate);
    if (next < wake) wake = next;
    if (t_pub_end < wake) wake = t_pub_end;
    break;
  }
  case P_DRAIN: {
    bool inflight = publishes_in_flight();
    if ((!inflight && st.received >= st.expected) || now - t_phase >= (int64_t)(o.drain * 1e6) ||
        (!inflight && now - t_last_recv > 2000000)) {
      phase = P_BYE;
      t_phase = now;
      say_bye();
    }
    break;
  }
  case P_BYE: {
    bool busy = false;
    for (int i = 0; i < o.clients; i++) busy |= clients[i].pc.h.busy;
    if (!busy || now - t_phase > 3000000) phase = P_END;
    break;
  }
  case P_END:
    break;
  }
  for (int i = 0; i < o.clients; i++) {
    struct conn *cs[2] = {&clients[i].cc, &clients[i].pc};
    for (int k = 0; k < 2; k++)
      if (cs[k]->h.busy && cs[k]->h.deadline < wake) wake = cs[k]->h.deadline;
    if (clients[i].connect_at && clients[i].connect_at < wake) wake = clients[i].connect_at;
    if (clients[i].handshake_at && clients[i].handshake_at < wake) wake = clients[i].handshake_at;
  }
  return wake;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* {min,p50,p99,p999,max} in ms, bench.js's percentile (the ceil(p·n)-th smallest); sorts l. */
static json_t *lats_json(struct lats *l) {
  static const double ps[] = {0, 0.5, 0.99, 0.999, 1};
  static const char *const names[] = {"min", "p50", "p99", "p999", "max"};
  json_t *out = json_object();
  if (!out) oom();
  if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp64);
  for (size_t k = 0; k < 5; k++) {
    double r = ceil(ps[k] * (double)l->n) - 1;
    size_t i = r < 0 ? 0 : r >= (double)l->n ? l->n - 1 : (size_t)r;
    if (json_object_set_new(out, names[k], l->n ? json_real((double)l->v[i] / 1000.0) : json_null()) < 0) oom();
  }
  return out;
}

static json_t *result(int64_t t_end, double cpu) {
  double pub_s = t_pub_end > t0 && t0 ? (double)(t_pub_end - t0) / 1e6 : 0;
  double wall = t0 ? (double)(t_end - t0) / 1e6 : 0;
  double recv_s = t_last_recv > t0 && (double)(t_last_recv - t0) / 1e6 > pub_s ? (double)(t_last_recv - t0) / 1e6 : pub_s;
  uint64_t lost = st.expected > st.received ? st.expected - st.received : 0;
  char when[32];
  time_t now = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:i, s:s, s:s}", "label", o.label, "url", o.url,
                        "instrument", "floor.c", "transport", "long-polling", "clients", o.clients, "rooms", 1, "roomsPerClient", 1,
                        "batch", 1, "size", o.size, "offered", (int)o.rate, "duration", o.duration, "publishers", o.publishers,
                        "publisherMode", o.publishers == 1 ? "client 0 publishes" : "round-robin over publishers", "time", when);
  if (!r) oom();
  json_t *lm = lats_json(&st.lat);
  json_t *more = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:O, s:I}",
                           "published", (json_int_t)st.published, "publishedPerSec", (json_int_t)(pub_s > 0 ? llround((double)st.published / pub_s) : 0),
                           "publishFailed", (json_int_t)st.publish_failed, "skipped", (json_int_t)st.skipped,
                           "expected", (json_int_t)st.expected, "delivered", (json_int_t)st.received,
                           "deliveredPerSec", (json_int_t)(recv_s > 0 ? llround((double)st.received / recv_s) : 0),
                           "lostPct", st.expected ? round(100000.0 * (double)lost / (double)st.expected) / 1000.0 : 0.0,
                           "lost", (json_int_t)lost, "unexpected", (json_int_t)(st.received > st.expected ? st.received - st.expected : 0),
                           "duplicated", (json_int_t)st.dup, "outOfOrder", (json_int_t)st.ooo, "foreign", (json_int_t)st.foreign,
                           "connectsPerSec", (json_int_t)(wall > 0 ? llround((double)st.connects / wall) : 0), "latencyMs", lm,
                           "errors", st.errors, "rehandshakes", (json_int_t)st.rehandshakes);
  if (!lm || !more || json_object_update(r, more) < 0) oom();
  json_decref(more);
  /* The cross-client path (publisher → server → another client's parked connect), and how many
   * deliveries rode on publish replies instead (a server may hand the publisher its own message there). */
  if (json_object_set_new(r, "latencyOthersMs", lats_json(&st.lat_others)) < 0 ||
      json_object_set_new(r, "deliveredOnPublishReplies", json_integer((json_int_t)st.on_publish_reply)) < 0)
    oom();
  if (json_object_set_new(r, "generatorCpuPct", json_integer(wall > 0 ? llround(100 * cpu / wall) : 0)) < 0 ||
      json_object_set_new(r, "generatorUsPerDelivery",
                          st.received ? json_real(round(100 * 1e6 * cpu / (double)st.received) / 100) : json_null()) < 0)
    oom();
  if (!st.fatal[0] && st.published == 0) {
    void *it = json_object_iter(st.errors);
    fatal("nothing published%s%s", it ? ": " : "", it ? json_object_iter_key(it) : "");
  }
  if (!st.fatal[0] && st.received == 0) fatal("nothing delivered");
  /* A stalled server: most due publishes skipped or failed, with request errors (timeouts, refusals).
   * Skips alone only mean a slow server (each publisher has one publish in flight at a time). */
  if (!st.fatal[0] && (double)st.published < 0.9 * (double)pub_due && json_object_size(st.errors)) {
    char *errs = json_dumps(st.errors, JSON_COMPACT);
    fatal("only %" PRIu64 " of %" PRIu64 " due publishes succeeded (skipped %" PRIu64 ", failed %" PRIu64 "): %s", st.published,
          pub_due, st.skipped, st.publish_failed, errs ? errs : "");
    free(errs);
  }
  if (st.fatal[0] && json_object_set_new(r, "error", json_string(st.fatal)) < 0) oom();
  return r;
}

static void summary(json_t *r) {
  const char *e = json_string_value(json_object_get(r, "error"));
  if (e && !st.published && !st.received) {
    fprintf(stderr, "%s (C probe): ERROR %s\n", o.label, e);
    return;
  }
  json_t *l = json_object_get(r, "latencyMs"), *lo = json_object_get(r, "latencyOthersMs");
  char *errs = json_dumps(st.errors, JSON_COMPACT);
  if (!errs) oom();
  fprintf(stderr,
          "%s (C probe): offered %g/s, %d publisher(s) of %d clients; published %" PRIu64 " (failed %" PRIu64 ", skipped %" PRIu64
          ") delivered %" PRIu64 " of expected %" PRIu64 ": lost %" JSON_INTEGER_FORMAT " dup %" PRIu64 " ooo %" PRIu64 " foreign %" PRIu64 "\n"
          "  latency ms min %.3f p50 %.3f p99 %.3f p99.9 %.3f max %.3f; to another client p50 %.3f p99 %.3f\n"
          "  connects %" PRIu64 ", deliveries on publish replies %" PRIu64 ", rehandshakes %" PRIu64 "; probe cpu %" JSON_INTEGER_FORMAT "%%%s%s%s%s\n",
          o.label, o.rate, o.publishers, o.clients, st.published, st.publish_failed, st.skipped, st.received, st.expected,
          json_integer_value(json_object_get(r, "lost")), st.dup, st.ooo, st.foreign, json_number_value(json_object_get(l, "min")),
          json_number_value(json_object_get(l, "p50")), json_number_value(json_object_get(l, "p99")),
          json_number_value(json_object_get(l, "p999")), json_number_value(json_object_get(l, "max")),
          json_number_value(json_object_get(lo, "p50")), json_number_value(json_object_get(lo, "p99")), st.connects, st.on_publish_reply,
          st.rehandshakes, json_integer_value(json_object_get(r, "generatorCpuPct")), json_object_size(st.errors) ? "\n  errors " : "",
          json_object_size(st.errors) ? errs : "", e ? "\n  ERROR " : "", e ? e : "");
  free(errs);
}

/* ---- arguments ------------------------------------------------------------------------------ */

static void usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage(const char *fmt, ...) {
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    fputs("floor: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (--help lists the options)\n", stderr);
    exit(2);
  }
  fputs("usage: floor --url http://host:port/path [options]\n"
        "  --rate N             publishes/s offered (1..100000, default 50)\n"
        "  --duration S         seconds of publishing (0.5..3600, default 5)\n"
        "  --clients N          clients, all subscribed to " CHANNEL " (1..64, default 2)\n"
        "  --publishers N       how many of them publish, round-robin (1..clients, default all)\n"
        "  --size N             bytes of each message's data (40..65536, default 50)\n"
        "  --drain S            max wait for deliveries after publishing (0..3600, default 5)\n"
        "  --connect-timeout S  HTTP timeout of a held /meta/connect (1..3600, default 45)\n"
        "  --request-timeout S  other requests (0.1..3600, default 10)\n"
        "  --setup-timeout S    handshake+subscribe+first connect of every client (1..3600, default 20)\n"
        "  --label L            the result's label (default the URL)\n"
        "  --json               print the result as one JSON line on stdout\n",
        stderr);
  exit(0);
}

static double num_arg(const char *name, const char *v, double lo, double hi, bool integer) {
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (!*v || *end || errno || !isfinite(d)) usage("--%s must be a number, got '%s'", name, v);
  if (integer && d != floor(d)) usage("--%s must be an integer, got '%s'", name, v);
  if (d < lo || d > hi) usage("--%s must be within %g..%g, got %s", name, lo, hi, v);
  return d;
}

static void parse_url(void) {
  char err[512];
  if (bx_url_parse(o.url, &o.u, err, sizeof err) < 0) usage("%s", err);
}

static void parse_args(int argc, char **argv) {
  o.rate = 50, o.duration = 5, o.drain = 5, o.connect_timeout = 45, o.request_timeout = 10, o.setup_timeout = 20;
  o.clients = 2, o.publishers = 0, o.size = 50;
  const char *publishers = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(NULL);
    if (!strcmp(a, "--json")) {
      o.json = true;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) usage("unknown argument '%s'", a);
    const char *name = a + 2, *v = i + 1 < argc ? argv[i + 1] : NULL;
    static const char *const valued[] = {"url", "label", "rate", "duration", "drain", "connect-timeout", "request-timeout",
                                         "setup-timeout", "clients", "publishers", "size"};
    bool known = false;
    for (size_t k = 0; k < sizeof valued / sizeof *valued; k++) known |= !strcmp(name, valued[k]);
    if (!known) usage("unknown argument '%s'", a);
    if (!v) usage("--%s needs a value", name);
    i++;
    if (!strcmp(name, "url")) o.url = v;
    else if (!strcmp(name, "label")) o.label = v;
    else if (!strcmp(name, "rate")) o.rate = num_arg(name, v, 1, 100000, true);
    else if (!strcmp(name, "duration")) o.duration = num_arg(name, v, 0.5, 3600, false);
    else if (!strcmp(name, "drain")) o.drain = num_arg(name, v, 0, 3600, false);
    else if (!strcmp(name, "connect-timeout")) o.connect_timeout = num_arg(name, v, 1, 3600, false);
    else if (!strcmp(name, "request-timeout")) o.request_timeout = num_arg(name, v, 0.1, 3600, false);
    else if (!strcmp(name, "setup-timeout")) o.setup_timeout = num_arg(name, v, 1, 3600, false);
    else if (!strcmp(name, "clients")) o.clients = (int)num_arg(name, v, 1, MAX_CLIENTS, true);
    else if (!strcmp(name, "publishers")) publishers = v;
    else o.size = (int)num_arg(name, v, 40, 65536, true);
  }
  if (!o.url) usage("--url is required");
  o.publishers = publishers ? (int)num_arg("publishers", publishers, 1, o.clients, true) : o.clients;
  if (!o.label) o.label = o.url;
  parse_url();
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  memset(pad, 'x', sizeof pad);
  st.errors = json_object();
  epfd = epoll_create1(EPOLL_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (!st.errors || epfd < 0 || tfd < 0) {
    perror("floor: epoll/timerfd");
    return 1;
  }
  struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};   /* connections have data.ptr = their bx_hconn */
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) < 0) {
    perror("floor: epoll_ctl");
    return 1;
  }
  /* Worst case: setup + warm-up + publishing + drain + goodbye, plus slack; never a hang. */
  int64_t start = bx_now_us();
  int64_t watchdog = start + (int64_t)((o.setup_timeout + 0.5 + o.duration + o.drain + 3 + 10) * 1e6);
  for (int i = 0; i < o.clients; i++) {
    struct client *cl = &clients[i];
    cl->idx = i;
    struct conn *cs[2] = {&cl->cc, &cl->pc};
    for (int k = 0; k < 2; k++) {
      cs[k]->cl = cl;
      bx_hconn_init(&cs[k]->h, epfd, (const struct sockaddr *)&o.u.addr, o.u.addrlen, &cl->jar, on_http, cs[k]);
    }
    for (int p = 0; p < MAX_CLIENTS; p++) cl->last[p] = -1;
  }
  phase = P_SETUP;
  t_phase = start;
  for (int i = 0; i < o.clients && !st.fatal[0]; i++) handshake(&clients[i], &clients[i].pc);
  struct epoll_event evs[2 * MAX_CLIENTS + 1];
  while (phase != P_END && !st.fatal[0]) {
    int64_t now = bx_now_us();
    if (now >= watchdog) {
      fatal("run exceeded %.1f s (watchdog)", (double)(watchdog - start) / 1e6);
      break;
    }
    timeouts(now);
    int64_t wake = step(now);
    if (phase == P_END || st.fatal[0]) break;
    if (wake > watchdog) wake = watchdog;
    struct itimerspec its = {.it_value = {.tv_sec = wake / 1000000, .tv_nsec = (wake % 1000000) * 1000}};
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    int n = epoll_wait(epfd, evs, (int)(sizeof evs / sizeof *evs), -1);
    if (n < 0 && errno != EINTR) {
      fatal("epoll_wait: %s", strerror(errno));
      break;
    }
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0 && errno != EAGAIN) fatal("timerfd: %s", strerror(errno));
        continue;
      }
      bx_hconn_event(evs[i].data.ptr, evs[i].events);
    }
  }
  int64_t t_end = bx_now_us();
  if (phase <= P_PUBLISH) t_pub_end = t_end;
  double cpu = t0 ? cpu_s() - cpu0 : 0;
  phase = P_END;
  for (int i = 0; i < o.clients; i++) {
    bx_hconn_free(&clients[i].cc.h);
    bx_hconn_free(&clients[i].pc.h);
  }
  json_t *r = result(t_end, cpu);
  summary(r);
  if (o.json) {
    char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (!s) oom();
    puts(s);
    free(s);
  }
  json_decref(r);
  return 0;
}
