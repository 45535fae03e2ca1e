/* message.c — Bayeux batches: parse, validate, reply, serialize (bayeux-notes.md §2.1–2.3, §2.13). */
#include "message.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "error.h"
#include "log.h"

#define DEFAULT_DEPTH 64

static const char *const status_names[] = {
    [BX_PARSE_OK] = "ok",
    [BX_PARSE_EMPTY] = "empty",
    [BX_PARSE_BAD_JSON] = "bad_json",
    [BX_PARSE_NOT_MESSAGES] = "not_messages",
    [BX_PARSE_TOO_DEEP] = "too_deep",
    [BX_PARSE_EMPTY_BATCH] = "empty_batch",
    [BX_PARSE_HANDSHAKE_NOT_ALONE] = "handshake_not_alone",
    [BX_PARSE_TOO_BIG] = "too_big",
    [BX_PARSE_TOO_MANY] = "too_many",
};

const char *bx_parse_status_name(bx_parse_status st) {
    if ((unsigned)st < sizeof status_names / sizeof status_names[0]) return status_names[st];
    return "unknown";
}

int bx_parse_http_status(bx_parse_status st) {
    switch (st) {
    case BX_PARSE_OK: return 200;
    case BX_PARSE_EMPTY:
    case BX_PARSE_BAD_JSON:
    case BX_PARSE_NOT_MESSAGES:
    case BX_PARSE_TOO_DEEP: return 400;
    case BX_PARSE_EMPTY_BATCH:
    case BX_PARSE_HANDSHAKE_NOT_ALONE:
    case BX_PARSE_TOO_BIG:
    case BX_PARSE_TOO_MANY: return 500;
    }
    return 500;
}

/* Record a request-level failure; one debug line says what was decided and why. */
__attribute__((format(printf, 3, 4)))
static bx_parse_status fail(bx_parse_error *err, bx_parse_status st, const char *fmt, ...) {
    char reason[sizeof err->reason];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    /* jansson quotes input bytes ("near '...'"): keep control and non-ASCII bytes out of logs */
    for (char *p = reason; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
    if (err) {
        err->status = st;
        err->http_status = bx_parse_http_status(st);
        memcpy(err->reason, reason, sizeof reason);
    }
    bx_debug("batch rejected: %s → HTTP %d: %s", bx_parse_status_name(st), bx_parse_http_status(st), reason);
    return st;
}

/* Nesting depth of the raw bytes, stopping as soon as it exceeds max: jansson
 * would recurse up to its own compile-time limit (2048) before failing, and we
 * want the configured limit, checked without building anything. */
static int too_deep(const char *buf, size_t len, int max) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) return 1;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static int all_space(const char *buf, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r' && buf[i] != '\n') return 0;
    return 1;
}

