/* service.c — the service registry and the life of one service call.
 *
 * A call is ended once by its handler; broker calls it started may still be in flight
 * then, so the call is reference counted: each in-flight bx_service_fcall holds a
 * reference, and a callback arriving after the call ended is dropped (logged). */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "dispatch.h"
#include "log.h"
#include "message.h"

typedef struct entry {
    char *channel;
    bx_service_fn *fn;
    void *arg;
} entry;

struct bx_services {
    entry *v;
    size_t n, cap;
};

struct bx_service_call {
    const entry *svc;
    const json_t *msg;
    bx_store *store;
    char *cid, *user;
    long max_queue, ttl_ms;
    bx_service_end_fn *end;
    void *end_arg;
    char *error;
    json_t *reply;
    int ended, freed, failed;
    int refs; /* 1 for the dispatch side + 1 per broker call in flight */
};

/* ---- registry ---- */

bx_services *bx_services_new(void)
{
    return calloc(1, sizeof(bx_services));
}

void bx_services_free(bx_services *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].channel);
    free(s->v);
    free(s);
}

static entry *find(const bx_services *s, const char *channel)
{
    for (size_t i = 0; s && channel && i < s->n; i++)
        if (strcmp(s->v[i].channel, channel) == 0)
            return &s->v[i];
    return NULL;
}

int bx_services_add(bx_services *s, const char *channel, bx_service_fn *fn, void *arg, char *err, size_t errlen)
{
    if (!s || !fn || !channel || !bx_channel_valid(channel) || bx_channel_classify(channel) != BX_CH_SERVICE
        || strchr(channel, '*') || channel[strlen(channel) - 1] == '/') {
        snprintf(err, errlen, "service channel '%s': not a /service/ channel name without wildcards",
                 channel ? channel : "(null)");
        return -1;
    }
    entry *e = find(s, channel);
    if (!e) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 8;
            entry *v = realloc(s->v, cap * sizeof *v);
            if (!v) {
                snprintf(err, errlen, "service %s: out of memory", channel);
                return -1;
            }
            s->v = v;
            s->cap = cap;
        }
        char *name = strdup(channel);
        if (!name) {
            snprintf(err, errlen, "service %s: out of memory", channel);
            return -1;
        }
        e = &s->v[s->n++];
        e->channel = name;
    }
    e->fn = fn;
    e->arg = arg;
    return 0;
}

int bx_services_has(const bx_services *s, const char *channel)
{
    return find(s, channel) != NULL;
}

/* ---- call ---- */

bx_service_call *bx_service_call_new(const bx_services *s, const json_t *msg, const bx_service_ctx *ctx,
                                     bx_service_end_fn *end, void *arg, char *err, size_t errlen)
{
    const entry *e = find(s, bx_msg_channel(msg));
    if (!e) {
        snprintf(err, errlen, "no service on %s", bx_msg_channel(msg) ? bx_msg_channel(msg) : "(none)");
        return NULL;
    }
    bx_service_call *c = calloc(1, sizeof *c);
    if (c) {
        c->cid = strdup(ctx->client_id ? ctx->client_id : "");
        c->user = strdup(ctx->user ? ctx->user : "");
    }
    if (!c || !c->cid || !c->user) {
        if (c) {
            free(c->cid);
            free(c->user);
        }
        free(c);
        snprintf(err, errlen, "service %s: out of memory", e->channel);
        return NULL;
    }
    c->svc = e;
    c->msg = msg;
    c->store = ctx->store;
    c->max_queue = ctx->max_queue;
    c->ttl_ms = ctx->ttl_ms;
    c->end = end;
    c->end_arg = arg;
    c->refs = 1;
    return c;
}

void bx_service_call_run(bx_service_call *c)
{
    c->svc->fn(c, c->svc->arg);
}

static void unref(bx_service_call *c)
{
    if (--c->refs > 0)
        return;
    free(c->cid);
    free(c->user);
    free(c->error);
    json_decref(c->reply);
    free(c);
}

void bx_service_call_free(bx_service_call *c)
{
    if (!c)
        return;
    c->freed = 1;
    unref(c);
}

