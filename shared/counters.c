/* counters.c — this process's error and queue-depth counters; see counters.h. */
#include "counters.h"

#include <string.h>

#include "dispatch.h"
#include "error.h"
#include "services/builtin.h"

static bx_counters c;
static int listed;

/* The error strings of error.h and the broker's, listed from the start with 0 so a scrape shows
 * every series (rate() needs the 0 before the first error). */
static const char *const known[] = {
    BX_ERR_CHANNEL_MISSING, BX_ERR_CHANNEL_INVALID, BX_ERR_MESSAGE_ID_INVALID, BX_ERR_SESSION_UNKNOWN,
    BX_ERR_HANDSHAKE_DENIED, BX_ERR_HANDSHAKE_FAILED, BX_ERR_SUBSCRIPTION_MISSING,
    BX_ERR_SUBSCRIPTION_INVALID, BX_ERR_SUBSCRIBE_FAILED, BX_ERR_UNSUBSCRIBE_FAILED,
    BX_ERR_MESSAGE_DELETED, BX_ERR_CREATE_DENIED, BX_ERR_CHANNEL_CREATE_DENIED, BX_ERR_SUBSCRIBE_DENIED,
    BX_ERR_PUBLISH_DENIED, BX_ERR_BROKER_UNAVAILABLE, BX_ERR_SERVICE_DATA_INVALID,
};

static void list_known(void)
{
    if (listed)
        return;
    listed = 1;
    for (size_t i = 0; i < sizeof known / sizeof *known && c.n_errors < BX_COUNT_ERRORS; i++)
        if (strlen(known[i]) <= BX_COUNT_ERROR_LEN)
            strcpy(c.errors[c.n_errors++].error, known[i]);
    strcpy(c.errors[BX_COUNT_ERRORS].error, "other");
}

void bx_count_reply(const json_t *reply)
{
    if (!json_is_false(json_object_get(reply, "successful")))
        return;
    const char *error = json_string_value(json_object_get(reply, "error"));
    if (!error)
        return;
    list_known();
    size_t len = strlen(error);
    for (size_t i = 0; i < c.n_errors; i++)
        if (strcmp(c.errors[i].error, error) == 0) {
            c.errors[i].n++;
            return;
        }
    if (len > BX_COUNT_ERROR_LEN || c.n_errors == BX_COUNT_ERRORS) {
        c.errors[BX_COUNT_ERRORS].n++; /* bounded label values: a service cannot grow the scrape */
        return;
    }
    memcpy(c.errors[c.n_errors].error, error, len + 1);
    c.errors[c.n_errors++].n = 1;
}

void bx_count_http_error(int status)
{
    if (status >= 400 && status <= 599)
        c.http[status - 400]++;
}

static const long depth_le[BX_QUEUE_DEPTH_BUCKETS - 1] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000 };

long bx_queue_depth_le(int i)
{
    return i >= 0 && i < BX_QUEUE_DEPTH_BUCKETS - 1 ? depth_le[i] : -1;
}

void bx_count_queue_depth(size_t n)
{
    if (n == 0)
        return;
    int i = 0;
    while (i < BX_QUEUE_DEPTH_BUCKETS - 1 && n > (size_t)depth_le[i])
        i++;
    c.depth[i]++;
    c.depth_sum += n;
}

const bx_counters *bx_counters_get(void)
{
    list_known();
    return &c;
}

void bx_counters_reset(void)
{
    memset(&c, 0, sizeof c);
    listed = 0;
    list_known();
}
