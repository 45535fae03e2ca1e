/* test_dispatch.c — the Bayeux pipeline against a recording store (no Redis).
 *
 * bx_store_fcall is defined here, so the linker never pulls store.o: every broker
 * call is recorded as "fn arg arg ..." and answered by the test with a crafted
 * redisReply, in whatever order a race could produce. What the broker itself
 * does is tested against a real redis-server in tests/broker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dispatch.h"
#include "error.h"
#include "ext/timestamp.h"

/* ---- recording store ---------------------------------------------------- */

#define MAX_CALLS 16
static struct call {
    char text[2048];
    bx_store_cb *cb;
    void *arg;
    int single; /* a bx_connect_batch of one connect: recorded and answered as a bx_connect */
} calls[MAX_CALLS];
static int n_calls, store_down;

int bx_store_fcall(bx_store *s, const char *fn, int argc, const char **argv, const size_t *lens,
                   bx_store_cb *cb, void *arg, char *err, size_t errlen)
{
    (void)s;
    if (store_down) {
        snprintf(err, errlen, "not connected");
        return -1;
    }
    assert_true(n_calls < MAX_CALLS);
    struct call *c = &calls[n_calls++];
    c->single = strcmp(fn, "bx_connect_batch") == 0 && argc > 0 && lens[0] == 1 && argv[0][0] == '1';
    if (c->single)
        fn = "bx_connect", argv++, lens++, argc--;
    size_t o = (size_t)snprintf(c->text, sizeof c->text, "%s", fn);
    for (int i = 0; i < argc && o < sizeof c->text; i++)
        o += (size_t)snprintf(c->text + o, sizeof c->text - o, " %.*s", (int)lens[i], argv[i]);
    c->cb = cb;
    c->arg = arg;
    return 0;
}

/* A reply: fmt 's' string, 'i' integer; "S" alone = a plain status string. */
static redisReply *mk(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = calloc(1, sizeof *r);
    size_t n = strlen(fmt);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof *r->element);
    for (size_t i = 0; i < n; i++) {
        redisReply *e = r->element[i] = calloc(1, sizeof *e);
        if (fmt[i] == 's') {
            e->type = REDIS_REPLY_STRING;
            e->str = strdup(va_arg(ap, const char *));
            e->len = strlen(e->str);
        } else {
            e->type = REDIS_REPLY_INTEGER;
            e->integer = va_arg(ap, long long);
        }
    }
    va_end(ap);
    return r;
}

static redisReply *mk_status(const char *s)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STATUS;
    r->str = strdup(s);
    r->len = strlen(s);
    return r;
}

static void rfree(redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++) {
        free(r->element[i]->str);
        free(r->element[i]);
    }
    free(r->element);
    free(r->str);
    free(r);
}

/* Answer call i (NULL reply = broker failure), then forget it. A connect sent alone in a
 * bx_connect_batch gets r as the one element of the batch's reply. */
static void answer(int i, redisReply *r)
{
    assert_true(i < n_calls && calls[i].cb);
    bx_store_cb *cb = calls[i].cb;
    calls[i].cb = NULL;
    redisReply one = { .type = REDIS_REPLY_ARRAY, .elements = 1, .element = &r };
    cb(r && calls[i].single ? &one : r, r ? NULL : "down", calls[i].arg);
    if (r)
        rfree(r);
}

/* ---- exchange fixture ---------------------------------------------------- */

static bx_config cfg;
static bx_dispatch *d;
static bx_ex_state last_state;
static int n_states, n_holds;
static long parked_hold_ms; /* the hold a transport arms its timer with when told PARKED */
static int confirm_in_state; /* behave like the FastCGI transport: confirm right after writing */
static char *body;

static void on_hold(bx_exchange *ex, void *arg)
{
    (void)ex, (void)arg;
    n_holds++;
}

static void on_state(bx_exchange *ex, bx_ex_state st, void *arg)
{
    (void)arg;
    last_state = st;
    n_states++;
    if (st == BX_EX_PARKED)
        parked_hold_ms = bx_exchange_hold_ms(ex);
    if (st == BX_EX_REPLY) {
        size_t len;
        free(body);
        body = bx_exchange_body(ex, &len);
        assert_non_null(body);
        if (confirm_in_state)
            bx_exchange_confirm(ex);
    }
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(bx_config_defaults(&cfg), 0);
    char err[128];
    d = bx_dispatch_new(&cfg, NULL, "w1", err, sizeof err);
    assert_non_null(d);
    n_calls = store_down = n_states = n_holds = confirm_in_state = 0;
    parked_hold_ms = -1;
    body = NULL;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(bx_dispatch_live(d), 0);
    bx_dispatch_free(d);
    bx_config_free(&cfg);
    free(body);
    return 0;
}

/* Exchange for a JSON batch text, HTTP with browser cookie "b1". */
static bx_exchange *ex_new(const char *json, const char *browser)
{
    bx_batch batch;
    bx_parse_error perr;
    bx_limits lim = { 0, 0, 0 };
    assert_int_equal(bx_batch_parse(json, strlen(json), &lim, &batch, &perr), BX_PARSE_OK);
    bx_request_info info = { BX_TR_LONG_POLLING, 1, browser };
    bx_exchange_hooks hooks = { on_hold, on_state, NULL };
    bx_exchange *ex = bx_exchange_new(d, &batch, &info, &hooks);
    assert_non_null(ex);
    return ex;
}

