/* request.h — one HTTP request as bayeux-fcgi sees it (FastCGI or plain CGI).
 *
 * The accept thread builds it (params copied, body read under maxMessageSize),
 * then hands it to the reactor and never touches it again; from then on only the
 * reactor thread uses it, writes the response and frees it. */
#ifndef BX_FCGI_REQUEST_H
#define BX_FCGI_REQUEST_H

#include <stddef.h>
#include <fcgiapp.h>

#include "config.h"
#include "dispatch.h"

struct event;

typedef struct bx_req {
    FCGX_Request *fcgx;   /* owned; NULL in CGI mode (stdin/stdout) */
    char *method;         /* REQUEST_METHOD ("" if absent) */
    char *query;          /* QUERY_STRING ("" if absent) */
    char *content_type;   /* CONTENT_TYPE or NULL */
    char *cookie;         /* HTTP_COOKIE or NULL */
    char *origin;         /* HTTP_ORIGIN or NULL */
    char *path;           /* DOCUMENT_URI, else REQUEST_URI without the query; NULL if neither */
    char *remote_addr;    /* REMOTE_ADDR or NULL */
    char *authorization;  /* HTTP_AUTHORIZATION or NULL ("Bearer <jwt>" authenticates a handshake, shared/auth.h) */
    int secure;           /* HTTPS=on */
    char *body;           /* request body (NUL-terminated when complete), body_len bytes */
    size_t body_len;
    size_t body_cap;
    long body_want;       /* CONTENT_LENGTH */
    int reading;          /* FastCGI input not read to its end yet: finish with bx_req_read(q, 0) */
    int keepable;         /* FastCGI stdin read to its end: the connection can carry another request */
    int early_status;     /* accept thread's verdict: 0 go on, else answer this status */
    const char *early_reason;
    /* reactor side */
    void *owner;          /* the reactor that holds it */
    bx_exchange *ex;
    bx_transport transport;
    char *callback;       /* callback-polling: validated function name */
    struct event *timer;  /* hold timeout of a parked connect */
    struct event *watch;  /* EV_READ on the FastCGI connection while parked */
    int registered;       /* in the parked table */
    struct bx_req *next;  /* accept → reactor queue */
} bx_req;

/* From an accepted FastCGI request (takes ownership of r): params copied, body read
 * when CONTENT_LENGTH <= max_body (else early_status 500, body never read) as far as it
 * can be without waiting; q->reading says the rest must be read with bx_req_read(q, 0)
 * (on a thread that may block). NULL on OOM (r finished and freed). */
bx_req *bx_req_from_fcgx(FCGX_Request *r, long max_body);
/* Continue reading the FastCGI input (body, then the end of stdin). nonblock=1: stop where a
 * read would wait and return 1; else blocking (bounded by the socket's 10 s receive timeout).
 * 0 when done (q->reading cleared; early_status set if the body was cut short). */
int bx_req_read(bx_req *q, int nonblock);
/* From the CGI environment and stdin, same rules. NULL on OOM. */
bx_req *bx_req_from_cgi(long max_body);
/* Write one response: status, content type (NULL: none), extra header lines (each ending
 * in "\r\n", may be NULL), body. 0 when everything was handed to the web server, -1 not. */
int bx_req_respond(bx_req *q, int status, const char *ctype, const char *headers, const char *body, size_t len);
/* 1 if q's body was refused unread (over maxMessageSize) but is small enough to be read and
 * thrown away before closing, so the web server is not cut off while it is still sending.
 * (FastCGI only; the input stream is kept for it.) */
int bx_req_must_discard(const bx_req *q);
/* Read and drop the rest of the body (blocking, bounded by the receive timeout). */
void bx_req_discard(bx_req *q);
/* Finish the FastCGI request (connection closed) and free q and everything it owns. */
void bx_req_free(bx_req *q);
/* Like bx_req_free, but when the web server asked to keep the connection (FCGI_KEEP_CONN), the
 * request was read to its end and the reply went out, the FastCGI connection stays open: returns
 * its FCGX_Request (caller owns it; FCGX_Accept_r on it reads the next request), else NULL. */
FCGX_Request *bx_req_free_keep(bx_req *q);
/* The FastCGI connection's fd, -1 in CGI mode. */
int bx_req_fd(const bx_req *q);
/* Value of cookie `name` from the Cookie header: malloc'd copy or NULL. */
char *bx_req_cookie(const bx_req *q, const char *name);

#endif
