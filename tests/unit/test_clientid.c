/* test_clientid.c — id length, charset, uniqueness, validation of network ids. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clientid.h"

static int cmp(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

static void test_clientid_shape_and_unique(void **state) {
    (void)state;
    enum { N = 2000 };
    char (*ids)[BX_CLIENTID_LEN + 1] = calloc(N, sizeof *ids);
    assert_non_null(ids);
    int seen[36] = { 0 };
    char err[128];
    for (int i = 0; i < N; i++) {
        assert_int_equal(bx_clientid_new(ids[i], sizeof ids[i], err, sizeof err), 0);
        assert_int_equal(strlen(ids[i]), BX_CLIENTID_LEN);
        assert_true(bx_clientid_valid(ids[i]));
        for (const char *p = ids[i]; *p; p++) {
            assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z'));
            seen[*p <= '9' ? *p - '0' : *p - 'a' + 10]++;
        }
    }
    /* 52,000 digits: every one of the 36 appears (expected ~1444 each) */
    for (int d = 0; d < 36; d++) assert_true(seen[d] > 1000);
    qsort(ids, N, sizeof *ids, cmp);
    for (int i = 1; i < N; i++) assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_browserid(void **state) {
    (void)state;
    char a[BX_BROWSERID_LEN + 1], b[BX_BROWSERID_LEN + 1], err[128];
    assert_int_equal(bx_browserid_new(a, sizeof a, err, sizeof err), 0);
    assert_int_equal(bx_browserid_new(b, sizeof b, err, sizeof err), 0);
    assert_int_equal(strlen(a), BX_BROWSERID_LEN);
    assert_true(bx_clientid_valid(a));
    assert_string_not_equal(a, b);
}

static void test_buffer_too_small(void **state) {
    (void)state;
    char small[BX_CLIENTID_LEN], err[128] = "";
    assert_int_equal(bx_clientid_new(small, sizeof small, err, sizeof err), -1);
    assert_non_null(strstr(err, "too small"));
    assert_int_equal(bx_clientid_new(NULL, 100, NULL, 0), -1);
}

static void test_valid(void **state) {
    (void)state;
    assert_true(bx_clientid_valid("a"));
    assert_true(bx_clientid_valid("0123456789abcdefghijklmnopqrstuvwxyz"));
    char max[BX_ID_MAX_LEN + 2];
    memset(max, 'z', BX_ID_MAX_LEN);
    max[BX_ID_MAX_LEN] = '\0';
    assert_true(bx_clientid_valid(max));
    max[BX_ID_MAX_LEN] = 'z';
    max[BX_ID_MAX_LEN + 1] = '\0';
    assert_false(bx_clientid_valid(max));
    assert_false(bx_clientid_valid(""));
    assert_false(bx_clientid_valid(NULL));
    assert_false(bx_clientid_valid("ABC"));
    assert_false(bx_clientid_valid("abc def"));
    assert_false(bx_clientid_valid("abc:def"));
    assert_false(bx_clientid_valid("abc}"));   /* '{' '}' would break the Redis hash tag */
    assert_false(bx_clientid_valid("local_1"));
    assert_false(bx_clientid_valid("é"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clientid_shape_and_unique),
        cmocka_unit_test(test_browserid),
        cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests_name("clientid", tests, NULL, NULL);
}
