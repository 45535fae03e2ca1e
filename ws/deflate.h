/* deflate.h — permessage-deflate (RFC 7692) message bodies for bayeux-ws.
 *
 * bayeux-ws always answers an offer with server_no_context_takeover and client_no_context_takeover
 * (RFC 7692 §7.1.1: a server may add both), so every message is compressed on its own and one
 * compressor per window size plus one decompressor serve all connections of the process (one thread):
 * an idle connection holds no zlib memory. Not thread-safe. */
#ifndef BX_WS_DEFLATE_H
#define BX_WS_DEFLATE_H

#include <stddef.h>

enum { BX_WS_INFLATE_OK = 0, BX_WS_INFLATE_TOO_BIG = 1, BX_WS_INFLATE_CORRUPT = 2, BX_WS_INFLATE_NOMEM = 3 };

/* Compress one message with an LZ77 window of 2^window_bits (9..15), without the trailing
 * 00 00 ff ff (§7.2.1). *out is malloc'd, the caller frees it. 0 ok, -1 zlib or memory error (reason in err). */
int bx_ws_deflate(const void *in, size_t len, int window_bits, unsigned char **out, size_t *outlen, char *err,
                  size_t errlen);
/* Decompress one message body (§7.2.2: the tail 00 00 ff ff is added here). Never allocates more
 * than max + 1 bytes of output: BX_WS_INFLATE_TOO_BIG as soon as the message would exceed max.
 * On BX_WS_INFLATE_OK *out is malloc'd (NUL-terminated, not counted in *outlen), the caller frees it. */
int bx_ws_inflate(const void *in, size_t len, size_t max, char **out, size_t *outlen);
/* Free the shared zlib streams (process exit). */
void bx_ws_deflate_cleanup(void);

#endif
