/* echo.c — /service/echo: CometD's remote-call echo, the data back to the caller only. */
#include "builtin.h"

#include "log.h"

void bx_service_echo(bx_service_call *call, void *arg)
{
    (void)arg;
    json_t *data = (json_t *)bx_service_data(call);
    bx_debug("%s c=%s: remote call echoed", bx_service_channel(call), bx_service_client_id(call));
    bx_service_reply(call, data ? json_incref(data) : NULL);
}