#define CONNECT(id, extra) "[{\"channel\":\"/meta/connect\",\"clientId\":\"c1\",\"id\":\"" id "\"" extra "}]"

/* A lone connect of session c1 that the broker (call number i) parked. */
static bx_exchange *parked_connect(const char *json, int i)
{
    bx_exchange *ex = ex_new(json, "b1");
    bx_exchange_start(ex);
    answer(i, mk("siii", "parked", 0LL, 0LL, 0LL));
    assert_int_equal(last_state, BX_EX_PARKED);
    return ex;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_handshake(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new("[{\"channel\":\"/meta/handshake\",\"id\":\"1\",\"ext\":{\"ack\":true}}]", NULL);
    bx_exchange_start(ex);
    assert_int_equal(n_calls, 1);
    /* bx_handshake cid browser transport expiry ttl ack user: a new browser id, ack requested */
    char fn[32], cid[64], browser[64], tr[32];
    long expiry, ttl, ack;
    assert_int_equal(sscanf(calls[0].text, "%31s %63s %63s %31s %ld %ld %ld", fn, cid, browser, tr, &expiry, &ttl,
                            &ack), 7);
    assert_string_equal(fn, "bx_handshake");
    assert_string_equal(tr, "long-polling");
    assert_int_equal(expiry, 10000);
    assert_true(ttl > 20000 + expiry);
    assert_int_equal(ack, 1);
    assert_int_equal(n_states, 0);
    answer(0, mk("i", 1LL));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(bx_exchange_new_browser(ex), browser);
    char want[512];
    snprintf(want, sizeof want,
             "[{\"channel\":\"/meta/handshake\",\"id\":\"1\",\"successful\":true,\"clientId\":\"%s\","
             "\"version\":\"1.0\",\"minimumVersion\":\"1.0\",\"supportedConnectionTypes\":[\"long-polling\","
             "\"callback-polling\"],\"advice\":{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":20000},"
             "\"ext\":{\"ack\":true}}]", cid);
    assert_string_equal(body, want);
    bx_exchange_free(ex);
}

static void test_handshake_with_cookie_sets_none(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new("[{\"channel\":\"/meta/handshake\"}]", "b1");
    bx_exchange_start(ex);
    assert_non_null(strstr(calls[0].text, " b1 long-polling "));
    answer(0, mk("i", 1LL));
    assert_null(bx_exchange_new_browser(ex));
    bx_exchange_free(ex);
}

static void test_first_connect_no_advice(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new(CONNECT("2", ""), "b1");
    bx_exchange_start(ex);
    /* bx_connect cid browser worker token ack_k hold timeout expiry ttl max_sessions transport */
    char head[128];
    snprintf(head, sizeof head, "bx_connect c1 b1 w1 %s -1 1 20000 10000 ", bx_exchange_token(ex));
    assert_memory_equal(calls[0].text, head, strlen(head));
    assert_non_null(strstr(calls[0].text, " 1 long-polling"));
    assert_int_equal(n_holds, 1);
    answer(0, mk("siii", "empty", 1LL, 0LL, 0LL));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/meta/connect\",\"id\":\"2\",\"successful\":true}]");
    bx_exchange_free(ex);
}

static void test_connect_client_advice_gets_full_advice(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new(CONNECT("2", ",\"advice\":{\"timeout\":0}"), "b1");
    bx_exchange_start(ex);
    assert_non_null(strstr(calls[0].text, " -1 0 0 10000 ")); /* timeout 0: not held */
    assert_int_equal(n_holds, 0);
    answer(0, mk("siii", "empty", 1LL, 0LL, 0LL));
    assert_string_equal(body, "[{\"channel\":\"/meta/connect\",\"id\":\"2\",\"successful\":true,"
                              "\"advice\":{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":20000}}]");
    bx_exchange_free(ex);
}

/* The race the pending bits exist for: the wake-up arrives before the answer "parked". */
static void test_wake_before_parked_answer(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new(CONNECT("3", ""), "b1");
    bx_exchange_start(ex);
    bx_exchange_wake(ex);
    assert_int_equal(n_calls, 1); /* nothing sent while the connect is in flight */
    answer(0, mk("siii", "parked", 0LL, 0LL, 0LL));
    assert_int_equal(last_state, BX_EX_PARKED);
    assert_int_equal(n_calls, 2);
    char want[64];
    snprintf(want, sizeof want, "bx_drain c1 %s 0 10000 ", bx_exchange_token(ex));
    assert_memory_equal(calls[1].text, want, strlen(want));
    answer(1, mk("sis", "msgs", 7LL, "{\"channel\":\"/a\",\"data\":1}"));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/a\",\"data\":1},{\"channel\":\"/meta/connect\",\"id\":\"3\","
                              "\"successful\":true}]");
    /* no ack extension: the transport confirms the batch after writing */
    bx_exchange_confirm(ex);
    assert_int_equal(n_calls, 3);
    assert_string_equal(calls[2].text, "bx_confirm c1 7");
    bx_exchange_free(ex);
    assert_int_equal(bx_dispatch_live(d), 1); /* the confirm is still in flight */
    answer(2, mk("i", 1LL));
}

