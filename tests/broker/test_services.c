/* test_services.c — the broker functions of the built-in services (bayeux.lua "services"):
 * bx_service_touch, bx_member_join, bx_private, bx_deliver_user, and room/user cleanup on
 * bx_disconnect and bx_sweep. Needs a redis-server (BX_TEST_REDIS_PORT, see tests/run.sh). */
#include "broker_test.h"

#include <unistd.h>

static bx_store_sync *S;

static int setup(void **state) {
    (void)state;
    t_flush(S);
    return 0;
}

/* Queue entry i (0-based, after the sentinel) of cid. Malloc'd. */
static char *queued_at(const char *cid, int i) {
    char key[128], idx[16];
    snprintf(key, sizeof key, T_PREFIX "{%s}:q", cid);
    snprintf(idx, sizeof idx, "%d", i + 1);
    redisReply *r = t_cmd(S, "LINDEX", key, idx, NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *s = strdup(r->str);
    freeReplyObject(r);
    return s;
}

static void join(const char *cid, const char *room, const char *user) {
    redisReply *r = t_fcall(S, "bx_member_join", cid, room, user, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "ok");
    freeReplyObject(r);
}

static void assert_queued_at(const char *cid, int i, const char *want) {
    char *got = queued_at(cid, i);
    assert_string_equal(got, want);
    free(got);
}

static void test_join_publishes_list_and_sets_user(void **state) {
    (void)state;
    t_session(S, "w", "");
    t_subscribe(S, "w", "/members/*");
    t_session(S, "a", "");
    t_session(S, "b", "");
    join("b", "r1", "bob");
    join("a", "r1", "al \"x\"");
    assert_int_equal(t_queued(S, "w"), 2);
    assert_queued_at("w", 0, "{\"channel\":\"/members/r1\",\"data\":[\"bob\"]}");
    assert_queued_at("w", 1, "{\"channel\":\"/members/r1\",\"data\":[\"al \\\"x\\\"\",\"bob\"]}");
    /* the member name became the session's user; service_touch tells it */
    redisReply *r = t_fcall(S, "bx_service_touch", "a", "", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "ok");
    assert_string_equal(t_str(r, 1), "al \"x\"");
    freeReplyObject(r);
    r = t_fcall(S, "bx_service_touch", "nobody", "", T_EXPIRY, T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "unknown");
    freeReplyObject(r);
    r = t_fcall(S, "bx_member_join", "nobody", "r1", "x", T_TTL, NULL);
    assert_string_equal(t_str(r, 0), "unknown");
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "SISMEMBER", T_PREFIX "user:bob", "b", NULL), 1);
    assert_int_equal(t_cmd_int(S, "HLEN", T_PREFIX "room:r1", NULL), 2);
}

static void test_private_only_to_peer_and_sender(void **state) {
    (void)state;
    t_session(S, "a", "");
    t_session(S, "b", "");
    t_session(S, "c", "");
    join("a", "r", "ann");
    join("b", "r", "ben");
    join("c", "r", "cy");
    redisReply *r = t_fcall(S, "bx_private", "a", "r", "ben,ghost", "{\"m\":1}", "-1", NULL);
    assert_int_equal(t_int(r, 1), 1);
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "a"), 1);
    assert_int_equal(t_queued(S, "b"), 1);
    assert_int_equal(t_queued(S, "c"), 0);
    assert_queued_at("b", 0, "{\"m\":1}");
    /* nobody named: nothing at all, not even the sender's copy */
    r = t_fcall(S, "bx_private", "a", "r", "ghost", "{\"m\":2}", "-1", NULL);
    assert_int_equal(t_int(r, 1), 0);
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "a"), 1);
    /* naming oneself: one copy */
    r = t_fcall(S, "bx_private", "a", "r", "ann", "{\"m\":3}", "-1", NULL);
    assert_int_equal(t_int(r, 1), 1);
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "a"), 2);
}

