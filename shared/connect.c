/* connect.c — /meta/connect: the connect call, a held (parked) connect, its drains, the websocket
 * push, and the events a transport forwards for a parked exchange (dispatch.h). A part of the dispatch
 * pipeline (dispatch_int.h). */
#include "dispatch_int.h"

#include <stdio.h>
#include <string.h>

#include "counters.h"
#include "error.h"
#include "log.h"

/* ---- /meta/connect -------------------------------------------------- */

/* The connect reply is complete: successful, maybe advice, deliveries already added. */
static void connect_reply(bx_exchange *ex, long long batch, json_t *advice)
{
    bx_reply_ok(reply(ex));
    bx_dx_set_advice(ex, advice);
    ex->cur.batch = batch;
    if (batch > 0 && !ex->cur.ack_connect)
        ex->confirm_batch = batch;
    ex->parked = 0;
    bx_dx_complete(ex);
}

static void handle_pending(bx_exchange *ex);

static void connect_parked(bx_exchange *ex)
{
    int was = ex->parked;
    ex->parked = 1;
    if (!was) {
        bx_debug("connect c=%s held (token %s, timeout %ld)", ex->cid, ex->token, ex->hold_ms);
        ex->hooks.state(ex, BX_EX_PARKED, ex->hooks.arg);
    }
    handle_pending(ex);
}

static void connect_done(bx_exchange *ex, const redisReply *r)
{
    if (!r) {
        bx_dx_reply_broker_down(ex, "connect");
        bx_dx_complete(ex);
        return;
    }
    if (is_status(r, "unknown")) {
        bx_debug("connect c=%s: session unknown → 402 + handshake advice", ex->cid);
        bx_dx_reply_unknown(ex, 1);
        bx_dx_complete(ex);
        return;
    }
    long long tc = rint_at(r, 2), batch = rint_at(r, 3);
    json_t *advice = (tc || json_is_object(json_object_get(ex->cur.msg, "advice"))) ? bx_dx_full_advice(ex) : NULL;
    if (is_status(r, "parked")) {
        ex->advice_due = advice != NULL; /* sent when the held connect is answered */
        json_decref(advice);
        ex->bn_known = batch;
        ex->framed = 0; /* need_drain stays: a pushed batch may have come while this call was in flight */
        /* Held while another worker's confirm of the in-flight batch is awaited (API.md, confirm
         * window): the final drain at the end of the wait sends it again if that confirm never came. */
        long long wait = r->elements > 4 ? rint_at(r, 4) : 0;
        if (wait > 0 && wait < ex->hold_ms) {
            bx_debug("connect c=%s: the in-flight batch is another worker's until its confirm; held %lld ms at most",
                     ex->cid, wait);
            ex->hold_ms = (long)wait;
        }
        connect_parked(ex);
        return;
    }
    if (is_status(r, "multi")) {
        json_decref(advice);
        long msi = ex->d->cfg->multiSessionInterval;
        bx_debug("connect c=%s not held: multiple clients in this browser (interval %ld)", ex->cid, msi);
        if (msi > 0)
            bx_reply_ok(reply(ex));
        else /* CometD: reconnect:"none" and successful:false, without an error string */
            json_object_set_new(reply(ex), "successful", json_false());
        bx_dx_set_advice(ex, bx_advice_multiple_clients(msi));
        bx_dx_complete(ex);
        return;
    }
    bx_dx_add_deliveries(ex, r, 4);
    bx_debug("connect c=%s answered now: %s, %zu messages (batch %lld, first %lld, transport changed %lld)",
             ex->cid, rstatus(r) ? rstatus(r) : "?", ex->deliveries.n, batch, rint_at(r, 1), tc);
    connect_reply(ex, batch, advice);
}

/* ---- gathered connects (bx_connect_batch) ------------------------------- */

#define CONNECT_ARGC 11         /* bx_connect's arguments after the prefix */
#define CONNECT_BATCH_MAX 256   /* connects per bx_connect_batch (the broker takes up to 1000) */

/* A bx_connect_batch in flight: its exchanges in argument order. */
typedef struct connect_batch {
    bx_dispatch *d;
    size_t n;
    bx_exchange *ex[];
} connect_batch;

