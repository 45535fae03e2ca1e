/* dispatch.c — per-message Bayeux pipeline over the asynchronous store.
 *
 * An exchange walks its batch one message at a time. Each message either completes
 * locally (validation errors, ids that can never be a session) or makes exactly one
 * broker call whose callback completes it. A lone /meta/connect may park; events for
 * a parked exchange arriving while a broker call is in flight are kept as pending
 * bits and handled when the call returns, so no wake-up is lost between the two
 * Redis connections (command replies and pub/sub are not ordered with each other). */
#include "dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

#define MAX_EXTS 4

/* Events that may arrive for a parked exchange, in the order they are honoured. */
enum {
    PEND_SUPER = 1,
    PEND_NONE = 2,
    PEND_ABANDON = 4,
    PEND_SHUTDOWN = 8,
    PEND_EXPIRE = 16,
    PEND_WAKE = 32
};

/* Argument vector for one FCALL; strings owned here, freed by args_free. */
typedef struct args {
    char **v;
    size_t *len;
    int n, cap, oom;
} args;

struct bx_dispatch {
    const bx_config *cfg;
    bx_store *store;
    char *worker;
    const bx_ext *exts[MAX_EXTS];
    size_t n_ext;
    unsigned long long next_token;
    size_t live;
    int closed;
    json_t *supported; /* handshake supportedConnectionTypes */
    bx_services *services; /* handlers of /service/ channels (service.h) */
    bx_auth *auth;         /* security policy (auth.h) */
    int delivery_hooks;    /* an extension changes delivered messages: they must be parsed */
    /* While a push wake-up is answered (wake_push), confirms are gathered here and sent as one
     * bx_confirm for all its polls, instead of one broker call per poll. */
    int gather;
    args confirms;
};


/* Delivered messages as JSON text: queued messages go from the broker's reply to the response
 * body without being parsed (jansson's parse and dump were a third of a worker's time). */
typedef struct texts {
    char **s;
    size_t *len;
    size_t n, cap;
    int oom;
} texts;

typedef void step_fn(bx_exchange *ex, const redisReply *r);

struct bx_exchange {
    bx_dispatch *d;
    bx_batch batch;
    size_t next;         /* message in progress */
    bx_msgctx cur;
    json_t *replies;     /* replies in request order */
    texts deliveries;    /* delivered messages (JSON text), written before the replies */
    bx_request_info info;
    char *browser;       /* copy of info.browser if it is a usable id, else NULL */
    char *new_browser;   /* generated at handshake, to be set as cookie */
    bx_exchange_hooks hooks;
    char token[24];
    char cid[BX_ID_MAX_LEN + 1];
    long hold_ms;
    int http_status;
    step_fn *k;          /* continuation of the broker call in flight */
    int busy;            /* a broker call is in flight */
    int running;         /* inside run(): do not re-enter */
    int parked;
    int pend;
    int drain_why;       /* PEND_* that caused the drain in flight (0: wake) */
    int done;
    bx_service_call *svc; /* service handler call in progress (service.h) */
    char *authorization;  /* HTTP Authorization header value, or NULL (bx_exchange_set_authorization) */
    bx_exchange_push_fn *push; /* websocket push (bx_exchange_set_push), or NULL */
    /* identity of ident_cid for channel authorizers, loaded by bx_session_auth when a rule needs it */
    char ident_cid[BX_ID_MAX_LEN + 1];
    int ident_auth;
    char *ident_user, *ident_roles;
    void (*ident_resume)(bx_exchange *ex); /* the step to run again once the identity is loaded */
    int advice_due;      /* the held connect's reply must carry the full advice */
    const char *local_error; /* error to reply after a session check succeeds */
    long long confirm_batch;
    /* Broadcasts of this batch waiting to go to the broker together (see group_add): one
     * bx_publish_batch means one RPUSH and at most one wake-up per recipient per batch. */
    struct {
        args a;              /* per message: channel text mid nwild wildcard... */
        bx_msgctx *ctx;      /* the grouped messages; their replies are already in ex->replies */
        size_t n, cap, bytes;
        size_t sent;         /* messages of the group in flight */
        void (*then)(bx_exchange *ex); /* runs once the group in flight is answered */
        char cid[BX_ID_MAX_LEN + 1];
    } group;
    /* A broker call held back until the group is answered (call() sends the group first). */
    struct {
        const char *fn;
        args a;
        step_fn *k;
    } deferred;
};

/* ---- small helpers ---------------------------------------------------- */

static const bx_transport_opts *topts(const bx_exchange *ex)
{
    return &ex->d->cfg->tr[ex->info.transport];
}

static long expiry_ms(const bx_exchange *ex)
{
    return topts(ex)->interval + topts(ex)->maxInterval;
}

/* Safety-net TTL of every session key: longer than any legitimate gap between touches. */
static long ttl_ms(const bx_exchange *ex)
{
    return 2 * (topts(ex)->timeout + expiry_ms(ex)) + 60000;
}

static const char *rstr(const redisReply *r, size_t i, size_t *len)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    const redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS)
        return NULL;
    if (len)
        *len = e->len;
    return e->str;
}

static long long rint_at(const redisReply *r, size_t i)
{
    if (!r || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return 0;
    const redisReply *e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER)
        return e->integer;
    if (e->type == REDIS_REPLY_STRING)
        return strtoll(e->str, NULL, 10);
    return 0;
}

/* Status word of a reply: first element of an array, or the string itself. */
static const char *rstatus(const redisReply *r)
{
    if (!r)
        return NULL;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return r->str;
    return rstr(r, 0, NULL);
}

static int is_status(const redisReply *r, const char *s)
{
    const char *st = rstatus(r);
    return st && strcmp(st, s) == 0;
}

static void args_add(args *a, const char *s)
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

static void args_addl(args *a, long long x)
{
    char num[24];
    snprintf(num, sizeof num, "%lld", x);
    args_add(a, num);
}