static void test_parked_wake_without_messages_stays(void **state)
{
    (void)state;
    bx_exchange *ex = parked_connect(CONNECT("3", ""), 0);
    bx_exchange_wake(ex);
    answer(1, mk("si", "parked", 0LL));
    assert_int_equal(n_states, 1); /* still just PARKED */
    bx_exchange_expire(ex);
    assert_non_null(strstr(calls[2].text, "bx_drain c1"));
    assert_non_null(strstr(calls[2].text, " 1 10000 ")); /* final=1 */
    answer(2, mk("si", "empty", 0LL));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/meta/connect\",\"id\":\"3\",\"successful\":true}]");
    bx_exchange_confirm(ex); /* nothing delivered: nothing to confirm */
    assert_int_equal(n_calls, 3);
    bx_exchange_free(ex);
}

/* Parked while another worker's confirm of the in-flight batch is awaited (the reply's 5th element, the ms
 * left of the broker's grace): the hold is that long at most, so the final drain resends the batch soon if
 * the confirm never comes; a longer wait leaves the client's timeout as it is. */
static void test_parked_waiting_for_confirm_holds_less(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new(CONNECT("3", ""), "b1");
    bx_exchange_start(ex);
    answer(0, mk("siiii", "parked", 0LL, 0LL, 7LL, 300LL));
    assert_int_equal(last_state, BX_EX_PARKED);
    assert_int_equal(parked_hold_ms, 300);
    bx_exchange_expire(ex);
    assert_non_null(strstr(calls[1].text, " 1 10000 ")); /* final=1 */
    answer(1, mk("si", "empty", 0LL));
    bx_exchange_free(ex);
    ex = ex_new(CONNECT("4", ""), "b1");
    bx_exchange_start(ex);
    answer(2, mk("siiii", "parked", 0LL, 0LL, 7LL, 50000LL));
    assert_int_equal(parked_hold_ms, 20000);
    bx_exchange_expire(ex);
    answer(3, mk("si", "empty", 0LL));
    bx_exchange_free(ex);
}

/* a held connect on another transport than the stored one: the advice comes with its late reply */
static void test_parked_transport_changed_advice(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new(CONNECT("3", ""), "b1");
    bx_exchange_start(ex);
    answer(0, mk("siii", "parked", 0LL, 1LL, 0LL));
    bx_exchange_expire(ex);
    answer(1, mk("si", "empty", 0LL));
    assert_string_equal(body, "[{\"channel\":\"/meta/connect\",\"id\":\"3\",\"successful\":true,"
                              "\"advice\":{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":20000}}]");
    bx_exchange_free(ex);
}

static void test_ack_connect_no_confirm(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new(CONNECT("4", ",\"ext\":{\"ack\":3}"), "b1");
    bx_exchange_start(ex);
    assert_non_null(strstr(calls[0].text, " 3 1 20000 ")); /* ack_k 3 */
    answer(0, mk("siiis", "msgs", 0LL, 0LL, 4LL, "{\"channel\":\"/a\"}"));
    assert_string_equal(body, "[{\"channel\":\"/a\"},{\"channel\":\"/meta/connect\",\"id\":\"4\",\"successful\":true,"
                              "\"ext\":{\"ack\":4}}]");
    bx_exchange_confirm(ex);
    assert_int_equal(n_calls, 1);
    bx_exchange_free(ex);
}

static void test_superseded_and_disconnected(void **state)
{
    (void)state;
    bx_exchange *ex = parked_connect(CONNECT("5", ""), 0);
    bx_exchange_superseded(ex);
    assert_int_equal(last_state, BX_EX_HTTP_ERROR);
    assert_int_equal(bx_exchange_http_status(ex), 500);
    bx_exchange_free(ex);

    ex = parked_connect(CONNECT("6", ""), 1);
    bx_exchange_disconnected(ex);
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/meta/connect\",\"id\":\"6\",\"successful\":true,"
                              "\"advice\":{\"reconnect\":\"none\"}}]");
    bx_exchange_free(ex);
}

static void test_abandon_unparks(void **state)
{
    (void)state;
    bx_exchange *ex = parked_connect(CONNECT("7", ""), 0);
    bx_exchange_abandon(ex);
    assert_non_null(strstr(calls[1].text, " 1 10000 ")); /* final drain */
    answer(1, mk("sis", "msgs", 2LL, "{\"channel\":\"/a\"}"));
    assert_int_equal(last_state, BX_EX_GONE); /* messages stay in flight for the next connect */
    bx_exchange_confirm(ex);
    assert_int_equal(n_calls, 2);
    bx_exchange_free(ex);
}

static void test_broker_down_retry_advice(void **state)
{
    (void)state;
    store_down = 1;
    bx_exchange *ex = ex_new(CONNECT("8", ""), "b1");
    bx_exchange_start(ex); /* answered synchronously */
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/meta/connect\",\"id\":\"8\",\"successful\":false,\"error\":\""
                              BX_ERR_BROKER_UNAVAILABLE "\",\"advice\":{\"reconnect\":\"retry\",\"interval\":1000}}]");
    bx_exchange_free(ex);
}