static void gathered_send(bx_dispatch *d);

/* Each exchange of the batch gets its own element of the reply, as if it had called bx_connect. */
static void connect_batch_done(const redisReply *r, const char *err, void *arg)
{
    connect_batch *b = arg;
    bx_dispatch *d = b->d;
    d->gathered.inflight--;
    int shaped = r && r->type == REDIS_REPLY_ARRAY && r->elements == b->n;
    if (r && !shaped)
        bx_error("bx_connect_batch: a reply of type %d with %zu elements for %zu connects", r->type,
                 r->type == REDIS_REPLY_ARRAY ? r->elements : 0, b->n);
    gathered_send(d); /* what arrived meanwhile goes now, before these answers add more */
    for (size_t i = 0; i < b->n; i++) {
        const redisReply *e = shaped ? r->element[i] : NULL;
        const char *why = r ? "malformed bx_connect_batch reply" : err;
        if (e && e->type == REDIS_REPLY_ERROR) {
            bx_warn("bx_connect of c=%s failed: %s", b->ex[i]->cid, e->str);
            why = e->str;
            e = NULL;
        }
        bx_dx_store_reply(e, why, b->ex[i]); /* may free the exchange */
    }
    free(b);
}

/* Forget a gathered exchange's place in the list and its arguments (sent, or never to be). */
static bx_exchange *gathered_unlink(bx_exchange *ex)
{
    bx_exchange *next = ex->gathered_next;
    ex->gathered_next = NULL;
    bx_dx_args_free(&ex->connect_args);
    memset(&ex->connect_args, 0, sizeof ex->connect_args);
    return next;
}

/* Fail the exchanges of a detached list (their connects were not sent): each continuation runs. */
static void gathered_fail(bx_exchange *ex, const char *why)
{
    while (ex) {
        bx_exchange *next = gathered_unlink(ex);
        bx_debug("connect c=%s not sent: %s", ex->cid, why);
        bx_dx_store_reply(NULL, why, ex); /* may free ex */
        ex = next;
    }
}

/* Send every gathered connect, in calls of at most CONNECT_BATCH_MAX. */
static void gathered_send(bx_dispatch *d)
{
    while (d->gathered.head) {
        /* detach up to CONNECT_BATCH_MAX: continuations run below may gather again */
        bx_exchange *head = d->gathered.head, *last = head;
        size_t n = 1;
        while (n < CONNECT_BATCH_MAX && last->gathered_next) {
            last = last->gathered_next;
            n++;
        }
        d->gathered.head = last->gathered_next;
        if (!d->gathered.head)
            d->gathered.tail = NULL;
        last->gathered_next = NULL;

        if (d->closed) {
            gathered_fail(head, "worker stopping");
            continue;
        }
        size_t argc = 1 + n * CONNECT_ARGC;
        connect_batch *b = malloc(sizeof *b + n * sizeof *b->ex);
        const char **v = malloc(argc * sizeof *v);
        size_t *len = malloc(argc * sizeof *len);
        if (!b || !v || !len) {
            free(b), free(v), free(len);
            gathered_fail(head, "out of memory");
            continue;
        }
        char num[24];
        snprintf(num, sizeof num, "%zu", n);
        v[0] = num;
        len[0] = strlen(num);
        b->d = d;
        b->n = 0;
        for (bx_exchange *ex = head; ex; ex = ex->gathered_next) {
            memcpy(v + 1 + b->n * CONNECT_ARGC, ex->connect_args.v, CONNECT_ARGC * sizeof *v);
            memcpy(len + 1 + b->n * CONNECT_ARGC, ex->connect_args.len, CONNECT_ARGC * sizeof *len);
            b->ex[b->n++] = ex;
        }
        char err[160] = "";
        int rc = bx_dx_fcall(d, "bx_connect_batch", (int)argc, v, len, connect_batch_done, b, err, sizeof err);
        free(v), free(len);
        if (rc < 0) {
            free(b);
            gathered_fail(head, err);
            continue;
        }
        bx_debug("bx_connect_batch sent with %zu connects", n);
        d->gathered.inflight++;
        for (bx_exchange *ex = head; ex;)
            ex = gathered_unlink(ex);
    }
}

