/* clientid.h — session and browser identifiers.
 *
 * Client ids carry 128+ bits from getrandom(2), printed in [0-9a-z] with a fixed
 * width. Ids from the network are checked with bx_clientid_valid before they are
 * ever used to build a Redis key. */
#ifndef BX_CLIENTID_H
#define BX_CLIENTID_H

#include <stddef.h>

#define BX_CLIENTID_LEN  26   /* 128 random bits need 25 base-36 digits; one more for 130 bits */
#define BX_BROWSERID_LEN 20   /* cookie value; CometD uses 16+ base-36 chars */
#define BX_ID_MAX_LEN    64   /* longest id we accept from the network */

/* Fill out[BX_CLIENTID_LEN+1] with a new id; 0 ok, -1 if the random source failed (err set). */
int bx_clientid_new(char *out, size_t outlen, char *err, size_t errlen);
/* Same for a BAYEUX_BROWSER cookie value (BX_BROWSERID_LEN chars). */
int bx_browserid_new(char *out, size_t outlen, char *err, size_t errlen);
/* 1 if s is 1..BX_ID_MAX_LEN chars of [0-9a-z], else 0. Network ids failing this are "unknown". */
int bx_clientid_valid(const char *s);

#endif
