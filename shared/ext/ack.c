/* ack.c — acknowledge extension: reads ext.ack on handshake/connect, writes it on their replies. */
#include "ext/ack.h"

#include <string.h>

static int ack_incoming(bx_msgctx *m)
{
    json_t *ack = bx_ext_get(m->msg, "ack");
    if (!ack)
        return 0;
    if (strcmp(m->channel, "/meta/handshake") == 0) {
        m->ack_requested = json_is_true(ack);
    } else if (strcmp(m->channel, "/meta/connect") == 0 && json_is_number(ack)) {
        /* JS sends 0 on the first connect, Java tests -1; anything below -1 means "nothing". */
        long long k = bx_ext_int(ack);
        m->ack_connect = 1;
        m->ack_k = k < -1 ? -1 : k;
    }
    return 0;
}

static void ack_outgoing(bx_msgctx *m)
{
    if (!m->reply)
        return;
    if (m->ack_requested && strcmp(m->channel, "/meta/handshake") == 0 &&
        json_is_true(json_object_get(m->reply, "successful")))
        bx_ext_set(m->reply, "ack", json_true());
    else if (m->ack_connect && strcmp(m->channel, "/meta/connect") == 0)
        bx_ext_set(m->reply, "ack", json_integer(m->batch));
}

const bx_ext bx_ext_ack = { .name = "ack", .incoming = ack_incoming, .outgoing = ack_outgoing };
