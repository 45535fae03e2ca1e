/* transport.c — long-polling (POST) and callback-polling (GET ?jsonp=) over HTTP, CORS, cookie.
 *
 * CometD's HTTP transports (bayeux-notes.md §2.1): any path, POST body of a JSON
 * array or object (also form-encoded message= params, as CometD 5 accepted), JSONP
 * GET with a strictly validated callback name, OPTIONS → 200 for CORS preflights,
 * anything else → 400 "Unknown Bayeux Transport". */
#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cookie.h"
#include "counters.h"
#include "log.h"
#include "query.h"

#define ORIGIN_MAX 512
#define UNKNOWN_TRANSPORT "Unknown Bayeux Transport"

/* ---- CORS ------------------------------------------------------------- */

/* 1 if the Origin header may be echoed: safe characters and listed in allowedOrigins. */
static int origin_allowed(const bx_config *cfg, const char *origin)
{
    size_t len = origin ? strlen(origin) : 0;
    if (!len || len > ORIGIN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (origin[i] < 0x21 || origin[i] > 0x7e)
            return 0;
    const char *list = cfg->allowedOrigins ? cfg->allowedOrigins : "*";
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n && ((n == 1 && *p == '*') || (n == len && strncmp(p, origin, n) == 0)))
            return 1;
        p += n;
    }
    return 0;
}

static void cors_headers(const bx_config *cfg, const bx_req *q, FILE *h, int preflight)
{
    if (!origin_allowed(cfg, q->origin))
        return;
    fprintf(h, "Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
            q->origin);
    if (preflight)
        fputs("Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
              "Access-Control-Allow-Headers: Content-Type, X-Requested-With, Accept, Origin\r\n"
              "Access-Control-Max-Age: 1800\r\n", h);
}

/* Respond with headers built by the callers' writes into a memstream. */
typedef struct headers {
    FILE *f;
    char *buf;
    size_t len;
} headers;

static int headers_open(headers *h)
{
    h->buf = NULL;
    h->len = 0;
    h->f = open_memstream(&h->buf, &h->len);
    return h->f ? 0 : -1;
}

static const char *headers_close(headers *h)
{
    if (h->f)
        fclose(h->f);
    h->f = NULL;
    return h->buf;
}

int bx_transport_error(const bx_config *cfg, bx_req *q, int status, const char *text)
{
    headers h;
    bx_count_http_error(status); /* for the metrics */
    if (headers_open(&h) < 0)
        return bx_req_respond(q, status, "text/plain;charset=UTF-8", NULL, text, strlen(text));
    cors_headers(cfg, q, h.f, 0);
    int rc = bx_req_respond(q, status, "text/plain;charset=UTF-8", headers_close(&h), text, strlen(text));
    free(h.buf);
    return rc;
}

/* ---- decoding ---------------------------------------------------------- */

static void limits_of(const bx_config *cfg, bx_transport t, bx_limits *lim)
{
    lim->max_message_size = cfg->tr[t].maxMessageSize;
    lim->max_batch_messages = cfg->maxBatchMessages;
    lim->max_depth = (int)cfg->maxNestingDepth;
}

/* Append every message of src to dst (src is emptied). 0 ok, -1 OOM. */
static int batch_append(bx_batch *dst, bx_batch *src)
{
    json_t **m = realloc(dst->msgs, (dst->n + src->n) * sizeof *m);
    if (!m)
        return -1;
    memcpy(m + dst->n, src->msgs, src->n * sizeof *m);
    dst->msgs = m;
    dst->n += src->n;
    free(src->msgs);
    src->msgs = NULL;
    src->n = 0;
    return 0;
}

/* Several message= parameters: each parsed, then concatenated (CometD's JSONP transport). */
static int parse_values(const bx_config *cfg, bx_transport t, char **vals, size_t *lens, int n, bx_batch *batch,
                        const char **reason)
{
    static __thread char why[200];
    bx_limits lim;
    bx_parse_error perr;
    limits_of(cfg, t, &lim);
    for (int i = 0; i < n; i++) {
        bx_batch one = { NULL, 0 };
        if (bx_batch_parse(vals[i], lens[i], &lim, &one, &perr) != BX_PARSE_OK) {
            snprintf(why, sizeof why, "message parameter %d: %s", i + 1, perr.reason);
            *reason = why;
            return perr.http_status;
        }
        if (batch_append(batch, &one) < 0) {
            bx_batch_free(&one);
            *reason = "out of memory";
            return 500;
        }
    }
    if (batch->n > 1)
        for (size_t i = 0; i < batch->n; i++)
            if (bx_msg_channel(batch->msgs[i]) && strcmp(bx_msg_channel(batch->msgs[i]), "/meta/handshake") == 0) {
                *reason = "handshake batched with other messages";
                return 500;
            }
    if (lim.max_batch_messages > 0 && batch->n > (size_t)lim.max_batch_messages) {
        *reason = "more messages than maxBatchMessages";
        return 500;
    }
    return 0;
}

/* message= parameters of a query or form body. */
static int decode_params(const bx_config *cfg, bx_transport t, const char *query, bx_batch *batch,
                         const char **reason)
{
    char **vals;
    size_t *lens;
    int n = bx_query_values(query, "message", &vals, &lens);
    if (n < 0) {
        *reason = "malformed form encoding";
        return 400;
    }
    int rc = n == 0 ? 500 : parse_values(cfg, t, vals, lens, n, batch, reason);
    if (n == 0)
        *reason = "no message parameter";
    bx_query_values_free(vals, lens);
    return rc;
}

