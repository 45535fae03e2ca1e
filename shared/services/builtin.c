/* builtin.c — registers the built-in services. */
#include "builtin.h"

int bx_services_add_builtins(bx_services *s, char *err, size_t errlen)
{
    if (bx_services_add(s, "/service/echo", bx_service_echo, NULL, err, errlen) < 0
        || bx_services_add(s, "/service/members", bx_service_members, NULL, err, errlen) < 0
        || bx_services_add(s, "/service/privatechat", bx_service_privatechat, NULL, err, errlen) < 0
        || bx_services_add(s, "/service/auction/bid", bx_service_auction_bid, NULL, err, errlen) < 0)
        return -1;
    return 0;
}
