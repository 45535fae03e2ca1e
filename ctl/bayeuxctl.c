/* bayeuxctl — the operator's view of the broker: sessions, channels, subscribers,
 * publish, disconnect, stats, load, sweep. A thin user of the sync store (broker/store.h)
 * and the function library (broker/API.md); keys are documented in broker/KEYS.md.
 * Tables for people, --json for scripts. Exit status: 0 ok, 1 failure, 2 usage. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "channel.h"
#include "metrics.h"
#include "store.h"

#define ID_MAX 64
#define PAGE 1000

typedef struct ctl {
    bx_store_sync *s;
    int json;
    long max_queue;
} ctl;

static void usage(FILE *f) {
    fputs("usage: bayeuxctl [--redis HOST:PORT | --sentinels HOST:PORT,... [--master-name NAME]]\n"
          "                 [--prefix PREFIX] [--json] COMMAND [ARGS]\n"
          "\n"
          "  sessions                 every session: state, transport, queue, subscriptions, expiry\n"
          "  session ID               one session in detail (channels, queued and in-flight messages)\n"
          "  channels                 subscribed channel names with their subscriber counts\n"
          "  subscribers CHANNEL      sessions a publish to CHANNEL reaches (exact and wildcard)\n"
          "  publish CHANNEL JSON     publish {\"channel\":CHANNEL,\"data\":JSON} [--max-queue N]\n"
          "  disconnect ID            remove a session (a parked poll gets reconnect:none)\n"
          "  stats                    session count and broker counters\n"
          "  metrics                  the same in Prometheus text format\n"
          "  load                     load the embedded function library (FUNCTION LOAD REPLACE)\n"
          "  sweep [MAX]              remove expired sessions now, MAX per call (default 1000)\n"
          "\n"
          "Defaults: --redis $BX_REDIS_HOST:$BX_REDIS_PORT or 127.0.0.1:6379,\n"
          "          --prefix $BX_REDIS_PREFIX or bayeux:\n"
          "          --sentinels $BX_REDIS_SENTINELS (then Redis is the master they name),\n"
          "          --master-name $BX_REDIS_MASTER_NAME or mymaster\n", f);
}

/* One line to stderr, then exit 1. */
static void die(const char *fmt, const char *a, const char *b) __attribute__((noreturn));
static void die(const char *fmt, const char *a, const char *b) {
    fputs("bayeuxctl: ", stderr);
    fprintf(stderr, fmt, a, b ? b : "");
    fputc('\n', stderr);
    exit(1);
}

static void usage_error(const char *msg, const char *arg) __attribute__((noreturn));
static void usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "bayeuxctl: %s%s\n", msg, arg ? arg : "");
    usage(stderr);
    exit(2);
}

/* Same rule as the function library's ids: 1..64 of [A-Za-z0-9_.-]. */
static void check_id(const char *id) {
    size_t n = strlen(id);
    int ok = n >= 1 && n <= ID_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)id[i]) || id[i] == '_' || id[i] == '-' || id[i] == '.';
    if (!ok) die("bad session id '%s': 1-64 characters of [A-Za-z0-9_.-] expected%s", id, NULL);
}

static redisReply *fcall(ctl *c, const char *fn, int argc, const char **argv) {
    char err[512];
    redisReply *r = bx_store_sync_fcall(c->s, fn, argc, argv, NULL, err, sizeof err);
    if (!r) die("%s: %s", fn, err);
    return r;
}

static redisReply *command(ctl *c, int argc, const char **argv) {
    char err[512];
    redisReply *r = bx_store_sync_command(c->s, argc, argv, NULL, err, sizeof err);
    if (!r) die("%s: %s", argv[0], err);
    return r;
}

/* ---- output: a table of strings for people, or JSON for scripts */

typedef struct table {
    size_t ncols, nrows, cap;
    const char **head;
    char **cells; /* nrows * ncols, owned */
} table;

