/* upgrade.c — RFC 6455 opening handshake, server side. */
#include "upgrade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "cookie.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* A key is base64 of 16 bytes: 22 symbols and "==". */
static int key_valid(const char *k)
{
    if (strlen(k) != 24 || strcmp(k + 22, "==") != 0)
        return 0;
    for (int i = 0; i < 22; i++)
        if (!is_b64(k[i]))
            return 0;
    return 1;
}

/* Does the comma list v contain token tok (case-insensitive, spaces trimmed)? */
static int has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t m = n;
        while (m && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tl && strncasecmp(v, tok, tl) == 0)
            return 1;
        v += n;
    }
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* One permessage-deflate offer "permessage-deflate; p1; p2=v" (RFC 7692 §7.1): our window bits when
 * we can accept it (server_no_context_takeover and client_no_context_takeover are always answered, so
 * both are fine either way), 0 to decline it: unknown or repeated parameters, a value where none
 * belongs, a window outside 8..15, or server_max_window_bits=8 (zlib's raw deflate has no 256-byte
 * window). *named: the offer limited our window (echo server_max_window_bits). */
static int deflate_offer(char *offer, int *named)
{
    char *save = NULL, *name = strtok_r(offer, ";", &save);
    if (!name || strcasecmp(trim(name), "permessage-deflate") != 0)
        return 0;
    int bits = 15, seen = 0;
    *named = 0;
    for (char *p = strtok_r(NULL, ";", &save); p; p = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(p, '='), *val = NULL;
        if (eq) {
            *eq = '\0';
            val = trim(eq + 1);
            size_t vl = strlen(val);
            if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') { /* quoted-string form */
                val[vl - 1] = '\0';
                val++;
            }
        }
        p = trim(p);
        int bit = !strcasecmp(p, "server_no_context_takeover") ? 1 : !strcasecmp(p, "client_no_context_takeover") ? 2
                : !strcasecmp(p, "server_max_window_bits") ? 4 : !strcasecmp(p, "client_max_window_bits") ? 8 : 0;
        if (!bit || (seen & bit))
            return 0;
        seen |= bit;
        if (bit <= 2 && val)
            return 0;
        if (bit >= 4 && val) {
            if (strlen(val) > 2 || val[0] < '1' || val[0] > '9' || (val[1] && (val[1] < '0' || val[1] > '9')))
                return 0;
            int v = atoi(val);
            if (v < 8 || v > 15)
                return 0;
            if (bit == 4)
                bits = v;
        } else if (bit == 4) {
            return 0; /* server_max_window_bits needs a value */
        }
    }
    if (bits < 9)
        return 0;
    *named = (seen & 4) != 0;
    return bits;
}

/* Sec-WebSocket-Extensions value (one header line): take the first acceptable offer. */
static void read_extensions(bx_ws_upgrade *out, const char *v)
{
    while (*v && !out->deflate) {
        size_t n = strcspn(v, ",");
        char offer[256];
        if (n < sizeof offer) {
            memcpy(offer, v, n);
            offer[n] = '\0';
            int named = 0;
            out->deflate = deflate_offer(offer, &named);
            out->deflate_server_bits = out->deflate && named;
        }
        v += n + (v[n] == ',');
    }
}

static int verdict(bx_ws_upgrade *out, int status, const char *reason)
{
    out->status = status;
    out->reason = reason;
    return status;
}

/* Headers we act on; the others are ignored (Origin: nginx and allowedOrigins are HTTP matters). */
typedef struct heads {
    const char *upgrade, *connection, *version, *key, *fwd, *proto, *auth;
    int keys;
    const char *cookie_name;
    char *browser; /* [BX_ID_MAX_LEN + 1] */
    bx_ws_upgrade *out; /* extension offers are judged as they come */
} heads;

/* "a=1; name=value; b=2": copy the value of name into h->browser when it is a usable id. */
static void read_cookie(heads *h, const char *v)
{
    size_t nl = strlen(h->cookie_name);
    while (*v) {
        v += strspn(v, " \t;");
        size_t n = strcspn(v, ";");
        if (n > nl + 1 && v[nl] == '=' && strncmp(v, h->cookie_name, nl) == 0 && n - nl - 1 <= BX_ID_MAX_LEN) {
            char id[BX_ID_MAX_LEN + 1];
            snprintf(id, sizeof id, "%.*s", (int)(n - nl - 1), v + nl + 1);
            if (bx_clientid_valid(id))
                strcpy(h->browser, id);
        }
        v += n;
    }
}

/* Split the header lines of s (after the request line) into h; -1 on a malformed line. */
static int read_headers(char *s, heads *h)
{
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t ll = strlen(line);
        if (ll && line[ll - 1] == '\r')
            line[--ll] = '\0';
        if (!ll)
            continue; /* the empty line that ends the head */
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            return -1;
        *colon = '\0';
        for (char *p = line; *p; p++)
            if (*p == ' ' || *p == '\t' || (unsigned char)*p < 32)
                return -1; /* no whitespace before the colon (RFC 9112 §5.1) */
        char *val = trim(colon + 1);
        if (!strcasecmp(line, "Upgrade"))
            h->upgrade = val;
        else if (!strcasecmp(line, "Connection"))
            h->connection = val;
        else if (!strcasecmp(line, "Sec-WebSocket-Version"))
            h->version = val;
        else if (!strcasecmp(line, "Sec-WebSocket-Key")) {
            h->key = val;
            h->keys++;
        } else if (!strcasecmp(line, "Cookie")) {
            read_cookie(h, val);
        } else if (!strcasecmp(line, "Sec-WebSocket-Extensions")) {
            read_extensions(h->out, val);
        } else if (!strcasecmp(line, "Authorization")) {
            h->auth = val;
        } else if (!strcasecmp(line, "X-Forwarded-Proto")) {
            h->proto = val;
        } else if (!strcasecmp(line, "X-Forwarded-For") || (!h->fwd && !strcasecmp(line, "X-Real-IP")))
            h->fwd = val;
    }
    return 0;
}

