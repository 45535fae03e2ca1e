/* members.c — /service/members and /service/privatechat, CometD's ChatService in our shape:
 * the room's members live in Redis (bx_member_join, bx_private), so every worker sees them,
 * and the broker drops a member (and publishes the new list) when its session goes. */
#include "builtin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "error.h"
#include "log.h"
#include "message.h"

#define ROOM_MAX 64
#define NAME_MAX_BYTES 256

const char *bx_service_room_name(const char *s)
{
    if (!s)
        return NULL;
    if (strncmp(s, "/chat/", 6) == 0)
        s += 6;
    size_t n = strlen(s);
    if (n == 0 || n > ROOM_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_'
              || ch == '-' || ch == '.'))
            return NULL;
    }
    return s;
}

/* data.<key> as a string of 1..NAME_MAX_BYTES bytes, else NULL. */
static const char *name_field(const json_t *data, const char *key)
{
    const char *v = json_string_value(json_object_get(data, key));
    size_t n = v ? strlen(v) : 0;
    return n >= 1 && n <= NAME_MAX_BYTES ? v : NULL;
}

/* Common answer of our broker calls: {"ok", ...} / {"unknown"} / failure. */
static void answer(bx_service_call *call, const redisReply *r, const char *err, const char *what)
{
    const char *st = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->type == REDIS_REPLY_STRING
                   ? r->element[0]->str : NULL;
    long long n = r && r->type == REDIS_REPLY_ARRAY && r->elements > 1 && r->element[1]->type == REDIS_REPLY_INTEGER
                ? r->element[1]->integer : 0;
    if (!r) {
        bx_warn("%s c=%s: broker unavailable (%s)", what, bx_service_client_id(call), err ? err : "no reply");
        bx_service_fail(call, BX_ERR_BROKER_UNAVAILABLE);
    } else if (r->type == REDIS_REPLY_ERROR || !st) {
        bx_warn("%s c=%s: broker error: %s", what, bx_service_client_id(call),
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        bx_service_fail(call, BX_SERVICE_FAILED);
    } else if (strcmp(st, "unknown") == 0) {
        bx_debug("%s c=%s: session gone → 402", what, bx_service_client_id(call));
        bx_service_fail(call, BX_ERR_SESSION_UNKNOWN);
    } else {
        bx_debug("%s c=%s: ok (%lld)", what, bx_service_client_id(call), n);
        bx_service_done(call);
    }
}

static void joined(bx_service_call *call, const redisReply *r, const char *err, void *arg)
{
    (void)arg;
    answer(call, r, err, "members join");
}

void bx_service_members(bx_service_call *call, void *arg)
{
    (void)arg;
    const json_t *data = bx_service_data(call);
    const char *room = bx_service_room_name(json_string_value(json_object_get(data, "room")));
    const char *user = name_field(data, "user");
    if (!room || !user) {
        bx_info("members c=%s: data needs room (\"/chat/<name>\", [A-Za-z0-9_.-]) and user (1..%d bytes)",
                bx_service_client_id(call), NAME_MAX_BYTES);
        bx_service_fail(call, BX_ERR_SERVICE_DATA_INVALID);
        return;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", bx_service_ttl_ms(call));
    const char *argv[] = { bx_service_client_id(call), room, user, ttl };
    bx_service_fcall_or_fail(call, "bx_member_join", 4, argv, joined);
}

static void sent(bx_service_call *call, const redisReply *r, const char *err, void *arg)
{
    (void)arg;
    answer(call, r, err, "privatechat");
}

void bx_service_privatechat(bx_service_call *call, void *arg)
{
    (void)arg;
    const json_t *data = bx_service_data(call);
    const char *room = bx_service_room_name(json_string_value(json_object_get(data, "room")));
    const char *user = name_field(data, "user");
    const char *peer = name_field(data, "peer");
    const json_t *chat = json_object_get(data, "chat");
    if (!room || !user || !peer || !json_is_string(chat)) {
        bx_info("privatechat c=%s: data needs room, user, peer and chat strings", bx_service_client_id(call));
        bx_service_fail(call, BX_ERR_SERVICE_DATA_INVALID);
        return;
    }
    char channel[6 + ROOM_MAX + 1];
    snprintf(channel, sizeof channel, "/chat/%s", room);
    json_t *fwd = json_pack("{ss s{sOssss}}", "channel", channel, "data", "chat", chat, "user", user, "scope",
                            "private");
    json_t *id = json_object_get(bx_service_message(call), "id");
    if (fwd && id)
        json_object_set(fwd, "id", id);
    size_t len = 0;
    char *text = fwd ? bx_json_dump(fwd, &len) : NULL;
    json_decref(fwd);
    if (!text) {
        bx_service_fail(call, BX_SERVICE_FAILED);
        return;
    }
    char mq[24];
    snprintf(mq, sizeof mq, "%ld", bx_service_max_queue(call));
    const char *argv[] = { bx_service_client_id(call), room, peer, text, mq };
    bx_service_fcall_or_fail(call, "bx_private", 5, argv, sent);
    free(text);
}
