/* test_message.c — batch parsing, validation (bayeux-notes.md §2.2, §7 #4 #18-#20 #25),
 * replies and serialization. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "message.h"

static const bx_limits lim = { 1048576, 1000, 64 };

/* Parse s with limits l; check the status, its HTTP code and that a failure leaves out empty. */
static bx_parse_status parse_l(const char *s, size_t len, const bx_limits *l, bx_batch *b, bx_parse_error *e) {
    bx_parse_status st = bx_batch_parse(s, len, l, b, e);
    assert_int_equal(e->status, st);
    assert_int_equal(e->http_status, st == BX_PARSE_OK ? 0 : bx_parse_http_status(st));
    if (st != BX_PARSE_OK) {
        assert_null(b->msgs);
        assert_int_equal(b->n, 0);
        assert_true(strlen(e->reason) > 0);
    }
    return st;
}

static void expect_status(const char *s, bx_parse_status want, int http) {
    bx_batch b;
    bx_parse_error e;
    bx_parse_status st = parse_l(s, strlen(s), &lim, &b, &e);
    if (st != want) fail_msg("parse(%s) = %s, want %s (%s)", s, bx_parse_status_name(st), bx_parse_status_name(want), e.reason);
    assert_int_equal(bx_parse_http_status(st), http);
    bx_batch_free(&b);
}

