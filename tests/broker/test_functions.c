/* test_functions.c — the function library (broker/bayeux.lua) against a real redis-server:
 * session life cycle, drain-or-park, wake-ups, in-flight/ack, maxQueue, wildcard fan-out,
 * sweep back to the baseline, commands per publish, bad arguments and wrong-type keys. */
#include <unistd.h>

#include "broker_test.h"

#include "channel.h"

static bx_store_sync *S;

static int setup(void **state) {
    (void)state;
    t_flush(S);
    return 0;
}

/* Publish with the channel's wildcard names computed by shared/channel, as workers do. */
static redisReply *publish(const char *cid, const char *channel, const char *msg, const char *max_queue) {
    char **wild = NULL;
    int nw = bx_channel_wildcards(channel, &wild);
    assert_true(nw >= 0);
    const char *argv[T_MAXARGS] = { cid, "", T_EXPIRY, T_TTL, channel, msg, "1", max_queue };
    int n = 8;
    for (int i = 0; i < nw; i++) argv[n++] = wild[i];
    char err[256];
    redisReply *r = bx_store_sync_fcall(S, "bx_publish", n, argv, NULL, err, sizeof err);
    if (!r) fprintf(stderr, "bx_publish: %s\n", err);
    assert_non_null(r);
    bx_channel_wildcards_free(wild);
    assert_string_equal(t_str(r, 0), "ok");
    return r;
}

static long long publish_n(const char *cid, const char *channel, const char *msg) {
    redisReply *r = publish(cid, channel, msg, "-1");
    long long n = t_int(r, 1);
    freeReplyObject(r);
    return n;
}

static void test_handshake_connect_park(void **state) {
    (void)state;
    t_handshake(S, "c1", "b1");
    redisReply *r = t_fcall(S, "bx_connect", "c1", "b1", "w1", "t1", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL,
                            "1", "callback-polling", NULL);
    /* First connect: never held; transport differs from the handshake's. */
    assert_string_equal(t_str(r, 0), "empty");
    assert_int_equal(t_int(r, 1), 1);
    assert_int_equal(t_int(r, 2), 1);
    freeReplyObject(r);
    r = t_fcall(S, "bx_connect", "c1", "b1", "w1", "t2", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL,
                "1", "callback-polling", NULL);
    assert_string_equal(t_str(r, 0), "parked");
    assert_int_equal(t_int(r, 1), 0);
    assert_int_equal(t_int(r, 2), 0);
    freeReplyObject(r);
    r = t_cmd(S, "HMGET", T_PREFIX "{c1}:s", "w", "k", "st", NULL);
    assert_string_equal(t_str(r, 0), "w1");
    assert_string_equal(t_str(r, 1), "t2");
    assert_string_equal(t_str(r, 2), "c");
    freeReplyObject(r);
    r = t_cmd(S, "HGET", T_PREFIX "parked", "c1", NULL); /* not woken yet */
    assert_string_equal(r->str, "w1");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "browser:b1:held", NULL), 0); /* no held set any more */
    /* A wrong browser is an unknown session, and changes nothing. */
    r = t_fcall(S, "bx_connect", "c1", "b2", "w1", "t3", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL,
                "1", "long-polling", NULL);
    assert_int_equal(r->elements, 1);
    assert_string_equal(t_str(r, 0), "unknown");
    freeReplyObject(r);
    r = t_cmd(S, "HGET", T_PREFIX "{c1}:s", "k", NULL);
    assert_string_equal(r->str, "t2");
    freeReplyObject(r);
    /* Unknown session. */
    r = t_connect(S, "nope", "w1", "t9");
    assert_string_equal(t_str(r, 0), "unknown");
    freeReplyObject(r);
}

static void test_publish_wakes_once_per_worker(void **state) {
    (void)state;
    redisContext *w1 = t_wake_listen("w1");
    redisContext *w2 = t_wake_listen("w2");
    const char *ids[] = { "a1", "a2", "a3" };
    const char *workers[] = { "w1", "w1", "w2" };
    for (int i = 0; i < 3; i++) {
        t_session(S, ids[i], "");
        t_subscribe(S, ids[i], "/chat/a");
        /* a1, a2: long-polling (pushed); a3: websocket with the ack extension (delivers on connects
         * only: plain wake-up) */
        if (i == 2)
            freeReplyObject(t_cmd(S, "HSET", T_PREFIX "{a3}:s", "ack", "1", NULL));
        redisReply *r = t_fcall(S, "bx_connect", ids[i], "", workers[i], ids[i], "-1", "1", T_TIMEOUT, T_EXPIRY,
                                T_TTL, "-1", i < 2 ? "long-polling" : "websocket", NULL);
        assert_string_equal(t_str(r, 0), "parked");
        freeReplyObject(r);
    }
    redisReply *r = t_cmd(S, "ZSCORE", T_PREFIX "expiry", "a1", NULL);
    long long parked_expiry = atoll(r->str); /* park time + timeout + expiry */
    freeReplyObject(r);
    r = publish("", "/chat/a", "{\"m\":1}", "-1");
    assert_int_equal(t_int(r, 1), 3);
    assert_int_equal(t_int(r, 3), 2); /* workers woken */
    freeReplyObject(r);
    /* answered by the push: it expires maxInterval after now, not after the poll's timeout */
    r = t_cmd(S, "ZSCORE", T_PREFIX "expiry", "a1", NULL);
    assert_true(atoll(r->str) <= parked_expiry - atoll(T_TIMEOUT) + 1000);
    freeReplyObject(r);
    /* One payload for both polls of w1, the message once in its pool (set order: either way round). */
    char *p = t_wake_next(w1);
    assert_non_null(p);
    long long a1_batch = t_unbatch(p);
    assert_true(strcmp(p, "p 1 2\n7:{\"m\":1}\na1 a1 B 1\na2 a2 B 1") == 0 ||
                strcmp(p, "p 1 2\n7:{\"m\":1}\na2 a2 B 1\na1 a1 B 1") == 0);
    free(p);
    /* pushed: in-flight as batch 1, unparked, the token remembered as pk */
    r = t_cmd(S, "LRANGE", T_PREFIX "{a1}:f", "0", "-1", NULL);
    assert_int_equal(r->elements, 1);
    char tagged[64];
    snprintf(tagged, sizeof tagged, "%lld|{\"m\":1}", a1_batch);
    assert_string_equal(r->element[0]->str, tagged);
    freeReplyObject(r);
    r = t_cmd(S, "HMGET", T_PREFIX "{a1}:s", "w", "k", "pk", NULL);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
    assert_string_equal(t_str(r, 2), "a1");
    freeReplyObject(r);
    /* the worker that could not answer from the payload drains by the pushed token */
    r = t_fcall(S, "bx_drain", "a2", "a2", "0", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "msgs");
    assert_int_equal(r->elements, 3);
    assert_string_equal(t_str(r, 2), "{\"m\":1}");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "HSTRLEN", T_PREFIX "{a2}:s", "pk", NULL), 0); /* cleared */
    /* the next connect clears pk; the in-flight batch answered from the payload is confirmed */
    char num[32];
    snprintf(num, sizeof num, "%lld", a1_batch);
    freeReplyObject(t_fcall(S, "bx_confirm", "a1", num, NULL));
    r = t_connect(S, "a1", "w1", "a1b");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "HSTRLEN", T_PREFIX "{a1}:s", "pk", NULL), 0);
    t_wake_expect(w2, "w a3");
    assert_int_equal(t_cmd_int(S, "HLEN", T_PREFIX "parked", NULL), 1); /* all three woken; a1 parked again */
    /* Already notified and not drained yet: a second publish queues but does not wake again. */
    assert_int_equal(publish_n("", "/chat/a", "{\"m\":2}"), 3);
    assert_null(t_wake_next(w2));
    p = t_wake_next(w1); /* a1 parked again: pushed, a later batch */
    assert_non_null(p);
    assert_true(t_unbatch(p) > a1_batch);
    assert_string_equal(p, "p 1 1\n7:{\"m\":2}\na1 a1b B 1");
    free(p);
    /* The woken worker drains: both messages, then the session is no longer parked. */
    r = t_fcall(S, "bx_drain", "a3", "a3", "0", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "msgs");
    assert_int_equal(r->elements, 4);
    assert_string_equal(t_str(r, 2), "{\"m\":1}");
    assert_string_equal(t_str(r, 3), "{\"m\":2}");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{a3}:s", "w", NULL), 0);
    /* Drain by a token that no longer holds the session. */
    r = t_fcall(S, "bx_drain", "a3", "a3", "0", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "superseded");
    freeReplyObject(r);
    r = t_fcall(S, "bx_drain", "zz", "a3", "0", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "gone");
    freeReplyObject(r);
    redisFree(w1);
    redisFree(w2);
}

