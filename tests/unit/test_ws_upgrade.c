/* test_ws_upgrade.c — RFC 6455 opening handshake rules of bayeux-ws (ws/upgrade.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../ws/upgrade.h"

#define OK_HEAD "GET /cometd HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" \
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

static int judge(const char *head, bx_ws_upgrade *u) {
    return bx_ws_upgrade_parse(head, strlen(head), "BAYEUX_BROWSER", u);
}

/* RFC 6455 §1.3's worked example. */
static void test_accept_key(void **state) {
    (void)state;
    char out[32];
    assert_int_equal(bx_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out, sizeof out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(bx_ws_accept_key("x", 1, out, 28), -1); /* no room for 28 chars + NUL */
}

static void test_accepts_valid_upgrade(void **state) {
    (void)state;
    bx_ws_upgrade u;
    assert_int_equal(judge(OK_HEAD "Cookie: a=1; BAYEUX_BROWSER=abc123; b=2\r\nX-Forwarded-For: 10.0.0.1, 1.2.3.4\r\n"
                           "X-Forwarded-Proto: https\r\n\r\n", &u), 101);
    assert_string_equal(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_string_equal(u.browser, "abc123");
    assert_string_equal(u.forwarded, "10.0.0.1");
    assert_int_equal(u.secure, 1);
    assert_null(u.authorization);
    assert_int_equal(judge(OK_HEAD "Authorization: Bearer abc.def.ghi\r\n\r\n", &u), 101);
    assert_string_equal(u.authorization, "Bearer abc.def.ghi");
    bx_ws_upgrade_clear(&u);
    assert_null(u.authorization);
    assert_int_equal(judge("GET / HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n", &u), 400);
    assert_null(u.authorization); /* only kept for an accepted upgrade */
    /* header names and the upgrade token are case-insensitive */
    assert_int_equal(judge("GET / HTTP/1.1\r\nupgrade: WebSocket\r\nCONNECTION: upgrade\r\nsec-websocket-version: 13\r\n"
                           "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", &u), 101);
    assert_string_equal(u.browser, "");
    assert_int_equal(u.secure, 0);
}

static void test_refusals(void **state) {
    (void)state;
    static const struct { const char *head; int status; } cases[] = {
        { "POST /cometd HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 405 },
        { "GET /cometd HTTP/1.0\r\nUpgrade: websocket\r\n\r\n", 400 },
        { "GET /cometd\r\n\r\n", 400 },
        { "GET  /cometd HTTP/1.1\r\n\r\n", 400 },
        { "GET /cometd HTTP/1.1\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
        { "GET /cometd HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
        { "GET /cometd HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n\r\n", 426 },
        { "GET /cometd HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 426 },
        { "GET /cometd HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400 },
        { "GET /cometd HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n\r\n", 400 },
        { OK_HEAD "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400 }, /* repeated key */
        { OK_HEAD "Bad Header: x\r\n\r\n", 400 },
        { OK_HEAD "NoColon\r\n\r\n", 400 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bx_ws_upgrade u;
        int st = judge(cases[i].head, &u);
        if (st != cases[i].status)
            fail_msg("case %zu: %d, expected %d (%s)", i, st, cases[i].status, u.reason);
    }
}

static void test_hostile_bytes(void **state) {
    (void)state;
    bx_ws_upgrade u;
    char head[] = OK_HEAD "\r\n";
    head[5] = '\0'; /* NUL inside the request line */
    assert_int_equal(bx_ws_upgrade_parse(head, sizeof head - 1, "BAYEUX_BROWSER", &u), 400);
    size_t big = BX_WS_HEAD_MAX + 10;
    char *long_head = malloc(big);
    assert_non_null(long_head);
    memset(long_head, 'a', big);
    assert_int_equal(bx_ws_upgrade_parse(long_head, big, "BAYEUX_BROWSER", &u), 400);
    free(long_head);
    /* a cookie that cannot be an id is ignored; control bytes never reach the forwarded field */
    assert_int_equal(judge(OK_HEAD "Cookie: BAYEUX_BROWSER=../../x\r\nX-Real-IP: a\x01" "b\r\n\r\n", &u), 101);
    assert_string_equal(u.browser, "");
    assert_string_equal(u.forwarded, "a?b");
}

static void test_responses(void **state) {
    (void)state;
    bx_config cfg;
    assert_int_equal(bx_config_defaults(&cfg), 0);
    bx_ws_upgrade u;
    size_t len;
    assert_int_equal(judge(OK_HEAD "\r\n", &u), 101);
    char *r = bx_ws_upgrade_response(&u, &cfg, "newbrowser1", &len);
    assert_non_null(r);
    assert_int_equal(strlen(r), len);
    assert_non_null(strstr(r, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(r, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(r, "Set-Cookie: BAYEUX_BROWSER=newbrowser1; Path=/; HttpOnly\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n"));
    free(r);
    r = bx_ws_upgrade_response(&u, &cfg, NULL, &len);
    assert_null(strstr(r, "Set-Cookie"));
    free(r);
    assert_int_equal(judge("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 7\r\n\r\n", &u), 426);
    r = bx_ws_upgrade_response(&u, &cfg, "x", &len);
    assert_non_null(strstr(r, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"));
    assert_null(strstr(r, "Set-Cookie"));
    free(r);
    bx_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_accepts_valid_upgrade),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