static void args_free(args *a)
{
    for (int i = 0; i < a->n; i++)
        free(a->v[i]);
    free(a->v);
    free(a->len);
}

/* ---- replies -------------------------------------------------------- */

static json_t *reply(bx_exchange *ex)
{
    return ex->cur.reply;
}

static void reply_fail(bx_exchange *ex, const char *error)
{
    bx_reply_fail(reply(ex), error);
}

static void set_advice(bx_exchange *ex, json_t *advice)
{
    if (advice)
        json_object_set_new(reply(ex), "advice", advice);
}

static void reply_unknown(bx_exchange *ex, int with_advice)
{
    reply_fail(ex, BX_ERR_SESSION_UNKNOWN);
    if (with_advice)
        set_advice(ex, bx_advice_handshake());
}

/* reply: 503::broker_unavailable with retry advice (CometD's answer while its backend is away). */
static void fail_broker_down(json_t *reply)
{
    bx_reply_fail(reply, BX_ERR_BROKER_UNAVAILABLE);
    json_object_set_new(reply, "advice",
                        json_pack("{sssi}", "reconnect", "retry", "interval", BX_BROKER_RETRY_INTERVAL));
}

static void reply_broker_down(bx_exchange *ex, const char *why)
{
    bx_warn("%s: broker unavailable (%s): reconnect retry", ex->cur.channel, why ? why : "no reply");
    fail_broker_down(reply(ex));
}

/* Full advice of this transport, as in the handshake reply. */
static json_t *full_advice(const bx_exchange *ex)
{
    const bx_transport_opts *o = topts(ex);
    return bx_advice_retry(o->interval, o->timeout, ex->d->cfg->handshakeReconnect ? o->maxInterval : -1);
}

/* ---- pipeline ------------------------------------------------------- */

static void run(bx_exchange *ex);
static void start_message(bx_exchange *ex);
static void drain(bx_exchange *ex, int why);

static void finish(bx_exchange *ex, bx_ex_state st)
{
    ex->done = 1;
    ex->parked = 0;
    /* the transport may free ex inside this call */
    ex->hooks.state(ex, st, ex->hooks.arg);
}

static void finish_http(bx_exchange *ex, int status)
{
    ex->http_status = status;
    finish(ex, BX_EX_HTTP_ERROR);
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

static void on_store_reply(const redisReply *r, const char *err, void *arg)
{
    bx_exchange *ex = arg;
    step_fn *k = ex->k;
    ex->busy = 0;
    ex->k = NULL;
    if (!r)
        bx_debug("broker call failed: %s", err ? err : "?");
    k(ex, r); /* may finish (and free) ex */
}

static void group_flush(bx_exchange *ex, void (*then)(bx_exchange *ex));
static void do_publish(bx_exchange *ex);
static void deferred_send(bx_exchange *ex);

/* One broker call; its continuation k always runs exactly once (synchronously if the store is down).
 * Grouped broadcasts of the batch go first, so the broker sees the batch's messages in order. */
static void call(bx_exchange *ex, const char *fn, args *a, step_fn *k)
{
    char err[160] = "";
    if (ex->group.n > 0) {
        ex->deferred.fn = fn;
        ex->deferred.a = *a;
        ex->deferred.k = k;
        memset(a, 0, sizeof *a);
        group_flush(ex, deferred_send);
        return;
    }
    ex->k = k;
    ex->busy = 1;
    if (a->oom || ex->d->closed) {
        args_free(a);
        ex->busy = 0;
        bx_debug("%s not sent: %s", fn, ex->d->closed ? "worker stopping" : "out of memory");
        k(ex, NULL);
        return;
    }
    int rc = bx_store_fcall(ex->d->store, fn, a->n, (const char **)a->v, a->len, on_store_reply, ex, err,
                            sizeof err);
    args_free(a);
    if (rc < 0) {
        ex->busy = 0;
        ex->k = NULL;
        bx_debug("%s not sent: %s", fn, err);
        k(ex, NULL);
    }
}

/* Continue a message-level continuation: answer the message and move on. */
static void complete(bx_exchange *ex)
{
    message_done(ex);
    run(ex);
}

/* The browser argument for session calls: "" = not checked; NULL = the request cannot
 * own any session (HTTP without a usable cookie and without trustClientSession). */
static const char *session_browser(const bx_exchange *ex)
{
    if (!ex->info.http || ex->d->cfg->trustClientSession)
        return "";
    return ex->browser;
}

/* clientId of the current message if it can name a session, else NULL. */
static const char *session_cid(const bx_exchange *ex)
{
    const char *cid = bx_msg_client_id(ex->cur.msg);
    if (!cid || !bx_clientid_valid(cid))
        return NULL;
    return session_browser(ex) ? cid : NULL;
}

static void session_args(bx_exchange *ex, args *a, const char *cid)
{
    args_add(a, cid);
    args_add(a, session_browser(ex));
    args_addl(a, topts(ex)->maxInterval);
    args_addl(a, ttl_ms(ex));
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
static void texts_clear(texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    t->n = 0;
}

static void texts_free(texts *t)
{
    texts_clear(t);
    free(t->s);
    free(t->len);
}

/* Add one message for the client (steals m): delivery hooks of the extensions, then the list. */
static void deliver(bx_exchange *ex, json_t *m)
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
static void deliver_text(bx_exchange *ex, const char *s, size_t len, size_t i)
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
    deliver(ex, m);
}

/* Append messages r[from..] (JSON text) to the deliveries. */
static void add_deliveries(bx_exchange *ex, const redisReply *r, size_t from)
{
    for (size_t i = from; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        size_t len = 0;
        const char *s = rstr(r, i, &len);
        deliver_text(ex, s, len, i);
    }
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > from)
        bx_count_queue_depth(r->elements - from); /* the session's whole queue + in-flight, for the metrics */
}

