/* test_service_calls.c — the C service API (shared/service.h) against a real Redis through the async
 * store: a handler that delivers to a session, to a user, publishes to a channel and makes its own
 * broker call before replying; a call whose exchange went away before its broker call answered. */
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker_test.h"
#include "service.h"

static bx_store_sync *S;

typedef struct outcome {
    int ended;
    char error[64];
    char reply[512];
} outcome;

static void on_end(bx_service_call *c, void *arg) {
    outcome *o = arg;
    o->ended++;
    const char *e = bx_service_call_error(c);
    snprintf(o->error, sizeof o->error, "%s", e ? e : "");
    json_t *r = bx_service_call_take_reply(c);
    char *text = r ? json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    snprintf(o->reply, sizeof o->reply, "%s", text ? text : "");
    free(text);
    json_decref(r);
}

static void counted(bx_service_call *c, const redisReply *r, const char *err, void *arg) {
    (void)err;
    (void)arg;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        bx_service_fail(c, "500::unexpected");
        return;
    }
    bx_service_reply(c, json_pack("{sI}", "queued", (json_int_t)r->integer));
}

/* Delivers to session "b", to user "uma", publishes on /news; then counts b's queue with LLEN-like
 * bx_confirm (a harmless call returning an integer) and replies with it. */
static void busy_handler(bx_service_call *c, void *arg) {
    (void)arg;
    json_t *d = json_pack("{si}", "n", 1);
    bx_service_deliver(c, "b", "/private", d);
    bx_service_deliver_user(c, "uma", "/to-user", d);
    bx_service_publish(c, "/news", d);
    bx_service_publish(c, "/service/not-a-broadcast", d); /* refused, logged */
    json_decref(d);
    const char *argv[] = { "b", "0" };
    bx_service_fcall_or_fail(c, "bx_confirm", 2, argv, counted);
}

static void tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
}

static void loop_ms(struct event_base *base, int ms, const int *until) {
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = { 0, 10000 };
    event_add(t, &tv);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (;;) {
        if (until && *until)
            break;
        clock_gettime(CLOCK_MONOTONIC, &b);
        if ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 > ms)
            break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(t);
}

static bx_store *open_async(struct event_base *base) {
    char err[256];
    bx_store_opts opts = { .host = "127.0.0.1", .port = t_port(), .prefix = T_PREFIX, .worker = NULL };
    bx_store *s = bx_store_new(base, &opts, NULL, NULL, err, sizeof err);
    assert_non_null(s);
    for (int i = 0; i < 300 && !bx_store_ready(s); i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(10000);
    assert_true(bx_store_ready(s));
    return s;
}

static void test_handler_actions(void **state) {
    (void)state;
    t_flush(S);
    t_session(S, "a", "");
    t_session(S, "b", "");
    t_session(S, "u1", "");
    t_subscribe(S, "u1", "/news");
    redisReply *r = t_fcall(S, "bx_member_join", "u1", "r", "uma", T_TTL, NULL);
    freeReplyObject(r);
    struct event_base *base = event_base_new();
    bx_store *store = open_async(base);
    char err[160];
    bx_services *reg = bx_services_new();
    assert_int_equal(bx_services_add(reg, "/service/busy", busy_handler, NULL, err, sizeof err), 0);
    json_t *msg = json_pack("{ssss}", "channel", "/service/busy", "id", "9");
    bx_service_ctx ctx = { store, "a", "", -1, 60000 };
    outcome o = { 0 };
    bx_service_call *c = bx_service_call_new(reg, msg, &ctx, on_end, &o, err, sizeof err);
    assert_non_null(c);
    bx_service_call_run(c);
    loop_ms(base, 3000, &o.ended);
    assert_int_equal(o.ended, 1);
    assert_string_equal(o.error, "");
    assert_string_equal(o.reply, "{\"channel\":\"/service/busy\",\"data\":{\"queued\":0},\"id\":\"9\",\"successful\":true}");
    bx_service_call_free(c);
    loop_ms(base, 300, NULL); /* the fire-and-forget calls */
    assert_int_equal(t_queued(S, "b"), 1);
    assert_int_equal(t_queued(S, "u1"), 2); /* the user delivery and /news, in either order */
    redisReply *q = t_cmd(S, "LRANGE", T_PREFIX "{u1}:q", "1", "-1", NULL);
    int to_user = 0, news = 0;
    for (size_t i = 0; i < q->elements; i++) {
        to_user += strcmp(q->element[i]->str, "{\"channel\":\"/to-user\",\"data\":{\"n\":1}}") == 0;
        news += strcmp(q->element[i]->str, "{\"channel\":\"/news\",\"data\":{\"n\":1}}") == 0;
    }
    freeReplyObject(q);
    assert_int_equal(to_user, 1);
    assert_int_equal(news, 1);
    assert_int_equal(t_queued(S, "a"), 0);
    json_decref(msg);
    bx_services_free(reg);
    bx_store_free(store);
    event_base_free(base);
}

/* The exchange freed the call while its broker call was in flight (worker teardown): the late
 * answer is dropped, nothing runs on freed memory, no leak. */
static void test_call_freed_while_broker_call_in_flight(void **state) {
    (void)state;
    t_flush(S);
    t_session(S, "a", "");
    t_session(S, "b", "");
    struct event_base *base = event_base_new();
    bx_store *store = open_async(base);
    char err[160];
    bx_services *reg = bx_services_new();
    assert_int_equal(bx_services_add(reg, "/service/busy", busy_handler, NULL, err, sizeof err), 0);
    json_t *msg = json_pack("{ss}", "channel", "/service/busy");
    bx_service_ctx ctx = { store, "a", "", -1, 60000 };
    outcome o = { 0 };
    bx_service_call *c = bx_service_call_new(reg, msg, &ctx, on_end, &o, err, sizeof err);
    bx_service_call_run(c);
    bx_service_call_free(c); /* before the loop ran: every broker call is still in flight */
    json_decref(msg);
    loop_ms(base, 500, NULL);
    assert_int_equal(o.ended, 0);
    bx_services_free(reg);
    bx_store_free(store);
    event_base_free(base);
}

int main(void) {
    S = t_open();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handler_actions),
        cmocka_unit_test(test_call_freed_while_broker_call_in_flight),
    };
    int rc = cmocka_run_group_tests_name("service calls", tests, NULL, NULL);
    bx_store_sync_close(S);
    return rc;
}
