/* parked.c — two chained hash maps (clientId → request, token → request). */
#include "parked.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 16384 /* ~10,000 parked polls per worker: chains stay short */

typedef struct node {
    char *key;
    void *val;
    struct node *next;
} node;

typedef struct map {
    node *b[BUCKETS];
    size_t n;
} map;

struct bx_parked {
    map by_cid;
    map by_token;
};

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (size_t)(h % BUCKETS);
}

static node **find(const map *m, const char *key)
{
    node **p = (node **)&m->b[hash(key)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

static int put(map *m, const char *key, void *val)
{
    node **p = find(m, key);
    if (*p) {
        (*p)->val = val;
        return 0;
    }
    node *n = malloc(sizeof *n);
    if (!n || !(n->key = strdup(key))) {
        free(n);
        return -1;
    }
    n->val = val;
    n->next = NULL;
    *p = n;
    m->n++;
    return 0;
}

/* Remove key if it maps to val (val NULL: whatever it maps to). */
static void del(map *m, const char *key, void *val)
{
    node **p = find(m, key);
    if (!*p || (val && (*p)->val != val))
        return;
    node *n = *p;
    *p = n->next;
    free(n->key);
    free(n);
    m->n--;
}

static void clear(map *m)
{
    for (size_t i = 0; i < BUCKETS; i++)
        while (m->b[i])
            del(m, m->b[i]->key, NULL);
}

bx_parked *bx_parked_new(void)
{
    return calloc(1, sizeof(bx_parked));
}

void bx_parked_free(bx_parked *t)
{
    if (!t)
        return;
    clear(&t->by_cid);
    clear(&t->by_token);
    free(t);
}

int bx_parked_add(bx_parked *t, const char *cid, const char *token, void *val)
{
    if (put(&t->by_token, token, val) < 0)
        return -1;
    if (put(&t->by_cid, cid, val) < 0) {
        del(&t->by_token, token, val);
        return -1;
    }
    return 0;
}

void bx_parked_remove(bx_parked *t, const char *cid, const char *token, void *val)
{
    del(&t->by_token, token, val);
    del(&t->by_cid, cid, val);
}

void *bx_parked_by_cid(const bx_parked *t, const char *cid)
{
    node **p = find(&t->by_cid, cid);
    return *p ? (*p)->val : NULL;
}

void *bx_parked_by_token(const bx_parked *t, const char *token)
{
    node **p = find(&t->by_token, token);
    return *p ? (*p)->val : NULL;
}

size_t bx_parked_count(const bx_parked *t)
{
    return t->by_token.n;
}

char **bx_parked_tokens(const bx_parked *t, size_t *n)
{
    size_t k = 0;
    char **out = t->by_token.n ? calloc(t->by_token.n, sizeof *out) : NULL;
    *n = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < BUCKETS; i++)
        for (node *nd = t->by_token.b[i]; nd; nd = nd->next)
            if ((out[k] = strdup(nd->key)))
                k++;
    *n = k;
    return out;
}
