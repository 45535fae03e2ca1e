/* parked.h — the table of exchanges that may be held, by clientId and by token.
 *
 * Wake-ups name sessions ("w cid...") or requests ("s token", "d token"); both maps
 * point to the same value. Keys are copied; values are borrowed. Reactor thread only. */
#ifndef BX_FCGI_PARKED_H
#define BX_FCGI_PARKED_H

#include <stddef.h>

typedef struct bx_parked bx_parked;

/* New empty table; NULL on OOM. */
bx_parked *bx_parked_new(void);
/* Free the table (not the values). */
void bx_parked_free(bx_parked *t);
/* Add val under cid (replacing an older request of that session) and token. 0 ok, -1 OOM. */
int bx_parked_add(bx_parked *t, const char *cid, const char *token, void *val);
/* Remove val: its token entry, and the cid entry if it still points to val. */
void bx_parked_remove(bx_parked *t, const char *cid, const char *token, void *val);
/* Borrowed value or NULL. */
void *bx_parked_by_cid(const bx_parked *t, const char *cid);
void *bx_parked_by_token(const bx_parked *t, const char *token);
/* Entries in the token map. */
size_t bx_parked_count(const bx_parked *t);
/* Malloc'd array of malloc'd copies of every token (caller frees each and the array); *n count.
 * For walks that may remove entries. NULL with *n 0 when empty or OOM. */
char **bx_parked_tokens(const bx_parked *t, size_t *n);

#endif