static void test_deliver_user_all_sessions(void **state) {
    (void)state;
    t_session(S, "u1", "");
    t_session(S, "u2", "");
    t_session(S, "o", "");
    join("u1", "r", "uma");
    join("u2", "q", "uma");
    join("o", "r", "otto");
    redisReply *r = t_fcall(S, "bx_deliver_user", "uma", "{\"hi\":1}", "-1", NULL);
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "u1"), 1);
    assert_int_equal(t_queued(S, "u2"), 1);
    assert_int_equal(t_queued(S, "o"), 0);
}

static void test_disconnect_and_sweep_leave_rooms(void **state) {
    (void)state;
    long long base = t_cmd_int(S, "DBSIZE", NULL);
    t_session(S, "w", "");
    t_subscribe(S, "w", "/members/r");
    t_session(S, "a", "");
    join("a", "r", "ann");
    redisReply *r = t_fcall(S, "bx_handshake", "b", "", "long-polling", "0", T_TTL, "0", "", NULL);
    freeReplyObject(r);
    join("b", "r", "ben");
    assert_int_equal(t_queued(S, "w"), 2);
    r = t_fcall(S, "bx_disconnect", "a", "", NULL);
    assert_string_equal(r->str, "ok");
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "w"), 3);
    assert_queued_at("w", 2, "{\"channel\":\"/members/r\",\"data\":[\"ben\"]}");
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "user:ann", NULL), 0);
    /* b was handshaken with expiry 0: the sweep removes it and publishes the empty list */
    r = t_fcall(S, "bx_sweep", "100", NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "w"), 4);
    assert_queued_at("w", 3, "{\"channel\":\"/members/r\",\"data\":[]}");
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "room:r", NULL), 0);
    r = t_fcall(S, "bx_disconnect", "w", "", NULL);
    freeReplyObject(r);
    /* no trace of the rooms or users: only the stats hash remains */
    assert_int_equal(t_cmd_int(S, "DBSIZE", NULL), base + 1);
}

/* A member whose session keys vanished without a removal (TTL while no worker swept) is dropped at the
 * next join in that room. */
static void test_join_drops_ghost_members(void **state) {
    (void)state;
    t_session(S, "w", "");
    t_subscribe(S, "w", "/members/r");
    t_session(S, "g", "");
    join("g", "r", "ghost");
    freeReplyObject(t_cmd(S, "DEL", T_PREFIX "{g}:s", T_PREFIX "{g}:q", T_PREFIX "{g}:m", NULL));
    t_session(S, "a", "");
    join("a", "r", "ann");
    assert_int_equal(t_queued(S, "w"), 2);
    assert_queued_at("w", 1, "{\"channel\":\"/members/r\",\"data\":[\"ann\"]}");
}

static void test_bad_arguments_and_wrong_types(void **state) {
    (void)state;
    t_session(S, "a", "");
    assert_non_null(strstr(t_fcall_err(S, "bx_member_join", "a", "bad room", "u", T_TTL, NULL), "room:"));
    assert_non_null(strstr(t_fcall_err(S, "bx_member_join", "a", "r", "", T_TTL, NULL), "user:"));
    assert_non_null(strstr(t_fcall_err(S, "bx_private", "a", "r", "p", "", "-1", NULL), "message:"));
    assert_non_null(strstr(t_fcall_err(S, "bx_deliver_user", "", "{}", "-1", NULL), "user:"));
    freeReplyObject(t_cmd(S, "SET", T_PREFIX "room:r", "x", NULL));
    assert_non_null(strstr(t_fcall_err(S, "bx_member_join", "a", "r", "u", T_TTL, NULL), "WRONGTYPE"));
    /* nothing written: the session has no membership and no user */
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "{a}:m", NULL), 0);
    assert_int_equal(t_cmd_int(S, "EXISTS", T_PREFIX "user:u", NULL), 0);
}


