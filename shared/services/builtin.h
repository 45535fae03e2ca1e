/* builtin.h — the services every worker has (registered by bx_services_add_builtins). */
#ifndef BX_SERVICES_BUILTIN_H
#define BX_SERVICES_BUILTIN_H

#include "service.h"

/* Reply to a service call whose data lacks a required field (not a CometD string: CometD's
 * ChatService would throw). */
#define BX_ERR_SERVICE_DATA_INVALID "400::data_invalid"

/* /service/echo: the remote call's data back to the caller. */
void bx_service_echo(bx_service_call *call, void *arg);
/* /service/members {room:"/chat/<room>", user}: records the member, publishes the list on /members/<room>. */
void bx_service_members(bx_service_call *call, void *arg);
/* /service/privatechat {room, user, chat, peer}: {chat, user, scope:"private"} on the room's channel to
 * the members named in peer (comma separated) and back to the sender. */
void bx_service_privatechat(bx_service_call *call, void *arg);
/* /service/auction/bid {item, amount, bidder}: the clustered auction demo (auction.c). */
void bx_service_auction_bid(bx_service_call *call, void *arg);
/* A configured external service: the call goes to the Redis stream of its channel (arg: const long *timeout_ms). */
void bx_service_external(bx_service_call *call, void *arg);
/* The room name of a data.room value: "/chat/<room>" or "<room>"; NULL when invalid. Borrowed from s. */
const char *bx_service_room_name(const char *s);

#endif
