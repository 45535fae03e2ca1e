/* test_concurrency.c — publish racing drain-or-park from separate connections and threads.
 * A consumer thread behaves like a worker: connect (drain or park), wait for its wake-up,
 * drain, confirm. The publisher thread publishes numbered messages meanwhile. Every
 * consumer must see 0..N-1 exactly once and in order: a lost wake-up shows up as a
 * consumer stuck parked with a non-empty queue, a lost or duplicated message as a gap
 * or repeat in the sequence. */
#include <pthread.h>
#include <unistd.h>

#include "broker_test.h"

#include "channel.h"

typedef struct consumer {
    char cid[32];
    char worker[32];
    int n;           /* messages expected */
    int got;         /* next expected sequence number */
    int parks;       /* how often the consumer parked (the race needs both paths) */
    int drains;      /* messages that arrived through a wake-up */
    int pushes;      /* wake-ups that carried the messages */
    char fail[512];  /* first failure, empty when fine */
} consumer;

typedef struct publisher {
    const char *channel;
    int n;
    consumer *lockstep; /* when set: after each burst, wait until it has everything */
    char fail[512];
} publisher;

/* Check and count the messages of a "msgs" reply (from element first on). */
static int take(consumer *c, const redisReply *r, size_t first) {
    for (size_t i = first; i < r->elements; i++) {
        int seq = -1;
        if (r->element[i]->type != REDIS_REPLY_STRING ||
            sscanf(r->element[i]->str, "{\"seq\":%d}", &seq) != 1 || seq != c->got) {
            snprintf(c->fail, sizeof c->fail, "%s: got %s, want seq %d", c->cid,
                     r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->str : "?", c->got);
            return -1;
        }
        __atomic_store_n(&c->got, c->got + 1, __ATOMIC_RELEASE);
    }
    return 0;
}

static int confirm(bx_store_sync *s, consumer *c, long long batch) {
    char b[32], err[256];
    snprintf(b, sizeof b, "%lld", batch);
    const char *argv[] = { c->cid, b };
    redisReply *r = bx_store_sync_fcall(s, "bx_confirm", 2, argv, NULL, err, sizeof err);
    if (!r) {
        snprintf(c->fail, sizeof c->fail, "confirm: %s", err);
        return -1;
    }
    freeReplyObject(r);
    return 0;
}