bx_parse_status bx_batch_parse(const char *buf, size_t len, const bx_limits *lim,
                               bx_batch *out, bx_parse_error *err) {
    if (err) { err->status = BX_PARSE_OK; err->http_status = 0; err->reason[0] = '\0'; }
    if (out) { out->msgs = NULL; out->n = 0; }
    long max_size = lim ? lim->max_message_size : 0;
    long max_msgs = lim ? lim->max_batch_messages : 0;
    int max_depth = (lim && lim->max_depth > 0) ? lim->max_depth : DEFAULT_DEPTH;

    if (max_size > 0 && len > (size_t)max_size)
        return fail(err, BX_PARSE_TOO_BIG, "body of %zu bytes exceeds maxMessageSize %ld", len, max_size);
    if (!buf || len == 0 || all_space(buf, len))
        return fail(err, BX_PARSE_EMPTY, "no JSON parsed (empty body)");
    if (too_deep(buf, len, max_depth))
        return fail(err, BX_PARSE_TOO_DEEP, "JSON nesting deeper than %d", max_depth);

    json_error_t jerr;
    /* JSON_DECODE_ANY: a scalar body parses, so we can say "not messages" rather than
     * "bad JSON". NUL in strings (\u0000) and invalid UTF-8 are rejected by default. */
    json_t *root = json_loadb(buf, len, JSON_DECODE_ANY, &jerr);
    if (!root)
        return fail(err, BX_PARSE_BAD_JSON, "unparsable JSON: %s (line %d, column %d)",
                    jerr.text, jerr.line, jerr.column);

    size_t n = 1;
    if (json_is_array(root)) {
        n = json_array_size(root);
    } else if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, BX_PARSE_NOT_MESSAGES, "body is neither a message object nor an array");
    }
    if (n == 0) {
        json_decref(root);
        return fail(err, BX_PARSE_EMPTY_BATCH, "empty batch [] (protocol violation)");
    }
    if (max_msgs > 0 && n > (size_t)max_msgs) {
        json_decref(root);
        return fail(err, BX_PARSE_TOO_MANY, "%zu messages exceed the limit of %ld per request", n, max_msgs);
    }
    /* check every element before taking any reference, so a failure has nothing to undo */
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_is_array(root) ? json_array_get(root, i) : root;
        bx_parse_status st = BX_PARSE_OK;
        const char *ch = bx_msg_channel(m);
        if (!json_is_object(m)) st = BX_PARSE_NOT_MESSAGES;
        else if (n > 1 && ch && strcmp(ch, "/meta/handshake") == 0) st = BX_PARSE_HANDSHAKE_NOT_ALONE;
        if (st == BX_PARSE_OK) continue;
        json_decref(root);
        if (st == BX_PARSE_NOT_MESSAGES)
            return fail(err, st, "element %zu of the batch is not an object", i);
        return fail(err, st, "/meta/handshake batched with %zu other messages (bayeux protocol violation)", n - 1);
    }
    json_t **msgs = calloc(n, sizeof *msgs);
    if (!msgs) {
        json_decref(root);
        return fail(err, BX_PARSE_TOO_BIG, "out of memory for %zu messages", n);
    }
    for (size_t i = 0; i < n; i++) msgs[i] = json_incref(json_is_array(root) ? json_array_get(root, i) : root);
    json_decref(root);
    if (out) {
        out->msgs = msgs;
        out->n = n;
    } else {
        for (size_t i = 0; i < n; i++) json_decref(msgs[i]);
        free(msgs);
    }
    bx_debug("batch accepted: %zu message(s) in %zu bytes", n, len);
    return BX_PARSE_OK;
}

void bx_batch_free(bx_batch *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) json_decref(b->msgs[i]);
    free(b->msgs);
    b->msgs = NULL;
    b->n = 0;
}

static const char *string_field(const json_t *msg, const char *key) {
    return json_string_value(json_object_get(msg, key)); /* NULL-safe on every step */
}

const char *bx_msg_channel(const json_t *msg) { return string_field(msg, "channel"); }
const char *bx_msg_client_id(const json_t *msg) { return string_field(msg, "clientId"); }
const char *bx_msg_id(const json_t *msg) { return string_field(msg, "id"); }

static int alnum_only(const char *s, size_t len) {
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
    }
    return 1;
}

/* CometD stringifies numeric ids (String.valueOf): the text of a JSON number as a
 * new JSON string, NULL on OOM. */
