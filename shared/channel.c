/* channel.c — Bayeux channel names (bayeux-notes.md §2.5). */
#include "channel.h"

#include <stdlib.h>
#include <string.h>

/* CometD's BayeuxServerImpl.validate character set, besides [A-Za-z0-9]. */
static int channel_char_ok(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != '\0' && strchr(" !#$()*+-./@_{~}", c) != NULL;
}

int bx_channel_chars_valid(const char *name, size_t len) {
    if (!name || len < 2 || name[0] != '/') return 0;
    for (size_t i = 1; i < len; i++)
        if (!channel_char_ok((unsigned char)name[i])) return 0;
    return 1;
}

/* Length without one tolerated trailing '/' (but never below "/x"). */
static size_t effective_len(const char *name) {
    size_t len = strlen(name);
    if (len > 2 && name[len - 1] == '/') len--;
    return len;
}

/* Structure check over name[0..len): no empty segment, "*" and "**" only as the whole
 * last segment, no '*' mixed with other characters (we refuse what CometD would take
 * as a literal "/a/b*": it would read as a pattern to humans and to our broker keys). */
static int structure_valid(const char *name, size_t len) {
    size_t seg = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && name[i] != '/') continue;
        size_t slen = i - seg;
        if (slen == 0) return 0;
        const char *s = name + seg;
        if (memchr(s, '*', slen)) {
            int wild = (slen == 1) || (slen == 2 && s[0] == '*' && s[1] == '*');
            if (!wild || i != len) return 0;
        }
        seg = i + 1;
    }
    return 1;
}

int bx_channel_valid(const char *name) {
    if (!name) return 0;
    size_t full = strlen(name);
    if (!bx_channel_chars_valid(name, full)) return 0;
    return structure_valid(name, effective_len(name));
}

bx_channel_class bx_channel_classify(const char *name) {
    if (!name) return BX_CH_BROADCAST;
    if (strncmp(name, "/meta/", 6) == 0) return BX_CH_META;
    if (strncmp(name, "/service/", 9) == 0) return BX_CH_SERVICE;
    return BX_CH_BROADCAST;
}

/* Wildcard kind of name[0..len). */
static bx_wild_kind wild_of(const char *name, size_t len) {
    if (len >= 3 && memcmp(name + len - 3, "/**", 3) == 0) return BX_WILD_DEEP;
    if (len >= 2 && memcmp(name + len - 2, "/*", 2) == 0) return BX_WILD_ONE;
    return BX_WILD_NONE;
}

bx_wild_kind bx_channel_wild(const char *name) {
    if (!name) return BX_WILD_NONE;
    return wild_of(name, effective_len(name));
}

char *bx_channel_normalize(char *name) {
    if (!name) return name;
    size_t start = 0, len = strlen(name);
    while (start < len && (name[start] == ' ' || name[start] == '\t' || name[start] == '\r' || name[start] == '\n'))
        start++;
    while (len > start && (name[len - 1] == ' ' || name[len - 1] == '\t' || name[len - 1] == '\r' || name[len - 1] == '\n'))
        len--;
    if (len - start > 2 && name[len - 1] == '/') len--;
    memmove(name, name + start, len - start);
    name[len - start] = '\0';
    return name;
}

int bx_channel_matches(const char *pattern, const char *name) {
    if (!pattern || !name) return 0;
    size_t plen = effective_len(pattern), nlen = effective_len(name);
    if (plen == nlen && memcmp(pattern, name, plen) == 0) return 1;
    bx_wild_kind k = wild_of(pattern, plen);
    if (k == BX_WILD_NONE || bx_channel_classify(name) == BX_CH_META) return 0;
    // parent = pattern without its wildcard segment, keeping the '/': "/a/" for "/a/**"
    size_t parent = plen - (k == BX_WILD_DEEP ? 2 : 1);
    if (nlen <= parent || memcmp(pattern, name, parent) != 0) return 0;
    const char *rest = name + parent;
    size_t rlen = nlen - parent;
    if (rest[0] == '/') return 0; /* empty segment */
    return k == BX_WILD_DEEP || memchr(rest, '/', rlen) == NULL;
}

/* malloc'd copy of s[0..n) followed by suffix. */
static char *concat(const char *s, size_t n, const char *suffix) {
    size_t sl = strlen(suffix);
    char *r = malloc(n + sl + 1);
    if (!r) return NULL;
    memcpy(r, s, n);
    memcpy(r + n, suffix, sl + 1);
    return r;
}

int bx_channel_wildcards(const char *name, char ***out) {
    if (!out) return -1;
    *out = NULL;
    if (!bx_channel_valid(name)) return -1;
    size_t len = effective_len(name);
    size_t segs = 0;
    for (size_t i = 0; i < len; i++) segs += name[i] == '/';
    // at most "<parent>/*" plus one "/**" per ancestor, and the NULL
    char **list = calloc(segs + 2, sizeof *list);
    if (!list) return -1;
    *out = list;
    if (bx_channel_classify(name) == BX_CH_META) return 0;
    int n = 0;
    size_t parent = len;
    while (parent > 0 && name[parent - 1] != '/') parent--;
    /* parent now includes the trailing '/': "/a/b/" for "/a/b/c" */
    const char *suffix[2] = { "*", "**" };
    for (int s = 0; s < 2; s++) {
        char *w = concat(name, parent, suffix[s]);
        if (!w) goto oom;
        if (strlen(w) == len && memcmp(w, name, len) == 0) { free(w); continue; }
        list[n++] = w;
    }
    // "/**" at each shallower level: "/a/**", then "/**"
    for (size_t p = parent - 1; p > 0; p--) {
        if (name[p - 1] != '/') continue;
        char *w = concat(name, p, "**");
        if (!w) goto oom;
        list[n++] = w;
    }
    return n;
oom:
    bx_channel_wildcards_free(list);
    *out = NULL;
    return -1;
}

void bx_channel_wildcards_free(char **list) {
    if (!list) return;
    for (char **p = list; *p; p++) free(*p);
    free(list);
}