static void test_drain_parked_and_final(void **state) {
    (void)state;
    t_session(S, "d1", "");
    redisReply *r = t_connect(S, "d1", "w1", "tok");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    /* Spurious wake-up: nothing queued, not final → stays parked. */
    r = t_fcall(S, "bx_drain", "d1", "tok", "0", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{d1}:s", "w", NULL), 1);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "parked", "d1", NULL), 1);
    /* Timeout: final → empty, unparked. */
    r = t_fcall(S, "bx_drain", "d1", "tok", "1", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "empty");
    assert_int_equal(t_int(r, 1), 0);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{d1}:s", "w", NULL), 0);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "parked", NULL), 0);
}

/* A new session cid subscribed to channel whose websocket connect (token "tok", worker w1) is parked;
 * returns the session's batch number from the reply. */
static long long ws_parked(const char *cid, const char *channel) {
    t_session(S, cid, "");
    t_subscribe(S, cid, channel);
    redisReply *r = t_fcall(S, "bx_connect", cid, "", "w1", "tok", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1",
                            "websocket", NULL);
    assert_string_equal(t_str(r, 0), "parked");
    long long bn = t_int(r, 3);
    freeReplyObject(r);
    return bn;
}

/* One message in p1's queue (a publish pushes to a held websocket connect itself when the queue is empty:
 * test_ws_push_through; a queue fills when it was not parked); bx_push returns just it as a batch after
 * `after` (batch numbers only grow); returns that batch. */
static long long push_one(const char *msg, long long after) {
    freeReplyObject(t_cmd(S, "RPUSH", T_PREFIX "{p1}:q", msg, NULL));
    redisReply *r = t_fcall(S, "bx_push", "p1", "tok", T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "msgs");
    assert_int_equal(r->elements, 3);
    long long batch = t_int(r, 1);
    assert_true(batch > after);
    assert_string_equal(t_str(r, 2), msg);
    freeReplyObject(r);
    /* still parked and listed for wake-ups again: the next publish wakes w1 again */
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{p1}:s", "w", NULL), 1);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "parked", "p1", NULL), 1);
    return batch;
}

/* bx_push (websocket): the queue goes out as a new in-flight batch while the connect stays parked,
 * so every later publish wakes the worker again; a batch never confirmed comes back on the next connect. */
static void test_push_stays_parked(void **state) {
    (void)state;
    redisContext *w1 = t_wake_listen("w1");
    /* a websocket poll (long-polling ones are pushed by the publish itself: 'p' wake-ups) */
    ws_parked("p1", "/chat/p");
    /* Nothing queued: stays parked. */
    redisReply *r = t_fcall(S, "bx_push", "p1", "tok", T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    /* The worker names the batch it heard of last: a session past it was pushed a batch that worker has
     * not written, so bx_push moves nothing ("missed", the session's batch) and the worker drains. */
    r = t_fcall(S, "bx_push", "p1", "tok", T_TTL, "0", NULL);
    assert_string_equal(t_str(r, 0), "parked");
    long long bn0 = t_int(r, 1);
    freeReplyObject(r);
    freeReplyObject(t_cmd(S, "RPUSH", T_PREFIX "{p1}:q", "{\"m\":0}", NULL));
    r = t_fcall(S, "bx_push", "p1", "tok", T_TTL, "12345", NULL);
    assert_string_equal(t_str(r, 0), "missed");
    assert_int_equal(t_int(r, 1), bn0);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{p1}:q", NULL), 2); /* the sentinel and {"m":0} */
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{p1}:f", NULL), 0);
    assert_non_null(strstr(t_fcall_err(S, "bx_push", "p1", "tok", T_TTL, "-1", NULL), "known"));
    freeReplyObject(t_cmd(S, "RPOP", T_PREFIX "{p1}:q", NULL)); /* the queue is its sentinel again */
    long long b1 = push_one("{\"m\":1}", 0);
    /* Only the newly queued message: batch b1 is still in flight (not confirmed), not sent twice here. */
    push_one("{\"m\":2}", b1);
    assert_null(t_wake_next(w1));
    /* Neither batch confirmed (the socket died before its writes completed): the next connect
     * resends both, in order. */
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{p1}:f", NULL), 2);
    r = t_fcall(S, "bx_connect", "p1", "", "w1", "tok2", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1", "websocket",
                NULL);
    assert_string_equal(t_str(r, 0), "msgs");
    assert_int_equal(r->elements, 6);
    assert_string_equal(t_str(r, 4), "{\"m\":1}");
    assert_string_equal(t_str(r, 5), "{\"m\":2}");
    freeReplyObject(r);
    /* A push by a superseded token or for a gone session changes nothing. */
    r = t_fcall(S, "bx_push", "p1", "tok", T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "superseded");
    freeReplyObject(r);
    r = t_fcall(S, "bx_push", "nope", "tok", T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "gone");
    freeReplyObject(r);
    redisFree(w1);
}

/* A publish pushes to a held websocket connect (no ack extension, empty queue) itself: the messages go to
 * in-flight as a new batch, the wake-up carries them and the previous batch number, and the connect stays
 * parked. While that batch is unconfirmed, later publishes wait in the queue without a wake-up; the
 * bx_confirm that empties the in-flight list pushes them as the next batch. bx_drain with framed skips what
 * the worker wrote and waits to confirm. */
static void test_ws_push_through(void **state) {
    (void)state;
    redisContext *w1 = t_wake_listen("w1");
    assert_int_equal(ws_parked("q1", "/chat/q"), 0); /* the session's batch number: none yet */
    redisReply *r;
    char want[128], num[32];
    assert_int_equal(publish_n("", "/chat/q", "{\"m\":1}"), 1);
    char *p = t_wake_next(w1);
    assert_non_null(p);
    long long b0 = t_unbatch(p);
    assert_true(b0 > 0);
    assert_string_equal(p, "p 1 1\n7:{\"m\":1}\nq1 tok B 1 0");
    free(p);
    /* still parked and listed; no pk; in flight, nothing queued */
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{q1}:s", "w", NULL), 1);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "parked", "q1", NULL), 1);
    assert_int_equal(t_cmd_int(S, "HSTRLEN", T_PREFIX "{q1}:s", "pk", NULL), 0);
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{q1}:f", NULL), 1);
    /* b0 is being written: the next two wait in the queue, no wake-up */
    assert_int_equal(publish_n("", "/chat/q", "{\"m\":2}"), 1);
    assert_int_equal(publish_n("", "/chat/q", "{\"m\":3}"), 1);
    assert_null(t_wake_next(w1));
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{q1}:q", NULL), 3); /* sentinel + 2 */
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "parked", "q1", NULL), 1);
    /* confirming b0 pushes them, in order, as the next batch after b0 */
    snprintf(num, sizeof num, "%lld", b0);
    freeReplyObject(t_fcall(S, "bx_confirm", "q1", num, NULL));
    p = t_wake_next(w1);
    assert_non_null(p);
    long long b1 = t_unbatch(p);
    assert_true(b1 > b0);
    snprintf(want, sizeof want, "p 2 1\n7:{\"m\":2}7:{\"m\":3}\nq1 tok B 1,2 %lld", b0);
    assert_string_equal(p, want);
    free(p);
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{q1}:q", NULL), 1);
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{q1}:f", NULL), 2);
    assert_true(t_cmd_int(S, "PTTL", T_PREFIX "{q1}:f", NULL) > 0);
    /* the worker wrote b1 and waits for its confirm: a drain neither returns nor counts it */
    snprintf(num, sizeof num, "%lld", b1);
    r = t_fcall(S, "bx_drain", "q1", "tok", "0", T_EXPIRY, T_TTL, num, NULL);
    assert_string_equal(t_str(r, 0), "parked");
    assert_int_equal(t_int(r, 1), b1);
    freeReplyObject(r);
    /* held behind b1, a message comes back from a drain (after what was written); the connect is answered */
    assert_int_equal(publish_n("", "/chat/q", "{\"m\":4}"), 1);
    assert_null(t_wake_next(w1));
    r = t_fcall(S, "bx_drain", "q1", "tok", "0", T_EXPIRY, T_TTL, num, NULL);
    assert_string_equal(t_str(r, 0), "msgs");
    assert_int_equal(r->elements, 3);
    assert_true(t_int(r, 1) > b1);
    assert_string_equal(t_str(r, 2), "{\"m\":4}");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{q1}:s", "w", NULL), 0); /* unparked */
    /* confirming everything now pushes nothing: the connect is no longer held */
    snprintf(num, sizeof num, "%lld", b1 + 1000000);
    freeReplyObject(t_fcall(S, "bx_confirm", "q1", num, NULL));
    assert_null(t_wake_next(w1));
    /* framed must be a number */
    assert_non_null(strstr(t_fcall_err(S, "bx_drain", "q1", "tok", "0", T_EXPIRY, T_TTL, "x", NULL), "framed"));
    redisFree(w1);
}