static json_t *id_as_string(const json_t *id) {
    char *text;
    if (json_is_integer(id)) {
        size_t n = (size_t)snprintf(NULL, 0, "%" JSON_INTEGER_FORMAT, json_integer_value(id)) + 1;
        text = malloc(n);
        if (text) snprintf(text, n, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    } else {
        text = json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
    }
    if (!text) return NULL;
    json_t *s = json_string(text);
    free(text);
    return s;
}

/* Like bx_message_validate, with the debug line naming the rejected field. */
static const char *reject(const char *error, const char *why, size_t len) {
    bx_debug("message rejected: %s (%s, %zu bytes)", error, why, len);
    return error;
}

const char *bx_message_validate(json_t *msg) {
    json_t *ch = json_object_get(msg, "channel");
    if (!json_is_string(ch)) return reject(BX_ERR_CHANNEL_MISSING, ch ? "channel not a string" : "no channel", 0);
    size_t clen = json_string_length(ch);
    if (!bx_channel_chars_valid(json_string_value(ch), clen))
        return reject(BX_ERR_CHANNEL_INVALID, "bad channel characters", clen);
    json_t *id = json_object_get(msg, "id");
    if (!id || json_is_null(id)) return NULL; /* CometD: a null id is an absent id */
    if (json_is_number(id)) { /* rewritten in place, so every later reader sees the string */
        if (json_object_set_new(msg, "id", id_as_string(id)) != 0)
            return reject(BX_ERR_MESSAGE_ID_INVALID, "out of memory", 0);
        id = json_object_get(msg, "id");
    }
    if (!json_is_string(id)) return reject(BX_ERR_MESSAGE_ID_INVALID, "id neither string nor number", 0);
    size_t ilen = json_string_length(id);
    if (!alnum_only(json_string_value(id), ilen)) return reject(BX_ERR_MESSAGE_ID_INVALID, "id not alphanumeric", ilen);
    return NULL;
}

const char *bx_subscription_validate(const json_t *msg) {
    json_t *sub = json_object_get(msg, "subscription");
    if (!sub || json_is_null(sub)) return reject(BX_ERR_SUBSCRIPTION_MISSING, "no subscription", 0);
    if (json_is_string(sub)) {
        size_t len = json_string_length(sub);
        if (strlen(json_string_value(sub)) != len || !bx_channel_valid(json_string_value(sub)))
            return reject(BX_ERR_SUBSCRIPTION_INVALID, "bad subscription", len);
        return NULL;
    }
    if (!json_is_array(sub)) return reject(BX_ERR_SUBSCRIPTION_INVALID, "subscription neither string nor array", 0);
    if (json_array_size(sub) == 0) return reject(BX_ERR_SUBSCRIPTION_MISSING, "empty subscription array", 0);
    size_t i;
    json_t *el;
    json_array_foreach(sub, i, el) {
        const char *s = json_string_value(el);
        if (!s || strlen(s) != json_string_length(el) || !bx_channel_valid(s))
            return reject(BX_ERR_SUBSCRIPTION_INVALID, "bad subscription element", i);
    }
    return NULL;
}

/* Set key on obj to a new reference of v (borrowed); 0 ok. */
static int copy_field(json_t *obj, const char *key, json_t *v) {
    return json_object_set(obj, key, v);
}

json_t *bx_reply_new(const json_t *msg) {
    json_t *r = json_object();
    if (!r) return NULL;
    json_t *ch = json_object_get(msg, "channel");
    json_t *id = json_object_get(msg, "id");
    int rc = 0;
    if (json_is_string(ch)) rc |= copy_field(r, "channel", ch);
    /* a numeric id is echoed as its string even if validation has not run yet */
    if (json_is_number(id)) rc |= json_object_set_new(r, "id", id_as_string(id));
    else if (id && !json_is_null(id)) rc |= copy_field(r, "id", id);
    json_t *sub = json_object_get(msg, "subscription");
    if (sub && !json_is_null(sub)) rc |= copy_field(r, "subscription", sub); /* CometD's createReply: on any channel */
    if (rc != 0) {
        json_decref(r);
        return NULL;
    }
    return r;
}

void bx_reply_ok(json_t *reply) {
    if (!reply) return;
    json_object_del(reply, "error");
    json_object_set_new(reply, "successful", json_true());
}

void bx_reply_fail(json_t *reply, const char *error) {
    if (!reply) return;
    json_object_set_new(reply, "successful", json_false());
    if (error) json_object_set_new(reply, "error", json_string(error));
}

json_t *bx_delivery_from_publish(const json_t *msg) {
    json_t *d = json_copy((json_t *)msg); /* shallow: data/ext are shared, not copied */
    if (!d) return NULL;
    json_object_del(d, "clientId");
    json_object_del(d, "id");
    return d;
}

char *bx_json_dump(const json_t *v, size_t *len) {
    if (!v) return NULL;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s && len) *len = strlen(s);
    return s;
}
