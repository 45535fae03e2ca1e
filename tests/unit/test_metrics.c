/* test_metrics.c — Prometheus text of shared/metrics.c: values, escaping, cumulative
 * histogram, Redis away, and the allowed-address list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "metrics.h"

static redisReply *elem(int type, const char *str, long long n) {
    redisReply *e = calloc(1, sizeof *e);
    e->type = type;
    e->integer = n;
    if (str) {
        e->str = strdup(str);
        e->len = strlen(str);
    }
    return e;
}

/* bx_stats as the broker answers it: flat name, value (integers; one as a string to test both). */
static redisReply *stats_reply(void) {
    static const char *names[] = { "sessions", "handshakes", "connects", "publishes", "deliveries",
                                   "dropped", "wakes", "disconnects", "expired" };
    redisReply *r = elem(REDIS_REPLY_ARRAY, NULL, 0);
    r->elements = 18;
    r->element = calloc(18, sizeof *r->element);
    for (int i = 0; i < 9; i++) {
        r->element[2 * i] = elem(REDIS_REPLY_STRING, names[i], 0);
        r->element[2 * i + 1] = i == 3 ? elem(REDIS_REPLY_STRING, "40", 0) : elem(REDIS_REPLY_INTEGER, NULL, 10 + i);
    }
    return r;
}

static void reply_free(redisReply *r) {
    for (size_t i = 0; i < r->elements; i++) reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

static void has_line(const char *text, const char *line) {
    char *want = malloc(strlen(line) + 3);
    sprintf(want, "\n%s\n", line);
    char *with_nl = malloc(strlen(text) + 2);
    sprintf(with_nl, "\n%s", text);
    if (!strstr(with_nl, want)) fail_msg("missing line: %s\n--- got:\n%s", line, text);
    free(want);
    free(with_nl);
}

/* Every line is a comment or "name[{labels}] number". */
static void well_formed(const char *text) {
    const char *p = text;
    assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
    while (*p) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        if (strncmp(p, "# HELP ", 7) && strncmp(p, "# TYPE ", 7)) {
            const char *sp = nl;
            while (sp > p && sp[-1] != ' ') sp--;
            assert_true(sp > p + 1);
            char *end;
            strtod(sp, &end);
            if (end != nl) fail_msg("bad value in line: %.*s", (int)(nl - p), p);
            assert_true(strncmp(p, "bayeux_", 7) == 0);
        }
        p = nl + 1;
    }
}

static void test_full_scrape(void **state) {
    (void)state;
    bx_store_stats st = { .calls = 7, .failures = 1, .refused = 2, .reconnects = 3, .ready = 1, .pending = 4,
                          .latency_count = { 1, 2, 0, 0, 0, 0, 0, 0, 0, 4 }, .latency_sum_us = 2500000 };
    redisReply *br = stats_reply();
    bx_metrics_input in = { "w\"1\\x", &st, 2, 5, br, NULL };
    size_t len = 0;
    char *t = bx_metrics_render(&in, &len);
    assert_non_null(t);
    assert_int_equal(len, strlen(t));
    well_formed(t);
    has_line(t, "bayeux_redis_up{worker=\"w\\\"1\\\\x\"} 1");
    has_line(t, "bayeux_sessions 10");
    has_line(t, "bayeux_handshakes_total 11");
    has_line(t, "bayeux_publishes_total 40");
    has_line(t, "bayeux_expired_total 18");
    has_line(t, "# TYPE bayeux_deliveries_total counter");
    has_line(t, "bayeux_parked_polls{worker=\"w\\\"1\\\\x\"} 2");
    has_line(t, "bayeux_requests_in_progress{worker=\"w\\\"1\\\\x\"} 5");
    has_line(t, "bayeux_redis_calls_refused_total{worker=\"w\\\"1\\\\x\"} 2");
    has_line(t, "bayeux_redis_reconnects_total{worker=\"w\\\"1\\\\x\"} 3");
    /* cumulative buckets, +Inf = count */
    has_line(t, "bayeux_redis_call_duration_seconds_bucket{worker=\"w\\\"1\\\\x\",le=\"0.00025\"} 1");
    has_line(t, "bayeux_redis_call_duration_seconds_bucket{worker=\"w\\\"1\\\\x\",le=\"0.0005\"} 3");
    has_line(t, "bayeux_redis_call_duration_seconds_bucket{worker=\"w\\\"1\\\\x\",le=\"1\"} 3");
    has_line(t, "bayeux_redis_call_duration_seconds_bucket{worker=\"w\\\"1\\\\x\",le=\"+Inf\"} 7");
    has_line(t, "bayeux_redis_call_duration_seconds_count{worker=\"w\\\"1\\\\x\"} 7");
    has_line(t, "bayeux_redis_call_duration_seconds_sum{worker=\"w\\\"1\\\\x\"} 2.500000");
    free(t);
    reply_free(br);
}

static void test_redis_away(void **state) {
    (void)state;
    bx_store_stats st = { .ready = 0 };
    bx_metrics_input in = { "w1", &st, -1, -1, NULL, NULL };
    char *t = bx_metrics_render(&in, NULL);
    assert_non_null(t);
    well_formed(t);
    has_line(t, "bayeux_redis_up{worker=\"w1\"} 0");
    assert_null(strstr(t, "bayeux_sessions"));
    assert_null(strstr(t, "bayeux_parked_polls"));
    free(t);
    /* a connected store whose bx_stats failed is not "up" either, and a broken reply adds nothing */
    redisReply *bad = elem(REDIS_REPLY_ARRAY, NULL, 0);
    bx_metrics_input in2 = { "w1", NULL, 0, 0, bad, NULL };
    t = bx_metrics_render(&in2, NULL);
    well_formed(t);
    has_line(t, "bayeux_redis_up{worker=\"w1\"} 1");
    assert_null(strstr(t, "bayeux_sessions"));
    free(t);
    reply_free(bad);
}

