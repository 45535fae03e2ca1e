/* wake.c — payloads of the wake-up channel (broker/API.md "Wake-up channel"): "w", "s" and "d" events
 * go to the parked exchanges they name, a "p" payload carries the messages that answer parked polls.
 * A part of the dispatch pipeline (dispatch_int.h). */
#include "dispatch_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* ---- wake-up payloads -------------------------------------------------- */

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

/* "p <npool> <nsess>\n" <len>:<message>... ("\n<cid> <token> <batch> <i,j,...>[ <prev>]")... */
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
        long long prev = -1; /* a held websocket connect: the batch before this one */
        if (ok && p < end && *p == ' ') {
            p++;
            ok = (prev = parse_num(&p, end)) >= 0 && prev < batch;
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
        bx_dx_exchange_push(ex, batch, prev, pool, idx, n); /* may free ex */
    }
out:
    if (d) {
        d->gather = 0;
        bx_dx_confirm_flush(d);
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
