/* error.h — CometD's Bayeux error strings and advice objects.
 *
 * Error strings are exactly what CometD 5–8 sends (bayeux-notes.md §2.4);
 * clients branch on them, so they are constants, never formatted ad hoc.
 * Advice builders return new jansson objects (caller owns the reference). */
#ifndef BX_ERROR_H
#define BX_ERROR_H

#include <jansson.h>

#define BX_ERR_CHANNEL_MISSING      "400::channel_missing"
#define BX_ERR_CHANNEL_INVALID      "405::channel_invalid"
#define BX_ERR_MESSAGE_ID_INVALID   "405::message_id_invalid"
#define BX_ERR_SESSION_UNKNOWN      "402::session_unknown"
#define BX_ERR_HANDSHAKE_DENIED     "403::handshake_denied"
#define BX_ERR_HANDSHAKE_FAILED     "403::handshake_failed"
#define BX_ERR_SUBSCRIPTION_MISSING "403::subscription_missing"
#define BX_ERR_SUBSCRIPTION_INVALID "403::subscription_invalid"
#define BX_ERR_SUBSCRIBE_FAILED     "403::subscribe_failed"
#define BX_ERR_UNSUBSCRIBE_FAILED   "403::unsubscribe_failed"
#define BX_ERR_MESSAGE_DELETED      "404::message_deleted"
/* Security-policy denials: "403:<reason>:<what>". */
#define BX_REASON_SECURITY_POLICY   "denied_by_security_policy"
#define BX_REASON_NOT_GRANTING      "denied_by_not_granting"
#define BX_ERR_CREATE_DENIED         "403:denied_by_security_policy:create_denied"
#define BX_ERR_CHANNEL_CREATE_DENIED "403:denied_by_security_policy:channel_create_denied"
#define BX_ERR_SUBSCRIBE_DENIED      "403:denied_by_security_policy:subscribe_denied"
#define BX_ERR_PUBLISH_DENIED        "403:denied_by_security_policy:publish_denied"

/* "403:<reason>:<what>" for a custom reason; returns a new malloc'd string (caller frees), NULL on OOM. */
char *bx_error_denied(const char *reason, const char *what);

/* {reconnect:"retry", interval, timeout[, maxInterval]}; max_interval < 0 omits it. New reference. */
json_t *bx_advice_retry(long interval, long timeout, long max_interval);
/* {reconnect:"handshake", interval:0} — sent with 402 on /meta/connect and /meta/handshake. New reference. */
json_t *bx_advice_handshake(void);
/* {reconnect:"none"} — handshake denied, session disconnected while held. New reference. */
json_t *bx_advice_none(void);
/* multiple-clients advice: {"multiple-clients":true, reconnect:"retry", interval} when interval > 0,
 * else {"multiple-clients":true, reconnect:"none"}. New reference. */
json_t *bx_advice_multiple_clients(long multi_session_interval);

#endif
