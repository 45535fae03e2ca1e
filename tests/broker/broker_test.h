/* broker_test.h — helpers shared by the broker test binaries (header-only: each
 * tests/broker/test_*.c is its own program). The Redis server is private to the run:
 * tests/run.sh starts it and passes its port in BX_TEST_REDIS_PORT. */
#ifndef BX_BROKER_TEST_H
#define BX_BROKER_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <poll.h>

#include "store.h"

#define T_PREFIX "bayeux:"
#define T_MAXARGS 64

static inline int t_port(void) {
    const char *p = getenv("BX_TEST_REDIS_PORT");
    if (!p || atoi(p) <= 0) {
        fprintf(stderr, "BX_TEST_REDIS_PORT is not set: run through tests/run.sh or start a redis-server\n");
        exit(2);
    }
    return atoi(p);
}

static inline bx_store_sync *t_open(void) {
    char err[256];
    bx_store_sync *s = bx_store_sync_open("127.0.0.1", t_port(), T_PREFIX, err, sizeof err);
    if (!s) fprintf(stderr, "bx_store_sync_open: %s\n", err);
    assert_non_null(s);
    return s;
}

/* Collect NULL-terminated string varargs. */
static inline int t_collect(const char **argv, va_list ap) {
    int n = 0;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        assert_true(n < T_MAXARGS);
        argv[n++] = a;
    }
    return n;
}

/* FCALL fn with string args (NULL-terminated); the call must succeed. Caller frees. */
static inline redisReply *t_fcall(bx_store_sync *s, const char *fn, ...) {
    const char *argv[T_MAXARGS];
    char err[512];
    va_list ap;
    va_start(ap, fn);
    int n = t_collect(argv, ap);
    va_end(ap);
    redisReply *r = bx_store_sync_fcall(s, fn, n, argv, NULL, err, sizeof err);
    if (!r) fprintf(stderr, "%s failed: %s\n", fn, err);
    assert_non_null(r);
    return r;
}

/* FCALL fn that must fail; returns the error text in a static buffer. */
static inline const char *t_fcall_err(bx_store_sync *s, const char *fn, ...) {
    static char err[512];
    const char *argv[T_MAXARGS];
    va_list ap;
    va_start(ap, fn);
    int n = t_collect(argv, ap);
    va_end(ap);
    err[0] = 0;
    redisReply *r = bx_store_sync_fcall(s, fn, n, argv, NULL, err, sizeof err);
    if (r) {
        fprintf(stderr, "%s unexpectedly succeeded\n", fn);
        freeReplyObject(r);
    }
    assert_null(r);
    return err;
}

/* Any Redis command (string args, NULL-terminated); must succeed. Caller frees. */
static inline redisReply *t_cmd(bx_store_sync *s, ...) {
    const char *argv[T_MAXARGS];
    char err[512];
    va_list ap;
    va_start(ap, s);
    int n = t_collect(argv, ap);
    va_end(ap);
    redisReply *r = bx_store_sync_command(s, n, argv, NULL, err, sizeof err);
    if (!r) fprintf(stderr, "%s failed: %s\n", argv[0], err);
    assert_non_null(r);
    return r;
}