static void test_batch_connect_not_held_and_order(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new("[{\"channel\":\"/meta/connect\",\"clientId\":\"c1\",\"id\":\"1\"},"
                             "{\"channel\":\"/meta/subscribe\",\"clientId\":\"c1\",\"subscription\":\"/x\",\"id\":\"2\"}]",
                             "b1");
    bx_exchange_start(ex);
    assert_non_null(strstr(calls[0].text, " -1 0 20000 ")); /* hold=0: not alone */
    answer(0, mk("siiis", "msgs", 0LL, 0LL, 1LL, "{\"channel\":\"/x\",\"data\":0}"));
    assert_memory_equal(calls[1].text, "bx_subscribe c1 b1 10000 ", 25);
    assert_non_null(strstr(calls[1].text, " /x"));
    answer(1, mk("si", "ok", 1LL));
    assert_string_equal(body, "[{\"channel\":\"/x\",\"data\":0},{\"channel\":\"/meta/connect\",\"id\":\"1\","
                              "\"successful\":true},{\"channel\":\"/meta/subscribe\",\"id\":\"2\",\"subscription\":"
                              "\"/x\",\"successful\":true}]");
    bx_exchange_free(ex);
}

static void test_publish_args(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new("[{\"channel\":\"/a/b\",\"clientId\":\"c1\",\"id\":\"9\",\"data\":{\"t\":1},"
                             "\"ext\":{\"x\":1}}]", "b1");
    bx_exchange_start(ex);
    assert_non_null(strstr(calls[0].text, "bx_publish_batch c1 b1 10000 "));
    assert_non_null(strstr(calls[0].text, " 1 -1 1 /a/b {\"channel\":\"/a/b\",\"data\":{\"t\":1},\"ext\":{\"x\":1}} "
                                          "9 3 /a/* /a/** /**")); /* the id lets the broker drop a replay */
    answer(0, mk("siiii", "ok", 2LL, 0LL, 1LL, 0LL));
    assert_string_equal(body, "[{\"channel\":\"/a/b\",\"id\":\"9\",\"successful\":true}]");
    bx_exchange_free(ex);
}

/* Consecutive broadcasts of a request go in one bx_publish_batch; a message that needs another
 * broker call sends the group first; replies stay in request order; a message without id has none. */
static void test_publish_group(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new("[{\"channel\":\"/a\",\"clientId\":\"c1\",\"id\":\"1\",\"data\":1},"
                             "{\"channel\":\"/b\",\"clientId\":\"c1\",\"data\":2},"
                             "{\"channel\":\"/meta/bad\",\"clientId\":\"c1\",\"id\":\"3\"},"
                             "{\"channel\":\"/meta/subscribe\",\"clientId\":\"c1\",\"id\":\"4\",\"subscription\":\"/s\"},"
                             "{\"channel\":\"/c\",\"clientId\":\"c1\",\"id\":\"5\",\"data\":3}]", "b1");
    bx_exchange_start(ex);
    assert_int_equal(n_calls, 1);
    assert_non_null(strstr(calls[0].text, " 1 -1 2 /a {\"channel\":\"/a\",\"data\":1} 1 2 /* /** "
                                          "/b {\"channel\":\"/b\",\"data\":2}  2 /* /**"));
    answer(0, mk("siiii", "ok", 2LL, 0LL, 1LL, 0LL));
    assert_int_equal(n_calls, 2); /* the unknown meta channel's session touch, sent after the group's answer */
    assert_non_null(strstr(calls[1].text, "bx_touch c1 b1"));
    answer(1, mk_status("ok"));
    assert_int_equal(n_calls, 3);
    assert_non_null(strstr(calls[2].text, "bx_subscribe c1 b1"));
    answer(2, mk("si", "ok", 1LL));
    assert_int_equal(n_calls, 4); /* the last publish: a group of its own at the end of the batch */
    assert_non_null(strstr(calls[3].text, "bx_publish_batch c1 b1 "));
    assert_non_null(strstr(calls[3].text, " 1 /c {\"channel\":\"/c\",\"data\":3} 5 2 /* /**"));
    answer(3, mk("s", "unknown"));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_non_null(strstr(body, "[{\"channel\":\"/a\",\"id\":\"1\",\"successful\":true},"
                                 "{\"channel\":\"/b\",\"successful\":true},"
                                 "{\"channel\":\"/meta/bad\",\"id\":\"3\",\"successful\":false"));
    assert_non_null(strstr(body, "{\"channel\":\"/c\",\"id\":\"5\",\"successful\":false,\"error\":\"402::"));
    assert_true(strstr(body, "\"id\":\"4\"") < strstr(body, "\"id\":\"5\""));
    bx_exchange_free(ex);
}

static void test_local_answers_without_broker(void **state)
{
    (void)state;
    /* invalid clientId: 402 + handshake advice, no call; no cookie (HTTP): the same */
    bx_exchange *ex = ex_new("[{\"channel\":\"/meta/connect\",\"clientId\":\"BAD!\"}]", "b1");
    bx_exchange_start(ex);
    assert_int_equal(n_calls, 0);
    assert_string_equal(body, "[{\"channel\":\"/meta/connect\",\"successful\":false,\"error\":\"402::session_unknown\","
                              "\"advice\":{\"reconnect\":\"handshake\",\"interval\":0}}]");
    bx_exchange_free(ex);
    ex = ex_new(CONNECT("1", ""), NULL);
    bx_exchange_start(ex);
    assert_int_equal(n_calls, 0);
    assert_non_null(strstr(body, "402::session_unknown"));
    bx_exchange_free(ex);
    /* validation precedes the session check */
    ex = ex_new("[{\"channel\":\"/foo<>\",\"clientId\":\"nope\"}]", NULL);
    bx_exchange_start(ex);
    assert_string_equal(body, "[{\"channel\":\"/foo<>\",\"successful\":false,\"error\":\"405::channel_invalid\"}]");
    bx_exchange_free(ex);
}

