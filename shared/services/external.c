/* external.c — services answered by other processes through Redis: the call is appended to the
 * stream Psvc:<channel> (bx_ext_request) and acknowledged at once; a consumer in any language
 * answers with bx_ext_answer, which queues the remote-call reply for the caller only; bx_sweep
 * sends the timeout error when nobody answered in time. See examples/services/. */
#include "builtin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "log.h"
#include "message.h"

static void queued(bx_service_call *call, const redisReply *r, const char *err, void *arg)
{
    (void)arg;
    if (!r) {
        bx_warn("%s c=%s: broker unavailable (%s)", bx_service_channel(call), bx_service_client_id(call),
                err ? err : "no reply");
        bx_service_fail(call, BX_ERR_BROKER_UNAVAILABLE);
    } else if (r->type != REDIS_REPLY_STRING) {
        bx_warn("%s c=%s: broker error: %s", bx_service_channel(call), bx_service_client_id(call),
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        bx_service_fail(call, BX_SERVICE_FAILED);
    } else {
        bx_debug("%s c=%s: request %s queued for an external service", bx_service_channel(call),
                 bx_service_client_id(call), r->str);
        bx_service_done(call);
    }
}

void bx_service_external(bx_service_call *call, void *arg)
{
    const long *timeout_ms = arg;
    const json_t *data = bx_service_data(call);
    const char *id = json_string_value(json_object_get(bx_service_message(call), "id"));
    size_t dlen = 0;
    char *text = data ? bx_json_dump(data, &dlen) : strdup("null");
    if (!text) {
        bx_service_fail(call, BX_SERVICE_FAILED);
        return;
    }
    char tmo[24];
    snprintf(tmo, sizeof tmo, "%ld", *timeout_ms);
    const char *argv[] = { bx_service_client_id(call), bx_service_channel(call), id ? id : "", text, tmo,
                           bx_service_user(call) };
    bx_service_fcall_or_fail(call, "bx_ext_request", 6, argv, queued);
    free(text);
}

int bx_services_add_external(bx_services *s, const char *list, const long *timeout_ms, char *err, size_t errlen)
{
    for (const char *p = list ? list : ""; *p;) {
        size_t n = strcspn(p, ",");
        if (n > 0) {
            char *name = strndup(p, n);
            int rc = name ? bx_services_add(s, name, bx_service_external, (void *)timeout_ms, err, errlen) : -1;
            if (!name)
                snprintf(err, errlen, "externalServices: out of memory");
            free(name);
            if (rc < 0)
                return -1;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}
