/* test_error.c — every Bayeux error string and advice object, byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "error.h"

/* Compact JSON text of v (insertion order), then release v. */
static void assert_json(json_t *v, const char *expected) {
    assert_non_null(v);
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(s);
    assert_string_equal(s, expected);
    free(s);
    json_decref(v);
}

static void test_error_strings(void **state) {
    (void)state;
    /* The exact strings CometD 5-8 sends (bayeux-notes.md §2.4): clients branch on them. */
    assert_string_equal(BX_ERR_CHANNEL_MISSING, "400::channel_missing");
    assert_string_equal(BX_ERR_CHANNEL_INVALID, "405::channel_invalid");
    assert_string_equal(BX_ERR_MESSAGE_ID_INVALID, "405::message_id_invalid");
    assert_string_equal(BX_ERR_SESSION_UNKNOWN, "402::session_unknown");
    assert_string_equal(BX_ERR_HANDSHAKE_DENIED, "403::handshake_denied");
    assert_string_equal(BX_ERR_HANDSHAKE_FAILED, "403::handshake_failed");
    assert_string_equal(BX_ERR_SUBSCRIPTION_MISSING, "403::subscription_missing");
    assert_string_equal(BX_ERR_SUBSCRIPTION_INVALID, "403::subscription_invalid");
    assert_string_equal(BX_ERR_SUBSCRIBE_FAILED, "403::subscribe_failed");
    assert_string_equal(BX_ERR_UNSUBSCRIBE_FAILED, "403::unsubscribe_failed");
    assert_string_equal(BX_ERR_MESSAGE_DELETED, "404::message_deleted");
    assert_string_equal(BX_ERR_CREATE_DENIED, "403:denied_by_security_policy:create_denied");
    assert_string_equal(BX_ERR_CHANNEL_CREATE_DENIED, "403:denied_by_security_policy:channel_create_denied");
    assert_string_equal(BX_ERR_SUBSCRIBE_DENIED, "403:denied_by_security_policy:subscribe_denied");
    assert_string_equal(BX_ERR_PUBLISH_DENIED, "403:denied_by_security_policy:publish_denied");
}

static void test_error_denied(void **state) {
    (void)state;
    char *s = bx_error_denied(BX_REASON_SECURITY_POLICY, "publish_denied");
    assert_non_null(s);
    assert_string_equal(s, BX_ERR_PUBLISH_DENIED);
    free(s);
    s = bx_error_denied(BX_REASON_NOT_GRANTING, "subscribe_denied");
    assert_string_equal(s, "403:denied_by_not_granting:subscribe_denied");
    free(s);
    s = bx_error_denied("custom reason", "create_denied");
    assert_string_equal(s, "403:custom reason:create_denied");
    free(s);
    s = bx_error_denied(NULL, NULL);
    assert_string_equal(s, "403::");
    free(s);
}

static void test_advice_retry(void **state) {
    (void)state;
    assert_json(bx_advice_retry(0, 20000, -1), "{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":20000}");
    assert_json(bx_advice_retry(250, 30000, 10000),
                "{\"reconnect\":\"retry\",\"interval\":250,\"timeout\":30000,\"maxInterval\":10000}");
    assert_json(bx_advice_retry(0, 0, 0), "{\"reconnect\":\"retry\",\"interval\":0,\"timeout\":0,\"maxInterval\":0}");
}

static void test_advice_handshake_none(void **state) {
    (void)state;
    assert_json(bx_advice_handshake(), "{\"reconnect\":\"handshake\",\"interval\":0}");
    assert_json(bx_advice_none(), "{\"reconnect\":\"none\"}");
}

static void test_advice_multiple_clients(void **state) {
    (void)state;
    assert_json(bx_advice_multiple_clients(2000),
                "{\"multiple-clients\":true,\"reconnect\":\"retry\",\"interval\":2000}");
    assert_json(bx_advice_multiple_clients(0), "{\"multiple-clients\":true,\"reconnect\":\"none\"}");
    assert_json(bx_advice_multiple_clients(-1), "{\"multiple-clients\":true,\"reconnect\":\"none\"}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_error_denied),
        cmocka_unit_test(test_advice_retry),
        cmocka_unit_test(test_advice_handshake_none),
        cmocka_unit_test(test_advice_multiple_clients),
    };
    return cmocka_run_group_tests_name("error", tests, NULL, NULL);
}