static void table_add(table *t, const char **row) {
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = realloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
        if (!t->cells) die("out of memory%s", "", NULL);
    }
    for (size_t i = 0; i < t->ncols; i++) {
        char *v = strdup(row[i] ? row[i] : "");
        if (!v) die("out of memory%s", "", NULL);
        t->cells[t->nrows * t->ncols + i] = v;
    }
    t->nrows++;
}

static void table_print(table *t) {
    size_t *w = calloc(t->ncols, sizeof *w);
    if (!w) die("out of memory%s", "", NULL);
    for (size_t i = 0; i < t->ncols; i++) w[i] = strlen(t->head[i]);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            size_t n = strlen(t->cells[r * t->ncols + i]);
            if (n > w[i]) w[i] = n;
        }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *v = r == 0 ? t->head[i] : t->cells[(r - 1) * t->ncols + i];
            if (i + 1 == t->ncols) printf("%s\n", v);
            else printf("%-*s  ", (int)w[i], v);
        }
    }
    free(w);
    for (size_t i = 0; i < t->nrows * t->ncols; i++) free(t->cells[i]);
    free(t->cells);
}

static void json_print(json_t *v) {
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!s) die("out of memory%s", "", NULL);
    puts(s);
    free(s);
    json_decref(v);
}

/* A reply element as text (integers rendered). buf holds the rendering when needed. */
static const char *text(const redisReply *e, char *buf, size_t len) {
    if (e->type == REDIS_REPLY_INTEGER) {
        snprintf(buf, len, "%lld", e->integer);
        return buf;
    }
    if (e->type == REDIS_REPLY_STRING || e->type == REDIS_REPLY_STATUS) return e->str;
    return "";
}

/* A flat name/value array reply as a JSON object (arrays of strings become arrays). */
static json_t *pairs_to_json(const redisReply *r) {
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *v = r->element[i + 1];
        json_t *jv;
        if (v->type == REDIS_REPLY_INTEGER) {
            jv = json_integer(v->integer);
        } else if (v->type == REDIS_REPLY_ARRAY) {
            jv = json_array();
            for (size_t j = 0; j < v->elements; j++)
                if (v->element[j]->type == REDIS_REPLY_STRING)
                    json_array_append_new(jv, json_stringn(v->element[j]->str, v->element[j]->len));
        } else {
            jv = json_stringn(v->str ? v->str : "", v->str ? v->len : 0);
        }
        json_object_set_new(o, r->element[i]->str, jv);
    }
    return o;
}

/* Value of field name in a flat name/value reply, rendered into buf. */
static const char *field(const redisReply *r, const char *name, char *buf, size_t len) {
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0) return text(r->element[i + 1], buf, len);
    return "";
}

/* "12.3s" from milliseconds, "-" for none. */
static const char *secs(const char *ms, char *buf, size_t len) {
    if (!ms[0] || strcmp(ms, "-1") == 0) return "-";
    snprintf(buf, len, "%.1fs", atof(ms) / 1000.0);
    return buf;
}

/* ---- commands */

