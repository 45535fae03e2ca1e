/* conn.c — a WebSocket connection on a bufferevent, framed by wslay.
 *
 * Life: UPGRADE (bounded request head) → OPEN (frames) → CLOSING (our close frame or an
 * HTTP error is being written, bounded by a write timeout) → LINGER (write side shut,
 * input drained until the peer closes or a short timeout) → freed. Closing before the
 * peer has read our close frame would reset the socket and lose the close code.
 *
 * Entry points (libevent callbacks, exchange state changes from store replies) bump
 * depth; the connection is only freed or flushed when the outermost one ends, so no
 * callback ever runs on freed memory and wslay is never re-entered. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <wslay/wslay.h>

#include "deflate.h"
#include "log.h"
#include "message.h"
#include "upgrade.h"

#define UPGRADE_TIMEOUT_S 10  /* to send the request head */
#define CLOSE_WRITE_S      5  /* to read our last bytes once we close */
#define LINGER_S           2  /* to close its side after ours */
#define MAX_LIVE_EXCHANGES 64 /* frames in progress per connection before we stop reading */
#define DEFLATE_MIN 128       /* shorter frames go out uncompressed (RFC 7692 lets each message choose) */

enum { ST_UPGRADE, ST_OPEN, ST_CLOSING, ST_LINGER };

typedef struct wsgroup wsgroup;

typedef struct wsx {
    bx_ws_conn *c;       /* NULL once the connection is gone */
    wsgroup *g;          /* the frame it is a part of (a connect batched with others), or NULL */
    int part;            /* its part in g: 0 before the connect, 1 the connect, 2 after it */
    bx_exchange *ex;
    struct event *timer; /* hold timeout of a parked connect */
    int registered;      /* in the parked table */
    int parked;
    int handshake;       /* the frame was a /meta/handshake: remember its clientId */
    int released;        /* a /meta/disconnect of its session asked it to answer first */
    struct wsx *prev, *next;
} wsx;

/* A pushed batch waiting for its bytes to reach the kernel before bx_confirm (a socket that dies
 * first leaves the batch in flight: the session's next connect sends it again). */
typedef struct pushed {
    char cid[BX_ID_MAX_LEN + 1];
    long long batch;
    uint64_t mark;       /* confirm once c->written reaches it; 0 = frames still queued in wslay */
    struct pushed *next;
} pushed;

struct bx_ws_conn {
    bx_ws_server *srv;
    struct bufferevent *bev;
    wslay_event_context_ptr ws;
    unsigned long id;
    char peer[64];
    char browser[BX_ID_MAX_LEN + 1]; /* browser cookie: binds sessions handshaken here (long-polling fallback) */
    char session[BX_ID_MAX_LEN + 1]; /* clientId of the last handshake on this connection */
    char *authorization; /* the upgrade's Authorization header: authenticates handshakes on this socket */
    int state;
    int depth;           /* nested entry points */
    int drop;            /* free without a close frame (client not reading, I/O error) */
    int reading_paused;
    int deflate;         /* permessage-deflate negotiated: our window bits, 0 none */
    size_t n_ex;
    wsx *exs;
    uint64_t added, written; /* bytes handed to the output buffer / taken from it by the kernel */
    pushed *confirms, **confirms_tail; /* oldest first */
    struct evbuffer_cb_entry *out_cb;
    bx_ws_conn *prev, *next;
};

static void conn_free(bx_ws_conn *c);

/* ---- entry/exit ---------------------------------------------------------- */

static void enter(bx_ws_conn *c)
{
    c->depth++;
}

