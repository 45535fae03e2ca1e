/* dispatch.c — per-message Bayeux pipeline over the asynchronous store.
 *
 * An exchange walks its batch one message at a time. Each message either completes
 * locally (validation errors, ids that can never be a session) or makes exactly one
 * broker call whose callback completes it. A lone /meta/connect may park; events for
 * a parked exchange arriving while a broker call is in flight are kept as pending
 * bits and handled when the call returns, so no wake-up is lost between the two
 * Redis connections (command replies and pub/sub are not ordered with each other).
 * This file holds the loop, broker calls, replies, deliveries and the public API; each channel's
 * step lives in its own file (dispatch_int.h lists them). */
#include "dispatch.h"
#include "dispatch_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "clientid.h"
#include "counters.h"
#include "error.h"
#include "log.h"
#include "service.h"
#include "auth.h"
#include "ext/ack.h"
#include "ext/timesync.h"
#include "ext/timestamp.h"

/* ---- small helpers ---------------------------------------------------- */

void bx_dx_args_add(args *a, const char *s)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 16;
        char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (v)
            a->v = v;
        size_t *len = v ? realloc(a->len, (size_t)cap * sizeof *len) : NULL;
        if (!v || !len) {
            a->oom = 1;
            return;
        }
        a->len = len;
        a->cap = cap;
    }
    a->v[a->n] = strdup(s);
    if (!a->v[a->n]) {
        a->oom = 1;
        return;
    }
    a->len[a->n] = strlen(s);
    a->n++;
}

void bx_dx_args_addl(args *a, long long x)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", x);
    bx_dx_args_add(a, num);
}

void bx_dx_args_free(args *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    free(a->len);
}

/* ---- replies -------------------------------------------------------- */

void bx_dx_reply_fail(bx_exchange *ex, const char *error)
{
    bx_reply_fail(reply(ex), error);
}

void bx_dx_set_advice(bx_exchange *ex, json_t *advice)
{
    if (advice)
        json_object_set_new(reply(ex), "advice", advice);
}

void bx_dx_reply_unknown(bx_exchange *ex, int with_advice)
{
    bx_dx_reply_fail(ex, BX_ERR_SESSION_UNKNOWN);
    if (with_advice)
        bx_dx_set_advice(ex, bx_advice_handshake());
}

/* reply: 503::broker_unavailable with retry advice (CometD's answer while its backend is away). */
void bx_dx_fail_broker_down(json_t *reply)
{
    bx_reply_fail(reply, BX_ERR_BROKER_UNAVAILABLE);
    json_object_set_new(reply, "advice",
                        json_pack("{sssi}", "reconnect", "retry", "interval", BX_BROKER_RETRY_INTERVAL));
}

void bx_dx_reply_broker_down(bx_exchange *ex, const char *why)
{
    bx_warn("%s: broker unavailable (%s): reconnect retry", ex->cur.channel, why ? why : "no reply");
    bx_dx_fail_broker_down(reply(ex));
}

/* Full advice of this transport, as in the handshake reply. */
json_t *bx_dx_full_advice(const bx_exchange *ex)
{
    const bx_transport_opts *o = topts(ex);
    return bx_advice_retry(o->interval, o->timeout, ex->d->cfg->handshakeReconnect ? o->maxInterval : -1);
}

/* ---- pipeline ------------------------------------------------------- */

static void start_message(bx_exchange *ex);

void bx_dx_finish(bx_exchange *ex, bx_ex_state st)
{
    ex->done = 1;
    ex->parked = 0;
    /* the transport may free ex inside this call */
    ex->hooks.state(ex, st, ex->hooks.arg);
}

void bx_dx_finish_http(bx_exchange *ex, int status)
{
    ex->http_status = status;
    bx_dx_finish(ex, BX_EX_HTTP_ERROR);
}

