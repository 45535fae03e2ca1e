/* transport.h — HTTP transports of bayeux-fcgi: long-polling and callback-polling.
 *
 * Decide what a request is (OPTIONS preflight, long-polling POST, callback-polling
 * GET, or nothing Bayeux), turn it into a message batch, and frame the answer
 * (JSON array, or cb([...]) for JSONP) with CORS and BAYEUX_BROWSER cookie headers. */
#ifndef BX_FCGI_TRANSPORT_H
#define BX_FCGI_TRANSPORT_H

#include "config.h"
#include "message.h"
#include "request.h"

/* Parse q into *batch (caller frees; empty on failure). 0: batch ready (q->transport, q->callback set);
 * else the HTTP status to answer at once (200 for an answered OPTIONS preflight is written
 * here: return value 1 means "already answered"). reason says why for the log. */
int bx_transport_decode(const bx_config *cfg, bx_req *q, bx_batch *batch, const char **reason);
/* Write the Bayeux reply of a finished exchange (framing, cookie, CORS). 0 handed over, -1 not. */
int bx_transport_reply(const bx_config *cfg, bx_req *q, bx_exchange *ex);
/* Write an HTTP error status with a short text body and CORS headers. */
int bx_transport_error(const bx_config *cfg, bx_req *q, int status, const char *text);

#endif
