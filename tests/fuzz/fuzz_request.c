/* fuzz_request.c — libFuzzer target for a whole HTTP request as a worker handles it, without
 * sockets or Redis: the FastCGI params and body go through the transport (fcgi/transport.c:
 * method, content type, form and JSONP decoding), the dispatch pipeline (shared/dispatch.c with
 * its extensions) and the reply framing, exactly as fcgi/reactor.c drives them.
 *
 * The broker is scripted by the input: bx_store_fcall (defined here, so store.o is never
 * linked) records each call, and the calls are answered after bx_exchange_start returns, one
 * reply kind per script letter — well-formed replies of every shape, errors, "Redis down",
 * garbage. A parked connect is expired to finish it. Responses go to stdout, which is
 * /dev/null while fuzzing.
 *
 * Input: script "\n" method "\n" query "\n" content-type "\n" cookie "\n" origin "\n" body.
 * Invariants (abort → the fuzzer reports it): every exchange reaches exactly one final state,
 * every broker call is answered exactly once, nothing leaks (ASan). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "request.h"
#include "transport.h"

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define MAX_CALLS 64

static struct call {
    char fn[32];
    int final_drain; /* bx_drain with final=1: the broker never answers "parked" to it */
    bx_store_cb *cb;
    void *arg;
} calls[MAX_CALLS];
static int n_calls, n_answered, down_next;

int bx_store_fcall(bx_store *s, const char *fn, int argc, const char **argv, const size_t *lens,
                   bx_store_cb *cb, void *arg, char *err, size_t errlen)
{
    (void)s;
    CHECK(cb);
    if (down_next || n_calls == MAX_CALLS) {
        down_next = 0;
        snprintf(err, errlen, "Redis not connected");
        return -1;
    }
    struct call *c = &calls[n_calls++];
    snprintf(c->fn, sizeof c->fn, "%s", fn);
    c->final_drain = !strcmp(fn, "bx_drain") && argc > 2 && lens[2] == 1 && argv[2][0] == '1';
    c->cb = cb;
    c->arg = arg;
    return 0;
}

/* ---- replies ------------------------------------------------------------- */

/* A reply from a spec: 's' string, 'i' integer, one per array element; "S:x" a status. */
static redisReply *elem(int type, const char *str, long long i)
{
    redisReply *e = calloc(1, sizeof *e);
    CHECK(e);
    e->type = type;
    if (str) {
        e->str = strdup(str);
        CHECK(e->str);
        e->len = strlen(str);
    }
    e->integer = i;
    return e;
}

static redisReply *arr(const char *spec, const char **strs, const long long *ints)
{
    redisReply *r = elem(REDIS_REPLY_ARRAY, NULL, 0);
    r->elements = strlen(spec);
    r->element = calloc(r->elements ? r->elements : 1, sizeof *r->element);
    CHECK(r->element);
    for (size_t i = 0, si = 0, ii = 0; i < r->elements; i++)
        r->element[i] = spec[i] == 's' ? elem(REDIS_REPLY_STRING, strs[si++], 0)
                                       : elem(REDIS_REPLY_INTEGER, NULL, ints[ii++]);
    return r;
}

