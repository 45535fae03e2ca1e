/* test_fcgi_transport.c — request classification and decoding of the HTTP transports
 * (fcgi/transport.c), cookies (fcgi/request.c), without a web server: requests are built
 * by hand, responses (OPTIONS, errors) go to stdout as in CGI mode and are captured. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../fcgi/query.c"
#include "../../fcgi/request.c"
#include "../../fcgi/transport.c"

static bx_config cfg;

static int setup(void **state)
{
    (void)state;
    return bx_config_defaults(&cfg);
}

static int teardown(void **state)
{
    (void)state;
    bx_config_free(&cfg);
    return 0;
}

static bx_req *req(const char *method, const char *query, const char *ctype, const char *body)
{
    bx_req *q = calloc(1, sizeof *q);
    q->method = strdup(method);
    q->query = strdup(query);
    q->content_type = ctype ? strdup(ctype) : NULL;
    if (body) {
        q->body = strdup(body);
        q->body_len = strlen(body);
    }
    return q;
}

/* Run decode with stdout captured into out (what a CGI response would be). */
static int decode(bx_req *q, bx_batch *b, const char **reason, char *out, size_t outlen)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    int saved = dup(1);
    dup2(fileno(tmp), 1);
    int rc = bx_transport_decode(&cfg, q, b, reason);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, outlen - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return rc;
}

static void test_long_polling_json_and_form(void **state)
{
    (void)state;
    char out[1024];
    const char *reason;
    bx_batch b;
    bx_req *q = req("POST", "", "application/json", "{\"channel\":\"/meta/handshake\"}");
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 0);
    assert_int_equal(q->transport, BX_TR_LONG_POLLING);
    assert_int_equal(b.n, 1);
    bx_batch_free(&b);
    bx_req_free(q);
    /* curl's default type with a JSON body: still JSON (CometD 8 ignores the type) */
    q = req("POST", "", "application/x-www-form-urlencoded", "[{\"channel\":\"/a\"},{\"channel\":\"/b\"}]");
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 0);
    assert_int_equal(b.n, 2);
    bx_batch_free(&b);
    bx_req_free(q);
    /* CometD 5 form posts */
    q = req("POST", "", "application/x-www-form-urlencoded", "message=%5B%7B%22channel%22%3A%22%2Fa%22%7D%5D");
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 0);
    assert_string_equal(bx_msg_channel(b.msgs[0]), "/a");
    bx_batch_free(&b);
    bx_req_free(q);
    /* broken JSON: the parser's status */
    q = req("POST", "", "application/json", "[{\"channel\":");
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 400);
    bx_req_free(q);
}

static void test_callback_polling(void **state)
{
    (void)state;
    char out[1024];
    const char *reason;
    bx_batch b;
    bx_req *q = req("GET", "jsonp=cb_1&message=%5B%7B%22channel%22%3A%22%2Fa%22%7D%5D&message=%7B%22channel%22%3A%22%2Fb%22%7D",
                    NULL, NULL);
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 0);
    assert_int_equal(q->transport, BX_TR_CALLBACK_POLLING);
    assert_string_equal(q->callback, "cb_1");
    assert_int_equal(b.n, 2); /* two message parameters, concatenated */
    assert_string_equal(bx_msg_channel(b.msgs[1]), "/b");
    bx_batch_free(&b);
    bx_req_free(q);
    q = req("GET", "jsonp=alert(1)&message=%5B%5D", NULL, NULL);
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 400);
    assert_null(q->callback); /* never echoed */
    bx_req_free(q);
    q = req("GET", "jsonp=cb", NULL, NULL);
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 500); /* no message parameter */
    bx_req_free(q);
    q = req("GET", "jsonp=a&jsonp=b&message=%5B%5D", NULL, NULL);
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 400);
    bx_req_free(q);
    /* a handshake must be alone, also across message parameters */
    q = req("GET", "jsonp=cb&message=%7B%22channel%22%3A%22%2Fmeta%2Fhandshake%22%7D&message=%7B%22channel%22%3A%22%2Fb%22%7D",
            NULL, NULL);
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 500);
    bx_req_free(q);
}

static void test_other_methods_and_cors(void **state)
{
    (void)state;
    char out[1024];
    const char *reason;
    bx_batch b;
    bx_req *q = req("PUT", "", NULL, NULL);
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 400);
    assert_string_equal(reason, "Unknown Bayeux Transport");
    bx_req_free(q);
    q = req("GET", "foo=1", NULL, NULL); /* GET without the callback parameter */
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 400);
    bx_req_free(q);
    free(cfg.allowedOrigins);
    cfg.allowedOrigins = strdup("http://a.example, http://b.example");
    q = req("OPTIONS", "", NULL, NULL);
    q->origin = strdup("http://b.example");
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 1);
    assert_non_null(strstr(out, "Status: 200 OK\r\n"));
    assert_non_null(strstr(out, "Access-Control-Allow-Origin: http://b.example\r\n"));
    assert_non_null(strstr(out, "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"));
    bx_req_free(q);
    q = req("OPTIONS", "", NULL, NULL);
    q->origin = strdup("http://evil.example");
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 1);
    assert_null(strstr(out, "Access-Control"));
    bx_req_free(q);
    q = req("OPTIONS", "", NULL, NULL);
    q->origin = strdup("http://a.example\r\nX-Injected: 1"); /* never echoed */
    assert_int_equal(decode(q, &b, &reason, out, sizeof out), 1);
    assert_null(strstr(out, "X-Injected"));
    bx_req_free(q);
}

static void test_cookie(void **state)
{
    (void)state;
    bx_req *q = req("GET", "", NULL, NULL);
    q->cookie = strdup("XBAYEUX_BROWSER=no; a=1;BAYEUX_BROWSER=abc123 ; z=2");
    char *v = bx_req_cookie(q, "BAYEUX_BROWSER");
    assert_string_equal(v, "abc123 "); /* as sent; dispatch refuses what is not an id */
    free(v);
    assert_null(bx_req_cookie(q, "b"));
    bx_req_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_long_polling_json_and_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_polling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_methods_and_cors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cookie, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
