/* ack.h — server half of CometD's acknowledge extension (bayeux-notes.md §4.1).
 *
 * Handshake ext.ack:true → the session is created with the ack flag and the reply
 * says ext.ack:true. Connect ext.ack:K → the broker drops in-flight batches <= K
 * (dispatch passes ack_k); the connect reply says ext.ack:<batch>. Sessions without
 * acks are confirmed by the transport after the reply was handed over (bx_confirm). */
#ifndef BX_EXT_ACK_H
#define BX_EXT_ACK_H

#include "ext/ext.h"

extern const bx_ext bx_ext_ack;

#endif