static inline long long t_cmd_int(bx_store_sync *s, ...) {
    const char *argv[T_MAXARGS];
    char err[512];
    va_list ap;
    va_start(ap, s);
    int n = t_collect(argv, ap);
    va_end(ap);
    redisReply *r = bx_store_sync_command(s, n, argv, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static inline void t_flush(bx_store_sync *s) {
    freeReplyObject(t_cmd(s, "FLUSHALL", NULL));
    /* FLUSHALL keeps functions; the library stays loaded. */
}

/* Element i of an array reply as a string (status, string or integer rendered). */
static inline const char *t_str(const redisReply *r, size_t i) {
    static char buf[8][32];
    static int slot;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(i < r->elements);
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER) {
        slot = (slot + 1) % 8;
        snprintf(buf[slot], sizeof buf[slot], "%lld", e->integer);
        return buf[slot];
    }
    assert_true(e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS);
    return e->str;
}

static inline long long t_int(const redisReply *r, size_t i) {
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_true(i < r->elements);
    assert_int_equal(r->element[i]->type, REDIS_REPLY_INTEGER);
    return r->element[i]->integer;
}

/* Messages queued for cid: the queue list minus its sentinel (element 1, ""), which must
 * be there for as long as the session lives. */
static inline long long t_queued(bx_store_sync *s, const char *cid) {
    char key[128];
    snprintf(key, sizeof key, T_PREFIX "{%s}:q", cid);
    redisReply *r = t_cmd(s, "LINDEX", key, "0", NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 0);
    freeReplyObject(r);
    return t_cmd_int(s, "LLEN", key, NULL) - 1;
}

/* Default timings used by the tests (ms). */
#define T_EXPIRY "10000"
#define T_TTL "60000"
#define T_TIMEOUT "20000"

static inline void t_handshake(bx_store_sync *s, const char *cid, const char *browser) {
    redisReply *r = t_fcall(s, "bx_handshake", cid, browser, "long-polling", T_EXPIRY, T_TTL, "0", "", NULL);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
}

/* bx_connect with hold=1, no ack, max 1 session per browser. Caller frees. */
static inline redisReply *t_connect(bx_store_sync *s, const char *cid, const char *worker, const char *token) {
    return t_fcall(s, "bx_connect", cid, "", worker, token, "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1",
                   "long-polling", NULL);
}

/* Handshake + the first (never held) connect: the session is connected, nothing parked. */
static inline void t_session(bx_store_sync *s, const char *cid, const char *browser) {
    t_handshake(s, cid, browser);
    redisReply *r = t_connect(s, cid, "w0", "first");
    assert_string_equal(t_str(r, 0), "empty");
    assert_int_equal(t_int(r, 1), 1);
    freeReplyObject(r);
}

static inline void t_subscribe(bx_store_sync *s, const char *cid, const char *channel) {
    redisReply *r = t_fcall(s, "bx_subscribe", cid, "", T_EXPIRY, T_TTL, channel, NULL);
    assert_string_equal(t_str(r, 0), "ok");
    freeReplyObject(r);
}

/* A plain hiredis connection SUBSCRIBEd to Pwake:<worker>, reads time out after 1 s. */
static inline redisContext *t_wake_listen(const char *worker) {
    struct timeval tv = { 2, 0 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", t_port(), tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    struct timeval rt = { 1, 0 };
    redisSetTimeout(c, rt);
    char chan[128];
    snprintf(chan, sizeof chan, T_PREFIX "wake:%s", worker);
    redisReply *r = redisCommand(c, "SUBSCRIBE %s", chan);
    assert_non_null(r);
    freeReplyObject(r);
    return c;
}

/* Next wake payload within ms milliseconds (malloc'd, caller frees), or NULL. The context
 * stays usable after a timeout (we poll the socket instead of using a read timeout). */
static inline char *t_wake_wait(redisContext *c, int ms) {
    void *v = NULL;
    for (;;) {
        if (redisGetReplyFromReader(c, &v) != REDIS_OK) return NULL;
        if (v) break;
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        if (poll(&pfd, 1, ms) <= 0) return NULL;
        if (redisBufferRead(c) != REDIS_OK) return NULL;
    }
    redisReply *r = v;
    char *out = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
        out = strdup(r->element[2]->str);
    freeReplyObject(r);
    return out;
}

static inline char *t_wake_next(redisContext *c) { return t_wake_wait(c, 500); }

/* Assert the next wake payload equals want. */
static inline void t_wake_expect(redisContext *c, const char *want) {
    char *p = t_wake_next(c);
    if (!p || strcmp(p, want) != 0) fprintf(stderr, "wake: got \"%s\", want \"%s\"\n", p ? p : "(none)", want);
    assert_non_null(p);
    assert_string_equal(p, want);
    free(p);
}

/* Replace the batch numbers of a "p" payload's session lines ("\n<cid> <token> <batch> <idx>") by "B"
 * in place (batch numbers are times in ms); returns the last one replaced, 0 if none. */
static inline long long t_unbatch(char *p) {
    long long last = 0;
    char *line = strchr(p, '\n');
    while (line && (line = strchr(line + 1, '\n')) != NULL) {
        char *a = strchr(line + 1, ' '), *b = a ? strchr(a + 1, ' ') : NULL, *c = b ? strchr(b + 1, ' ') : NULL;
        char *nl = strchr(line + 1, '\n');
        if (!c || (nl && c > nl))
            continue;
        last = atoll(b + 1);
        b[1] = 'B';
        memmove(b + 2, c, strlen(c) + 1);
    }
    return last;
}

/* A pushed poll of a "p" wake payload (broker/API.md): its messages in delivery order. */
typedef struct t_push {
    char cid[65], token[65];
    long long batch;
    int n;
    char msg[64][128];
} t_push;

/* Parse a "p" payload holding exactly one session; 0 on success, -1 when malformed. */
static inline int t_push_parse(const char *p, t_push *out) {
    int npool, nsess, used = 0;
    char pool[64][128];
    memset(out, 0, sizeof *out);
    if (sscanf(p, "p %d %d\n%n", &npool, &nsess, &used) != 2 || nsess != 1 || npool < 1 || npool > 64) return -1;
    p += used;
    for (int i = 0; i < npool; i++) {
        int len = 0;
        if (sscanf(p, "%d:%n", &len, &used) != 1 || len < 1 || len > 127) return -1;
        p += used;
        memcpy(pool[i], p, (size_t)len);
        pool[i][len] = 0;
        p += len;
    }
    if (sscanf(p, "\n%64s %64s %lld %n", out->cid, out->token, &out->batch, &used) != 3) return -1;
    p += used;
    for (;;) {
        int j = 0;
        if (sscanf(p, "%d%n", &j, &used) != 1 || j < 1 || j > npool || out->n >= 64) return -1;
        strcpy(out->msg[out->n++], pool[j - 1]);
        p += used;
        if (*p != ',') break;
        p++;
    }
    return *p ? -1 : 0;
}

#endif
