/* session.c — /meta/handshake (with the token check of the security policy, auth.h) and
 * /meta/disconnect: a session's start and end. A part of the dispatch pipeline (dispatch_int.h). */
#include "dispatch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clientid.h"
#include "error.h"
#include "log.h"

/* ---- /meta/handshake ------------------------------------------------ */

static void handshake_done(bx_exchange *ex, const redisReply *r)
{
    json_t *rep = reply(ex);
    if (!r) {
        bx_dx_reply_broker_down(ex, "handshake");
        free(ex->new_browser);
        ex->new_browser = NULL;
        bx_dx_complete(ex);
        return;
    }
    bx_reply_ok(rep);
    json_object_set_new(rep, "clientId", json_string(ex->cid));
    json_object_set_new(rep, "version", json_string("1.0"));
    json_object_set_new(rep, "minimumVersion", json_string("1.0"));
    json_object_set(rep, "supportedConnectionTypes", ex->d->supported);
    bx_dx_set_advice(ex, bx_dx_full_advice(ex));
    bx_debug("handshake c=%s ok (browser %s%s, ack %d)", ex->cid, ex->browser ? ex->browser : "-",
             ex->new_browser ? " new" : "", ex->cur.ack_requested);
    bx_dx_complete(ex);
}

/* >>> security policy (h7, auth.h) */
static int handshake_deny(bx_exchange *ex, const char *why)
{
    bx_info("handshake denied: %s", why);
    bx_dx_reply_fail(ex, BX_ERR_HANDSHAKE_DENIED);
    bx_dx_set_advice(ex, bx_advice_none());
    bx_dx_complete(ex);
    return -1;
}

/* The handshake's token. 0 go on (user and roles malloc'd, NULL when anonymous), -1 denied (replied,
 * logged at info with the reason). */
static int handshake_identity(bx_exchange *ex, char **user, char **roles)
{
    const bx_auth *a = ex->d->auth;
    *user = *roles = NULL;
    if (!bx_auth_jwt_enabled(a))
        return 0;
    json_t *given = json_object_get(json_object_get(ex->cur.msg, "ext"), "token");
    const char *token = json_string_value(given);
    const char *how = "ext.token";
    if (given && !token) /* offered but not a string: a bad token, not an anonymous handshake */
        return handshake_deny(ex, "ext.token is not a string");
    if (!token && ex->authorization && strncasecmp(ex->authorization, "Bearer ", 7) == 0) {
        token = ex->authorization + 7;
        how = "Authorization header";
    }
    if (!token && !bx_auth_jwt_required(a)) {
        bx_debug("handshake: no token, anonymous (jwtRequired false)");
        return 0;
    }
    if (!token)
        return handshake_deny(ex, "no token (jwtRequired)");
    char why[200] = "";
    if (bx_auth_verify(a, token, user, roles, why, sizeof why) < 0)
        return handshake_deny(ex, why);
    bx_debug("handshake: token (%s) ok: user %.64s roles %.128s", how, *user, *roles);
    return 0;
}
/* <<< security policy */

void bx_dx_do_handshake(bx_exchange *ex)
{
    char err[128];
    char id[BX_ID_MAX_LEN + 1];
    char *user = NULL, *roles = NULL;
    if (handshake_identity(ex, &user, &roles) < 0)
        return;
    if (bx_clientid_new(ex->cid, sizeof ex->cid, err, sizeof err) < 0) {
        bx_error("handshake: %s", err);
        bx_dx_reply_broker_down(ex, err);
        free(user);
        free(roles);
        bx_dx_complete(ex);
        return;
    }
    if (ex->info.http && !ex->browser) {
        if (bx_browserid_new(id, sizeof id, err, sizeof err) < 0 || !(ex->new_browser = strdup(id))) {
            bx_error("handshake: browser id: %s", err);
            bx_dx_reply_broker_down(ex, "browser id");
            free(user);
            free(roles);
            bx_dx_complete(ex);
            return;
        }
    }
    const char *browser = ex->browser ? ex->browser : ex->new_browser ? ex->new_browser : "";
    args a = {0};
    bx_dx_args_add(&a, ex->cid);
    bx_dx_args_add(&a, browser);
    bx_dx_args_add(&a, bx_transport_name(ex->info.transport));
    bx_dx_args_addl(&a, expiry_ms(ex));
    bx_dx_args_addl(&a, ttl_ms(ex));
    bx_dx_args_addl(&a, ex->cur.ack_requested);
    bx_dx_args_add(&a, user ? user : "");
    bx_dx_args_addl(&a, user != NULL);
    bx_dx_args_add(&a, roles ? roles : "");
    bx_dx_args_add(&a, ex->d->cfg->presenceChannel ? ex->d->cfg->presenceChannel : "");
    free(user);
    free(roles);
    bx_dx_call(ex, "bx_handshake", &a, handshake_done);
}

/* ---- /meta/disconnect ----------------------------------------------- */

/* Reply of a broker call whose only outcomes are ok / unknown session / broker down. */
static void answer_status(bx_exchange *ex, const redisReply *r)
{
    if (!r)
        bx_dx_reply_broker_down(ex, ex->cur.channel);
    else if (is_status(r, "unknown"))
        bx_dx_reply_unknown(ex, 0);
    else
        bx_reply_ok(reply(ex));
}

static void disconnect_done(bx_exchange *ex, const redisReply *r)
{
    answer_status(ex, r);
    bx_debug("disconnect c=%s: %s", bx_msg_client_id(ex->cur.msg), !r ? "broker down" : rstatus(r));
    bx_dx_complete(ex);
}

void bx_dx_do_disconnect(bx_exchange *ex)
{
    const char *cid = bx_dx_session_cid(ex);
    if (!cid) {
        bx_debug("disconnect: clientId missing/invalid or no browser cookie → 402");
        bx_dx_reply_unknown(ex, 0);
        bx_dx_complete(ex);
        return;
    }
    args a = {0};
    bx_dx_args_add(&a, cid);
    bx_dx_args_add(&a, bx_dx_session_browser(ex));
    bx_dx_call(ex, "bx_disconnect", &a, disconnect_done);
}