static void handshake_done(bx_exchange *ex, const redisReply *r)
{
    json_t *rep = reply(ex);
    if (!r) {
        reply_broker_down(ex, "handshake");
        free(ex->new_browser);
        ex->new_browser = NULL;
        complete(ex);
        return;
    }
    bx_reply_ok(rep);
    json_object_set_new(rep, "clientId", json_string(ex->cid));
    json_object_set_new(rep, "version", json_string("1.0"));
    json_object_set_new(rep, "minimumVersion", json_string("1.0"));
    json_object_set(rep, "supportedConnectionTypes", ex->d->supported);
    set_advice(ex, full_advice(ex));
    bx_debug("handshake c=%s ok (browser %s%s, ack %d)", ex->cid, ex->browser ? ex->browser : "-",
             ex->new_browser ? " new" : "", ex->cur.ack_requested);
    complete(ex);
}

/* >>> security policy (h7, auth.h) */
static int handshake_deny(bx_exchange *ex, const char *why)
{
    bx_info("handshake denied: %s", why);
    reply_fail(ex, BX_ERR_HANDSHAKE_DENIED);
    set_advice(ex, bx_advice_none());
    complete(ex);
    return -1;
}

/* The handshake's token. 0 go on (user and roles malloc'd, NULL when anonymous), -1 denied (replied,
 * logged at info with the reason). */
static int handshake_identity(bx_exchange *ex, char **user, char **roles)
{
    const bx_auth *a = ex->d->auth;
    *user = *roles = NULL;
    if (!bx_auth_jwt_enabled(a))
        return 0;
    json_t *given = json_object_get(json_object_get(ex->cur.msg, "ext"), "token");
    const char *token = json_string_value(given);
    const char *how = "ext.token";
    if (given && !token) /* offered but not a string: a bad token, not an anonymous handshake */
        return handshake_deny(ex, "ext.token is not a string");
    if (!token && ex->authorization && strncasecmp(ex->authorization, "Bearer ", 7) == 0) {
        token = ex->authorization + 7;
        how = "Authorization header";
    }
    if (!token && !bx_auth_jwt_required(a)) {
        bx_debug("handshake: no token, anonymous (jwtRequired false)");
        return 0;
    }
    if (!token)
        return handshake_deny(ex, "no token (jwtRequired)");
    char why[200] = "";
    if (bx_auth_verify(a, token, user, roles, why, sizeof why) < 0)
        return handshake_deny(ex, why);
    bx_debug("handshake: token (%s) ok: user %.64s roles %.128s", how, *user, *roles);
    return 0;
}
/* <<< security policy */

static void do_handshake(bx_exchange *ex)
{
    char err[128];
    char id[BX_ID_MAX_LEN + 1];
    char *user = NULL, *roles = NULL;
    if (handshake_identity(ex, &user, &roles) < 0)
        return;
    if (bx_clientid_new(ex->cid, sizeof ex->cid, err, sizeof err) < 0) {
        bx_error("handshake: %s", err);
        reply_broker_down(ex, err);
        free(user);
        free(roles);
        complete(ex);
        return;
    }
    if (ex->info.http && !ex->browser) {
        if (bx_browserid_new(id, sizeof id, err, sizeof err) < 0 || !(ex->new_browser = strdup(id))) {
            bx_error("handshake: browser id: %s", err);
            reply_broker_down(ex, "browser id");
            free(user);
            free(roles);
            complete(ex);
            return;
        }
    }
    const char *browser = ex->browser ? ex->browser : ex->new_browser ? ex->new_browser : "";
    args a = {0};
    args_add(&a, ex->cid);
    args_add(&a, browser);
    args_add(&a, bx_transport_name(ex->info.transport));
    args_addl(&a, expiry_ms(ex));
    args_addl(&a, ttl_ms(ex));
    args_addl(&a, ex->cur.ack_requested);
    args_add(&a, user ? user : "");
    args_addl(&a, user != NULL);
    args_add(&a, roles ? roles : "");
    args_add(&a, ex->d->cfg->presenceChannel ? ex->d->cfg->presenceChannel : "");
    free(user);
    free(roles);
    call(ex, "bx_handshake", &a, handshake_done);
}

/* ---- /meta/connect -------------------------------------------------- */

/* The connect reply is complete: successful, maybe advice, deliveries already added. */
static void connect_reply(bx_exchange *ex, long long batch, json_t *advice)
{
    bx_reply_ok(reply(ex));
    set_advice(ex, advice);
    ex->cur.batch = batch;
    if (batch > 0 && !ex->cur.ack_connect)
        ex->confirm_batch = batch;
    ex->parked = 0;
    complete(ex);
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
        reply_broker_down(ex, "connect");
        complete(ex);
        return;
    }
    if (is_status(r, "unknown")) {
        bx_debug("connect c=%s: session unknown → 402 + handshake advice", ex->cid);
        reply_unknown(ex, 1);
        complete(ex);
        return;
    }
    long long tc = rint_at(r, 2), batch = rint_at(r, 3);
    json_t *advice = (tc || json_is_object(json_object_get(ex->cur.msg, "advice"))) ? full_advice(ex) : NULL;
    if (is_status(r, "parked")) {
        ex->advice_due = advice != NULL; /* sent when the held connect is answered */
        json_decref(advice);
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
        set_advice(ex, bx_advice_multiple_clients(msi));
        complete(ex);
        return;
    }
    add_deliveries(ex, r, 4);
    bx_debug("connect c=%s answered now: %s, %zu messages (batch %lld, first %lld, transport changed %lld)",
             ex->cid, rstatus(r) ? rstatus(r) : "?", ex->deliveries.n, batch, rint_at(r, 1), tc);
    connect_reply(ex, batch, advice);
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

