/* metrics.h — Prometheus text exposition of a worker's and the broker's numbers.
 *
 * Pure: the caller gathers the inputs (store counters, its own gauges, the bx_stats reply
 * of the broker) and gets the text of one scrape back. Cluster-wide counters come from the
 * broker (every worker reports the same values: aggregate with max, not sum); worker-local
 * ones carry a worker label. */
#ifndef BX_METRICS_H
#define BX_METRICS_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "counters.h"
#include "store.h"

typedef struct bx_metrics_input {
    const char *worker;           /* worker id, the "worker" label */
    const bx_store_stats *store;  /* command-connection counters; NULL: left out */
    long parked;                  /* /meta/connects held by this process now; < 0: left out */
    long exchanges;               /* requests in progress (incl. parked); < 0: left out */
    const redisReply *broker;     /* reply of FCALL bx_stats (flat name, value array); NULL: Redis away */
    const bx_counters *counts;    /* this process's errors and queue depths; NULL: left out */
} bx_metrics_input;

/* The text of one scrape (text/plain; version=0.0.4). malloc'd, the caller frees; NULL on OOM. */
char *bx_metrics_render(const bx_metrics_input *in, size_t *len);
/* 1 if addr is allowed by list: comma-separated exact addresses, or "*" for any. 0 otherwise
 * (also for a NULL/empty list or address). */
int bx_metrics_allowed(const char *list, const char *addr);

#endif