/* One in-flight element check: r is a "msgs" reply holding exactly the messages of want (NULL-ended). */
static void assert_msgs(redisReply *r, int batch_at, const char *const *want) {
    assert_string_equal(t_str(r, 0), "msgs");
    size_t n = 0;
    while (want[n]) n++;
    assert_int_equal(r->elements, batch_at + 1 + n);
    for (size_t i = 0; i < n; i++) assert_string_equal(t_str(r, batch_at + 1 + i), want[i]);
}

/* A held connect of cid through worker that is answered at once with exactly want; returns its batch. */
static long long connect_gets(const char *cid, const char *worker, const char *token, const char *const *want) {
    redisReply *r = t_connect(S, cid, worker, token);
    assert_msgs(r, 3, want);
    long long batch = t_int(r, 3);
    freeReplyObject(r);
    return batch;
}

/* The confirm window (API.md): worker w1 was handed a batch and confirms it once its reply is written, but
 * the client's next connect can reach Redis through w2 first. w2 then waits for that confirm (held at most
 * the grace, its wake-ups and final drain send nothing) instead of sending the batch a second time; the
 * confirm wakes it for what queued meanwhile. Unconfirmed after the grace, the batch goes out again. The
 * worker that wrote the batch, and sessions with the ack extension, never wait. */
static void test_confirm_window(void **state) {
    (void)state;
    static const char *const m1[] = { "{\"m\":1}", NULL }, *const m2[] = { "{\"m\":2}", NULL };
    redisContext *w2 = t_wake_listen("w2");
    t_session(S, "cw", "");
    t_subscribe(S, "cw", "/chat/cw");
    assert_int_equal(publish_n("", "/chat/cw", m1[0]), 1);
    long long b1 = connect_gets("cw", "w1", "t1", m1);
    /* the next connect, through w2, before w1's confirm: held, at most until the grace ends */
    redisReply *r = t_connect(S, "cw", "w2", "t2");
    assert_string_equal(t_str(r, 0), "parked");
    assert_int_equal(r->elements, 5);
    assert_true(t_int(r, 4) > 0 && t_int(r, 4) <= 1000);
    freeReplyObject(r);
    /* a publish meanwhile queues behind the batch; w2's drain after its wake-up still waits */
    assert_int_equal(publish_n("", "/chat/cw", m2[0]), 1);
    char *wake = t_wake_next(w2);
    assert_non_null(wake);
    assert_string_equal(wake, "w cw");
    free(wake);
    r = t_fcall(S, "bx_drain", "cw", "t2", "0", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    /* w1's confirm drops its batch and wakes w2 for the queued message, which alone goes out */
    char num[32];
    snprintf(num, sizeof num, "%lld", b1);
    r = t_fcall(S, "bx_confirm", "cw", num, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    wake = t_wake_next(w2);
    assert_non_null(wake);
    assert_string_equal(wake, "w cw");
    free(wake);
    r = t_fcall(S, "bx_drain", "cw", "t2", "0", T_EXPIRY, T_TTL, NULL);
    assert_msgs(r, 1, m2);
    freeReplyObject(r);
    /* w2 has not confirmed: a connect through w1 that is not held answers empty, a held one's final
     * drain too, and the batch stays in flight */
    r = t_fcall(S, "bx_connect", "cw", "", "w1", "t3", "-1", "0", T_TIMEOUT, T_EXPIRY, T_TTL, "-1", "long-polling",
                NULL);
    assert_string_equal(t_str(r, 0), "empty");
    freeReplyObject(r);
    r = t_connect(S, "cw", "w1", "t4");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    r = t_fcall(S, "bx_drain", "cw", "t4", "1", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "empty");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "LLEN", T_PREFIX "{cw}:f", NULL), 1);
    /* the grace is over (w2 died, or its write failed): the batch goes out again */
    r = t_cmd(S, "HGET", T_PREFIX "{cw}:s", "wa", NULL);
    snprintf(num, sizeof num, "%lld", atoll(r->str) - 1001);
    freeReplyObject(r);
    freeReplyObject(t_cmd(S, "HSET", T_PREFIX "{cw}:s", "wa", num, NULL));
    connect_gets("cw", "w1", "t5", m2);
    /* the worker that was handed it does not wait for itself */
    connect_gets("cw", "w1", "t6", m2);
    /* with the ack extension the client's ext.ack decides: no waiting */
    r = t_fcall(S, "bx_handshake", "ca", "", "long-polling", T_EXPIRY, T_TTL, "1", "", NULL);
    freeReplyObject(r);
    freeReplyObject(t_connect(S, "ca", "w0", "first"));
    t_subscribe(S, "ca", "/chat/cw");
    assert_int_equal(publish_n("", "/chat/cw", m1[0]), 2);
    connect_gets("ca", "w1", "a1", m1);
    connect_gets("ca", "w2", "a2", m1);
    redisFree(w2);
}

static void test_supersede(void **state) {
    (void)state;
    redisContext *w1 = t_wake_listen("w1");
    t_session(S, "s1", "");
    redisReply *r = t_connect(S, "s1", "w1", "old");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    r = t_connect(S, "s1", "w2", "new");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    t_wake_expect(w1, "s old");
    r = t_cmd(S, "HMGET", T_PREFIX "{s1}:s", "w", "k", NULL);
    assert_string_equal(t_str(r, 0), "w2");
    assert_string_equal(t_str(r, 1), "new");
    freeReplyObject(r);
    r = t_fcall(S, "bx_drain", "s1", "old", "1", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "superseded");
    freeReplyObject(r);
    redisFree(w1);
}

static void test_disconnect_notifies_and_removes_all(void **state) {
    (void)state;
    long long base = t_cmd_int(S, "DBSIZE", NULL);
    redisContext *w1 = t_wake_listen("w1");
    t_session(S, "x1", "bx");
    t_subscribe(S, "x1", "/a");
    t_subscribe(S, "x1", "/b/**");
    t_session(S, "x2", "");
    t_subscribe(S, "x2", "/a");
    assert_int_equal(publish_n("x2", "/a", "{}"), 2);
    redisReply *r = t_connect(S, "x1", "w1", "held");
    assert_string_equal(t_str(r, 0), "msgs"); /* queued: not parked */
    freeReplyObject(r);
    r = t_connect(S, "x1", "w1", "held");
    assert_string_equal(t_str(r, 0), "msgs"); /* unconfirmed in-flight is sent again */
    char num[32];
    snprintf(num, sizeof num, "%lld", t_int(r, 3));
    freeReplyObject(r);
    r = t_fcall(S, "bx_confirm", "x1", num, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = t_connect(S, "x1", "w1", "held");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    r = t_fcall(S, "bx_disconnect", "x1", "wrong", NULL);
    assert_string_equal(r->str, "unknown");
    freeReplyObject(r);
    r = t_fcall(S, "bx_disconnect", "x1", "bx", NULL);
    assert_string_equal(r->str, "ok");
    freeReplyObject(r);
    t_wake_expect(w1, "d held");
    /* Every trace of x1 is gone; x2 still subscribed to /a. */
    r = t_cmd(S, "KEYS", "*x1*", NULL);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "SISMEMBER", T_PREFIX "ch:/a", "x1", NULL), 0);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "ch:/b/**", NULL), 0);
    assert_int_equal(t_cmd_int(S, "SISMEMBER", T_PREFIX "browser:bx", "x1", NULL), 0);
    r = t_cmd(S, "ZSCORE", T_PREFIX "expiry", "x1", NULL);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = t_fcall(S, "bx_disconnect", "x2", "", NULL);
    freeReplyObject(r);
    /* Only the stats hash remains of all that. */
    assert_int_equal(t_cmd_int(S, "DBSIZE", NULL), base + 1);
    redisFree(w1);
}

