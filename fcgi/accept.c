/* accept.c — N threads around FCGX_Accept_r, each request in a fresh heap FCGX_Request.
 *
 * A parked request outlives the accept loop iteration, so the struct cannot be reused
 * (FCGX_Accept_r would finish it). Threads call FCGX_Accept_r concurrently (Linux needs no
 * accept() serialisation; libfcgi's fcntl lock only orders processes). Stop: FCGX_ShutdownPending plus SIGUSR1
 * to each thread (no SA_RESTART), which makes accept() return. */
#include "accept.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "log.h"
#include "request.h"

struct bx_acceptors {
    bx_reactor *r;
    int fd;
    long max_body;
    int n;
    pthread_t *tids;
    volatile sig_atomic_t stop;
};

static atomic_int slow_readers;

typedef struct slow {
    bx_reactor *r;
    bx_req *q;
} slow;

static void *slow_read(void *arg)
{
    slow *s = arg;
    bx_req_read(s->q, 0);
    bx_reactor_submit(s->r, s->q);
    bx_reactor_thread_count(s->r, -1);
    free(s);
    atomic_fetch_sub(&slow_readers, 1);
    return NULL;
}

void bx_accept_hand_over(bx_reactor *r, bx_req *q)
{
    if (!q->reading) {
        bx_reactor_submit(r, q);
        return;
    }
    slow *s = malloc(sizeof *s);
    pthread_t t;
    pthread_attr_t attr;
    int started = 0;
    if (s && atomic_fetch_add(&slow_readers, 1) < BX_SLOW_READERS) {
        s->r = r;
        s->q = q;
        bx_reactor_thread_count(r, 1);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, slow_read, s) == 0;
        pthread_attr_destroy(&attr);
        if (!started)
            bx_reactor_thread_count(r, -1);
    }
    if (!started) {
        if (s)
            atomic_fetch_sub(&slow_readers, 1);
        free(s);
        q->early_status = 503;
        q->early_reason = "too many request bodies still arriving";
        bx_reactor_submit(r, q);
    }
}

static void *discard_thread(void *arg)
{
    bx_req *q = arg;
    bx_req_discard(q);
    bx_req_free(q);
    atomic_fetch_sub(&slow_readers, 1);
    return NULL;
}

void bx_accept_discard(bx_req *q)
{
    pthread_t t;
    pthread_attr_t attr;
    if (atomic_fetch_add(&slow_readers, 1) < BX_SLOW_READERS) {
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, discard_thread, q);
        pthread_attr_destroy(&attr);
        if (rc == 0)
            return;
    }
    atomic_fetch_sub(&slow_readers, 1);
    bx_req_free(q);
}

void bx_accept_wait_slow(void)
{
    while (atomic_load(&slow_readers) > 0)
        usleep(10000);
}

static void on_usr1(int sig)
{
    (void)sig; /* only interrupts accept() */
}

static void *accept_loop(void *arg)
{
    bx_acceptors *a = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    while (!a->stop) {
        FCGX_Request *fr = calloc(1, sizeof *fr);
        if (!fr || FCGX_InitRequest(fr, a->fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
            bx_error("accept: out of memory");
            free(fr);
            break;
        }
        /* no mutex around it: Linux lets threads accept() on one socket, and FCGX_Accept_r also
         * reads the request's params, which a silent peer would make every thread wait for */
        int rc = a->stop ? -1 : FCGX_Accept_r(fr);
        if (rc < 0) {
            FCGX_Free(fr, 1);
            free(fr);
            if (a->stop)
                break;
            if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EMFILE and friends: do not spin; the reactor frees descriptors meanwhile */
                bx_warn("FCGX_Accept_r failed (%d): %s", rc, strerror(errno));
                usleep(10000);
            }
            continue;
        }
        bx_req *q = bx_req_from_fcgx(fr, a->max_body);
        if (!q) {
            bx_error("accept: out of memory for a request");
            continue;
        }
        bx_accept_hand_over(a->r, q); /* never touched again here */
    }
    bx_reactor_thread_count(a->r, -1);
    return NULL;
}

bx_acceptors *bx_accept_start(bx_reactor *r, int listen_fd, int n, long max_body, char *err, size_t errlen)
{
    bx_acceptors *a = calloc(1, sizeof *a);
    if (!a || !(a->tids = calloc((size_t)n, sizeof *a->tids))) {
        free(a);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->r = r;
    a->fd = listen_fd;
    a->max_body = max_body;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART */
    sigaction(SIGUSR1, &sa, NULL);
    /* threads start with TERM/INT/HUP blocked: those belong to the reactor thread */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (int i = 0; i < n; i++) {
        bx_reactor_thread_count(r, 1);
        int rc = pthread_create(&a->tids[i], NULL, accept_loop, a);
        if (rc != 0) {
            bx_reactor_thread_count(r, -1);
            snprintf(err, errlen, "pthread_create: %s", strerror(rc));
            break;
        }
        a->n++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (a->n == 0) {
        bx_accept_join(a);
        return NULL;
    }
    return a;
}

void bx_accept_stop(void *arg)
{
    bx_acceptors *a = arg;
    a->stop = 1;
    FCGX_ShutdownPending();
    for (int i = 0; i < a->n; i++)
        pthread_kill(a->tids[i], SIGUSR1);
}

void bx_accept_join(bx_acceptors *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n; i++)
        pthread_join(a->tids[i], NULL);
    free(a->tids);
    free(a);
}