/* Compact text of v; caller frees. */
static char *dump(const json_t *v) {
    size_t len = 0;
    char *s = bx_json_dump(v, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    return s;
}

static void assert_dump(const json_t *v, const char *want) {
    char *s = dump(v);
    assert_string_equal(s, want);
    free(s);
}

static void test_parse_ok(void **state) {
    (void)state;
    bx_batch b;
    bx_parse_error e;
    const char *one = "{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"id\":\"1\"}";
    assert_int_equal(parse_l(one, strlen(one), &lim, &b, &e), BX_PARSE_OK);
    assert_int_equal(b.n, 1);
    assert_string_equal(bx_msg_channel(b.msgs[0]), "/meta/handshake");
    assert_string_equal(bx_msg_id(b.msgs[0]), "1");
    assert_null(bx_msg_client_id(b.msgs[0]));
    bx_batch_free(&b);
    assert_null(b.msgs);

    const char *two = " [ {\"channel\":\"/meta/connect\",\"clientId\":\"abc\"}, {\"channel\":\"/a\",\"data\":1} ]\n";
    assert_int_equal(parse_l(two, strlen(two), &lim, &b, &e), BX_PARSE_OK);
    assert_int_equal(b.n, 2);
    assert_string_equal(bx_msg_client_id(b.msgs[0]), "abc");
    assert_string_equal(bx_msg_channel(b.msgs[1]), "/a");
    bx_batch_free(&b);

    /* handshake alone inside an array is fine */
    expect_status("[{\"channel\":\"/meta/handshake\"}]", BX_PARSE_OK, 200);
    /* duplicate keys: CometD's parser keeps the last one; so do we */
    assert_int_equal(parse_l("{\"channel\":\"/a\",\"channel\":\"/b\"}", 31, &lim, &b, &e), BX_PARSE_OK);
    assert_string_equal(bx_msg_channel(b.msgs[0]), "/b");
    bx_batch_free(&b);
    /* out == NULL only checks */
    assert_int_equal(bx_batch_parse("{}", 2, NULL, NULL, &e), BX_PARSE_OK);
    bx_batch_free(NULL);
}

static void test_parse_not_nul_terminated(void **state) {
    (void)state;
    /* the parser must stop at len: trailing garbage past it is never read as JSON */
    char buf[] = "{\"channel\":\"/a\"}GARBAGE";
    bx_batch b;
    bx_parse_error e;
    assert_int_equal(parse_l(buf, 16, &lim, &b, &e), BX_PARSE_OK);
    bx_batch_free(&b);
    assert_int_equal(parse_l(buf, 15, &lim, &b, &e), BX_PARSE_BAD_JSON);
    char *heap = malloc(2);
    memcpy(heap, "{}", 2); /* exactly 2 bytes, no NUL: ASan catches any over-read */
    assert_int_equal(parse_l(heap, 2, &lim, &b, &e), BX_PARSE_OK);
    bx_batch_free(&b);
    free(heap);
}

static void test_parse_errors(void **state) {
    (void)state;
    expect_status("", BX_PARSE_EMPTY, 400);
    expect_status(" \r\n\t", BX_PARSE_EMPTY, 400);
    expect_status("[]", BX_PARSE_EMPTY_BATCH, 500);
    expect_status(" [ ] ", BX_PARSE_EMPTY_BATCH, 500);
    expect_status("[{\"channel\":\"/meta/connect\",", BX_PARSE_BAD_JSON, 400);
    expect_status("{channel:1}", BX_PARSE_BAD_JSON, 400);
    expect_status("[{}]x", BX_PARSE_BAD_JSON, 400);
    expect_status("[{\"channel\":\"/a\\u0000b\"}]", BX_PARSE_BAD_JSON, 400);
    expect_status("[{\"channel\":\"/a\xff\"}]", BX_PARSE_BAD_JSON, 400);
    expect_status("[{\"channel\":\"/a\xc3\"}]", BX_PARSE_BAD_JSON, 400);
    expect_status("[{\"data\":\"\xed\xa0\x80\"}]", BX_PARSE_BAD_JSON, 400); /* UTF-16 surrogate in UTF-8 */
    expect_status("[{\"data\":\"\\ud800\"}]", BX_PARSE_BAD_JSON, 400);     /* lone surrogate escape */
    expect_status("42", BX_PARSE_NOT_MESSAGES, 400);
    expect_status("\"/meta/connect\"", BX_PARSE_NOT_MESSAGES, 400);
    expect_status("null", BX_PARSE_NOT_MESSAGES, 400);
    expect_status("[1]", BX_PARSE_NOT_MESSAGES, 400);
    expect_status("[{\"channel\":\"/a\"},[]]", BX_PARSE_NOT_MESSAGES, 400);
    expect_status("[{\"channel\":\"/meta/handshake\"},{\"channel\":\"/foo\",\"data\":1}]",
                  BX_PARSE_HANDSHAKE_NOT_ALONE, 500);
    expect_status("[{\"channel\":\"/foo\"},{\"channel\":\"/meta/handshake\"}]", BX_PARSE_HANDSHAKE_NOT_ALONE, 500);
    /* raw NUL byte inside the body */
    bx_batch b;
    bx_parse_error e;
    assert_int_equal(parse_l("[{\"channel\":\"/a\0\"}]", 19, &lim, &b, &e), BX_PARSE_BAD_JSON);
    assert_int_equal(parse_l(NULL, 0, &lim, &b, &e), BX_PARSE_EMPTY);
    /* input bytes quoted by jansson never reach the log raw */
    parse_l("[\x01\n\x1b\xff]", 6, &lim, &b, &e);
    for (const char *p = e.reason; *p; p++) assert_true(*p >= 0x20 && *p <= 0x7e);
    assert_non_null(strstr(e.reason, "near '?'"));
    /* jansson's position is in the reason for the log */
    parse_l("[\n{\"channel\" 1}]", 16, &lim, &b, &e);
    assert_non_null(strstr(e.reason, "line 2"));
}

static void test_parse_limits(void **state) {
    (void)state;
    bx_batch b;
    bx_parse_error e;
    const char *body = "[{\"channel\":\"/a\"},{\"channel\":\"/b\"},{\"channel\":\"/c\"}]";
    size_t len = strlen(body);
    bx_limits l = { (long)len, 3, 0 };
    assert_int_equal(parse_l(body, len, &l, &b, &e), BX_PARSE_OK);
    bx_batch_free(&b);
    l.max_message_size = (long)len - 1;
    assert_int_equal(parse_l(body, len, &l, &b, &e), BX_PARSE_TOO_BIG);
    assert_int_equal(e.http_status, 500);
    l.max_message_size = 0; /* unlimited */
    l.max_batch_messages = 2;
    assert_int_equal(parse_l(body, len, &l, &b, &e), BX_PARSE_TOO_MANY);
    assert_int_equal(e.http_status, 500);

    /* depth: [ { "data": [[[...]]] } ] — depth 2 + k */
    bx_limits d = { 0, 0, 10 };
    char deep[256];
    for (int k = 7; k <= 9; k++) {
        int n = snprintf(deep, sizeof deep, "[{\"data\":");
        for (int i = 0; i < k; i++) deep[n++] = '[';
        for (int i = 0; i < k; i++) deep[n++] = ']';
        n += snprintf(deep + n, sizeof deep - (size_t)n, "}]");
        bx_parse_status st = parse_l(deep, (size_t)n, &d, &b, &e);
        assert_int_equal(st, 2 + k <= 10 ? BX_PARSE_OK : BX_PARSE_TOO_DEEP);
        if (st == BX_PARSE_TOO_DEEP) assert_int_equal(e.http_status, 400);
        bx_batch_free(&b);
    }
    /* brackets inside strings (with escaped quotes) do not count */
    const char *str = "[{\"data\":\"[[[[[[[[[[[[\\\"[[[[[[[[[[[\"}]";
    assert_int_equal(parse_l(str, strlen(str), &d, &b, &e), BX_PARSE_OK);
    bx_batch_free(&b);
    /* default depth 64 when max_depth <= 0, well below jansson's own 2048 */
    size_t big = 100000;
    char *p = malloc(big);
    memset(p, '[', big);
    assert_int_equal(parse_l(p, big, NULL, &b, &e), BX_PARSE_TOO_DEEP);
    assert_non_null(strstr(e.reason, "64"));
    free(p);
}

static void test_status_names(void **state) {
    (void)state;
    assert_string_equal(bx_parse_status_name(BX_PARSE_OK), "ok");
    assert_string_equal(bx_parse_status_name(BX_PARSE_HANDSHAKE_NOT_ALONE), "handshake_not_alone");
    assert_string_equal(bx_parse_status_name((bx_parse_status)99), "unknown");
    assert_int_equal(bx_parse_http_status(BX_PARSE_OK), 200);
    assert_int_equal(bx_parse_http_status(BX_PARSE_EMPTY), 400);
    assert_int_equal(bx_parse_http_status(BX_PARSE_BAD_JSON), 400);
    assert_int_equal(bx_parse_http_status(BX_PARSE_NOT_MESSAGES), 400);
    assert_int_equal(bx_parse_http_status(BX_PARSE_TOO_DEEP), 400);
    assert_int_equal(bx_parse_http_status(BX_PARSE_EMPTY_BATCH), 500);
    assert_int_equal(bx_parse_http_status(BX_PARSE_HANDSHAKE_NOT_ALONE), 500);
    assert_int_equal(bx_parse_http_status(BX_PARSE_TOO_BIG), 500);
    assert_int_equal(bx_parse_http_status(BX_PARSE_TOO_MANY), 500);
}

/* Validate one message given as JSON text; returns the error (or NULL), message kept in *out. */
static const char *validate_text(const char *text, json_t **out) {
    json_error_t je;
    json_t *m = json_loads(text, 0, &je);
    if (!m) fail_msg("test JSON %s: %s", text, je.text);
    const char *err = bx_message_validate(m);
    if (out) *out = m;
    else json_decref(m);
    return err;
}

static void expect_valid(const char *text, const char *want) {
    const char *got = validate_text(text, NULL);
    if (want == NULL && got == NULL) return;
    if (!want || !got || strcmp(want, got) != 0)
        fail_msg("validate(%s) = %s, want %s", text, got ? got : "NULL", want ? want : "NULL");
}

static void test_validate(void **state) {
    (void)state;
    expect_valid("{\"channel\":\"/foo\",\"data\":1}", NULL);
    expect_valid("{\"channel\":\"/meta/connect\",\"id\":\"Ab9\"}", NULL);
    /* §7 #18 */
    expect_valid("{\"channel\":\"/foo<>\",\"data\":1}", BX_ERR_CHANNEL_INVALID);
    expect_valid("{\"channel\":\"foo\",\"data\":1}", BX_ERR_CHANNEL_INVALID);
    expect_valid("{\"channel\":\"/\",\"data\":1}", BX_ERR_CHANNEL_INVALID);
    expect_valid("{\"channel\":\"\",\"data\":1}", BX_ERR_CHANNEL_INVALID);
    expect_valid("{\"data\":1,\"clientId\":\"bogus\"}", BX_ERR_CHANNEL_MISSING);
    expect_valid("{\"channel\":5}", BX_ERR_CHANNEL_MISSING);
    expect_valid("{\"channel\":null}", BX_ERR_CHANNEL_MISSING);
    expect_valid("{\"channel\":[\"/a\"]}", BX_ERR_CHANNEL_MISSING);
    /* §7 #19 */
    expect_valid("{\"channel\":\"/meta/connect\",\"id\":\"a-b\"}", BX_ERR_MESSAGE_ID_INVALID);
    expect_valid("{\"channel\":\"/a\",\"id\":\"\"}", BX_ERR_MESSAGE_ID_INVALID);
    expect_valid("{\"channel\":\"/a\",\"id\":\"a b\"}", BX_ERR_MESSAGE_ID_INVALID);
    expect_valid("{\"channel\":\"/a\",\"id\":true}", BX_ERR_MESSAGE_ID_INVALID);
    expect_valid("{\"channel\":\"/a\",\"id\":{}}", BX_ERR_MESSAGE_ID_INVALID);
    expect_valid("{\"channel\":\"/a\",\"id\":null}", NULL);
    /* CometD's order: channel before id */
    expect_valid("{\"id\":\"a-b\"}", BX_ERR_CHANNEL_MISSING);
    expect_valid("{\"channel\":\"x\",\"id\":\"a-b\"}", BX_ERR_CHANNEL_INVALID);
    expect_valid("[1]", BX_ERR_CHANNEL_MISSING);
    assert_string_equal(bx_message_validate(NULL), BX_ERR_CHANNEL_MISSING);
}

static void test_numeric_id(void **state) {
    (void)state;
    json_t *m;
    assert_null(validate_text("{\"channel\":\"/a\",\"id\":42}", &m));
    assert_string_equal(bx_msg_id(m), "42");
    json_decref(m);
    assert_null(validate_text("{\"channel\":\"/a\",\"id\":-0}", &m));
    assert_string_equal(bx_msg_id(m), "0");
    json_decref(m);
    /* negative: "-7" is not alphanumeric, like CometD's String.valueOf(-7) */
    assert_string_equal(validate_text("{\"channel\":\"/a\",\"id\":-7}", &m), BX_ERR_MESSAGE_ID_INVALID);
    assert_string_equal(bx_msg_id(m), "-7");
    json_decref(m);
    assert_string_equal(validate_text("{\"channel\":\"/a\",\"id\":1.5}", &m), BX_ERR_MESSAGE_ID_INVALID);
    assert_string_equal(bx_msg_id(m), "1.5");
    json_decref(m);
    /* the reply echoes the stringified id */
    assert_null(validate_text("{\"channel\":\"/a\",\"id\":9223372036854775807}", &m));
    json_t *r = bx_reply_new(m);
    bx_reply_ok(r);
    assert_dump(r, "{\"channel\":\"/a\",\"id\":\"9223372036854775807\",\"successful\":true}");
    json_decref(r);
    json_decref(m);
}

static const char *subval(const char *text) {
    json_t *m = json_loads(text, 0, NULL);
    assert_non_null(m);
    const char *err = bx_subscription_validate(m);
    json_decref(m);
    return err;
}

static void test_subscription_validate(void **state) {
    (void)state;
    /* §7 #20 */
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\"}"), BX_ERR_SUBSCRIPTION_MISSING);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":null}"), BX_ERR_SUBSCRIPTION_MISSING);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":[]}"), BX_ERR_SUBSCRIPTION_MISSING);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":5}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":{}}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":\"/bad<\"}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":\"/a/*/b\"}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":\"/a/**/b\"}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":\"/a//b\"}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":[\"/a\",5]}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_string_equal(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":[\"/a\",\"x\"]}"), BX_ERR_SUBSCRIPTION_INVALID);
    assert_null(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":\"/a/**\"}"));
    assert_null(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":[\"/w/*\",\"/x/y\",\"/meta/connect\"]}"));
    assert_null(subval("{\"channel\":\"/meta/subscribe\",\"subscription\":\"/foo/\"}"));
}