static void test_inflight_ack(void **state) {
    (void)state;
    char num[32];
    t_session(S, "k1", "");
    t_subscribe(S, "k1", "/k");
    publish_n("", "/k", "m1");
    /* Connect with ack_k = -1: drain batch b1 = [m1]. */
    redisReply *r = t_connect(S, "k1", "w", "t");
    assert_string_equal(t_str(r, 0), "msgs");
    long long b1 = t_int(r, 3);
    assert_true(b1 > 0);
    assert_int_equal(r->elements, 5);
    assert_string_equal(t_str(r, 4), "m1");
    freeReplyObject(r);
    publish_n("", "/k", "m2");
    /* Reply b1 was lost (no ack): batch b2 carries m1 again, then m2, in order. */
    r = t_connect(S, "k1", "w", "t");
    long long b2 = t_int(r, 3);
    assert_true(b2 > b1);
    assert_int_equal(r->elements, 6);
    assert_string_equal(t_str(r, 4), "m1");
    assert_string_equal(t_str(r, 5), "m2");
    freeReplyObject(r);
    publish_n("", "/k", "m3");
    /* ack b2 drops m1 and m2. */
    snprintf(num, sizeof num, "%lld", b2);
    r = t_fcall(S, "bx_connect", "k1", "", "w", "t", num, "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1",
                "long-polling", NULL);
    assert_string_equal(t_str(r, 0), "msgs");
    long long b3 = t_int(r, 3);
    assert_true(b3 > b2);
    assert_int_equal(r->elements, 5);
    assert_string_equal(t_str(r, 4), "m3");
    freeReplyObject(r);
    /* confirm below the batch keeps it; at the batch drops it. */
    snprintf(num, sizeof num, "%lld", b3 - 1);
    r = t_fcall(S, "bx_confirm", "k1", num, NULL);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    snprintf(num, sizeof num, "%lld", b3);
    r = t_fcall(S, "bx_confirm", "k1", num, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "{k1}:f", NULL), 0);
    r = t_connect(S, "k1", "w", "t");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);

    /* Two batches in flight: a confirm of the older drops only its entries, from the front. */
    t_session(S, "k2", "");
    t_subscribe(S, "k2", "/k2");
    publish_n("", "/k2", "n1");
    r = t_connect(S, "k2", "w", "t");
    long long c1 = t_int(r, 3);
    freeReplyObject(r);
    publish_n("", "/k2", "n2");
    publish_n("", "/k2", "n3");
    r = t_connect(S, "k2", "w", "t");
    long long c2 = t_int(r, 3);
    assert_int_equal(r->elements, 7); /* n1 again, then n2 n3 */
    freeReplyObject(r);
    snprintf(num, sizeof num, "%lld", c1);
    r = t_fcall(S, "bx_confirm", "k2", num, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = t_cmd(S, "LRANGE", T_PREFIX "{k2}:f", "0", "-1", NULL);
    assert_int_equal(r->elements, 2);
    assert_non_null(strstr(r->element[0]->str, "|n2"));
    freeReplyObject(r);
    snprintf(num, sizeof num, "%lld", c2);
    r = t_fcall(S, "bx_confirm", "k2", num, NULL);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "{k2}:f", NULL), 0);
}

/* Redis restarted from an older state (AOF rolled back): the session's batch counter went back,
 * the client acks a batch from before. A batch made after the restart must not match that ack. */
static void test_batch_numbers_survive_rollback(void **state) {
    (void)state;
    char num[32];
    t_session(S, "rb", "");
    t_subscribe(S, "rb", "/rb");
    publish_n("", "/rb", "old");
    redisReply *r = t_connect(S, "rb", "w", "t1");
    long long seen = t_int(r, 3); /* the client got this batch and will ack it */
    freeReplyObject(r);
    usleep(5000); /* a restart takes far longer than the millisecond the batch numbers count in */
    freeReplyObject(t_cmd(S, "HSET", T_PREFIX "{rb}:s", "bn", "0", NULL)); /* the rollback */
    freeReplyObject(t_cmd(S, "DEL", T_PREFIX "{rb}:f", NULL));
    r = t_connect(S, "rb", "w", "t2"); /* the pre-crash poll, still parked in the old state */
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    publish_n("", "/rb", "new"); /* pushed to a poll nobody holds any more */
    snprintf(num, sizeof num, "%lld", seen);
    r = t_fcall(S, "bx_connect", "rb", "", "w", "t3", num, "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1",
                "long-polling", NULL);
    assert_string_equal(t_str(r, 0), "msgs"); /* "new" is not dropped by the old ack */
    assert_int_equal(r->elements, 5);
    assert_string_equal(t_str(r, 4), "new");
    freeReplyObject(r);
}