static int cmd_sessions(ctl *c) {
    static const char *cols[] = { "id", "state", "transport", "browser", "user", "worker", "queued",
                                  "inflight", "subscriptions", "expires_in_ms" };
    static const char *head[] = { "ID", "STATE", "TRANSPORT", "BROWSER", "USER", "WORKER", "QUEUED",
                                  "INFLIGHT", "SUBS", "EXPIRES" };
    enum { NCOLS = sizeof cols / sizeof *cols };
    table t = { .ncols = NCOLS, .head = head };
    json_t *list = json_array();
    long long total = 0;
    for (long long off = 0;; off += PAGE) {
        char o[32], n[32];
        snprintf(o, sizeof o, "%lld", off);
        snprintf(n, sizeof n, "%d", PAGE);
        const char *argv[] = { o, n };
        redisReply *r = fcall(c, "bx_sessions", 2, argv);
        total = r->elements ? r->element[0]->integer : 0;
        for (size_t i = 1; i < r->elements; i++) {
            const redisReply *row = r->element[i];
            if (c->json) {
                json_array_append_new(list, pairs_to_json(row));
                continue;
            }
            char bufs[NCOLS][32], sbuf[32];
            const char *cells[NCOLS];
            for (size_t k = 0; k < NCOLS; k++) cells[k] = field(row, cols[k], bufs[k], sizeof bufs[k]);
            cells[NCOLS - 1] = secs(cells[NCOLS - 1], sbuf, sizeof sbuf);
            table_add(&t, cells);
        }
        size_t got = r->elements ? r->elements - 1 : 0;
        freeReplyObject(r);
        if (got < PAGE || off + PAGE >= total) break;
    }
    if (c->json) {
        json_t *o = json_object();
        json_object_set_new(o, "total", json_integer(total));
        json_object_set_new(o, "sessions", list);
        json_print(o);
    } else {
        json_decref(list);
        table_print(&t);
        printf("%lld session%s\n", total, total == 1 ? "" : "s");
    }
    return 0;
}

static void print_list(const char *title, const redisReply *r, const char *name) {
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *v = r->element[i + 1];
        if (strcmp(r->element[i]->str, name) != 0 || v->type != REDIS_REPLY_ARRAY) continue;
        printf("%s (%zu%s):\n", title, v->elements, v->elements == 100 ? ", first 100" : "");
        for (size_t j = 0; j < v->elements; j++) printf("  %s\n", v->element[j]->str);
    }
}

static int cmd_session(ctl *c, const char *id) {
    check_id(id);
    const char *argv[] = { id };
    redisReply *r = fcall(c, "bx_session", 1, argv);
    if (r->elements == 0) {
        freeReplyObject(r);
        die("unknown session '%s'%s", id, NULL);
    }
    if (c->json) {
        json_print(pairs_to_json(r));
    } else {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            char buf[32];
            if (r->element[i + 1]->type == REDIS_REPLY_ARRAY) continue;
            printf("%-14s %s\n", r->element[i]->str, text(r->element[i + 1], buf, sizeof buf));
        }
        print_list("channels", r, "channel_list");
        print_list("queued", r, "queue_list");
        print_list("in flight (batch|message)", r, "inflight_list");
    }
    freeReplyObject(r);
    return 0;
}

/* A glob pattern matching prefix + "ch:*" with the prefix's glob characters escaped. */
static char *channel_pattern(const char *prefix) {
    size_t n = strlen(prefix);
    char *p = malloc(2 * n + 5);
    if (!p) die("out of memory%s", "", NULL);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (strchr("*?[]\\", prefix[i])) p[j++] = '\\';
        p[j++] = prefix[i];
    }
    memcpy(p + j, "ch:*", 5);
    return p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_channels(ctl *c) {
    const char *prefix = bx_store_sync_prefix(c->s);
    size_t plen = strlen(prefix) + 3;
    char *pattern = channel_pattern(prefix);
    char **names = NULL;
    size_t n = 0, cap = 0;
    char cursor[32] = "0";
    do {
        const char *argv[] = { "SCAN", cursor, "MATCH", pattern, "COUNT", "1000" };
        redisReply *r = command(c, 6, argv);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                names = realloc(names, cap * sizeof *names);
                if (!names) die("out of memory%s", "", NULL);
            }
            names[n] = strdup(keys->element[i]->str);
            if (!names[n]) die("out of memory%s", "", NULL);
            n++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    free(pattern);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    static const char *head[] = { "CHANNEL", "SUBSCRIBERS" };
    table t = { .ncols = 2, .head = head };
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = { "SCARD", names[i] };
        char err[512];
        redisReply *r = bx_store_sync_command(c->s, 2, argv, NULL, err, sizeof err);
        /* Someone else's key under our prefix (wrong type) is shown, not fatal. */
        long long count = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        if (r) freeReplyObject(r);
        char num[32];
        snprintf(num, sizeof num, "%lld", count);
        if (c->json) {
            json_t *o = json_object();
            json_object_set_new(o, "channel", json_string(names[i] + plen));
            json_object_set_new(o, "subscribers", json_integer(count));
            json_array_append_new(list, o);
        } else {
            const char *row[] = { names[i] + plen, count < 0 ? "(not a set)" : num };
            table_add(&t, row);
        }
        free(names[i]);
    }
    free(names);
    if (c->json) {
        json_print(list);
    } else {
        json_decref(list);
        table_print(&t);
    }
    return 0;
}

