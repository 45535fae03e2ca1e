/* cookie.c — see cookie.h. */
#include "cookie.h"

#include <stdio.h>
#include <stdlib.h>

char *bx_cookie_header(const bx_config *cfg, const char *value, int secure)
{
    char *s = NULL;
    size_t len = 0;
    FILE *h = open_memstream(&s, &len);
    if (!h)
        return NULL;
    fprintf(h, "Set-Cookie: %s=%s; Path=%s", cfg->browserCookieName, value,
            cfg->browserCookiePath ? cfg->browserCookiePath : "/");
    if (cfg->browserCookieDomain && *cfg->browserCookieDomain)
        fprintf(h, "; Domain=%s", cfg->browserCookieDomain);
    if (cfg->browserCookieMaxAge >= 0)
        fprintf(h, "; Max-Age=%ld", cfg->browserCookieMaxAge);
    if (cfg->browserCookieSecure && secure)
        fputs("; Secure", h);
    if (cfg->browserCookieHttpOnly)
        fputs("; HttpOnly", h);
    if (cfg->browserCookieSameSite && *cfg->browserCookieSameSite)
        fprintf(h, "; SameSite=%s", cfg->browserCookieSameSite);
    if (cfg->browserCookiePartitioned)
        fputs("; Partitioned", h);
    fputs("\r\n", h);
    if (ferror(h)) {
        fclose(h);
        free(s);
        return NULL;
    }
    fclose(h);
    return s;
}
