/* metrics.c — Prometheus text format (version 0.0.4) for bayeux-fcgi; see metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) { b->oom = 1; return; }
        if ((size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
}

static void head(buf *b, const char *name, const char *type, const char *help) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format wants (\\, \", \n). */
static char *label(const char *v) {
    size_t n = strlen(v ? v : "");
    char *o = malloc(2 * n + 1), *q = o;
    if (!o) return NULL;
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"') *q++ = '\\', *q++ = *p;
        else if (*p == '\n') *q++ = '\\', *q++ = 'n';
        else *q++ = *p;
    }
    *q = '\0';
    return o;
}

/* Value of name in the flat bx_stats reply; -1 when absent or not a number. */
static long long broker_value(const redisReply *r, const char *name) {
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || strcmp(k->str, name) != 0) continue;
        if (v->type == REDIS_REPLY_INTEGER) return v->integer;
        if (v->type == REDIS_REPLY_STRING) {
            char *end;
            long long n = strtoll(v->str, &end, 10);
            return *end || end == v->str ? -1 : n;
        }
        return -1;
    }
    return -1;
}

/* Broker counters of bx_stats (broker/API.md), in its order. */
static const struct { const char *field, *help; } broker_counters[] = {
    { "handshakes", "Successful handshakes (all workers)." },
    { "connects", "/meta/connect calls that reached the broker (all workers)." },
    { "publishes", "Messages published (all workers)." },
    { "deliveries", "Messages queued for a recipient (all workers)." },
    { "dropped", "Messages dropped because a session queue was full (maxQueue)." },
    { "wakes", "Wake-ups sent to parked /meta/connects." },
    { "disconnects", "Sessions ended by /meta/disconnect." },
    { "expired", "Sessions removed by the sweeper (maxInterval passed)." },
};

static void render_broker(buf *b, const redisReply *r) {
    long long sessions = broker_value(r, "sessions");
    if (sessions >= 0) {
        head(b, "bayeux_sessions", "gauge", "Sessions in the broker (all workers).");
        put(b, "bayeux_sessions %lld\n", sessions);
    }
    for (size_t i = 0; i < sizeof broker_counters / sizeof *broker_counters; i++) {
        long long v = broker_value(r, broker_counters[i].field);
        if (v < 0) continue;
        char name[64];
        snprintf(name, sizeof name, "bayeux_%s_total", broker_counters[i].field);
        head(b, name, "counter", broker_counters[i].help);
        put(b, "%s %lld\n", name, v);
    }
}

static void render_store(buf *b, const bx_store_stats *s, const char *w) {
    head(b, "bayeux_redis_calls_total", "counter", "Broker calls answered or failed.");
    put(b, "bayeux_redis_calls_total{worker=\"%s\"} %llu\n", w, s->calls);
    head(b, "bayeux_redis_call_failures_total", "counter", "Broker calls that failed (Redis away, timeout, error reply).");
    put(b, "bayeux_redis_call_failures_total{worker=\"%s\"} %llu\n", w, s->failures);
    head(b, "bayeux_redis_calls_refused_total", "counter",
         "Broker calls refused while Redis was not connected (answered 503::broker_unavailable).");
    put(b, "bayeux_redis_calls_refused_total{worker=\"%s\"} %llu\n", w, s->refused);
    head(b, "bayeux_redis_reconnects_total", "counter", "Times the command connection came back after a loss.");
    put(b, "bayeux_redis_reconnects_total{worker=\"%s\"} %llu\n", w, s->reconnects);
    head(b, "bayeux_redis_pending_calls", "gauge", "Broker calls in flight.");
    put(b, "bayeux_redis_pending_calls{worker=\"%s\"} %d\n", w, s->pending);
    head(b, "bayeux_redis_call_duration_seconds", "histogram", "Broker call latency, request to answer.");
    unsigned long long cum = 0;
    for (int i = 0; i < BX_STORE_LATENCY_BUCKETS; i++) {
        cum += s->latency_count[i];
        long long le = bx_store_latency_le_us(i);
        if (le >= 0)
            put(b, "bayeux_redis_call_duration_seconds_bucket{worker=\"%s\",le=\"%g\"} %llu\n", w, (double)le / 1e6, cum);
        else
            put(b, "bayeux_redis_call_duration_seconds_bucket{worker=\"%s\",le=\"+Inf\"} %llu\n", w, cum);
    }
    put(b, "bayeux_redis_call_duration_seconds_sum{worker=\"%s\"} %.6f\n", w, (double)s->latency_sum_us / 1e6);
    put(b, "bayeux_redis_call_duration_seconds_count{worker=\"%s\"} %llu\n", w, cum);
}

