/* request.c — build a bx_req from FastCGI or CGI, read its body under a limit, write responses. */
#include "request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"

#define BODY_CHUNK 16384
#define READ_TIMEOUT_S 10 /* a peer that sends half a body and stalls loses its request */

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

static int read_fcgx(char *buf, int n, void *src)
{
    return FCGX_GetStr(buf, n, src);
}

static int read_stdin(char *buf, int n, void *src)
{
    (void)src;
    return (int)fread(buf, 1, (size_t)n, stdin);
}

/* Read exactly len bytes into a buffer that grows as data arrives (a lying CONTENT_LENGTH
 * cannot make us allocate more than was sent plus one chunk). */
static void read_body(bx_req *q, long len, read_fn *rd, void *src)
{
    size_t cap = 0, have = 0;
    char *buf = NULL;
    while (have < (size_t)len) {
        if (have == cap) {
            size_t want = cap ? cap * 2 : BODY_CHUNK;
            if (want > (size_t)len)
                want = (size_t)len;
            char *nb = realloc(buf, want + 1);
            if (!nb) {
                q->early_status = 500;
                q->early_reason = "out of memory reading the body";
                free(buf);
                return;
            }
            buf = nb;
            cap = want;
        }
        size_t chunk = cap - have < BODY_CHUNK ? cap - have : BODY_CHUNK;
        int got = rd(buf + have, (int)chunk, src);
        if (got <= 0)
            break;
        have += (size_t)got;
    }
    if (have < (size_t)len) {
        q->early_status = 400;
        q->early_reason = "body shorter than CONTENT_LENGTH (peer closed or stalled)";
        free(buf);
        return;
    }
    if (!buf)
        buf = malloc(1);
    if (!buf) {
        q->early_status = 500;
        q->early_reason = "out of memory reading the body";
        return;
    }
    buf[have] = '\0';
    q->body = buf;
    q->body_len = have;
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

static int fill(bx_req *q, param_fn *param, void *psrc, long max_body, read_fn *rd, void *rsrc)
{
    const char *https = param("HTTPS", psrc);
    q->method = dup_or(param("REQUEST_METHOD", psrc), "");
    q->query = dup_or(param("QUERY_STRING", psrc), "");
    q->content_type = dup_or(param("CONTENT_TYPE", psrc), NULL);
    q->cookie = dup_or(param("HTTP_COOKIE", psrc), NULL);
    q->origin = dup_or(param("HTTP_ORIGIN", psrc), NULL);
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
    } else if (len > 0) {
        read_body(q, len, rd, rsrc);
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
    if (fill(q, param_fcgx, r, max_body, read_fcgx, r->in) < 0) {
        bx_req_free(q);
        return NULL;
    }
    q->keepable = !q->early_status && r->keepConnection && stdin_at_end(r);
    return q;
}

bx_req *bx_req_from_cgi(long max_body)
{
    bx_req *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    if (fill(q, param_env, NULL, max_body, read_stdin, NULL) < 0) {
        bx_req_free(q);
        return NULL;
    }
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
    if (!keep || !q->keepable)
        r->keepConnection = 0;
    /* Detach: a close does not do libfcgi's shutdown-and-wait, which would block the reactor */
    FCGX_Detach(r);
    FCGX_Finish_r(r); /* writes FCGI_END_REQUEST; closes unless kept and error-free */
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
