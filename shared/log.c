/* log.c — see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

volatile int bx_log_current = BX_LOG_INFO;
static int use_syslog_flag;
static char ident_buf[64] = "bayeux";

static const char *names[] = { "error", "warn", "info", "debug" };

void bx_log_open(const char *ident, bx_log_level level, int use_syslog) {
    if (ident) snprintf(ident_buf, sizeof ident_buf, "%s", ident);
    bx_log_current = level;
    use_syslog_flag = use_syslog;
    if (use_syslog) openlog(ident_buf, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void bx_log_set_level(bx_log_level level) { bx_log_current = level; }

int bx_log_parse_level(const char *s, bx_log_level *out) {
    if (!s) return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) { *out = (bx_log_level)i; return 0; }
    if (strcasecmp(s, "warning") == 0) { *out = BX_LOG_WARN; return 0; }
    return -1;
}

const char *bx_log_level_name(bx_log_level level) {
    return (level >= BX_LOG_ERROR && level <= BX_LOG_DEBUG) ? names[level] : "?";
}

void bx_log_write(bx_log_level level, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* long lines are truncated, never overflow */
    va_end(ap);
    if (use_syslog_flag) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
        syslog(prio[level], "%s", msg);
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char line[2300];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %-5s %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), ident_buf, (int)getpid(), names[level], msg);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, (size_t)n); /* one write per line keeps threads' lines whole */
    (void)w;
}
