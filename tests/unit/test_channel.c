/* test_channel.c — channel validation, classes, wildcard table, wildcard lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "channel.h"

static int chars(const char *s) { return bx_channel_chars_valid(s, strlen(s)); }

static void test_chars_valid(void **state) {
    (void)state;
    assert_true(chars("/a"));
    assert_true(chars("/foo/bar"));
    assert_true(chars("/A-z_0.9/x y/!#$()*+-.@_{~}"));
    assert_true(chars("//")); /* the character validator alone accepts it; structure does not */
    assert_false(chars("/"));
    assert_false(chars("foo"));
    assert_false(chars(""));
    assert_false(chars("/foo<>"));
    assert_false(chars("/foo\""));
    assert_false(chars("/foo%20"));
    assert_false(chars("/foo\\"));
    assert_false(chars("/foo?"));
    assert_false(chars("/é"));
    assert_false(chars("/a\tb"));
    assert_false(bx_channel_chars_valid(NULL, 3));
    /* len bounds the check: an embedded NUL is a bad character */
    assert_false(bx_channel_chars_valid("/a\0b", 4));
    assert_true(bx_channel_chars_valid("/a\0b", 2));
}

static void test_valid_structure(void **state) {
    (void)state;
    assert_true(bx_channel_valid("/a"));
    assert_true(bx_channel_valid("/a/b/c"));
    assert_true(bx_channel_valid("/a/"));        /* one trailing '/' tolerated */
    assert_true(bx_channel_valid("/*"));
    assert_true(bx_channel_valid("/**"));
    assert_true(bx_channel_valid("/a/*"));
    assert_true(bx_channel_valid("/a/**"));
    assert_true(bx_channel_valid("/meta/connect"));
    assert_true(bx_channel_valid("/chat/{room}"));
    assert_false(bx_channel_valid("/"));
    assert_false(bx_channel_valid("//"));
    assert_false(bx_channel_valid("/a//b"));
    assert_false(bx_channel_valid("/a//"));
    assert_false(bx_channel_valid("/a/*/b"));
    assert_false(bx_channel_valid("/a/**/b"));
    assert_false(bx_channel_valid("/a/*/*"));
    assert_false(bx_channel_valid("/a/***"));
    assert_false(bx_channel_valid("/a/b*"));
    assert_false(bx_channel_valid("/*a"));
    assert_false(bx_channel_valid("/foo<"));
    assert_false(bx_channel_valid("foo"));
    assert_false(bx_channel_valid(""));
    assert_false(bx_channel_valid(NULL));
}

static void test_classify_wild(void **state) {
    (void)state;
    assert_int_equal(bx_channel_classify("/meta/connect"), BX_CH_META);
    assert_int_equal(bx_channel_classify("/meta/*"), BX_CH_META);
    assert_int_equal(bx_channel_classify("/service/echo"), BX_CH_SERVICE);
    assert_int_equal(bx_channel_classify("/chat/a"), BX_CH_BROADCAST);
    assert_int_equal(bx_channel_classify("/meta"), BX_CH_BROADCAST);
    assert_int_equal(bx_channel_classify("/metax/a"), BX_CH_BROADCAST);
    assert_int_equal(bx_channel_classify("/service"), BX_CH_BROADCAST);
    assert_int_equal(bx_channel_wild("/a/b"), BX_WILD_NONE);
    assert_int_equal(bx_channel_wild("/a/*"), BX_WILD_ONE);
    assert_int_equal(bx_channel_wild("/a/**"), BX_WILD_DEEP);
    assert_int_equal(bx_channel_wild("/*"), BX_WILD_ONE);
    assert_int_equal(bx_channel_wild("/**"), BX_WILD_DEEP);
    assert_int_equal(bx_channel_wild("/**/"), BX_WILD_DEEP);
}

static void test_normalize(void **state) {
    (void)state;
    char a[] = "  /foo/ ";
    assert_string_equal(bx_channel_normalize(a), "/foo");
    char b[] = "/foo";
    assert_string_equal(bx_channel_normalize(b), "/foo");
    char c[] = "/";
    assert_string_equal(bx_channel_normalize(c), "/");
    char d[] = "\t/a/b//\n";
    assert_string_equal(bx_channel_normalize(d), "/a/b/"); /* only one '/' removed */
    char e[] = "   ";
    assert_string_equal(bx_channel_normalize(e), "");
}

