/* test_auth.c — security policy: JWT verification (HS256 tokens made with libjwt here) and
 * channel authorizer rules. RS256 and the algorithm confusion run end to end in tests/services. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <jwt.h>

#include "auth.h"
#include "config.h"

#define SECRET "0123456789abcdef-secret"

static bx_auth *auth_with(const char *alg, const char *secret, const char *rules)
{
    bx_config cfg;
    assert_int_equal(bx_config_defaults(&cfg), 0);
    char err[256] = "";
    if (alg)
        assert_int_equal(bx_config_set(&cfg, "jwtAlgorithm", alg, err, sizeof err), 0);
    if (secret)
        assert_int_equal(bx_config_set(&cfg, "jwtSecret", secret, err, sizeof err), 0);
    if (rules)
        assert_int_equal(bx_config_set(&cfg, "authorizers", rules, err, sizeof err), 0);
    bx_auth *a = bx_auth_new(&cfg, err, sizeof err);
    if (!a)
        fprintf(stderr, "bx_auth_new: %s\n", err);
    bx_config_free(&cfg);
    return a;
}

/* HS256 token with these claims (JSON object text), signed with key; malloc'd. */
static char *token(jwt_alg_t alg, const char *key, const char *claims)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0), 0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static int verify(bx_auth *a, const char *tok, char *why, size_t n, char **user, char **roles)
{
    return bx_auth_verify(a, tok, user, roles, why, n);
}

static void test_hs256(void **state)
{
    (void)state;
    bx_auth *a = auth_with("HS256", SECRET, NULL);
    assert_non_null(a);
    assert_true(bx_auth_jwt_enabled(a));
    char why[200], *user, *roles, claims[256];
    snprintf(claims, sizeof claims, "{\"sub\":\"ann\",\"roles\":[\"admin\",\"ops\"],\"exp\":%ld}", (long)time(NULL) + 60);
    char *t = token(JWT_ALG_HS256, SECRET, claims);
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), 0);
    assert_string_equal(user, "ann");
    assert_string_equal(roles, "admin,ops");
    free(user);
    free(roles);
    /* tampered payload: one character of the signature part changed */
    char *dot = strrchr(t, '.');
    dot[1] = dot[1] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), -1);
    assert_null(user);
    free(t);
    /* wrong key */
    t = token(JWT_ALG_HS256, "another-secret-of-16", claims);
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), -1);
    free(t);
    /* expired, not yet valid, no subject, bad roles */
    snprintf(claims, sizeof claims, "{\"sub\":\"ann\",\"exp\":%ld}", (long)time(NULL) - 5);
    t = token(JWT_ALG_HS256, SECRET, claims);
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), -1);
    assert_non_null(strstr(why, "expired"));
    free(t);
    snprintf(claims, sizeof claims, "{\"sub\":\"ann\",\"nbf\":%ld}", (long)time(NULL) + 100);
    t = token(JWT_ALG_HS256, SECRET, claims);
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), -1);
    free(t);
    t = token(JWT_ALG_HS256, SECRET, "{\"name\":\"ann\"}");
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), -1);
    assert_non_null(strstr(why, "sub"));
    free(t);
    t = token(JWT_ALG_HS256, SECRET, "{\"sub\":\"ann\",\"roles\":[1]}");
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), -1);
    free(t);
    t = token(JWT_ALG_HS256, SECRET, "{\"sub\":\"ann\",\"roles\":\"one\"}");
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), 0);
    assert_string_equal(roles, "one");
    free(user);
    free(roles);
    free(t);
    /* alg none (unsigned) is never accepted */
    t = token(JWT_ALG_NONE, NULL, "{\"sub\":\"ann\"}");
    assert_int_equal(verify(a, t, why, sizeof why, &user, &roles), -1);
    free(t);
    /* garbage */
    const char *junk[] = { "", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9", "\xff\xfe.x.y", NULL };
    for (int i = 0; junk[i]; i++) {
        assert_int_equal(verify(a, junk[i], why, sizeof why, &user, &roles), -1);
        assert_null(user);
        assert_null(roles);
    }
    bx_auth_free(a);
}