/* The connect goes to the broker now if no bx_connect_batch of this worker is in flight, else with
 * the others that arrive before it is answered. */
static void connect_call(bx_exchange *ex, args *a)
{
    bx_dispatch *d = ex->d;
    if (ex->group.n > 0 || a->oom || d->closed || a->n != CONNECT_ARGC) {
        bx_dx_call(ex, "bx_connect", a, connect_done); /* grouped broadcasts go first; failures */
        return;
    }
    ex->k = connect_done;
    ex->busy = 1;
    ex->connect_args = *a;
    memset(a, 0, sizeof *a);
    ex->gathered_next = NULL;
    if (d->gathered.tail)
        d->gathered.tail->gathered_next = ex;
    else
        d->gathered.head = ex;
    d->gathered.tail = ex;
    if (d->gathered.inflight == 0)
        gathered_send(d);
}

/* Hold time: the transport's timeout, or the client's transient advice.timeout if smaller. */
static long connect_hold_ms(const bx_exchange *ex)
{
    long t = topts(ex)->timeout;
    json_t *cadv = json_object_get(ex->cur.msg, "advice");
    json_t *ct = json_is_object(cadv) ? json_object_get(cadv, "timeout") : NULL;
    if (json_is_number(ct)) {
        long long c = bx_ext_int(ct);
        if (c < t)
            t = c < 0 ? 0 : (long)c;
    }
    return t;
}

void bx_dx_do_connect(bx_exchange *ex)
{
    const char *cid = bx_dx_session_cid(ex);
    if (!cid) {
        bx_debug("connect: clientId missing/invalid or no browser cookie → 402");
        bx_dx_reply_unknown(ex, 1);
        bx_dx_complete(ex);
        return;
    }
    snprintf(ex->cid, sizeof ex->cid, "%s", cid);
    ex->hold_ms = connect_hold_ms(ex);
    int hold = ex->batch.n == 1 && ex->hold_ms > 0;
    const bx_config *cfg = ex->d->cfg;
    args a = {0};
    bx_dx_args_add(&a, cid);
    bx_dx_args_add(&a, bx_dx_session_browser(ex));
    bx_dx_args_add(&a, ex->d->worker);
    bx_dx_args_add(&a, ex->token);
    bx_dx_args_addl(&a, ex->cur.ack_connect ? ex->cur.ack_k : -1);
    bx_dx_args_addl(&a, hold);
    bx_dx_args_addl(&a, ex->hold_ms);
    bx_dx_args_addl(&a, expiry_ms(ex));
    bx_dx_args_addl(&a, ttl_ms(ex));
    bx_dx_args_addl(&a, ex->info.http ? cfg->maxSessionsPerBrowser : -1);
    bx_dx_args_add(&a, bx_transport_name(ex->info.transport));
    if (hold && ex->hooks.hold)
        ex->hooks.hold(ex, ex->hooks.arg);
    connect_call(ex, &a);
}

/* ---- parked connect: drains and events ------------------------------ */

static void drain_done(bx_exchange *ex, const redisReply *r)
{
    int why = ex->drain_why;
    if (why == PEND_ABANDON) {
        bx_debug("connect c=%s token %s: browser gone, unparked (%s)", ex->cid, ex->token,
                 r ? rstatus(r) ? rstatus(r) : "?" : "broker down");
        bx_dx_finish(ex, BX_EX_GONE);
        return;
    }
    if (!r) {
        if (why == PEND_WAKE) { /* stay parked: the timeout's final drain retries */
            connect_parked(ex);
            return;
        }
        bx_dx_reply_broker_down(ex, "drain");
        ex->parked = 0;
        bx_dx_complete(ex);
        return;
    }
    if (is_status(r, "superseded")) {
        bx_debug("connect c=%s token %s superseded → HTTP %d", ex->cid, ex->token,
                 ex->d->cfg->duplicateMetaConnectHttpResponseCode);
        bx_dx_finish_http(ex, ex->d->cfg->duplicateMetaConnectHttpResponseCode);
        return;
    }
    if (is_status(r, "gone")) {
        bx_debug("connect c=%s token %s: session gone → 402", ex->cid, ex->token);
        bx_dx_reply_unknown(ex, 1);
        ex->parked = 0;
        bx_dx_complete(ex);
        return;
    }
    if (is_status(r, "parked")) {
        ex->bn_known = rint_at(r, 1); /* nothing this exchange has not written is in flight */
        connect_parked(ex);
        return;
    }
    bx_dx_add_deliveries(ex, r, 2);
    json_t *advice = why == PEND_SHUTDOWN || ex->advice_due ? bx_dx_full_advice(ex) : NULL;
    bx_debug("connect c=%s token %s released (%s): %zu messages, batch %lld", ex->cid, ex->token,
             why == PEND_SHUTDOWN ? "shutdown" : why == PEND_EXPIRE ? "timeout" : "wake-up",
             ex->deliveries.n, rint_at(r, 1));
    connect_reply(ex, rint_at(r, 1), advice);
}

