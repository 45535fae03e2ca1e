/* test_config.c — defaults, value checks, prefixes, env overrides, file errors, shipped file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

static bx_config cfg;
static char err[512];

static int setup(void **state) {
    (void)state;
    err[0] = '\0';
    return bx_config_defaults(&cfg);
}

static int teardown(void **state) {
    (void)state;
    bx_config_free(&cfg);
    return 0;
}

static void set_ok(const char *k, const char *v) {
    if (bx_config_set(&cfg, k, v, err, sizeof err) != 0) fail_msg("set %s=%s: %s", k, v, err);
}

/* Setting must fail and the reason must contain want. */
static void set_bad(const char *k, const char *v, const char *want) {
    err[0] = '\0';
    if (bx_config_set(&cfg, k, v, err, sizeof err) == 0) fail_msg("set %s=%s accepted", k, v);
    if (!strstr(err, want)) fail_msg("set %s=%s: reason '%s' lacks '%s'", k, v, err, want);
}

static void test_defaults(void **state) {
    (void)state;
    for (int t = 0; t < BX_TR_COUNT; t++) {
        assert_int_equal(cfg.tr[t].timeout, 20000);
        assert_int_equal(cfg.tr[t].interval, 0);
        assert_int_equal(cfg.tr[t].maxInterval, 10000);
        assert_int_equal(cfg.tr[t].maxLazyTimeout, 5000);
        assert_int_equal(cfg.tr[t].maxQueue, -1);
        assert_int_equal(cfg.tr[t].maxMessageSize, 1048576);
        assert_int_equal(cfg.tr[t].metaConnectDeliverOnly, t == BX_TR_CALLBACK_POLLING);
    }
    assert_string_equal(cfg.allowedTransports, "long-polling,callback-polling");
    assert_int_equal(cfg.validateMessageFields, 1);
    assert_int_equal(cfg.broadcastToPublisher, 1);
    assert_int_equal(cfg.sweepPeriod, 997);
    assert_int_equal(cfg.handshakeReconnect, 0);
    assert_int_equal(cfg.maxSessionsPerBrowser, 1);
    assert_int_equal(cfg.multiSessionInterval, 2000);
    assert_int_equal(cfg.trustClientSession, 0);
    assert_string_equal(cfg.browserCookieName, "BAYEUX_BROWSER");
    assert_null(cfg.browserCookieDomain);
    assert_string_equal(cfg.browserCookiePath, "/");
    assert_int_equal(cfg.browserCookieMaxAge, -1);
    assert_int_equal(cfg.browserCookieSecure, 0);
    assert_int_equal(cfg.browserCookieHttpOnly, 1);
    assert_null(cfg.browserCookieSameSite);
    assert_int_equal(cfg.browserCookiePartitioned, 0);
    assert_int_equal(cfg.duplicateMetaConnectHttpResponseCode, 500);
    assert_string_equal(cfg.callbackParameter, "jsonp");
    assert_int_equal(cfg.callbackParameterMaxLength, 64);
    assert_string_equal(cfg.allowedOrigins, "*");
    assert_int_equal(cfg.maxBatchMessages, 1000);
    assert_int_equal(cfg.maxNestingDepth, 64);
    assert_int_equal(cfg.ackExtension, 1);
    assert_int_equal(cfg.timesyncExtension, 1);
    assert_int_equal(cfg.timestampExtension, 0);
    assert_string_equal(cfg.redisHost, "127.0.0.1");
    assert_int_equal(cfg.redisPort, 6379);
    assert_string_equal(cfg.redisPrefix, "bayeux:");
    assert_string_equal(cfg.listen, ":fd0");
    assert_int_equal(cfg.acceptThreads, 2);
    assert_string_equal(cfg.logLevel, "info");
    assert_int_equal(cfg.logSyslog, 0);
}

