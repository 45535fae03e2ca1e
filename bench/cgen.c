/* bench/cgen.c — bx-cgen: the reference chat workload of bench/bench.js over long-polling or WebSocket,
 * in C on one epoll loop, so the instrument's own latency is not the floor of every figure (issue #9).
 *
 * Mirrors bench/lib/worker.js: CLIENTS clients, each with its own cookie jar and two keep-alive HTTP/1.1
 * connections like a browser (one for the held /meta/connect, one for everything else), or with
 * --transport websocket one WebSocket (bench/cws.c) carrying every request, as bench/lib/ws.js: opened
 * by the first request, requests matched to replies by message id, anything else taken as deliveries
 * when its frame arrives; a failed socket fails every request on it and the next request opens a new
 * one. Per client: handshake →
 * one batched subscribe to its ROOMS_PER_CLIENT rooms (/chat/<n>, chosen by mulberry32(SEED) exactly as
 * bench.js does) → first connect with advice.timeout 0 → connect loop. Publishing is open-loop: batches
 * of BATCH publishes are due at RATE/BATCH per second; each goes to a random idle publisher, which waits
 * for the reply before its next batch; a due batch with no idle publisher is counted as skipped. Message
 * data is {"p":publisher,"s":seq,"t":CLOCK_MONOTONIC µs taken just before the write,"x":padding to SIZE};
 * deliveries may ride on any reply and are timestamped when their reply (WebSocket: their frame) has
 * been read. Counted: lost, duplicated (same p,s twice at one client), out of order (s below the last
 * seen from p), foreign. Replies are read by bench/bmsg.c (the fields needed, no JSON tree); HTTP is
 * bench/chttp.c.
 *
 * Output: a summary on stderr and, with --json, one JSON line on stdout with bench.js's field names.
 * --marks (for bench.js --engine c, which samples server CPU/RSS/Redis around the window) prints "@t0"
 * when publishing starts and "@end" when the drain ends, each on its own stdout line, and no summary.
 * Exit 0 even when the server failed (the result has "error"), 2 on bad arguments, 1 on a watchdog
 * expiry or out of memory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bmsg.h"
#include "chttp.h"
#include "cws.h"

#define SEQ_SPAN (1 << 20)   /* delivery key = publisher * SEQ_SPAN + seq, as bench/lib/clock.js */
/* How often deadlines and delayed reconnects are looked at: every 5 ms, or less often with many clients
 * (the sweep visits every client; 2 µs of period per client keeps it near 0.5 % of a core). */
#define SWEEP_US (o.clients * 2 > 5000 ? (int64_t)(o.clients * 2) : 5000)
#define BODY_LIMIT (16 * 1024 * 1024)

/* ---- options (names, env variables, defaults and ranges of bench.js) ----------------------------- */

static struct {
  const char *url, *label, *transport;
  double clients, rooms, rpc, rate, duration, batch, size, threads, setup_conc, connect_timeout, request_timeout,
      setup_timeout, drain, seed;
  bool json, marks;
  struct bx_url u;      /* from url: Host header value, path + query, address */
} o;

static bool ws_mode;   /* --transport websocket */

enum kind { O_STR, O_INT, O_NUM, O_FLAG };
static const struct opt {
  const char *name, *env;
  enum kind kind;
  void *dst;
  const char *def;
  double lo, hi;
  const char *help;
} OPTS[] = {
    {"url", "URL", O_STR, &o.url, "", 0, 0, "Bayeux endpoint, http://host:port/path"},
    {"transport", "TRANSPORT", O_STR, &o.transport, "long-polling", 0, 0, "long-polling or websocket"},
    {"clients", "CLIENTS", O_INT, &o.clients, "1000", 1, 100000, NULL},
    {"rooms", "ROOMS", O_INT, &o.rooms, "100", 1, 100000, NULL},
    {"rooms-per-client", "ROOMS_PER_CLIENT", O_INT, &o.rpc, "10", 1, 1000, NULL},
    {"rate", "RATE", O_INT, &o.rate, "1000", 1, 10000000, "published msg/s offered"},
    {"duration", "DURATION", O_NUM, &o.duration, "10", 0.5, 3600, "seconds of publishing"},
    {"batch", "BATCH", O_INT, &o.batch, "10", 1, 1000, NULL},
    {"size", "SIZE", O_INT, &o.size, "50", 40, 65536, "bytes of each message data (JSON)"},
    {"threads", "THREADS", O_INT, &o.threads, "1", 1, 64, "accepted for bench.js compatibility; one thread runs all"},
    {"setup-concurrency", "SETUP_CONCURRENCY", O_INT, &o.setup_conc, "32", 1, 10000, NULL},
    {"connect-timeout", "CONNECT_TIMEOUT", O_NUM, &o.connect_timeout, "45", 1, 3600, "s, HTTP timeout of a held connect"},
    {"request-timeout", "REQUEST_TIMEOUT", O_NUM, &o.request_timeout, "10", 0.1, 3600, "s, other requests"},
    {"setup-timeout", "SETUP_TIMEOUT", O_NUM, &o.setup_timeout, "0", 0, 3600, "s, 0 = 20 + clients/50"},
    {"drain", "DRAIN", O_NUM, &o.drain, "10", 0, 3600, "s, max wait for deliveries after publishing"},
    {"label", "LABEL", O_STR, &o.label, "", 0, 0, NULL},
    {"seed", "SEED", O_INT, &o.seed, "1", 0, 2147483647, NULL},
    {"json", NULL, O_FLAG, &o.json, NULL, 0, 0, "print the result as one JSON line on stdout"},
    {"marks", NULL, O_FLAG, &o.marks, NULL, 0, 0, "print @t0/@end lines around the measured window (bench.js --engine c)"},
};
#define NOPTS (sizeof OPTS / sizeof OPTS[0])

static void usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage(const char *fmt, ...) {
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    fputs("bx-cgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (--help lists the options)\n", stderr);
    exit(2);
  }
  fputs("usage: bx-cgen --url URL [options]\n", stderr);
  for (size_t i = 0; i < NOPTS; i++) {
    const struct opt *p = &OPTS[i];
    fprintf(stderr, "  --%s%s", p->name, p->kind == O_FLAG ? "" : " V");
    if (p->env) fprintf(stderr, " (env %s, default %s)", p->env, *p->def ? p->def : "none");
    if (p->help) fprintf(stderr, ": %s", p->help);
    fputc('\n', stderr);
  }
  exit(0);
}