static void test_replies(void **state) {
    (void)state;
    json_t *m = json_loads("{\"clientId\":\"c1\",\"subscription\":[\"/a\"],\"id\":\"3\",\"channel\":\"/meta/subscribe\"}", 0, NULL);
    json_t *r = bx_reply_new(m);
    bx_reply_ok(r);
    /* CometD's reply order: channel, id, subscription (as sent), successful; never clientId */
    assert_dump(r, "{\"channel\":\"/meta/subscribe\",\"id\":\"3\",\"subscription\":[\"/a\"],\"successful\":true}");
    json_decref(r);
    json_decref(m);

    m = json_loads("{\"channel\":\"/meta/unsubscribe\",\"subscription\":\"/never/created\"}", 0, NULL);
    r = bx_reply_new(m);
    bx_reply_fail(r, BX_ERR_CHANNEL_MISSING);
    assert_dump(r, "{\"channel\":\"/meta/unsubscribe\",\"subscription\":\"/never/created\",\"successful\":false,"
                   "\"error\":\"400::channel_missing\"}");
    bx_reply_ok(r); /* a later success drops the error */
    assert_dump(r, "{\"channel\":\"/meta/unsubscribe\",\"subscription\":\"/never/created\",\"successful\":true}");
    json_decref(r);
    json_decref(m);

    /* invalid id echoed verbatim; subscription copied on any channel, as CometD's createReply */
    m = json_loads("{\"channel\":\"/meta/connect\",\"id\":\"a-b\",\"subscription\":\"/x\"}", 0, NULL);
    assert_string_equal(bx_message_validate(m), BX_ERR_MESSAGE_ID_INVALID);
    r = bx_reply_new(m);
    bx_reply_fail(r, bx_message_validate(m));
    assert_dump(r, "{\"channel\":\"/meta/connect\",\"id\":\"a-b\",\"subscription\":\"/x\",\"successful\":false,"
                   "\"error\":\"405::message_id_invalid\"}");
    json_decref(r);
    json_decref(m);

    /* a numeric id is echoed as a string even when the reply is built before validation */
    m = json_loads("{\"channel\":\"/a\",\"id\":17}", 0, NULL);
    r = bx_reply_new(m);
    assert_null(bx_message_validate(m));
    bx_reply_ok(r);
    assert_dump(r, "{\"channel\":\"/a\",\"id\":\"17\",\"successful\":true}");
    json_decref(r);
    json_decref(m);

    /* no channel: reply without one */
    m = json_loads("{\"id\":\"5\"}", 0, NULL);
    r = bx_reply_new(m);
    bx_reply_fail(r, bx_message_validate(m));
    assert_dump(r, "{\"id\":\"5\",\"successful\":false,\"error\":\"400::channel_missing\"}");
    json_decref(r);
    json_decref(m);
    bx_reply_ok(NULL);
    bx_reply_fail(NULL, "x");
}

