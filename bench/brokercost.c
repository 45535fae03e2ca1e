/* brokercost — what the broker's functions cost inside Redis, per call, measured by Redis itself.
 *
 * Runs the long-polling cycle of the reference workload against an otherwise idle Redis, without
 * nginx, workers or generator: CLIENTS sessions subscribed to ROOMS_PER_CLIENT of ROOMS rooms; each
 * round every session parks a /meta/connect (bx_connect, or bx_connect_batch in groups of
 * --connect-batch as a worker gathers them under load), one bx_publish_batch of BATCH messages
 * goes to random rooms (pushing to the parked polls), and every pushed session is confirmed in
 * gathered bx_confirm calls of up to 100 sessions, as a worker does. The time of each phase is the
 * delta of Redis's own INFO commandstats (cmdstat_fcall usec), so client and network time are
 * excluded. Use an empty Redis: every FCALL in it during a phase is counted.
 *
 * Usage: brokercost [--port N] [--host H] [--clients N] [--rooms N] [--rooms-per-client N]
 *                   [--batch N] [--rounds N] [--seed N] [--connect-batch N] [--json]
 * Exit 0 ok, 1 Redis error, 2 bad arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define PREFIX "bxcost:"
#define CONFIRM_GROUP 100

typedef struct opts {
    const char *host;
    long port, clients, rooms, per_client, batch, rounds, seed, connect_batch;
    int json;
} opts;

static bx_store_sync *S;

static void die(const char *what, const char *err)
{
    fprintf(stderr, "brokercost: %s: %s\n", what, err);
    exit(1);
}

static void usage(const char *msg)
{
    if (msg) fprintf(stderr, "brokercost: %s\n", msg);
    fprintf(stderr, "usage: brokercost [--host H] [--port N] [--clients N] [--rooms N] [--rooms-per-client N]\n"
                    "                  [--batch N] [--rounds N] [--seed N] [--connect-batch N] [--json]\n");
    exit(msg ? 2 : 0);
}

static long num(const char *name, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || n < min || n > max) {
        char m[160];
        snprintf(m, sizeof m, "--%s must be an integer within %ld..%ld, got '%s'", name, min, max, v ? v : "");
        usage(m);
    }
    return n;
}

static void parse(int argc, char **argv, opts *o)
{
    *o = (opts){ "127.0.0.1", 6379, 1000, 100, 10, 10, 30, 1, 1, 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(NULL);
        if (!strcmp(a, "--host")) { if (!v) usage("--host needs a value"); o->host = v; }
        else if (!strcmp(a, "--port")) o->port = num("port", v, 1, 65535);
        else if (!strcmp(a, "--clients")) o->clients = num("clients", v, 1, 100000);
        else if (!strcmp(a, "--rooms")) o->rooms = num("rooms", v, 1, 100000);
        else if (!strcmp(a, "--rooms-per-client")) o->per_client = num("rooms-per-client", v, 1, 1000);
        else if (!strcmp(a, "--batch")) o->batch = num("batch", v, 1, 1000);
        else if (!strcmp(a, "--rounds")) o->rounds = num("rounds", v, 1, 100000);
        else if (!strcmp(a, "--seed")) o->seed = num("seed", v, 0, 2147483647);
        else if (!strcmp(a, "--connect-batch")) o->connect_batch = num("connect-batch", v, 1, 1000);
        else {
            char m[160];
            snprintf(m, sizeof m, "unknown argument '%.100s'", a);
            usage(m);
        }
        i++;
    }
    if (o->per_client > o->rooms) usage("--rooms-per-client cannot exceed --rooms");
}

/* FCALL with argv; aborts on any error (the broker must accept every call of this workload). */
static redisReply *fcall(const char *fn, int argc, const char **argv)
{
    char err[256];
    redisReply *r = bx_store_sync_fcall(S, fn, argc, argv, NULL, err, sizeof err);
    if (!r) die(fn, err);
    return r;
}

static redisReply *command(int argc, const char **argv)
{
    char err[256];
    redisReply *r = bx_store_sync_command(S, argc, argv, NULL, err, sizeof err);
    if (!r) die(argv[0], err);
    return r;
}

/* Redis's own total FCALL time so far (µs) and call count. */
static double fcall_usec(long long *calls)
{
    const char *argv[] = { "INFO", "commandstats" };
    redisReply *r = command(2, argv);
    double us = 0;
    *calls = 0;
    const char *p = r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_fcall:calls=") : NULL;
    if (p && sscanf(p, "cmdstat_fcall:calls=%lld,usec=%lf", calls, &us) != 2) die("INFO commandstats", "cannot parse cmdstat_fcall");
    freeReplyObject(r);
    return us;
}

