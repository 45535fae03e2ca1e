/* test_fcgi_query.c — form decoding, message= parameters, JSONP callback names (fcgi/query.c),
 * and the parked table (fcgi/parked.c). The fcgi sources are compiled in (not part of libbx). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../fcgi/query.c"
#include "../../fcgi/parked.c"

static void test_decode(void **state)
{
    (void)state;
    size_t len;
    char *s = bx_query_decode("%5B%7b%22a%22+1%7D%5D", 21, &len);
    assert_string_equal(s, "[{\"a\" 1}]");
    assert_int_equal(len, 9);
    free(s);
    s = bx_query_decode("a%00b", 5, &len); /* NUL kept, length tells */
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 3);
    free(s);
    assert_null(bx_query_decode("%G1", 3, &len));
    assert_null(bx_query_decode("ab%4", 4, &len));
    assert_null(bx_query_decode("%", 1, &len));
    s = bx_query_decode("%41%42", 4, &len); /* only the first 4 bytes: "%41%" is malformed */
    assert_null(s);
}

static void test_values(void **state)
{
    (void)state;
    char **v;
    size_t *lens;
    int n = bx_query_values("jsonp=cb&message=%5B1%5D&x=&message=%5B2%5D&messages=no&message", "message", &v, &lens);
    assert_int_equal(n, 3);
    assert_string_equal(v[0], "[1]");
    assert_string_equal(v[1], "[2]");
    assert_string_equal(v[2], "");
    assert_int_equal(lens[1], 3);
    assert_null(v[3]);
    bx_query_values_free(v, lens);
    assert_int_equal(bx_query_values("", "jsonp", &v, NULL), 0);
    bx_query_values_free(v, NULL);
    assert_int_equal(bx_query_values("jsonp=%ZZ", "jsonp", &v, NULL), -1);
    assert_null(v);
}

static void test_callback_names(void **state)
{
    (void)state;
    assert_true(bx_query_callback_valid("cb_1", 64));
    assert_true(bx_query_callback_valid("jQuery3.cb-1", 64));
    assert_false(bx_query_callback_valid("cb(1)", 64));
    assert_false(bx_query_callback_valid("a b", 64));
    assert_false(bx_query_callback_valid("alert;x", 64));
    assert_false(bx_query_callback_valid("", 64));
    assert_false(bx_query_callback_valid(NULL, 64));
    char name[66];
    memset(name, 'a', 65);
    name[65] = '\0';
    assert_false(bx_query_callback_valid(name, 64));
    name[64] = '\0';
    assert_true(bx_query_callback_valid(name, 64));
}

static void test_parked(void **state)
{
    (void)state;
    int a, b, c;
    bx_parked *t = bx_parked_new();
    assert_int_equal(bx_parked_add(t, "c1", "1", &a), 0);
    assert_int_equal(bx_parked_add(t, "c2", "2", &b), 0);
    assert_int_equal(bx_parked_add(t, "c1", "3", &c), 0); /* newer connect of session c1 */
    assert_ptr_equal(bx_parked_by_cid(t, "c1"), &c);
    assert_ptr_equal(bx_parked_by_token(t, "1"), &a);
    assert_int_equal(bx_parked_count(t), 3);
    bx_parked_remove(t, "c1", "1", &a); /* the old one ends: c1 still names the newer */
    assert_ptr_equal(bx_parked_by_cid(t, "c1"), &c);
    assert_null(bx_parked_by_token(t, "1"));
    size_t n;
    char **tok = bx_parked_tokens(t, &n);
    assert_int_equal(n, 2);
    assert_true((strcmp(tok[0], "2") == 0 && strcmp(tok[1], "3") == 0) ||
                (strcmp(tok[0], "3") == 0 && strcmp(tok[1], "2") == 0));
    free(tok[0]);
    free(tok[1]);
    free(tok);
    bx_parked_remove(t, "c1", "3", &c);
    assert_null(bx_parked_by_cid(t, "c1"));
    assert_ptr_equal(bx_parked_by_cid(t, "c2"), &b);
    bx_parked_free(t); /* frees the remaining entry */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_callback_names),
        cmocka_unit_test(test_parked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
