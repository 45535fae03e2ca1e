/* timesync.h — server half of CometD's timesync extension (bayeux-notes.md §4.2).
 *
 * On a meta message with ext.timesync {tc, l, o}: note the arrival time ts (also
 * written into the request's timesync object, as CometD does). On its reply:
 * {tc, ts, p, a} when l == 0 or |a| >= 25 ms, {tc, ts, p} for old clients that
 * send no l, nothing when the client's estimate is already accurate. */
#ifndef BX_EXT_TIMESYNC_H
#define BX_EXT_TIMESYNC_H

#include "ext/ext.h"

#define BX_TIMESYNC_ACCURACY_TARGET 25 /* ms, CometD's TimesyncExtension.accuracyTarget */

extern const bx_ext bx_ext_timesync;

#endif
