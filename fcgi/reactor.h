/* reactor.h — the event loop of bayeux-fcgi: one thread owns every accepted request.
 *
 * libevent base (pthreads enabled) with the store's Redis connections, the dispatch
 * pipeline, the parked table, per-request hold timers and connection watches, the
 * sweeper timer and the signals (SIGTERM/SIGINT graceful stop, SIGHUP log level). */
#ifndef BX_FCGI_REACTOR_H
#define BX_FCGI_REACTOR_H

#include <stddef.h>

#include "config.h"
#include "request.h"

typedef struct bx_reactor bx_reactor;

/* cfg is borrowed (must outlive r); conf_path (may be NULL) is reread on SIGHUP.
 * cgi=1: one request, no accept threads, exit when it is answered. NULL + err. */
bx_reactor *bx_reactor_new(const bx_config *cfg, const char *conf_path, const char *worker, int cgi,
                           char *err, size_t errlen);
/* Hand over an accepted request (any thread; takes ownership). */
void bx_reactor_submit(bx_reactor *r, bx_req *q);
/* An accept thread started / ended (any thread): the stop waits for them. */
void bx_reactor_thread_count(bx_reactor *r, int delta);
/* Set before run: called once on the reactor thread when a graceful stop begins. */
void bx_reactor_on_stop(bx_reactor *r, void (*fn)(void *), void *arg);
/* Run until stopped and drained. 0 clean stop, -1 error. */
int bx_reactor_run(bx_reactor *r);
/* Free everything (store, dispatch, requests still queued). */
void bx_reactor_free(bx_reactor *r);

#endif
