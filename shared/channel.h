/* channel.h — Bayeux channel names: validation, classes, wildcards, matching.
 *
 * Pure functions over C strings; nothing here allocates except
 * bx_channel_wildcards (documented below). Rules: bayeux-notes.md §2.5. */
#ifndef BX_CHANNEL_H
#define BX_CHANNEL_H

#include <stddef.h>

typedef enum { BX_CH_BROADCAST = 0, BX_CH_META, BX_CH_SERVICE } bx_channel_class;
// "/*", "/**" as the last segment (line comments here: "/*" inside a block comment trips -Wcomment)
typedef enum { BX_WILD_NONE = 0, BX_WILD_ONE, BX_WILD_DEEP } bx_wild_kind;

/* CometD's character validator (validateMessageFields): len >= 2, starts with '/',
 * rest in [A-Za-z0-9] or one of " !#$()*+-./@_{~}". 1 valid, 0 not. */
int bx_channel_chars_valid(const char *name, size_t len);
/* Full structural check used for subscriptions and channel creation: chars valid,
 * no empty segment (a single trailing '/' is tolerated, see bx_channel_normalize),
 * '*' / '**' only as the whole last segment; a '*' inside a longer segment ("/a/b*",
 * a literal for CometD) is refused too. 1 valid, 0 not. */
int bx_channel_valid(const char *name);
/* /meta/... → META, /service/... → SERVICE, everything else → BROADCAST. */
bx_channel_class bx_channel_classify(const char *name);
/* Kind of wildcard in the last segment. */
bx_wild_kind bx_channel_wild(const char *name);
/* Remove surrounding whitespace and one trailing '/' in place ("/foo/" ≡ "/foo"). Returns name. */
char *bx_channel_normalize(char *name);
// Does subscription pattern `pattern` (maybe a wildcard) match channel `name`?
// Exact names match themselves; no wildcard (not even "/**") matches a meta channel.
// Agrees with bx_channel_wildcards: matches(p, n) == (p == n or p in wildcards(n)). 1/0.
int bx_channel_matches(const char *pattern, const char *name);
// The wildcard names that can match `name`, deepest first:
// "/a/b/c" → "/a/b/*", "/a/b/**", "/a/**", "/**". Duplicates of `name` itself
// are left out (for a wildcard name like "/a/*", the list is "/a/**", "/**").
// Meta channels get an empty list (wildcard subscriptions never see them).
// Returns the count (>= 0) and a malloc'd NULL-terminated array of malloc'd
// strings in *out (free with bx_channel_wildcards_free), or -1 on OOM/invalid.
int bx_channel_wildcards(const char *name, char ***out);
void bx_channel_wildcards_free(char **list);

#endif