static void test_config_errors(void **state)
{
    (void)state;
    assert_null(auth_with("HS256", "short", NULL));
    assert_null(auth_with("HS256", NULL, NULL));
    assert_null(auth_with("RS256", NULL, NULL));
    assert_null(auth_with("ES256", SECRET, NULL));
    assert_null(auth_with(NULL, NULL, "/a=*:someone"));
    assert_null(auth_with(NULL, NULL, "/a=read:everyone"));
    assert_null(auth_with(NULL, NULL, "a=*:everyone"));
    assert_null(auth_with(NULL, NULL, "/a*:everyone"));
    bx_auth *a = auth_with(NULL, NULL, NULL);
    assert_non_null(a);
    assert_false(bx_auth_jwt_enabled(a));
    char why[64], *u, *r;
    assert_int_equal(bx_auth_verify(a, "x", &u, &r, why, sizeof why), -1);
    bx_auth_free(a);
}

static void test_rules(void **state)
{
    (void)state;
    bx_auth *a = auth_with(NULL, NULL,
                           "/admin/**=*:role:admin;/chat/*=publish:authenticated;/ro/*=publish+create:nobody;"
                           "/open/x=subscribe:everyone;/open/**=subscribe:nobody");
    assert_non_null(a);
    bx_identity anon = { 0, "", "" }, member = { 0, "chatname", "" }, user = { 1, "u", "ops" },
                admin = { 1, "root", "ops,admin" };
    /* role rule on every op, any depth */
    assert_true(bx_auth_needs_identity(a, "/admin/x/y", BX_OP_SUBSCRIBE));
    assert_false(bx_auth_allows(a, "/admin/x/y", BX_OP_SUBSCRIBE, &user));
    assert_false(bx_auth_allows(a, "/admin/x", BX_OP_CREATE, &anon));
    assert_true(bx_auth_allows(a, "/admin/x/y", BX_OP_PUBLISH, &admin));
    assert_true(bx_auth_allows(a, "/admin", BX_OP_PUBLISH, &anon)); // the double-star rule needs one more segment
    /* authenticated: a chat member name is not authentication */
    assert_false(bx_auth_allows(a, "/chat/room", BX_OP_PUBLISH, &member));
    assert_true(bx_auth_allows(a, "/chat/room", BX_OP_PUBLISH, &user));
    assert_true(bx_auth_allows(a, "/chat/room", BX_OP_SUBSCRIBE, &anon));
    assert_true(bx_auth_allows(a, "/chat/room/deeper", BX_OP_PUBLISH, &anon)); // the single-star rule: one segment only
    assert_false(bx_auth_needs_identity(a, "/chat/room", BX_OP_SUBSCRIBE));
    /* nobody / everyone need no identity; first match wins */
    assert_false(bx_auth_needs_identity(a, "/ro/x", BX_OP_PUBLISH | BX_OP_CREATE));
    assert_false(bx_auth_allows(a, "/ro/x", BX_OP_PUBLISH, &admin));
    assert_true(bx_auth_allows(a, "/ro/x", BX_OP_SUBSCRIBE, &anon));
    assert_true(bx_auth_allows(a, "/open/x", BX_OP_SUBSCRIBE, NULL));
    assert_false(bx_auth_allows(a, "/open/y", BX_OP_SUBSCRIBE, NULL));
    /* no rule: allowed */
    assert_true(bx_auth_allows(a, "/other", BX_OP_PUBLISH, NULL));
    /* role names match whole entries only */
    bx_identity adm = { 1, "x", "administrator,adminx" };
    assert_false(bx_auth_allows(a, "/admin/x", BX_OP_PUBLISH, &adm));
    bx_auth_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests_name("security policy", tests, NULL, NULL);
}
