/* query.c — form-urlencoded parameters: split, decode, and the JSONP callback name check. */
#include "query.h"

#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *bx_query_decode(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

void bx_query_values_free(char **values, size_t *lens)
{
    for (size_t i = 0; values && values[i]; i++)
        free(values[i]);
    free(values);
    free(lens);
}

int bx_query_values(const char *query, const char *name, char ***out, size_t **lens)
{
    size_t nlen = strlen(name), n = 0;
    char **vals = calloc(1, sizeof *vals);
    size_t *lv = calloc(1, sizeof *lv);
    *out = NULL;
    if (lens)
        *lens = NULL;
    if (!vals || !lv)
        goto fail;
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        if (klen == nlen && strncmp(p, name, nlen) == 0) {
            char **nv = realloc(vals, (n + 2) * sizeof *vals);
            if (nv)
                vals = nv;
            size_t *nl = nv ? realloc(lv, (n + 2) * sizeof *lv) : NULL;
            if (!nv || !nl)
                goto fail;
            lv = nl;
            vals[n] = eq ? bx_query_decode(eq + 1, plen - klen - 1, &lv[n]) : strdup("");
            if (!eq)
                lv[n] = 0;
            if (!vals[n])
                goto fail;
            vals[++n] = NULL;
        }
        p = end ? end + 1 : NULL;
    }
    *out = vals;
    if (lens)
        *lens = lv;
    else
        free(lv);
    return (int)n;
fail:
    bx_query_values_free(vals, lv);
    return -1;
}

int bx_query_callback_valid(const char *name, long max_len)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || (max_len > 0 && len > (size_t)max_len))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}
