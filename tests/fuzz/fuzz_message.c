/* fuzz_message.c — libFuzzer target for the message core: one input is one request
 * body, run through everything a transport does with it (tests/fuzz/run.sh builds it).
 * Invariants that must hold for any input abort() when broken, so the fuzzer reports them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "error.h"
#include "message.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

/* Channel functions on a name taken from the input. */
static void exercise_channel(const char *name, const char *pattern) {
    int valid = bx_channel_valid(name);
    CHECK(!valid || bx_channel_chars_valid(name, strlen(name)));
    (void)bx_channel_classify(name);
    (void)bx_channel_wild(name);
    char **list = NULL;
    int n = bx_channel_wildcards(name, &list);
    CHECK((n >= 0) == (valid != 0));
    for (int i = 0; i < n; i++) {
        CHECK(list[i] && bx_channel_valid(list[i]));
        CHECK(bx_channel_matches(list[i], name)); /* what the broker looks up must match */
    }
    if (n >= 0) {
        CHECK(list[n] == NULL);
        bx_channel_wildcards_free(list);
    }
    if (pattern) (void)bx_channel_matches(pattern, name);
    char *copy = strdup(name);
    if (copy) {
        bx_channel_normalize(copy);
        free(copy);
    }
}

static void exercise_message(json_t *msg, json_t *replies) {
    const char *err = bx_message_validate(msg);
    const char *ch = bx_msg_channel(msg);
    (void)bx_msg_client_id(msg);
    if (!err && ch && (!strcmp(ch, "/meta/subscribe") || !strcmp(ch, "/meta/unsubscribe")))
        err = bx_subscription_validate(msg);
    /* a valid message has a valid-looking channel and a string id (or none) */
    if (!err) {
        CHECK(ch && bx_channel_chars_valid(ch, strlen(ch)));
        json_t *id = json_object_get(msg, "id");
        CHECK(!id || json_is_null(id) || json_is_string(id));
    }
    json_t *reply = bx_reply_new(msg);
    CHECK(reply);
    if (err) bx_reply_fail(reply, err);
    else bx_reply_ok(reply);
    CHECK(json_object_get(reply, "clientId") == NULL);
    json_array_append_new(replies, reply);
    json_t *d = bx_delivery_from_publish(msg);
    CHECK(d && !json_object_get(d, "clientId") && !json_object_get(d, "id"));
    json_decref(d);
    if (ch) {
        json_t *sub = json_object_get(msg, "subscription");
        exercise_channel(ch, json_string_value(sub));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* the first byte, when the input is long enough, picks tighter limits now and then */
    bx_limits lim = { 1048576, 1000, 64 };
    if (size > 0 && data[0] == 0x01) lim = (bx_limits){ 512, 4, 4 };
    bx_batch b;
    bx_parse_error e;
    bx_parse_status st = bx_batch_parse((const char *)data, size, &lim, &b, &e);
    CHECK(e.status == st);
    CHECK(strlen(e.reason) < sizeof e.reason);
    if (st != BX_PARSE_OK) {
        CHECK(b.n == 0 && b.msgs == NULL);
        int http = bx_parse_http_status(st);
        CHECK(http == 400 || http == 500);
        CHECK(e.http_status == http);
        return 0;
    }
    CHECK(b.n >= 1 && b.n <= 1000);
    json_t *replies = json_array();
    json_t *msgs = json_array();
    CHECK(replies && msgs);
    for (size_t i = 0; i < b.n; i++) {
        CHECK(json_is_object(b.msgs[i]));
        exercise_message(b.msgs[i], replies);
        json_array_append(msgs, b.msgs[i]);
    }
    /* serialization round trip: what we send parses back to the same values */
    size_t len = 0;
    char *out = bx_json_dump(msgs, &len);
    CHECK(out && len == strlen(out));
    bx_batch again;
    bx_parse_error e2;
    bx_limits loose = { 0, 0, 64 };
    CHECK(bx_batch_parse(out, len, &loose, &again, &e2) == BX_PARSE_OK);
    CHECK(again.n == b.n);
    for (size_t i = 0; i < b.n; i++) CHECK(json_equal(again.msgs[i], b.msgs[i]));
    bx_batch_free(&again);
    free(out);
    out = bx_json_dump(replies, &len);
    CHECK(out && len >= 2 && out[0] == '[');
    free(out);
    json_decref(msgs);
    json_decref(replies);
    bx_batch_free(&b);
    return 0;
}
