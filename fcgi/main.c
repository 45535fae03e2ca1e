/* main.c — bayeux-fcgi: configuration, logging, listen socket, threads; nothing else.
 *
 *   bayeux-fcgi [-c bayeux.conf] [-l /path.sock | host:port | :port]
 *
 * Without -l (and without "listen" in the conf) the FastCGI socket is fd 0, as under
 * spawn-fcgi or systemd socket activation. Started by a web server as a plain CGI
 * program (fd 0 is not a socket), it answers that one request and exits: in CGI mode
 * a held /meta/connect holds the whole process, one poll per process. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <jansson.h>

#include "accept.h"
#include "config.h"
#include "log.h"
#include "reactor.h"
#include "request.h"

#define LISTEN_BACKLOG 4096
#define ACCEPT_READ_TIMEOUT_S 3

static void usage(void)
{
    fprintf(stderr, "usage: bayeux-fcgi [-c bayeux.conf] [-l /path.sock | host:port | :port]\n"
                    "  no -l: FastCGI on fd 0 (spawn-fcgi, systemd); as a CGI program: one request, then exit\n");
}

/* hostname-pid-random: unique per process, the name of its wake-up channel. The broker
 * takes ids of at most 64 chars of [A-Za-z0-9_.-]: the host name is cut and cleaned to fit. */
static void worker_id(char *out, size_t len)
{
    char host[256] = "host";
    unsigned int rnd = 0;
    gethostname(host, sizeof host - 1);
    host[32] = '\0';
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            *p = '_';
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd)
        rnd = (unsigned int)getpid() * 2654435761u;
    snprintf(out, len, "%.32s-%ld-%08x", host, (long)getpid(), rnd);
}

/* Soft open-file limit up to the hard one: each parked poll holds its FastCGI connection. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int load_config(bx_config *cfg, const char *path, const char *listen)
{
    char err[512];
    if (bx_config_defaults(cfg) < 0) {
        fprintf(stderr, "bayeux-fcgi: out of memory\n");
        return -1;
    }
    if ((path && bx_config_load_file(cfg, path, 1, err, sizeof err) < 0) ||
        bx_config_apply_env(cfg, err, sizeof err) < 0 ||
        (listen && bx_config_set(cfg, "listen", listen, err, sizeof err) < 0)) {
        fprintf(stderr, "bayeux-fcgi: %s\n", err);
        return -1;
    }
    bx_log_level lvl = BX_LOG_INFO;
    if (bx_log_parse_level(cfg->logLevel, &lvl) < 0)
        fprintf(stderr, "bayeux-fcgi: unknown logLevel '%s', using info\n", cfg->logLevel);
    bx_log_open("bayeux-fcgi", lvl, cfg->logSyslog);
    return 0;
}

/* Listen socket from conf: ":fd0" (or empty) → 0; else FCGX_OpenSocket(path or host:port). */
static int open_listen(const bx_config *cfg)
{
    const char *l = cfg->listen;
    if (!l || !*l || strcmp(l, ":fd0") == 0)
        return 0;
    int fd = FCGX_OpenSocket(l, LISTEN_BACKLOG);
    if (fd < 0)
        bx_error("cannot listen on %s", l);
    return fd;
}

/* Accepted connections inherit the listen socket's receive timeout (Linux): a peer that connects
 * and sends no request (a TCP health check, a stalled proxy) holds an accept thread inside
 * FCGX_Accept_r for at most this long. accept() itself then wakes up as often (EAGAIN, ignored). */
static void limit_silent_peers(int fd)
{
    struct timeval tv = { ACCEPT_READ_TIMEOUT_S, 0 };
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        bx_warn("listen socket: SO_RCVTIMEO: %s (a silent peer can hold an accept thread)", strerror(errno));
}

static int serve(bx_config *cfg, const char *path, int cgi)
{
    char err[256], worker[128];
    worker_id(worker, sizeof worker);
    int fd = cgi ? -1 : open_listen(cfg);
    if (!cgi && fd < 0)
        return 1;
    if (!cgi)
        limit_silent_peers(fd);
    bx_reactor *r = bx_reactor_new(cfg, path, worker, cgi, err, sizeof err);
    if (!r) {
        bx_error("start: %s", err);
        return 1;
    }
    long max_body = cfg->tr[BX_TR_LONG_POLLING].maxMessageSize;
    bx_acceptors *a = NULL;
    if (cgi) {
        bx_req *q = bx_req_from_cgi(max_body);
        if (q)
            bx_reactor_submit(r, q);
    } else {
        a = bx_accept_start(r, fd, cfg->acceptThreads > 0 ? (int)cfg->acceptThreads : 1, max_body, err, sizeof err);
        if (!a) {
            bx_error("start: %s", err);
            bx_reactor_free(r);
            return 1;
        }
        bx_reactor_on_stop(r, bx_accept_stop, a);
        bx_info("worker %s listening on %s (%ld accept threads, timeout %ld ms)", worker,
                cfg->listen && *cfg->listen ? cfg->listen : "fd 0", cfg->acceptThreads,
                cfg->tr[BX_TR_LONG_POLLING].timeout);
    }
    int rc = bx_reactor_run(r);
    bx_accept_join(a);
    bx_accept_wait_slow();
    bx_reactor_free(r);
    if (!cgi)
        bx_info("worker %s stopped", worker);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *listen = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "c:l:h")) != -1) {
        switch (opt) {
        case 'c': path = optarg; break;
        case 'l': listen = optarg; break;
        default: usage(); return opt == 'h' ? 0 : 2;
        }
    }
    if (optind < argc) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed FastCGI connection is a write error, not a death */
    raise_fd_limit();         /* one descriptor per parked poll */
    json_object_seed(0);      /* before any thread */
    if (FCGX_Init() != 0) {
        fprintf(stderr, "bayeux-fcgi: FCGX_Init failed\n");
        return 1;
    }
    bx_config cfg;
    if (load_config(&cfg, path, listen) < 0)
        return 2;
    /* no socket given and fd 0 is not a FastCGI listener: a web server ran us as CGI */
    int cgi = !listen && (!cfg.listen || !*cfg.listen || strcmp(cfg.listen, ":fd0") == 0) && FCGX_IsCGI();
    int rc = serve(&cfg, path, cgi);
    bx_config_free(&cfg);
    return rc;
}