int bx_ws_upgrade_parse(const char *head, size_t len, const char *cookie, bx_ws_upgrade *out)
{
    memset(out, 0, sizeof *out);
    if (len > BX_WS_HEAD_MAX)
        return verdict(out, 400, "request head too long");
    if (memchr(head, '\0', len))
        return verdict(out, 400, "NUL byte in request head");
    char *s = malloc(len + 1);
    if (!s)
        return verdict(out, 400, "out of memory");
    memcpy(s, head, len);
    s[len] = '\0';
    char *eol = strchr(s, '\n');
    if (!eol) {
        free(s);
        return verdict(out, 400, "no request line");
    }
    *eol = '\0';
    /* "METHOD SP target SP version": the target is nginx's business (same URL as long-polling) */
    char *method = trim(s), *sp1 = strchr(method, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ')) {
        free(s);
        return verdict(out, 400, "malformed request line");
    }
    *sp1 = *sp2 = '\0';
    const char *version = sp2 + 1;
    if (strcmp(method, "GET") != 0) {
        free(s);
        return verdict(out, 405, "method is not GET");
    }
    if (strcmp(version, "HTTP/1.1") != 0) {
        free(s);
        return verdict(out, 400, "not HTTP/1.1");
    }
    heads h = { .cookie_name = cookie, .browser = out->browser, .out = out };
    int rc;
    if (read_headers(eol + 1, &h) < 0)
        rc = verdict(out, 400, "malformed header line");
    else if (!h.upgrade || !has_token(h.upgrade, "websocket"))
        rc = verdict(out, 400, "no 'Upgrade: websocket'");
    else if (!h.connection || !has_token(h.connection, "upgrade"))
        rc = verdict(out, 400, "no 'Connection: Upgrade'");
    else if (!h.version || strcmp(h.version, "13") != 0)
        rc = verdict(out, 426, "Sec-WebSocket-Version is not 13");
    else if (h.keys != 1 || !key_valid(h.key))
        rc = verdict(out, 400, "Sec-WebSocket-Key missing, repeated or not 16 bytes of base64");
    else if (bx_ws_accept_key(h.key, strlen(h.key), out->accept, sizeof out->accept) < 0)
        rc = verdict(out, 400, "SHA-1 failed");
    else
        rc = verdict(out, 101, "ok");
    out->secure = h.proto && !strcasecmp(h.proto, "https");
    if (rc != 101)
        out->deflate = out->deflate_server_bits = 0;
    if (rc == 101 && h.auth && *h.auth && !(out->authorization = strdup(h.auth)))
        rc = verdict(out, 400, "out of memory");
    if (h.fwd)
        snprintf(out->forwarded, sizeof out->forwarded, "%.*s", (int)strcspn(h.fwd, ", "), h.fwd);
    for (char *p = out->forwarded; *p; p++)
        if ((unsigned char)*p < 33 || (unsigned char)*p > 126)
            *p = '?'; /* it goes into log lines */
    free(s);
    return rc;
}

void bx_ws_upgrade_clear(bx_ws_upgrade *u)
{
    free(u->authorization);
    u->authorization = NULL;
}

int bx_ws_accept_key(const char *key, size_t keylen, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t glen = strlen(WS_GUID);
    char *buf = malloc(keylen + glen);
    if (!buf || outlen < 29) {
        free(buf);
        return -1;
    }
    memcpy(buf, key, keylen);
    memcpy(buf + keylen, WS_GUID, glen);
    int ok = EVP_Digest(buf, keylen + glen, md, &mdlen, EVP_sha1(), NULL);
    free(buf);
    if (!ok || mdlen != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars + NUL */
    return 0;
}

char *bx_ws_upgrade_response(const bx_ws_upgrade *u, const bx_config *cfg, const char *new_browser, size_t *len)
{
    char *s = NULL, *cookie = NULL, ext[192] = "";
    int n;
    switch (u->status) {
    case 101:
        /* the same cookie the HTTP transports set: a later long-poll fallback keeps the session */
        if (new_browser && !(cookie = bx_cookie_header(cfg, new_browser, u->secure)))
            return NULL;
        if (u->deflate && u->deflate_server_bits)
            snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                     "client_no_context_takeover; server_max_window_bits=%d\r\n", u->deflate);
        else if (u->deflate)
            snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                     "client_no_context_takeover\r\n");
        n = asprintf(&s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: %s\r\n%s%s\r\n", u->accept, ext, cookie ? cookie : "");
        free(cookie);
        break;
    case 426:
        n = asprintf(&s, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n");
        break;
    case 405:
        n = asprintf(&s, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        break;
    default:
        n = asprintf(&s, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return s;
}