static void test_max_queue(void **state) {
    (void)state;
    t_session(S, "q1", "");
    t_subscribe(S, "q1", "/q");
    for (int i = 0; i < 3; i++) {
        redisReply *r = publish("", "/q", "m", "2");
        assert_int_equal(t_int(r, 1), i < 2 ? 1 : 0);
        assert_int_equal(t_int(r, 2), i < 2 ? 0 : 1);
        freeReplyObject(r);
    }
    assert_int_equal(t_queued(S, "q1"), 2);
    redisReply *r = t_fcall(S, "bx_deliver", "q1", "private", "2", T_TTL, NULL);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = t_fcall(S, "bx_deliver", "q1", "private", "3", T_TTL, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = t_fcall(S, "bx_deliver", "nobody", "private", "3", T_TTL, NULL);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = t_fcall(S, "bx_stats", NULL);
    assert_string_equal(t_str(r, 10), "dropped");
    assert_int_equal(t_int(r, 11), 2);
    freeReplyObject(r);
}

static void test_wildcard_fanout_once(void **state) {
    (void)state;
    // p subscribes to everything that matches; o1 only /w/*, o2 only /w/**.
    t_session(S, "p", "");
    t_subscribe(S, "p", "/w/x");
    t_subscribe(S, "p", "/w/*");
    t_subscribe(S, "p", "/w/**");
    t_subscribe(S, "p", "/**");
    t_session(S, "o1", "");
    t_subscribe(S, "o1", "/w/*");
    t_session(S, "o2", "");
    t_subscribe(S, "o2", "/w/**");
    assert_int_equal(publish_n("p", "/w/x", "m1"), 3);
    assert_int_equal(publish_n("p", "/w/x/y", "m2"), 2);   // p (/w/**, /**), o2
    assert_int_equal(publish_n("p", "/w", "m3"), 1);       // p via /** only
    assert_int_equal(t_queued(S, "p"), 3);
    assert_int_equal(t_queued(S, "o1"), 1);
    assert_int_equal(t_queued(S, "o2"), 2);
    /* broadcast_to_publisher = 0 leaves the publisher out. */
    const char *argv[] = { "p", "", T_EXPIRY, T_TTL, "/w/x", "m4", "0", "-1", "/w/*", "/w/**", "/**" };
    char err[256];
    redisReply *r = bx_store_sync_fcall(S, "bx_publish", 11, argv, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(t_int(r, 1), 2);
    freeReplyObject(r);
    /* A publisher that is not who it says (wrong browser) publishes nothing. */
    const char *argv2[] = { "p", "evil", T_EXPIRY, T_TTL, "/w/x", "m5", "1", "-1" };
    r = bx_store_sync_fcall(S, "bx_publish", 8, argv2, NULL, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(t_str(r, 0), "unknown");
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "o1"), 2);
}

/* A replayed publish request (nginx retries a POST a stopping worker never answered) is
 * dropped by message id + text; a reused id with other text, or no id, still publishes. */
static void test_publish_replay_dropped(void **state) {
    (void)state;
    t_session(S, "pub", "");
    t_session(S, "sub", "");
    t_subscribe(S, "sub", "/r/x");
    char err[256];
    const char *a1[] = { "pub", "", T_EXPIRY, T_TTL, "/r/x", "m1", "1", "-1", "#7", "/r/*", "/r/**", "/**" };
    redisReply *r = bx_store_sync_fcall(S, "bx_publish", 12, a1, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(t_int(r, 1), 1);
    freeReplyObject(r);
    r = bx_store_sync_fcall(S, "bx_publish", 12, a1, NULL, err, sizeof err); /* the replay */
    assert_non_null(r);
    assert_string_equal(t_str(r, 0), "ok");
    assert_int_equal(t_int(r, 1), 0);
    assert_string_equal(t_str(r, 4), "duplicate");
    freeReplyObject(r);
    const char *a2[] = { "pub", "", T_EXPIRY, T_TTL, "/r/x", "m2", "1", "-1", "#7" }; /* same id, other text */
    r = bx_store_sync_fcall(S, "bx_publish", 9, a2, NULL, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(t_int(r, 1), 1);
    freeReplyObject(r);
    assert_int_equal(publish_n("pub", "/r/x", "m1"), 1); /* no id: never deduplicated */
    assert_int_equal(t_queued(S, "sub"), 3);
    const char *bad[] = { "pub", "", T_EXPIRY, T_TTL, "/r/x", "m3", "1", "-1", "#a b" };
    r = bx_store_sync_fcall(S, "bx_publish", 9, bad, NULL, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "message id"));
}

static void test_subscribe_unsubscribe(void **state) {
    (void)state;
    t_session(S, "u1", "");
    redisReply *r = t_fcall(S, "bx_subscribe", "u1", "", T_EXPIRY, T_TTL, "/a", "/b", "/a", NULL);
    assert_int_equal(t_int(r, 1), 2);
    freeReplyObject(r);
    r = t_fcall(S, "bx_unsubscribe", "u1", "", T_EXPIRY, T_TTL, "/a", "/never", "/b", NULL);
    assert_string_equal(t_str(r, 0), "ok");
    assert_int_equal(t_int(r, 1), 2);
    freeReplyObject(r);
    /* /a went, /b stays (processing stopped at /never). */
    assert_int_equal(t_cmd_int(S, "SISMEMBER", T_PREFIX "{u1}:subs", "/a", NULL), 0);
    assert_int_equal(t_cmd_int(S, "SISMEMBER", T_PREFIX "{u1}:subs", "/b", NULL), 1);
    r = t_fcall(S, "bx_unsubscribe", "u1", "", T_EXPIRY, T_TTL, "/b", NULL);
    assert_int_equal(t_int(r, 1), 0);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "ch:/b", NULL), 0);
    r = t_fcall(S, "bx_subscribe", "ghost", "", T_EXPIRY, T_TTL, "/a", NULL);
    assert_string_equal(t_str(r, 0), "unknown");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "ch:/a", NULL), 0);
}

static void test_multi_clients(void **state) {
    (void)state;
    t_session(S, "m1", "br");
    t_session(S, "m2", "br");
    const char *common[] = { "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "1", "long-polling" };
    redisReply *r = t_fcall(S, "bx_connect", "m1", "br", "w", "t1", common[0], common[1], common[2],
                            common[3], common[4], common[5], common[6], NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    r = t_fcall(S, "bx_connect", "m2", "br", "w", "t2", common[0], common[1], common[2],
                common[3], common[4], common[5], common[6], NULL);
    assert_string_equal(t_str(r, 0), "multi");
    freeReplyObject(r);
    /* Once m1's poll ends, m2 may hold one. */
    freeReplyObject(t_fcall(S, "bx_drain", "m1", "t1", "1", T_EXPIRY, T_TTL, NULL));
    r = t_fcall(S, "bx_connect", "m2", "br", "w", "t3", common[0], common[1], common[2],
                common[3], common[4], common[5], common[6], NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    /* maxSessionsPerBrowser 0 holds no poll of a browser; a session without one is not counted. */
    t_session(S, "m3", "br2");
    t_session(S, "m4", "");
    r = t_fcall(S, "bx_connect", "m3", "br2", "w", "t4", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "0",
                "long-polling", NULL);
    assert_string_equal(t_str(r, 0), "multi");
    freeReplyObject(r);
    r = t_fcall(S, "bx_connect", "m4", "", "w", "t5", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "0",
                "long-polling", NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    /* A websocket connect (max_sessions_per_browser -1) of a browser-bound session holds no HTTP
     * connection: it is not counted, so a long-poll of the same browser is still held. */
    t_session(S, "m5", "br3");
    t_session(S, "m6", "br3");
    r = t_fcall(S, "bx_connect", "m5", "br3", "w", "t6", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1",
                "websocket", NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    r = t_fcall(S, "bx_connect", "m6", "br3", "w", "t7", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "1",
                "long-polling", NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
}

static void test_ttl_on_every_session_key(void **state) {
    (void)state;
    t_session(S, "t1", "bt");
    t_subscribe(S, "t1", "/t");
    publish_n("", "/t", "m");
    redisReply *r = t_connect(S, "t1", "w", "x"); /* drains: creates the in-flight list */
    freeReplyObject(r);
    publish_n("", "/t", "m"); /* creates a new queue */
    const char *keys[] = { T_PREFIX "{t1}:s", T_PREFIX "{t1}:subs", T_PREFIX "{t1}:q", T_PREFIX "{t1}:f",
                           T_PREFIX "browser:bt" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        long long ttl = t_cmd_int(S, "PTTL", keys[i], NULL);
        if (ttl <= 0) fprintf(stderr, "%s has PTTL %lld\n", keys[i], ttl);
        assert_true(ttl > 0 && ttl <= 60000);
    }
}

static void test_sweep_back_to_baseline(void **state) {
    (void)state;
    t_session(S, "keep", "");
    t_subscribe(S, "keep", "/room/0");
    long long base = t_cmd_int(S, "DBSIZE", NULL);
    char cid[32], br[32], ch[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(cid, sizeof cid, "gone%d", i);
        snprintf(br, sizeof br, "br%d", i % 100);
        snprintf(ch, sizeof ch, "/room/%d", i % 10);
        redisReply *r = t_fcall(S, "bx_handshake", cid, br, "long-polling", "0", T_TTL, "0", "", NULL);
        freeReplyObject(r);
        t_subscribe(S, cid, ch);
        r = t_fcall(S, "bx_deliver", cid, "{}", "-1", T_TTL, NULL);
        freeReplyObject(r);
    }
    /* Subscribing touched expiry to now + max_interval: make them all due now. */
    redisReply *r = t_cmd(S, "ZRANGE", T_PREFIX "expiry", "0", "-1", NULL);
    for (size_t i = 0; i < r->elements; i++) {
        if (strcmp(r->element[i]->str, "keep") == 0) continue;
        freeReplyObject(t_cmd(S, "ZADD", T_PREFIX "expiry", "1", r->element[i]->str, NULL));
    }
    freeReplyObject(r);
    assert_true(t_cmd_int(S, "DBSIZE", NULL) > base + 3000);
    long long total = 0;
    for (;;) {
        r = t_fcall(S, "bx_sweep", "300", NULL);
        long long n = r->integer;
        freeReplyObject(r);
        assert_true(n <= 300);
        total += n;
        if (n == 0) break;
    }
    assert_int_equal(total, 1000);
    /* The stats hash existed before (handshake of keep); everything else is back. */
    assert_int_equal(t_cmd_int(S, "DBSIZE", NULL), base);
    assert_int_equal(t_cmd_int(S, "SCARD", T_PREFIX "ch:/room/0", NULL), 1);
    r = t_fcall(S, "bx_stats", NULL);
    assert_string_equal(t_str(r, 0), "sessions");
    assert_int_equal(t_int(r, 1), 1);
    assert_string_equal(t_str(r, 16), "expired");
    assert_int_equal(t_int(r, 17), 1000);
    freeReplyObject(r);
}

static void test_sweep_after_ttl_expiry(void **state) {
    (void)state;
    /* The safety net fired before the sweeper: sweep still clears the index, and a publish
     * drops the stale channel membership. */
    t_session(S, "e1", "");
    t_subscribe(S, "e1", "/e");
    freeReplyObject(t_cmd(S, "DEL", T_PREFIX "{e1}:s", T_PREFIX "{e1}:subs", T_PREFIX "{e1}:q", NULL));
    assert_int_equal(publish_n("", "/e", "m"), 0);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "ch:/e", NULL), 0);
    freeReplyObject(t_cmd(S, "ZADD", T_PREFIX "expiry", "1", "e1", NULL));
    redisReply *r = t_fcall(S, "bx_sweep", "10", NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "expiry", NULL), 0);
}

static void test_queue_without_sentinel(void **state) {
    (void)state;
    /* Sessions made by an older library have no sentinel: an empty queue does not exist,
     * a non-empty one starts with a message. Neither may be taken for a gone session
     * nor lose its first message. */
    t_session(S, "l1", "");
    t_subscribe(S, "l1", "/l");
    t_session(S, "l2", "");
    t_subscribe(S, "l2", "/l");
    freeReplyObject(t_cmd(S, "DEL", T_PREFIX "{l1}:q", T_PREFIX "{l2}:q", NULL));
    freeReplyObject(t_cmd(S, "RPUSH", T_PREFIX "{l2}:q", "old", NULL));
    assert_int_equal(publish_n("", "/l", "m1"), 2);
    assert_int_equal(t_queued(S, "l1"), 1);
    assert_true(t_cmd_int(S, "PTTL", T_PREFIX "{l1}:q", NULL) > 0);
    redisReply *r = t_connect(S, "l2", "w", "t");
    assert_string_equal(t_str(r, 0), "msgs");
    assert_int_equal(r->elements, 6);
    assert_string_equal(t_str(r, 4), "old");
    assert_string_equal(t_str(r, 5), "m1");
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "l2"), 0); /* sentinel in place now */
    assert_int_equal(t_cmd_int(S, "SCARD", T_PREFIX "ch:/l", NULL), 2);
}

static void test_ttl_safety_net_expires_sessions(void **state) {
    (void)state;
    /* No sweeper at all: the TTL alone frees every session key; what is left are index
     * entries (expiry, channel membership, parked) that the next publish and sweep drop. */
    long long base = t_cmd_int(S, "DBSIZE", NULL);
    redisReply *r = t_fcall(S, "bx_handshake", "z1", "bz", "long-polling", "0", "150", "0", "", NULL);
    freeReplyObject(r);
    r = t_fcall(S, "bx_subscribe", "z1", "", "0", "150", "/z", NULL);
    freeReplyObject(r);
    r = t_fcall(S, "bx_connect", "z1", "", "w", "t", "-1", "1", "0", "0", "150", "-1", "long-polling", NULL);
    freeReplyObject(r);
    r = t_fcall(S, "bx_connect", "z1", "", "w", "t", "-1", "1", "0", "0", "150", "-1", "long-polling", NULL);
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    usleep(400 * 1000);
    r = t_cmd(S, "KEYS", T_PREFIX "{z1}*", NULL);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "browser:bz", NULL), 0);
    assert_int_equal(publish_n("", "/z", "m"), 0);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "ch:/z", NULL), 0);
    r = t_fcall(S, "bx_sweep", "10", NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    /* Back to the baseline plus the stats hash the calls created. */
    assert_int_equal(t_cmd_int(S, "DBSIZE", NULL), base + 1);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "parked", T_PREFIX "expiry", NULL), 0);
}