static void test_unsubscribe_missing_and_meta(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new("[{\"channel\":\"/meta/unsubscribe\",\"clientId\":\"c1\",\"subscription\":"
                             "[\"/x\",\"/service/s\",\"/meta/connect\"]}]", "b1");
    bx_exchange_start(ex);
    /* service skipped, meta stops processing: only /x goes to the broker */
    assert_string_equal(strstr(calls[0].text, " /x"), " /x");
    answer(0, mk("si", "ok", 0LL));
    assert_non_null(strstr(body, BX_ERR_UNSUBSCRIBE_FAILED));
    bx_exchange_free(ex);
    ex = ex_new("[{\"channel\":\"/meta/unsubscribe\",\"clientId\":\"c1\",\"subscription\":\"/never\"}]", "b1");
    bx_exchange_start(ex);
    answer(1, mk("si", "ok", 1LL));
    assert_non_null(strstr(body, BX_ERR_CHANNEL_MISSING));
    bx_exchange_free(ex);
}

static void test_disconnect_unknown(void **state)
{
    (void)state;
    bx_exchange *ex = ex_new("[{\"channel\":\"/meta/disconnect\",\"clientId\":\"c1\"}]", "b1");
    bx_exchange_start(ex);
    assert_string_equal(calls[0].text, "bx_disconnect c1 b1");
    answer(0, mk_status("unknown"));
    assert_string_equal(body, "[{\"channel\":\"/meta/disconnect\",\"successful\":false,"
                              "\"error\":\"402::session_unknown\"}]");
    bx_exchange_free(ex);
}


/* timestamp (conf timestampExtension) on replies and deliveries; timesync {tc,ts,p,a} when l == 0 */
static void test_timestamp_and_timesync(void **state)
{
    (void)state;
    char err[64];
    bx_dispatch_free(d);
    cfg.timestampExtension = 1;
    d = bx_dispatch_new(&cfg, NULL, "w1", err, sizeof err);
    bx_exchange *ex = ex_new(CONNECT("2", ",\"ext\":{\"timesync\":{\"tc\":1000,\"l\":0,\"o\":0}}"), "b1");
    bx_exchange_start(ex);
    answer(0, mk("siiis", "msgs", 1LL, 0LL, 1LL, "{\"channel\":\"/a\"}"));
    json_error_t jerr;
    json_t *arr = json_loads(body, 0, &jerr);
    assert_non_null(arr);
    json_t *dlv = json_array_get(arr, 0), *rep = json_array_get(arr, 1);
    char want[64];
    bx_timestamp_now(want, sizeof want);
    /* "Thu Nov 26 01:45:49 UTC 2026": same shape, same minute as now (the clock may tick between) */
    const char *dts = json_string_value(json_object_get(dlv, "timestamp"));
    const char *rts = json_string_value(json_object_get(rep, "timestamp"));
    assert_non_null(dts);
    assert_non_null(rts);
    assert_int_equal(strlen(dts), strlen(want));
    assert_memory_equal(rts, want, 10);
    json_t *t = json_object_get(json_object_get(rep, "ext"), "timesync");
    assert_int_equal(json_integer_value(json_object_get(t, "tc")), 1000);
    assert_true(json_integer_value(json_object_get(t, "ts")) > 1000);
    assert_true(json_integer_value(json_object_get(t, "p")) >= 0);
    assert_int_equal(json_integer_value(json_object_get(t, "a")), 1000 - json_integer_value(json_object_get(t, "ts")));
    json_decref(arr);
    bx_exchange_free(ex);
}

/* ---- wake-up payloads ---------------------------------------------------------- */

static char found[256];

static bx_exchange *find_rec(char kind, const char *key, void *arg)
{
    (void)arg;
    size_t o = strlen(found);
    snprintf(found + o, sizeof found - o, "%c:%s ", kind, key);
    return NULL;
}

static void test_wake_payloads(void **state)
{
    (void)state;
    found[0] = '\0';
    bx_dispatch_wake("w c1 c2", 7, find_rec, NULL);
    bx_dispatch_wake("s 17", 4, find_rec, NULL);
    bx_dispatch_wake("d 18 trailing-not-nul", 4, find_rec, NULL);
    bx_dispatch_wake("x", 1, find_rec, NULL);
    assert_string_equal(found, "c:c1 c:c2 t:17 t:18 ");
    /* push payloads: well-formed ones look their polls up by token; malformed ones stop at the
     * first bad entry (no read past the payload: ASan checks) */
    found[0] = '\0';
    const char *ok = "p 2 2\n3:{a}2:{}\nc1 t1 4 1,2\nc2 t2 9 2";
    bx_dispatch_wake(ok, strlen(ok), find_rec, NULL);
    assert_string_equal(found, "t:t1 t:t2 ");
    static const char *bad[] = {
        "p", "p ", "p 1", "p 1 1", "p 1 1\n", "p 1 1\n3:{a", "p 1 1\n9:{a}\nc1 t1 1 1", "p 1 1\n3:{a}\nc1 t1 1 2",
        "p 1 1\n3:{a}\nc1 t1 0 1", "p 1 1\n3:{a}\nc1 t1 1", "p 1 1\n3:{a}\nc1", "p 99999 1\n3:{a}\nc1 t1 1 1",
        "p 1 1\n0:\nc1 t1 1 1", "p -1 1\n", "p 1 1\n3:{a}\nc1 t1 1 1,", "p 1 2\n3:{a}\nc1 t1 1 1",
    };
    found[0] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *copy = malloc(strlen(bad[i])); /* exactly the payload's bytes: no NUL to lean on */
        memcpy(copy, bad[i], strlen(bad[i]));
        bx_dispatch_wake(copy, strlen(bad[i]), find_rec, NULL);
        free(copy);
    }
    /* only the one entry that is complete before the bad part ("p 1 2 ...") was looked up */
    assert_string_equal(found, "t:t1 ");
}