/* The channel and its wildcard names (shared/channel), as a publish computes them. */
static char **channel_names(const char *channel, int *count) {
    if (!bx_channel_valid(channel)) die("invalid channel name '%s'%s", channel, NULL);
    char **wild = NULL;
    int nw = bx_channel_wildcards(channel, &wild);
    if (nw < 0) die("cannot compute the wildcards of '%s'%s", channel, NULL);
    char **all = malloc(sizeof *all * (size_t)(nw + 2));
    if (!all) die("out of memory%s", "", NULL);
    all[0] = strdup(channel);
    for (int i = 0; i < nw; i++) all[i + 1] = wild[i];
    all[nw + 1] = NULL;
    free(wild); /* the strings moved to all */
    *count = nw + 1;
    return all;
}

static int cmd_subscribers(ctl *c, const char *channel) {
    int n;
    char **names = channel_names(channel, &n);
    const char *prefix = bx_store_sync_prefix(c->s);
    static const char *head[] = { "SESSION", "VIA" };
    table t = { .ncols = 2, .head = head };
    json_t *list = json_array();
    json_t *seen = json_object();
    for (int i = 0; i < n; i++) {
        size_t klen = strlen(prefix) + 3 + strlen(names[i]) + 1;
        char *key = malloc(klen);
        if (!key) die("out of memory%s", "", NULL);
        snprintf(key, klen, "%sch:%s", prefix, names[i]);
        const char *argv[] = { "SMEMBERS", key };
        redisReply *r = command(c, 2, argv);
        for (size_t j = 0; j < r->elements; j++) {
            const char *id = r->element[j]->str;
            if (json_object_get(seen, id)) continue; /* once per session, like a publish */
            json_object_set_new(seen, id, json_true());
            if (c->json) {
                json_t *o = json_object();
                json_object_set_new(o, "id", json_string(id));
                json_object_set_new(o, "via", json_string(names[i]));
                json_array_append_new(list, o);
            } else {
                const char *row[] = { id, names[i] };
                table_add(&t, row);
            }
        }
        freeReplyObject(r);
        free(key);
    }
    size_t total = json_object_size(seen);
    json_decref(seen);
    if (c->json) {
        json_print(list);
    } else {
        json_decref(list);
        table_print(&t);
        printf("%zu subscriber%s\n", total, total == 1 ? "" : "s");
    }
    bx_channel_wildcards_free(names);
    return 0;
}

