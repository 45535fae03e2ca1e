/* counters.h — this process's event counters for the metrics endpoint (shared/metrics.c).
 *
 * Process-wide and owned by this module (nothing to free). Updated and read on the event-loop
 * thread only (dispatch and the transports run there), so no locking. Each worker counts its
 * own: a scrape of one worker shows that worker's errors and queue depths. */
#ifndef BX_COUNTERS_H
#define BX_COUNTERS_H

#include <stddef.h>

#include <jansson.h>

/* Distinct error strings counted one by one; further ones (only services and custom policies
 * make up new ones) and strings longer than BX_COUNT_ERROR_LEN are counted as "other". */
#define BX_COUNT_ERRORS 48
#define BX_COUNT_ERROR_LEN 96
/* Queue-depth histogram: upper bounds 1 2 5 10 20 50 100 200 500 1000, then +Inf. */
#define BX_QUEUE_DEPTH_BUCKETS 11

typedef struct bx_count_error {
    char error[BX_COUNT_ERROR_LEN + 1];
    unsigned long long n;
} bx_count_error;

typedef struct bx_counters {
    bx_count_error errors[BX_COUNT_ERRORS + 1]; /* the last one: "other" */
    size_t n_errors;                            /* used entries before "other" */
    unsigned long long http[200];               /* HTTP error answers by status - 400 (400..599) */
    unsigned long long depth[BX_QUEUE_DEPTH_BUCKETS]; /* per bucket, not cumulative */
    unsigned long long depth_sum;
} bx_counters;

/* Count a Bayeux reply if it failed: successful:false with an "error" string (CometD's
 * multiple-clients answer has none and is not an error). reply is only read. */
void bx_count_reply(const json_t *reply);
/* Count an HTTP error answer (status 400..599; others are ignored). */
void bx_count_http_error(int status);
/* Observe the length of a session queue handed to its client (n > 0: an empty drain is not observed). */
void bx_count_queue_depth(size_t n);
/* Upper bound of queue-depth bucket i; -1 for the last (+Inf). */
long bx_queue_depth_le(int i);
/* The counters so far (owned by this module, valid for the process's life). */
const bx_counters *bx_counters_get(void);
/* Back to zero, the CometD error strings listed again (tests). */
void bx_counters_reset(void);

#endif
