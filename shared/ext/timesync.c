/* timesync.c — timesync extension: NTP-like offset estimation on meta messages. */
#include "ext/timesync.h"

#include <string.h>

static int timesync_incoming(bx_msgctx *m)
{
    if (strncmp(m->channel, "/meta/", 6) != 0)
        return 0;
    json_t *t = bx_ext_get(m->msg, "timesync");
    if (!json_is_object(t) || !json_is_number(json_object_get(t, "tc")))
        return 0;
    m->ts = bx_ext_now_ms();
    json_object_set_new(t, "ts", json_integer(m->ts));
    return 0;
}

static void timesync_outgoing(bx_msgctx *m)
{
    if (!m->reply || !m->ts)
        return;
    json_t *t = bx_ext_get(m->msg, "timesync");
    if (!json_is_object(t))
        return;
    long long tc = bx_ext_int(json_object_get(t, "tc"));
    json_t *jl = json_object_get(t, "l"), *jo = json_object_get(t, "o");
    long long p = bx_ext_now_ms() - m->ts;
    json_t *out = NULL;
    if (json_is_number(jl)) {
        long long l = bx_ext_int(jl);
        long long o = bx_ext_int(jo);
        long long a = tc + o + l - m->ts;
        if (l == 0 || a >= BX_TIMESYNC_ACCURACY_TARGET || a <= -BX_TIMESYNC_ACCURACY_TARGET)
            out = json_pack("{sIsIsIsI}", "tc", (json_int_t)tc, "ts", (json_int_t)m->ts,
                            "p", (json_int_t)p, "a", (json_int_t)a);
    } else {
        out = json_pack("{sIsIsI}", "tc", (json_int_t)tc, "ts", (json_int_t)m->ts, "p", (json_int_t)p);
    }
    if (out)
        bx_ext_set(m->reply, "timesync", out);
}

const bx_ext bx_ext_timesync = { .name = "timesync", .incoming = timesync_incoming, .outgoing = timesync_outgoing };
