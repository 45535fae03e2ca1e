/* test_service.c — the service registry and the life of a call (no broker: store NULL). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "service.h"
#include "services/builtin.h"

static int ends;

static void on_end(bx_service_call *c, void *arg)
{
    (void)c;
    (void)arg;
    ends++;
}

static void h_fail(bx_service_call *c, void *arg) { bx_service_fail(c, arg); }
static void h_done_twice(bx_service_call *c, void *arg) { (void)arg; bx_service_done(c); bx_service_done(c); }
static void h_user(bx_service_call *c, void *arg)
{
    (void)arg;
    bx_service_reply(c, json_pack("{ssss}", "cid", bx_service_client_id(c), "user", bx_service_user(c)));
}
static void h_fcall(bx_service_call *c, void *arg)
{
    (void)arg;
    char err[128] = "";
    const char *argv[] = { "x" };
    size_t lens[] = { 1 };
    if (bx_service_fcall(c, "bx_touch", 1, argv, lens, NULL, NULL, err, sizeof err) < 0)
        bx_service_fail(c, err);
    else
        bx_service_done(c);
}

/* Run the handler of msg's channel; returns the call (ended), caller frees. */
static bx_service_call *run(bx_services *s, json_t *msg, const char *user)
{
    char err[128];
    bx_service_ctx ctx = { NULL, "cid1", user, -1, 1000 };
    bx_service_call *c = bx_service_call_new(s, msg, &ctx, on_end, NULL, err, sizeof err);
    assert_non_null(c);
    ends = 0;
    bx_service_call_run(c);
    assert_int_equal(ends, 1);
    return c;
}

static void test_registry(void **state)
{
    (void)state;
    char err[128];
    bx_services *s = bx_services_new();
    assert_int_equal(bx_services_add(s, "/chat/x", h_fail, NULL, err, sizeof err), -1);
    assert_int_equal(bx_services_add(s, "/meta/connect", h_fail, NULL, err, sizeof err), -1);
    assert_int_equal(bx_services_add(s, "/service/*", h_fail, NULL, err, sizeof err), -1);
    assert_int_equal(bx_services_add(s, "", h_fail, NULL, err, sizeof err), -1);
    assert_int_equal(bx_services_add(s, "/service/", h_fail, NULL, err, sizeof err), -1);
    assert_int_equal(bx_services_add(s, NULL, h_fail, NULL, err, sizeof err), -1);
    assert_int_equal(bx_services_add_builtins(s, err, sizeof err), 0);
    assert_true(bx_services_has(s, "/service/echo"));
    assert_true(bx_services_has(s, "/service/members"));
    assert_true(bx_services_has(s, "/service/privatechat"));
    assert_false(bx_services_has(s, "/service/other"));
    assert_false(bx_services_has(s, "/service/echo/x"));
    json_t *msg = json_pack("{ss}", "channel", "/service/other");
    bx_service_ctx ctx = { NULL, "cid1", NULL, -1, 1000 };
    assert_null(bx_service_call_new(s, msg, &ctx, on_end, NULL, err, sizeof err));
    assert_non_null(strstr(err, "no service"));
    /* re-registering replaces the handler */
    assert_int_equal(bx_services_add(s, "/service/echo", h_fail, (void *)"500::x", err, sizeof err), 0);
    json_object_set_new(msg, "channel", json_string("/service/echo"));
    bx_service_call *c = run(s, msg, NULL);
    assert_string_equal(bx_service_call_error(c), "500::x");
    bx_service_call_free(c);
    json_decref(msg);
    bx_services_free(s);
}

