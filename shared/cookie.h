/* cookie.h — the BAYEUX_BROWSER Set-Cookie line, one implementation for every transport
 * (long-polling, callback-polling, and bayeux-ws's upgrade, so a websocket session can fall
 * back to long-polling with the same cookie). */
#ifndef BX_COOKIE_H
#define BX_COOKIE_H

#include "config.h"

/* "Set-Cookie: <browserCookieName>=<value>; Path=...[; Domain][; Max-Age][; Secure][; HttpOnly]
 * [; SameSite][; Partitioned]\r\n" from cfg; Secure only when secure=1 (the request came over TLS).
 * Returns a malloc'd string the caller frees, NULL on OOM. */
char *bx_cookie_header(const bx_config *cfg, const char *value, int secure);

#endif