static void do_connect(bx_exchange *ex)
{
    const char *cid = session_cid(ex);
    if (!cid) {
        bx_debug("connect: clientId missing/invalid or no browser cookie → 402");
        reply_unknown(ex, 1);
        complete(ex);
        return;
    }
    snprintf(ex->cid, sizeof ex->cid, "%s", cid);
    ex->hold_ms = connect_hold_ms(ex);
    int hold = ex->batch.n == 1 && ex->hold_ms > 0;
    const bx_config *cfg = ex->d->cfg;
    args a = {0};
    args_add(&a, cid);
    args_add(&a, session_browser(ex));
    args_add(&a, ex->d->worker);
    args_add(&a, ex->token);
    args_addl(&a, ex->cur.ack_connect ? ex->cur.ack_k : -1);
    args_addl(&a, hold);
    args_addl(&a, ex->hold_ms);
    args_addl(&a, expiry_ms(ex));
    args_addl(&a, ttl_ms(ex));
    args_addl(&a, ex->info.http ? cfg->maxSessionsPerBrowser : -1);
    args_add(&a, bx_transport_name(ex->info.transport));
    if (hold && ex->hooks.hold)
        ex->hooks.hold(ex, ex->hooks.arg);
    call(ex, "bx_connect", &a, connect_done);
}

/* ---- parked connect: drains and events ------------------------------ */

static void drain_done(bx_exchange *ex, const redisReply *r)
{
    int why = ex->drain_why;
    if (why == PEND_ABANDON) {
        bx_debug("connect c=%s token %s: browser gone, unparked (%s)", ex->cid, ex->token,
                 r ? rstatus(r) ? rstatus(r) : "?" : "broker down");
        finish(ex, BX_EX_GONE);
        return;
    }
    if (!r) {
        if (why == PEND_WAKE) { /* stay parked: the timeout's final drain retries */
            connect_parked(ex);
            return;
        }
        reply_broker_down(ex, "drain");
        ex->parked = 0;
        complete(ex);
        return;
    }
    if (is_status(r, "superseded")) {
        bx_debug("connect c=%s token %s superseded → HTTP %d", ex->cid, ex->token,
                 ex->d->cfg->duplicateMetaConnectHttpResponseCode);
        finish_http(ex, ex->d->cfg->duplicateMetaConnectHttpResponseCode);
        return;
    }
    if (is_status(r, "gone")) {
        bx_debug("connect c=%s token %s: session gone → 402", ex->cid, ex->token);
        reply_unknown(ex, 1);
        ex->parked = 0;
        complete(ex);
        return;
    }
    if (is_status(r, "parked")) {
        connect_parked(ex);
        return;
    }
    add_deliveries(ex, r, 2);
    json_t *advice = why == PEND_SHUTDOWN || ex->advice_due ? full_advice(ex) : NULL;
    bx_debug("connect c=%s token %s released (%s): %zu messages, batch %lld", ex->cid, ex->token,
             why == PEND_SHUTDOWN ? "shutdown" : why == PEND_EXPIRE ? "timeout" : "wake-up",
             ex->deliveries.n, rint_at(r, 1));
    connect_reply(ex, rint_at(r, 1), advice);
}

/* Websocket push after a wake-up: the messages go out now and the connect stays held. */
static void push_done(bx_exchange *ex, const redisReply *r)
{
    if (!is_status(r, "msgs")) { /* parked (nothing new), superseded, gone, broker down: as a drain */
        drain_done(ex, r);
        return;
    }
    add_deliveries(ex, r, 2);
    bx_debug("connect c=%s token %s stays held: %zu messages pushed (batch %lld)", ex->cid, ex->token,
             ex->deliveries.n, rint_at(r, 1));
    ex->push(ex, rint_at(r, 1), ex->hooks.arg);
    texts_clear(&ex->deliveries);
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
    args_add(&a, ex->cid);
    args_add(&a, ex->token);
    args_addl(&a, ttl_ms(ex));
    call(ex, "bx_push", &a, push_done);
}