/* Outermost exit: write what wslay queued, move through the closing states, free. */
static void leave(bx_ws_conn *c)
{
    if (--c->depth > 0)
        return;
    if (c->drop) {
        conn_free(c);
        return;
    }
    if (c->reading_paused && c->n_ex < MAX_LIVE_EXCHANGES / 2 && c->state == ST_OPEN) {
        c->reading_paused = 0; /* frames may wait in the input buffer: read them from the loop */
        bufferevent_enable(c->bev, EV_READ);
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    }
    if (c->ws && c->state == ST_OPEN && wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
        bx_info("ws#%lu %s: frame write failed: dropped", c->id, c->peer);
        conn_free(c);
        return;
    }
    if (c->ws && wslay_event_get_queued_msg_count(c->ws) == 0)
        for (pushed *p = c->confirms; p; p = p->next)
            if (!p->mark)
                p->mark = c->added; /* every pushed frame is in the output buffer now */
    if (c->ws && c->state == ST_OPEN && wslay_event_get_close_sent(c->ws)) {
        unsigned code = wslay_event_get_status_code_sent(c->ws);
        /* 1002 bad framing, 1007 bad UTF-8, 1009 too big come from wslay itself: say so here */
        int answer = wslay_event_get_close_received(c->ws), wslay_own = code == 1002 || code == 1007 || code == 1009;
        bx_log(!answer && wslay_own ? BX_LOG_INFO : BX_LOG_DEBUG, "ws#%lu %s: close %u sent%s", c->id, c->peer, code,
               answer ? " (answering the peer's close)" : "");
        c->state = ST_CLOSING;
        struct timeval w = { CLOSE_WRITE_S, 0 };
        bufferevent_set_timeouts(c->bev, NULL, &w);
    }
    if (c->state == ST_CLOSING && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        c->state = ST_LINGER;
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        struct timeval l = { LINGER_S, 0 };
        bufferevent_set_timeouts(c->bev, &l, NULL);
        bufferevent_enable(c->bev, EV_READ);
    }
}

/* ---- exchanges ------------------------------------------------------------ */

bx_exchange *bx_ws_parked_exchange(void *val)
{
    return val ? ((wsx *)val)->ex : NULL;
}

static void wsx_free(wsx *x)
{
    bx_ws_conn *c = x->c;
    if (x->registered && c)
        bx_parked_remove(c->srv->parked, bx_exchange_client_id(x->ex), bx_exchange_token(x->ex), x);
    if (x->timer)
        event_free(x->timer);
    if (c) {
        if (x->prev)
            x->prev->next = x->next;
        else
            c->exs = x->next;
        if (x->next)
            x->next->prev = x->prev;
        c->n_ex--;
    }
    bx_exchange_free(x->ex);
    free(x);
}

/* Queue one text frame; -1 when the client does not read fast enough (c->drop set). */
static int send_text(bx_ws_conn *c, const char *text, size_t len)
{
    size_t pending = evbuffer_get_length(bufferevent_get_output(c->bev)) + wslay_event_get_queued_msg_length(c->ws);
    if (pending + len > (size_t)c->srv->cfg->wsMaxOutboundBytes) {
        bx_info("ws#%lu %s: client not reading: %zu bytes pending + %zu > ws.maxOutboundBytes %ld: dropped",
                c->id, c->peer, pending, len, c->srv->cfg->wsMaxOutboundBytes);
        c->drop = 1;
        return -1;
    }
    unsigned char *z = NULL;
    size_t zlen = 0;
    char err[160];
    if (c->deflate && len >= DEFLATE_MIN && bx_ws_deflate(text, len, c->deflate, &z, &zlen, err, sizeof err) < 0)
        bx_warn("ws#%lu: %s: frame sent uncompressed", c->id, err);
    int compressed = z && zlen < len;
    struct wslay_event_msg m = { WSLAY_TEXT_FRAME, compressed ? z : (const uint8_t *)text, compressed ? zlen : len };
    int rc = wslay_event_queue_msg_ex(c->ws, &m, compressed ? WSLAY_RSV1_BIT : WSLAY_RSV_NONE);
    free(z); /* wslay copied it */
    if (rc != 0) {
        bx_debug("ws#%lu: frame not queued (wslay %d: connection closing)", c->id, rc);
        return -1;
    }
    return 0;
}

/* Write the deliveries of ex ws.messagesPerFrame per frame, then (replies=1) all its replies in one
 * (with the last deliveries). 0 all queued. */
static int send_frames(bx_ws_conn *c, bx_exchange *ex, int replies)
{
    size_t n = bx_exchange_delivery_count(ex), per = (size_t)c->srv->cfg->wsMessagesPerFrame, len = 0;
    for (size_t i = 0; i < n || replies; i += per) {
        int last = i + per > n;
        char *s = bx_exchange_frame(ex, i, last ? n - i : per, last && replies, &len);
        int rc = s ? send_text(c, s, len) : -1;
        free(s);
        if (rc < 0)
            return -1;
        if (last)
            break;
    }
    return 0;
}

