/* test_ctl.c — bayeuxctl ($BUILD/bin/bayeuxctl) against the private redis-server:
 * tables and --json, subscribers merged once per session, publish through the wildcard
 * names, disconnect, sweep, and the one-line errors (bad id, bad JSON, Redis down). */
#include <sys/wait.h>

#include <jansson.h>

#include "broker_test.h"

static bx_store_sync *S;

/* Run bayeuxctl with args (shell words) against the test Redis; stdout+stderr into *out
 * (malloc'd). Returns the exit status. */
static int ctl(const char *args, char **out) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/bin/bayeuxctl --redis 127.0.0.1:%d %s 2>&1", build, t_port(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[n] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *ctl_json(const char *args) {
    char *out;
    assert_int_equal(ctl(args, &out), 0);
    json_error_t e;
    json_t *v = json_loads(out, JSON_DECODE_ANY, &e);
    if (!v) fprintf(stderr, "not JSON: %s\n", out);
    assert_non_null(v);
    free(out);
    return v;
}

static int setup(void **state) {
    (void)state;
    t_flush(S);
    t_session(S, "c1", "b1");
    t_subscribe(S, "c1", "/chat/a");
    t_subscribe(S, "c1", "/chat/*");
    t_session(S, "c2", "");
    t_subscribe(S, "c2", "/chat/**");
    return 0;
}

static void test_sessions_table_and_json(void **state) {
    (void)state;
    char *out;
    assert_int_equal(ctl("sessions", &out), 0);
    assert_non_null(strstr(out, "ID "));
    assert_non_null(strstr(out, "\nc1 "));
    assert_non_null(strstr(out, "\nc2 "));
    assert_non_null(strstr(out, "2 sessions"));
    free(out);
    json_t *v = ctl_json("--json sessions");
    assert_int_equal(json_integer_value(json_object_get(v, "total")), 2);
    json_t *list = json_object_get(v, "sessions");
    assert_int_equal(json_array_size(list), 2);
    json_decref(v);
    v = ctl_json("--json session c1");
    assert_string_equal(json_string_value(json_object_get(v, "browser")), "b1");
    assert_int_equal(json_array_size(json_object_get(v, "channel_list")), 2);
    json_decref(v);
}

static void test_subscribers_once_per_session(void **state) {
    (void)state;
    json_t *v = ctl_json("--json subscribers /chat/a");
    // c1 via /chat/a (not again via /chat/*), c2 via /chat/**
    assert_int_equal(json_array_size(v), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "id")), "c1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "via")), "/chat/a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 1), "via")), "/chat/**");
    json_decref(v);
    v = ctl_json("--json channels");
    assert_int_equal(json_array_size(v), 3);
    json_decref(v);
}

static void test_publish(void **state) {
    (void)state;
    json_t *v = ctl_json("--json publish /chat/a '{\"x\":1}'");
    assert_int_equal(json_integer_value(json_object_get(v, "recipients")), 2);
    json_decref(v);
    redisReply *r = t_cmd(S, "LRANGE", T_PREFIX "{c2}:q", "1", "-1", NULL);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->str, "{\"channel\":\"/chat/a\",\"data\":{\"x\":1}}");
    freeReplyObject(r);
    char *out;
    assert_int_equal(ctl("publish /chat/a '{bad'", &out), 1);
    assert_non_null(strstr(out, "bayeuxctl: bad JSON"));
    assert_true(strchr(out, '\n') == out + strlen(out) - 1); /* exactly one line */
    free(out);
    assert_int_equal(ctl("publish /meta/connect 1", &out), 1);
    free(out);
    assert_int_equal(t_queued(S, "c2"), 1);
}

static void test_disconnect_and_errors(void **state) {
    (void)state;
    char *out;
    assert_int_equal(ctl("disconnect c2", &out), 0);
    free(out);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "{c2}:s", NULL), 0);
    assert_int_equal(ctl("disconnect c2", &out), 1);
    assert_string_equal(out, "bayeuxctl: unknown session 'c2'\n");
    free(out);
    assert_int_equal(ctl("session 'bad id'", &out), 1);
    assert_non_null(strstr(out, "bad session id"));
    free(out);
    assert_int_equal(ctl("frobnicate", &out), 2);
    free(out);
    json_t *v = ctl_json("--json stats");
    assert_int_equal(json_integer_value(json_object_get(v, "sessions")), 1);
    assert_int_equal(json_integer_value(json_object_get(v, "disconnects")), 1);
    json_decref(v);
}

static void test_sweep(void **state) {
    (void)state;
    freeReplyObject(t_cmd(S, "ZADD", T_PREFIX "expiry", "1", "c1", NULL));
    json_t *v = ctl_json("--json sweep 1");
    assert_int_equal(json_integer_value(json_object_get(v, "removed")), 1);
    json_decref(v);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "{c1}:s", NULL), 0);
}

/* Prometheus text of the broker counters: the two sessions of setup, and Redis up. */
static void test_metrics(void **state) {
    (void)state;
    char *out;
    assert_int_equal(ctl("metrics", &out), 0);
    if (!strstr(out, "\nbayeux_sessions 2\n") || !strstr(out, "bayeux_redis_up{worker=\"bayeuxctl\"} 1\n") ||
        !strstr(out, "# TYPE bayeux_publishes_total counter\n"))
        fail_msg("metrics output:\n%s", out);
    free(out);
}

static void test_redis_down(void **state) {
    (void)state;
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char cmd[512];
    /* Port 1 on loopback: nothing listens there. */
    snprintf(cmd, sizeof cmd, "%s/bin/bayeuxctl --redis 127.0.0.1:1 stats 2>&1", build);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, p));
    char extra[64];
    assert_null(fgets(extra, sizeof extra, p));
    int st = pclose(p);
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_non_null(strstr(line, "bayeuxctl: cannot connect to Redis at 127.0.0.1:1"));
}

int main(void) {
    S = t_open();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_sessions_table_and_json, setup),
        cmocka_unit_test_setup(test_subscribers_once_per_session, setup),
        cmocka_unit_test_setup(test_publish, setup),
        cmocka_unit_test_setup(test_disconnect_and_errors, setup),
        cmocka_unit_test_setup(test_sweep, setup),
        cmocka_unit_test_setup(test_metrics, setup),
        cmocka_unit_test(test_redis_down),
    };
    int rc = cmocka_run_group_tests_name("bayeuxctl", tests, NULL, NULL);
    bx_store_sync_close(S);
    return rc;
}
