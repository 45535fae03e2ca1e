/* timestamp.c — timestamp extension: a "timestamp" field on everything the server sends. */
#include "ext/timestamp.h"

#include <time.h>

char *bx_timestamp_now(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    if (!strftime(out, len, "%a %b %d %H:%M:%S %Z %Y", &tm) && len)
        out[0] = '\0';
    return out;
}

static void stamp(json_t *msg)
{
    char buf[64];
    json_object_set_new(msg, "timestamp", json_string(bx_timestamp_now(buf, sizeof buf)));
}

static void timestamp_outgoing(bx_msgctx *m)
{
    if (m->reply)
        stamp(m->reply);
}

const bx_ext bx_ext_timestamp = { .name = "timestamp", .outgoing = timestamp_outgoing, .delivery = stamp };