/* Confirm every pushed batch whose bytes the kernel has taken (oldest first). */
static void confirm_written(bx_ws_conn *c)
{
    while (c->confirms && c->confirms->mark && c->written >= c->confirms->mark) {
        pushed *p = c->confirms;
        c->confirms = p->next;
        if (!c->confirms)
            c->confirms_tail = &c->confirms;
        bx_debug("ws#%lu: c=%s pushed batch %lld written: confirmed", c->id, p->cid, p->batch);
        bx_dispatch_confirm(c->srv->d, p->cid, p->batch);
        free(p);
    }
}

/* Output buffer accounting: bytes added, and bytes written to the socket (deleted). */
static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    (void)buf;
    bx_ws_conn *c = arg;
    c->added += info->n_added;
    c->written += info->n_deleted;
    if (info->n_deleted)
        confirm_written(c);
}

/* bx_push gave messages for the held connect of x: frame them now; the connect stays held. */
static void on_push(bx_exchange *ex, long long batch, void *arg)
{
    wsx *x = arg;
    bx_ws_conn *c = x->c;
    if (!c || c->state != ST_OPEN || c->drop) {
        bx_debug("ws push c=%s batch %lld not sent (connection gone): stays in flight", bx_exchange_client_id(ex),
                 batch);
        return;
    }
    pushed *p = calloc(1, sizeof *p);
    if (!p) { /* the exchange counts the batch as written: only a new connection's connect sends it again */
        bx_error("ws#%lu: out of memory: pushed batch %lld of c=%s stays in flight, connection dropped (its next "
                 "connect sends it again)", c->id, batch, bx_exchange_client_id(ex));
        c->drop = 1;
    } else if (send_frames(c, ex, 0) < 0)
        free(p);
    else {
        snprintf(p->cid, sizeof p->cid, "%s", bx_exchange_client_id(ex));
        p->batch = batch;
        *c->confirms_tail = p;
        c->confirms_tail = &p->next;
        bx_debug("ws#%lu: c=%s batch %lld: %zu messages pushed", c->id, p->cid, batch,
                 bx_exchange_delivery_count(ex));
    }
    /* write (or drop) from the loop: leave() may free the connection, which would abandon ex under
     * the dispatch callback that called us */
    bufferevent_trigger(c->bev, EV_WRITE, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void on_hold(bx_exchange *ex, void *arg)
{
    wsx *x = arg;
    if (x->registered || !x->c)
        return;
    if (bx_parked_add(x->c->srv->parked, bx_exchange_client_id(ex), bx_exchange_token(ex), x) == 0)
        x->registered = 1;
    else
        bx_error("parked table: out of memory (token %s will only end by timeout)", bx_exchange_token(ex));
}

static void on_hold_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    wsx *x = arg;
    bx_exchange_expire(x->ex);
}

/* ---- a /meta/connect batched with other messages ------------------------------ */

/* CometD holds such a connect too over websocket (§2.7), and sends the replies of the whole frame
 * together once the connect is answered (its reply last). The pipeline holds only a lone connect, so
 * the frame runs as up to three exchanges in order: the messages before the connect, the connect
 * alone, the messages after it (started once the connect is held or answered). Deliveries go out
 * as each part ends; the replies wait here for the last part. */
struct wsgroup {
    bx_batch todo[3];   /* parts not started yet */
    int next;           /* first part not started */
    int live;           /* parts started and not final */
    int held;           /* the connect part is live and held */
    int stepping, again;
    int failed;         /* out of memory collecting replies: close 1011 at the end */
    json_t *replies;    /* replies of the parts that ended, in that order */
};

static int start_exchange(bx_ws_conn *c, bx_batch *b, wsgroup *g, int part);
static void close_with(bx_ws_conn *c, uint16_t code, const char *reason);

/* Start the parts that may run now; send the frame's replies once every part is final. */
static void group_step(bx_ws_conn *c, wsgroup *g)
{
    if (g->stepping) { /* a part started here ended at once: the outer call goes on */
        g->again = 1;
        return;
    }
    g->stepping = 1;
    do {
        g->again = 0;
        while (g->next < 3 && g->live == g->held) { /* nothing runs but a held connect */
            int part = g->next++;
            if (!g->todo[part].n)
                continue;
            if (!c || c->state != ST_OPEN || c->drop) {
                bx_batch_free(&g->todo[part]);
                continue;
            }
            g->live++;
            if (start_exchange(c, &g->todo[part], g, part) < 0)
                g->live--;
        }
    } while (g->again);
    g->stepping = 0;
    if (g->live > 0 || g->next < 3)
        return;
    if (c && c->state == ST_OPEN && !c->drop) {
        size_t len = 0;
        char *txt = g->failed ? NULL : json_array_size(g->replies) ? bx_json_dump(g->replies, &len) : NULL;
        if (txt)
            send_text(c, txt, len);
        else if (json_array_size(g->replies) || g->failed)
            close_with(c, 1011, "out of memory");
        free(txt);
    }
    json_decref(g->replies);
    free(g);
}

/* Part x of its group ended (REPLY: its replies join the frame's). */
static void group_part_end(wsx *x, bx_exchange *ex, int answered)
{
    wsgroup *g = x->g;
    g->live--;
    if (x->part == 1)
        g->held = 0;
    if (!answered)
        return;
    size_t len = 0;
    char *txt = bx_exchange_frame(ex, bx_exchange_delivery_count(ex), 0, 1, &len); /* replies only */
    json_t *arr = txt ? json_loadb(txt, len, 0, NULL) : NULL;
    if (!arr || json_array_extend(g->replies, arr) < 0)
        g->failed = 1;
    json_decref(arr);
    free(txt);
}

static void on_state(bx_exchange *ex, bx_ex_state st, void *arg)
{
    wsx *x = arg;
    bx_ws_conn *c = x->c;
    if (c)
        enter(c);
    switch (st) {
    case BX_EX_PARKED:
        x->parked = 1;
        if (!c || c->srv->stopping || c->state != ST_OPEN) {
            bx_exchange_abandon(ex); /* ends in GONE, queue kept */
            break;
        }
        if (!x->timer)
            x->timer = evtimer_new(c->srv->base, on_hold_timeout, x);
        struct timeval tv = { bx_exchange_hold_ms(ex) / 1000, (bx_exchange_hold_ms(ex) % 1000) * 1000 };
        if (!x->timer || evtimer_add(x->timer, &tv) < 0) {
            bx_error("connect token %s: no timer (out of memory); answering now", bx_exchange_token(ex));
            bx_exchange_expire(ex);
        } else if (x->g && x->part == 1 && !x->g->held) {
            bx_debug("ws#%lu: c=%s batched connect held; the rest of its frame goes on", c->id,
                     bx_exchange_client_id(ex));
            x->g->held = 1;
            group_step(c, x->g);
        }
        break;
    case BX_EX_REPLY:
        if (c && x->handshake)
            snprintf(c->session, sizeof c->session, "%s", bx_exchange_client_id(ex));
        if (c && c->state == ST_OPEN && !c->drop && send_frames(c, ex, !x->g) == 0)
            bx_exchange_confirm(ex);
        else
            bx_debug("ws reply c=%s not sent (connection gone): delivered messages stay in flight",
                     bx_exchange_client_id(ex));
        /* fall through */
    case BX_EX_HTTP_ERROR: /* only a superseded connect: CometD drops it silently over websocket */
        if (st == BX_EX_HTTP_ERROR)
            bx_debug("ws connect c=%s token %s superseded: dropped without reply", bx_exchange_client_id(ex),
                     bx_exchange_token(ex));
        /* fall through */
    case BX_EX_GONE: {
        wsgroup *g = x->g;
        if (g)
            group_part_end(x, ex, st == BX_EX_REPLY);
        wsx_free(x);
        if (g)
            group_step(c, g);
        break;
    }
    }
    if (c)
        leave(c);
}

/* A parked exchange loses its connection: unpark it (keeps the queue); others just forget it. */
static void detach_all(bx_ws_conn *c)
{
    wsx *x = c->exs;
    c->exs = NULL;
    c->n_ex = 0;
    for (wsx *p = x; p; p = p->next)
        p->c = NULL;
    while (x) {
        wsx *next = x->next;
        x->prev = x->next = NULL;
        if (x->registered) {
            bx_parked_remove(c->srv->parked, bx_exchange_client_id(x->ex), bx_exchange_token(x->ex), x);
            x->registered = 0;
        }
        if (x->parked)
            bx_exchange_abandon(x->ex); /* may free x */
        x = next;
    }
}

/* ---- frames ----------------------------------------------------------------- */

static void close_with(bx_ws_conn *c, uint16_t code, const char *reason)
{
    if (c->ws && c->state == ST_OPEN)
        wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, strlen(reason));
}

