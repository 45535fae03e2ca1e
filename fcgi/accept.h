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

#endif