static void test_echo_reply(void **state)
{
    (void)state;
    char err[128];
    bx_services *s = bx_services_new();
    assert_int_equal(bx_services_add_builtins(s, err, sizeof err), 0);
    json_t *msg = json_pack("{sssss{si}}", "channel", "/service/echo", "id", "42", "data", "n", 7);
    bx_service_call *c = run(s, msg, NULL);
    assert_null(bx_service_call_error(c));
    json_t *r = bx_service_call_take_reply(c);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "channel")), "/service/echo");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "42");
    assert_true(json_is_true(json_object_get(r, "successful")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "data"), "n")), 7);
    assert_null(bx_service_call_take_reply(c));
    json_decref(r);
    bx_service_call_free(c);
    /* no data: a reply without data */
    json_object_del(msg, "data");
    c = run(s, msg, NULL);
    r = bx_service_call_take_reply(c);
    assert_null(json_object_get(r, "data"));
    json_decref(r);
    bx_service_call_free(c);
    json_decref(msg);
    bx_services_free(s);
}

static void test_call_outcomes(void **state)
{
    (void)state;
    char err[128];
    bx_services *s = bx_services_new();
    assert_int_equal(bx_services_add(s, "/service/f", h_fail, NULL, err, sizeof err), 0);
    assert_int_equal(bx_services_add(s, "/service/d", h_done_twice, NULL, err, sizeof err), 0);
    assert_int_equal(bx_services_add(s, "/service/u", h_user, NULL, err, sizeof err), 0);
    assert_int_equal(bx_services_add(s, "/service/b", h_fcall, NULL, err, sizeof err), 0);
    json_t *msg = json_pack("{ss}", "channel", "/service/f");
    bx_service_call *c = run(s, msg, NULL); /* no reason given: the generic one */
    assert_string_equal(bx_service_call_error(c), BX_SERVICE_FAILED);
    bx_service_call_free(c);
    json_object_set_new(msg, "channel", json_string("/service/d"));
    c = run(s, msg, NULL); /* the second end is ignored: end ran once */
    assert_null(bx_service_call_error(c));
    assert_null(bx_service_call_take_reply(c));
    bx_service_call_free(c);
    json_object_set_new(msg, "channel", json_string("/service/u"));
    c = run(s, msg, "ann");
    json_t *r = bx_service_call_take_reply(c);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "data"), "user")), "ann");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "data"), "cid")), "cid1");
    json_decref(r);
    bx_service_call_free(c);
    json_object_set_new(msg, "channel", json_string("/service/b"));
    c = run(s, msg, NULL); /* no broker: the fcall is refused, never hangs */
    assert_non_null(strstr(bx_service_call_error(c), "no broker"));
    bx_service_call_free(c);
    json_decref(msg);
    bx_services_free(s);
}

static void test_bad_service_data(void **state)
{
    (void)state;
    char err[128];
    bx_services *s = bx_services_new();
    assert_int_equal(bx_services_add_builtins(s, err, sizeof err), 0);
    const char *bad[] = { "{\"channel\":\"/service/members\"}",
                          "{\"channel\":\"/service/members\",\"data\":{\"room\":\"/chat/a/b\",\"user\":\"u\"}}",
                          "{\"channel\":\"/service/members\",\"data\":{\"room\":\"/chat/\",\"user\":\"u\"}}",
                          "{\"channel\":\"/service/members\",\"data\":{\"room\":\"r\",\"user\":7}}",
                          "{\"channel\":\"/service/privatechat\",\"data\":{\"room\":\"r\",\"user\":\"u\",\"peer\":\"p\"}}",
                          "{\"channel\":\"/service/privatechat\",\"data\":[1]}", NULL };
    for (int i = 0; bad[i]; i++) {
        json_t *msg = json_loads(bad[i], 0, NULL);
        assert_non_null(msg);
        bx_service_call *c = run(s, msg, NULL);
        assert_string_equal(bx_service_call_error(c), BX_ERR_SERVICE_DATA_INVALID);
        bx_service_call_free(c);
        json_decref(msg);
    }
    assert_string_equal(bx_service_room_name("/chat/demo"), "demo");
    assert_string_equal(bx_service_room_name("demo"), "demo");
    assert_null(bx_service_room_name("/chat/de mo"));
    assert_null(bx_service_room_name(NULL));
    bx_services_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_echo_reply),
        cmocka_unit_test(test_call_outcomes),
        cmocka_unit_test(test_bad_service_data),
    };
    return cmocka_run_group_tests_name("services", tests, NULL, NULL);
}