const char *bx_service_call_error(const bx_service_call *c)
{
    return !c->failed ? NULL : c->error ? c->error : BX_SERVICE_FAILED;
}

json_t *bx_service_call_take_reply(bx_service_call *c)
{
    json_t *r = c->reply;
    c->reply = NULL;
    return r;
}

const char *bx_service_channel(const bx_service_call *c) { return c->svc->channel; }
const json_t *bx_service_message(const bx_service_call *c) { return c->msg; }
const json_t *bx_service_data(const bx_service_call *c) { return json_object_get(c->msg, "data"); }
const char *bx_service_client_id(const bx_service_call *c) { return c->cid; }
const char *bx_service_user(const bx_service_call *c) { return c->user; }
long bx_service_max_queue(const bx_service_call *c) { return c->max_queue; }
long bx_service_ttl_ms(const bx_service_call *c) { return c->ttl_ms; }

static void end_call(bx_service_call *c)
{
    if (c->ended) {
        bx_error("service %s: handler ended the call twice (ignored)", c->svc->channel);
        return;
    }
    c->ended = 1;
    if (c->freed) /* the exchange went away (teardown): nobody to answer */
        bx_debug("service %s: ended after its exchange was freed", c->svc->channel);
    else
        c->end(c, c->end_arg); /* may free c */
}

void bx_service_reply(bx_service_call *c, json_t *data)
{
    json_t *m = json_pack("{sssb}", "channel", c->svc->channel, "successful", 1);
    json_t *id = json_object_get(c->msg, "id");
    if (m && id)
        json_object_set(m, "id", id);
    if (m && data)
        json_object_set(m, "data", data);
    json_decref(data);
    if (!m) {
        bx_service_fail(c, BX_SERVICE_FAILED);
        return;
    }
    if (!c->ended)
        c->reply = m;
    else
        json_decref(m);
    end_call(c);
}

void bx_service_done(bx_service_call *c)
{
    end_call(c);
}

void bx_service_fail(bx_service_call *c, const char *error)
{
    if (!c->ended) {
        c->failed = 1;
        free(c->error);
        c->error = strdup(error && *error ? error : BX_SERVICE_FAILED); /* NULL: the generic reason */
    }
    end_call(c);
}

/* ---- broker work ---- */

typedef struct pending {
    bx_service_call *call;
    bx_service_cb *cb;
    void *arg;
    char fn[48];
} pending;

static void on_fcall(const redisReply *r, const char *err, void *arg)
{
    pending *p = arg;
    bx_service_call *c = p->call;
    if (c->freed)
        bx_info("service %s: %s answered after the call ended: dropped", c->svc->channel, p->fn);
    else
        p->cb(c, r, err, p->arg);
    free(p);
    unref(c);
}

int bx_service_fcall(bx_service_call *c, const char *fn, int argc, const char **argv, const size_t *lens,
                     bx_service_cb *cb, void *arg, char *err, size_t errlen)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "%s: out of memory", fn);
        return -1;
    }
    p->call = c;
    p->cb = cb;
    p->arg = arg;
    snprintf(p->fn, sizeof p->fn, "%s", fn);
    c->refs++;
    if (!c->store || bx_store_fcall(c->store, fn, argc, argv, lens, on_fcall, p, err, errlen) < 0) {
        if (!c->store)
            snprintf(err, errlen, "%s: no broker", fn);
        c->refs--;
        free(p);
        return -1;
    }
    return 0;
}