static int decode_long_polling(const bx_config *cfg, bx_req *q, bx_batch *batch, const char **reason)
{
    static __thread char why[200];
    q->transport = BX_TR_LONG_POLLING;
    /* form posts (message=...) as CometD 5 took them; a JSON body is JSON whatever its type says (CometD 8) */
    const char *b = q->body ? q->body + strspn(q->body, " \t\r\n") : "";
    if (q->content_type && strncasecmp(q->content_type, "application/x-www-form-urlencoded", 33) == 0 &&
        *b != '[' && *b != '{')
        return decode_params(cfg, BX_TR_LONG_POLLING, q->body ? q->body : "", batch, reason);
    bx_limits lim;
    bx_parse_error perr;
    limits_of(cfg, BX_TR_LONG_POLLING, &lim);
    if (bx_batch_parse(q->body ? q->body : "", q->body_len, &lim, batch, &perr) != BX_PARSE_OK) {
        snprintf(why, sizeof why, "%s", perr.reason);
        *reason = why;
        return perr.http_status;
    }
    return 0;
}

static int decode_callback_polling(const bx_config *cfg, bx_req *q, bx_batch *batch, const char **reason)
{
    char **cb;
    int n = bx_query_values(q->query, cfg->callbackParameter, &cb, NULL);
    q->transport = BX_TR_CALLBACK_POLLING;
    if (n != 1 || !bx_query_callback_valid(cb[0], cfg->callbackParameterMaxLength)) {
        *reason = n < 0 ? "malformed query" : n != 1 ? "not exactly one callback parameter"
                : "callback name is not ^[a-zA-Z0-9._-]+$ within callbackParameterMaxLength";
        bx_query_values_free(cb, NULL);
        return 400;
    }
    q->callback = cb[0];
    cb[0] = NULL;
    bx_query_values_free(cb, NULL);
    return decode_params(cfg, BX_TR_CALLBACK_POLLING, q->query, batch, reason);
}

/* GET with the callback parameter present → callback-polling. */
static int has_callback_param(const bx_config *cfg, const bx_req *q)
{
    char **v;
    int n = bx_query_values(q->query, cfg->callbackParameter, &v, NULL);
    bx_query_values_free(v, NULL);
    return n != 0;
}

int bx_transport_decode(const bx_config *cfg, bx_req *q, bx_batch *batch, const char **reason)
{
    batch->msgs = NULL;
    batch->n = 0;
    if (q->early_status) {
        *reason = q->early_reason;
        return q->early_status;
    }
    if (strcmp(q->method, "OPTIONS") == 0) {
        headers h;
        if (headers_open(&h) == 0)
            cors_headers(cfg, q, h.f, 1);
        bx_req_respond(q, 200, NULL, headers_close(&h), "", 0);
        free(h.buf);
        *reason = "CORS preflight";
        return 1;
    }
    int rc = 400;
    *reason = UNKNOWN_TRANSPORT;
    if (strcmp(q->method, "POST") == 0 && bx_config_transport_allowed(cfg, BX_TR_LONG_POLLING))
        rc = decode_long_polling(cfg, q, batch, reason);
    else if (strcmp(q->method, "GET") == 0 && bx_config_transport_allowed(cfg, BX_TR_CALLBACK_POLLING) &&
             has_callback_param(cfg, q))
        rc = decode_callback_polling(cfg, q, batch, reason);
    if (rc)
        bx_batch_free(batch); /* messages of the parameters parsed before the failing one */
    return rc;
}

/* ---- replies ------------------------------------------------------------ */

int bx_transport_reply(const bx_config *cfg, bx_req *q, bx_exchange *ex)
{
    size_t len = 0;
    char *json = bx_exchange_body(ex, &len);
    headers h;
    const char *browser = bx_exchange_new_browser(ex);
    char *cookie = browser ? bx_cookie_header(cfg, browser, q->secure) : NULL;
    if (!json || (browser && !cookie) || headers_open(&h) < 0) {
        free(json);
        free(cookie);
        return bx_transport_error(cfg, q, 500, "out of memory");
    }
    if (cookie)
        fputs(cookie, h.f);
    free(cookie);
    cors_headers(cfg, q, h.f, 0);
    fputs("Cache-Control: no-cache, no-store\r\n", h.f);
    const char *hdr = headers_close(&h);
    int rc;
    if (q->transport == BX_TR_CALLBACK_POLLING) {
        size_t cblen = strlen(q->callback), total = cblen + len + 2;
        char *body = malloc(total);
        if (!body) {
            rc = -1;
        } else {
            memcpy(body, q->callback, cblen);
            body[cblen] = '(';
            memcpy(body + cblen + 1, json, len);
            body[total - 1] = ')';
            rc = bx_req_respond(q, 200, "text/javascript;charset=UTF-8", hdr, body, total);
            free(body);
        }
    } else {
        rc = bx_req_respond(q, 200, "application/json;charset=UTF-8", hdr, json, len);
    }
    free(h.buf);
    free(json);
    return rc;
}
