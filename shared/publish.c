/* publish.c — a publish: the security policy, services (/service/ channels, service.h) and broadcasts,
 * which are grouped per request into one bx_publish_batch (broker/API.md). A part of the dispatch
 * pipeline (dispatch_int.h). */
#include "dispatch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "counters.h"
#include "error.h"
#include "log.h"

/* ---- services (h7: shared/service.h) -------------------------------- */

/* The handler ended: its reply message joins the deliveries, its error fails the publish. */
static void service_end(bx_service_call *c, void *arg)
{
    bx_exchange *ex = arg;
    const char *error = bx_service_call_error(c);
    json_t *m = bx_service_call_take_reply(c);
    if (error) {
        bx_dx_reply_fail(ex, error);
        json_decref(m);
    } else {
        bx_reply_ok(reply(ex));
        if (m)
            bx_dx_deliver(ex, m);
    }
    bx_debug("%s c=%s: service %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
             error ? error : m ? "replied to the caller" : "done");
    bx_service_call_free(c);
    ex->svc = NULL;
    ex->busy = 0;
    bx_dx_complete(ex);
}

static void service_touch_done(bx_exchange *ex, const redisReply *r)
{
    char err[160] = "";
    if (!r || is_status(r, "unknown") || !is_status(r, "ok")) {
        if (!r)
            bx_dx_reply_broker_down(ex, "service");
        else if (is_status(r, "unknown"))
            bx_dx_reply_unknown(ex, 0);
        else
            bx_dx_reply_fail(ex, BX_SERVICE_FAILED);
        bx_debug("%s c=%s: %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
                 !r ? "broker down" : is_status(r, "unknown") ? "session unknown → 402" : "unexpected broker reply");
        bx_dx_complete(ex);
        return;
    }
    const char *user = rstr(r, 1, NULL);
    bx_service_ctx ctx = { ex->d->store, bx_msg_client_id(ex->cur.msg), user ? user : "",
                           topts(ex)->maxQueue, ttl_ms(ex) };
    ex->svc = bx_service_call_new(ex->d->services, ex->cur.msg, &ctx, service_end, ex, err, sizeof err);
    if (!ex->svc) {
        bx_error("%s: %s", ex->cur.channel, err);
        bx_dx_reply_fail(ex, BX_SERVICE_FAILED);
        bx_dx_complete(ex);
        return;
    }
    ex->busy = 1; /* the handler may hold broker calls: the exchange must not be freed under it */
    bx_service_call_run(ex->svc);
}

/* Session check that also returns the session's user, then the handler. */
static void service_touch(bx_exchange *ex, const char *cid)
{
    args a = {0};
    bx_dx_session_args(ex, &a, cid);
    bx_dx_call(ex, "bx_service_touch", &a, service_touch_done);
}

/* ---- publish -------------------------------------------------------- */

/* A message id the broker accepts as an argument ([A-Za-z0-9_.-]{1,64}); others are not
 * used for replay detection (a hostile id must not fail the whole group). */