static void drain(bx_exchange *ex, int why)
{
    args a = {0};
    ex->drain_why = why;
    args_add(&a, ex->cid);
    args_add(&a, ex->token);
    args_addl(&a, why != PEND_WAKE);
    args_addl(&a, expiry_ms(ex));
    args_addl(&a, ttl_ms(ex));
    call(ex, "bx_drain", &a, drain_done);
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
        finish_http(ex, ex->d->cfg->duplicateMetaConnectHttpResponseCode);
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
        if (why == PEND_WAKE && push_allowed(ex))
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
void bx_exchange_expire(bx_exchange *ex) { event(ex, PEND_EXPIRE); }
void bx_exchange_abandon(bx_exchange *ex) { event(ex, PEND_ABANDON); }
void bx_exchange_superseded(bx_exchange *ex) { event(ex, PEND_SUPER); }
void bx_exchange_disconnected(bx_exchange *ex) { event(ex, PEND_NONE); }
void bx_exchange_shutdown(bx_exchange *ex) { event(ex, PEND_SHUTDOWN); }

/* ---- session check, then a local answer --------------------------- */

static void touch_done(bx_exchange *ex, const redisReply *r)
{
    if (!r) {
        reply_broker_down(ex, "touch");
    } else if (is_status(r, "unknown")) {
        reply_unknown(ex, 0);
    } else if (ex->local_error) {
        reply_fail(ex, ex->local_error);
    } else {
        bx_reply_ok(reply(ex));
    }
    bx_debug("%s c=%s: %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
             !r ? "broker down" : is_status(r, "unknown") ? "session unknown → 402"
             : ex->local_error ? ex->local_error : "ok (not broadcast, no service)");
    ex->local_error = NULL;
    complete(ex);
}

/* Check the session (bx_touch), then answer with error (NULL: success). */
static void touch_then(bx_exchange *ex, const char *cid, const char *error)
{
    args a = {0};
    ex->local_error = error;
    session_args(ex, &a, cid);
    call(ex, "bx_touch", &a, touch_done);
}

/* ---- services (h7: shared/service.h) -------------------------------- */

/* The handler ended: its reply message joins the deliveries, its error fails the publish. */
static void service_end(bx_service_call *c, void *arg)
{
    bx_exchange *ex = arg;
    const char *error = bx_service_call_error(c);
    json_t *m = bx_service_call_take_reply(c);
    if (error) {
        reply_fail(ex, error);
        json_decref(m);
    } else {
        bx_reply_ok(reply(ex));
        if (m)
            deliver(ex, m);
    }
    bx_debug("%s c=%s: service %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
             error ? error : m ? "replied to the caller" : "done");
    bx_service_call_free(c);
    ex->svc = NULL;
    ex->busy = 0;
    complete(ex);
}

static void service_touch_done(bx_exchange *ex, const redisReply *r)
{
    char err[160] = "";
    if (!r || is_status(r, "unknown") || !is_status(r, "ok")) {
        if (!r)
            reply_broker_down(ex, "service");
        else if (is_status(r, "unknown"))
            reply_unknown(ex, 0);
        else
            reply_fail(ex, BX_SERVICE_FAILED);
        bx_debug("%s c=%s: %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
                 !r ? "broker down" : is_status(r, "unknown") ? "session unknown → 402" : "unexpected broker reply");
        complete(ex);
        return;
    }
    const char *user = rstr(r, 1, NULL);
    bx_service_ctx ctx = { ex->d->store, bx_msg_client_id(ex->cur.msg), user ? user : "",
                           topts(ex)->maxQueue, ttl_ms(ex) };
    ex->svc = bx_service_call_new(ex->d->services, ex->cur.msg, &ctx, service_end, ex, err, sizeof err);
    if (!ex->svc) {
        bx_error("%s: %s", ex->cur.channel, err);
        reply_fail(ex, BX_SERVICE_FAILED);
        complete(ex);
        return;
    }
    ex->busy = 1; /* the handler may hold broker calls: the exchange must not be freed under it */
    bx_service_call_run(ex->svc);
}

/* Session check that also returns the session's user, then the handler. */
static void service_touch(bx_exchange *ex, const char *cid)
{
    args a = {0};
    session_args(ex, &a, cid);
    call(ex, "bx_service_touch", &a, service_touch_done);
}

/* ---- security policy: channel authorizers (h7, auth.h) --------------- */

typedef void resume_fn(bx_exchange *ex);

static void ident_clear(bx_exchange *ex)
{
    free(ex->ident_user);
    free(ex->ident_roles);
    ex->ident_user = ex->ident_roles = NULL;
    ex->ident_cid[0] = 0;
}

static void ident_done(bx_exchange *ex, const redisReply *r)
{
    const char *user = rstr(r, 2, NULL), *roles = rstr(r, 3, NULL);
    if (!r || !is_status(r, "ok") || !user || !roles) {
        if (!r)
            reply_broker_down(ex, "session identity");
        else
            reply_unknown(ex, 0);
        bx_debug("%s c=%s: identity for the security policy: %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
                 !r ? "broker down" : "session unknown → 402");
        complete(ex);
        return;
    }
    ident_clear(ex);
    ex->ident_auth = rint_at(r, 1) == 1;
    ex->ident_user = strdup(user);
    ex->ident_roles = strdup(roles);
    if (!ex->ident_user || !ex->ident_roles) {
        ident_clear(ex);
        reply_broker_down(ex, "out of memory");
        complete(ex);
        return;
    }
    snprintf(ex->ident_cid, sizeof ex->ident_cid, "%s", bx_msg_client_id(ex->cur.msg));
    ex->k = NULL;
    ex->ident_resume(ex); /* the same message again, now with the identity */
}

/* 1 when the identity of cid is at hand (or not needed for ops on these channels), else 0 after starting
 * to load it: resume runs the message again once it is there. */
static int identity_ready(bx_exchange *ex, const char *cid, char *const *channels, int ops, resume_fn *resume)
{
    int need = 0;
    for (size_t i = 0; channels[i] && !need; i++)
        need = bx_auth_needs_identity(ex->d->auth, channels[i], ops);
    if (!need || strcmp(ex->ident_cid, cid) == 0)
        return 1;
    args a = {0};
    args_add(&a, cid);
    args_add(&a, session_browser(ex));
    ex->ident_resume = resume;
    call(ex, "bx_session_auth", &a, ident_done);
    return 0;
}

/* The denial error for op on channel, NULL when allowed (create first, as CometD's SecurityPolicy). */
static const char *policy_error(bx_exchange *ex, const char *channel, bx_auth_op op)
{
    bx_identity id = { ex->ident_auth, ex->ident_user ? ex->ident_user : "", ex->ident_roles ? ex->ident_roles : "" };
    const char *error = !bx_auth_allows(ex->d->auth, channel, BX_OP_CREATE, &id) ? BX_ERR_CREATE_DENIED
                      : bx_auth_allows(ex->d->auth, channel, op, &id) ? NULL
                      : op == BX_OP_SUBSCRIBE ? BX_ERR_SUBSCRIBE_DENIED : BX_ERR_PUBLISH_DENIED;
    if (error)
        bx_info("%s c=%s: %s by the security policy (user '%.64s', %s)", channel, bx_msg_client_id(ex->cur.msg),
                error, id.user, id.authenticated ? "authenticated" : "anonymous");
    return error;
}

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
        reply_broker_down(ex, ex->cur.channel);
    } else if (is_status(r, "unknown")) {
        reply_unknown(ex, 0);
    } else if (strcmp(ex->cur.channel, "/meta/unsubscribe") == 0 && rint_at(r, 1) > 0) {
        bx_debug("unsubscribe c=%s: element %lld has no subscribers → 400", cid, rint_at(r, 1));
        reply_fail(ex, BX_ERR_CHANNEL_MISSING);
    } else if (ex->local_error) {
        reply_fail(ex, ex->local_error);
    } else {
        bx_reply_ok(reply(ex));
    }
    bx_debug("%s c=%s: %s", ex->cur.channel, cid, json_is_true(json_object_get(reply(ex), "successful"))
             ? "ok" : json_string_value(json_object_get(reply(ex), "error")));
    ex->local_error = NULL;
    complete(ex);
}

