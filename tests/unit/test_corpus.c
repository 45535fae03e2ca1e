/* test_corpus.c — the hostile-input corpus (tests/corpus/EXPECTED) and generated huge
 * inputs: every body gets the parse status and HTTP status CometD would use, and each
 * message its Bayeux error; replies are built and serialized for all of them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "message.h"

static const bx_limits lim = { 1048576, 1000, 64 };
static char dir[1024];

/* What the dispatcher's validation step would answer for msg: "ok" or the error string. */
static const char *message_result(json_t *msg) {
    const char *e = bx_message_validate(msg);
    const char *ch = bx_msg_channel(msg);
    if (!e && ch && (!strcmp(ch, "/meta/subscribe") || !strcmp(ch, "/meta/unsubscribe")))
        e = bx_subscription_validate(msg);
    return e ? e : "ok";
}

/* Parse body; fill got[] with per-message results (static strings); returns the status.
 * Also builds and serializes each reply and delivery, as a transport would. */
static bx_parse_status run(const char *body, size_t len, const char **got, size_t max, size_t *n) {
    bx_batch b;
    bx_parse_error e;
    bx_parse_status st = bx_batch_parse(body, len, &lim, &b, &e);
    assert_int_equal(e.http_status, st == BX_PARSE_OK ? 0 : bx_parse_http_status(st));
    *n = b.n;
    json_t *replies = json_array();
    for (size_t i = 0; i < b.n; i++) {
        const char *r = message_result(b.msgs[i]);
        if (i < max) got[i] = r;
        json_t *reply = bx_reply_new(b.msgs[i]);
        assert_non_null(reply);
        if (strcmp(r, "ok") == 0) bx_reply_ok(reply);
        else bx_reply_fail(reply, r);
        json_array_append_new(replies, reply);
        json_t *d = bx_delivery_from_publish(b.msgs[i]);
        assert_non_null(d);
        json_decref(d);
    }
    size_t dlen = 0;
    char *out = bx_json_dump(replies, &dlen);
    assert_non_null(out);
    assert_true(dlen >= 2);
    free(out);
    json_decref(replies);
    bx_batch_free(&b);
    return st;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int find_dir(void **state) {
    (void)state;
    const char *root = getenv("BX_ROOT");
    snprintf(dir, sizeof dir, "%s/tests/corpus", root ? root : ".");
    return 0;
}

static void test_expected(void **state) {
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/EXPECTED", dir);
    size_t elen;
    char *exp = read_all(path, &elen);
    exp[elen] = '\0';
    int cases = 0;
    char *save = NULL;
    for (char *line = strtok_r(exp, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *tsave = NULL;
        const char *file = strtok_r(line, " ", &tsave);
        const char *status = strtok_r(NULL, " ", &tsave);
        const char *http = strtok_r(NULL, " ", &tsave);
        if (!file || !status || !http) fail_msg("bad EXPECTED line for %s", file ? file : "?");
        snprintf(path, sizeof path, "%s/%s", dir, file);
        size_t len;
        char *body = read_all(path, &len);
        const char *got[64];
        size_t n = 0;
        bx_parse_status st = run(body, len, got, 64, &n);
        if (strcmp(bx_parse_status_name(st), status) != 0)
            fail_msg("%s: parse status %s, expected %s", file, bx_parse_status_name(st), status);
        if (bx_parse_http_status(st) != atoi(http))
            fail_msg("%s: HTTP %d, expected %s", file, bx_parse_http_status(st), http);
        size_t k = 0;
        for (const char *want = strtok_r(NULL, " ", &tsave); want; want = strtok_r(NULL, " ", &tsave), k++) {
            if (k >= n) fail_msg("%s: only %zu messages, EXPECTED lists more", file, n);
            if (strcmp(got[k], want) != 0) fail_msg("%s: message %zu: %s, expected %s", file, k, got[k], want);
        }
        if (k != n) fail_msg("%s: %zu messages, EXPECTED lists %zu results", file, n, k);
        free(body);
        cases++;
    }
    free(exp);
    assert_true(cases >= 50);
}

/* Every corpus file has an expectation (a new hostile input cannot be forgotten). */
static void test_no_orphans(void **state) {
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/EXPECTED", dir);
    size_t elen;
    char *exp = read_all(path, &elen);
    exp[elen] = '\0';
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "EXPECTED") || !strcmp(de->d_name, "README.md")) continue;
        char pat[300];
        snprintf(pat, sizeof pat, "\n%s ", de->d_name);
        if (!strstr(exp, pat)) fail_msg("tests/corpus/%s has no line in EXPECTED", de->d_name);
        files++;
    }
    closedir(d);
    free(exp);
    assert_true(files >= 50);
}

/* Generated inputs too big to commit. */
static void expect_gen(const char *what, const char *body, size_t len, bx_parse_status want_st, const char *want_msg) {
    const char *got[1];
    size_t n = 0;
    bx_parse_status st = run(body, len, got, 1, &n);
    if (st != want_st) fail_msg("%s: %s, expected %s", what, bx_parse_status_name(st), bx_parse_status_name(want_st));
    if (want_msg && (n < 1 || strcmp(got[0], want_msg) != 0))
        fail_msg("%s: first message %s, expected %s", what, n ? got[0] : "none", want_msg);
}

