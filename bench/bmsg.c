/* bench/bmsg.c — a single-pass JSON scanner for Bayeux replies (see bmsg.h). Grammar per RFC 8259;
 * nesting is limited to MAX_DEPTH; strings are unescaped only when they hold a backslash. */
#include "bmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct sc {
  const char *p, *end;
  struct bx_bmsgs *out;
  size_t alen;   /* arena bytes used */
  int depth;
};

bool bx_str_is(struct bx_str s, const char *lit) { return s.p && strlen(lit) == s.n && memcmp(s.p, lit, s.n) == 0; }

static void ws(struct sc *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int hex4(const char *p, unsigned *v) {
  *v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
               : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
    if (d > 15) return -1;
    *v = *v << 4 | d;
  }
  return 0;
}

/* A string at s->p (the opening quote); out may be NULL (skip, still checked). */
static int str(struct sc *s, struct bx_str *out) {
  const char *b = ++s->p;
  bool esc = false;
  while (s->p < s->end && *s->p != '"') {
    unsigned char c = (unsigned char)*s->p;
    if (c < 0x20) return -1;
    if (c == '\\') {
      esc = true;
      if (++s->p >= s->end) return -1;
    }
    s->p++;
  }
  if (s->p >= s->end) return -1;
  const char *e = s->p++;
  if (!esc) {
    if (out) *out = (struct bx_str){b, (size_t)(e - b)};
    return 0;
  }
  /* Unescape into the arena (never longer than the escaped text, and the arena is as long as the body). */
  char *d0 = s->out->arena + s->alen, *d = d0;
  for (const char *q = b; q < e; q++) {
    if (*q != '\\') {
      *d++ = *q;
      continue;
    }
    switch (*++q) {
    case '"': *d++ = '"'; break;
    case '\\': *d++ = '\\'; break;
    case '/': *d++ = '/'; break;
    case 'b': *d++ = '\b'; break;
    case 'f': *d++ = '\f'; break;
    case 'n': *d++ = '\n'; break;
    case 'r': *d++ = '\r'; break;
    case 't': *d++ = '\t'; break;
    case 'u': {
      unsigned v, lo;
      if (e - q < 5 || hex4(q + 1, &v) < 0) return -1;
      q += 4;
      if (v >= 0xD800 && v < 0xDC00 && e - q >= 7 && q[1] == '\\' && q[2] == 'u' && hex4(q + 3, &lo) == 0 && lo >= 0xDC00 &&
          lo < 0xE000) {
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        q += 6;
      }
      /* UTF-8 of v: at most 4 bytes for the 6 or 12 escaped ones */
      if (v < 0x80) *d++ = (char)v;
      else if (v < 0x800) *d++ = (char)(0xC0 | v >> 6), *d++ = (char)(0x80 | (v & 0x3F));
      else if (v < 0x10000) *d++ = (char)(0xE0 | v >> 12), *d++ = (char)(0x80 | (v >> 6 & 0x3F)), *d++ = (char)(0x80 | (v & 0x3F));
      else *d++ = (char)(0xF0 | v >> 18), *d++ = (char)(0x80 | (v >> 12 & 0x3F)), *d++ = (char)(0x80 | (v >> 6 & 0x3F)),
           *d++ = (char)(0x80 | (v & 0x3F));
      break;
    }
    default: return -1;
    }
  }
  s->alen += (size_t)(d - d0);
  if (out) *out = (struct bx_str){d0, (size_t)(d - d0)};
  return 0;
}

/* A number; *is_int when it has no fraction or exponent and fits 18 digits. */
static int num(struct sc *s, bool *is_int, int64_t *iv, double *dv) {
  const char *b = s->p;
  bool neg = false, integral = true;
  int64_t x = 0;
  int digits = 0;
  if (s->p < s->end && *s->p == '-') neg = true, s->p++;
  if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
  if (*s->p == '0') s->p++, digits = 1;
  else
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
      if (digits < 18) x = x * 10 + (*s->p - '0');
      digits++;
      s->p++;
    }
  if (s->p < s->end && *s->p == '.') {
    integral = false;
    s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    integral = false;
    s->p++;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9') return -1;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  }
  *is_int = integral && digits <= 18;
  *iv = neg ? -x : x;
  if (dv) {
    char tmp[64];
    size_t n = (size_t)(s->p - b);
    if (n >= sizeof tmp) n = sizeof tmp - 1;   /* a longer literal only loses digits past the 60th */
    memcpy(tmp, b, n);
    tmp[n] = 0;
    *dv = strtod(tmp, NULL);
  }
  return 0;
}

static int lit(struct sc *s, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return -1;
  s->p += n;
  return 0;
}

static int skip(struct sc *s);

/* An array or object at s->p (close: ']' or '}'): item(s, arg) reads each element or member. */
static int seq(struct sc *s, char close, int (*item)(struct sc *, void *), void *arg) {
  if (++s->depth > MAX_DEPTH) return -1;
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == close) {
    s->p++;
    s->depth--;
    return 0;
  }
  for (;;) {
    ws(s);
    if (item(s, arg) < 0) return -1;
    ws(s);
    if (s->p >= s->end) return -1;
    if (*s->p == close) break;
    if (*s->p++ != ',') return -1;
  }
  s->p++;
  s->depth--;
  return 0;
}