/* INFO commandstats calls= for one command, 0 when never called. */
static long long cmd_calls(const char *name) {
    redisReply *r = t_cmd(S, "INFO", "commandstats", NULL);
    char key[64];
    snprintf(key, sizeof key, "cmdstat_%s:calls=", name);
    const char *p = strstr(r->str, key);
    long long n = p ? atoll(p + strlen(key)) : 0;
    freeReplyObject(r);
    return n;
}

/* bx_publish_batch: a request's broadcasts in one call — order kept per recipient, one RPUSH
 * and one wake-up per recipient, max_queue counted across the batch, replays skipped. */
static void test_publish_batch(void **state) {
    (void)state;
    redisContext *w1 = t_wake_listen("w1");
    t_session(S, "bp", "");
    t_session(S, "b1", "");
    t_session(S, "b2", "");
    t_subscribe(S, "b1", "/room/a");
    t_subscribe(S, "b1", "/room/b");
    t_subscribe(S, "b2", "/room/*");
    redisReply *r = t_connect(S, "b1", "w1", "tk1");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    long long calls = cmd_calls("rpush");
    r = t_fcall(S, "bx_publish_batch", "bp", "", T_EXPIRY, T_TTL, "1", "3", "4",
                "/room/a", "a1", "1", "2", "/room/*", "/room/**",
                "/room/b", "b1", "2", "0",
                "/room/a", "a2", "", "1", "/room/*",
                "/room/a", "a1", "1", "1", "/room/*", /* replay of message 1 */
                NULL);
    assert_string_equal(t_str(r, 0), "ok");
    /* b1 gets a1 b1 a2; b2 (subscribed to the wildcard) gets a1 a2 */
    assert_int_equal(t_int(r, 1), 5);
    assert_int_equal(t_int(r, 2), 0);
    assert_int_equal(t_int(r, 3), 1); /* one worker woken, once */
    assert_int_equal(t_int(r, 4), 1); /* one replay */
    freeReplyObject(r);
    assert_int_equal(cmd_calls("rpush") - calls, 2); /* one RPUSH per recipient */
    char *p = t_wake_next(w1);
    assert_non_null(p);
    long long b = t_unbatch(p);
    assert_string_equal(p, "p 3 1\n2:a12:b12:a2\nb1 tk1 B 1,2,3"); /* pushed: b1's messages in order */
    free(p);
    assert_null(t_wake_next(w1));
    r = t_cmd(S, "LRANGE", T_PREFIX "{b1}:f", "0", "-1", NULL);
    assert_int_equal(r->elements, 3);
    const char *want[] = { "a1", "b1", "a2" };
    for (int i = 0; i < 3; i++) {
        char tagged[64];
        snprintf(tagged, sizeof tagged, "%lld|%s", b, want[i]);
        assert_string_equal(r->element[i]->str, tagged);
    }
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "b2"), 2);
    /* max_queue 3 counts what the same call queued: b2 (2 queued) takes x1 and drops x2;
     * b1 (its 3 in-flight, none queued: in-flight does not count, as in CometD) takes both */
    r = t_fcall(S, "bx_publish_batch", "bp", "", T_EXPIRY, T_TTL, "1", "3", "2",
                "/room/a", "x1", "", "1", "/room/*", "/room/a", "x2", "", "1", "/room/*", NULL);
    assert_int_equal(t_int(r, 1), 3);
    assert_int_equal(t_int(r, 2), 1);
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "b1"), 2);
    assert_int_equal(t_queued(S, "b2"), 3);
    /* unknown publisher: nothing queued */
    r = t_fcall(S, "bx_publish_batch", "nobody", "", T_EXPIRY, T_TTL, "1", "-1", "1", "/room/a", "z", "", "0", NULL);
    assert_string_equal(t_str(r, 0), "unknown");
    freeReplyObject(r);
    /* a wrong count or a short item is an argument error, before anything is written */
    assert_non_null(strstr(t_fcall_err(S, "bx_publish_batch", "bp", "", T_EXPIRY, T_TTL, "1", "-1", "2",
                                       "/room/a", "z", "", "0", NULL), "message 2"));
    assert_non_null(strstr(t_fcall_err(S, "bx_publish_batch", "bp", "", T_EXPIRY, T_TTL, "1", "-1", "1",
                                       "/room/a", "z", "", "0", "/extra", NULL), "wrong number"));
    assert_int_equal(t_queued(S, "b2"), 3);
    /* the same text twice is one pool entry, listed twice for the poll */
    t_session(S, "dd", "");
    t_subscribe(S, "dd", "/room/d");
    r = t_connect(S, "dd", "w1", "tkd");
    assert_string_equal(t_str(r, 0), "parked");
    freeReplyObject(r);
    freeReplyObject(t_fcall(S, "bx_publish_batch", "bp", "", T_EXPIRY, T_TTL, "1", "-1", "2",
                            "/room/d", "x", "", "0", "/room/d", "x", "", "0", NULL));
    p = t_wake_next(w1);
    assert_non_null(p);
    t_unbatch(p);
    assert_string_equal(p, "p 1 1\n1:x\ndd tkd B 1,1");
    free(p);
    redisFree(w1);
}