static int mid_usable(const char *mid)
{
    size_t n = mid ? strlen(mid) : 0;
    if (n == 0 || n > BX_ID_MAX_LEN)
        return 0;
    return strspn(mid, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* Broadcasts per bx_publish_batch, and the text size after which a group is sent anyway. */
#define GROUP_MAX 256
#define GROUP_BYTES (512 * 1024)

static void group_answer(bx_exchange *ex, bx_msgctx *c, const redisReply *r)
{
    if (!r) {
        bx_dx_fail_broker_down(c->reply);
    } else if (is_status(r, "unknown")) {
        bx_reply_fail(c->reply, BX_ERR_SESSION_UNKNOWN);
    } else {
        bx_reply_ok(c->reply);
    }
    /* outgoing extensions see the reply with its outcome, as for any other message */
    for (size_t i = ex->d->n_ext; i-- > 0;)
        if (ex->d->exts[i]->outgoing)
            ex->d->exts[i]->outgoing(c);
    bx_count_reply(c->reply); /* errors by type, for the metrics (message_done ran before the outcome) */
}


static void group_done(bx_exchange *ex, const redisReply *r)
{
    size_t n = ex->group.sent;
    if (!r)
        bx_warn("publish of %zu messages: broker unavailable: reconnect retry", n);
    else
        bx_debug("publish c=%s: %zu messages → %s (%lld deliveries, %lld dropped, %lld workers woken, %lld replays)",
                 ex->group.cid, n, rstatus(r) ? rstatus(r) : "?", rint_at(r, 1), rint_at(r, 2), rint_at(r, 3),
                 rint_at(r, 4));
    for (size_t i = 0; i < n; i++)
        group_answer(ex, &ex->group.ctx[i], r);
    ex->group.sent = 0;
    ex->group.then(ex);
}

/* Send the grouped broadcasts in one bx_publish_batch; then() runs once they are answered. */
void bx_dx_group_flush(bx_exchange *ex, void (*then)(bx_exchange *ex))
{
    const bx_config *cfg = ex->d->cfg;
    args a = {0};
    bx_dx_args_add(&a, ex->group.cid);
    bx_dx_args_add(&a, bx_dx_session_browser(ex));
    bx_dx_args_addl(&a, topts(ex)->maxInterval);
    bx_dx_args_addl(&a, ttl_ms(ex));
    bx_dx_args_addl(&a, cfg->broadcastToPublisher);
    bx_dx_args_addl(&a, topts(ex)->maxQueue);
    bx_dx_args_addl(&a, (long long)ex->group.n);
    for (int i = 0; i < ex->group.a.n; i++)
        bx_dx_args_add(&a, ex->group.a.v[i]);
    bx_dx_args_free(&ex->group.a);
    memset(&ex->group.a, 0, sizeof ex->group.a);
    ex->group.then = then;
    ex->group.sent = ex->group.n;
    ex->group.n = 0; /* call() must not see a group: this is it */
    ex->group.bytes = 0;
    bx_dx_call(ex, "bx_publish_batch", &a, group_done);
}

/* Queue this broadcast in the batch's group (answered with the group); a group of another
 * publisher, or a full one, is sent first. */
static void broadcast(bx_exchange *ex, const char *cid, const char *name)
{
    if (ex->group.n > 0 && strcmp(ex->group.cid, cid) != 0) {
        bx_dx_group_flush(ex, bx_dx_do_publish); /* this message is handled again after the group */
        return;
    }
    char **wild = NULL;
    json_t *delivery = bx_delivery_from_publish(ex->cur.msg);
    char *text = NULL;
    size_t len = 0;
    if (delivery) {
        json_object_set_new(delivery, "channel", json_string(name));
        text = bx_json_dump(delivery, &len);
        json_decref(delivery);
    }
    if (ex->group.n == ex->group.cap) {
        size_t cap = ex->group.cap ? 2 * ex->group.cap : 8;
        bx_msgctx *c = realloc(ex->group.ctx, cap * sizeof *c);
        if (c) {
            ex->group.ctx = c;
            ex->group.cap = cap;
        }
    }
    if (!text || ex->group.n == ex->group.cap || bx_channel_wildcards(name, &wild) < 0) {
        free(text);
        bx_dx_reply_broker_down(ex, "out of memory");
        bx_dx_complete(ex);
        return;
    }
    size_t nwild = 0;
    while (wild[nwild])
        nwild++;
    /* the message id lets the broker drop a replayed request (nginx retries an unanswered POST) */
    const char *mid = bx_msg_id(ex->cur.msg);
    args *a = &ex->group.a;
    bx_dx_args_add(a, name);
    bx_dx_args_add(a, text);
    bx_dx_args_add(a, mid_usable(mid) ? mid : "");
    bx_dx_args_addl(a, (long long)nwild);
    for (size_t i = 0; i < nwild; i++)
        bx_dx_args_add(a, wild[i]);
    bx_channel_wildcards_free(wild);
    free(text);
    if (ex->group.n == 0)
        snprintf(ex->group.cid, sizeof ex->group.cid, "%s", cid);
    ex->group.ctx[ex->group.n++] = ex->cur;
    ex->group.bytes += len;
    json_array_append_new(ex->replies, ex->cur.reply); /* in request order; the outcome comes later */
    ex->cur.reply = NULL;
    ex->next++;
    bx_debug("publish %s c=%s: grouped (%zu in group)", name, cid, ex->group.n);
    if (ex->group.n >= GROUP_MAX || ex->group.bytes >= GROUP_BYTES)
        bx_dx_group_flush(ex, bx_dx_run);
    else
        bx_dx_run(ex);
}

void bx_dx_do_publish(bx_exchange *ex)
{
    const char *cid = bx_dx_session_cid(ex);
    if (!cid) {
        bx_debug("publish %s: clientId missing/invalid or no browser cookie → 402", ex->cur.channel);
        bx_dx_reply_unknown(ex, 0);
        bx_dx_complete(ex);
        return;
    }
    char *name = strdup(ex->cur.channel);
    if (!name || !bx_channel_valid(bx_channel_normalize(name))) {
        free(name);
        bx_dx_reply_fail(ex, BX_ERR_CHANNEL_INVALID);
        bx_dx_complete(ex);
        return;
    }
    /* >>> security policy hook (h7) */
    char *one[] = { name, NULL };
    if (bx_channel_classify(name) != BX_CH_META) {
        if (!bx_dx_identity_ready(ex, cid, one, BX_OP_CREATE | BX_OP_PUBLISH, bx_dx_do_publish)) {
            free(name);
            return;
        }
        const char *denied = bx_dx_policy_error(ex, name, BX_OP_PUBLISH);
        if (denied) {
            free(name);
            bx_dx_touch_then(ex, cid, denied);
            return;
        }
    }
    /* <<< security policy hook */
    switch (bx_channel_classify(name)) {
    case BX_CH_META:
        bx_dx_touch_then(ex, cid, BX_ERR_CHANNEL_CREATE_DENIED);
        break;
    case BX_CH_SERVICE:
        /* >>> services hook (h7, shared/service.h): registered channels run their handler */
        if (bx_services_has(ex->d->services, name))
            service_touch(ex, cid);
        else
            bx_dx_touch_then(ex, cid, NULL);
        /* <<< services hook */
        break;
    default:
        broadcast(ex, cid, name);
    }
    free(name);
}