static void set_opt(const struct opt *p, const char *v) {
  if (p->kind == O_STR) {
    *(const char **)p->dst = v;
    return;
  }
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  while (*end == ' ' || *end == '\t') end++;
  const char *env = p->env ? p->env : "";
  if (end == v || *end || errno || !isfinite(x) || (p->kind == O_INT && x != floor(x)))
    usage("--%s (%s) must be %s, got '%s'", p->name, env, p->kind == O_INT ? "an integer" : "a number", v);
  if (x < p->lo || x > p->hi) usage("--%s (%s) must be within %g..%g, got %g", p->name, env, p->lo, p->hi, x);
  *(double *)p->dst = x;
}

static void parse_url(void) {
  char err[512];
  if (bx_url_parse(o.url, &o.u, err, sizeof err) < 0) usage("%s", err);
}

static void parse_args(int argc, char **argv) {
  for (size_t i = 0; i < NOPTS; i++) {
    const struct opt *p = &OPTS[i];
    if (p->kind == O_FLAG) continue;
    const char *v = p->env ? getenv(p->env) : NULL;
    set_opt(p, v && *v ? v : p->def);
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(NULL);
    if (strncmp(a, "--", 2) != 0) usage("unknown argument '%s'", a);
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    const struct opt *p = NULL;
    for (size_t k = 0; k < NOPTS; k++)
      if (strlen(OPTS[k].name) == nl && !strncmp(OPTS[k].name, a + 2, nl)) p = &OPTS[k];
    if (!p) usage("unknown argument '%s'", a);
    if (p->kind == O_FLAG) {
      if (eq) usage("--%s takes no value", p->name);
      *(bool *)p->dst = true;
      continue;
    }
    const char *v = eq ? eq + 1 : argv[++i];
    if (!v) usage("--%s needs a value", p->name);
    set_opt(p, v);
  }
  if (strcmp(o.transport, "long-polling") != 0 && strcmp(o.transport, "websocket") != 0)
    usage("--transport (TRANSPORT) must be long-polling or websocket, got '%s'", o.transport);
  ws_mode = !strcmp(o.transport, "websocket");
  if (o.rpc > o.rooms) usage("ROOMS_PER_CLIENT (%g) cannot exceed ROOMS (%g)", o.rpc, o.rooms);
  if (!*o.url) usage("--url (URL) is required");
  if (o.rate * o.duration > o.clients * (1 << 18)) usage("RATE × DURATION too large for CLIENTS publishers");
  parse_url();
}

/* ---- small containers --------------------------------------------------------------------------- */

/* Open-addressing map of nonzero u64 keys to u32 values (vals NULL: a set). */
struct u64map {
  uint64_t *k;
  uint32_t *v;
  size_t n, cap;
};

static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz);
  if (!p) {
    fputs("bx-cgen: out of memory\n", stderr);
    exit(1);
  }
  return p;
}

static size_t slot(const struct u64map *m, uint64_t key) {
  uint64_t h = key * 0x9E3779B97F4A7C15ull;
  size_t i = (size_t)(h >> 20) & (m->cap - 1);
  while (m->k[i] && m->k[i] != key) i = (i + 1) & (m->cap - 1);
  return i;
}

static void map_grow(struct u64map *m, bool vals) {
  struct u64map old = *m;
  m->cap = old.cap ? old.cap * 2 : 16;
  m->k = xcalloc(m->cap, sizeof *m->k);
  m->v = vals ? xcalloc(m->cap, sizeof *m->v) : NULL;
  for (size_t i = 0; i < old.cap; i++)
    if (old.k[i]) {
      size_t j = slot(m, old.k[i]);
      m->k[j] = old.k[i];
      if (vals) m->v[j] = old.v[i];
    }
  free(old.k);
  free(old.v);
}

/* The value slot of key (inserted with *fresh = true when absent). */
static size_t map_put(struct u64map *m, uint64_t key, bool vals, bool *fresh) {
  if ((m->n + 1) * 2 > m->cap) map_grow(m, vals);
  size_t i = slot(m, key);
  *fresh = !m->k[i];
  if (*fresh) {
    m->k[i] = key;
    m->n++;
  }
  return i;
}

static void map_free(struct u64map *m) {
  free(m->k);
  free(m->v);
  memset(m, 0, sizeof *m);
}

/* ---- state -------------------------------------------------------------------------------------- */

enum req { R_HANDSHAKE, R_SUBSCRIBE, R_CONNECT0, R_CONNECT, R_PUBLISH, R_DISCONNECT };

/* A request in flight on a client's WebSocket: messages first..first+n-1 (ids), left unanswered. Its
 * replies are copied (they may arrive over several frames, whose scan is reused), strings into strs. */
struct pend {
  enum req r;
  unsigned first, n, left;
  int64_t deadline;
  struct bx_gbuf body;   /* not sent yet: the socket is still opening */
  struct bx_bmsg *got;   /* n slots */
  size_t (*off)[5];      /* per reply: where its strings start in strs */
  size_t ngot;
  struct bx_gbuf strs;
};

struct client {
  int g;              /* publisher number */
  int *rooms;
  char *cid_json;     /* clientId as a JSON string (quoted), NULL before the handshake */
  struct bx_jar jar;
  struct bx_hconn cc, pc;   /* held connect; everything else */
  enum req cc_req, pc_req;
  struct bx_ws ws;          /* --transport websocket: everything */
  struct pend *pend;        /* ws requests in flight, oldest first */
  size_t npend, cappend;
  unsigned msg_id;
  uint32_t seq;
  bool ready, busy, in_setup, in_idle;
  int64_t wake_at;    /* a delayed connect (0 = none) */
  int pub_room;
  unsigned pub_first_id;
  struct u64map seen, last;
};

static struct client *clients;
static int *members;
static int epfd;
static bool publishing, stopping;

static struct {
  long long handshakes, rehandshakes, setup_failed, connects, batches, published, publish_failed, skipped, expected,
      received, dup, ooo, foreign;
} st;
static int inflight;   /* publish batches awaiting their reply */
static int64_t t_last_recv, t_last_pub_ok, t_last_pub_err;