/* The wildcard table (bayeux-notes.md §7 #13). */
static const struct { const char *pattern, *name; int match; } table[] = {
    { "/w/*", "/w/x", 1 },
    { "/w/*", "/w/x/y", 0 },
    { "/w/*", "/w", 0 },
    { "/w/**", "/w/x", 1 },
    { "/w/**", "/w/x/y", 1 },
    { "/w/**", "/w", 0 },
    { "/w/**", "/wx/y", 0 },
    { "/w/*", "/wx", 0 },
    { "/**", "/w", 1 },
    { "/**", "/w/x/y/z", 1 },
    { "/**", "/service/echo", 1 },
    { "/**", "/meta/connect", 0 },
    { "/*", "/meta", 1 },
    { "/*", "/w/x", 0 },
    { "/meta/*", "/meta/connect", 0 },
    { "/w/x", "/w/x", 1 },
    { "/w/x", "/w/x/", 1 },
    { "/w/x", "/w/y", 0 },
    { "/w/x", "/w/x/y", 0 },
    { "/meta/connect", "/meta/connect", 1 },
    { "/a/*", "/a/**", 1 },  // consistent with bx_channel_wildcards("/a/**")
    { "/a/**", "/a/*", 1 },
    { "/a/*", "/a/*", 1 },
};

static void test_matches_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int got = bx_channel_matches(table[i].pattern, table[i].name);
        if (got != table[i].match)
            fail_msg("matches(%s, %s) = %d, want %d", table[i].pattern, table[i].name, got, table[i].match);
    }
    assert_false(bx_channel_matches(NULL, "/a"));
    assert_false(bx_channel_matches("/a", NULL));
}

static void check_wildcards(const char *name, const char *const *want) {
    char **list = NULL;
    int n = bx_channel_wildcards(name, &list);
    size_t nwant = 0;
    while (want[nwant]) nwant++;
    if (n != (int)nwant) fail_msg("wildcards(%s): %d entries, want %zu", name, n, nwant);
    assert_non_null(list);
    for (size_t i = 0; i < nwant; i++) assert_string_equal(list[i], want[i]);
    assert_null(list[nwant]);
    bx_channel_wildcards_free(list);
}

static void test_wildcards_lists(void **state) {
    (void)state;
    check_wildcards("/a/b/c", (const char *const[]){ "/a/b/*", "/a/b/**", "/a/**", "/**", NULL });
    check_wildcards("/a", (const char *const[]){ "/*", "/**", NULL });
    check_wildcards("/a/b", (const char *const[]){ "/a/*", "/a/**", "/**", NULL });
    check_wildcards("/a/b/", (const char *const[]){ "/a/*", "/a/**", "/**", NULL });
    check_wildcards("/a/*", (const char *const[]){ "/a/**", "/**", NULL });
    check_wildcards("/a/**", (const char *const[]){ "/a/*", "/**", NULL });
    check_wildcards("/service/echo", (const char *const[]){ "/service/*", "/service/**", "/**", NULL });
    check_wildcards("/meta/connect", (const char *const[]){ NULL });
    char **list = (char **)1;
    assert_int_equal(bx_channel_wildcards("/a//b", &list), -1);
    assert_null(list);
    assert_int_equal(bx_channel_wildcards("nope", &list), -1);
    assert_int_equal(bx_channel_wildcards(NULL, &list), -1);
    assert_int_equal(bx_channel_wildcards("/a", NULL), -1);
    bx_channel_wildcards_free(NULL);
}

/* matches(p, n) for a wildcard p must agree with "p is in wildcards(n)": the broker
 * relies on the list, the in-worker code on matches. */
static void test_wildcards_agree_with_matches(void **state) {
    (void)state;
    const char *names[] = { "/a", "/a/b", "/a/b/c", "/x/y/z/w", "/service/s/t", "/a/*", "/a/b/**" };
    const char *patterns[] = { "/*", "/**", "/a/*", "/a/**", "/a/b/*", "/a/b/**", "/x/y/z/*", "/x/**",
                               "/service/**", "/service/s/*", "/b/*" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char **list = NULL;
        int n = bx_channel_wildcards(names[i], &list);
        assert_true(n > 0);
        for (size_t j = 0; j < sizeof patterns / sizeof patterns[0]; j++) {
            int listed = 0;
            for (int k = 0; k < n; k++) listed |= strcmp(list[k], patterns[j]) == 0;
            int m = bx_channel_matches(patterns[j], names[i]) && strcmp(patterns[j], names[i]) != 0;
            if (listed != m) fail_msg("%s vs %s: listed %d, matches %d", patterns[j], names[i], listed, m);
        }
        bx_channel_wildcards_free(list);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chars_valid),
        cmocka_unit_test(test_valid_structure),
        cmocka_unit_test(test_classify_wild),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_matches_table),
        cmocka_unit_test(test_wildcards_lists),
        cmocka_unit_test(test_wildcards_agree_with_matches),
    };
    return cmocka_run_group_tests_name("channel", tests, NULL, NULL);
}