static void do_subscribe(bx_exchange *ex);

static void do_subscription(bx_exchange *ex, int subscribe)
{
    const char *cid = session_cid(ex);
    char **list = NULL;
    if (!cid) {
        bx_debug("%s: clientId missing/invalid or no browser cookie → 402", ex->cur.channel);
        reply_unknown(ex, 0);
        complete(ex);
        return;
    }
    const char *error = subscription_list(ex->cur.msg, &list);
    /* >>> security policy hook (h7) */
    if (subscribe && !error && !identity_ready(ex, cid, list, BX_OP_CREATE | BX_OP_SUBSCRIBE, do_subscribe)) {
        bx_channel_wildcards_free(list);
        return;
    }
    /* <<< security policy hook */
    args a = {0};
    session_args(ex, &a, cid);
    int base = a.n;
    for (size_t i = 0; list && list[i] && !error; i++) {
        bx_channel_class cls = bx_channel_classify(list[i]);
        if (cls == BX_CH_META)
            error = !subscribe ? BX_ERR_UNSUBSCRIBE_FAILED
                  : meta_exists(list[i]) ? BX_ERR_SUBSCRIBE_DENIED : BX_ERR_CREATE_DENIED;
        else if (cls == BX_CH_BROADCAST && subscribe && (error = policy_error(ex, list[i], BX_OP_SUBSCRIBE)))
            break; /* security policy (h7): stops here like any failed element */
        else if (cls == BX_CH_BROADCAST)
            args_add(&a, list[i]);
        /* service channels: success, not recorded (never broadcast) */
    }
    bx_channel_wildcards_free(list);
    /* A failed element (meta channel, security policy) stops processing and the elements before it
     * stay (un)subscribed, as CometD does (bayeux-notes §2.9, §2.10). */
    if (a.n == base) {
        args_free(&a);
        touch_then(ex, cid, error);
        return;
    }
    ex->local_error = error;
    call(ex, subscribe ? "bx_subscribe" : "bx_unsubscribe", &a, subscribe_done);
}

/* ---- publish -------------------------------------------------------- */

/* Reply of a broker call whose only outcomes are ok / unknown session / broker down. */
static void answer_status(bx_exchange *ex, const redisReply *r)
{
    if (!r)
        reply_broker_down(ex, ex->cur.channel);
    else if (is_status(r, "unknown"))
        reply_unknown(ex, 0);
    else
        bx_reply_ok(reply(ex));
}

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
        fail_broker_down(c->reply);
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

static void deferred_send(bx_exchange *ex)
{
    args a = ex->deferred.a;
    memset(&ex->deferred.a, 0, sizeof ex->deferred.a);
    call(ex, ex->deferred.fn, &a, ex->deferred.k);
}

/* Send the grouped broadcasts in one bx_publish_batch; then() runs once they are answered. */
static void group_flush(bx_exchange *ex, void (*then)(bx_exchange *ex))
{
    const bx_config *cfg = ex->d->cfg;
    args a = {0};
    args_add(&a, ex->group.cid);
    args_add(&a, session_browser(ex));
    args_addl(&a, topts(ex)->maxInterval);
    args_addl(&a, ttl_ms(ex));
    args_addl(&a, cfg->broadcastToPublisher);
    args_addl(&a, topts(ex)->maxQueue);
    args_addl(&a, (long long)ex->group.n);
    for (int i = 0; i < ex->group.a.n; i++)
        args_add(&a, ex->group.a.v[i]);
    args_free(&ex->group.a);
    memset(&ex->group.a, 0, sizeof ex->group.a);
    ex->group.then = then;
    ex->group.sent = ex->group.n;
    ex->group.n = 0; /* call() must not see a group: this is it */
    ex->group.bytes = 0;
    call(ex, "bx_publish_batch", &a, group_done);
}

/* Queue this broadcast in the batch's group (answered with the group); a group of another
 * publisher, or a full one, is sent first. */
static void broadcast(bx_exchange *ex, const char *cid, const char *name)
{
    if (ex->group.n > 0 && strcmp(ex->group.cid, cid) != 0) {
        group_flush(ex, do_publish); /* this message is handled again after the group */
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
        reply_broker_down(ex, "out of memory");
        complete(ex);
        return;
    }
    size_t nwild = 0;
    while (wild[nwild])
        nwild++;
    /* the message id lets the broker drop a replayed request (nginx retries an unanswered POST) */
    const char *mid = bx_msg_id(ex->cur.msg);
    args *a = &ex->group.a;
    args_add(a, name);
    args_add(a, text);
    args_add(a, mid_usable(mid) ? mid : "");
    args_addl(a, (long long)nwild);
    for (size_t i = 0; i < nwild; i++)
        args_add(a, wild[i]);
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
        group_flush(ex, run);
    else
        run(ex);
}