void bx_service_fcall_or_fail(bx_service_call *c, const char *fn, int argc, const char **argv, bx_service_cb *cb)
{
    char err[160] = "";
    size_t lens[16];
    if (argc > 16) {
        bx_error("service %s: %s with %d arguments (at most 16)", c->svc->channel, fn, argc);
        bx_service_fail(c, BX_SERVICE_FAILED);
        return;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (bx_service_fcall(c, fn, argc, argv, lens, cb, NULL, err, sizeof err) < 0) {
        bx_warn("service %s c=%s: %s", c->svc->channel, c->cid, err);
        bx_service_fail(c, BX_ERR_BROKER_UNAVAILABLE);
    }
}

static void on_forget(const redisReply *r, const char *err, void *arg)
{
    char *what = arg;
    if (!r)
        bx_warn("service: %s failed: %s", what, err ? err : "no reply");
    else if (r->type == REDIS_REPLY_ERROR)
        bx_warn("service: %s failed: %s", what, r->str);
    else
        bx_debug("service: %s done", what);
    free(what);
}

/* Fire-and-forget FCALL; the label is logged with its outcome. */
static void forget(bx_service_call *c, const char *fn, int argc, const char **argv, const size_t *lens,
                   const char *label)
{
    char err[160] = "";
    char *what = strdup(label);
    if (!what || !c->store || bx_store_fcall(c->store, fn, argc, argv, lens, on_forget, what, err, sizeof err) < 0) {
        bx_warn("service %s: %s not sent: %s", c->svc->channel, label, !what ? "out of memory" : err);
        free(what);
    }
}

/* {channel, data} as JSON text, malloc'd; NULL on OOM. */
static char *message_text(const char *channel, const json_t *data, size_t *len)
{
    json_t *m = json_pack("{ss}", "channel", channel);
    if (m && data)
        json_object_set(m, "data", (json_t *)data);
    char *text = m ? bx_json_dump(m, len) : NULL;
    json_decref(m);
    return text;
}

void bx_service_deliver(bx_service_call *c, const char *cid, const char *channel, const json_t *data)
{
    size_t len = 0;
    char *text = message_text(channel, data, &len);
    char mq[24], ttl[24], label[160];
    snprintf(mq, sizeof mq, "%ld", c->max_queue);
    snprintf(ttl, sizeof ttl, "%ld", c->ttl_ms);
    snprintf(label, sizeof label, "deliver %s to c=%s", channel, cid);
    const char *argv[] = { cid, text, mq, ttl };
    size_t lens[] = { strlen(cid), len, strlen(mq), strlen(ttl) };
    if (text)
        forget(c, "bx_deliver", 4, argv, lens, label);
    else
        bx_warn("service %s: %s: out of memory", c->svc->channel, label);
    free(text);
}

void bx_service_deliver_user(bx_service_call *c, const char *user, const char *channel, const json_t *data)
{
    size_t len = 0;
    char *text = message_text(channel, data, &len);
    char mq[24], label[160];
    snprintf(mq, sizeof mq, "%ld", c->max_queue);
    snprintf(label, sizeof label, "deliver %s to user %.64s", channel, user);
    const char *argv[] = { user, text, mq };
    size_t lens[] = { strlen(user), len, strlen(mq) };
    if (text)
        forget(c, "bx_deliver_user", 3, argv, lens, label);
    else
        bx_warn("service %s: %s: out of memory", c->svc->channel, label);
    free(text);
}

void bx_service_publish(bx_service_call *c, const char *channel, const json_t *data)
{
    char **wild = NULL;
    size_t len = 0;
    char label[160];
    snprintf(label, sizeof label, "publish %s", channel);
    if (bx_channel_classify(channel) != BX_CH_BROADCAST || bx_channel_wildcards(channel, &wild) < 0) {
        bx_warn("service %s: %s: not a broadcast channel (or out of memory)", c->svc->channel, label);
        return;
    }
    char *text = message_text(channel, data, &len);
    size_t n = 0;
    while (wild[n])
        n++;
    const char **argv = calloc(n + 8, sizeof *argv);
    size_t *lens = calloc(n + 8, sizeof *lens);
    if (text && argv && lens) {
        char mq[24];
        snprintf(mq, sizeof mq, "%ld", c->max_queue);
        const char *fixed[] = { "", "", "0", "1", channel, text, "1", mq };
        for (int i = 0; i < 8; i++) {
            argv[i] = fixed[i];
            lens[i] = i == 5 ? len : strlen(fixed[i]);
        }
        for (size_t i = 0; i < n; i++) {
            argv[8 + i] = wild[i];
            lens[8 + i] = strlen(wild[i]);
        }
        forget(c, "bx_publish", (int)(n + 8), argv, lens, label);
    } else {
        bx_warn("service %s: %s: out of memory", c->svc->channel, label);
    }
    free(argv);
    free(lens);
    free(text);
    bx_channel_wildcards_free(wild);
}