static int cmd_publish(ctl *c, const char *channel, const char *data) {
    if (bx_channel_valid(channel) && bx_channel_classify(channel) == BX_CH_META)
        die("cannot publish to meta channel '%s'%s", channel, NULL);
    json_error_t jerr;
    json_t *d = json_loads(data, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!d) {
        char where[256];
        snprintf(where, sizeof where, "%s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        die("bad JSON: %s%s", where, NULL);
    }
    int n;
    char **names = channel_names(channel, &n);
    json_t *msg = json_pack("{s:s, s:o}", "channel", channel, "data", d);
    char *text_msg = msg ? json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(msg);
    if (!text_msg) die("out of memory%s", "", NULL);
    char mq[32];
    snprintf(mq, sizeof mq, "%ld", c->max_queue);
    const char **argv = malloc(sizeof *argv * (size_t)(8 + n));
    if (!argv) die("out of memory%s", "", NULL);
    const char *fixed[] = { "", "", "0", "1", channel, text_msg, "1", mq };
    memcpy(argv, fixed, sizeof fixed);
    for (int i = 1; i < n; i++) argv[7 + i] = names[i];
    redisReply *r = fcall(c, "bx_publish", 7 + n, argv);
    long long rec = r->element[1]->integer, dropped = r->element[2]->integer;
    long long woken = r->elements > 3 ? r->element[3]->integer : 0;
    freeReplyObject(r);
    if (c->json) {
        json_print(json_pack("{s:I, s:I, s:I}", "recipients", (json_int_t)rec, "dropped", (json_int_t)dropped,
                             "workers_woken", (json_int_t)woken));
    } else {
        printf("published to %lld session%s (%lld dropped: queue full; %lld worker%s woken)\n", rec,
               rec == 1 ? "" : "s", dropped, woken, woken == 1 ? "" : "s");
    }
    free(argv);
    free(text_msg);
    bx_channel_wildcards_free(names);
    return 0;
}

static int cmd_disconnect(ctl *c, const char *id) {
    check_id(id);
    const char *argv[] = { id, "" };
    redisReply *r = fcall(c, "bx_disconnect", 2, argv);
    int ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, "ok") == 0;
    freeReplyObject(r);
    if (!ok) die("unknown session '%s'%s", id, NULL);
    if (c->json) json_print(json_pack("{s:s, s:b}", "id", id, "disconnected", 1));
    else printf("disconnected %s\n", id);
    return 0;
}

static int cmd_stats(ctl *c) {
    redisReply *r = fcall(c, "bx_stats", 0, NULL);
    if (c->json) {
        json_print(pairs_to_json(r));
    } else {
        static const char *head[] = { "NAME", "VALUE" };
        table t = { .ncols = 2, .head = head };
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            char buf[32];
            const char *row[] = { r->element[i]->str, text(r->element[i + 1], buf, sizeof buf) };
            table_add(&t, row);
        }
        table_print(&t);
    }
    freeReplyObject(r);
    return 0;
}

/* The broker's counters in Prometheus text (cluster-wide: every worker's /metrics has the same),
 * for node_exporter's textfile collector or a scrape through a wrapper. */
static int cmd_metrics(ctl *c) {
    redisReply *r = fcall(c, "bx_stats", 0, NULL);
    bx_metrics_input in = { "bayeuxctl", NULL, -1, -1, r, NULL };
    size_t len;
    char *text = bx_metrics_render(&in, &len);
    freeReplyObject(r);
    if (!text) die("out of memory%s", "", NULL);
    fwrite(text, 1, len, stdout);
    free(text);
    return 0;
}

static int cmd_load(ctl *c) {
    char err[512];
    if (bx_store_sync_load(c->s, err, sizeof err) < 0) die("load: %s%s", err, NULL);
    if (c->json) json_print(json_pack("{s:s}", "version", bx_lua_version));
    else printf("loaded function library bayeux version %s\n", bx_lua_version);
    return 0;
}

static int cmd_sweep(ctl *c, const char *max) {
    char *end;
    errno = 0;
    long m = strtol(max, &end, 10);
    if (errno || *end || m < 1 || m > 1000000) usage_error("sweep: MAX must be 1..1000000, got ", max);
    long long total = 0;
    for (;;) {
        const char *argv[] = { max };
        redisReply *r = fcall(c, "bx_sweep", 1, argv);
        long long n = r->integer;
        freeReplyObject(r);
        total += n;
        if (n < m) break;
    }
    if (c->json) json_print(json_pack("{s:I}", "removed", (json_int_t)total));
    else printf("removed %lld expired session%s\n", total, total == 1 ? "" : "s");
    return 0;
}

/* "host:port", "host" or ":port". */
static void parse_redis(const char *v, char **host, int *port) {
    const char *colon = strrchr(v, ':');
    size_t hlen = colon ? (size_t)(colon - v) : strlen(v);
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535) usage_error("--redis: bad port in ", v);
        *port = (int)p;
    }
    if (hlen) {
        free(*host);
        *host = strndup(v, hlen);
    }
}