static long long batch_of(long i)
{
    char key[64];
    snprintf(key, sizeof key, PREFIX "{c%ld}:s", i);
    const char *argv[] = { "HGET", key, "bn" };
    redisReply *r = command(3, argv);
    long long bn = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return bn;
}

typedef struct phase { double us; long long calls; } phase;

static void measure_start(double *us0, long long *k0) { *us0 = fcall_usec(k0); }
static void measure_end(phase *p, double us0, long long k0)
{
    long long k1;
    double us1 = fcall_usec(&k1);
    p->us += us1 - us0;
    p->calls += k1 - k0;
}

int main(int argc, char **argv)
{
    opts o;
    parse(argc, argv, &o);
    char err[256], port[16];
    snprintf(port, sizeof port, "%ld", o.port);
    S = bx_store_sync_open(o.host, (int)o.port, PREFIX, err, sizeof err);
    if (!S) die("connect", err);
    srand((unsigned)o.seed);

    char cid[32], br[32], tok[32];
    const char **sub = calloc((size_t)o.per_client + 4, sizeof *sub);
    /* one group of --connect-batch connects: n, then 11 arguments each */
    size_t cn = 1 + 11 * (size_t)o.connect_batch;
    const char **cargs = calloc(cn, sizeof *cargs);
    char (*ccids)[32] = calloc((size_t)o.connect_batch, sizeof *ccids);
    char (*cbrs)[32] = calloc((size_t)o.connect_batch, sizeof *cbrs);
    char (*rooms)[32] = calloc((size_t)o.per_client, sizeof *rooms);
    long long *bn = calloc((size_t)o.clients, sizeof *bn);
    if (!sub || !rooms || !bn || !cargs || !ccids || !cbrs) die("setup", "out of memory");
    for (long i = 0; i < o.clients; i++) {
        snprintf(cid, sizeof cid, "c%ld", i);
        snprintf(br, sizeof br, "b%ld", i);
        const char *h[] = { cid, br, "long-polling", "60000", "600000", "0", "" };
        freeReplyObject(fcall("bx_handshake", 7, h));
        const char *c[] = { cid, br, "w1", "t0", "-1", "0", "30000", "60000", "600000", "1", "long-polling" };
        freeReplyObject(fcall("bx_connect", 11, c));
        /* ROOMS_PER_CLIENT distinct rooms: consecutive from a random start */
        long start = rand() % o.rooms;
        sub[0] = cid, sub[1] = br, sub[2] = "60000", sub[3] = "600000";
        for (long j = 0; j < o.per_client; j++) {
            snprintf(rooms[j], sizeof rooms[j], "/chat/%ld", (start + j) % o.rooms);
            sub[4 + j] = rooms[j];
        }
        freeReplyObject(fcall("bx_subscribe", (int)(4 + o.per_client), sub));
    }

    size_t pn = 8 + 4 * (size_t)o.batch;
    const char **pub = calloc(pn, sizeof *pub);
    char (*chn)[32] = calloc((size_t)o.batch, sizeof *chn);
    char (*msg)[128] = calloc((size_t)o.batch, sizeof *msg);
    const char **conf = calloc(1 + 2 * CONFIRM_GROUP, sizeof *conf);
    char (*ccid)[32] = calloc(CONFIRM_GROUP, sizeof *ccid);
    char (*cbn)[32] = calloc(CONFIRM_GROUP, sizeof *cbn);
    if (!pub || !chn || !msg || !conf || !ccid || !cbn) die("setup", "out of memory");

    phase pc = { 0, 0 }, pp = { 0, 0 }, pf = { 0, 0 };
    long long pushed = 0, seq = 0, k0;
    double us0;
    for (long r = 0; r < o.rounds; r++) {
        snprintf(tok, sizeof tok, "t%ld", r + 1);
        measure_start(&us0, &k0);
        for (long i = 0; i < o.clients;) {
            long g = o.connect_batch < o.clients - i ? o.connect_batch : o.clients - i;
            char gn[16];
            snprintf(gn, sizeof gn, "%ld", g);
            int a = 0;
            cargs[a++] = gn;
            for (long j = 0; j < g; j++, i++) {
                snprintf(ccids[j], sizeof ccids[j], "c%ld", i);
                snprintf(cbrs[j], sizeof cbrs[j], "b%ld", i);
                const char *c[] = { ccids[j], cbrs[j], "w1", tok, "-1", "1", "30000", "60000", "600000", "1",
                                    "long-polling" };
                memcpy(cargs + a, c, sizeof c);
                a += 11;
            }
            if (o.connect_batch == 1)
                freeReplyObject(fcall("bx_connect", 11, cargs + 1));
            else
                freeReplyObject(fcall("bx_connect_batch", a, cargs));
        }
        measure_end(&pc, us0, k0);

        /* args: cid browser max_interval_ms ttl_ms broadcast_to_publisher max_queue n, then per message
         * channel message mid nwild */
        int a = 0;
        pub[a++] = "c0", pub[a++] = "b0", pub[a++] = "60000", pub[a++] = "600000", pub[a++] = "0", pub[a++] = "0";
        char nb[16];
        snprintf(nb, sizeof nb, "%ld", o.batch);
        pub[a++] = nb;
        for (long j = 0; j < o.batch; j++) {
            snprintf(chn[j], sizeof chn[j], "/chat/%ld", (long)(rand() % o.rooms));
            snprintf(msg[j], sizeof msg[j], "{\"channel\":\"%s\",\"data\":{\"p\":0,\"s\":%lld,\"t\":1234567890,"
                     "\"x\":\"0123456789012345678901234567890123\"}}", chn[j], seq++);
            pub[a++] = chn[j], pub[a++] = msg[j], pub[a++] = "", pub[a++] = "0";
        }
        measure_start(&us0, &k0);
        freeReplyObject(fcall("bx_publish_batch", a, pub));
        measure_end(&pp, us0, k0);

        /* the pushed sessions are those whose batch number moved; confirm them in groups */
        int nq = 0;
        for (long i = 0; i <= o.clients; i++) {
            if (i < o.clients) {
                long long b = batch_of(i);
                if (b != bn[i]) {
                    bn[i] = b;
                    pushed++;
                    snprintf(ccid[nq], sizeof ccid[nq], "c%ld", i);
                    snprintf(cbn[nq], sizeof cbn[nq], "%lld", b);
                    nq++;
                }
            }
            if (nq == CONFIRM_GROUP || (i == o.clients && nq)) {
                for (int q = 0; q < nq; q++) conf[2 * q] = ccid[q], conf[2 * q + 1] = cbn[q];
                measure_start(&us0, &k0);
                freeReplyObject(fcall("bx_confirm", 2 * nq, conf));
                measure_end(&pf, us0, k0);
                nq = 0;
            }
        }
    }

    long long connects = (long long)o.clients * o.rounds; /* pc.calls counts FCALLs, not connects */
    double connect_us = connects ? pc.us / (double)connects : 0;
    double publish_us = pp.calls ? pp.us / (double)pp.calls : 0;
    double push_per_pub = (double)pushed / (double)o.rounds;
    double confirm_us = pushed ? pf.us / (double)pushed : 0;
    fprintf(stderr, "brokercost: %ld sessions, %ld rooms × %ld, batches of %ld, %ld rounds: "
            "bx_connect %.1f µs (%ld per call), "
            "bx_publish_batch %.0f µs (%.0f pushes: %.1f µs each), bx_confirm %.1f µs per session\n",
            o.clients, o.rooms, o.per_client, o.batch, o.rounds, connect_us, o.connect_batch, publish_us,
            push_per_pub, push_per_pub > 0 ? publish_us / push_per_pub : 0, confirm_us);
    if (o.json)
        printf("{\"label\":\"broker-cost\",\"clients\":%ld,\"rooms\":%ld,\"roomsPerClient\":%ld,\"batch\":%ld,"
               "\"rounds\":%ld,\"connectBatch\":%ld,\"connectUs\":%.2f,\"publishBatchUs\":%.1f,\"pushesPerPublish\":%.1f,"
               "\"usPerPush\":%.2f,\"confirmUsPerSession\":%.2f}\n",
               o.clients, o.rooms, o.per_client, o.batch, o.rounds, o.connect_batch, connect_us, publish_us,
               push_per_pub, push_per_pub > 0 ? publish_us / push_per_pub : 0, confirm_us);
    free(cargs), free(ccids), free(cbrs);
    free(sub), free(rooms), free(bn), free(pub), free(chn), free(msg), free(conf), free(ccid), free(cbn);
    bx_store_sync_close(S);
    return 0;
}