/* ws.requireHandshakePerConnection: a clientId other than the one handshaken here is removed, so the
 * pipeline answers 402::session_unknown (with handshake advice on /meta/connect), as CometD does. */
static void own_session_only(bx_ws_conn *c, bx_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const char *cid = bx_msg_client_id(b->msgs[i]);
        if (cid && strcmp(cid, c->session) != 0) {
            bx_debug("ws#%lu: c=%s was not handshaken on this connection (ws.requireHandshakePerConnection) → 402",
                     c->id, cid);
            json_object_del(b->msgs[i], "clientId");
        }
    }
}

/* CometD answers the held /meta/connect of a session before that session's /meta/disconnect reply.
 * The official client closes the socket only when the disconnect reply comes after the connect reply;
 * in the other order the socket stayed open until ws.idleTimeout (and Node clients never exited). */
static void release_held_before_disconnect(bx_ws_conn *c, const bx_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const char *ch = bx_msg_channel(b->msgs[i]), *cid = bx_msg_client_id(b->msgs[i]);
        if (!ch || !cid || strcmp(ch, "/meta/disconnect") != 0)
            continue;
        for (int again = 1; again;) {
            again = 0;
            for (wsx *x = c->exs; x; x = x->next) {
                if (x->parked && !x->released && !strcmp(bx_exchange_client_id(x->ex), cid)) {
                    x->released = 1; /* answered now, or queued while its broker call runs */
                    bx_debug("ws#%lu: c=%s disconnects: its held connect answered first", c->id, cid);
                    bx_exchange_disconnected(x->ex); /* may free x: rescan */
                    again = 1;
                    break;
                }
            }
        }
    }
}

