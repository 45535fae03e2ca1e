/* dispatch_int.h — internals shared by the parts of the dispatch pipeline (not for transports: they use
 * dispatch.h). The pipeline is split by concern:
 *   dispatch.c   the loop, broker calls, replies, deliveries, session check, the public bx_dispatch_* and
 *                bx_exchange_* API, confirms
 *   session.c    /meta/handshake (with its JWT identity) and /meta/disconnect
 *   connect.c    /meta/connect: held connects, drains, websocket push, events of a parked exchange
 *   subscribe.c  /meta/subscribe and /meta/unsubscribe
 *   publish.c    publish: services, grouped broadcasts (bx_publish_batch)
 *   authorize.c  channel authorizers of the security policy (auth.h)
 *   wake.c       the wake-up channel's payloads (bx_dispatch_wake)
 * Every function here takes the exchange (or dispatch) it works on and returns nothing to free unless
 * its comment says so. Threading: everything runs on the thread of the store's event base. */
#ifndef BX_DISPATCH_INT_H
#define BX_DISPATCH_INT_H

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clientid.h"
#include "dispatch.h"
#include "ext/ext.h"
#include "service.h"

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

/* Argument vector for one FCALL; strings owned here, freed by bx_dx_args_free. */
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
    /* bx_dispatch_gather_confirms: confirms wait for the loop's next pass (scheduled: a flush is due;
     * the wait counts in live so a stopping server sends them) */
    void (*confirm_schedule)(void *arg);
    void *confirm_schedule_arg;
    int confirm_scheduled;
    /* Connects that arrived while a bx_connect_batch was in flight (connect.c), oldest first: sent in
     * one call when it is answered. After a publish answers hundreds of polls their reconnects
     * arrive together, and one FCALL per connect made them queue in Redis (the p99 tail). */
    struct {
        bx_exchange *head, *tail;
        int inflight; /* bx_connect_batch calls not answered yet */
    } gathered;
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
    int running;         /* inside bx_dx_run(): do not re-enter */
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
    /* A held websocket connect to which publishes push (broker/API.md "Wake-up channel"): the session's
     * batch number as this exchange last heard it, the last batch it wrote as frames, and whether it
     * missed a pushed batch (then it drains, skipping what it wrote, so nothing comes out of order). */
    long long bn_known, framed;
    int need_drain;
    args connect_args;   /* a gathered connect's bx_connect arguments, until its batch is sent */
    bx_exchange *gathered_next;
    /* Broadcasts of this batch waiting to go to the broker together (see broadcast in publish.c): one
     * bx_publish_batch means one RPUSH and at most one wake-up per recipient per batch. */
    struct {
        args a;              /* per message: channel text mid nwild wildcard... */
        bx_msgctx *ctx;      /* the grouped messages; their replies are already in ex->replies */
        size_t n, cap, bytes;
        size_t sent;         /* messages of the group in flight */
        void (*then)(bx_exchange *ex); /* runs once the group in flight is answered */
        char cid[BX_ID_MAX_LEN + 1];
    } group;
    /* A broker call held back until the group is answered (bx_dx_call() sends the group first). */
    struct {
        const char *fn;
        args a;
        step_fn *k;
    } deferred;
};

/* A step to run again once a session's identity is loaded (bx_dx_identity_ready). */
typedef void resume_fn(bx_exchange *ex);

/* A message of a "p" payload's pool (borrowed from the payload). */
typedef struct pooled {
    const char *s;
    size_t len;
} pooled;

/* ---- small helpers (inline: every part uses them) ---------------------- */

static inline const bx_transport_opts *topts(const bx_exchange *ex)
{
    return &ex->d->cfg->tr[ex->info.transport];
}

static inline long expiry_ms(const bx_exchange *ex)
{
    return topts(ex)->interval + topts(ex)->maxInterval;
}

/* Safety-net TTL of every session key: longer than any legitimate gap between touches. */
static inline long ttl_ms(const bx_exchange *ex)
{
    return 2 * (topts(ex)->timeout + expiry_ms(ex)) + 60000;
}

static inline const char *rstr(const redisReply *r, size_t i, size_t *len)
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

static inline long long rint_at(const redisReply *r, size_t i)
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
static inline const char *rstatus(const redisReply *r)
{
    if (!r)
        return NULL;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return r->str;
    return rstr(r, 0, NULL);
}

static inline int is_status(const redisReply *r, const char *s)
{
    const char *st = rstatus(r);
    return st && strcmp(st, s) == 0;
}

/* The current message's reply (owned by the exchange). */
static inline json_t *reply(bx_exchange *ex)
{
    return ex->cur.reply;
}

/* ---- dispatch.c: argument vectors ------------------------------------ */

/* Append a copy of s to a (a->oom set on failure: the call is then not sent). */
void bx_dx_args_add(args *a, const char *s);
/* Append x in decimal to a. */
void bx_dx_args_addl(args *a, long long x);
/* Free a's strings and arrays (a itself is the caller's). */
void bx_dx_args_free(args *a);

/* ---- dispatch.c: replies (on the current message's reply, owned by the exchange) ---- */