static bx_exchange *the_ex;
static bx_exchange *find_the(char kind, const char *key, void *arg)
{
    (void)arg;
    return kind == 't' && strcmp(key, bx_exchange_token(the_ex)) == 0 ? the_ex : NULL;
}

/* A parked poll answered from a push payload without a broker call, confirmed as batch;
 * a poll with a drain in flight drains again instead (bx_drain knows the pushed token). */
static void test_push_answers_parked(void **state)
{
    (void)state;
    bx_exchange *ex = the_ex = parked_connect(CONNECT("3", ""), 0);
    char p[256];
    int n = snprintf(p, sizeof p, "p 2 1\n25:{\"channel\":\"/a\",\"data\":1}25:{\"channel\":\"/a\",\"data\":2}\n"
                     "c1 %s 5 2,1", bx_exchange_token(ex));
    bx_dispatch_wake(p, (size_t)n, find_the, NULL);
    assert_int_equal(n_calls, 1);
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/a\",\"data\":2},{\"channel\":\"/a\",\"data\":1},"
                              "{\"channel\":\"/meta/connect\",\"id\":\"3\",\"successful\":true}]");
    bx_exchange_confirm(ex);
    assert_string_equal(calls[1].text, "bx_confirm c1 5");
    bx_exchange_free(ex);
    answer(1, mk("i", 2LL));

    /* the same text published twice is one pool entry listed twice: both are delivered */
    ex = the_ex = parked_connect(CONNECT("5", ""), 2);
    n = snprintf(p, sizeof p, "p 1 1\n25:{\"channel\":\"/a\",\"data\":1}\nc1 %s 7 1,1", bx_exchange_token(ex));
    bx_dispatch_wake(p, (size_t)n, find_the, NULL);
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/a\",\"data\":1},{\"channel\":\"/a\",\"data\":1},"
                              "{\"channel\":\"/meta/connect\",\"id\":\"5\",\"successful\":true}]");
    bx_exchange_free(ex);

    ex = the_ex = parked_connect(CONNECT("4", ""), 3);
    bx_exchange_expire(ex); /* final drain in flight */
    assert_int_equal(n_calls, 5);
    n = snprintf(p, sizeof p, "p 1 1\n25:{\"channel\":\"/a\",\"data\":1}\nc1 %s 6 1", bx_exchange_token(ex));
    bx_dispatch_wake(p, (size_t)n, find_the, NULL);
    assert_int_equal(n_calls, 5); /* nothing answered from the payload, nothing sent yet */
    answer(4, mk("sis", "msgs", 6LL, "{\"channel\":\"/a\",\"data\":1}"));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/a\",\"data\":1},{\"channel\":\"/meta/connect\",\"id\":\"4\","
                              "\"successful\":true}]");
    bx_exchange_free(ex);
}

/* A held websocket connect that publishes push to: a pushed batch that follows the one the exchange
 * last heard of is written as frames at once (no broker call) and the connect stays held; a batch after
 * a missed one is not written: the exchange drains, skipping what it wrote, and the drain answers. */
static long long ws_batch[8];
static size_t ws_count[8];
static int n_ws;
static void on_ws_push(bx_exchange *ex, long long batch, void *arg)
{
    (void)arg;
    assert_true(n_ws < 8);
    ws_batch[n_ws] = batch;
    ws_count[n_ws++] = bx_exchange_delivery_count(ex);
}

static void ws_wake(bx_exchange *ex, const char *msgs, const char *idx, long long batch, long long prev)
{
    char p[512];
    int n = snprintf(p, sizeof p, "p %d 1\n%s\nc1 %s %lld %s %lld", idx[0] == '1' && idx[1] == ',' ? 2 : 1, msgs,
                     bx_exchange_token(ex), batch, idx, prev);
    bx_dispatch_wake(p, (size_t)n, find_the, NULL);
}

#define M(n) "25:{\"channel\":\"/a\",\"data\":" #n "}"

/* A websocket connect (push hook set) sent to the broker: the next call is its bx_connect. */
static bx_exchange *ws_connect(const char *json)
{
    bx_exchange *ex = the_ex = ex_new(json, "b1");
    bx_exchange_set_push(ex, on_ws_push);
    bx_exchange_start(ex);
    return ex;
}

