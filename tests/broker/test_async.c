/* test_async.c — the async face of the store on a libevent loop: connect and load the
 * library, FCALL, wake-up callback, Redis killed (pending calls fail, new calls fail at
 * once), Redis back (reconnect, reload into the empty server, resubscribe + "r").
 * It starts its own second redis-server, so it can kill it, and stops it by PID. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker_test.h"

extern char **environ;

static int port;
static pid_t redis_pid;
static char dir[64];

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int redis_up(void) {
    struct timeval tv = { 0, 200000 };
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

static void redis_start(void) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *argv[] = { "redis-server", "--bind", "127.0.0.1", "--port", p, "--dir", dir, "--save", "",
                           "--appendonly", "no", "--logfile", "redis.log", NULL };
    /* posix_spawn takes char *const[] but does not write to the strings. */
    assert_int_equal(posix_spawnp(&redis_pid, "redis-server", NULL, NULL, (char *const *)(uintptr_t)argv,
                                  environ), 0);
    for (int i = 0; i < 200 && !redis_up(); i++) usleep(25000);
    assert_true(redis_up());
}

static void redis_kill(void) {
    if (redis_pid <= 0) return;
    kill(redis_pid, SIGKILL);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
}

/* ---- loop helpers */

typedef struct result {
    int called;
    int ok;            /* reply was non-NULL */
    char text[256];    /* reply string / first element, or err */
    long long integer;
} result;

static void on_result(const redisReply *reply, const char *err, void *arg) {
    result *r = arg;
    r->called++;
    r->ok = reply != NULL;
    if (!reply) {
        snprintf(r->text, sizeof r->text, "%s", err ? err : "");
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        r->integer = reply->integer;
    } else if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
        snprintf(r->text, sizeof r->text, "%s", reply->str);
    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 && reply->element[0]->str) {
        snprintf(r->text, sizeof r->text, "%s", reply->element[0]->str);
    }
}

typedef struct wakes {
    int n;
    char last[256];
} wakes;

static void on_wake(const char *payload, size_t len, void *arg) {
    wakes *w = arg;
    w->n++;
    snprintf(w->last, sizeof w->last, "%.*s", (int)len, payload);
}

static void tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what; (void)arg;
}

/* Run the loop until *flag becomes non-zero (or the store's readiness equals want when
 * flag is NULL), at most ms milliseconds. Returns 1 when the condition was met. */
static int loop_until(struct event_base *base, bx_store *s, const int *flag, int want_ready, int ms) {
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    struct timeval tv = { 0, 10000 };
    event_add(t, &tv);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int met = 0;
    for (;;) {
        met = flag ? *flag != 0 : bx_store_ready(s) == want_ready;
        if (met) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > ms) break;
        event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(t);
    return met;
}

static int fcall(bx_store *s, const char *fn, int argc, const char **argv, result *r) {
    char err[256];
    memset(r, 0, sizeof *r);
    int rc = bx_store_fcall(s, fn, argc, argv, NULL, on_result, r, err, sizeof err);
    if (rc < 0) snprintf(r->text, sizeof r->text, "%s", err);
    return rc;
}