/* Fail the current reply with error (a static string). */
void bx_dx_reply_fail(bx_exchange *ex, const char *error);
/* Set advice on the current reply; steals advice, NULL sets none. */
void bx_dx_set_advice(bx_exchange *ex, json_t *advice);
/* Fail with 402::session_unknown, plus the handshake advice when with_advice. */
void bx_dx_reply_unknown(bx_exchange *ex, int with_advice);
/* Fail reply (borrowed) with 503::broker_unavailable and retry advice. */
void bx_dx_fail_broker_down(json_t *reply);
/* Fail the current reply as broker down; why (borrowed, may be NULL) is logged. */
void bx_dx_reply_broker_down(bx_exchange *ex, const char *why);
/* Full advice of ex's transport; new reference, the caller owns it. */
json_t *bx_dx_full_advice(const bx_exchange *ex);

/* ---- dispatch.c: pipeline -------------------------------------------- */

/* Process messages until one waits for the broker or parks; finish after the last (may free ex). */
void bx_dx_run(bx_exchange *ex);
/* Final state st reported to the transport, which may free ex inside this call. */
void bx_dx_finish(bx_exchange *ex, bx_ex_state st);
/* Final state HTTP_ERROR with status (may free ex). */
void bx_dx_finish_http(bx_exchange *ex, int status);
/* One broker call fn with the arguments of *a (taken: *a is emptied); k runs exactly once (may be now). */
void bx_dx_call(bx_exchange *ex, const char *fn, args *a, step_fn *k);
/* The answer to ex's broker call in flight (r NULL: failed, err says why): clears busy, runs ex->k
 * once; ex may be freed when it returns. For calls that carry several exchanges (connect.c). */
void bx_dx_store_reply(const redisReply *r, const char *err, void *ex);
/* The current message is answered: outgoing extensions, next message (may free ex). */
void bx_dx_complete(bx_exchange *ex);
/* Browser argument of session calls, borrowed from ex: "" not checked, NULL the request owns no session. */
const char *bx_dx_session_browser(const bx_exchange *ex);
/* clientId of the current message (borrowed) if it can name a session, else NULL. */
const char *bx_dx_session_cid(const bx_exchange *ex);
/* Append the arguments of a session check (cid copied) to a. */
void bx_dx_session_args(bx_exchange *ex, args *a, const char *cid);
/* Check session cid (bx_touch), then answer with error (static string; NULL success), may free ex. */
void bx_dx_touch_then(bx_exchange *ex, const char *cid, const char *error);
/* bx_store_fcall for a call of d's exchanges; the confirms gathered by bx_dispatch_gather_confirms go
 * first, so a confirm never reaches Redis after a later call for its session. Same ownership as
 * bx_store_fcall. */
int bx_dx_fcall(bx_dispatch *d, const char *fn, int argc, const char **argv, const size_t *lens, bx_store_cb *cb,
                void *arg, char *err, size_t errlen);
/* Send the gathered confirms of d in one bx_confirm (fire and forget). */
void bx_dx_confirm_flush(bx_dispatch *d);

/* ---- dispatch.c: deliveries (owned by the exchange until written) ---- */

/* Forget the texts of t, keeping its arrays for reuse. */
void bx_dx_texts_clear(texts *t);
/* Add message m for the client (steals m). */
void bx_dx_deliver(bx_exchange *ex, json_t *m);
/* Add a queued message as JSON text s (copied; borrowed from the caller); i is its index, for the log. */
void bx_dx_deliver_text(bx_exchange *ex, const char *s, size_t len, size_t i);
/* Add the messages r[from..] (r borrowed) to the deliveries. */
void bx_dx_add_deliveries(bx_exchange *ex, const redisReply *r, size_t from);

/* ---- the steps of each channel (session.c, connect.c, subscribe.c, publish.c) ---- */

/* /meta/handshake of the current message (session.c). */
void bx_dx_do_handshake(bx_exchange *ex);
/* /meta/disconnect of the current message (session.c). */
void bx_dx_do_disconnect(bx_exchange *ex);
/* /meta/connect of the current message; may park ex (connect.c). */
void bx_dx_do_connect(bx_exchange *ex);
/* Answer a parked poll with the pushed messages pool[idx[0..n)] (borrowed: copied), batch `batch`,
 * or drain when it is not idle (connect.c, may free ex). prev >= 0: a held websocket connect that stays
 * held; the session's batch before this one (a mismatch means a pushed batch was missed: drain). */
void bx_dx_exchange_push(bx_exchange *ex, long long batch, long long prev, const pooled *pool, const size_t *idx,
                         size_t n);
/* /meta/subscribe (subscribe=1) or /meta/unsubscribe (0) of the current message (subscribe.c). */
void bx_dx_do_subscription(bx_exchange *ex, int subscribe);
/* Publish of the current message: broadcast, service or denial (publish.c). */
void bx_dx_do_publish(bx_exchange *ex);
/* Send the grouped broadcasts in one bx_publish_batch; then(ex) runs once they are answered (publish.c). */
void bx_dx_group_flush(bx_exchange *ex, void (*then)(bx_exchange *ex));

/* ---- authorize.c: channel authorizers --------------------------------- */

/* Forget the loaded identity (frees its strings). */
void bx_dx_ident_clear(bx_exchange *ex);
/* 1 when the identity of cid (borrowed) is at hand or not needed for ops on channels (borrowed,
 * NULL-terminated); else 0 after starting to load it: resume(ex) runs once it is there. */
int bx_dx_identity_ready(bx_exchange *ex, const char *cid, char *const *channels, int ops, resume_fn *resume);
/* Denial error (static string) for op on channel, NULL when allowed. */
const char *bx_dx_policy_error(bx_exchange *ex, const char *channel, bx_auth_op op);

#endif