/* The current message is answered: outgoing extensions, then its reply joins the list. */
static void message_done(bx_exchange *ex)
{
    bx_dispatch *d = ex->d;
    for (size_t i = d->n_ext; i-- > 0;)
        if (d->exts[i]->outgoing)
            d->exts[i]->outgoing(&ex->cur);
    bx_count_reply(ex->cur.reply); /* errors by type, for the metrics */
    json_array_append_new(ex->replies, ex->cur.reply);
    ex->cur.reply = NULL;
    ex->next++;
}

void bx_dx_store_reply(const redisReply *r, const char *err, void *arg)
{
    bx_exchange *ex = arg;
    step_fn *k = ex->k;
    ex->busy = 0;
    ex->k = NULL;
    if (!r)
        bx_debug("broker call failed: %s", err ? err : "?");
    k(ex, r); /* may finish (and free) ex */
}

static void deferred_send(bx_exchange *ex);

/* One broker call; its continuation k always runs exactly once (synchronously if the store is down).
 * Grouped broadcasts of the batch go first, so the broker sees the batch's messages in order. */
void bx_dx_call(bx_exchange *ex, const char *fn, args *a, step_fn *k)
{
    char err[160] = "";
    if (ex->group.n > 0) {
        ex->deferred.fn = fn;
        ex->deferred.a = *a;
        ex->deferred.k = k;
        memset(a, 0, sizeof *a);
        bx_dx_group_flush(ex, deferred_send);
        return;
    }
    ex->k = k;
    ex->busy = 1;
    if (a->oom || ex->d->closed) {
        bx_dx_args_free(a);
        ex->busy = 0;
        bx_debug("%s not sent: %s", fn, ex->d->closed ? "worker stopping" : "out of memory");
        k(ex, NULL);
        return;
    }
    int rc = bx_dx_fcall(ex->d, fn, a->n, (const char **)a->v, a->len, bx_dx_store_reply, ex, err, sizeof err);
    bx_dx_args_free(a);
    if (rc < 0) {
        ex->busy = 0;
        ex->k = NULL;
        bx_debug("%s not sent: %s", fn, err);
        k(ex, NULL);
    }
}

static void deferred_send(bx_exchange *ex)
{
    args a = ex->deferred.a;
    memset(&ex->deferred.a, 0, sizeof ex->deferred.a);
    bx_dx_call(ex, ex->deferred.fn, &a, ex->deferred.k);
}

/* Continue a message-level continuation: answer the message and move on. */
void bx_dx_complete(bx_exchange *ex)
{
    message_done(ex);
    bx_dx_run(ex);
}

/* The browser argument for session calls: "" = not checked; NULL = the request cannot
 * own any session (HTTP without a usable cookie and without trustClientSession). */
const char *bx_dx_session_browser(const bx_exchange *ex)
{
    if (!ex->info.http || ex->d->cfg->trustClientSession)
        return "";
    return ex->browser;
}

/* clientId of the current message if it can name a session, else NULL. */
const char *bx_dx_session_cid(const bx_exchange *ex)
{
    const char *cid = bx_msg_client_id(ex->cur.msg);
    if (!cid || !bx_clientid_valid(cid))
        return NULL;
    return bx_dx_session_browser(ex) ? cid : NULL;
}

void bx_dx_session_args(bx_exchange *ex, args *a, const char *cid)
{
    bx_dx_args_add(a, cid);
    bx_dx_args_add(a, bx_dx_session_browser(ex));
    bx_dx_args_addl(a, topts(ex)->maxInterval);
    bx_dx_args_addl(a, ttl_ms(ex));
}

/* ---- deliveries ----------------------------------------------------- */

/* Append s (malloc'd, taken over; NULL = out of memory) to t. */
static void texts_take(texts *t, char *s, size_t len)
{
    if (s && t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        char **v = realloc(t->s, cap * sizeof *v);
        if (v)
            t->s = v;
        size_t *l = v ? realloc(t->len, cap * sizeof *l) : NULL;
        if (l) {
            t->len = l;
            t->cap = cap;
        }
    }
    if (!s || t->n == t->cap) {
        free(s);
        t->oom = 1;
        return;
    }
    t->s[t->n] = s;
    t->len[t->n++] = len;
}