static struct { char *name; long long n; } *errs;
static size_t nerrs;

static void count_error(const char *what, const char *detail) {
  char name[160];
  snprintf(name, sizeof name, "%s%s", what, detail ? detail : "");
  for (size_t i = 0; i < nerrs; i++)
    if (!strcmp(errs[i].name, name)) {
      errs[i].n++;
      return;
    }
  void *p = realloc(errs, (nerrs + 1) * sizeof *errs);
  if (!p) exit(1);
  errs = p;
  errs[nerrs].name = strdup(name);
  errs[nerrs++].n = 1;
}

static int64_t *lat;
static size_t nlat, caplat;

/* Math.random's stand-in for publisher and room choice (xorshift64*, seeded). */
static uint64_t rnd_state;
static double rnd(void) {
  rnd_state ^= rnd_state >> 12;
  rnd_state ^= rnd_state << 25;
  rnd_state ^= rnd_state >> 27;
  return (double)((rnd_state * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

/* ---- room plan: bench.js's assignRooms, mulberry32 bit for bit ---------------------------------- */

static uint32_t mb_state;
static double mulberry32(void) {
  mb_state += 0x6D2B79F5u;
  uint32_t t = mb_state;
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return (double)(t ^ (t >> 14)) / 4294967296.0;
}

static double plan_rooms(void) {
  int n = (int)o.clients, k = (int)o.rpc;
  mb_state = (uint32_t)o.seed;
  members = xcalloc((size_t)o.rooms, sizeof *members);
  for (int c = 0; c < n; c++) {
    int *mine = xcalloc((size_t)k, sizeof *mine), have = 0;
    while (have < k) {
      int x = (int)floor(mulberry32() * o.rooms), dup = 0;
      for (int i = 0; i < have; i++) dup |= mine[i] == x;
      if (!dup) mine[have++] = x;
    }
    for (int i = 0; i < k; i++) members[mine[i]]++;
    clients[c].rooms = mine;
  }
  double sq = 0;
  for (int r = 0; r < (int)o.rooms; r++) sq += (double)members[r] * members[r];
  return sq / (o.clients * o.rpc);   /* mean members of a publisher's room */
}

/* ---- protocol ------------------------------------------------------------------------------------ */

static struct client **idle;
static size_t nidle;
static int setup_next, setup_active, setup_finished;
static char *first_err[3];
static int nfirst_err;

static void idle_push(struct client *c) {
  if (c->in_idle) return;
  c->in_idle = true;
  idle[nidle++] = c;
}

static const struct bx_bmsgs no_msgs;
static void handle(struct client *c, enum req r, const char *e, const struct bx_bmsgs *msgs);

/* ---- WebSocket requests (bench/lib/ws.js) -------------------------------------------------------- */

static struct bx_str *str_field(struct bx_bmsg *m, int i) {
  struct bx_str *f[5] = {&m->channel, &m->id, &m->client_id, &m->error, &m->reconnect};
  return f[i];
}

static void pend_free(struct pend *p) {
  bx_gbuf_free(&p->body);
  bx_gbuf_free(&p->strs);
  free(p->got);
  free(p->off);
}

/* Request i of c is over (e NULL: every message answered): out of the list, then to handle(), which
 * may post again on c. */
static void complete(struct client *c, size_t i, const char *e) {
  struct pend p = c->pend[i];
  memmove(&c->pend[i], &c->pend[i + 1], (c->npend - i - 1) * sizeof *c->pend);
  c->npend--;
  struct bx_bmsgs v = {.m = p.got, .n = p.ngot};
  for (size_t k = 0; k < p.ngot; k++)
    for (int f = 0; f < 5; f++) {
      struct bx_str *s = str_field(&p.got[k], f);
      if (s->p) s->p = p.strs.p + p.off[k][f];
    }
  handle(c, p.r, e, e ? &no_msgs : &v);
  pend_free(&p);
}

/* Fail every request in flight on c (those its handlers post meanwhile are left alone). */
static void ws_fail_all(struct client *c, const char *e) {
  for (size_t k = c->npend; k > 0 && c->npend; k--) complete(c, 0, e);
}

/* Close c's socket and fail what was in flight on it (bench/lib/ws.js's destroy). */
static void ws_drop(struct client *c, const char *e) {
  bx_ws_close(&c->ws);
  ws_fail_all(c, e);
}

/* The request of c that m answers: only a message with "successful" is a reply; a delivery may carry
 * its publisher's id, which can equal one of ours. */
static bool find_pend(const struct client *c, const struct bx_bmsg *m, size_t *at) {
  if (!m->has_successful || !m->id.p || m->id.n == 0 || m->id.n > 9) return false;
  unsigned id = 0;
  for (size_t k = 0; k < m->id.n; k++) {
    if (m->id.p[k] < '0' || m->id.p[k] > '9') return false;
    id = id * 10 + (unsigned)(m->id.p[k] - '0');
  }
  for (size_t i = 0; i < c->npend; i++)
    if (id >= c->pend[i].first && id - c->pend[i].first < c->pend[i].n) {
      *at = i;
      return true;
    }
  return false;
}

/* Copy reply m into p (its strings into p->strs: the frame's scan is reused by the next frame). */
static void keep(struct pend *p, const struct bx_bmsg *m) {
  if (!p->got) {
    p->got = xcalloc(p->n, sizeof *p->got);
    p->off = xcalloc(p->n, sizeof *p->off);
  }
  if (p->ngot == p->n) return;   /* a duplicated reply: left already counted it down */
  struct bx_bmsg *k = &p->got[p->ngot];
  *k = *m;
  for (int f = 0; f < 5; f++) {
    const struct bx_str *s = str_field(k, f);
    p->off[p->ngot][f] = p->strs.len;
    if (s->p) bx_gbuf_append(&p->strs, s->p, s->n, SIZE_MAX / 2);
  }
  p->ngot++;
}

static void post_ws(struct client *c, enum req r, unsigned n, const struct bx_gbuf *body, int64_t tmo) {
  if (c->npend == c->cappend) {
    c->cappend = c->cappend ? c->cappend * 2 : 4;
    c->pend = realloc(c->pend, c->cappend * sizeof *c->pend);
    if (!c->pend) exit(1);
  }
  struct pend *p = &c->pend[c->npend++];
  memset(p, 0, sizeof *p);
  p->r = r;
  p->first = c->msg_id - n + 1;   /* the body's ids are the last n msg_ids */
  p->n = p->left = n;
  p->deadline = bx_now_us() + tmo;
  if (c->ws.state == BX_WS_OPEN && bx_ws_send_text(&c->ws, body->p, body->len) == 0) return;
  /* Sent once the socket is open; if it is failing instead, the failure (or the deadline) ends it. */
  bx_gbuf_append(&p->body, body->p, body->len, SIZE_MAX / 2);
  if (c->ws.state == BX_WS_IDLE) bx_ws_open(&c->ws, o.u.hostport, o.u.path, (int64_t)(o.request_timeout * 1e6));
}

static void take_deliveries(struct client *c, const struct bx_bmsgs *r);
static struct bx_bmsgs wsframe, pushed;

/* A text frame: its deliveries are taken first (timestamped now), then the replies go to their requests. */
static void on_ws_msg(struct bx_ws *w, const char *msg, size_t len) {
  struct client *c = w->user;
  if (len > BODY_LIMIT || bx_bmsgs_parse(&wsframe, msg, len) < 0) {
    count_error("ws:", "bad-json");   /* ws.js drops such a frame too */
    return;
  }
  if (pushed.cap < wsframe.n) {
    pushed.cap = wsframe.n;
    pushed.m = realloc(pushed.m, pushed.cap * sizeof *pushed.m);
    if (!pushed.m) exit(1);
  }
  pushed.n = 0;
  size_t at;
  for (size_t i = 0; i < wsframe.n; i++)
    if (!find_pend(c, &wsframe.m[i], &at)) pushed.m[pushed.n++] = wsframe.m[i];
  take_deliveries(c, &pushed);
  for (size_t i = 0; i < wsframe.n; i++)
    if (find_pend(c, &wsframe.m[i], &at)) {   /* looked up again: a reply's handler may have changed the list */
      keep(&c->pend[at], &wsframe.m[i]);
      if (--c->pend[at].left == 0) complete(c, at, NULL);
    }
}

/* Open: send what waited, oldest first. Failed or closed: every request on it fails (ws.js's _failAll). */
static void on_ws_state(struct bx_ws *w, const char *e) {
  struct client *c = w->user;
  if (!e) {
    for (size_t i = 0; i < c->npend; i++)
      if (c->pend[i].body.len) {
        bx_ws_send_text(w, c->pend[i].body.p, c->pend[i].body.len);
        bx_gbuf_free(&c->pend[i].body);
      }
    return;
  }
  count_error("ws:", e);
  ws_fail_all(c, e);
}

/* Requests past their deadline fail alone; the socket stays (ws.js). */
static void ws_expire(struct client *c, int64_t now) {
  for (size_t i = 0; i < c->npend;) {
    if (now < c->pend[i].deadline) {
      i++;
      continue;
    }
    complete(c, i, "timeout");
    i = 0;   /* the handler may have changed the list */
  }
}

/* ---- requests ------------------------------------------------------------------------------------ */

/* Send request r of c (body: its last n msg_ids) on the held-connect connection (on_cc) or the other
 * one; over WebSocket both are the client's one socket. */
static void post(struct client *c, bool on_cc, enum req r, unsigned n, struct bx_gbuf *body) {
  struct bx_hconn *h = on_cc ? &c->cc : &c->pc;
  int64_t tmo = (int64_t)((r == R_CONNECT ? o.connect_timeout : o.request_timeout) * 1e6);
  if (r == R_DISCONNECT) tmo = 2000000;
  if (ws_mode) {
    post_ws(c, r, n, body, tmo);
    return;
  }
  if (h->busy) {   /* e.g. a re-handshake while a publish is in flight (bench.js fails it the same way) */
    handle(c, r, "busy", &no_msgs);
    return;
  }
  if (on_cc) c->cc_req = r;
  else c->pc_req = r;
  bx_hconn_post(h, o.u.hostport, o.u.path, body->p, body->len, tmo);
}

static struct bx_gbuf scratch;

static void handshake(struct client *c) {
  free(c->cid_json);
  c->cid_json = NULL;
  c->ready = false;
  scratch.len = 0;
  bx_gbuf_printf(&scratch,
                 "[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"minimumVersion\":\"1.0\","
                 "\"supportedConnectionTypes\":[\"%s\"],\"id\":\"%u\"}]",
                 o.transport, ++c->msg_id);
  post(c, false, R_HANDSHAKE, 1, &scratch);
}

static void connect_now(struct client *c, bool first) {
  scratch.len = 0;
  bx_gbuf_printf(&scratch, "[{\"channel\":\"/meta/connect\",\"clientId\":%s,\"connectionType\":\"%s\",\"id\":\"%u\"%s}]",
                 c->cid_json, o.transport, ++c->msg_id, first ? ",\"advice\":{\"timeout\":0}" : "");
  post(c, true, first ? R_CONNECT0 : R_CONNECT, 1, &scratch);
}

static void wake_later(struct client *c, int64_t ms) { c->wake_at = bx_now_us() + ms * 1000; }

static void setup_launch(void);

/* The end of a handshake + subscribe + first connect, during setup or a re-handshake. */
static void handshake_done(struct client *c, const char *e) {
  if (c->in_setup) {
    c->in_setup = false;
    setup_active--;
    setup_finished++;
    if (e) {
      st.setup_failed++;
      count_error("setup:", e);
      if (nfirst_err < 3) first_err[nfirst_err++] = strdup(e);
    }
    setup_launch();
    return;
  }
  if (e) {
    count_error("rehandshake:", e);
    wake_later(c, 500);
    return;
  }
  if (!c->busy && !stopping) idle_push(c);
  if (!stopping) connect_now(c, false);
}

static void setup_launch(void) {
  if (stopping) return;   /* a WebSocket failed at the end fails its setup requests */
  while (setup_active < (int)o.setup_conc && setup_next < (int)o.clients) {
    struct client *c = &clients[setup_next++];
    setup_active++;
    c->in_setup = true;
    handshake(c);
  }
}

static const struct bx_bmsg *meta_reply(const struct bx_bmsgs *r, const char *channel) {
  for (size_t i = 0; i < r->n; i++)
    if (bx_str_is(r->m[i].channel, channel)) return &r->m[i];
  return NULL;
}

static bool successful(const struct bx_bmsg *m) { return m && m->successful; }

/* Deliveries can ride on any reply (CometD may piggyback them on a publish reply). */
static void take_deliveries(struct client *c, const struct bx_bmsgs *r) {
  int64_t t = bx_now_us();
  for (size_t i = 0; i < r->n; i++) {
    const struct bx_bmsg *m = &r->m[i];
    if (!m->channel.p || (m->channel.n >= 6 && !memcmp(m->channel.p, "/meta/", 6)) || !m->has_data) continue;
    if (!m->has_p || !m->has_s || !m->has_t || m->p < 0 || m->p >= o.clients || m->s < 0 || m->s >= SEQ_SPAN) {
      st.foreign++;
      continue;
    }
    uint64_t pub = (uint64_t)m->p, seq = (uint64_t)m->s;
    bool fresh;
    map_put(&c->seen, pub * SEQ_SPAN + seq + 1, false, &fresh);
    if (!fresh) {
      st.dup++;
      continue;
    }
    size_t k = map_put(&c->last, pub + 1, true, &fresh);
    if (!fresh && seq < c->last.v[k]) st.ooo++;
    else c->last.v[k] = (uint32_t)seq;
    st.received++;
    t_last_recv = t;
    if (nlat == caplat) {
      caplat = caplat ? caplat * 2 : 65536;
      lat = realloc(lat, caplat * sizeof *lat);
      if (!lat) exit(1);
    }
    lat[nlat++] = t - m->t;
  }
}

static void connect_loop(struct client *c) {
  if (stopping) return;
  if (!c->cid_json) handshake(c);   /* a failed re-handshake left no session (bench.js sends clientId null, gets 402) */
  else connect_now(c, false);
}

static void on_connect(struct client *c, const char *e, const struct bx_bmsgs *msgs) {
  if (stopping) return;
  if (e) {
    count_error("connect:", e);
    wake_later(c, 200);
    return;
  }
  st.connects++;
  take_deliveries(c, msgs);
  const struct bx_bmsg *r = meta_reply(msgs, "/meta/connect");
  double interval = r && r->has_interval ? r->interval : 0;
  if (successful(r)) {
    if (interval > 0) wake_later(c, (int64_t)interval);
    else connect_loop(c);
    return;
  }
  char err[128] = "no-reply";
  if (r && r->error.p) snprintf(err, sizeof err, "%.*s", (int)r->error.n, r->error.p);
  count_error("connect:", err);
  if (r && bx_str_is(r->reconnect, "none")) return;
  if ((r && bx_str_is(r->reconnect, "handshake")) || !strncmp(err, "402", 3)) {
    st.rehandshakes++;
    handshake(c);
    return;
  }
  wake_later(c, interval > 100 ? (int64_t)interval : 100);
}

static void on_publish(struct client *c, const char *e, const struct bx_bmsgs *msgs) {
  c->busy = false;
  inflight--;
  int batch = (int)o.batch, ok = 0;
  char channel[32];
  snprintf(channel, sizeof channel, "/chat/%d", c->pub_room);
  if (e) {
    count_error("publish:", e);
    st.publish_failed += batch;
    t_last_pub_err = bx_now_us();
  } else {
    take_deliveries(c, msgs);
    for (size_t i = 0; i < msgs->n; i++) {
      const struct bx_bmsg *m = &msgs->m[i];
      /* ids are decimal strings of this batch's msg_id range */
      uint64_t id = 0;
      bool digits = m->id.p && m->id.n > 0 && m->id.n < 10;
      for (size_t k = 0; digits && k < m->id.n; k++) {
        digits = m->id.p[k] >= '0' && m->id.p[k] <= '9';
        id = id * 10 + (uint64_t)(m->id.p[k] - '0');
      }
      if (bx_str_is(m->channel, channel) && digits && id >= c->pub_first_id && id < (uint64_t)c->pub_first_id + (unsigned)batch &&
          m->successful)
        ok++;
    }
    st.published += ok;
    st.publish_failed += batch - ok;
    if (ok) t_last_pub_ok = bx_now_us();
    if (ok < batch) count_error("publish:refused", NULL);
    st.expected += (long long)ok * members[c->pub_room];
  }
  if (c->ready && !stopping) idle_push(c);
}

static void send_batch(struct client *c) {
  c->busy = true;
  inflight++;
  c->pub_room = c->rooms[(int)(rnd() * o.rpc)];
  c->pub_first_id = c->msg_id + 1;
  st.batches++;
  scratch.len = 0;
  bx_gbuf_printf(&scratch, "[");
  for (int i = 0; i < (int)o.batch; i++) {
    bx_gbuf_printf(&scratch, "%s{\"channel\":\"/chat/%d\",\"clientId\":%s,\"id\":\"%u\",\"data\":", i ? "," : "", c->pub_room,
                   c->cid_json, ++c->msg_id);
    size_t d0 = scratch.len;
    bx_gbuf_printf(&scratch, "{\"p\":%d,\"s\":%u,\"t\":%lld,\"x\":\"", c->g, c->seq++, (long long)bx_now_us());
    /* Pad data to SIZE bytes of JSON: the closing quote and brace count too. */
    size_t used = scratch.len - d0 + 2;
    if (used < (size_t)o.size) {
      bx_gbuf_reserve(&scratch, (size_t)o.size - used, SIZE_MAX / 2);
      memset(scratch.p + scratch.len, 'x', (size_t)o.size - used);
      scratch.len += (size_t)o.size - used;
    }
    bx_gbuf_printf(&scratch, "\"}}");
  }
  bx_gbuf_printf(&scratch, "]");
  post(c, false, R_PUBLISH, (unsigned)o.batch, &scratch);
}

/* Open-loop publishing: batch k (from 0) is due RATE/BATCH per second from t0. */
static int64_t t0;
static long long due;
static int64_t publish_tick(int64_t now) {
  long long want = 1 + (long long)floor((double)(now - t0) / 1e6 * o.rate / o.batch);
  while (due < want) {
    due++;
    if (nidle == 0) {
      st.skipped += (long long)o.batch;
      continue;
    }
    struct client *c = NULL;
    while (nidle && !c) {
      size_t k = (size_t)(rnd() * (double)nidle);
      c = idle[k];
      idle[k] = idle[--nidle];
      c->in_idle = false;
      if (!c->ready) c = NULL;   /* re-handshaking: back in the pool once it has a session */
    }
    if (!c) {
      st.skipped += (long long)o.batch;
      continue;
    }
    send_batch(c);
  }
  return t0 + (int64_t)ceil((double)due * o.batch / o.rate * 1e6);   /* when the next batch is due */
}

static int disconnect_pending;

static struct bx_bmsgs reply;

static void on_reply(struct bx_hconn *h, const char *e, int status, const char *body, size_t len) {
  struct client *c = h->user;
  char ebuf[32];
  reply.n = 0;
  if (!e && status != 200) {
    snprintf(ebuf, sizeof ebuf, "http-%d", status);
    e = ebuf;
  }
  if (!e && (len > BODY_LIMIT || bx_bmsgs_parse(&reply, body, len) < 0)) e = "bad-json";
  handle(c, h == &c->cc ? c->cc_req : c->pc_req, e, &reply);
}

/* The reply (or failure e) of request r of client c. */
static void handle(struct client *c, enum req r, const char *e, const struct bx_bmsgs *msgs) {
  switch (r) {
  case R_HANDSHAKE: {
    if (e) {
      handshake_done(c, e);
      break;
    }
    const struct bx_bmsg *m = meta_reply(msgs, "/meta/handshake");
    if (!successful(m) || !m->client_id.p || !m->client_id.n) {
      handshake_done(c, "handshake-refused");
      break;
    }
    json_t *id = json_stringn(m->client_id.p, m->client_id.n);   /* NULL if not UTF-8 */
    c->cid_json = id ? json_dumps(id, JSON_ENCODE_ANY) : NULL;
    json_decref(id);
    if (!c->cid_json) {
      handshake_done(c, "handshake-refused");
      break;
    }
    st.handshakes++;
    scratch.len = 0;
    bx_gbuf_printf(&scratch, "[");
    for (int i = 0; i < (int)o.rpc; i++)
      bx_gbuf_printf(&scratch, "%s{\"channel\":\"/meta/subscribe\",\"clientId\":%s,\"subscription\":\"/chat/%d\",\"id\":\"%u\"}",
                     i ? "," : "", c->cid_json, c->rooms[i], ++c->msg_id);
    bx_gbuf_printf(&scratch, "]");
    post(c, false, R_SUBSCRIBE, (unsigned)o.rpc, &scratch);
    break;
  }
  case R_SUBSCRIBE: {
    if (e) {
      handshake_done(c, e);
      break;
    }
    take_deliveries(c, msgs);
    int ok = 0;
    for (size_t i = 0; i < msgs->n; i++) ok += bx_str_is(msgs->m[i].channel, "/meta/subscribe") && msgs->m[i].successful;
    if (ok != (int)o.rpc) handshake_done(c, "subscribe-refused");
    else connect_now(c, true);   /* not held: CometD's client sends advice.timeout 0 first */
    break;
  }
  case R_CONNECT0:
    if (e) {
      handshake_done(c, e);
      break;
    }
    take_deliveries(c, msgs);
    if (!successful(meta_reply(msgs, "/meta/connect"))) {
      handshake_done(c, "connect-refused");
      break;
    }
    c->ready = true;
    handshake_done(c, NULL);
    break;
  case R_CONNECT:
    on_connect(c, e, msgs);
    break;
  case R_PUBLISH:
    on_publish(c, e, msgs);
    break;
  case R_DISCONNECT:
    if (ws_mode) ws_drop(c, "closed");
    else bx_hconn_close(&c->pc);
    disconnect_pending--;
    break;
  }
}

static void disconnect_all(void) {
  for (int i = 0; i < (int)o.clients; i++) {
    struct client *c = &clients[i];
    if (ws_mode && !c->cid_json) {
      ws_drop(c, "closed");
      continue;
    }
    if (ws_mode) {   /* ws.js sends it even with a publish in flight; its reply closes the socket */
      disconnect_pending++;
      scratch.len = 0;
      bx_gbuf_printf(&scratch, "[{\"channel\":\"/meta/disconnect\",\"clientId\":%s,\"id\":\"%u\"}]", c->cid_json, ++c->msg_id);
      post(c, false, R_DISCONNECT, 1, &scratch);
      continue;
    }
    bx_hconn_close(&c->cc);
    if (!c->cid_json || c->pc.busy) {   /* a publish in flight: the session expires on its own */
      bx_hconn_close(&c->pc);
      continue;
    }
    disconnect_pending++;
    scratch.len = 0;
    bx_gbuf_printf(&scratch, "[{\"channel\":\"/meta/disconnect\",\"clientId\":%s,\"id\":\"%u\"}]", c->cid_json, ++c->msg_id);
    post(c, false, R_DISCONNECT, 1, &scratch);
  }
}

/* ---- loop ---------------------------------------------------------------------------------------- */

static int64_t next_sweep;

/* One turn: deadlines and delayed connects (every SWEEP_US), due publishes, then epoll until `until`. */
static void step(int64_t until) {
  int64_t now = bx_now_us();
  if (now >= next_sweep) {
    next_sweep = now + SWEEP_US;
    for (int i = 0; i < (int)o.clients; i++) {
      struct client *c = &clients[i];
      if (ws_mode) {
        bx_ws_tick(&c->ws, now);
        ws_expire(c, now);
      } else {
        bx_hconn_tick(&c->cc, now);
        bx_hconn_tick(&c->pc, now);
      }
      if (c->wake_at && now >= c->wake_at && !stopping) {
        c->wake_at = 0;
        connect_loop(c);
      }
    }
  }
  if (publishing) {
    int64_t nd = publish_tick(now);
    if (nd < until) until = nd;
  }
  if (next_sweep < until) until = next_sweep;
  now = bx_now_us();
  int ms = until > now ? (int)((until - now + 999) / 1000) : 0;
  struct epoll_event ev[256];
  int n = epoll_wait(epfd, ev, 256, ms);
  for (int i = 0; i < n; i++) {
    if (ws_mode) bx_ws_event(ev[i].data.ptr, ev[i].events);
    else bx_hconn_event(ev[i].data.ptr, ev[i].events);
  }
}

static void run_until(int64_t t) {
  while (bx_now_us() < t) step(t);
}

static double cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static json_t *ms(int64_t us) { return json_real((double)us / 1000.0); }

static json_t *pct(double p) {
  if (!nlat) return json_null();
  double i = ceil(p * (double)nlat) - 1;
  if (i < 0) i = 0;
  if (i > (double)nlat - 1) i = (double)nlat - 1;
  return ms(lat[(size_t)i]);
}

static char watchdog_msg[512];
static void on_alarm(int sig) {
  (void)sig;
  ssize_t w = write(2, watchdog_msg, strlen(watchdog_msg));
  if (o.json) w = write(1, watchdog_msg, strlen(watchdog_msg));
  (void)w;
  _exit(1);
}

static void mark(const char *m) {
  if (!o.marks) return;
  printf("%s\n", m);
  fflush(stdout);
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;   /* every client holds two sockets */
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const char *label = *o.label ? o.label : o.url;
  double setup_s = o.setup_timeout > 0 ? o.setup_timeout : 20 + o.clients / 50;
  /* A run never outlives its worst case: setup + publishing + drain + finishing, plus slack. */
  int limit = (int)ceil(setup_s + o.duration + o.drain + 40);
  {
    json_t *w = json_pack("{s:s, s:f, s:s, s:s}", "label", label, "offered", o.rate, "engine", "c", "error", "");
    char msg[64];
    snprintf(msg, sizeof msg, "run exceeded %d s (watchdog)", limit);
    json_object_set_new(w, "error", json_string(msg));
    char *s = json_dumps(w, JSON_COMPACT);
    snprintf(watchdog_msg, sizeof watchdog_msg, "%s\n", s);
    free(s);
    json_decref(w);
  }
  signal(SIGALRM, on_alarm);
  alarm((unsigned)limit);

  rnd_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)o.seed << 1 | 1);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    perror("bx-cgen: epoll_create1");
    return 1;
  }
  int n = (int)o.clients;
  clients = xcalloc((size_t)n, sizeof *clients);
  idle = xcalloc((size_t)n, sizeof *idle);
  double fanout = plan_rooms();
  for (int i = 0; i < n; i++) {
    struct client *c = &clients[i];
    c->g = i;
    bx_hconn_init(&c->cc, epfd, (struct sockaddr *)&o.u.addr, o.u.addrlen, &c->jar, on_reply, c);
    bx_hconn_init(&c->pc, epfd, (struct sockaddr *)&o.u.addr, o.u.addrlen, &c->jar, on_reply, c);
    bx_ws_init(&c->ws, epfd, (struct sockaddr *)&o.u.addr, o.u.addrlen, BODY_LIMIT, on_ws_msg, on_ws_state, c);
  }
  char when[32];
  time_t now_wall = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now_wall));
  json_t *res = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:i, s:s, s:f}", "label", label, "engine", "c",
                          "url", o.url, "transport", o.transport, "clients", n, "rooms", (int)o.rooms, "roomsPerClient",
                          (int)o.rpc, "batch", (int)o.batch, "size", (int)o.size, "offered", o.rate, "duration", o.duration,
                          "threads", 1, "time", when, "fanout", fanout);
  const char *error = NULL;
  char ebuf[512];

  /* Setup with bounded concurrency so a thousand handshakes do not arrive at once. */
  int64_t t_setup = bx_now_us(), setup_end = t_setup + (int64_t)(setup_s * 1e6);
  setup_launch();
  while (setup_finished < n && bx_now_us() < setup_end) step(setup_end);
  json_object_set_new(res, "setupSec", json_real((double)(bx_now_us() - t_setup) / 1e6));
  int ready = 0;
  for (int i = 0; i < n; i++) ready += clients[i].ready;
  json_object_set_new(res, "ready", json_integer(ready));
  char firsts[256] = "";
  for (int i = 0; i < nfirst_err; i++)
    snprintf(firsts + strlen(firsts), sizeof firsts - strlen(firsts), "%s%s", i ? ", " : "", first_err[i]);
  if (setup_finished < n) {
    snprintf(ebuf, sizeof ebuf, "setup: %d/%d clients finished within %g s (%s)", setup_finished, n, setup_s,
             *firsts ? firsts : "no reply");
    error = ebuf;
  } else if (ready == 0) {
    snprintf(ebuf, sizeof ebuf, "no client could handshake+subscribe: %s", *firsts ? firsts : "unknown");
    error = ebuf;
  } else if (ready < n * 0.95) {
    snprintf(ebuf, sizeof ebuf, "only %d/%d clients set up: %s", ready, n, firsts);
    error = ebuf;
  }
  double cpu0 = 0, cpu1 = 0;
  int64_t t_pub_end = 0, t_end = 0;
  if (!error) {
    for (int i = 0; i < n; i++)
      if (clients[i].ready) {
        idle_push(&clients[i]);
        connect_loop(&clients[i]);
      }
    run_until(bx_now_us() + 500000);
    mark("@t0");
    cpu0 = cpu_us();
    /* The measured window starts now: setup deliveries (none expected) do not count. */
    t0 = t_last_recv = bx_now_us();
    due = 0;
    publishing = true;
    run_until(t0 + (int64_t)(o.duration * 1e6));
    publishing = false;
    t_pub_end = bx_now_us();
    /* Drain: until every expected delivery arrived, or nothing arrived for 2 s, or DRAIN s. */
    int64_t drain_end = t_pub_end + (int64_t)(o.drain * 1e6);
    for (;;) {
      int64_t t = bx_now_us();
      if (inflight == 0 && st.received >= st.expected) break;
      if (t > drain_end || (inflight == 0 && t - t_last_recv > 2000000)) break;
      step(t + 100000);
    }
    t_end = bx_now_us();
    cpu1 = cpu_us();
    mark("@end");
  }
  stopping = true;
  publishing = false;
  disconnect_all();
  int64_t fin_end = bx_now_us() + 15000000;
  while (disconnect_pending > 0 && bx_now_us() < fin_end) step(fin_end);

  if (!error) {
    qsort(lat, nlat, sizeof *lat, cmp64);
    double pub_s = (double)(t_pub_end - t0) / 1e6, wall = (double)(t_end - t0) / 1e6;
    double recv_s = fmax(pub_s, (double)(t_last_recv - t0) / 1e6);
    long long lost = st.expected > st.received ? st.expected - st.received : 0;
    double cpu = cpu1 - cpu0;
    json_t *errors = json_object();
    for (size_t i = 0; i < nerrs; i++) json_object_set_new(errors, errs[i].name, json_integer(errs[i].n));
    json_t *figs = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I}", "published",
                       (json_int_t)st.published, "publishedPerSec", (json_int_t)llround(st.published / pub_s),
                       "publishFailed", (json_int_t)st.publish_failed, "skipped", (json_int_t)st.skipped, "expected",
                       (json_int_t)st.expected, "delivered", (json_int_t)st.received, "deliveredPerSec",
                       (json_int_t)llround(st.received / recv_s), "lost", (json_int_t)lost, "lostPct",
                       st.expected ? round(100000.0 * lost / st.expected) / 1000 : 0.0, "unexpected",
                       (json_int_t)(st.received > st.expected ? st.received - st.expected : 0), "duplicated",
                       (json_int_t)st.dup, "outOfOrder", (json_int_t)st.ooo, "foreign", (json_int_t)st.foreign,
                       "connectsPerSec", (json_int_t)llround(st.connects / wall), "rehandshakes", (json_int_t)st.rehandshakes);
    json_object_update(res, figs);
    json_decref(figs);
    json_object_set_new(res, "latencyMs",
                        json_pack("{s:o, s:o, s:o, s:o, s:o}", "min", nlat ? ms(lat[0]) : json_null(), "p50", pct(0.5), "p99",
                                  pct(0.99), "p999", pct(0.999), "max", nlat ? ms(lat[nlat - 1]) : json_null()));
    json_object_set_new(res, "errors", errors);
    json_object_set_new(res, "windowSec", json_real(wall));
    json_object_set_new(res, "generatorCpuPct", json_integer(llround(cpu / 1e4 / wall)));
    json_object_set_new(res, "generatorUsPerDelivery", st.received ? json_real(round(100 * cpu / st.received) / 100) : json_null());
    if (st.published == 0) {
      char keys[200] = "";
      for (size_t i = 0; i < nerrs && i < 3; i++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", i ? ", " : "", errs[i].name);
      snprintf(ebuf, sizeof ebuf, "nothing published: %s", *keys ? keys : "no reply");
      error = ebuf;
    } else if (st.received == 0) {
      error = "nothing delivered";
    } else {
      /* A server that died or stalled mid-run: publish requests failing and none succeeding at the end
       * of the window (a merely saturated server still answers its publishers, only later). */
      int64_t tail = (int64_t)(fmin(2.0, o.duration / 2) * 1e6);
      if (t_last_pub_err >= t_pub_end - tail && t_last_pub_ok < t_pub_end - tail) {
        char keys[200] = "";
        for (size_t i = 0; i < nerrs; i++)
          if (!strncmp(errs[i].name, "publish:", 8))
            snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s%s", *keys ? ", " : "", errs[i].name);
        snprintf(ebuf, sizeof ebuf, "server dead or stalled: publishes failing and none succeeded in the last %.1f s of publishing (%s)",
                 (double)tail / 1e6, keys);
        error = ebuf;
      }
    }
  }
  if (error) json_object_set_new(res, "error", json_string(error));
  alarm(0);

  if (!o.marks) {
    json_t *l = json_object_get(res, "latencyMs");
    if (!l) {
      fprintf(stderr, "%s: ERROR %s\n", label, error);
    } else {
      char *ls = json_dumps(l, JSON_COMPACT | JSON_REAL_PRECISION(10)), *es = json_dumps(json_object_get(res, "errors"), JSON_COMPACT);
      fprintf(stderr,
              "%s: offered %g/s published %lld/s (failed %lld, skipped %lld) delivered %lld/s of expected %lld: lost %lld "
              "(%g%%) dup %lld ooo %lld\n  latency ms %s; connects %lld/s; generator cpu %lld%% (%.2f µs/delivery)%s%s%s%s\n",
              label, o.rate, (long long)json_integer_value(json_object_get(res, "publishedPerSec")), st.publish_failed,
              st.skipped, (long long)json_integer_value(json_object_get(res, "deliveredPerSec")), st.expected,
              (long long)json_integer_value(json_object_get(res, "lost")), json_real_value(json_object_get(res, "lostPct")),
              st.dup, st.ooo, ls, (long long)json_integer_value(json_object_get(res, "connectsPerSec")),
              (long long)json_integer_value(json_object_get(res, "generatorCpuPct")),
              json_real_value(json_object_get(res, "generatorUsPerDelivery")), nerrs ? "\n  errors " : "", nerrs ? es : "",
              error ? "\n  ERROR " : "", error ? error : "");
      free(ls);
      free(es);
    }
  }
  if (o.json) {
    char *s = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(10));
    printf("%s\n", s);
    free(s);
  }
  fflush(stdout);
  json_decref(res);
  for (int i = 0; i < n; i++) {
    struct client *c = &clients[i];
    bx_hconn_free(&c->cc);
    bx_hconn_free(&c->pc);
    bx_ws_free(&c->ws);
    for (size_t k = 0; k < c->npend; k++) pend_free(&c->pend[k]);
    free(c->pend);
    bx_jar_free(&c->jar);
    map_free(&c->seen);
    map_free(&c->last);
    free(c->rooms);
    free(c->cid_json);
  }
  for (size_t i = 0; i < nerrs; i++) free(errs[i].name);
  for (int i = 0; i < nfirst_err; i++) free(first_err[i]);
  free(errs);
  free(clients);
  free(idle);
  free(members);
  free(lat);
  bx_gbuf_free(&scratch);
  bx_bmsgs_free(&reply);
  bx_bmsgs_free(&wsframe);
  bx_bmsgs_free(&pushed);
  bx_url_free(&o.u);
  close(epfd);
  return 0;
}