static void do_publish(bx_exchange *ex)
{
    const char *cid = session_cid(ex);
    if (!cid) {
        bx_debug("publish %s: clientId missing/invalid or no browser cookie → 402", ex->cur.channel);
        reply_unknown(ex, 0);
        complete(ex);
        return;
    }
    char *name = strdup(ex->cur.channel);
    if (!name || !bx_channel_valid(bx_channel_normalize(name))) {
        free(name);
        reply_fail(ex, BX_ERR_CHANNEL_INVALID);
        complete(ex);
        return;
    }
    /* >>> security policy hook (h7) */
    char *one[] = { name, NULL };
    if (bx_channel_classify(name) != BX_CH_META) {
        if (!identity_ready(ex, cid, one, BX_OP_CREATE | BX_OP_PUBLISH, do_publish)) {
            free(name);
            return;
        }
        const char *denied = policy_error(ex, name, BX_OP_PUBLISH);
        if (denied) {
            free(name);
            touch_then(ex, cid, denied);
            return;
        }
    }
    /* <<< security policy hook */
    switch (bx_channel_classify(name)) {
    case BX_CH_META:
        touch_then(ex, cid, BX_ERR_CHANNEL_CREATE_DENIED);
        break;
    case BX_CH_SERVICE:
        /* >>> services hook (h7, shared/service.h): registered channels run their handler */
        if (bx_services_has(ex->d->services, name))
            service_touch(ex, cid);
        else
            touch_then(ex, cid, NULL);
        /* <<< services hook */
        break;
    default:
        broadcast(ex, cid, name);
    }
    free(name);
}

static void do_subscribe(bx_exchange *ex)
{
    do_subscription(ex, 1);
}

/* ---- /meta/disconnect ----------------------------------------------- */

static void disconnect_done(bx_exchange *ex, const redisReply *r)
{
    answer_status(ex, r);
    bx_debug("disconnect c=%s: %s", bx_msg_client_id(ex->cur.msg), !r ? "broker down" : rstatus(r));
    complete(ex);
}

static void do_disconnect(bx_exchange *ex)
{
    const char *cid = session_cid(ex);
    if (!cid) {
        bx_debug("disconnect: clientId missing/invalid or no browser cookie → 402");
        reply_unknown(ex, 0);
        complete(ex);
        return;
    }
    args a = {0};
    args_add(&a, cid);
    args_add(&a, session_browser(ex));
    call(ex, "bx_disconnect", &a, disconnect_done);
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
        reply_fail(ex, error);
        complete(ex);
        return;
    }
    for (size_t i = 0; i < d->n_ext; i++) {
        if (d->exts[i]->incoming && d->exts[i]->incoming(&ex->cur) < 0) {
            bx_debug("message %zu on %s deleted by extension %s", ex->next, ex->cur.channel, d->exts[i]->name);
            reply_fail(ex, BX_ERR_MESSAGE_DELETED);
            complete(ex);
            return;
        }
    }
    const char *ch = ex->cur.channel;
    if (strcmp(ch, "/meta/handshake") == 0)
        do_handshake(ex);
    else if (strcmp(ch, "/meta/connect") == 0)
        do_connect(ex);
    else if (strcmp(ch, "/meta/subscribe") == 0)
        do_subscription(ex, 1);
    else if (strcmp(ch, "/meta/unsubscribe") == 0)
        do_subscription(ex, 0);
    else if (strcmp(ch, "/meta/disconnect") == 0)
        do_disconnect(ex);
    else
        do_publish(ex);
}

/* Process messages until one waits for the broker or parks; finish after the last. */
static void run(bx_exchange *ex)
{
    if (ex->running)
        return;
    ex->running = 1;
    while (!ex->busy && !ex->parked && !ex->done && ex->next < ex->batch.n)
        start_message(ex);
    ex->running = 0;
    if (!ex->busy && !ex->parked && !ex->done && ex->next >= ex->batch.n) {
        if (ex->group.n > 0)
            group_flush(ex, run);
        else
            finish(ex, BX_EX_REPLY);
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
    args_free(&d->confirms);
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
    run(ex);
}

void bx_exchange_free(bx_exchange *ex)
{
    if (!ex)
        return;
    if (ex->busy)
        bx_error("exchange %s freed with a broker call in flight", ex->token); /* a bug: never happens */
    ex->d->live--;
    bx_service_call_free(ex->svc); /* a handler still running is detached, its end ignored */
    ident_clear(ex);
    free(ex->authorization);
    bx_batch_free(&ex->batch);
    json_decref(ex->cur.reply);
    args_free(&ex->group.a);
    free(ex->group.ctx);
    args_free(&ex->deferred.a);
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

/* Send the gathered (cid, batch) pairs in one bx_confirm. */
static void confirm_flush(bx_dispatch *d)
{
    args *a = &d->confirms;
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
    args_free(a);
    memset(a, 0, sizeof *a);
}

void bx_dispatch_confirm(bx_dispatch *d, const char *cid, long long batch)
{
    if (batch <= 0 || !cid[0] || d->closed)
        return;
    args_add(&d->confirms, cid);
    args_addl(&d->confirms, batch);
    if (!d->gather)
        confirm_flush(d);
}

void bx_exchange_confirm(bx_exchange *ex)
{
    bx_dispatch_confirm(ex->d, ex->cid, ex->confirm_batch);
    ex->confirm_batch = 0;
}

/* ---- wake-up payloads -------------------------------------------------- */

/* A message of a "p" payload's pool (borrowed from the payload). */
typedef struct pooled {
    const char *s;
    size_t len;
} pooled;

/* Messages pushed for a parked poll: they are in its in-flight list as batch. A poll that is
 * idle and parked is answered with them now; any other state drains instead (bx_drain knows
 * the pushed token), so nothing depends on this wake-up arriving. */
static void exchange_push(bx_exchange *ex, long long batch, const pooled *pool, const size_t *idx, size_t n)
{
    if (ex->done)
        return;
    if (!ex->parked || ex->busy || ex->pend) {
        bx_debug("connect c=%s token %s: pushed batch %lld while %s → drain", ex->cid, ex->token, batch,
                 ex->busy ? "a broker call is in flight" : !ex->parked ? "not parked yet" : "events pending");
        event(ex, PEND_WAKE);
        return;
    }
    for (size_t i = 0; i < n; i++)
        deliver_text(ex, pool[idx[i]].s, pool[idx[i]].len, i);
    if (n > 0)
        bx_count_queue_depth(n); /* the session's whole queue (queue and in-flight were empty), for the metrics */
    json_t *advice = ex->advice_due ? full_advice(ex) : NULL;
    bx_debug("connect c=%s token %s released (push): %zu messages, batch %lld", ex->cid, ex->token,
             ex->deliveries.n, batch);
    connect_reply(ex, batch, advice);
}

/* Parse an unsigned decimal at *p (< end) up to a delimiter; -1 when malformed or huge. */
static long long parse_num(const char **p, const char *end)
{
    long long v = 0;
    const char *s = *p;
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > 100000000000000LL)
            return -1;
        v = v * 10 + (*s++ - '0');
    }
    if (s == *p)
        return -1;
    *p = s;
    return v;
}

