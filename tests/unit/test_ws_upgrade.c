/* test_ws_upgrade.c — RFC 6455 opening handshake rules of bayeux-ws (ws/upgrade.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../ws/deflate.h"
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

/* permessage-deflate offers (RFC 7692 §7.1): the first acceptable one wins, bad ones are declined. */
static void test_deflate_negotiation(void **state) {
    (void)state;
    static const struct { const char *ext; int bits, named; } cases[] = {
        { "permessage-deflate", 15, 0 },
        { "permessage-deflate; client_max_window_bits", 15, 0 },  /* browsers' offer */
        { "Permessage-Deflate ; client_max_window_bits=10; server_no_context_takeover", 15, 0 },
        { "permessage-deflate; client_no_context_takeover", 15, 0 },
        { "permessage-deflate; server_max_window_bits=10", 10, 1 },
        { "permessage-deflate; server_max_window_bits=\"12\"", 12, 1 },
        { "x-webkit-deflate-frame, permessage-deflate", 15, 0 },
        { "permessage-deflate; server_max_window_bits=8, permessage-deflate", 15, 0 }, /* 8: next offer */
        { "permessage-deflate; server_max_window_bits=8", 0, 0 },   /* zlib has no 256-byte raw window */
        { "permessage-deflate; server_max_window_bits", 0, 0 },     /* value required */
        { "permessage-deflate; server_max_window_bits=16", 0, 0 },
        { "permessage-deflate; client_max_window_bits=7", 0, 0 },
        { "permessage-deflate; client_max_window_bits=015", 0, 0 },
        { "permessage-deflate; server_no_context_takeover=1", 0, 0 }, /* no value allowed */
        { "permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0, 0 },
        { "permessage-deflate; foo", 0, 0 },
        { "deflate-frame", 0, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char head[512];
        snprintf(head, sizeof head, OK_HEAD "Sec-WebSocket-Extensions: %s\r\n\r\n", cases[i].ext);
        bx_ws_upgrade u;
        assert_int_equal(judge(head, &u), 101);
        if (u.deflate != cases[i].bits || u.deflate_server_bits != cases[i].named)
            fail_msg("%s: bits %d named %d", cases[i].ext, u.deflate, u.deflate_server_bits);
    }
    /* offers over two header lines; the answer names both no_context_takeover parameters */
    bx_ws_upgrade u;
    assert_int_equal(judge(OK_HEAD "Sec-WebSocket-Extensions: foo\r\nSec-WebSocket-Extensions: permessage-deflate; "
                           "server_max_window_bits=11\r\n\r\n", &u), 101);
    assert_int_equal(u.deflate, 11);
    bx_config cfg;
    assert_int_equal(bx_config_defaults(&cfg), 0);
    assert_int_equal(cfg.wsPermessageDeflate, 1);
    size_t len;
    char *r = bx_ws_upgrade_response(&u, &cfg, NULL, &len);
    assert_non_null(strstr(r, "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                              "client_no_context_takeover; server_max_window_bits=11\r\n"));
    free(r);
    assert_int_equal(judge(OK_HEAD "\r\n", &u), 101);
    assert_int_equal(u.deflate, 0);
    r = bx_ws_upgrade_response(&u, &cfg, NULL, &len);
    assert_null(strstr(r, "Sec-WebSocket-Extensions"));
    free(r);
    bx_config_free(&cfg);
    /* a refused upgrade negotiates nothing */
    assert_int_equal(judge("GET / HTTP/1.1\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n", &u), 400);
    assert_int_equal(u.deflate, 0);
}

/* Message bodies round-trip; inflating never goes past max + 1 bytes (a zip bomb is refused early). */
static void test_deflate_bodies(void **state) {
    (void)state;
    char err[160], *text = NULL;
    unsigned char *z = NULL;
    size_t zlen = 0, n = 0;
    const char *msg = "[{\"channel\":\"/chat\",\"data\":\"hello hello hello hello hello hello hello\"}]";
    for (int bits = 9; bits <= 15; bits++) {
        assert_int_equal(bx_ws_deflate(msg, strlen(msg), bits, &z, &zlen, err, sizeof err), 0);
        assert_true(zlen < strlen(msg));
        assert_int_equal(bx_ws_inflate(z, zlen, 1000, &text, &n), BX_WS_INFLATE_OK);
        assert_int_equal(n, strlen(msg));
        assert_string_equal(text, msg);
        free(text);
        free(z);
    }
    assert_int_equal(bx_ws_deflate(msg, strlen(msg), 8, &z, &zlen, err, sizeof err), -1);
    /* "A" x 8 MiB compresses to a few KiB: refused as soon as the output passes max */
    size_t big = 8u << 20;
    char *bomb = malloc(big);
    assert_non_null(bomb);
    memset(bomb, 'A', big);
    assert_int_equal(bx_ws_deflate(bomb, big, 15, &z, &zlen, err, sizeof err), 0);
    free(bomb);
    assert_true(zlen < 65536);
    assert_int_equal(bx_ws_inflate(z, zlen, 65536, &text, &n), BX_WS_INFLATE_TOO_BIG);
    assert_null(text);
    assert_int_equal(bx_ws_inflate(z, zlen, big, &text, &n), BX_WS_INFLATE_OK); /* exactly max is fine */
    assert_int_equal(n, big);
    free(text);
    free(z);
    /* not deflate data; an empty message (just the tail) */
    assert_int_equal(bx_ws_inflate("\xff\xff\xff\xff", 4, 1000, &text, &n), BX_WS_INFLATE_CORRUPT);
    assert_int_equal(bx_ws_inflate("", 0, 1000, &text, &n), BX_WS_INFLATE_OK);
    assert_int_equal(n, 0);
    free(text);
    bx_ws_deflate_cleanup();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_accepts_valid_upgrade),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_deflate_negotiation),
        cmocka_unit_test(test_deflate_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
