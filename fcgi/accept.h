/* accept.h — accept threads: FCGX_Accept_r into a fresh heap FCGX_Request, bounded body
 * read, hand-over to the reactor. They never touch a request after handing it over. */
#ifndef BX_FCGI_ACCEPT_H
#define BX_FCGI_ACCEPT_H

#include <stddef.h>

#include "reactor.h"

typedef struct bx_acceptors bx_acceptors;

/* Start n threads accepting on listen_fd. max_body caps CONTENT_LENGTH. NULL + err. */
bx_acceptors *bx_accept_start(bx_reactor *r, int listen_fd, int n, long max_body, char *err, size_t errlen);
/* Stop accepting (any thread): shutdown flag + signal to interrupt accept(). */
void bx_accept_stop(void *acceptors);
/* Join the threads and free a (after bx_accept_stop). */
void bx_accept_join(bx_acceptors *a);
/* Give q to the reactor (any thread). A request whose input is not all there yet (q->reading)
 * is finished first on a short-lived thread of its own, so a stalled peer blocks nobody; at most
 * BX_SLOW_READERS at once, beyond that the request is refused with 503. */
void bx_accept_hand_over(bx_reactor *r, bx_req *q);
/* Free q (after its answer) on a short-lived thread that first reads and drops the rest of
 * its refused body (bx_req_discard); frees it at once when no thread can be had. */
void bx_accept_discard(bx_req *q);
/* Wait until no such reader thread is left (each ends within the 10 s receive timeout). */
void bx_accept_wait_slow(void);

#define BX_SLOW_READERS 64

#endif