static void test_values(void **state) {
    (void)state;
    set_ok("timeout", "30000");
    for (int t = 0; t < BX_TR_COUNT; t++) assert_int_equal(cfg.tr[t].timeout, 30000);
    set_bad("timeout", "abc", "'abc' is not a number");
    set_bad("timeout", "12x", "not a number");
    set_bad("timeout", "", "not a number");
    set_bad("timeout", "-5", "out of range [0, 86400000]");
    set_bad("timeout", "99999999999999999999999", "out of range");
    assert_int_equal(cfg.tr[0].timeout, 30000); /* a rejected value changes nothing */
    set_bad("duplicateMetaConnectHttpResponseCode", "200", "out of range [400, 599]");
    set_bad("duplicateMetaConnectHttpResponseCode", "399", "out of range");
    set_ok("duplicateMetaConnectHttpResponseCode", "409");
    assert_int_equal(cfg.duplicateMetaConnectHttpResponseCode, 409);
    set_bad("redisPort", "70000", "out of range [1, 65535]");
    set_ok("redisPort", "6380");
    assert_int_equal(cfg.redisPort, 6380);
    set_bad("maxMessageSize", "-1", "out of range");
    set_ok("maxQueue", "100");
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].maxQueue, 100);
    /* booleans */
    set_ok("trustClientSession", "yes");
    assert_int_equal(cfg.trustClientSession, 1);
    set_ok("trustClientSession", "FALSE");
    assert_int_equal(cfg.trustClientSession, 0);
    set_bad("trustClientSession", "maybe", "not a boolean");
    /* callback-polling keeps metaConnectDeliverOnly whatever is set */
    set_ok("metaConnectDeliverOnly", "true");
    set_ok("metaConnectDeliverOnly", "false");
    assert_int_equal(cfg.tr[BX_TR_CALLBACK_POLLING].metaConnectDeliverOnly, 1);
    assert_int_equal(cfg.tr[BX_TR_LONG_POLLING].metaConnectDeliverOnly, 0);
    /* strings */
    set_ok("logLevel", "debug");
    assert_string_equal(cfg.logLevel, "debug");
    set_bad("logLevel", "verbose", "unknown log level 'verbose'");
    set_ok("browserCookieSameSite", "Lax");
    assert_string_equal(cfg.browserCookieSameSite, "Lax");
    set_ok("browserCookieSameSite", "");
    assert_null(cfg.browserCookieSameSite);
    set_bad("browserCookieSameSite", "Sometimes", "not Strict, Lax or None");
    set_bad("browserCookiePath", "/a;Secure", "not allowed in a cookie attribute");
    set_bad("browserCookieName", "A=B", "not allowed in a cookie name");
    set_bad("browserCookieName", "", "must not be empty");
    set_bad("callbackParameter", "cb<", "not allowed");
    set_bad("redisPrefix", "a b", "not allowed");
    set_ok("allowedTransports", " websocket , long-polling");
    assert_true(bx_config_transport_allowed(&cfg, BX_TR_WEBSOCKET));
    assert_true(bx_config_transport_allowed(&cfg, BX_TR_LONG_POLLING));
    assert_false(bx_config_transport_allowed(&cfg, BX_TR_CALLBACK_POLLING));
    set_bad("allowedTransports", "long-polling,flash", "unknown transport 'flash'");
    set_bad("allowedTransports", "long-polling,long-polling", "listed twice");
    set_bad("allowedTransports", "long-polling,", "empty");
    /* unknown and ignored keys */
    set_bad("timout", "1", "unknown key 'timout'");
    set_bad("Timeout", "1", "unknown key");
    set_ok("jsonContext", "org.cometd.server.JacksonJSONContextServer"); /* CometD plumbing: warned, ignored */
    assert_int_equal(bx_config_set(&cfg, NULL, "1", err, sizeof err), -1);
}