static void *consume(void *arg) {
    consumer *c = arg;
    char err[256];
    bx_store_sync *s = bx_store_sync_open("127.0.0.1", t_port(), T_PREFIX, err, sizeof err);
    redisContext *wake = NULL;
    if (!s) {
        snprintf(c->fail, sizeof c->fail, "open: %s", err);
        return NULL;
    }
    struct timeval tv = { 2, 0 };
    wake = redisConnectWithTimeout("127.0.0.1", t_port(), tv);
    redisReply *sub = wake ? redisCommand(wake, "SUBSCRIBE " T_PREFIX "wake:%s", c->worker) : NULL;
    if (!sub) {
        snprintf(c->fail, sizeof c->fail, "subscribe failed");
        goto out;
    }
    freeReplyObject(sub);
    for (long tok = 0; c->got < c->n && !c->fail[0]; tok++) {
        char token[32];
        snprintf(token, sizeof token, "t%ld", tok);
        const char *argv[] = { c->cid, "", c->worker, token, "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1",
                               "long-polling" };
        redisReply *r = bx_store_sync_fcall(s, "bx_connect", 11, argv, NULL, err, sizeof err);
        if (!r) {
            snprintf(c->fail, sizeof c->fail, "connect: %s", err);
            break;
        }
        if (strcmp(r->element[0]->str, "msgs") == 0) {
            long long batch = r->element[3]->integer;
            if (take(c, r, 4) == 0) confirm(s, c, batch);
            freeReplyObject(r);
            continue;
        }
        int parked = strcmp(r->element[0]->str, "parked") == 0;
        freeReplyObject(r);
        if (!parked) continue; /* "empty": first connect */
        c->parks++;
        /* Parked: only a wake-up may end this (the timeout is far away). */
        for (;;) {
            char *p = t_wake_wait(wake, 5000);
            if (!p) {
                snprintf(c->fail, sizeof c->fail, "%s: parked at seq %d and no wake-up within 5 s "
                         "(lost wake-up)", c->cid, c->got);
                break;
            }
            char want[64];
            snprintf(want, sizeof want, "w %s", c->cid);
            int mine = strcmp(p, want) == 0;
            t_push push;
            int pushed = !mine && t_push_parse(p, &push) == 0 && strcmp(push.cid, c->cid) == 0 &&
                         strcmp(push.token, token) == 0;
            free(p);
            if (!mine && !pushed) {
                snprintf(c->fail, sizeof c->fail, "%s: unexpected wake-up", c->cid);
                break;
            }
            /* A pushed poll is answered from the payload, like an idle worker does — or, every
             * third time, drained, like a worker that was busy or lost the payload. */
            if (pushed && (c->pushes++ % 3) != 2) {
                int before = c->got;
                for (int i = 0; i < push.n && !c->fail[0]; i++) {
                    int seq = -1;
                    if (sscanf(push.msg[i], "{\"seq\":%d}", &seq) != 1 || seq != c->got)
                        snprintf(c->fail, sizeof c->fail, "%s: pushed %s, want seq %d", c->cid, push.msg[i], c->got);
                    else
                        __atomic_store_n(&c->got, c->got + 1, __ATOMIC_RELEASE);
                }
                if (!c->fail[0]) confirm(s, c, push.batch);
                c->drains += c->got - before;
                break;
            }
            const char *dargv[] = { c->cid, token, "0", T_EXPIRY, T_TTL };
            r = bx_store_sync_fcall(s, "bx_drain", 5, dargv, NULL, err, sizeof err);
            if (!r) {
                snprintf(c->fail, sizeof c->fail, "drain: %s", err);
                break;
            }
            int msgs = strcmp(r->element[0]->str, "msgs") == 0;
            if (msgs) {
                long long batch = r->element[1]->integer;
                int before = c->got;
                if (take(c, r, 2) == 0) confirm(s, c, batch);
                c->drains += c->got - before;
            }
            freeReplyObject(r);
            if (msgs) break;
        }
    }
out:
    if (wake) redisFree(wake);
    bx_store_sync_close(s);
    return NULL;
}

static void *produce(void *arg) {
    publisher *p = arg;
    char err[256], msg[64];
    unsigned seed = 12345;
    bx_store_sync *s = bx_store_sync_open("127.0.0.1", t_port(), T_PREFIX, err, sizeof err);
    if (!s) {
        snprintf(p->fail, sizeof p->fail, "open: %s", err);
        return NULL;
    }
    char **wild = NULL;
    int nw = bx_channel_wildcards(p->channel, &wild);
    const char *argv[T_MAXARGS] = { "", "", T_EXPIRY, T_TTL, p->channel, msg, "1", "-1" };
    for (int i = 0; i < nw; i++) argv[8 + i] = wild[i];
    for (int i = 0; i < p->n; i++) {
        snprintf(msg, sizeof msg, "{\"seq\":%d}", i);
        redisReply *r = bx_store_sync_fcall(s, "bx_publish", 8 + nw, argv, NULL, err, sizeof err);
        if (!r) {
            snprintf(p->fail, sizeof p->fail, "publish %d: %s", i, err);
            break;
        }
        freeReplyObject(r);
        if (!p->lockstep) continue;
        /* Bursts of 1..3, then wait until the consumer has them all: a lost wake-up cannot
         * hide behind the next publish. The next burst starts at once, racing the
         * consumer's confirm + connect (drain-or-park). */
        if ((unsigned)rand_r(&seed) % 3 != 0 && i + 1 < p->n) continue;
        int waited = 0;
        while (__atomic_load_n(&p->lockstep->got, __ATOMIC_ACQUIRE) < i + 1 && !p->lockstep->fail[0]) {
            if (++waited > 100000) { /* 100000 x 50 us = 5 s */
                snprintf(p->fail, sizeof p->fail, "consumer stuck at %d of %d: lost wake-up",
                         p->lockstep->got, i + 1);
                break;
            }
            usleep(50);
        }
        if (p->fail[0] || p->lockstep->fail[0]) break;
        /* Sometimes give the consumer time to park first, sometimes race it. */
        static const unsigned pauses[] = { 0, 0, 10, 50, 200 };
        unsigned pause = pauses[(unsigned)rand_r(&seed) % 5];
        if (pause) usleep(pause);
    }
    bx_channel_wildcards_free(wild);
    bx_store_sync_close(s);
    return NULL;
}

