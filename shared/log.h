/* log.h — levelled logging to stderr or syslog.
 *
 * Levels follow CometD's troubleshooting page: error, warn, info, debug.
 * The level check happens in the macro, before the arguments are evaluated,
 * so debug lines cost nothing when debug is off. Thread-safe: one write(2)
 * per line. */
#ifndef BX_LOG_H
#define BX_LOG_H

typedef enum { BX_LOG_ERROR = 0, BX_LOG_WARN, BX_LOG_INFO, BX_LOG_DEBUG } bx_log_level;

extern volatile int bx_log_current; /* read by the macros; set with bx_log_set_level */

/* Configure once at start; ident is copied. use_syslog=0 writes to stderr. */
void bx_log_open(const char *ident, bx_log_level level, int use_syslog);
/* Change the level at run time (SIGHUP). */
void bx_log_set_level(bx_log_level level);
/* "error"|"warn"|"info"|"debug" (case-insensitive) → *out; 0 ok, -1 unknown name. */
int bx_log_parse_level(const char *s, bx_log_level *out);
/* Name of a level, static string. */
const char *bx_log_level_name(bx_log_level level);
/* Write one line (no trailing newline needed). Prefer the macros below. */
void bx_log_write(bx_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define bx_log(lvl, ...) do { if ((int)(lvl) <= bx_log_current) bx_log_write((lvl), __VA_ARGS__); } while (0)
#define bx_error(...) bx_log(BX_LOG_ERROR, __VA_ARGS__)
#define bx_warn(...)  bx_log(BX_LOG_WARN, __VA_ARGS__)
#define bx_info(...)  bx_log(BX_LOG_INFO, __VA_ARGS__)
#define bx_debug(...) bx_log(BX_LOG_DEBUG, __VA_ARGS__)
#define bx_debug_enabled() (bx_log_current >= BX_LOG_DEBUG)

#endif