/* Forget the texts (kept allocated for reuse). */
void bx_dx_texts_clear(texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    t->n = 0;
}

static void texts_free(texts *t)
{
    bx_dx_texts_clear(t);
    free(t->s);
    free(t->len);
}

/* Add one message for the client (steals m): delivery hooks of the extensions, then the list. */
void bx_dx_deliver(bx_exchange *ex, json_t *m)
{
    for (size_t i = ex->d->n_ext; i-- > 0;)
        if (ex->d->exts[i]->delivery)
            ex->d->exts[i]->delivery(m);
    size_t len = 0;
    char *text = bx_json_dump(m, &len);
    json_decref(m);
    texts_take(&ex->deliveries, text, len);
}

/* Add one queued message (JSON text) for the client; one that does not parse is skipped.
 * Every writer of the queues is ours and writes JSON objects, so unless an extension changes
 * delivered messages the text goes out as it is (the braces are checked, not the rest). */
void bx_dx_deliver_text(bx_exchange *ex, const char *s, size_t len, size_t i)
{
    if (!ex->d->delivery_hooks && s && len >= 2 && s[0] == '{' && s[len - 1] == '}') {
        char *copy = malloc(len + 1);
        if (copy) {
            memcpy(copy, s, len);
            copy[len] = '\0';
        }
        texts_take(&ex->deliveries, copy, len);
        return;
    }
    json_error_t jerr;
    json_t *m = s ? json_loadb(s, len, 0, &jerr) : NULL;
    if (!m) {
        bx_warn("c=%s: queued message %zu is not JSON, skipped", ex->cid, i);
        return;
    }
    bx_dx_deliver(ex, m);
}

/* Append messages r[from..] (JSON text) to the deliveries. */
void bx_dx_add_deliveries(bx_exchange *ex, const redisReply *r, size_t from)
{
    for (size_t i = from; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        size_t len = 0;
        const char *s = rstr(r, i, &len);
        bx_dx_deliver_text(ex, s, len, i);
    }
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > from)
        bx_count_queue_depth(r->elements - from); /* the session's whole queue + in-flight, for the metrics */
}

/* ---- session check, then a local answer --------------------------- */

static void touch_done(bx_exchange *ex, const redisReply *r)
{
    if (!r) {
        bx_dx_reply_broker_down(ex, "touch");
    } else if (is_status(r, "unknown")) {
        bx_dx_reply_unknown(ex, 0);
    } else if (ex->local_error) {
        bx_dx_reply_fail(ex, ex->local_error);
    } else {
        bx_reply_ok(reply(ex));
    }
    bx_debug("%s c=%s: %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
             !r ? "broker down" : is_status(r, "unknown") ? "session unknown → 402"
             : ex->local_error ? ex->local_error : "ok (not broadcast, no service)");
    ex->local_error = NULL;
    bx_dx_complete(ex);
}

/* Check the session (bx_touch), then answer with error (NULL: success). */
void bx_dx_touch_then(bx_exchange *ex, const char *cid, const char *error)
{
    args a = {0};
    ex->local_error = error;
    bx_dx_session_args(ex, &a, cid);
    bx_dx_call(ex, "bx_touch", &a, touch_done);
}

/* ---- the loop --------------------------------------------------------- */