static void on_text(bx_ws_conn *c, const uint8_t *msg, size_t len)
{
    const bx_config *cfg = c->srv->cfg;
    bx_limits lim = { cfg->tr[BX_TR_WEBSOCKET].maxMessageSize, cfg->maxBatchMessages, (int)cfg->maxNestingDepth };
    bx_batch batch = {0};
    bx_parse_error perr;
    if (bx_batch_parse((const char *)msg, len, &lim, &batch, &perr) != BX_PARSE_OK) {
        bx_info("ws#%lu %s: frame of %zu bytes refused (%s: %s): close 1011", c->id, c->peer, len,
                bx_parse_status_name(perr.status), perr.reason);
        close_with(c, 1011, "bad message");
        return;
    }
    if (cfg->wsRequireHandshakePerConnection)
        own_session_only(c, &batch);
    release_held_before_disconnect(c, &batch);
    size_t connects = 0, at = 0;
    for (size_t i = 0; i < batch.n; i++)
        if (bx_msg_channel(batch.msgs[i]) && !strcmp(bx_msg_channel(batch.msgs[i]), "/meta/connect"))
            connects++, at = i;
    if (batch.n == 1 || connects != 1) { /* several connects in one frame: none is held, as over HTTP */
        start_exchange(c, &batch, NULL, 0);
        return;
    }
    wsgroup *g = calloc(1, sizeof *g);
    size_t from[3] = { 0, at, at + 1 }, to[3] = { at, at + 1, batch.n };
    for (int p = 0; g && p < 3; p++) {
        size_t n = to[p] - from[p];
        if (n && !(g->todo[p].msgs = malloc(n * sizeof *batch.msgs)))
            break;
        if (n)
            memcpy(g->todo[p].msgs, batch.msgs + from[p], n * sizeof *batch.msgs);
        g->todo[p].n = n;
    }
    if (!g || !(g->replies = json_array()) || g->todo[0].n + g->todo[1].n + g->todo[2].n != batch.n) {
        if (g)
            for (int p = 0; p < 3; p++)
                free(g->todo[p].msgs);
        free(g);
        bx_batch_free(&batch);
        bx_error("ws#%lu: out of memory: close 1011", c->id);
        close_with(c, 1011, "out of memory");
        return;
    }
    free(batch.msgs); /* the messages now belong to the parts */
    bx_debug("ws#%lu: /meta/connect batched with %zu other messages: run in parts", c->id, batch.n - 1);
    group_step(c, g);
}