static void rfree(redisReply *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->elements; i++)
        rfree(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

#define MSG "{\"channel\":\"/a\",\"data\":{\"x\":1}}"

/* The reply a script letter stands for; NULL = a failed call (err set). Unknown letters and
 * the end of the script give the usual answer of fn. */
static redisReply *reply_for(char k, const char *fn, const char **err)
{
    *err = NULL;
    switch (k) {
    case 'e': *err = "ERR Error running script"; return NULL;
    case 'x': *err = "Redis connection lost"; return NULL;
    case 'a': return arr("i", NULL, (long long[]){ 1 });
    case 'b': return arr("si", (const char *[]){ "ok" }, (long long[]){ 1 });
    case 'c': return arr("siii", (const char *[]){ "parked" }, (long long[]){ 0, 0, 0 });
    case 'f': return arr("siii", (const char *[]){ "empty" }, (long long[]){ 1, 0, 0 });
    case 'g': return arr("siiis", (const char *[]){ "msgs", MSG }, (long long[]){ 0, 1, 4 });
    case 'h': return arr("sis", (const char *[]){ "msgs", MSG }, (long long[]){ 7 });
    case 'i': return arr("s", (const char *[]){ "unknown" }, NULL);
    case 'j': return arr("si", (const char *[]){ "empty" }, (long long[]){ 0 });
    case 'k': return arr("si", (const char *[]){ "parked" }, (long long[]){ 0 });
    case 'l': return arr("siii", (const char *[]){ "ok" }, (long long[]){ 1, 0, 1 });
    case 'm': return elem(REDIS_REPLY_STATUS, "ok", 0);
    case 'n': return arr("siii", (const char *[]){ "multi" }, (long long[]){ 0, 0, 0 });
    case 'o': return arr("s", (const char *[]){ "gone" }, NULL);
    case 'p': return arr("s", (const char *[]){ "superseded" }, NULL);
    case 'q': return elem(REDIS_REPLY_INTEGER, NULL, 0);
    case 'r': return arr("siiis", (const char *[]){ "msgs", "not json" }, (long long[]){ 0, 0, 4 });
    case 's': return elem(REDIS_REPLY_STRING, "unknown", 0);
    case 't': return elem(REDIS_REPLY_NIL, NULL, 0);
    case 'u': return arr("", NULL, NULL);
    case 'v': return arr("siiiss", (const char *[]){ "msgs", MSG, MSG }, (long long[]){ 1, 1, 9 });
    default: break;
    }
    if (!strcmp(fn, "bx_handshake") || !strcmp(fn, "bx_confirm") || !strcmp(fn, "bx_deliver"))
        return reply_for('a', fn, err);
    if (!strcmp(fn, "bx_connect"))
        return reply_for('c', fn, err);
    if (!strcmp(fn, "bx_drain"))
        return reply_for('j', fn, err);
    if (!strcmp(fn, "bx_subscribe") || !strcmp(fn, "bx_unsubscribe"))
        return arr("si", (const char *[]){ "ok" }, (long long[]){ 0 });
    if (!strcmp(fn, "bx_publish"))
        return reply_for('l', fn, err);
    return reply_for('m', fn, err);
}

/* ---- one request ----------------------------------------------------------- */

static bx_config cfg;
static bx_dispatch *d;
static int finals, parked;

static void on_hold(bx_exchange *ex, void *arg)
{
    (void)ex, (void)arg;
}

static void on_state(bx_exchange *ex, bx_ex_state st, void *arg)
{
    bx_req *q = arg;
    switch (st) {
    case BX_EX_PARKED:
        parked = 1;
        return;
    case BX_EX_REPLY:
        if (bx_transport_reply(&cfg, q, ex) == 0)
            bx_exchange_confirm(ex);
        break;
    case BX_EX_HTTP_ERROR:
        CHECK(bx_exchange_http_status(ex) >= 400);
        bx_transport_error(&cfg, q, bx_exchange_http_status(ex), "superseded");
        break;
    case BX_EX_GONE:
        break;
    }
    finals++;
}

static char *field(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    /* malloc + memcpy, not strndup: the input has no NUL (ASan's strict_string_checks). */
    char *s = malloc((size_t)(stop - *p) + 1);
    CHECK(s);
    memcpy(s, *p, (size_t)(stop - *p));
    s[stop - *p] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[256];
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    bx_log_set_level(BX_LOG_ERROR); // refusals are logged at warn: the fuzzer's stderr stays readable
    CHECK(bx_config_defaults(&cfg) == 0);
    CHECK(bx_config_set(&cfg, "allowedOrigins", "https://a.example,https://b.example", err, sizeof err) == 0);
    CHECK(bx_config_set(&cfg, "maxMessageSize", "65536", err, sizeof err) == 0);
    d = bx_dispatch_new(&cfg, NULL, "fuzz-1-00000000", err, sizeof err);
    CHECK(d);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *script = field(&p, end);
    bx_req *q = calloc(1, sizeof *q);
    CHECK(q);
    q->method = field(&p, end);
    q->query = field(&p, end);
    q->content_type = field(&p, end);
    q->cookie = field(&p, end);
    q->origin = field(&p, end);
    q->body = malloc((size_t)(end - p) + 1);
    CHECK(q->body);
    memcpy(q->body, p, (size_t)(end - p));
    q->body_len = (size_t)(end - p);
    q->body[q->body_len] = '\0';
    /* Empty values stand for absent headers, as the accept thread leaves them NULL. */
    if (!*q->content_type) { free(q->content_type); q->content_type = NULL; }
    if (!*q->cookie) { free(q->cookie); q->cookie = NULL; }
    if (!*q->origin) { free(q->origin); q->origin = NULL; }
    q->secure = size & 1;

    n_calls = n_answered = finals = parked = 0;
    bx_batch batch;
    const char *reason = "";
    int rc = bx_transport_decode(&cfg, q, &batch, &reason);
    if (rc) {
        CHECK(reason);
        if (rc != 1) {
            CHECK(rc >= 400 && rc <= 599);
            bx_transport_error(&cfg, q, rc, "Bad Request");
        }
        bx_batch_free(&batch);
        bx_req_free(q);
        free(script);
        return 0;
    }
    char *browser = bx_req_cookie(q, cfg.browserCookieName);
    bx_request_info info = { q->transport, 1, browser };
    bx_exchange_hooks hooks = { on_hold, on_state, q };
    bx_exchange *ex = bx_exchange_new(d, &batch, &info, &hooks);
    free(browser);
    CHECK(ex);
    size_t si = 0, slen = strlen(script);
    bx_exchange_start(ex);
    /* Answer the broker in call order; a parked connect is expired (final drain) once the
     * broker is quiet. Bounded: every answer or expiry must move the exchange on. */
    for (int rounds = 0; rounds < 4 * MAX_CALLS && finals == 0; rounds++) {
        if (n_answered < n_calls) {
            char k = si < slen ? script[si++] : 0;
            if (k == 'd') /* the next call finds Redis down */
                down_next = 1, k = si < slen ? script[si++] : 0;
            struct call *c = &calls[n_answered++];
            if (c->final_drain && (k == 'c' || k == 'k'))
                k = 'j';
            const char *err;
            redisReply *r = reply_for(k, c->fn, &err);
            c->cb(r, err, c->arg);
            rfree(r);
        } else if (parked && !bx_exchange_busy(ex)) {
            parked = 0;
            bx_exchange_expire(ex);
        } else {
            break;
        }
    }
    CHECK(finals == 1);
    CHECK(n_answered <= n_calls);
    bx_exchange_free(ex);
    /* Confirmations outlive the exchange; answer them so the dispatch forgets them. */
    while (n_answered < n_calls) {
        struct call *c = &calls[n_answered++];
        redisReply *r = reply_for('a', c->fn, &(const char *){ NULL });
        c->cb(r, NULL, c->arg);
        rfree(r);
    }
    CHECK(bx_dispatch_live(d) == 0);
    down_next = 0;
    bx_req_free(q);
    free(script);
    return 0;
}
