/* request.c — build a bx_req from FastCGI or CGI, read its body under a limit, write responses. */
#include "request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"

#define BODY_CHUNK 16384
#define READ_TIMEOUT_S 10
#define DISCARD_MAX (64L << 20) /* oversized bodies up to this are read and dropped before closing */ /* a peer that sends half a body and stalls loses its request */

static char *dup_or(const char *s, const char *dflt)
{
    if (!s)
        s = dflt;
    return s ? strdup(s) : NULL;
}

/* CONTENT_LENGTH: -1 absent/invalid, else the value (capped at LONG_MAX by strtol). */
static long content_length(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || *end || n < 0)
        return -1;
    return n;
}

typedef int read_fn(char *buf, int n, void *src);
typedef int wait_fn(void *src); /* 1 if the next read would wait for the peer */

static int read_fcgx(char *buf, int n, void *src)
{
    return FCGX_GetStr(buf, n, ((FCGX_Request *)src)->in);
}

/* libfcgi's private reader state (fcgiapp.c, the same layout since 2.4.0). We only look at
 * buffStop, to know whether bytes of further records are still in its buffer; the layout is
 * checked at run time through reqDataPtr (on a mismatch: assume buffered, i.e. read blocking). */
typedef struct fcgx_stream_data {
    unsigned char *buff;
    int bufflen;
    unsigned char *mBuff;
    unsigned char *buffStop;
    int type, eorStop, skip, contentLen, paddingLen, isAnythingWritten, rawWrite;
    FCGX_Request *reqDataPtr;
} fcgx_stream_data;

/* The next read would wait for the peer: libfcgi's buffer is empty and nothing is on the socket. */
static int wait_fcgx(void *src)
{
    FCGX_Request *r = src;
    const fcgx_stream_data *d = r->in->data;
    if (r->in->isClosed || r->in->rdNext != r->in->stop || d->reqDataPtr != r || r->in->rdNext != d->buffStop)
        return 0;
    struct pollfd p = { .fd = r->ipcFd, .events = POLLIN };
    return poll(&p, 1, 0) == 0;
}

/* Bytes of the current record already in libfcgi's buffer (readable without any wait). */
static size_t avail_fcgx(void *src)
{
    FCGX_Request *r = src;
    return r->in->isClosed ? 0 : (size_t)(r->in->stop - r->in->rdNext);
}

static int read_stdin(char *buf, int n, void *src)
{
    (void)src;
    return (int)fread(buf, 1, (size_t)n, stdin);
}

static void body_fail(bx_req *q, int status, const char *why)
{
    q->early_status = status;
    q->early_reason = why;
    free(q->body);
    q->body = NULL;
    q->body_len = q->body_cap = 0;
}

/* Read up to body_want bytes into a buffer that grows as data arrives (a lying CONTENT_LENGTH
 * cannot make us allocate more than was sent plus one chunk). With wait non-NULL, return 1
 * where a read would block (state kept in q); 0 when complete or failed. */
static int read_body(bx_req *q, read_fn *rd, wait_fn *wait, void *src)
{
    size_t len = (size_t)q->body_want;
    while (q->body_len < len) {
        if (q->body_len == q->body_cap) {
            size_t want = q->body_cap ? q->body_cap * 2 : BODY_CHUNK;
            if (want > len)
                want = len;
            char *nb = realloc(q->body, want + 1);
            if (!nb) {
                body_fail(q, 500, "out of memory reading the body");
                return 0;
            }
            q->body = nb;
            q->body_cap = want;
        }
        size_t chunk = q->body_cap - q->body_len < BODY_CHUNK ? q->body_cap - q->body_len : BODY_CHUNK;
        if (wait) {
            /* FCGX_GetStr waits until it has all it was asked for: ask only for what is there
             * (one byte lets libfcgi take the next record header from its buffer or the socket) */
            size_t avail = avail_fcgx(src);
            if (!avail && wait(src))
                return 1;
            if (chunk > (avail ? avail : 1))
                chunk = avail ? avail : 1;
        }
        int got = rd(q->body + q->body_len, (int)chunk, src);
        if (got <= 0) {
            body_fail(q, 400, "body shorter than CONTENT_LENGTH (peer closed or stalled)");
            return 0;
        }
        q->body_len += (size_t)got;
    }
    if (!q->body && !(q->body = malloc(1))) {
        body_fail(q, 500, "out of memory reading the body");
        return 0;
    }
    q->body[q->body_len] = '\0';
    return 0;
}

