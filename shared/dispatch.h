/* dispatch.h — the Bayeux pipeline every transport shares (long-polling, callback-polling, later websocket).
 *
 * A transport parses a request body into a bx_batch and hands it to an exchange.
 * The exchange runs each message in order, asynchronously on the store's event
 * base: validate → incoming extensions → session check + one broker call →
 * reply → outgoing extensions (bayeux-notes.md §2.2). Deliveries ride on
 * /meta/connect replies (the broker moves the queue to in-flight at the connect or
 * its drain; for a parked HTTP poll, at the publish, whose wake-up then carries the
 * messages: broker/API.md "Wake-up channel"), which is CometD's
 * metaConnectDeliverOnly ordering, except that a transport with a push hook
 * (websocket) gets messages written while its connect stays held.
 *
 * A lone /meta/connect may be held: the exchange reports BX_EX_PARKED and the
 * transport keeps the request (its timer, its connection watch) and forwards
 * the events that concern it: wake-up, timeout, browser gone, superseded,
 * disconnected, shutdown. Each exchange reaches exactly one final state.
 * Threading: everything here runs on the thread of the store's event base. */
#ifndef BX_DISPATCH_H
#define BX_DISPATCH_H

#include <stddef.h>
#include <jansson.h>

#include "config.h"
#include "message.h"
#include "store.h"

/* Error string of replies when the broker cannot be reached (not a CometD string:
 * CometD has no broker; clients act on the advice, reconnect:"retry"). */
#define BX_ERR_BROKER_UNAVAILABLE "503::broker_unavailable"
#define BX_BROKER_RETRY_INTERVAL  1000 /* ms, advice.interval sent with it */

typedef struct bx_dispatch bx_dispatch;
typedef struct bx_exchange bx_exchange;

typedef enum {
    BX_EX_PARKED = 0, /* not final: a /meta/connect is held; arm a timer of bx_exchange_hold_ms */
    BX_EX_REPLY,      /* final: write bx_exchange_body(), then bx_exchange_confirm, bx_exchange_free */
    BX_EX_HTTP_ERROR, /* final: answer bx_exchange_http_status() without a Bayeux body, then free */
    BX_EX_GONE        /* final after bx_exchange_abandon: write nothing, free */
} bx_ex_state;

typedef struct bx_exchange_hooks {
    /* Called just before the broker call that may park ex: register ex under its
     * client id and token so wake-ups arriving before the answer find it. May be NULL. */
    void (*hold)(bx_exchange *ex, void *arg);
    /* State changes, see bx_ex_state; may run before bx_exchange_start returns. */
    void (*state)(bx_exchange *ex, bx_ex_state st, void *arg);
    void *arg;
} bx_exchange_hooks;

/* Websocket push: after a wake-up of a held connect of a session without the ack extension (and
 * without metaConnectDeliverOnly), the broker moves the queue to in-flight batch `batch` (bx_push)
 * and this is called (with the hooks' arg) with the messages as the exchange's deliveries
 * (bx_exchange_delivery_count, bx_exchange_frame with replies=0), valid during the call only; the
 * connect stays held. Write them, then bx_dispatch_confirm(cid, batch) once they reached the kernel.
 * Must not free or abandon ex. */
typedef void bx_exchange_push_fn(bx_exchange *ex, long long batch, void *arg);

/* Facts about the request the transport knows. Strings are copied. */
typedef struct bx_request_info {
    bx_transport transport;
    int http;              /* HTTP rules: BAYEUX_BROWSER binding, multiple-clients */
    const char *browser;   /* BAYEUX_BROWSER cookie value as received; NULL none */
} bx_request_info;

/* cfg and store are borrowed and must outlive d; worker is copied. NULL + err on OOM. */
bx_dispatch *bx_dispatch_new(const bx_config *cfg, bx_store *store, const char *worker, char *err, size_t errlen);
/* The service registry (built-ins registered): add handlers before the first request. Borrowed. */
struct bx_services *bx_dispatch_services(bx_dispatch *d);
/* Frees d; every exchange must be freed before. */
void bx_dispatch_free(bx_dispatch *d);
/* No broker call is made after this (teardown before bx_store_free): calls fail as "broker down". */
void bx_dispatch_close(bx_dispatch *d);
/* Number of exchanges alive plus confirmations not yet answered by the broker. */
size_t bx_dispatch_live(const bx_dispatch *d);

/* New exchange for one request; steals every message of *batch (batch is emptied), even on failure.
 * NULL on OOM. */