/* Run one publisher and n consumers (already subscribed) to completion. */
static void run(publisher *p, consumer *cs, int n) {
    pthread_t pt, ct[8];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) assert_int_equal(pthread_create(&ct[i], NULL, consume, &cs[i]), 0);
    assert_int_equal(pthread_create(&pt, NULL, produce, p), 0);
    pthread_join(pt, NULL);
    for (int i = 0; i < n; i++) pthread_join(ct[i], NULL);
    if (p->fail[0]) fprintf(stderr, "publisher: %s\n", p->fail);
    assert_string_equal(p->fail, "");
    for (int i = 0; i < n; i++) {
        if (cs[i].fail[0]) fprintf(stderr, "consumer: %s\n", cs[i].fail);
        assert_string_equal(cs[i].fail, "");
        assert_int_equal(cs[i].got, p->n);
    }
}

static void test_race_publish_vs_drain_or_park(void **state) {
    (void)state;
    bx_store_sync *s = t_open();
    t_flush(s);
    t_session(s, "racer", "");
    t_subscribe(s, "racer", "/race");
    consumer c = { .cid = "racer", .worker = "wr", .n = 10000 };
    publisher p = { .channel = "/race", .n = 10000, .lockstep = &c };
    run(&p, &c, 1);
    /* Both paths of the race were taken many times, or the test proved nothing. */
    fprintf(stderr, "race: %d parks, %d messages via wake-ups, %d pushed wake-ups\n", c.parks, c.drains, c.pushes);
    assert_true(c.parks > 100);
    assert_true(c.drains > 100);
    assert_true(c.pushes > 30); /* both the push and the drain path of a pushed poll ran */
    /* Nothing left behind. */
    assert_int_equal(t_queued(s, "racer"), 0);
    assert_int_equal(t_cmd_int(s, "EXISTS", T_PREFIX "{racer}:f", NULL), 0);
    bx_store_sync_close(s);
}

static void test_order_at_every_subscriber(void **state) {
    (void)state;
    bx_store_sync *s = t_open();
    t_flush(s);
    /* Four subscribers reach /o/a/b by different names; o4 by several at once. */
    const char *subs[4][3] = {
        { "/o/a/b", NULL, NULL }, { "/o/a/*", NULL, NULL }, { "/o/**", NULL, NULL },
        { "/o/a/b", "/o/a/*", "/**" },
    };
    consumer cs[4];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 4; i++) {
        snprintf(cs[i].cid, sizeof cs[i].cid, "o%d", i + 1);
        snprintf(cs[i].worker, sizeof cs[i].worker, "wo%d", i); /* a wake channel each */
        cs[i].n = 1000;
        t_session(s, cs[i].cid, "");
        for (int j = 0; j < 3 && subs[i][j]; j++) t_subscribe(s, cs[i].cid, subs[i][j]);
    }
    publisher p = { .channel = "/o/a/b", .n = 1000 };
    run(&p, cs, 4);
    bx_store_sync_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_race_publish_vs_drain_or_park),
        cmocka_unit_test(test_order_at_every_subscriber),
    };
    return cmocka_run_group_tests_name("broker concurrency", tests, NULL, NULL);
}
