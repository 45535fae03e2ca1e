/* clientid.c — random ids in [0-9a-z] from getrandom(2). */
#include "clientid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Fill buf with n random bytes; 0 ok, -1 with err set. Retries EINTR and short reads. */
static int random_bytes(unsigned char *buf, size_t n, char *err, size_t errlen) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (err && errlen) snprintf(err, errlen, "getrandom: %s", strerror(errno));
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* width base-36 digits, each uniform: bytes >= 252 (= 7*36) are rejected, so
 * every digit carries log2(36) ≈ 5.17 bits (26 digits ≈ 134 bits). */
static int random_id(char *out, size_t outlen, size_t width, char *err, size_t errlen) {
    if (!out || outlen < width + 1) {
        if (err && errlen) snprintf(err, errlen, "id buffer too small (%zu < %zu)", outlen, width + 1);
        return -1;
    }
    unsigned char pool[64];
    size_t have = 0, used = 0, w = 0;
    while (w < width) {
        if (used == have) {
            if (random_bytes(pool, sizeof pool, err, errlen) != 0) return -1;
            have = sizeof pool;
            used = 0;
        }
        unsigned char b = pool[used++];
        if (b >= 252) continue;
        out[w++] = digits[b % 36];
    }
    out[width] = '\0';
    return 0;
}

int bx_clientid_new(char *out, size_t outlen, char *err, size_t errlen) {
    return random_id(out, outlen, BX_CLIENTID_LEN, err, errlen);
}

int bx_browserid_new(char *out, size_t outlen, char *err, size_t errlen) {
    return random_id(out, outlen, BX_BROWSERID_LEN, err, errlen);
}

int bx_clientid_valid(const char *s) {
    if (!s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= BX_ID_MAX_LEN) return 0;
        char c = s[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) return 0;
    }
    return n >= 1;
}