/* Errors by Bayeux error string and HTTP status, and the queue-depth histogram, of this worker. */
static void render_counts(buf *b, const bx_counters *c, const char *w) {
    head(b, "bayeux_errors_total", "counter",
         "Bayeux replies with successful:false, by error string (\"other\": past the first 48 distinct ones).");
    for (size_t i = 0; i <= BX_COUNT_ERRORS; i++) {
        if (i >= c->n_errors && i < BX_COUNT_ERRORS) continue;
        char *e = label(c->errors[i].error);
        if (e) put(b, "bayeux_errors_total{worker=\"%s\",error=\"%s\"} %llu\n", w, e, c->errors[i].n);
        else b->oom = 1;
        free(e);
    }
    head(b, "bayeux_http_errors_total", "counter", "Requests answered with an HTTP error status instead of Bayeux replies.");
    for (int s = 400; s < 600; s++)
        if (c->http[s - 400] || s == 400 || s == 413 || s == 500 || s == 503)
            put(b, "bayeux_http_errors_total{worker=\"%s\",status=\"%d\"} %llu\n", w, s, c->http[s - 400]);
    head(b, "bayeux_queue_depth", "histogram",
         "Messages handed to a session in one /meta/connect answer (its queue and in-flight messages; empty answers not observed).");
    unsigned long long cum = 0;
    for (int i = 0; i < BX_QUEUE_DEPTH_BUCKETS; i++) {
        cum += c->depth[i];
        long le = bx_queue_depth_le(i);
        if (le >= 0) put(b, "bayeux_queue_depth_bucket{worker=\"%s\",le=\"%ld\"} %llu\n", w, le, cum);
        else put(b, "bayeux_queue_depth_bucket{worker=\"%s\",le=\"+Inf\"} %llu\n", w, cum);
    }
    put(b, "bayeux_queue_depth_sum{worker=\"%s\"} %llu\n", w, c->depth_sum);
    put(b, "bayeux_queue_depth_count{worker=\"%s\"} %llu\n", w, cum);
}

char *bx_metrics_render(const bx_metrics_input *in, size_t *len) {
    buf b = { malloc(4096), 0, 4096, 0 };
    char *w = label(in->worker);
    if (!b.p || !w) {
        free(b.p);
        free(w);
        return NULL;
    }
    b.p[0] = '\0';
    head(&b, "bayeux_redis_up", "gauge", "1 when this worker's broker connection is ready and bx_stats answered.");
    put(&b, "bayeux_redis_up{worker=\"%s\"} %d\n", w, in->broker && (!in->store || in->store->ready) ? 1 : 0);
    if (in->broker) render_broker(&b, in->broker);
    if (in->parked >= 0) {
        head(&b, "bayeux_parked_polls", "gauge", "/meta/connect requests held by this worker.");
        put(&b, "bayeux_parked_polls{worker=\"%s\"} %ld\n", w, in->parked);
    }
    if (in->exchanges >= 0) {
        head(&b, "bayeux_requests_in_progress", "gauge", "Requests being processed by this worker (parked ones included).");
        put(&b, "bayeux_requests_in_progress{worker=\"%s\"} %ld\n", w, in->exchanges);
    }
    if (in->store) render_store(&b, in->store, w);
    if (in->counts) render_counts(&b, in->counts, w);
    free(w);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    if (len) *len = b.len;
    return b.p;
}

int bx_metrics_allowed(const char *list, const char *addr) {
    if (!list || !*list || !addr || !*addr) return 0;
    size_t alen = strlen(addr);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if ((n == 1 && *p == '*') || (n == alen && strncmp(p, addr, n) == 0)) return 1;
        p = end ? end + 1 : p + n;
    }
    return 0;
}