static void test_commands_per_publish_flat(void **state) {
    (void)state;
    const char *workers[] = { "wa", "wb", "wc" };
    int made = 0;
    char cid[32];
    for (int round = 0; round < 3; round++) {
        int target = round == 0 ? 10 : round == 1 ? 100 : 1000;
        for (; made < target; made++) {
            snprintf(cid, sizeof cid, "n%d", made);
            t_session(S, cid, "");
            t_subscribe(S, cid, made % 2 ? "/big/*" : "/big/room");
        }
        /* Park every subscriber at one of three workers. */
        for (int i = 0; i < made; i++) {
            snprintf(cid, sizeof cid, "n%d", i);
            redisReply *r = t_connect(S, cid, workers[i % 3], "tok");
            assert_string_equal(t_str(r, 0), "parked");
            freeReplyObject(r);
        }
        freeReplyObject(t_cmd(S, "CONFIG", "RESETSTAT", NULL));
        long long f0 = cmd_calls("fcall"), p0 = cmd_calls("publish");
        assert_int_equal(publish_n("", "/big/room", "{\"x\":1}"), made);
        long long f1 = cmd_calls("fcall"), p1 = cmd_calls("publish");
        /* One FCALL (INFO itself is not counted yet) and one PUBLISH per worker: 3, at 10, 100 or 1000. */
        assert_int_equal(f1 - f0, 1);
        assert_int_equal(p1 - p0, 3);
        /* Every worker answers its polls: the sessions are connected and empty again. */
        for (int i = 0; i < made; i++) {
            snprintf(cid, sizeof cid, "n%d", i);
            redisReply *r = t_fcall(S, "bx_drain", cid, "tok", "0", T_EXPIRY, T_TTL, NULL);
            assert_string_equal(t_str(r, 0), "msgs");
            freeReplyObject(r);
            freeReplyObject(t_fcall(S, "bx_confirm", cid, "999999999999999", NULL));
        }
    }
}

static void test_bad_arguments(void **state) {
    (void)state;
    const char *e;
    e = t_fcall_err(S, "bx_handshake", "c 1", "", "long-polling", "1", "1", "0", "", NULL);
    assert_non_null(strstr(e, "cid"));
    e = t_fcall_err(S, "bx_handshake", "c1", "", "long-polling", "x", "1", "0", "", NULL);
    assert_non_null(strstr(e, "expiry_ms"));
    e = t_fcall_err(S, "bx_handshake", "c1", "", "long-polling", "1", "0", "0", "", NULL);
    assert_non_null(strstr(e, "ttl_ms"));
    e = t_fcall_err(S, "bx_handshake", "c1", "", "long-polling", "1", "1", "2", "", NULL);
    assert_non_null(strstr(e, "ack"));
    e = t_fcall_err(S, "bx_handshake", "c1", "", NULL);
    assert_non_null(strstr(e, "wrong number of arguments"));
    e = t_fcall_err(S, "bx_connect", "c1", "", "w", "t", "-1", "1", "1e3", "1", "1", "-1", "long-polling", NULL);
    assert_non_null(strstr(e, "timeout_ms"));
    e = t_fcall_err(S, "bx_subscribe", "c1", "", "1", "1", "nochannel", NULL);
    assert_non_null(strstr(e, "channel 1"));
    e = t_fcall_err(S, "bx_publish", "c1", "", "1", "1", "/a", "", "1", "-1", NULL);
    assert_non_null(strstr(e, "message"));
    e = t_fcall_err(S, "bx_drain", "c1", "bad token", "0", "1", "1", NULL);
    assert_non_null(strstr(e, "token"));
    e = t_fcall_err(S, "bx_sweep", "0", NULL);
    assert_non_null(strstr(e, "max"));
    char bigid[100];
    memset(bigid, 'a', sizeof bigid - 1);
    bigid[sizeof bigid - 1] = 0;
    e = t_fcall_err(S, "bx_touch", bigid, "", "1", "1", NULL);
    assert_non_null(strstr(e, "cid"));
    /* The prefix is validated too (braces would break the hash tags). */
    const char *argv[] = { "FCALL", "bx_touch", "0", "a{b}", "c1", "", "1", "1" };
    char err[256];
    redisReply *r = bx_store_sync_command(S, 8, argv, NULL, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "prefix"));
    /* Nothing was written by any of these. */
    assert_int_equal(t_cmd_int(S, "DBSIZE", NULL), 0);
}

static void test_wrong_type_keys(void **state) {
    (void)state;
    t_session(S, "v1", "");
    t_subscribe(S, "v1", "/v");
    freeReplyObject(t_cmd(S, "SET", T_PREFIX "ch:/other", "someone else's", NULL));
    const char *e = t_fcall_err(S, "bx_subscribe", "v1", "", T_EXPIRY, T_TTL, "/w", "/other", NULL);
    assert_non_null(strstr(e, T_PREFIX "ch:/other"));
    /* All or nothing: /w was not subscribed either. */
    assert_int_equal(t_cmd_int(S, "SISMEMBER", T_PREFIX "{v1}:subs", "/w", NULL), 0);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "ch:/w", NULL), 0);

    /* A recipient whose queue is not a list: the publish fails naming it and queues nothing. */
    t_session(S, "v2", "");
    t_subscribe(S, "v2", "/v");
    freeReplyObject(t_cmd(S, "SET", T_PREFIX "{v2}:q", "junk", NULL));
    e = t_fcall_err(S, "bx_publish", "", "", "1", "1", "/v", "m", "1", "-1", NULL);
    assert_non_null(strstr(e, T_PREFIX "{v2}:q"));
    assert_int_equal(t_queued(S, "v1"), 0);

    freeReplyObject(t_cmd(S, "SET", T_PREFIX "stats", "1", NULL));
    e = t_fcall_err(S, "bx_handshake", "v3", "", "long-polling", "1", "1", "0", "", NULL);
    assert_non_null(strstr(e, T_PREFIX "stats"));
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "{v3}:s", NULL), 0);

    freeReplyObject(t_cmd(S, "DEL", T_PREFIX "stats", NULL));
    freeReplyObject(t_cmd(S, "SET", T_PREFIX "expiry", "1", NULL));
    e = t_fcall_err(S, "bx_sweep", "10", NULL);
    assert_non_null(strstr(e, T_PREFIX "expiry"));
    e = t_fcall_err(S, "bx_connect", "v1", "", "w", "t", "-1", "1", "1", "1", "1", "-1", "lp", NULL);
    assert_non_null(strstr(e, T_PREFIX "expiry"));
    freeReplyObject(t_cmd(S, "DEL", T_PREFIX "expiry", NULL));

    /* The browser's session set of another type: a connect that would park (it counts the browser's
     * held polls for maxSessionsPerBrowser) fails naming it, before writing anything. */
    t_session(S, "v5", "bv5");
    freeReplyObject(t_cmd(S, "DEL", T_PREFIX "browser:bv5", NULL));
    freeReplyObject(t_cmd(S, "SET", T_PREFIX "browser:bv5", "junk", NULL));
    e = t_fcall_err(S, "bx_connect", "v5", "bv5", "w", "t5", "-1", "1", "1", "1", "1", "1", "lp", NULL);
    assert_non_null(strstr(e, T_PREFIX "browser:bv5"));
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{v5}:s", "w", NULL), 0);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "parked", "v5", NULL), 0);
}

