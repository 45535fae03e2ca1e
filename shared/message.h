/* message.h — Bayeux message batches: parse, validate, build replies, serialize.
 *
 * Messages are jansson objects. A request body becomes a bx_batch that owns
 * one reference to each message. Request-level failures carry the HTTP
 * status CometD would send (bayeux-notes.md §2.1, §7 #4 #25); per-message
 * failures are Bayeux error strings (error.h) put into the reply. */
#ifndef BX_MESSAGE_H
#define BX_MESSAGE_H

#include <jansson.h>
#include <stddef.h>

typedef struct bx_limits {
    long max_message_size;   /* bytes of one request body; <= 0 unlimited */
    long max_batch_messages; /* messages per body; <= 0 unlimited */
    int max_depth;           /* JSON nesting depth; <= 0 → 64 */
} bx_limits;

typedef enum {
    BX_PARSE_OK = 0,
    BX_PARSE_EMPTY,              /* 400 empty body ("no JSON parsed") */
    BX_PARSE_BAD_JSON,           /* 400 unparsable, invalid UTF-8, NUL in string */
    BX_PARSE_NOT_MESSAGES,       /* 400 top level not object/array, or an element not an object */
    BX_PARSE_TOO_DEEP,           /* 400 nesting over max_depth */
    BX_PARSE_EMPTY_BATCH,        /* 500 "[]": protocol violation */
    BX_PARSE_HANDSHAKE_NOT_ALONE,/* 500 handshake batched with other messages */
    BX_PARSE_TOO_BIG,            /* 500 body over max_message_size (CometD: IOException → 500) */
    BX_PARSE_TOO_MANY            /* 500 more than max_batch_messages */
} bx_parse_status;

typedef struct bx_parse_error {
    bx_parse_status status;
    int http_status;  /* 400 or 500 (0 when OK) */
    char reason[160]; /* for the log: what was wrong and where (jansson line/column) */
} bx_parse_error;

typedef struct bx_batch {
    json_t **msgs; /* owned references, in request order */
    size_t n;
} bx_batch;

/* Parse a body that is a JSON array of message objects or one object.
 * On BX_PARSE_OK, *out holds >= 1 message (caller frees with bx_batch_free).
 * On error *out is empty and err says why. Never reads past len; buf need not be NUL-terminated. */
bx_parse_status bx_batch_parse(const char *buf, size_t len, const bx_limits *lim,
                               bx_batch *out, bx_parse_error *err);
void bx_batch_free(bx_batch *b);
/* HTTP status CometD uses for a parse status (200 for OK). */
int bx_parse_http_status(bx_parse_status st);
const char *bx_parse_status_name(bx_parse_status st);

/* CometD's validateMessageFields for one message, in CometD's order:
 * no/non-string channel → BX_ERR_CHANNEL_MISSING; bad channel chars → BX_ERR_CHANNEL_INVALID;
 * id present and not [A-Za-z0-9]+ → BX_ERR_MESSAGE_ID_INVALID. A numeric id is first
 * rewritten in place as its decimal string (CometD stringifies ids).
 * Returns NULL when valid, else the static error string. */
const char *bx_message_validate(json_t *msg);

/* CometD's subscription check for /meta/subscribe and /meta/unsubscribe: absent or null →
 * BX_ERR_SUBSCRIPTION_MISSING (also an empty array: nothing to do is a client bug); not a
 * string or array of strings, or any element failing bx_channel_valid (a wildcard in a middle
 * segment included, where CometD 8 throws and answers HTTP 500) → BX_ERR_SUBSCRIPTION_INVALID.
 * Returns NULL when valid, else the static error string. msg is borrowed. */
const char *bx_subscription_validate(const json_t *msg);

/* Accessors: borrowed strings valid while msg lives; NULL when absent or not a string. */
const char *bx_msg_channel(const json_t *msg);
const char *bx_msg_client_id(const json_t *msg);
const char *bx_msg_id(const json_t *msg);

/* A reply skeleton for msg: {channel, id?} with id copied verbatim (even if invalid; a
 * numeric id as its decimal string, whether or not bx_message_validate ran first),
 * plus "subscription" copied as sent when present (CometD's createReply does it for every
 * channel, so it is there for /meta/(un)subscribe). New reference. */
json_t *bx_reply_new(const json_t *msg);
/* Mark reply successful:true. */
void bx_reply_ok(json_t *reply);
/* Mark reply successful:false with error string (copied). */
void bx_reply_fail(json_t *reply, const char *error);
/* The broadcast form of a publish: every field except clientId and id. New reference;
 * a shallow copy: data, ext and other values are shared with msg, not duplicated. */
json_t *bx_delivery_from_publish(const json_t *msg);

/* Serialize a message (or array) compactly in insertion order. Returns a malloc'd
 * NUL-terminated string (caller frees with free()) and its length in *len, NULL on OOM. */
char *bx_json_dump(const json_t *v, size_t *len);

#endif