static void test_prefixes(void **state) {
    (void)state;
    /* the more specific key wins whatever the order */
    set_ok("long-polling.json.timeout", "1000");
    set_ok("long-polling.timeout", "2000");
    set_ok("timeout", "3000");
    assert_int_equal(cfg.tr[BX_TR_LONG_POLLING].timeout, 1000);
    assert_int_equal(cfg.tr[BX_TR_CALLBACK_POLLING].timeout, 2000);
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].timeout, 3000);
    set_ok("long-polling.jsonp.timeout", "4000");
    set_ok("ws.timeout", "5000");
    set_ok("long-polling.timeout", "6000"); /* does not undo the jsonp-specific value */
    assert_int_equal(cfg.tr[BX_TR_LONG_POLLING].timeout, 1000);
    assert_int_equal(cfg.tr[BX_TR_CALLBACK_POLLING].timeout, 4000);
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].timeout, 5000);
    /* other keys untouched */
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].interval, 0);
    set_ok("ws.maxMessageSize", "65536");
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].maxMessageSize, 65536);
    assert_int_equal(cfg.tr[BX_TR_LONG_POLLING].maxMessageSize, 1048576);
    /* HTTP and JSONP keys accept their prefixes only */
    set_ok("long-polling.maxSessionsPerBrowser", "3");
    set_ok("maxSessionsPerBrowser", "5");
    assert_int_equal(cfg.maxSessionsPerBrowser, 3);
    set_ok("long-polling.jsonp.callbackParameter", "cb");
    set_ok("callbackParameter", "other");
    assert_string_equal(cfg.callbackParameter, "cb");
    set_bad("ws.maxSessionsPerBrowser", "2", "unknown key");
    set_bad("long-polling.json.callbackParameter", "x", "unknown key");
    set_bad("long-polling.redisPort", "1", "unknown key");
    set_bad("ws.logLevel", "debug", "unknown key");
    set_bad("long-polling.timeout", "x", "long-polling.timeout: 'x' is not a number");
}

static void test_env(void **state) {
    (void)state;
    setenv("BX_TIMEOUT", "7000", 1);
    setenv("BX_MAX_INTERVAL", "15000", 1);
    setenv("BX_WS_TIMEOUT", "8000", 1);
    setenv("BX_LOG_LEVEL", "warn", 1);
    setenv("BX_REDIS_PORT", "7777", 1);
    setenv("BX_DUPLICATE_META_CONNECT_HTTP_RESPONSE_CODE", "503", 1);
    setenv("BX_BROWSER_COOKIE_SAME_SITE", "None", 1);
    setenv("BX_LONG_POLLING_MAX_SESSIONS_PER_BROWSER", "4", 1);
    setenv("BX_UNRELATED_THING", "whatever", 1); /* not a key: ignored */
    set_ok("timeout", "100"); /* as if from the file: env overrides it */
    assert_int_equal(bx_config_apply_env(&cfg, err, sizeof err), 0);
    assert_int_equal(cfg.tr[BX_TR_LONG_POLLING].timeout, 7000);
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].timeout, 8000);
    assert_int_equal(cfg.tr[BX_TR_CALLBACK_POLLING].maxInterval, 15000);
    assert_string_equal(cfg.logLevel, "warn");
    assert_int_equal(cfg.redisPort, 7777);
    assert_int_equal(cfg.duplicateMetaConnectHttpResponseCode, 503);
    assert_string_equal(cfg.browserCookieSameSite, "None");
    assert_int_equal(cfg.maxSessionsPerBrowser, 4);
    setenv("BX_REDIS_PORT", "port", 1);
    assert_int_equal(bx_config_apply_env(&cfg, err, sizeof err), -1);
    assert_string_equal(err, "env BX_REDIS_PORT: 'port' is not a number");
    unsetenv("BX_TIMEOUT");
    unsetenv("BX_MAX_INTERVAL");
    unsetenv("BX_WS_TIMEOUT");
    unsetenv("BX_LOG_LEVEL");
    unsetenv("BX_REDIS_PORT");
    unsetenv("BX_DUPLICATE_META_CONNECT_HTTP_RESPONSE_CODE");
    unsetenv("BX_BROWSER_COOKIE_SAME_SITE");
    unsetenv("BX_LONG_POLLING_MAX_SESSIONS_PER_BROWSER");
    unsetenv("BX_UNRELATED_THING");
}