/* New exchange for the messages of b (stolen) as part of g (NULL: a whole frame), started. 0 started,
 * -1 out of memory (close 1011 queued). */
static int start_exchange(bx_ws_conn *c, bx_batch *b, wsgroup *g, int part)
{
    wsx *x = calloc(1, sizeof *x);
    if (x) {
        const char *ch = bx_msg_channel(b->msgs[0]);
        x->handshake = b->n == 1 && ch && !strcmp(ch, "/meta/handshake");
        x->g = g;
        x->part = part;
    }
    bx_request_info info = { BX_TR_WEBSOCKET, 0, c->browser[0] ? c->browser : NULL };
    bx_exchange_hooks hooks = { on_hold, on_state, x };
    if (!x || !(x->ex = bx_exchange_new(c->srv->d, b, &info, &hooks))) {
        bx_batch_free(b);
        free(x);
        bx_error("ws#%lu: out of memory: close 1011", c->id);
        close_with(c, 1011, "out of memory");
        return -1;
    }
    bx_exchange_set_push(x->ex, on_push);
    if (c->authorization && bx_exchange_set_authorization(x->ex, c->authorization) < 0)
        bx_error("ws#%lu: out of memory copying the Authorization header (handshake without it)", c->id);
    x->c = c;
    x->next = c->exs;
    if (c->exs)
        c->exs->prev = x;
    c->exs = x;
    if (++c->n_ex >= MAX_LIVE_EXCHANGES && !c->reading_paused) {
        bx_debug("ws#%lu: %zu frames in progress: reading paused", c->id, c->n_ex);
        c->reading_paused = 1;
        bufferevent_disable(c->bev, EV_READ);
    }
    bx_exchange_start(x->ex); /* x may be gone after this */
    return 0;
}

/* RFC 3629 UTF-8 (no overlongs, no surrogates, at most U+10FFFF): wslay checks plain text frames only. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        size_t k = b < 0x80 ? 0 : (b & 0xe0) == 0xc0 ? 1 : (b & 0xf0) == 0xe0 ? 2 : (b & 0xf8) == 0xf0 ? 3 : 4;
        if (k == 4 || i + k >= n)
            return 0;
        unsigned cp = k == 0 ? b : k == 1 ? b & 0x1fu : k == 2 ? b & 0x0fu : b & 0x07u;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3fu);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A permessage-deflate message (RSV1): inflate within ws.maxMessageSize, then as any text frame. */