bx_exchange *bx_exchange_new(bx_dispatch *d, bx_batch *batch, const bx_request_info *info,
                             const bx_exchange_hooks *hooks);
/* Before start: the request's HTTP Authorization header (copied; "Bearer <jwt>" authenticates a handshake,
 * shared/auth.h). 0 ok, -1 OOM. */
int bx_exchange_set_authorization(bx_exchange *ex, const char *value);
/* Before start: push messages to a held connect through fn (NULL, the default: deliveries only ride
 * on the connect reply). */
void bx_exchange_set_push(bx_exchange *ex, bx_exchange_push_fn *fn);
/* Run the pipeline; hooks->state reports the outcome (possibly before this returns). */
void bx_exchange_start(bx_exchange *ex);
/* Free ex; in a final state, before start, or parked with no broker call in flight (teardown). */
void bx_exchange_free(bx_exchange *ex);

/* Events for a parked exchange (ignored in a final state; queued while a broker call runs). */
void bx_exchange_wake(bx_exchange *ex);        /* messages arrived: drain, stay parked if none */
void bx_exchange_resync(bx_exchange *ex);      /* wake-ups may be lost: drain (websocket: not a push) */
void bx_exchange_expire(bx_exchange *ex);      /* hold timeout: final drain, reply */
void bx_exchange_abandon(bx_exchange *ex);     /* browser went away: unpark (queue kept), → GONE */
void bx_exchange_superseded(bx_exchange *ex);  /* a newer connect took over: → HTTP_ERROR duplicate code */
void bx_exchange_disconnected(bx_exchange *ex);/* session disconnected: reply with reconnect:"none" */
void bx_exchange_shutdown(bx_exchange *ex);    /* worker stops: final drain, reply with reconnect:"retry" */

/* Accessors. Strings are borrowed, valid while ex lives. */
const char *bx_exchange_client_id(const bx_exchange *ex); /* of the held connect; "" if none */
const char *bx_exchange_token(const bx_exchange *ex);     /* unique in this worker */
long bx_exchange_hold_ms(const bx_exchange *ex);          /* hold time of a parked connect */
int bx_exchange_http_status(const bx_exchange *ex);       /* 200, or the HTTP_ERROR status */
int bx_exchange_busy(const bx_exchange *ex);              /* 1 while a broker call is in flight */
/* BX_EX_REPLY: the JSON array to send (deliveries first, then replies in request order);
 * malloc'd string the caller frees; NULL on OOM. */
char *bx_exchange_body(const bx_exchange *ex, size_t *len);
/* Websocket framing of the same reply: number of delivered messages, and a JSON array of
 * deliveries [from, from+n) followed by every reply when replies=1. Malloc'd, caller frees; NULL on OOM. */
size_t bx_exchange_delivery_count(const bx_exchange *ex);
char *bx_exchange_frame(const bx_exchange *ex, size_t from, size_t n, int replies, size_t *len);
/* New browser id to set as cookie after a successful handshake without one; NULL none. */
const char *bx_exchange_new_browser(const bx_exchange *ex);
/* Call after the reply was handed to the web server: confirms the delivered batch for sessions
 * without the ack extension (bx_confirm), so it is not sent again. Fire and forget. */
void bx_exchange_confirm(bx_exchange *ex);
/* Confirm in-flight batch `batch` of session cid (copied) once it was written (websocket push).
 * Fire and forget; counts in bx_dispatch_live until the broker answers. */
void bx_dispatch_confirm(bx_dispatch *d, const char *cid, long long batch);
/* From now on bx_dispatch_confirm gathers: the first confirm gathered calls schedule(arg), which must make
 * the event loop call bx_dispatch_flush_confirms(d) soon (bayeux-ws: one bx_confirm per loop pass instead
 * of one per written batch). Any other broker call of d sends the gathered confirms first, so a confirm
 * never reaches Redis after a later drain of its session. arg is borrowed. */
void bx_dispatch_gather_confirms(bx_dispatch *d, void (*schedule)(void *arg), void *arg);
/* Send the gathered confirms in one bx_confirm now (nothing when none). */
void bx_dispatch_flush_confirms(bx_dispatch *d);

/* Wake-up channel payload from the store ("w cid...", "s token", "d token", or "p ..." carrying
 * the messages of pushed polls, broker/API.md): calls find to map a client id (kind 'c') or token
 * (kind 't') to a parked exchange, then forwards the event. The payload is only read. */
typedef bx_exchange *bx_exchange_find_fn(char kind, const char *key, void *arg);
void bx_dispatch_wake(const char *payload, size_t len, bx_exchange_find_fn *find, void *arg);

#endif