/* {"channel":"<prefix><fill × n><suffix>"...} style bodies. */
static char *body_with(const char *head, char fill, size_t n, const char *tail, size_t *len) {
    size_t hl = strlen(head), tl = strlen(tail);
    char *b = malloc(hl + n + tl + 1);
    assert_non_null(b);
    memcpy(b, head, hl);
    memset(b + hl, fill, n);
    memcpy(b + hl + n, tail, tl + 1);
    *len = hl + n + tl;
    return b;
}

static void test_generated(void **state) {
    (void)state;
    size_t len;
    char *b;
    /* 1 MB strings */
    b = body_with("[{\"channel\":\"/a\",\"data\":\"", 'x', 1000000, "\"}]", &len);
    expect_gen("1 MB data string", b, len, BX_PARSE_OK, "ok");
    free(b);
    b = body_with("[{\"channel\":\"/a\",\"data\":\"", 'x', 1048576, "\"}]", &len);
    expect_gen("body over maxMessageSize", b, len, BX_PARSE_TOO_BIG, NULL);
    assert_int_equal(bx_parse_http_status(BX_PARSE_TOO_BIG), 500);
    free(b);
    b = body_with("[{\"channel\":\"/a\",\"data\":\"", 'x', 1048576 - 28, "\"}]", &len);
    assert_int_equal(len, 1048576);
    expect_gen("body exactly maxMessageSize", b, len, BX_PARSE_OK, "ok");
    free(b);
    b = body_with("[{\"channel\":\"/", 'c', 1000000, "\"}]", &len);
    expect_gen("1 MB channel", b, len, BX_PARSE_OK, "ok");
    free(b);
    b = body_with("[{\"channel\":\"/", 'c', 1000000, "<\"}]", &len);
    expect_gen("1 MB bad channel", b, len, BX_PARSE_OK, "405::channel_invalid");
    free(b);
    b = body_with("[{\"channel\":\"/a\",\"id\":\"", '7', 1000000, "\"}]", &len);
    expect_gen("1 MB id", b, len, BX_PARSE_OK, "ok");
    free(b);
    b = body_with("[{\"channel\":\"/a\",\"id\":\"", '7', 1000000, "-\"}]", &len);
    expect_gen("1 MB bad id", b, len, BX_PARSE_OK, "405::message_id_invalid");
    free(b);
    b = body_with("[{\"channel\":\"/meta/subscribe\",\"subscription\":\"/", 's', 1000000, "\"}]", &len);
    expect_gen("1 MB subscription", b, len, BX_PARSE_OK, "ok");
    free(b);
    b = body_with("[{\"channel\":\"/a\",\"data\":\"", '\xff', 1000000, "\"}]", &len);
    expect_gen("1 MB invalid UTF-8", b, len, BX_PARSE_BAD_JSON, NULL);
    free(b);
    b = body_with("[{\"channel\":\"/a\",\"", 'k', 1000000, "\":1}]", &len);
    expect_gen("1 MB key", b, len, BX_PARSE_OK, "ok");
    free(b);
    /* deep nesting, far beyond jansson's own limit */
    b = body_with("", '[', 1000000, "", &len);
    expect_gen("1 MB of [", b, len, BX_PARSE_TOO_DEEP, NULL);
    free(b);
    b = body_with("", '{', 1000000, "", &len);
    expect_gen("1 MB of {", b, len, BX_PARSE_TOO_DEEP, NULL);
    free(b);
    b = body_with("", '"', 1000000, "", &len); /* 500k empty strings back to back */
    expect_gen("1 MB of quotes", b, len, BX_PARSE_BAD_JSON, NULL);
    free(b);
    b = body_with("", '\\', 1000000, "", &len);
    expect_gen("1 MB of backslashes", b, len, BX_PARSE_BAD_JSON, NULL);
    free(b);
    /* many messages: 1000 pass, 1001 are too many */
    for (int count = 1000; count <= 1001; count++) {
        const char *m = "{\"channel\":\"/a\"},";
        size_t ml = strlen(m);
        b = malloc(ml * (size_t)count + 2);
        b[0] = '[';
        for (int i = 0; i < count; i++) memcpy(b + 1 + ml * (size_t)i, m, ml);
        b[ml * (size_t)count] = ']'; /* overwrite the last ',' */
        len = ml * (size_t)count + 1;
        expect_gen(count == 1000 ? "1000 messages" : "1001 messages", b, len,
                   count == 1000 ? BX_PARSE_OK : BX_PARSE_TOO_MANY, count == 1000 ? "ok" : NULL);
        free(b);
    }
    /* 200k empty objects in one message's data: wide, not deep */
    size_t w = 200000;
    b = malloc(w * 3 + 64);
    len = (size_t)sprintf(b, "[{\"channel\":\"/a\",\"data\":[");
    for (size_t i = 0; i < w; i++) { memcpy(b + len, "{},", 3); len += 3; }
    len--; /* drop the last ',' */
    len += (size_t)sprintf(b + len, "]}]");
    expect_gen("200k empty objects", b, len, BX_PARSE_OK, "ok");
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected),
        cmocka_unit_test(test_no_orphans),
        cmocka_unit_test(test_generated),
    };
    return cmocka_run_group_tests_name("corpus", tests, find_dir, NULL);
}
