/* fcgi-hello.c — the libfcgi hello-world ceiling for bench/run.sh: THREADS accept threads on one
 * FastCGI socket, each answering every request with a fixed Bayeux-shaped JSON body. It reads and
 * discards the request body, the way any real responder must. Started like a worker by
 * scripts/stack.sh: fcgi-hello -c IGNORED -l SOCKET.
 * Build: cc -O2 -o fcgi-hello bench/fcgi-hello.c -lfcgi -lpthread */
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4

#define BODY "[{\"channel\":\"/x\",\"successful\":true}]"

static int sock_fd = -1;
static char reply[256];
static int reply_len;

static void *serve(void *arg)
{
    (void)arg;
    FCGX_Request req;
    char buf[4096];
    if (FCGX_InitRequest(&req, sock_fd, 0) != 0)
        return NULL;
    while (FCGX_Accept_r(&req) >= 0) {
        while (FCGX_GetStr(buf, (int)sizeof buf, req.in) > 0)
            ;
        FCGX_PutStr(reply, reply_len, req.out);
        FCGX_Finish_r(&req);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "c:l:")) != -1) {
        if (opt == 'l')
            path = optarg;
        else if (opt != 'c') {
            fprintf(stderr, "usage: fcgi-hello [-c ignored] -l SOCKET\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "fcgi-hello: -l SOCKET is required\n");
        return 2;
    }
    reply_len = snprintf(reply, sizeof reply, "Status: 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s", (int)(sizeof BODY - 1), BODY);
    if (FCGX_Init() != 0 || (sock_fd = FCGX_OpenSocket(path, 4096)) < 0) {
        fprintf(stderr, "fcgi-hello: cannot listen on %s\n", path);
        return 1;
    }
    /* libfcgi catches SIGTERM to finish the current request, but its threads stay blocked in
     * accept: take the default action back so the stack's stop is immediate. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, serve, NULL) != 0) {
            fprintf(stderr, "fcgi-hello: pthread_create failed\n");
            return 1;
        }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    return 0;
}