static void start_message(bx_exchange *ex)
{
    bx_dispatch *d = ex->d;
    json_t *msg = ex->batch.msgs[ex->next];
    memset(&ex->cur, 0, sizeof ex->cur);
    ex->cur.msg = msg;
    ex->cur.ack_k = -1;
    ex->cur.reply = bx_reply_new(msg);
    const char *error = d->cfg->validateMessageFields ? bx_message_validate(msg)
                      : bx_msg_channel(msg) ? NULL : BX_ERR_CHANNEL_MISSING;
    ex->cur.channel = bx_msg_channel(msg) ? bx_msg_channel(msg) : "";
    if (!ex->cur.reply) {
        bx_error("out of memory building a reply");
        ex->cur.reply = json_object();
    }
    if (error) {
        bx_debug("message %zu on '%s': %s", ex->next, ex->cur.channel, error);
        bx_dx_reply_fail(ex, error);
        bx_dx_complete(ex);
        return;
    }
    for (size_t i = 0; i < d->n_ext; i++) {
        if (d->exts[i]->incoming && d->exts[i]->incoming(&ex->cur) < 0) {
            bx_debug("message %zu on %s deleted by extension %s", ex->next, ex->cur.channel, d->exts[i]->name);
            bx_dx_reply_fail(ex, BX_ERR_MESSAGE_DELETED);
            bx_dx_complete(ex);
            return;
        }
    }
    const char *ch = ex->cur.channel;
    if (strcmp(ch, "/meta/handshake") == 0)
        bx_dx_do_handshake(ex);
    else if (strcmp(ch, "/meta/connect") == 0)
        bx_dx_do_connect(ex);
    else if (strcmp(ch, "/meta/subscribe") == 0)
        bx_dx_do_subscription(ex, 1);
    else if (strcmp(ch, "/meta/unsubscribe") == 0)
        bx_dx_do_subscription(ex, 0);
    else if (strcmp(ch, "/meta/disconnect") == 0)
        bx_dx_do_disconnect(ex);
    else
        bx_dx_do_publish(ex);
}

/* Process messages until one waits for the broker or parks; finish after the last. */
void bx_dx_run(bx_exchange *ex)
{
    if (ex->running)
        return;
    ex->running = 1;
    while (!ex->busy && !ex->parked && !ex->done && ex->next < ex->batch.n)
        start_message(ex);
    ex->running = 0;
    if (!ex->busy && !ex->parked && !ex->done && ex->next >= ex->batch.n) {
        if (ex->group.n > 0)
            bx_dx_group_flush(ex, bx_dx_run);
        else
            bx_dx_finish(ex, BX_EX_REPLY);
    }
}

/* ---- public ------------------------------------------------------------ */

bx_dispatch *bx_dispatch_new(const bx_config *cfg, bx_store *store, const char *worker, char *err, size_t errlen)
{
    bx_dispatch *d = calloc(1, sizeof *d);
    if (!d || !(d->worker = strdup(worker)) || !(d->supported = json_array()) || !(d->services = bx_services_new())) {
        snprintf(err, errlen, "out of memory");
        bx_dispatch_free(d);
        return NULL;
    }
    if (bx_services_add_builtins(d->services, err, errlen) < 0
        || bx_services_add_external(d->services, cfg->externalServices, &cfg->externalServiceTimeout, err, errlen) < 0
        || !(d->auth = bx_auth_new(cfg, err, errlen))) {
        bx_dispatch_free(d);
        return NULL;
    }
    const char *pc = cfg->presenceChannel;
    if (pc && (!bx_channel_valid(pc) || bx_channel_classify(pc) != BX_CH_BROADCAST || strchr(pc, '*'))) {
        snprintf(err, errlen, "presenceChannel '%s': a broadcast channel name expected", pc);
        bx_dispatch_free(d);
        return NULL;
    }
    d->cfg = cfg;
    d->store = store;
    /* in allowedTransports order (CometD lists websocket first when it is enabled); the names are
     * validated and none is a substring of another, so strstr gives each one's position */
    const char *at = cfg->allowedTransports ? cfg->allowedTransports : "";
    for (size_t pos = 0; at[pos]; pos++)
        for (int t = 0; t < BX_TR_COUNT; t++)
            if (strstr(at, bx_transport_name((bx_transport)t)) == at + pos &&
                bx_config_transport_allowed(cfg, (bx_transport)t))
                json_array_append_new(d->supported, json_string(bx_transport_name((bx_transport)t)));
    if (cfg->ackExtension)
        d->exts[d->n_ext++] = &bx_ext_ack;
    if (cfg->timesyncExtension)
        d->exts[d->n_ext++] = &bx_ext_timesync;
    if (cfg->timestampExtension)
        d->exts[d->n_ext++] = &bx_ext_timestamp;
    for (size_t i = 0; i < d->n_ext; i++)
        if (d->exts[i]->delivery)
            d->delivery_hooks = 1;
    return d;
}

