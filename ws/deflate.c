/* deflate.c — permessage-deflate message bodies (RFC 7692 §7.2) with shared zlib streams. */
#include "deflate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#define LEVEL Z_DEFAULT_COMPRESSION
#define INFLATE_STEP 16384 /* output grows by this much at a time, up to max + 1 */

static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };

static z_stream comp[16]; /* by window bits, 9..15; made on first use */
static int comp_ready[16];
static z_stream decomp;
static int decomp_ready;

int bx_ws_deflate(const void *in, size_t len, int window_bits, unsigned char **out, size_t *outlen, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (window_bits < 9 || window_bits > 15 || len > UINT32_MAX / 2) {
        snprintf(err, errlen, "deflate: window bits %d or length %zu out of range", window_bits, len);
        return -1;
    }
    z_stream *z = &comp[window_bits];
    if (!comp_ready[window_bits]) {
        if (deflateInit2(z, LEVEL, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            snprintf(err, errlen, "deflateInit2: %s", z->msg ? z->msg : "out of memory");
            return -1;
        }
        comp_ready[window_bits] = 1;
    } else if (deflateReset(z) != Z_OK) { /* no context takeover: each message on its own */
        snprintf(err, errlen, "deflateReset failed");
        return -1;
    }
    size_t cap = deflateBound(z, (uLong)len) + 16; /* + the sync flush's empty stored block */
    unsigned char *buf = malloc(cap);
    if (!buf) {
        snprintf(err, errlen, "out of memory (%zu bytes)", cap);
        return -1;
    }
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    z->next_out = buf;
    z->avail_out = (uInt)cap;
    int rc = deflate(z, Z_SYNC_FLUSH);
    size_t n = cap - z->avail_out;
    if (rc != Z_OK || z->avail_in != 0 || z->avail_out == 0 || n < 4 || memcmp(buf + n - 4, tail, 4) != 0) {
        snprintf(err, errlen, "deflate: rc %d, %u bytes left unread", rc, z->avail_in);
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = n - 4;
    return 0;
}

int bx_ws_inflate(const void *in, size_t len, size_t max, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (len > UINT32_MAX / 2 || max > UINT32_MAX / 2)
        return BX_WS_INFLATE_TOO_BIG;
    z_stream *z = &decomp;
    if (!decomp_ready) {
        if (inflateInit2(z, -15) != Z_OK) /* a client window of any size (8..15) fits in 15 bits */
            return BX_WS_INFLATE_NOMEM;
        decomp_ready = 1;
    } else if (inflateReset(z) != Z_OK) {
        return BX_WS_INFLATE_NOMEM;
    }
    size_t cap = 0, used = 0;
    char *buf = NULL;
    int rc, fed_tail = 0;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    for (;;) {
        if (z->avail_in == 0 && !fed_tail) {
            z->next_in = (Bytef *)(uintptr_t)tail;
            z->avail_in = sizeof tail;
            fed_tail = 1;
        }
        if (used == cap) { /* room for at most max + 1 bytes: one past the limit proves "too big" */
            size_t want = cap + INFLATE_STEP > max + 1 ? max + 1 : cap + INFLATE_STEP;
            if (want == cap) {
                free(buf);
                return BX_WS_INFLATE_TOO_BIG;
            }
            char *nb = realloc(buf, want + 1);
            if (!nb) {
                free(buf);
                return BX_WS_INFLATE_NOMEM;
            }
            buf = nb;
            cap = want;
        }
        z->next_out = (Bytef *)buf + used;
        z->avail_out = (uInt)(cap - used);
        rc = inflate(z, Z_SYNC_FLUSH);
        used = cap - z->avail_out;
        if (used > max) {
            free(buf);
            return BX_WS_INFLATE_TOO_BIG;
        }
        if (rc == Z_STREAM_END) /* a final block may end the stream before the tail */
            break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            free(buf);
            return rc == Z_MEM_ERROR ? BX_WS_INFLATE_NOMEM : BX_WS_INFLATE_CORRUPT;
        }
        if (z->avail_out > 0 && z->avail_in == 0 && fed_tail)
            break; /* everything read, and not for want of room */
        if (z->avail_out > 0 && rc == Z_BUF_ERROR) { /* no progress with input and room left */
            free(buf);
            return BX_WS_INFLATE_CORRUPT;
        }
    }
    if (!buf && !(buf = malloc(1)))
        return BX_WS_INFLATE_NOMEM;
    buf[used] = '\0';
    *out = buf;
    *outlen = used;
    return BX_WS_INFLATE_OK;
}

void bx_ws_deflate_cleanup(void)
{
    for (int i = 0; i < 16; i++)
        if (comp_ready[i]) {
            deflateEnd(&comp[i]);
            comp_ready[i] = 0;
        }
    if (decomp_ready) {
        inflateEnd(&decomp);
        decomp_ready = 0;
    }
}
