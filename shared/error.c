/* error.c — CometD's error strings and advice objects (bayeux-notes.md §2.4, §2.12). */
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *bx_error_denied(const char *reason, const char *what) {
    if (!reason) reason = "";
    if (!what) what = "";
    size_t n = strlen(reason) + strlen(what) + sizeof "403::";
    char *s = malloc(n);
    if (!s) return NULL;
    snprintf(s, n, "403:%s:%s", reason, what);
    return s;
}

/* json_object_set_new steals the value even on failure; any failure → NULL, nothing leaks. */
static json_t *advice_add(json_t *a, const char *key, json_t *v) {
    if (!a) { json_decref(v); return NULL; }
    if (!v || json_object_set_new(a, key, v) != 0) { json_decref(a); return NULL; }
    return a;
}

json_t *bx_advice_retry(long interval, long timeout, long max_interval) {
    json_t *a = json_object();
    a = advice_add(a, "reconnect", json_string("retry"));
    a = advice_add(a, "interval", json_integer(interval));
    a = advice_add(a, "timeout", json_integer(timeout));
    if (max_interval >= 0) a = advice_add(a, "maxInterval", json_integer(max_interval));
    return a;
}

json_t *bx_advice_handshake(void) {
    json_t *a = json_object();
    a = advice_add(a, "reconnect", json_string("handshake"));
    return advice_add(a, "interval", json_integer(0));
}

json_t *bx_advice_none(void) {
    return advice_add(json_object(), "reconnect", json_string("none"));
}

json_t *bx_advice_multiple_clients(long multi_session_interval) {
    json_t *a = advice_add(json_object(), "multiple-clients", json_true());
    if (multi_session_interval > 0) {
        a = advice_add(a, "reconnect", json_string("retry"));
        return advice_add(a, "interval", json_integer(multi_session_interval));
    }
    return advice_add(a, "reconnect", json_string("none"));
}