/* Hand the deliveries gathered on ex to the transport as frames of batch; from now on the exchange has
 * heard of batch as the session's last and wrote it (a drain skips it). */
static void write_frames(bx_exchange *ex, long long batch)
{
    ex->bn_known = ex->framed = batch;
    ex->push(ex, batch, ex->hooks.arg);
    bx_dx_texts_clear(&ex->deliveries);
}

/* Websocket push after a wake-up: the messages go out now and the connect stays held. */
static void push_done(bx_exchange *ex, const redisReply *r)
{
    if (is_status(r, "missed")) { /* the session has a batch this exchange has not written: drain, in order */
        bx_debug("connect c=%s token %s: bx_push found batch %lld, known %lld → drain", ex->cid, ex->token,
                 rint_at(r, 1), ex->bn_known);
        bx_exchange_resync(ex);
        return;
    }
    if (!is_status(r, "msgs")) { /* parked (nothing new), superseded, gone, broker down: as a drain */
        drain_done(ex, r);
        return;
    }
    bx_dx_add_deliveries(ex, r, 2);
    bx_debug("connect c=%s token %s stays held: %zu messages pushed (batch %lld)", ex->cid, ex->token,
             ex->deliveries.n, rint_at(r, 1));
    write_frames(ex, rint_at(r, 1));
    connect_parked(ex);
}

/* CometD pushes outside /meta/connect unless the session delivers on connects only (ack extension). */
static int push_allowed(const bx_exchange *ex)
{
    return ex->push && !ex->cur.ack_connect && !topts(ex)->metaConnectDeliverOnly;
}

static void push(bx_exchange *ex)
{
    args a = {0};
    ex->drain_why = PEND_WAKE;
    bx_dx_args_add(&a, ex->cid);
    bx_dx_args_add(&a, ex->token);
    bx_dx_args_addl(&a, ttl_ms(ex));
    bx_dx_args_addl(&a, ex->bn_known);
    bx_dx_call(ex, "bx_push", &a, push_done);
}

static void drain(bx_exchange *ex, int why)
{
    args a = {0};
    ex->drain_why = why;
    bx_dx_args_add(&a, ex->cid);
    bx_dx_args_add(&a, ex->token);
    bx_dx_args_addl(&a, why != PEND_WAKE);
    bx_dx_args_addl(&a, expiry_ms(ex));
    bx_dx_args_addl(&a, ttl_ms(ex));
    if (ex->framed > 0) /* written as frames, waiting for their confirm: not again */
        bx_dx_args_addl(&a, ex->framed);
    ex->need_drain = 0;
    bx_dx_call(ex, "bx_drain", &a, drain_done);
}

/* Parked and idle: act on the most important pending event, if any. */
static void handle_pending(bx_exchange *ex)
{
    int p = ex->pend;
    if (!p || ex->busy || !ex->parked || ex->done)
        return;
    if (p & PEND_SUPER) {
        ex->pend = 0;
        bx_debug("connect c=%s token %s superseded → HTTP %d", ex->cid, ex->token,
                 ex->d->cfg->duplicateMetaConnectHttpResponseCode);
        bx_dx_finish_http(ex, ex->d->cfg->duplicateMetaConnectHttpResponseCode);
    } else if (p & PEND_NONE) {
        ex->pend = 0;
        bx_debug("connect c=%s token %s: session disconnected → reconnect none", ex->cid, ex->token);
        connect_reply(ex, 0, bx_advice_none());
    } else {
        int why = (p & PEND_ABANDON) ? PEND_ABANDON : (p & PEND_SHUTDOWN) ? PEND_SHUTDOWN
                : (p & PEND_EXPIRE) ? PEND_EXPIRE : PEND_WAKE;
        ex->pend &= ~why;
        if (why != PEND_WAKE)
            ex->pend &= ~PEND_WAKE; /* a final drain takes everything anyway */
        if (why == PEND_WAKE && push_allowed(ex) && !ex->need_drain)
            push(ex);
        else
            drain(ex, why);
    }
}