int main(int argc, char **argv) {
    ctl c = { .max_queue = -1 };
    char *host = strdup(getenv("BX_REDIS_HOST") ? getenv("BX_REDIS_HOST") : "127.0.0.1");
    int port = getenv("BX_REDIS_PORT") ? atoi(getenv("BX_REDIS_PORT")) : 6379;
    const char *prefix = getenv("BX_REDIS_PREFIX") ? getenv("BX_REDIS_PREFIX") : "bayeux:";
    const char *sentinels = getenv("BX_REDIS_SENTINELS");
    const char *master = getenv("BX_REDIS_MASTER_NAME") ? getenv("BX_REDIS_MASTER_NAME") : "mymaster";
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--json") == 0) c.json = 1;
        else if (strcmp(o, "--help") == 0) { usage(stdout); free(host); return 0; }
        else if (strcmp(o, "--redis") == 0 && i + 1 < argc) parse_redis(argv[++i], &host, &port);
        else if (strcmp(o, "--prefix") == 0 && i + 1 < argc) prefix = argv[++i];
        else if (strcmp(o, "--sentinels") == 0 && i + 1 < argc) sentinels = argv[++i];
        else if (strcmp(o, "--master-name") == 0 && i + 1 < argc) master = argv[++i];
        else if (strcmp(o, "--max-queue") == 0 && i + 1 < argc) c.max_queue = atol(argv[++i]);
        else usage_error("unknown option or missing value: ", o);
    }
    if (i >= argc) usage_error("no command", NULL);
    const char *cmd = argv[i++];
    int nargs = argc - i;
    char **args = argv + i;
    /* Check the command line before connecting: a typo should not need Redis. */
    struct { const char *name; int min, max; } table_[] = {
        { "sessions", 0, 0 }, { "session", 1, 1 }, { "channels", 0, 0 }, { "subscribers", 1, 1 },
        { "publish", 2, 2 }, { "disconnect", 1, 1 }, { "stats", 0, 0 }, { "metrics", 0, 0 }, { "load", 0, 0 }, { "sweep", 0, 1 },
    };
    size_t k = 0;
    for (; k < sizeof table_ / sizeof *table_; k++)
        if (strcmp(cmd, table_[k].name) == 0) break;
    if (k == sizeof table_ / sizeof *table_) usage_error("unknown command: ", cmd);
    if (nargs < table_[k].min || nargs > table_[k].max) usage_error("wrong number of arguments for ", cmd);

    char err[512];
    c.s = sentinels && *sentinels ? bx_store_sync_open_sentinel(sentinels, master, prefix, err, sizeof err)
                                  : bx_store_sync_open(host, port, prefix, err, sizeof err);
    if (!c.s) {
        fprintf(stderr, "bayeuxctl: %s\n", err);
        free(host);
        return 1;
    }
    int rc;
    if (strcmp(cmd, "sessions") == 0) rc = cmd_sessions(&c);
    else if (strcmp(cmd, "session") == 0) rc = cmd_session(&c, args[0]);
    else if (strcmp(cmd, "channels") == 0) rc = cmd_channels(&c);
    else if (strcmp(cmd, "subscribers") == 0) rc = cmd_subscribers(&c, args[0]);
    else if (strcmp(cmd, "publish") == 0) rc = cmd_publish(&c, args[0], args[1]);
    else if (strcmp(cmd, "disconnect") == 0) rc = cmd_disconnect(&c, args[0]);
    else if (strcmp(cmd, "stats") == 0) rc = cmd_stats(&c);
    else if (strcmp(cmd, "metrics") == 0) rc = cmd_metrics(&c);
    else if (strcmp(cmd, "load") == 0) rc = cmd_load(&c);
    else rc = cmd_sweep(&c, nargs ? args[0] : "1000");
    bx_store_sync_close(c.s);
    free(host);
    return rc;
}