static void test_ws_push_through(void **state)
{
    (void)state;
    n_ws = 0;
    bx_exchange *ex = ws_connect(CONNECT("3", ""));
    answer(0, mk("siii", "parked", 0LL, 0LL, 40LL)); /* the session's batch number is 40 */
    assert_int_equal(last_state, BX_EX_PARKED);
    int states = n_states;
    ws_wake(ex, M(1) M(2), "1,2", 41, 40);
    assert_int_equal(n_ws, 1);
    assert_int_equal(ws_batch[0], 41);
    assert_int_equal(ws_count[0], 2);
    ws_wake(ex, M(3), "1", 42, 41);
    assert_int_equal(n_ws, 2);
    assert_int_equal(ws_batch[1], 42);
    assert_int_equal(n_calls, 1); /* no broker call: the publish moved them */
    assert_int_equal(n_states, states); /* still held */
    /* batch 43 never arrived: 44 is not written (it would overtake 43); drain, skipping up to 42 */
    ws_wake(ex, M(5), "1", 44, 43);
    assert_int_equal(n_ws, 2);
    assert_int_equal(n_calls, 2);
    assert_memory_equal(calls[1].text, "bx_drain c1 ", 12);
    size_t tl = strlen(calls[1].text);
    assert_true(tl > 3 && strcmp(calls[1].text + tl - 3, " 42") == 0);
    /* while it is in flight, a pushed batch is not written either */
    ws_wake(ex, M(6), "1", 45, 44);
    assert_int_equal(n_ws, 2);
    assert_int_equal(n_calls, 2);
    answer(1, mk("siss", "msgs", 46LL, "{\"channel\":\"/a\",\"data\":4}", "{\"channel\":\"/a\",\"data\":5}"));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/a\",\"data\":4},{\"channel\":\"/a\",\"data\":5},"
                              "{\"channel\":\"/meta/connect\",\"id\":\"3\",\"successful\":true}]");
    bx_exchange_free(ex);
}

/* A pushed batch whose wake-up comes before the reply of the connect that parked (two Redis connections,
 * no order between them) is not lost: the connect drains when it parks, it does not bx_push (whose later
 * batch would go out first, and whose confirm would drop the unwritten one). And bx_push itself names
 * the batch the exchange heard of last: a session past it ("missed") is drained, in order. */
static void test_ws_push_before_connect_reply(void **state)
{
    (void)state;
    n_ws = 0;
    bx_exchange *ex = ws_connect(CONNECT("3", ""));
    assert_int_equal(n_calls, 1);
    ws_wake(ex, M(1), "1", 41, 40); /* bx_connect parked at bn 40, then a publish pushed 41 */
    assert_int_equal(n_ws, 0);
    answer(0, mk("siii", "parked", 0LL, 0LL, 40LL));
    assert_int_equal(n_calls, 2);
    assert_memory_equal(calls[1].text, "bx_drain c1 ", 12);
    answer(1, mk("sis", "msgs", 42LL, "{\"channel\":\"/a\",\"data\":1}"));
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_string_equal(body, "[{\"channel\":\"/a\",\"data\":1},"
                              "{\"channel\":\"/meta/connect\",\"id\":\"3\",\"successful\":true}]");
    bx_exchange_free(ex);

    ex = ws_connect(CONNECT("4", ""));
    answer(2, mk("siii", "parked", 0LL, 0LL, 50LL));
    bx_exchange_wake(ex); /* a plain wake-up: bx_push, naming batch 50 */
    assert_int_equal(n_calls, 4);
    size_t tl = strlen(calls[3].text);
    assert_memory_equal(calls[3].text, "bx_push c1 ", 11);
    assert_true(tl > 3 && strcmp(calls[3].text + tl - 3, " 50") == 0);
    answer(3, mk("si", "missed", 51LL));
    assert_int_equal(n_ws, 0);
    assert_int_equal(n_calls, 5);
    assert_memory_equal(calls[4].text, "bx_drain c1 ", 12);
    answer(4, mk("sis", "msgs", 52LL, "{\"channel\":\"/a\",\"data\":2}"));
    assert_int_equal(last_state, BX_EX_REPLY);
    bx_exchange_free(ex);
}

/* bayeux-ws gathers the confirms of one loop pass: the first asks for a flush, none is sent until then,
 * and any other broker call sends them first (a drain must not reach Redis before them). */
static int n_schedules;
static void count_schedule(void *arg)
{
    (void)arg;
    n_schedules++;
}

static void test_confirms_gathered_per_pass(void **state)
{
    (void)state;
    n_schedules = 0;
    bx_dispatch_gather_confirms(d, count_schedule, NULL);
    bx_dispatch_confirm(d, "c1", 5);
    bx_dispatch_confirm(d, "c2", 6);
    assert_int_equal(n_schedules, 1);
    assert_int_equal(n_calls, 0);
    bx_dispatch_flush_confirms(d);
    assert_int_equal(n_calls, 1);
    assert_string_equal(calls[0].text, "bx_confirm c1 5 c2 6");
    answer(0, mk("i", 2LL));
    bx_dispatch_flush_confirms(d); /* nothing gathered: nothing sent */
    assert_int_equal(n_calls, 1);
    /* a held connect's drain goes after the confirm gathered before it */
    bx_exchange *ex = parked_connect(CONNECT("3", ""), 1);
    bx_dispatch_confirm(d, "c3", 7);
    assert_int_equal(n_schedules, 2);
    bx_exchange_expire(ex);
    assert_int_equal(n_calls, 4);
    assert_string_equal(calls[2].text, "bx_confirm c3 7");
    assert_memory_equal(calls[3].text, "bx_drain c1 ", 12);
    answer(2, mk("i", 1LL));
    answer(3, mk("si", "empty", 0LL));
    assert_int_equal(last_state, BX_EX_REPLY);
    bx_exchange_free(ex);
}

