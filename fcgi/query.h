/* query.h — application/x-www-form-urlencoded parsing (query strings, form bodies).
 *
 * Used by callback-polling (?jsonp=cb&message=[...]) and by long-polling form posts
 * (message=...). Pure functions over buffers; nothing is retained. */
#ifndef BX_FCGI_QUERY_H
#define BX_FCGI_QUERY_H

#include <stddef.h>

/* Decode %XX and '+' of s[0..len) into a new malloc'd NUL-terminated string (*out_len set).
 * NULL on OOM or a malformed escape. */
char *bx_query_decode(const char *s, size_t len, size_t *out_len);
/* Every decoded value of parameter `name` in the query, in order: a malloc'd NULL-terminated
 * array of malloc'd strings (free with bx_query_values_free), lengths in *lens (malloc'd,
 * may be NULL if not wanted). Returns the count, -1 on OOM/malformed. */
int bx_query_values(const char *query, const char *name, char ***out, size_t **lens);
void bx_query_values_free(char **values, size_t *lens);
/* 1 if name matches ^[a-zA-Z0-9._-]+$ and is at most max_len chars, else 0. */
int bx_query_callback_valid(const char *name, long max_len);

#endif
