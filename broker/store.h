/* store.h — the only C code that speaks to Redis.
 *
 * Two faces over hiredis:
 *  - bx_store: asynchronous, on a libevent base (workers). A command connection
 *    for FCALLs and a subscriber connection for the worker's wake-up channel.
 *    Reconnects with backoff; while Redis is away, bx_store_fcall fails at once
 *    (the caller answers with reconnect:"retry" advice), it never blocks.
 *  - bx_store_sync: blocking (bayeuxctl, tests).
 * Both load the embedded function library with FUNCTION LOAD REPLACE when the
 * loaded bx_version differs from the embedded one. Function contract: broker/API.md. */
#ifndef BX_STORE_H
#define BX_STORE_H

#include <stddef.h>
#include <hiredis/hiredis.h>

struct event_base;

extern const char bx_lua_source[];  /* embedded broker/bayeux.lua (generated) */
extern const char bx_lua_version[];

typedef struct bx_store_opts {
    const char *host;     /* "127.0.0.1" */
    int port;             /* 6379 */
    const char *prefix;   /* "bayeux:" */
    const char *worker;   /* this worker's id (wake channel = prefix "wake:" worker); NULL: no subscriber */
} bx_store_opts;

typedef struct bx_store bx_store;

/* Reply callback: reply is NULL when the command failed (err says why: Redis down,
 * script error). hiredis frees reply after the callback returns: do not free it. */
typedef void bx_store_cb(const redisReply *reply, const char *err, void *arg);
/* Wake-up callback: one payload line from the wake channel (see API.md), not NUL-terminated.
 * Also called with "r" after the subscriber connection came back: wake-ups may have been
 * lost while it was down, so re-drain every parked session (bx_drain final=0). */
typedef void bx_wake_cb(const char *payload, size_t len, void *arg);

/* Create and start connecting (asynchronously). opts strings are copied. NULL + err on failure. */
bx_store *bx_store_new(struct event_base *base, const bx_store_opts *opts,
                       bx_wake_cb *wake, void *wake_arg, char *err, size_t errlen);
/* Find the master through Redis Sentinel: list "host:port,host:port" is asked in order,
 * on the first connect and on every reconnect, for master_name's address (strings copied).
 * Call right after bx_store_new (the first connect waits for the event loop). list NULL or
 * "": no-op (host:port of opts). 0, or -1 + err (bad list, no name). */
int bx_store_set_sentinels(bx_store *s, const char *list, const char *master_name, char *err, size_t errlen);
/* A command pending longer than ms (default 5000) means Redis hangs: the command connection
 * is dropped, every pending callback runs with NULL, and it reconnects. ms <= 0: never. */
void bx_store_set_command_timeout(bx_store *s, int ms);
/* 1 when the command connection is up and the library is loaded. */
int bx_store_ready(const bx_store *s);
/* How long (ms) the command connection has been ready without a break; -1 while it is not.
 * For the sweeper: after an outage, sessions whose clients could not reach the broker should get
 * interval + maxInterval to come back before anything expires them. */
long long bx_store_ready_for_ms(const bx_store *s);
/* FCALL fn 0 prefix argv[0..argc-1]. 0 queued (cb will run exactly once), -1 not connected
 * (cb is NOT called; err set). argv strings are copied before return. */
int bx_store_fcall(bx_store *s, const char *fn, int argc, const char **argv, const size_t *lens,
                   bx_store_cb *cb, void *arg, char *err, size_t errlen);
/* Counters of the command connection since bx_store_new, for metrics. Latency: time from
 * bx_store_fcall to its callback, counted per bucket (bucket b holds calls of at most
 * bx_store_latency_le_us(b) µs that did not fit a smaller one; the last bucket is the rest). */
#define BX_STORE_LATENCY_BUCKETS 10
typedef struct bx_store_stats {
    unsigned long long calls;       /* FCALLs answered or failed (callback ran) */
    unsigned long long failures;    /* of those: NULL reply (Redis away, watchdog) or error reply */
    unsigned long long refused;     /* bx_store_fcall returned -1: not connected */
    unsigned long long reconnects;  /* command connection ready again after being ready before */
    unsigned long long latency_count[BX_STORE_LATENCY_BUCKETS];
    unsigned long long latency_sum_us;
    int ready;                      /* bx_store_ready now */
    int pending;                    /* commands in flight now */
} bx_store_stats;
/* Copy the counters into *out (event-loop thread only, like every call here). */
void bx_store_get_stats(const bx_store *s, bx_store_stats *out);
/* Upper bound of latency bucket b in µs; -1 for the last (+Inf) bucket. */
long long bx_store_latency_le_us(int bucket);
/* Close both connections; pending callbacks run with reply NULL. Frees s.
 * Not from inside a store callback (hiredis defers the free; s would be gone). */
void bx_store_free(bx_store *s);

/* Blocking face. */
typedef struct bx_store_sync bx_store_sync;
/* Connect (timeout 2 s) and load the library if needed. NULL + err on failure. */
bx_store_sync *bx_store_sync_open(const char *host, int port, const char *prefix, char *err, size_t errlen);
/* Same through Sentinel: the first sentinel of list that names master_name's address wins. */
bx_store_sync *bx_store_sync_open_sentinel(const char *list, const char *master_name, const char *prefix,
                                           char *err, size_t errlen);
/* FCALL fn 0 prefix argv...; returns a reply the caller frees with freeReplyObject,
 * or NULL with err set (connection error, or an error reply turned into err). */
redisReply *bx_store_sync_fcall(bx_store_sync *s, const char *fn, int argc, const char **argv,
                                const size_t *lens, char *err, size_t errlen);
/* Any command (argv form); same ownership as above. */
redisReply *bx_store_sync_command(bx_store_sync *s, int argc, const char **argv, const size_t *lens,
                                  char *err, size_t errlen);
/* FUNCTION LOAD REPLACE the embedded library whatever is loaded (bayeuxctl load). 0 ok, -1 + err. */
int bx_store_sync_load(bx_store_sync *s, char *err, size_t errlen);
/* Borrowed; valid until bx_store_sync_close. */
const char *bx_store_sync_prefix(const bx_store_sync *s);
void bx_store_sync_close(bx_store_sync *s);

#endif