struct elems {
  int (*fn)(struct sc *);
};
static int elem(struct sc *s, void *arg) { return ((const struct elems *)arg)->fn(s); }
/* An array at s->p; fn reads or skips each element. */
static int array(struct sc *s, int (*fn)(struct sc *)) {
  struct elems e = {fn};
  return seq(s, ']', elem, &e);
}

struct fields {
  int (*field)(struct sc *, struct bx_str, void *);   /* NULL: skip every value */
  void *arg;
};

static int member(struct sc *s, void *arg) {
  const struct fields *f = arg;
  struct bx_str key;
  if (s->p >= s->end || *s->p != '"' || str(s, &key) < 0) return -1;
  ws(s);
  if (s->p >= s->end || *s->p++ != ':') return -1;
  ws(s);
  if (s->p >= s->end) return -1;
  return f->field ? f->field(s, key, f->arg) : skip(s);
}

/* An object at s->p; field(s, key, arg) reads or skips each value. */
static int object(struct sc *s, int (*field)(struct sc *, struct bx_str, void *), void *arg) {
  struct fields f = {field, arg};
  return seq(s, '}', member, &f);
}

static int skip(struct sc *s) {
  if (s->p >= s->end) return -1;
  bool is_int;
  int64_t iv;
  switch (*s->p) {
  case '"': return str(s, NULL);
  case '{': return object(s, NULL, NULL);
  case '[': return array(s, skip);
  case 't': return lit(s, "true");
  case 'f': return lit(s, "false");
  case 'n': return lit(s, "null");
  default: return num(s, &is_int, &iv, NULL);
  }
}

/* A string field if the value is a string, else skipped (the field stays absent). */
static int str_field(struct sc *s, struct bx_str *out) {
  if (*s->p == '"') return str(s, out);
  return skip(s);
}

static int int_field(struct sc *s, bool *has, int64_t *v) {
  if (*s->p != '-' && (*s->p < '0' || *s->p > '9')) return skip(s);
  return num(s, has, v, NULL);
}

static int data_field(struct sc *s, struct bx_str k, void *arg) {
  struct bx_bmsg *m = arg;
  if (bx_str_is(k, "p")) return int_field(s, &m->has_p, &m->p);
  if (bx_str_is(k, "s")) return int_field(s, &m->has_s, &m->s);
  if (bx_str_is(k, "t")) return int_field(s, &m->has_t, &m->t);
  return skip(s);
}

static int advice_field(struct sc *s, struct bx_str k, void *arg) {
  struct bx_bmsg *m = arg;
  if (bx_str_is(k, "reconnect")) return str_field(s, &m->reconnect);
  if (bx_str_is(k, "interval") && (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))) {
    bool is_int;
    int64_t iv;
    m->has_interval = true;
    return num(s, &is_int, &iv, &m->interval);
  }
  return skip(s);
}

static int msg_field(struct sc *s, struct bx_str k, void *arg) {
  struct bx_bmsg *m = arg;
  if (bx_str_is(k, "channel")) return str_field(s, &m->channel);
  if (bx_str_is(k, "id")) return str_field(s, &m->id);
  if (bx_str_is(k, "clientId")) return str_field(s, &m->client_id);
  if (bx_str_is(k, "error")) return str_field(s, &m->error);
  if (bx_str_is(k, "successful")) {
    m->successful = *s->p == 't';
    m->has_successful = true;
    return skip(s);
  }
  if (bx_str_is(k, "advice") && *s->p == '{') return object(s, advice_field, m);
  if (bx_str_is(k, "data")) {
    m->has_data = true;
    m->has_p = m->has_s = m->has_t = false;
    if (*s->p == '{') return object(s, data_field, m);
  }
  return skip(s);
}

/* A message (an object) or any other value, skipped (the Node generator ignores those too). */
static int message(struct sc *s) {
  if (s->p >= s->end || *s->p != '{') return skip(s);
  struct bx_bmsgs *o = s->out;
  if (o->n == o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 64;
    struct bx_bmsg *m = realloc(o->m, cap * sizeof *m);
    if (!m) {
      fputs("bench: out of memory\n", stderr);
      exit(1);
    }
    o->m = m;
    o->cap = cap;
  }
  struct bx_bmsg *m = &o->m[o->n++];
  memset(m, 0, sizeof *m);
  return object(s, msg_field, m);
}

int bx_bmsgs_parse(struct bx_bmsgs *out, const char *body, size_t len) {
  out->n = 0;
  if (len + 1 > out->arena_cap) {
    char *a = realloc(out->arena, len + 1);
    if (!a) {
      fputs("bench: out of memory\n", stderr);
      exit(1);
    }
    out->arena = a;
    out->arena_cap = len + 1;
  }
  struct sc s = {.p = body, .end = body + len, .out = out};
  ws(&s);
  if ((s.p < s.end && *s.p == '[' ? array(&s, message) : message(&s)) < 0) return -1;
  ws(&s);
  return s.p == s.end ? 0 : -1;
}

void bx_bmsgs_free(struct bx_bmsgs *out) {
  free(out->m);
  free(out->arena);
  memset(out, 0, sizeof *out);
}