static void test_async_life_cycle(void **state) {
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    wakes w = { 0 };
    char err[256];
    bx_store_opts opts = { .host = "127.0.0.1", .port = port, .prefix = T_PREFIX, .worker = "wa" };
    bx_store *s = bx_store_new(base, &opts, on_wake, &w, err, sizeof err);
    assert_non_null(s);
    assert_false(bx_store_ready(s));
    /* Not ready yet: fails at once, no callback. */
    result r;
    const char *ver[] = { NULL };
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r), -1);
    assert_int_equal(r.called, 0);
    assert_true(loop_until(base, s, NULL, 1, 3000));
    assert_true(bx_store_ready_for_ms(s) >= 0);
    /* The library was loaded into the empty server. */
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r), 0);
    assert_true(loop_until(base, s, &r.called, 0, 2000));
    assert_true(r.ok);
    assert_string_equal(r.text, bx_lua_version);

    /* A session parked at this worker, woken by a publish. */
    const char *hs[] = { "ca", "", "long-polling", T_EXPIRY, T_TTL, "0", "" };
    assert_int_equal(fcall(s, "bx_handshake", 7, hs, &r), 0);
    assert_true(loop_until(base, s, &r.called, 0, 2000));
    assert_int_equal(r.integer, 1);
    const char *sub[] = { "ca", "", T_EXPIRY, T_TTL, "/async" };
    assert_int_equal(fcall(s, "bx_subscribe", 5, sub, &r), 0);
    assert_true(loop_until(base, s, &r.called, 0, 2000));
    for (int i = 0; i < 2; i++) {
        const char *cn[] = { "ca", "", "wa", "tk", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1", "long-polling" };
        assert_int_equal(fcall(s, "bx_connect", 11, cn, &r), 0);
        assert_true(loop_until(base, s, &r.called, 0, 2000));
        assert_string_equal(r.text, i == 0 ? "empty" : "parked");
    }
    const char *pub[] = { "", "", "0", "0", "/async", "{\"a\":1}", "1", "-1" };
    assert_int_equal(fcall(s, "bx_publish", 8, pub, &r), 0);
    assert_true(loop_until(base, s, &w.n, 0, 2000));
    t_unbatch(w.last);
    assert_string_equal(w.last, "p 1 1\n7:{\"a\":1}\nca tk B 1"); /* pushed: the message rides on the wake-up */
    /* Script errors come back as err with a NULL reply. */
    const char *bad[] = { "c a" };
    assert_int_equal(fcall(s, "bx_confirm", 1, bad, &r), 0);
    assert_true(loop_until(base, s, &r.called, 0, 2000));
    assert_false(r.ok);
    assert_non_null(strstr(r.text, "wrong number of arguments"));

    /* Redis dies with a call in flight: its callback runs with NULL; new calls fail at once. */
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r), 0);
    redis_kill();
    assert_true(loop_until(base, s, &r.called, 0, 2000));
    assert_false(r.ok);
    assert_true(r.text[0] != 0);
    assert_true(loop_until(base, s, NULL, 0, 2000));
    result r2;
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r2), -1);
    assert_non_null(strstr(r2.text, "not connected"));
    assert_int_equal(r2.called, 0);
    assert_int_equal(bx_store_ready_for_ms(s), -1);

    /* Redis is back, empty: reconnect with backoff, reload the library, resubscribe. */
    w.n = 0;
    redis_start();
    assert_true(loop_until(base, s, NULL, 1, 8000));
    assert_true(loop_until(base, s, &w.n, 0, 8000));
    assert_string_equal(w.last, "r");
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r), 0);
    assert_true(loop_until(base, s, &r.called, 0, 2000));
    assert_true(r.ok);
    assert_string_equal(r.text, bx_lua_version);
    /* The counters saw all of it: the script error and the call cut by the kill failed, both calls
     * made while down were refused, one reconnect, and every answered call has a latency. */
    bx_store_stats st;
    bx_store_get_stats(s, &st);
    assert_true(st.failures >= 2);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.reconnects, 1);
    assert_true(st.ready);
    unsigned long long in_buckets = 0;
    for (int i = 0; i < BX_STORE_LATENCY_BUCKETS; i++) in_buckets += st.latency_count[i];
    assert_true(st.calls >= 8);
    assert_true(in_buckets == st.calls);
    /* The old session died with the old server: connect says unknown (client re-handshakes). */
    const char *cn[] = { "ca", "", "wa", "tk2", "-1", "1", T_TIMEOUT, T_EXPIRY, T_TTL, "-1", "long-polling" };
    assert_int_equal(fcall(s, "bx_connect", 11, cn, &r), 0);
    assert_true(loop_until(base, s, &r.called, 0, 2000));
    assert_string_equal(r.text, "unknown");

    /* Freeing with a call pending runs its callback once, with NULL. */
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r), 0);
    bx_store_free(s);
    assert_int_equal(r.called, 1);
    assert_false(r.ok);
    event_base_free(base);
}

/* A store without a wake channel on a new base, connected and ready. */
static bx_store *store_ready(struct event_base **base) {
    char err[256];
    *base = event_base_new();
    assert_non_null(*base);
    bx_store_opts opts = { .host = "127.0.0.1", .port = port, .prefix = T_PREFIX, .worker = NULL };
    bx_store *s = bx_store_new(*base, &opts, NULL, NULL, err, sizeof err);
    assert_non_null(s);
    assert_true(loop_until(*base, s, NULL, 1, 3000));
    return s;
}

/* FCALL bx_version and run the loop until it answered; returns r->ok. */
static int version_call(struct event_base *base, bx_store *s, result *r) {
    const char *ver[] = { NULL };
    assert_int_equal(fcall(s, "bx_version", 0, ver, r), 0);
    assert_true(loop_until(base, s, &r->called, 0, 4000));
    return r->ok;
}