typedef const char *param_fn(const char *name, void *src);

static const char *param_fcgx(const char *name, void *src)
{
    return FCGX_GetParam(name, ((FCGX_Request *)src)->envp);
}

static const char *param_env(const char *name, void *src)
{
    (void)src;
    return getenv(name);
}

/* Params and the body verdict; the body itself is read by the caller. */
static int fill(bx_req *q, param_fn *param, void *psrc, long max_body)
{
    const char *https = param("HTTPS", psrc);
    q->method = dup_or(param("REQUEST_METHOD", psrc), "");
    q->query = dup_or(param("QUERY_STRING", psrc), "");
    q->content_type = dup_or(param("CONTENT_TYPE", psrc), NULL);
    q->cookie = dup_or(param("HTTP_COOKIE", psrc), NULL);
    q->origin = dup_or(param("HTTP_ORIGIN", psrc), NULL);
    q->path = dup_or(param("DOCUMENT_URI", psrc), NULL);
    if (!q->path && param("REQUEST_URI", psrc)) { /* lighttpd, Apache: no DOCUMENT_URI */
        const char *u = param("REQUEST_URI", psrc);
        q->path = strndup(u, strcspn(u, "?"));
    }
    q->remote_addr = dup_or(param("REMOTE_ADDR", psrc), NULL);
    q->authorization = dup_or(param("HTTP_AUTHORIZATION", psrc), NULL);
    q->secure = https && (strcasecmp(https, "on") == 0 || strcmp(https, "1") == 0);
    if (!q->method || !q->query)
        return -1;
    long len = content_length(param("CONTENT_LENGTH", psrc));
    if (len < 0) {
        q->early_status = 400;
        q->early_reason = "CONTENT_LENGTH is not a number";
    } else if (max_body > 0 && len > max_body) {
        /* CometD answers an oversized body with 500 (IOException); never read it */
        q->early_status = 500;
        q->early_reason = "body larger than maxMessageSize";
        q->body_want = len;
    } else {
        q->body_want = len;
    }
    return 0;
}

/* Is FastCGI stdin at its end (the empty STDIN record consumed)? Then the connection is clean. */
static int stdin_at_end(FCGX_Request *r)
{
    char c;
    return FCGX_GetStr(&c, 1, r->in) == 0 && FCGX_GetError(r->in) == 0;
}