/* Read one space-free word at *p into out (at most cap-1 chars); 0 when malformed. */
static int parse_word(const char **p, const char *end, char *out, size_t cap)
{
    const char *s = *p;
    while (s < end && *s != ' ' && *s != '\n')
        s++;
    size_t n = (size_t)(s - *p);
    if (n == 0 || n >= cap)
        return 0;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p = s;
    return 1;
}

/* "p <npool> <nsess>\n" <len>:<message>... ("\n<cid> <token> <batch> <i,j,...>")... */
static void wake_push(const char *payload, size_t len, bx_exchange_find_fn *find, void *arg)
{
    const char *p = payload + 2, *end = payload + len;
    bx_dispatch *d = NULL; /* the polls' dispatch, once one is found: its confirms are gathered */
    long long npool = parse_num(&p, end);
    long long nsess = (p < end && *p == ' ') ? (p++, parse_num(&p, end)) : -1;
    /* every pool entry takes at least 3 bytes, every session line at least 8 */
    if (npool < 0 || nsess < 0 || p >= end || *p++ != '\n' || npool > (long long)len / 3 ||
        nsess > (long long)len / 8) {
        bx_warn("push wake-up payload not understood (%zu bytes)", len);
        return;
    }
    pooled *pool = calloc((size_t)npool + 1, sizeof *pool);
    /* a session lists one index per message; the same text published twice is one pool entry listed
     * twice, so a session can list more indexes than the pool has entries: idx grows as needed */
    size_t cap = (size_t)npool + 1;
    size_t *idx = calloc(cap, sizeof *idx);
    if (!pool || !idx) {
        bx_error("out of memory reading a push wake-up of %zu bytes: its polls are drained at their timeout", len);
        free(pool);
        free(idx);
        return;
    }
    for (long long i = 0; i < npool; i++) {
        long long n = parse_num(&p, end);
        if (n < 1 || p >= end || *p++ != ':' || n > end - p) {
            bx_warn("push wake-up: pool entry %lld malformed", i + 1);
            goto out;
        }
        pool[i].s = p;
        pool[i].len = (size_t)n;
        p += n;
    }
    for (long long i = 0; i < nsess; i++) {
        char cid[BX_ID_MAX_LEN + 1], token[BX_ID_MAX_LEN + 1];
        long long batch;
        size_t n = 0;
        int ok = p < end && *p++ == '\n' && parse_word(&p, end, cid, sizeof cid) && p < end && *p++ == ' ' &&
                 parse_word(&p, end, token, sizeof token) && p < end && *p++ == ' ' &&
                 (batch = parse_num(&p, end)) >= 1 && p < end && *p++ == ' ';
        while (ok) {
            long long j = parse_num(&p, end);
            if (j < 1 || j > npool) {
                ok = 0;
                break;
            }
            if (n == cap) {
                size_t *more = realloc(idx, 2 * cap * sizeof *idx);
                if (!more) {
                    bx_error("out of memory reading a push wake-up: its polls are drained at their timeout");
                    goto out;
                }
                idx = more;
                cap *= 2;
            }
            idx[n++] = (size_t)(j - 1);
            if (p < end && *p == ',')
                p++;
            else
                break;
        }
        if (!ok) {
            bx_warn("push wake-up: session entry %lld malformed", i + 1);
            goto out;
        }
        bx_exchange *ex = find('t', token, arg);
        if (!ex || strcmp(ex->cid, cid) != 0) {
            bx_debug("push wake-up for c=%s token %s: nothing parked here (its batch %lld stays in-flight)", cid,
                     token, batch);
            continue;
        }
        if (!d) {
            d = ex->d;
            d->gather = 1;
        }
        exchange_push(ex, batch, pool, idx, n); /* may free ex */
    }
out:
    if (d) {
        d->gather = 0;
        confirm_flush(d);
    }
    free(pool);
    free(idx);
}

void bx_dispatch_wake(const char *payload, size_t len, bx_exchange_find_fn *find, void *arg)
{
    if (len >= 2 && payload[0] == 'p' && payload[1] == ' ') {
        wake_push(payload, len, find, arg);
        return;
    }
    if (len < 3 || payload[1] != ' ') {
        bx_warn("wake-up payload not understood (%zu bytes)", len);
        return;
    }
    char kind = payload[0];
    size_t i = 2;
    while (i < len) {
        size_t j = i;
        while (j < len && payload[j] != ' ')
            j++;
        char key[BX_ID_MAX_LEN + 1];
        if (j - i > 0 && j - i <= BX_ID_MAX_LEN) {
            memcpy(key, payload + i, j - i);
            key[j - i] = '\0';
            bx_exchange *ex = find(kind == 'w' ? 'c' : 't', key, arg);
            if (!ex)
                bx_debug("wake-up '%c %s': nothing parked here (already answered)", kind, key);
            else if (kind == 'w')
                bx_exchange_wake(ex);
            else if (kind == 's')
                bx_exchange_superseded(ex);
            else if (kind == 'd')
                bx_exchange_disconnected(ex);
        }
        i = j + 1;
    }
}