static bx_exchange *two[2];
static bx_exchange *find_two(char kind, const char *key, void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++)
        if (kind == 't' && two[i] && strcmp(key, bx_exchange_token(two[i])) == 0)
            return two[i];
    return NULL;
}

/* The polls answered from one push wake-up are confirmed in one bx_confirm. */
static void test_push_confirms_gathered(void **state)
{
    (void)state;
    confirm_in_state = 1;
    two[0] = parked_connect(CONNECT("3", ""), 0);
    two[1] = ex_new("[{\"channel\":\"/meta/connect\",\"clientId\":\"c2\",\"id\":\"4\"}]", "b1");
    bx_exchange_start(two[1]);
    answer(1, mk("siii", "parked", 0LL, 0LL, 0LL));
    char p[256];
    int n = snprintf(p, sizeof p, "p 1 2\n25:{\"channel\":\"/a\",\"data\":1}\nc1 %s 5 1\nc2 %s 6 1",
                     bx_exchange_token(two[0]), bx_exchange_token(two[1]));
    bx_dispatch_wake(p, (size_t)n, find_two, NULL);
    assert_int_equal(n_states, 4); /* two PARKED, two REPLY */
    assert_int_equal(n_calls, 3);
    assert_string_equal(calls[2].text, "bx_confirm c1 5 c2 6");
    bx_exchange_free(two[0]);
    bx_exchange_free(two[1]);
    two[0] = two[1] = NULL;
    answer(2, mk("i", 2LL));
}

/* Connects that arrive while a bx_connect_batch is in flight wait and go in one call when it is
 * answered; each exchange gets its own element of the reply, an error element fails only its own. */
static void test_connects_gathered(void **state)
{
    (void)state;
    bx_exchange *ex[3];
    ex[0] = ex_new(CONNECT("2", ""), "b1");
    bx_exchange_start(ex[0]);
    assert_int_equal(n_calls, 1);
    ex[1] = ex_new("[{\"channel\":\"/meta/connect\",\"clientId\":\"c2\",\"id\":\"3\"}]", "b1");
    bx_exchange_start(ex[1]);
    ex[2] = ex_new("[{\"channel\":\"/meta/connect\",\"clientId\":\"c3\",\"id\":\"4\"}]", "b1");
    bx_exchange_start(ex[2]);
    assert_int_equal(n_calls, 1); /* gathered: the first is in flight */
    answer(0, mk("siii", "parked", 0LL, 0LL, 0LL));
    assert_int_equal(last_state, BX_EX_PARKED);
    assert_int_equal(n_calls, 2);
    char head[128];
    snprintf(head, sizeof head, "bx_connect_batch 2 c2 b1 w1 %s -1 1 ", bx_exchange_token(ex[1]));
    assert_memory_equal(calls[1].text, head, strlen(head));
    assert_non_null(strstr(calls[1].text, " c3 b1 w1 "));
    assert_non_null(strstr(calls[1].text, bx_exchange_token(ex[2])));
    /* c2: answered with a message; c3: its connect failed in Redis → retry advice, as a failed bx_connect */
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = 2;
    r->element = calloc(2, sizeof *r->element);
    r->element[0] = mk("siiis", "msgs", 0LL, 0LL, 7LL, "{\"channel\":\"/a\",\"data\":1}");
    redisReply *e = r->element[1] = calloc(1, sizeof *e);
    e->type = REDIS_REPLY_ERROR;
    e->str = strdup("WRONGTYPE key it:{c3}:q holds a string, expected a list");
    e->len = strlen(e->str);
    n_states = 0;
    bx_store_cb *cb = calls[1].cb;
    calls[1].cb = NULL;
    cb(r, NULL, calls[1].arg);
    rfree(r->element[0]);
    free(e->str);
    free(e);
    free(r->element);
    free(r);
    assert_int_equal(n_states, 2);
    assert_int_equal(last_state, BX_EX_REPLY);
    assert_non_null(strstr(body, "\"reconnect\":\"retry\""));
    assert_non_null(strstr(body, "\"successful\":false"));
    assert_int_equal(bx_exchange_delivery_count(ex[1]), 1);
    assert_int_equal(bx_exchange_delivery_count(ex[2]), 0);
    assert_int_equal(n_calls, 2);
    bx_exchange_abandon(ex[0]);
    answer(2, mk("si", "empty", 0LL));
    assert_int_equal(last_state, BX_EX_GONE);
    for (int i = 0; i < 3; i++)
        bx_exchange_free(ex[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_with_cookie_sets_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_connect_no_advice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_client_advice_gets_full_advice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wake_before_parked_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_wake_without_messages_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_transport_changed_advice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_waiting_for_confirm_holds_less, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_connect_no_confirm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_superseded_and_disconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandon_unparks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_down_retry_advice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_connect_not_held_and_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_answers_without_broker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribe_missing_and_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timestamp_and_timesync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_answers_parked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_confirms_gathered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_push_through, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ws_push_before_connect_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirms_gathered_per_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connects_gathered, setup, teardown),
        cmocka_unit_test(test_wake_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
