/* auction.c — /service/auction/bid, the clustered auction demo (CometD's Oort auction in our shape):
 * the highest bid of an item lives in Redis, so bids through any worker of any pool are ordered by
 * one atomic broker call (bx_auction_bid), and an accepted bid is published on /auction/item/<item>
 * to every watcher at once. Data {item, amount (integer, cents), bidder}; an authenticated session
 * bids under its user id. The caller gets {accepted, amount, bidder} (the highest bid after its own). */
#include "builtin.h"

#include <stdio.h>
#include <string.h>

#include "dispatch.h"
#include "log.h"

static void bid_done(bx_service_call *call, const redisReply *r, const char *err, void *arg)
{
    (void)arg;
    const char *st = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING
                   ? r->element[0]->str : NULL;
    if (!r) {
        bx_warn("auction c=%s: broker unavailable (%s)", bx_service_client_id(call), err ? err : "no reply");
        bx_service_fail(call, BX_ERR_BROKER_UNAVAILABLE);
        return;
    }
    if (!st) {
        bx_warn("auction c=%s: broker error: %s", bx_service_client_id(call),
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        bx_service_fail(call, BX_SERVICE_FAILED);
        return;
    }
    const json_t *data = bx_service_data(call);
    json_t *res;
    if (strcmp(st, "low") == 0 && r->elements >= 3 && r->element[2]->type == REDIS_REPLY_STRING) {
        res = json_pack("{sbsIss}", "accepted", 0, "amount", (json_int_t)r->element[1]->integer, "bidder",
                        r->element[2]->str);
        bx_debug("auction c=%s: bid refused, highest is %lld", bx_service_client_id(call), r->element[1]->integer);
    } else {
        res = json_pack("{sbsO}", "accepted", 1, "amount", json_object_get(data, "amount"));
        bx_debug("auction c=%s: bid accepted, published to %lld watchers", bx_service_client_id(call),
                 r->element[1]->type == REDIS_REPLY_INTEGER ? r->element[1]->integer : -1);
    }
    bx_service_reply(call, res);
}

void bx_service_auction_bid(bx_service_call *call, void *arg)
{
    (void)arg;
    const json_t *data = bx_service_data(call);
    const char *item = bx_service_room_name(json_string_value(json_object_get(data, "item")));
    const json_t *amount = json_object_get(data, "amount");
    const char *bidder = *bx_service_user(call) ? bx_service_user(call)
                       : json_string_value(json_object_get(data, "bidder"));
    size_t blen = bidder ? strlen(bidder) : 0;
    if (!item || !json_is_integer(amount) || json_integer_value(amount) < 1
        || json_integer_value(amount) > 999999999999999LL || blen < 1 || blen > 256) {
        bx_info("auction c=%s: data needs item ([A-Za-z0-9_.-]), amount (a positive integer) and bidder",
                bx_service_client_id(call));
        bx_service_fail(call, BX_ERR_SERVICE_DATA_INVALID);
        return;
    }
    char amt[24];
    snprintf(amt, sizeof amt, "%lld", (long long)json_integer_value(amount));
    const char *argv[] = { item, amt, bidder };
    bx_service_fcall_or_fail(call, "bx_auction_bid", 3, argv, bid_done);
}
