/* ext.h — server-side Bayeux extensions: incoming/outgoing hooks on meta messages.
 *
 * An extension is one const bx_ext in its own file (ack.c, timesync.c), enabled
 * by a conf key and registered by dispatch in conf order. Hooks work on a
 * bx_msgctx: the request message, its reply and the facts the pipeline and the
 * extensions share about that one message. Incoming hooks run after
 * validation, in registration order; outgoing hooks run on the reply in
 * reverse order, as CometD does. Nothing here allocates except through jansson. */
#ifndef BX_EXT_H
#define BX_EXT_H

#include <jansson.h>

/* What the pipeline knows about one message while it is processed. */
typedef struct bx_msgctx {
    json_t *msg;          /* the request message (borrowed, owned by the batch) */
    json_t *reply;        /* its reply (borrowed, owned by the exchange); NULL if none */
    const char *channel;  /* msg's channel (borrowed from msg) */
    /* ack extension */
    int ack_requested;    /* handshake: client sent ext.ack:true and the extension is on */
    int ack_connect;      /* connect: client sent a numeric ext.ack (session uses acks) */
    long long ack_k;      /* connect: that number; -1 when absent */
    long long batch;      /* connect reply: batch number of the delivered messages (0 none) */
    /* timesync extension */
    long long ts;         /* server ms when the message arrived (0: no timesync) */
} bx_msgctx;

typedef struct bx_ext {
    const char *name;
    /* Look at/modify the incoming message; 0 continue, -1 veto (→ 404::message_deleted). May be NULL. */
    int (*incoming)(bx_msgctx *m);
    /* Add to the reply (m->reply non-NULL) before it is written. May be NULL. */
    void (*outgoing)(bx_msgctx *m);
    /* Add to a message delivered to the client (borrowed; broadcast, remote-call result). May be NULL. */
    void (*delivery)(json_t *msg);
} bx_ext;

/* ms since the epoch (CLOCK_REALTIME), what timesync and logs compare against. */
long long bx_ext_now_ms(void);
/* Borrowed msg.ext.<name> or NULL when msg has no ext object or no such member. */
json_t *bx_ext_get(const json_t *msg, const char *name);
/* A JSON number as an integer clamped to ±9e15 (no UB on huge or NaN values); 0 if not a number. */
long long bx_ext_int(const json_t *v);
/* Set reply.ext.<name> = value (steals value, even on failure); creates ext. 0 ok, -1 OOM. */
int bx_ext_set(json_t *reply, const char *name, json_t *value);

#endif