static json_t *failed(const char *error) {
    return json_pack("{sbss}", "successful", 0, "error", error);
}

/* Errors by string (escaped, bounded), HTTP errors by status, the queue-depth histogram. */
static void test_counters(void **state) {
    (void)state;
    bx_counters_reset();
    bx_metrics_input in = { "w1", NULL, -1, -1, NULL, bx_counters_get() };
    char *t = bx_metrics_render(&in, NULL);
    well_formed(t);
    /* every CometD error string is listed from the start, at 0 */
    has_line(t, "# TYPE bayeux_errors_total counter");
    has_line(t, "bayeux_errors_total{worker=\"w1\",error=\"402::session_unknown\"} 0");
    has_line(t, "bayeux_errors_total{worker=\"w1\",error=\"403:denied_by_security_policy:publish_denied\"} 0");
    has_line(t, "bayeux_http_errors_total{worker=\"w1\",status=\"400\"} 0");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"+Inf\"} 0");
    free(t);

    json_t *unknown = failed("402::session_unknown"), *odd = failed("403:my \"q\"\\x\n:what");
    json_t *ok = json_pack("{sb}", "successful", 1), *multi = json_pack("{sb}", "successful", 0);
    bx_count_reply(unknown);
    bx_count_reply(unknown);
    bx_count_reply(odd);
    bx_count_reply(ok);    /* not an error */
    bx_count_reply(multi); /* multiple-clients: successful:false without an error string */
    bx_count_http_error(413);
    bx_count_http_error(400);
    bx_count_http_error(400);
    bx_count_http_error(200); /* not an error status: ignored */
    size_t depths[] = { 0, 1, 2, 3, 7, 10, 11, 1000, 1001 };
    for (size_t i = 0; i < sizeof depths / sizeof *depths; i++) bx_count_queue_depth(depths[i]);
    t = bx_metrics_render(&in, NULL);
    well_formed(t);
    has_line(t, "bayeux_errors_total{worker=\"w1\",error=\"402::session_unknown\"} 2");
    has_line(t, "bayeux_errors_total{worker=\"w1\",error=\"403:my \\\"q\\\"\\\\x\\n:what\"} 1");
    has_line(t, "bayeux_errors_total{worker=\"w1\",error=\"other\"} 0");
    has_line(t, "bayeux_http_errors_total{worker=\"w1\",status=\"400\"} 2");
    has_line(t, "bayeux_http_errors_total{worker=\"w1\",status=\"413\"} 1");
    assert_null(strstr(t, "status=\"200\""));
    /* cumulative: 1 | 2 | 3 | 7,10 | 11 | ... | 1000 | 1001; 0 is not observed */
    has_line(t, "# TYPE bayeux_queue_depth histogram");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"1\"} 1");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"2\"} 2");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"5\"} 3");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"10\"} 5");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"20\"} 6");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"500\"} 6");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"1000\"} 7");
    has_line(t, "bayeux_queue_depth_bucket{worker=\"w1\",le=\"+Inf\"} 8");
    has_line(t, "bayeux_queue_depth_sum{worker=\"w1\"} 2035");
    has_line(t, "bayeux_queue_depth_count{worker=\"w1\"} 8");
    free(t);

    /* made-up strings beyond BX_COUNT_ERRORS, or too long, count as "other" */
    char e[BX_COUNT_ERROR_LEN + 2];
    for (int i = 0; i < BX_COUNT_ERRORS + 5; i++) {
        snprintf(e, sizeof e, "403:custom:%d", i);
        json_t *f = failed(e);
        bx_count_reply(f);
        json_decref(f);
    }
    memset(e, 'x', sizeof e - 1);
    e[sizeof e - 1] = '\0';
    json_t *longer = failed(e);
    bx_count_reply(longer);
    const bx_counters *c = bx_counters_get();
    assert_int_equal(c->n_errors, BX_COUNT_ERRORS);
    unsigned long long listed = 0;
    for (size_t i = 0; i < c->n_errors; i++) listed += c->errors[i].n;
    /* 2 + 1 counted before; every further distinct string got its own entry until the table was full */
    assert_int_equal(c->errors[BX_COUNT_ERRORS].n, BX_COUNT_ERRORS + 5 + 1 + 3 - listed);
    t = bx_metrics_render(&in, NULL);
    well_formed(t);
    assert_null(strstr(t, "xxxxxxxx"));
    free(t);
    json_decref(longer);
    json_decref(unknown);
    json_decref(odd);
    json_decref(ok);
    json_decref(multi);
    bx_counters_reset();
}

static void test_allowed(void **state) {
    (void)state;
    assert_true(bx_metrics_allowed("127.0.0.1,::1", "::1"));
    assert_true(bx_metrics_allowed("127.0.0.1,::1", "127.0.0.1"));
    assert_false(bx_metrics_allowed("127.0.0.1,::1", "127.0.0.10"));
    assert_false(bx_metrics_allowed("127.0.0.1", "127.0.0"));
    assert_false(bx_metrics_allowed("127.0.0.1,", "10.0.0.1"));
    assert_true(bx_metrics_allowed("10.0.0.1,*", "192.0.2.7"));
    assert_false(bx_metrics_allowed("", "127.0.0.1"));
    assert_false(bx_metrics_allowed(NULL, "127.0.0.1"));
    assert_false(bx_metrics_allowed("*", ""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_scrape),
        cmocka_unit_test(test_redis_away),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