static void event(bx_exchange *ex, int what)
{
    if (ex->done)
        return;
    ex->pend |= what;
    handle_pending(ex);
}

void bx_exchange_wake(bx_exchange *ex) { event(ex, PEND_WAKE); }
void bx_exchange_resync(bx_exchange *ex)
{
    ex->need_drain = 1;
    event(ex, PEND_WAKE);
}
void bx_exchange_expire(bx_exchange *ex) { event(ex, PEND_EXPIRE); }
void bx_exchange_abandon(bx_exchange *ex) { event(ex, PEND_ABANDON); }
void bx_exchange_superseded(bx_exchange *ex) { event(ex, PEND_SUPER); }
void bx_exchange_disconnected(bx_exchange *ex) { event(ex, PEND_NONE); }
void bx_exchange_shutdown(bx_exchange *ex) { event(ex, PEND_SHUTDOWN); }

/* Messages pushed for a parked poll: they are in its in-flight list as batch. A poll that is
 * idle and parked is answered with them now; any other state drains instead (bx_drain knows
 * the pushed token), so nothing depends on this wake-up arriving. */
/* A pushed batch for a held websocket connect that stays held: written as frames now when the exchange
 * is idle and heard every batch before it; otherwise it is drained (with what else it missed), because
 * a later push written first would overtake it. */
static void exchange_push_held(bx_exchange *ex, long long batch, long long prev, const pooled *pool,
                               const size_t *idx, size_t n)
{
    const char *why = !push_allowed(ex) ? "no push on this session" : !ex->parked ? "not parked yet"
                    : ex->busy ? "a broker call is in flight" : ex->pend ? "events pending"
                    : ex->need_drain ? "a batch was missed" : prev != ex->bn_known ? "a batch before it was missed"
                    : NULL;
    if (why) {
        bx_debug("connect c=%s token %s: pushed batch %lld (after %lld, known %lld) while %s → drain", ex->cid,
                 ex->token, batch, prev, ex->bn_known, why);
        bx_exchange_resync(ex);
        return;
    }
    for (size_t i = 0; i < n; i++)
        bx_dx_deliver_text(ex, pool[idx[i]].s, pool[idx[i]].len, i);
    bx_debug("connect c=%s token %s stays held: %zu messages pushed by the publish (batch %lld)", ex->cid,
             ex->token, ex->deliveries.n, batch);
    write_frames(ex, batch);
}

void bx_dx_exchange_push(bx_exchange *ex, long long batch, long long prev, const pooled *pool, const size_t *idx,
                         size_t n)
{
    if (ex->done)
        return;
    if (prev >= 0) {
        exchange_push_held(ex, batch, prev, pool, idx, n);
        return;
    }
    if (!ex->parked || ex->busy || ex->pend) {
        bx_debug("connect c=%s token %s: pushed batch %lld while %s → drain", ex->cid, ex->token, batch,
                 ex->busy ? "a broker call is in flight" : !ex->parked ? "not parked yet" : "events pending");
        event(ex, PEND_WAKE);
        return;
    }
    for (size_t i = 0; i < n; i++)
        bx_dx_deliver_text(ex, pool[idx[i]].s, pool[idx[i]].len, i);
    if (n > 0)
        bx_count_queue_depth(n); /* the session's whole queue (queue and in-flight were empty), for the metrics */
    json_t *advice = ex->advice_due ? bx_dx_full_advice(ex) : NULL;
    bx_debug("connect c=%s token %s released (push): %zu messages, batch %lld", ex->cid, ex->token,
             ex->deliveries.n, batch);
    connect_reply(ex, batch, advice);
}