static void test_delivery(void **state) {
    (void)state;
    /* §7 #11: no clientId, no id; ext and custom fields kept, in order */
    json_t *m = json_loads("{\"channel\":\"/chat/a\",\"clientId\":\"c1\",\"data\":{\"t\":\"hi\"},\"id\":\"7\","
                           "\"ext\":{\"x\":1},\"custom\":[1,2]}", 0, NULL);
    json_t *d = bx_delivery_from_publish(m);
    assert_dump(d, "{\"channel\":\"/chat/a\",\"data\":{\"t\":\"hi\"},\"ext\":{\"x\":1},\"custom\":[1,2]}");
    /* the publish itself is untouched */
    assert_string_equal(bx_msg_client_id(m), "c1");
    assert_string_equal(bx_msg_id(m), "7");
    json_decref(d);
    json_decref(m);
    /* no data: forwarded without data */
    m = json_loads("{\"channel\":\"/a\",\"clientId\":\"c\"}", 0, NULL);
    d = bx_delivery_from_publish(m);
    assert_dump(d, "{\"channel\":\"/a\"}");
    json_decref(d);
    json_decref(m);
}

/* parse → dump → parse → dump: the text is stable, and compact canonical input survives byte for byte. */
static void test_round_trip(void **state) {
    (void)state;
    const char *cases[] = {
        ("[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"supportedConnectionTypes\":[\"long-polling\"],"
         "\"advice\":{\"timeout\":60000,\"interval\":0},\"id\":\"1\",\"ext\":{\"ack\":true}}]"),
        "[{\"channel\":\"/chat/a\",\"data\":{\"z\":1,\"a\":[true,false,null,-1.5,1e+300,\"\\u00e9\\n\\\"\\\\\"]},\"id\":\"9\"}]",
        "[{\"channel\":\"/a\",\"data\":\"\xe2\x82\xac \xf0\x9f\x98\x80\"},{\"channel\":\"/b\",\"data\":9223372036854775807}]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bx_batch b;
        bx_parse_error e;
        assert_int_equal(parse_l(cases[i], strlen(cases[i]), &lim, &b, &e), BX_PARSE_OK);
        json_t *arr = json_array();
        for (size_t k = 0; k < b.n; k++) json_array_append(arr, b.msgs[k]);
        char *s1 = dump(arr);
        bx_batch b2;
        assert_int_equal(parse_l(s1, strlen(s1), &lim, &b2, &e), BX_PARSE_OK);
        assert_int_equal(b2.n, b.n);
        for (size_t k = 0; k < b.n; k++) assert_true(json_equal(b.msgs[k], b2.msgs[k]));
        json_t *arr2 = json_array();
        for (size_t k = 0; k < b2.n; k++) json_array_append(arr2, b2.msgs[k]);
        char *s2 = dump(arr2);
        assert_string_equal(s1, s2);
        if (i != 1) assert_string_equal(s1, cases[i]); /* case 1 has escapes jansson re-spells */
        free(s1);
        free(s2);
        json_decref(arr);
        json_decref(arr2);
        bx_batch_free(&b);
        bx_batch_free(&b2);
    }
    assert_null(bx_json_dump(NULL, NULL));
    json_t *num = json_integer(5);
    char *s = bx_json_dump(num, NULL);
    assert_string_equal(s, "5");
    free(s);
    json_decref(num);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_not_nul_terminated),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_numeric_id),
        cmocka_unit_test(test_subscription_validate),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_delivery),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("message", tests, NULL, NULL);
}