static void on_compressed(bx_ws_conn *c, const uint8_t *msg, size_t len)
{
    size_t max = (size_t)c->srv->cfg->tr[BX_TR_WEBSOCKET].maxMessageSize, n = 0;
    char *text = NULL;
    int rc = bx_ws_inflate(msg, len, max, &text, &n);
    if (rc == BX_WS_INFLATE_TOO_BIG) {
        bx_info("ws#%lu %s: compressed message of %zu bytes inflates past ws.maxMessageSize %zu: close 1009",
                c->id, c->peer, len, max);
        close_with(c, 1009, "message too big");
    } else if (rc == BX_WS_INFLATE_CORRUPT) {
        bx_info("ws#%lu %s: compressed message of %zu bytes is not valid deflate data: close 1007", c->id, c->peer,
                len);
        close_with(c, 1007, "bad compressed data");
    } else if (rc != BX_WS_INFLATE_OK) {
        bx_error("ws#%lu: out of memory inflating %zu bytes: close 1011", c->id, len);
        close_with(c, 1011, "out of memory");
    } else if (!utf8_valid((const unsigned char *)text, n)) {
        bx_info("ws#%lu %s: compressed text message is not UTF-8: close 1007", c->id, c->peer);
        close_with(c, 1007, "invalid UTF-8");
    } else {
        on_text(c, (const uint8_t *)text, n);
    }
    free(text);
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    bx_ws_conn *c = user;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        if (arg->rsv & WSLAY_RSV1_BIT)
            on_compressed(c, arg->msg, arg->msg_length);
        else
            on_text(c, arg->msg, arg->msg_length);
        break;
    case WSLAY_BINARY_FRAME:
        bx_info("ws#%lu %s: binary frame of %zu bytes: close 1003", c->id, c->peer, arg->msg_length);
        close_with(c, 1003, "binary frames not supported");
        break;
    case WSLAY_CONNECTION_CLOSE:
        bx_debug("ws#%lu: peer closed (code %u)", c->id, arg->status_code);
        break;
    default: /* ping/pong: wslay answers pings itself */
        break;
    }
}

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    bx_ws_conn *c = user;
    if (c->reading_paused) { /* leave frames in the buffer until exchanges finish */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    int n = evbuffer_remove(bufferevent_get_input(c->bev), buf, len);
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    bx_ws_conn *c = user;
    if (evbuffer_add(bufferevent_get_output(c->bev), data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* ---- upgrade ------------------------------------------------------------------- */

static void reply_upgrade(bx_ws_conn *c, const bx_ws_upgrade *u)
{
    size_t len = 0;
    char err[128];
    int fresh = 0;
    if (u->status == 101 && u->browser[0]) {
        snprintf(c->browser, sizeof c->browser, "%s", u->browser);
    } else if (u->status == 101 && bx_browserid_new(c->browser, sizeof c->browser, err, sizeof err) == 0) {
        fresh = 1;
    } else if (u->status == 101) {
        bx_warn("ws#%lu: browser id: %s (sessions of this connection cannot fall back to long-polling)", c->id, err);
        c->browser[0] = '\0';
    }
    char *resp = bx_ws_upgrade_response(u, c->srv->cfg, fresh ? c->browser : NULL, &len);
    if (!resp || bufferevent_write(c->bev, resp, len) < 0) {
        free(resp);
        c->drop = 1;
        return;
    }
    free(resp);
    if (u->status != 101) {
        bx_info("ws#%lu %s%s%s: upgrade refused with HTTP %d: %s", c->id, c->peer, u->forwarded[0] ? " for " : "",
                u->forwarded, u->status, u->reason);
        c->state = ST_CLOSING;
        struct timeval w = { CLOSE_WRITE_S, 0 };
        bufferevent_set_timeouts(c->bev, NULL, &w);
        return;
    }
    static const struct wslay_event_callbacks cbs = { ws_recv, ws_send, NULL, NULL, NULL, NULL, on_msg };
    if (wslay_event_context_server_init(&c->ws, &cbs, c) != 0) {
        bx_error("ws#%lu: wslay context: out of memory", c->id);
        c->drop = 1;
        return;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, (uint64_t)c->srv->cfg->tr[BX_TR_WEBSOCKET].maxMessageSize);
    c->deflate = u->deflate;
    if (c->deflate)
        wslay_event_config_set_allowed_rsv_bits(c->ws, WSLAY_RSV1_BIT); /* RSV1: a compressed message */
    c->state = ST_OPEN;
    long idle = c->srv->cfg->wsIdleTimeout;
    struct timeval tv = { idle / 1000, (idle % 1000) * 1000 };
    bufferevent_set_timeouts(c->bev, idle > 0 ? &tv : NULL, NULL);
    bx_debug("ws#%lu %s%s%s: websocket open", c->id, c->peer, u->forwarded[0] ? " for " : "", u->forwarded);
}

static void read_upgrade(bx_ws_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > BX_WS_HEAD_MAX) {
            bx_ws_upgrade u = { .status = 400, .reason = "request head too long" };
            reply_upgrade(c, &u);
        }
        return;
    }
    size_t len = (size_t)end.pos + 4;
    bx_ws_upgrade u;
    char *head = len <= BX_WS_HEAD_MAX ? malloc(len) : NULL;
    if (!head) {
        u = (bx_ws_upgrade){ .status = 400, .reason = "request head too long" };
    } else {
        evbuffer_remove(in, head, len);
        bx_ws_upgrade_parse(head, len, c->srv->cfg->browserCookieName, &u);
        free(head);
    }
    if (!c->srv->cfg->wsPermessageDeflate)
        u.deflate = 0; /* ws.enableExtension.permessage-deflate = false: offers are declined */
    c->authorization = u.authorization; /* taken over (freed with c) */
    u.authorization = NULL;
    reply_upgrade(c, &u);
}

/* ---- bufferevent callbacks ------------------------------------------------------ */

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    bx_ws_conn *c = arg;
    enter(c);
    if (c->state == ST_UPGRADE)
        read_upgrade(c);
    if (c->state == ST_OPEN && !c->drop && wslay_event_want_read(c->ws) && wslay_event_recv(c->ws) != 0) {
        bx_info("ws#%lu %s: unreadable frames: dropped", c->id, c->peer);
        c->drop = 1;
    }
    if (c->state == ST_CLOSING || c->state == ST_LINGER || (c->state == ST_OPEN && !wslay_event_want_read(c->ws)))
        /* nothing more to read: discard (an incomplete upgrade head stays until its end arrives) */
        evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
    leave(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    bx_ws_conn *c = arg;
    enter(c);
    leave(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    bx_ws_conn *c = arg;
    enter(c);
    if ((what & BEV_EVENT_TIMEOUT) && c->state == ST_OPEN && (what & BEV_EVENT_READING)) {
        bx_info("ws#%lu %s: nothing received for ws.idleTimeout %ld ms: close 1001", c->id, c->peer,
                c->srv->cfg->wsIdleTimeout);
        close_with(c, 1001, "idle timeout");
    } else {
        if (c->state == ST_UPGRADE || c->state == ST_OPEN)
            bx_debug("ws#%lu %s: %s", c->id, c->peer, (what & BEV_EVENT_EOF) ? "peer closed the socket"
                     : (what & BEV_EVENT_TIMEOUT) ? "timeout" : "socket error");
        c->drop = 1;
    }
    leave(c);
}

/* ---- public ---------------------------------------------------------------------- */

bx_ws_conn *bx_ws_conn_new(bx_ws_server *s, evutil_socket_t fd, const char *peer)
{
    bx_ws_conn *c = calloc(1, sizeof *c);
    if (c)
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c || !c->bev) {
        bx_error("ws: out of memory for a new connection from %s", peer);
        free(c);
        evutil_closesocket(fd);
        return NULL;
    }
    c->srv = s;
    c->id = ++s->next_conn_id;
    c->confirms_tail = &c->confirms;
    if (!(c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), on_output, c))) {
        bx_error("ws: out of memory for a new connection from %s", peer);
        bufferevent_free(c->bev);
        free(c);
        return NULL;
    }
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    struct timeval tv = { UPGRADE_TIMEOUT_S, 0 };
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_set_timeouts(c->bev, &tv, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return c;
}

void bx_ws_conn_close_all(bx_ws_server *s, uint16_t code, const char *reason)
{
    for (bx_ws_conn *c = s->conns, *next; c; c = next) {
        next = c->next; /* c may be freed below, never another connection */
        enter(c);
        detach_all(c);
        if (c->state == ST_OPEN)
            close_with(c, code, reason);
        else if (c->state == ST_UPGRADE)
            c->drop = 1;
        leave(c);
    }
}

void bx_ws_conn_drop_all(bx_ws_server *s)
{
    while (s->conns)
        conn_free(s->conns);
}

static void conn_free(bx_ws_conn *c)
{
    bx_ws_server *s = c->srv;
    detach_all(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    bx_debug("ws#%lu %s: closed", c->id, c->peer);
    if (c->ws)
        wslay_event_context_free(c->ws);
    free(c->authorization);
    for (pushed *p = c->confirms, *next; p; p = next) {
        next = p->next;
        bx_debug("ws#%lu: c=%s pushed batch %lld not written before the close: stays in flight", c->id, p->cid,
                 p->batch);
        free(p);
    }
    evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    bufferevent_free(c->bev);
    free(c);
}
