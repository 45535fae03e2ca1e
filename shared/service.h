/* service.h — server-side services: handlers for /service/ channels (and remote calls).
 *
 * A registry maps a service channel ("/service/echo") to a handler. The dispatch pipeline
 * calls it for a publish on that channel after the session check (bx_service_touch), with
 * a call object that knows the message, the caller's client id and user id. The handler may
 * queue work on the broker (never block: bx_service_fcall is asynchronous), deliver to a
 * session or a user, publish to a channel, and ends the call exactly once with
 * bx_service_reply (data back to the caller in the same response, the remote-call answer),
 * bx_service_done (success, nothing back) or bx_service_fail (an error reply to the caller).
 * Threading: everything runs on the thread of the store's event base. */
#ifndef BX_SERVICE_H
#define BX_SERVICE_H

#include <stddef.h>
#include <jansson.h>

#include "store.h"

/* Error of a failed call when the handler gave no reason (or it could not be copied). */
#define BX_SERVICE_FAILED "500::service_failed"

typedef struct bx_services bx_services;
typedef struct bx_service_call bx_service_call;

/* A service handler; arg is the one given at registration. Must end call exactly once
 * (now or from a later callback). */
typedef void bx_service_fn(bx_service_call *call, void *arg);
/* Broker reply of bx_service_fcall: reply NULL on failure (err says why); hiredis frees reply. */
typedef void bx_service_cb(bx_service_call *call, const redisReply *reply, const char *err, void *arg);
/* Dispatch side: the call ended (read the outcome with the accessors, then bx_service_call_free). */
typedef void bx_service_end_fn(bx_service_call *call, void *arg);

/* ---- registry ---- */

/* Empty registry; caller frees with bx_services_free. NULL on OOM. */
bx_services *bx_services_new(void);
void bx_services_free(bx_services *s);
/* Register fn for channel (exact name under /service/, copied); replaces an earlier handler.
 * 0 ok, -1 + err (not a service channel, OOM). */
int bx_services_add(bx_services *s, const char *channel, bx_service_fn *fn, void *arg, char *err, size_t errlen);
/* 1 when channel has a handler. */
int bx_services_has(const bx_services *s, const char *channel);
/* The built-ins (shared/services/): /service/echo, /service/members, /service/privatechat,
 * /service/auction/bid. 0 / -1 + err. */
int bx_services_add_builtins(bx_services *s, char *err, size_t errlen);

/* External services (shared/services/external.c): each channel of list ("/service/a,/service/b") is answered
 * by another process through Redis (broker/API.md bx_ext_request/bx_ext_answer). timeout_ms borrowed (must
 * outlive s). 0 / -1 + err. */
int bx_services_add_external(bx_services *s, const char *list, const long *timeout_ms, char *err, size_t errlen);

/* ---- the call, handler side ---- */

/* Borrowed, valid during the call. */
const char *bx_service_channel(const bx_service_call *c);
const json_t *bx_service_message(const bx_service_call *c);
const json_t *bx_service_data(const bx_service_call *c);   /* NULL when the message has none */
const char *bx_service_client_id(const bx_service_call *c);
const char *bx_service_user(const bx_service_call *c);     /* "" when the session has no user */
long bx_service_max_queue(const bx_service_call *c);       /* maxQueue of the caller's transport */
long bx_service_ttl_ms(const bx_service_call *c);          /* session safety-net TTL */

/* Asynchronous FCALL fn 0 <prefix> argv...; cb runs exactly once (also on failure), the call stays
 * open until it is ended. argv copied. 0 queued, -1 + err (broker down: cb NOT called). */
int bx_service_fcall(bx_service_call *c, const char *fn, int argc, const char **argv, const size_t *lens,
                     bx_service_cb *cb, void *arg, char *err, size_t errlen);
/* bx_service_fcall with NUL-terminated strings (argc <= 16); when the broker refuses it the call fails
 * with 503::broker_unavailable (logged) and cb is not called. */
void bx_service_fcall_or_fail(bx_service_call *c, const char *fn, int argc, const char **argv, bx_service_cb *cb);
/* Fire and forget (failures are logged): queue {channel, data} for the session cid (bx_deliver). */
void bx_service_deliver(bx_service_call *c, const char *cid, const char *channel, const json_t *data);
/* Fire and forget: queue {channel, data} for every session of user (bx_deliver_user). */
void bx_service_deliver_user(bx_service_call *c, const char *user, const char *channel, const json_t *data);
/* Fire and forget: server-side publish of data on a broadcast channel (bx_publish, no publisher). */
void bx_service_publish(bx_service_call *c, const char *channel, const json_t *data);

/* End the call. reply: steals data (may be NULL): the caller gets {channel, id, successful:true, data}
 * in this response; done: success without a message; fail: error string copied, replied to the caller. */
void bx_service_reply(bx_service_call *c, json_t *data);
void bx_service_done(bx_service_call *c);
void bx_service_fail(bx_service_call *c, const char *error);

/* ---- the call, dispatch side ---- */

typedef struct bx_service_ctx {
    bx_store *store;       /* borrowed */
    const char *client_id; /* copied */
    const char *user;      /* copied; NULL = "" */
    long max_queue;
    long ttl_ms;
} bx_service_ctx;

/* New call of the handler of msg's channel (msg borrowed; must outlive the call). NULL when there is
 * no handler or on OOM (err says which). end runs once when the handler ends it. */
bx_service_call *bx_service_call_new(const bx_services *s, const json_t *msg, const bx_service_ctx *ctx,
                                     bx_service_end_fn *end, void *arg, char *err, size_t errlen);
/* Run the handler (end may run before this returns). */
void bx_service_call_run(bx_service_call *c);
/* Outcome after end: error string (NULL success), reply message to deliver (caller owns it, NULL none). */
const char *bx_service_call_error(const bx_service_call *c);
json_t *bx_service_call_take_reply(bx_service_call *c);
/* Free c after end. Broker calls of the handler still in flight keep their own state. */
void bx_service_call_free(bx_service_call *c);

#endif