void bx_dispatch_free(bx_dispatch *d)
{
    if (!d)
        return;
    if (d->live)
        bx_error("dispatch freed with %zu exchanges alive", d->live);
    bx_dx_args_free(&d->confirms);
    json_decref(d->supported);
    bx_services_free(d->services);
    bx_auth_free(d->auth);
    free(d->worker);
    free(d);
}

int bx_exchange_set_authorization(bx_exchange *ex, const char *value)
{
    free(ex->authorization);
    ex->authorization = value ? strdup(value) : NULL;
    return value && !ex->authorization ? -1 : 0;
}

void bx_exchange_set_push(bx_exchange *ex, bx_exchange_push_fn *fn)
{
    ex->push = fn;
}

bx_services *bx_dispatch_services(bx_dispatch *d)
{
    return d->services;
}

void bx_dispatch_close(bx_dispatch *d)
{
    bx_dx_confirm_flush(d); /* gathered confirms still go */
    d->closed = 1;
}

size_t bx_dispatch_live(const bx_dispatch *d)
{
    return d->live;
}

bx_exchange *bx_exchange_new(bx_dispatch *d, bx_batch *batch, const bx_request_info *info,
                             const bx_exchange_hooks *hooks)
{
    bx_exchange *ex = calloc(1, sizeof *ex);
    if (!ex || !(ex->replies = json_array())) {
        if (ex) {
            json_decref(ex->replies);
            free(ex);
        }
        bx_batch_free(batch);
        return NULL;
    }
    ex->d = d;
    ex->batch = *batch;
    batch->msgs = NULL;
    batch->n = 0;
    ex->info = *info;
    ex->info.browser = NULL;
    if (info->browser && bx_clientid_valid(info->browser))
        ex->browser = strdup(info->browser);
    ex->hooks = *hooks;
    ex->http_status = 200;
    snprintf(ex->token, sizeof ex->token, "%llu", ++d->next_token);
    d->live++;
    return ex;
}

void bx_exchange_start(bx_exchange *ex)
{
    bx_dx_run(ex);
}

void bx_exchange_free(bx_exchange *ex)
{
    if (!ex)
        return;
    if (ex->busy)
        bx_error("exchange %s freed with a broker call in flight", ex->token); /* a bug: never happens */
    ex->d->live--;
    bx_service_call_free(ex->svc); /* a handler still running is detached, its end ignored */
    bx_dx_ident_clear(ex);
    free(ex->authorization);
    bx_batch_free(&ex->batch);
    json_decref(ex->cur.reply);
    bx_dx_args_free(&ex->group.a);
    free(ex->group.ctx);
    bx_dx_args_free(&ex->deferred.a);
    bx_dx_args_free(&ex->connect_args);
    json_decref(ex->replies);
    texts_free(&ex->deliveries);
    free(ex->browser);
    free(ex->new_browser);
    free(ex);
}

const char *bx_exchange_client_id(const bx_exchange *ex) { return ex->cid; }
const char *bx_exchange_token(const bx_exchange *ex) { return ex->token; }
long bx_exchange_hold_ms(const bx_exchange *ex) { return ex->hold_ms; }
int bx_exchange_http_status(const bx_exchange *ex) { return ex->http_status; }
int bx_exchange_busy(const bx_exchange *ex) { return ex->busy; }

const char *bx_exchange_new_browser(const bx_exchange *ex)
{
    json_t *first = json_array_get(ex->replies, 0);
    if (!ex->new_browser || !json_is_true(json_object_get(first, "successful")))
        return NULL;
    return ex->new_browser;
}

char *bx_exchange_body(const bx_exchange *ex, size_t *len)
{
    return bx_exchange_frame(ex, 0, ex->deliveries.n, 1, len);
}

size_t bx_exchange_delivery_count(const bx_exchange *ex)
{
    return ex->deliveries.n;
}