bx_req *bx_req_from_fcgx(FCGX_Request *r, long max_body)
{
    bx_req *q = calloc(1, sizeof *q);
    if (!q) {
        FCGX_Finish_r(r);
        free(r);
        return NULL;
    }
    q->fcgx = r;
    /* blocking reads/writes on this connection give up instead of hanging a thread */
    struct timeval tv = { READ_TIMEOUT_S, 0 };
    setsockopt(r->ipcFd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(r->ipcFd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (fill(q, param_fcgx, r, max_body) < 0) {
        bx_req_free(q);
        return NULL;
    }
    q->reading = 1;
    bx_req_read(q, 1);
    return q;
}

int bx_req_read(bx_req *q, int nonblock)
{
    FCGX_Request *r = q->fcgx;
    if (!q->reading || !r || !r->in)
        return 0;
    if (!q->early_status && read_body(q, read_fcgx, nonblock ? wait_fcgx : NULL, r))
        return 1;
    if (!q->early_status && r->keepConnection) {
        if (nonblock && wait_fcgx(r))
            return 1;
        q->keepable = stdin_at_end(r);
    }
    /* the body is ours now: give back libfcgi's 8 KB input buffer, a parked poll holds the rest
     * (a refused body still to be dropped keeps it: bx_req_discard reads through it) */
    if (!bx_req_must_discard(q))
        FCGX_FreeStream(&r->in);
    q->reading = 0;
    return 0;
}

bx_req *bx_req_from_cgi(long max_body)
{
    bx_req *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    if (fill(q, param_env, NULL, max_body) < 0) {
        bx_req_free(q);
        return NULL;
    }
    if (!q->early_status)
        read_body(q, read_stdin, NULL, NULL);
    return q;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Server Error" : "Error";
    }
}

static int put(bx_req *q, const char *s, size_t len)
{
    if (!len)
        return 0;
    if (!q->fcgx)
        return fwrite(s, 1, len, stdout) == len ? 0 : -1;
    while (len > 0) { /* FCGX_PutStr takes an int */
        int n = len > (1u << 30) ? 1 << 30 : (int)len;
        if (FCGX_PutStr(s, n, q->fcgx->out) != n)
            return -1;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

int bx_req_respond(bx_req *q, int status, const char *ctype, const char *headers, const char *body, size_t len)
{
    char head[256];
    /* libfcgi's FCGX_FPrintF does not know %zu: format here, write with PutStr */
    int n = snprintf(head, sizeof head, "Status: %d %s\r\n%s%s%sContent-Length: %zu\r\n", status,
                     status_text(status), ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
                     len);
    if (n < 0 || (size_t)n >= sizeof head)
        return -1;
    if (put(q, head, (size_t)n) < 0 || put(q, headers ? headers : "", headers ? strlen(headers) : 0) < 0 ||
        put(q, "\r\n", 2) < 0 || put(q, body, len) < 0)
        return -1;
    if (!q->fcgx)
        return fflush(stdout) == 0 ? 0 : -1;
    if (FCGX_FFlush(q->fcgx->out) < 0 || FCGX_GetError(q->fcgx->out) != 0)
        return -1;
    return 0;
}

int bx_req_fd(const bx_req *q)
{
    return q->fcgx ? q->fcgx->ipcFd : -1;
}

char *bx_req_cookie(const bx_req *q, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *p = q->cookie; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
            return strndup(p + nlen + 1, plen - nlen - 1);
        p = end;
    }
    return NULL;
}

static void free_fields(bx_req *q)
{
    free(q->method);
    free(q->query);
    free(q->content_type);
    free(q->cookie);
    free(q->origin);
    free(q->path);
    free(q->remote_addr);
    free(q->authorization);
    free(q->body);
    free(q->callback);
    free(q);
}

/* Finish the FastCGI request; keep=1 leaves the connection open when that is safe.
 * Returns the still-open request, or NULL when it was closed and freed. */
static FCGX_Request *finish(bx_req *q, int keep)
{
    FCGX_Request *r = q->fcgx;
    if (!r)
        return NULL;
    /* stdout's and stderr's end records and FCGI_END_REQUEST; FCGX_Finish_r skips this itself
     * because the input stream is already gone */
    int failed = r->err && FCGX_FClose(r->err) != 0;
    failed |= r->out && FCGX_FClose(r->out) != 0;
    if (!keep || !q->keepable || failed)
        r->keepConnection = 0;
    /* Detach: a close does not do libfcgi's shutdown-and-wait, which would block the reactor */
    FCGX_Detach(r);
    FCGX_Finish_r(r); /* closes unless kept */
    if (r->ipcFd >= 0)
        return r;
    free(r);
    return NULL;
}

void bx_req_free(bx_req *q)
{
    if (!q)
        return;
    finish(q, 0);
    free_fields(q);
}

FCGX_Request *bx_req_free_keep(bx_req *q)
{
    FCGX_Request *r = finish(q, 1);
    free_fields(q);
    return r;
}

int bx_req_must_discard(const bx_req *q)
{
    return q->fcgx && q->fcgx->in && q->early_status == 500 && q->body_want > 0 &&
           q->body_want <= DISCARD_MAX;
}

void bx_req_discard(bx_req *q)
{
    char buf[BODY_CHUNK];
    long left = q->body_want;
    while (left > 0) {
        int got = FCGX_GetStr(buf, left < (long)sizeof buf ? (int)left : (int)sizeof buf, q->fcgx->in);
        if (got <= 0)
            break;
        left -= got;
    }
}
