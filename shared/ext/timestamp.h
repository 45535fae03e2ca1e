/* timestamp.h — server half of CometD's timestamp extension (bayeux-notes.md §4.3).
 *
 * Adds a top-level "timestamp" string to every reply and every delivered message, in
 * CometD's default pattern "EEE MMM dd HH:mm:ss zzz yyyy" (server time zone), e.g.
 * "Thu Nov 26 01:45:49 UTC 2026". Enabled by timestampExtension (default off). */
#ifndef BX_EXT_TIMESTAMP_H
#define BX_EXT_TIMESTAMP_H

#include "ext/ext.h"

extern const bx_ext bx_ext_timestamp;

/* Format the current time as above into out (at least 64 bytes). Returns out. */
char *bx_timestamp_now(char *out, size_t len);

#endif