/* Write text to a fresh temp file; returns its path (static buffer). */
static const char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/bx-test-conf.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static void load_expect(const char *text, int rc, const char *want_err) {
    const char *path = write_tmp(text);
    err[0] = '\0';
    int got = bx_config_load_file(&cfg, path, 1, err, sizeof err);
    if (got != rc) fail_msg("load returned %d (%s) for:\n%s", got, err, text);
    if (want_err) {
        char want[600];
        snprintf(want, sizeof want, "%s:%s", path, want_err);
        assert_string_equal(err, want);
    }
    unlink(path);
}

static void test_file(void **state) {
    (void)state;
    load_expect("# comment\n; other comment\n\n  timeout = 25000  \r\n"
                "long-polling.interval=100 # inline comment\n"
                "redisPrefix = \"app:\"\n"
                "allowedOrigins = https://a.example,https://b.example\n"
                "browserCookieDomain =\n",
                0, NULL);
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].timeout, 25000);
    assert_int_equal(cfg.tr[BX_TR_LONG_POLLING].interval, 100);
    assert_int_equal(cfg.tr[BX_TR_WEBSOCKET].interval, 0);
    assert_string_equal(cfg.redisPrefix, "app:");
    assert_string_equal(cfg.allowedOrigins, "https://a.example,https://b.example");
    assert_null(cfg.browserCookieDomain);
    /* errors carry file:line: reason */
    load_expect("timeout = 1\n\n# x\nmaxInterval = soon\n", -1, "4: maxInterval: 'soon' is not a number");
    load_expect("interval = 5\nbogusKey = 1\n", -1, "2: unknown key 'bogusKey'");
    load_expect("sweepPeriod = 0\n", -1, "1: sweepPeriod: 0 out of range [1, 86400000]");
    load_expect("timeout\n", -1, "1: expected 'key = value'");
    load_expect(" = 5\n", -1, "1: empty key");
    load_expect("timeout = 1\nduplicateMetaConnectHttpResponseCode = 302\n", -1,
                "2: duplicateMetaConnectHttpResponseCode: 302 out of range [400, 599]");
    /* a very long line is no problem (no fixed buffer) */
    size_t big = 100000;
    char *text = malloc(big + 32);
    memcpy(text, "allowedOrigins = ", 17);
    memset(text + 17, 'x', big);
    strcpy(text + 17 + big, "\n");
    load_expect(text, 0, NULL);
    assert_int_equal(strlen(cfg.allowedOrigins), big);
    free(text);
    /* missing file */
    assert_int_equal(bx_config_load_file(&cfg, "/nonexistent/bayeux.conf", 0, err, sizeof err), 0);
    assert_int_equal(bx_config_load_file(&cfg, "/nonexistent/bayeux.conf", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/bayeux.conf: "));
}

static void test_transport_names(void **state) {
    (void)state;
    assert_int_equal(bx_transport_from_name("long-polling"), BX_TR_LONG_POLLING);
    assert_int_equal(bx_transport_from_name("callback-polling"), BX_TR_CALLBACK_POLLING);
    assert_int_equal(bx_transport_from_name("websocket"), BX_TR_WEBSOCKET);
    assert_int_equal(bx_transport_from_name("flash"), -1);
    assert_int_equal(bx_transport_from_name(NULL), -1);
    assert_string_equal(bx_transport_name(BX_TR_CALLBACK_POLLING), "callback-polling");
    assert_string_equal(bx_transport_name((bx_transport)7), "unknown");
    assert_true(bx_config_transport_allowed(&cfg, BX_TR_LONG_POLLING));
    assert_true(bx_config_transport_allowed(&cfg, BX_TR_CALLBACK_POLLING));
    assert_false(bx_config_transport_allowed(&cfg, BX_TR_WEBSOCKET));
    assert_false(bx_config_transport_allowed(NULL, BX_TR_WEBSOCKET));
}

/* Read the shipped conf/bayeux.conf (BX_ROOT or cwd); caller frees. */
static char *read_shipped(void) {
    const char *root = getenv("BX_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/conf/bayeux.conf", root ? root : ".");
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s (run from the repo root or set BX_ROOT)", path);
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The shipped file documents every key, loads cleanly, and its commented-out
 * values are the real defaults: uncommenting them all changes nothing. */
static void test_shipped_file(void **state) {
    (void)state;
    char *text = read_shipped();
    for (size_t i = 0; bx_config_key(i); i++) {
        char pat[128];
        snprintf(pat, sizeof pat, "\n# %s =", bx_config_key(i));
        if (!strstr(text, pat)) fail_msg("conf/bayeux.conf does not document '%s'", bx_config_key(i));
    }
    load_expect(text, 0, NULL);
    /* uncomment every "# <key> = value" line of an unprefixed key */
    char *out = calloc(1, strlen(text) + 1);
    size_t o = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int is_key = 0;
        for (size_t i = 0; bx_config_key(i); i++) {
            size_t kl = strlen(bx_config_key(i));
            if (!strncmp(line, "# ", 2) && !strncmp(line + 2, bx_config_key(i), kl) && line[2 + kl] == ' ' &&
                line[3 + kl] == '=')
                is_key = 1;
        }
        const char *src = is_key ? line + 2 : line;
        o += (size_t)sprintf(out + o, "%s\n", src);
    }
    bx_config defaults;
    assert_int_equal(bx_config_defaults(&defaults), 0);
    load_expect(out, 0, NULL);
    for (int t = 0; t < BX_TR_COUNT; t++)
        assert_memory_equal(&cfg.tr[t], &defaults.tr[t], sizeof cfg.tr[t]);
    assert_string_equal(cfg.allowedTransports, defaults.allowedTransports);
    assert_string_equal(cfg.browserCookieName, defaults.browserCookieName);
    assert_null(cfg.browserCookieDomain);
    assert_null(cfg.browserCookieSameSite);
    assert_string_equal(cfg.browserCookiePath, defaults.browserCookiePath);
    assert_string_equal(cfg.callbackParameter, defaults.callbackParameter);
    assert_string_equal(cfg.allowedOrigins, defaults.allowedOrigins);
    assert_string_equal(cfg.redisHost, defaults.redisHost);
    assert_string_equal(cfg.redisPrefix, defaults.redisPrefix);
    assert_string_equal(cfg.listen, defaults.listen);
    assert_string_equal(cfg.logLevel, defaults.logLevel);
    assert_int_equal(cfg.validateMessageFields, defaults.validateMessageFields);
    assert_int_equal(cfg.broadcastToPublisher, defaults.broadcastToPublisher);
    assert_int_equal(cfg.sweepPeriod, defaults.sweepPeriod);
    assert_int_equal(cfg.handshakeReconnect, defaults.handshakeReconnect);
    assert_int_equal(cfg.maxSessionsPerBrowser, defaults.maxSessionsPerBrowser);
    assert_int_equal(cfg.multiSessionInterval, defaults.multiSessionInterval);
    assert_int_equal(cfg.trustClientSession, defaults.trustClientSession);
    assert_int_equal(cfg.browserCookieMaxAge, defaults.browserCookieMaxAge);
    assert_int_equal(cfg.browserCookieSecure, defaults.browserCookieSecure);
    assert_int_equal(cfg.browserCookieHttpOnly, defaults.browserCookieHttpOnly);
    assert_int_equal(cfg.browserCookiePartitioned, defaults.browserCookiePartitioned);
    assert_int_equal(cfg.duplicateMetaConnectHttpResponseCode, defaults.duplicateMetaConnectHttpResponseCode);
    assert_int_equal(cfg.callbackParameterMaxLength, defaults.callbackParameterMaxLength);
    assert_int_equal(cfg.maxBatchMessages, defaults.maxBatchMessages);
    assert_int_equal(cfg.maxNestingDepth, defaults.maxNestingDepth);
    assert_int_equal(cfg.ackExtension, defaults.ackExtension);
    assert_int_equal(cfg.timesyncExtension, defaults.timesyncExtension);
    assert_int_equal(cfg.timestampExtension, defaults.timestampExtension);
    assert_int_equal(cfg.redisPort, defaults.redisPort);
    assert_int_equal(cfg.acceptThreads, defaults.acceptThreads);
    assert_int_equal(cfg.logSyslog, defaults.logSyslog);
    bx_config_free(&defaults);
    free(out);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transport_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_file, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