static void test_async_library_reloaded_after_flush(void **state) {
    (void)state;
    struct event_base *base;
    bx_store *s = store_ready(&base);
    redisContext *c = redisConnect("127.0.0.1", port);
    freeReplyObject(redisCommand(c, "FUNCTION FLUSH"));
    redisFree(c);
    result r;
    /* The first call fails (the library is gone) and triggers a reload; later ones work. */
    assert_false(version_call(base, s, &r));
    assert_non_null(strstr(r.text, "Function not found"));
    assert_true(loop_until(base, s, NULL, 1, 3000));
    assert_true(version_call(base, s, &r));
    bx_store_free(s);
    event_base_free(base);
}

static void test_async_hung_redis(void **state) {
    (void)state;
    struct event_base *base = event_base_new();
    char err[256];
    wakes w = { 0 };
    bx_store_opts opts = { .host = "127.0.0.1", .port = port, .prefix = T_PREFIX, .worker = "wh" };
    bx_store *s = bx_store_new(base, &opts, on_wake, &w, err, sizeof err);
    assert_non_null(s);
    assert_true(loop_until(base, s, NULL, 1, 3000));
    /* The subscriber must be subscribed before Redis stops, or its first subscribe is the one that
     * comes back later, and a first subscribe rightly announces no lost wake-ups ("r"): publish until
     * one of ours arrives. */
    redisContext *pc = redisConnect("127.0.0.1", port);
    assert_non_null(pc);
    for (int i = 0; i < 300 && w.n == 0; i++) {
        freeReplyObject(redisCommand(pc, "PUBLISH %s x", T_PREFIX "wake:wh"));
        loop_until(base, s, &w.n, 0, 10);
    }
    redisFree(pc);
    assert_int_not_equal(w.n, 0);
    w.n = 0;
    bx_store_set_command_timeout(s, 300);
    /* Redis stops answering (SIGSTOP): the call fails after the timeout instead of hanging. */
    kill(redis_pid, SIGSTOP);
    result r;
    const char *ver[] = { NULL };
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r), 0);
    int answered = loop_until(base, s, &r.called, 0, 3000);
    kill(redis_pid, SIGCONT);
    assert_true(answered);
    assert_false(r.ok);
    /* And it comes back by itself once Redis answers again, the subscriber too: "r". */
    assert_true(loop_until(base, s, NULL, 1, 5000));
    assert_true(version_call(base, s, &r));
    assert_true(loop_until(base, s, &w.n, 0, 5000));
    assert_string_equal(w.last, "r");
    bx_store_free(s);
    event_base_free(base);
}

static void test_async_unreachable(void **state) {
    (void)state;
    struct event_base *base = event_base_new();
    char err[256];
    bx_store_opts opts = { .host = "127.0.0.1", .port = free_port(), .prefix = T_PREFIX, .worker = "wz" };
    bx_store *s = bx_store_new(base, &opts, NULL, NULL, err, sizeof err);
    assert_non_null(s);
    /* Nobody listens: never ready, calls fail at once, and the loop keeps running (backoff). */
    assert_false(loop_until(base, s, NULL, 1, 500));
    result r;
    const char *ver[] = { NULL };
    assert_int_equal(fcall(s, "bx_version", 0, ver, &r), -1);
    bx_store_free(s);
    event_base_free(base);
    /* The sync face reports it in one line. */
    bx_store_sync *ss = bx_store_sync_open("127.0.0.1", opts.port, T_PREFIX, err, sizeof err);
    assert_null(ss);
    assert_non_null(strstr(err, "cannot connect to Redis"));
}

static int group_setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* hiredis writes to a socket Redis may have closed */
    snprintf(dir, sizeof dir, "/tmp/bx-async.XXXXXX");
    assert_non_null(mkdtemp(dir));
    port = free_port();
    redis_start();
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    redis_kill();
    char log[96];
    snprintf(log, sizeof log, "%s/redis.log", dir);
    unlink(log);
    rmdir(dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_life_cycle),
        cmocka_unit_test(test_async_library_reloaded_after_flush),
        cmocka_unit_test(test_async_hung_redis),
        cmocka_unit_test(test_async_unreachable),
    };
    return cmocka_run_group_tests_name("broker async store", tests, group_setup, group_teardown);
}