char *bx_exchange_frame(const bx_exchange *ex, size_t from, size_t n, int replies, size_t *len)
{
    const texts *t = &ex->deliveries;
    if (t->oom)
        return NULL;
    char *rep = NULL;
    size_t rlen = 0;
    if (replies && json_array_size(ex->replies) > 0 && !(rep = bx_json_dump(ex->replies, &rlen)))
        return NULL;
    size_t end = from > t->n ? t->n : (n > t->n - from ? t->n : from + n);
    size_t total = 2 + rlen; /* "[" "]" and the replies without their brackets, plus commas */
    for (size_t i = from; i < end; i++)
        total += t->len[i] + 1;
    char *out = malloc(total + 1);
    if (!out) {
        free(rep);
        return NULL;
    }
    size_t o = 0;
    out[o++] = '[';
    for (size_t i = from; i < end; i++) {
        if (o > 1)
            out[o++] = ',';
        memcpy(out + o, t->s[i], t->len[i]);
        o += t->len[i];
    }
    if (rep && rlen > 2) {
        if (o > 1)
            out[o++] = ',';
        memcpy(out + o, rep + 1, rlen - 2);
        o += rlen - 2;
    }
    out[o++] = ']';
    out[o] = '\0';
    free(rep);
    *len = o;
    return out;
}

static void confirm_done(const redisReply *r, const char *err, void *arg)
{
    bx_dispatch *d = arg;
    d->live--;
    if (!r)
        bx_warn("bx_confirm failed: %s (the batches will be sent again)", err ? err : "?");
}

int bx_dx_fcall(bx_dispatch *d, const char *fn, int argc, const char **argv, const size_t *lens, bx_store_cb *cb,
                void *arg, char *err, size_t errlen)
{
    if (d->confirm_scheduled) /* gathered confirms go first: a drain must not overtake them */
        bx_dx_confirm_flush(d);
    return bx_store_fcall(d->store, fn, argc, argv, lens, cb, arg, err, errlen);
}

/* Send the gathered (cid, batch) pairs in one bx_confirm. */
void bx_dx_confirm_flush(bx_dispatch *d)
{
    args *a = &d->confirms;
    if (d->confirm_scheduled) {
        d->confirm_scheduled = 0;
        d->live--;
    }
    if (a->n == 0 && !a->oom)
        return;
    char err[160];
    d->live++; /* a confirm in flight keeps the worker from exiting before it is sent */
    int oom = a->oom;
    if (oom || bx_store_fcall(d->store, "bx_confirm", a->n, (const char **)a->v, a->len, confirm_done, d, err,
                              sizeof err) < 0) {
        d->live--;
        bx_warn("bx_confirm of %d sessions not sent: %s (their batches will be sent again)", a->n / 2,
                oom ? "out of memory" : err);
    }
    bx_dx_args_free(a);
    memset(a, 0, sizeof *a);
}

void bx_dispatch_confirm(bx_dispatch *d, const char *cid, long long batch)
{
    if (batch <= 0 || !cid[0] || d->closed)
        return;
    bx_dx_args_add(&d->confirms, cid);
    bx_dx_args_addl(&d->confirms, batch);
    if (d->gather)
        return;
    if (!d->confirm_schedule) {
        bx_dx_confirm_flush(d);
    } else if (!d->confirm_scheduled) {
        d->confirm_scheduled = 1;
        d->live++;
        d->confirm_schedule(d->confirm_schedule_arg);
    }
}

void bx_dispatch_gather_confirms(bx_dispatch *d, void (*schedule)(void *arg), void *arg)
{
    d->confirm_schedule = schedule;
    d->confirm_schedule_arg = arg;
}

void bx_dispatch_flush_confirms(bx_dispatch *d)
{
    bx_dx_confirm_flush(d);
}

void bx_exchange_confirm(bx_exchange *ex)
{
    bx_dispatch_confirm(ex->d, ex->cid, ex->confirm_batch);
    ex->confirm_batch = 0;
}