/* bx_connect_batch: each connect as bx_connect would do it, in order, each with its own reply. */
static void test_connect_batch(void **state) {
    (void)state;
    redisContext *w1 = t_wake_listen("w1");
    t_session(S, "k1", "");
    t_session(S, "k2", "");
    t_session(S, "k3", "");
    t_subscribe(S, "k3", "/kb");
    assert_int_equal(publish_n("", "/kb", "{\"m\":1}"), 1);
#define KC(cid, token) cid, "", "w1", token, "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1", "long-polling"
    /* k1 parks, then a second connect of k1 in the same call supersedes it; an unknown session;
     * k3 has a message queued and is answered with it. */
    redisReply *r = t_fcall(S, "bx_connect_batch", "4", KC("k1", "a1"), KC("k1", "a2"), KC("nope", "a3"),
                            KC("k3", "a4"), NULL);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 4);
    assert_string_equal(t_str(r->element[0], 0), "parked");
    assert_string_equal(t_str(r->element[1], 0), "parked");
    assert_string_equal(t_str(r->element[2], 0), "unknown");
    assert_string_equal(t_str(r->element[3], 0), "msgs");
    assert_int_equal(r->element[3]->elements, 5);
    assert_string_equal(t_str(r->element[3], 4), "{\"m\":1}");
    char k3batch[32];
    snprintf(k3batch, sizeof k3batch, "%s", t_str(r->element[3], 3));
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "FCALL", "bx_confirm", "0", T_PREFIX, "k3", k3batch, NULL), 1);
    t_wake_expect(w1, "s a1");
    r = t_cmd(S, "HMGET", T_PREFIX "{k1}:s", "w", "k", NULL);
    assert_string_equal(t_str(r, 0), "w1");
    assert_string_equal(t_str(r, 1), "a2");
    freeReplyObject(r);
    r = t_cmd(S, "HGET", T_PREFIX "parked", "k1", NULL);
    assert_string_equal(r->str, "w1");
    freeReplyObject(r);
    /* expiry of a parked poll: now + timeout + maxInterval; of an answered one: now + maxInterval */
    r = t_cmd(S, "ZMSCORE", T_PREFIX "expiry", "k1", "k3", NULL);
    double e1 = strtod(r->element[0]->str, NULL), e3 = strtod(r->element[1]->str, NULL);
    freeReplyObject(r);
    assert_true(e1 - e3 >= 19000 && e1 - e3 <= 21000);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "parked", "k3", NULL), 0);

    /* One session's queue of the wrong type: its connect fails naming the key and changes
     * nothing; the connects before and after it go through. */
    freeReplyObject(t_cmd(S, "SET", T_PREFIX "{k2}:q", "junk", NULL));
    r = t_fcall(S, "bx_connect_batch", "3", KC("k1", "b1"), KC("k2", "b2"), KC("k3", "b3"), NULL);
    assert_int_equal(r->elements, 3);
    assert_string_equal(t_str(r->element[0], 0), "parked");
    assert_int_equal(r->element[1]->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->element[1]->str, "WRONGTYPE"));
    assert_non_null(strstr(r->element[1]->str, T_PREFIX "{k2}:q"));
    assert_string_equal(t_str(r->element[2], 0), "parked");
    freeReplyObject(r);
    t_wake_expect(w1, "s a2");
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "{k2}:s", "w", NULL), 0);
    assert_int_equal(t_cmd_int(S, "HEXISTS", T_PREFIX "parked", "k2", NULL), 0);

    /* Arguments: checked for every connect before any runs, a value equal to the previous
     * connect's included; an error names the argument and nothing is done. */
    const char *e = t_fcall_err(S, "bx_connect_batch", "2", KC("k1", "c1"), "k3", "", "w1", "c2", "-1", "1",
                                T_TIMEOUT, T_EXPIRY, "x", "-1", "long-polling", NULL);
    assert_non_null(strstr(e, "ttl_ms"));
    e = t_fcall_err(S, "bx_connect_batch", "2", KC("k1", "c1"), "k3", "", "w 1", "c2", "-1", "1",
                    T_TIMEOUT, T_EXPIRY, T_TTL, "-1", "long-polling", NULL);
    assert_non_null(strstr(e, "worker"));
    r = t_cmd(S, "HGET", T_PREFIX "{k1}:s", "k", NULL);
    assert_string_equal(r->str, "b1");
    freeReplyObject(r);
    e = t_fcall_err(S, "bx_connect_batch", "2", KC("k1", "c1"), NULL);
    assert_non_null(strstr(e, "wrong number of arguments"));
    e = t_fcall_err(S, "bx_connect_batch", "0", NULL);
    assert_non_null(strstr(e, "n: must be >= 1"));
    e = t_fcall_err(S, "bx_connect_batch", "1001", NULL);
    assert_non_null(strstr(e, "at most 1000"));
    /* the counter counts connects, not calls: the 3 sessions' first connects, then 3 + 2 in the batches */
    r = t_cmd(S, "HGET", T_PREFIX "stats", "connects", NULL);
    assert_string_equal(r->str, "8");
    freeReplyObject(r);
#undef KC
    redisFree(w1);
}

static void test_session_info(void **state) {
    (void)state;
    t_session(S, "i1", "bi");
    t_subscribe(S, "i1", "/i");
    redisReply *r = t_fcall(S, "bx_session", "i1", NULL);
    assert_string_equal(t_str(r, 0), "id");
    assert_string_equal(t_str(r, 1), "i1");
    assert_string_equal(t_str(r, 3), "connected");
    freeReplyObject(r);
    r = t_fcall(S, "bx_session", "none", NULL);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    r = t_fcall(S, "bx_sessions", "0", "10", NULL);
    assert_int_equal(t_int(r, 0), 1);
    assert_int_equal(r->elements, 2);
    freeReplyObject(r);
}

int main(void) {
    S = t_open();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_handshake_connect_park, setup),
        cmocka_unit_test_setup(test_publish_wakes_once_per_worker, setup),
        cmocka_unit_test_setup(test_drain_parked_and_final, setup),
        cmocka_unit_test_setup(test_push_stays_parked, setup),
        cmocka_unit_test_setup(test_ws_push_through, setup),
        cmocka_unit_test_setup(test_confirm_window, setup),
        cmocka_unit_test_setup(test_supersede, setup),
        cmocka_unit_test_setup(test_disconnect_notifies_and_removes_all, setup),
        cmocka_unit_test_setup(test_inflight_ack, setup),
        cmocka_unit_test_setup(test_batch_numbers_survive_rollback, setup),
        cmocka_unit_test_setup(test_max_queue, setup),
        cmocka_unit_test_setup(test_wildcard_fanout_once, setup),
        cmocka_unit_test_setup(test_publish_replay_dropped, setup),
        cmocka_unit_test_setup(test_publish_batch, setup),
        cmocka_unit_test_setup(test_subscribe_unsubscribe, setup),
        cmocka_unit_test_setup(test_multi_clients, setup),
        cmocka_unit_test_setup(test_ttl_on_every_session_key, setup),
        cmocka_unit_test_setup(test_sweep_back_to_baseline, setup),
        cmocka_unit_test_setup(test_sweep_after_ttl_expiry, setup),
        cmocka_unit_test_setup(test_queue_without_sentinel, setup),
        cmocka_unit_test_setup(test_ttl_safety_net_expires_sessions, setup),
        cmocka_unit_test_setup(test_commands_per_publish_flat, setup),
        cmocka_unit_test_setup(test_bad_arguments, setup),
        cmocka_unit_test_setup(test_wrong_type_keys, setup),
        cmocka_unit_test_setup(test_connect_batch, setup),
        cmocka_unit_test_setup(test_session_info, setup),
    };
    int rc = cmocka_run_group_tests_name("broker functions", tests, NULL, NULL);
    bx_store_sync_close(S);
    return rc;
}
