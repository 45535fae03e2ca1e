/* subscribe.c — /meta/subscribe and /meta/unsubscribe. A part of the dispatch pipeline (dispatch_int.h). */
#include "dispatch_int.h"

#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "error.h"
#include "log.h"

/* ---- /meta/subscribe, /meta/unsubscribe ----------------------------- */

static const char *const meta_channels[] = {
    "/meta/handshake", "/meta/connect", "/meta/subscribe", "/meta/unsubscribe", "/meta/disconnect", NULL
};

static int meta_exists(const char *name)
{
    for (size_t i = 0; meta_channels[i]; i++)
        if (strcmp(name, meta_channels[i]) == 0)
            return 1;
    return 0;
}

/* Normalized copies of the subscription element(s) in *out (NULL-terminated, malloc'd).
 * Returns NULL when all are valid, else the error string (and *out NULL). */
static const char *subscription_list(const json_t *msg, char ***out)
{
    json_t *sub = json_object_get(msg, "subscription");
    *out = NULL;
    if (!sub || json_is_null(sub) || (json_is_array(sub) && json_array_size(sub) == 0))
        return BX_ERR_SUBSCRIPTION_MISSING;
    size_t n = json_is_array(sub) ? json_array_size(sub) : 1;
    if (!json_is_array(sub) && !json_is_string(sub))
        return BX_ERR_SUBSCRIPTION_INVALID;
    char **list = calloc(n + 1, sizeof *list);
    if (!list)
        return BX_ERR_SUBSCRIPTION_INVALID;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(sub) ? json_array_get(sub, i) : sub;
        const char *s = json_string_value(e);
        list[i] = s ? strdup(s) : NULL;
        if (!list[i] || !bx_channel_valid(bx_channel_normalize(list[i]))) {
            bx_channel_wildcards_free(list);
            return BX_ERR_SUBSCRIPTION_INVALID;
        }
    }
    *out = list;
    return NULL;
}

static void subscribe_done(bx_exchange *ex, const redisReply *r)
{
    const char *cid = bx_msg_client_id(ex->cur.msg);
    if (!r) {
        bx_dx_reply_broker_down(ex, ex->cur.channel);
    } else if (is_status(r, "unknown")) {
        bx_dx_reply_unknown(ex, 0);
    } else if (strcmp(ex->cur.channel, "/meta/unsubscribe") == 0 && rint_at(r, 1) > 0) {
        bx_debug("unsubscribe c=%s: element %lld has no subscribers → 400", cid, rint_at(r, 1));
        bx_dx_reply_fail(ex, BX_ERR_CHANNEL_MISSING);
    } else if (ex->local_error) {
        bx_dx_reply_fail(ex, ex->local_error);
    } else {
        bx_reply_ok(reply(ex));
    }
    bx_debug("%s c=%s: %s", ex->cur.channel, cid, json_is_true(json_object_get(reply(ex), "successful"))
             ? "ok" : json_string_value(json_object_get(reply(ex), "error")));
    ex->local_error = NULL;
    bx_dx_complete(ex);
}

static void do_subscribe(bx_exchange *ex);

void bx_dx_do_subscription(bx_exchange *ex, int subscribe)
{
    const char *cid = bx_dx_session_cid(ex);
    char **list = NULL;
    if (!cid) {
        bx_debug("%s: clientId missing/invalid or no browser cookie → 402", ex->cur.channel);
        bx_dx_reply_unknown(ex, 0);
        bx_dx_complete(ex);
        return;
    }
    const char *error = subscription_list(ex->cur.msg, &list);
    /* >>> security policy hook (h7) */
    if (subscribe && !error && !bx_dx_identity_ready(ex, cid, list, BX_OP_CREATE | BX_OP_SUBSCRIBE, do_subscribe)) {
        bx_channel_wildcards_free(list);
        return;
    }
    /* <<< security policy hook */
    args a = {0};
    bx_dx_session_args(ex, &a, cid);
    int base = a.n;
    for (size_t i = 0; list && list[i] && !error; i++) {
        bx_channel_class cls = bx_channel_classify(list[i]);
        if (cls == BX_CH_META)
            error = !subscribe ? BX_ERR_UNSUBSCRIBE_FAILED
                  : meta_exists(list[i]) ? BX_ERR_SUBSCRIBE_DENIED : BX_ERR_CREATE_DENIED;
        else if (cls == BX_CH_BROADCAST && subscribe && (error = bx_dx_policy_error(ex, list[i], BX_OP_SUBSCRIBE)))
            break; /* security policy (h7): stops here like any failed element */
        else if (cls == BX_CH_BROADCAST)
            bx_dx_args_add(&a, list[i]);
        /* service channels: success, not recorded (never broadcast) */
    }
    bx_channel_wildcards_free(list);
    /* A failed element (meta channel, security policy) stops processing and the elements before it
     * stay (un)subscribed, as CometD does (bayeux-notes §2.9, §2.10). */
    if (a.n == base) {
        bx_dx_args_free(&a);
        bx_dx_touch_then(ex, cid, error);
        return;
    }
    ex->local_error = error;
    bx_dx_call(ex, subscribe ? "bx_subscribe" : "bx_unsubscribe", &a, subscribe_done);
}

static void do_subscribe(bx_exchange *ex)
{
    bx_dx_do_subscription(ex, 1);
}