static void test_external_request_answer_timeout(void **state) {
    (void)state;
    t_session(S, "a", "");
    redisReply *r = t_fcall(S, "bx_ext_request", "a", "/service/x", "7", "{\"t\":1}", "60000", "ann", NULL);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *req = strdup(r->str);
    freeReplyObject(r);
    assert_int_equal(t_cmd_int(S, "XLEN", T_PREFIX "svc:/service/x", NULL), 1);
    r = t_cmd(S, "XINFO", "GROUPS", T_PREFIX "svc:/service/x", NULL);
    assert_int_equal(r->elements, 1); /* the "bayeux" group exists */
    freeReplyObject(r);
    assert_non_null(strstr(t_fcall_err(S, "bx_ext_answer", req, "{bad", "", NULL), "data:"));
    r = t_fcall(S, "bx_ext_answer", req, "{\"r\":2}", "", NULL);
    assert_string_equal(r->str, "ok");
    freeReplyObject(r);
    assert_queued_at("a", 0, "{\"channel\":\"/service/x\",\"id\":\"7\",\"successful\":true,\"data\":{\"r\":2}}");
    /* answered once: a second answer is late */
    r = t_fcall(S, "bx_ext_answer", req, "{}", "", NULL);
    assert_string_equal(r->str, "late");
    freeReplyObject(r);
    free(req);
    /* a request past its deadline: the sweep sends the timeout error, the answer is late */
    r = t_fcall(S, "bx_ext_request", "a", "/service/x", "", "null", "1", "", NULL);
    req = strdup(r->str);
    freeReplyObject(r);
    usleep(5000);
    freeReplyObject(t_fcall(S, "bx_sweep", "100", NULL));
    assert_int_equal(t_queued(S, "a"), 2);
    assert_queued_at("a", 1, "{\"channel\":\"/service/x\",\"successful\":false,\"error\":\"406::timeout\"}");
    r = t_fcall(S, "bx_ext_answer", req, "{}", "", NULL);
    assert_string_equal(r->str, "late");
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "a"), 2);
    assert_int_equal(t_cmd_int(S, "ZCARD", T_PREFIX "reqexp", NULL), 0);
    free(req);
}

static void test_auction_bid(void **state) {
    (void)state;
    t_session(S, "w", "");
    t_subscribe(S, "w", "/auction/**");
    redisReply *r = t_fcall(S, "bx_auction_bid", "i1", "100", "ann", NULL);
    assert_string_equal(t_str(r, 0), "ok");
    assert_int_equal(t_int(r, 1), 1);
    freeReplyObject(r);
    assert_queued_at("w", 0, "{\"channel\":\"/auction/item/i1\",\"data\":{\"item\":\"i1\",\"amount\":100,\"bidder\":\"ann\"}}");
    r = t_fcall(S, "bx_auction_bid", "i1", "100", "bob", NULL);
    assert_string_equal(t_str(r, 0), "low");
    assert_int_equal(t_int(r, 1), 100);
    assert_string_equal(t_str(r, 2), "ann");
    freeReplyObject(r);
    assert_int_equal(t_queued(S, "w"), 1);
    assert_non_null(strstr(t_fcall_err(S, "bx_auction_bid", "i1", "0", "bob", NULL), "amount:"));
    assert_non_null(strstr(t_fcall_err(S, "bx_auction_bid", "i 1", "5", "bob", NULL), "room:"));
}

int main(void) {
    S = t_open();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_join_publishes_list_and_sets_user, setup),
        cmocka_unit_test_setup(test_private_only_to_peer_and_sender, setup),
        cmocka_unit_test_setup(test_deliver_user_all_sessions, setup),
        cmocka_unit_test_setup(test_disconnect_and_sweep_leave_rooms, setup),
        cmocka_unit_test_setup(test_join_drops_ghost_members, setup),
        cmocka_unit_test_setup(test_bad_arguments_and_wrong_types, setup),
        cmocka_unit_test_setup(test_external_request_answer_timeout, setup),
        cmocka_unit_test_setup(test_auction_bid, setup),
    };
    int rc = cmocka_run_group_tests_name("broker services", tests, NULL, NULL);
    bx_store_sync_close(S);
    return rc;
}
