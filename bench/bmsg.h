/* bench/bmsg.h — the Bayeux reply scanner of the C load generator: reads the few fields the
 * generator looks at from each message of a reply body, without building a JSON tree (a tree per
 * reply cost bench/cgen.c most of its CPU with jansson). The whole body is still checked to be one
 * well-formed JSON value; anything else is malformed. */
#ifndef BX_BMSG_H
#define BX_BMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A string value, unescaped; p is NULL when the field is absent or not a string. */
struct bx_str {
  const char *p;
  size_t n;
};

struct bx_bmsg {
  struct bx_str channel, id, client_id, error, reconnect;   /* reconnect: advice.reconnect */
  bool successful;                                           /* "successful": true */
  bool has_successful;                                       /* "successful" present: a reply, not a delivery */
  bool has_interval;                                         /* advice.interval is a number */
  double interval;
  bool has_data;                                             /* "data" present, any value */
  bool has_p, has_s, has_t;                                  /* data.p/.s/.t are integers */
  int64_t p, s, t;
};

/* The messages of one reply; reused from reply to reply (bx_bmsgs_free frees it). */
struct bx_bmsgs {
  struct bx_bmsg *m;
  size_t n, cap;
  char *arena;   /* unescaped strings; as long as the body */
  size_t arena_cap;
};

/* Scan body (len bytes): an array of messages or one message. 0, or -1 when it is not well-formed
 * JSON (out is then partial). Strings in out point into body or out->arena: valid until the next call. */
int bx_bmsgs_parse(struct bx_bmsgs *out, const char *body, size_t len);
void bx_bmsgs_free(struct bx_bmsgs *out);
/* Is s exactly the C string lit? */
bool bx_str_is(struct bx_str s, const char *lit);

#endif
