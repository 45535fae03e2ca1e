/* authorize.c — channel authorizers of the security policy (auth.h): the session's identity, loaded
 * when a rule needs it, and the decision per channel. A part of the dispatch pipeline (dispatch_int.h). */
#include "dispatch_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"

/* ---- security policy: channel authorizers (h7, auth.h) --------------- */

void bx_dx_ident_clear(bx_exchange *ex)
{
    free(ex->ident_user);
    free(ex->ident_roles);
    ex->ident_user = ex->ident_roles = NULL;
    ex->ident_cid[0] = 0;
}

static void ident_done(bx_exchange *ex, const redisReply *r)
{
    const char *user = rstr(r, 2, NULL), *roles = rstr(r, 3, NULL);
    if (!r || !is_status(r, "ok") || !user || !roles) {
        if (!r)
            bx_dx_reply_broker_down(ex, "session identity");
        else
            bx_dx_reply_unknown(ex, 0);
        bx_debug("%s c=%s: identity for the security policy: %s", ex->cur.channel, bx_msg_client_id(ex->cur.msg),
                 !r ? "broker down" : "session unknown → 402");
        bx_dx_complete(ex);
        return;
    }
    bx_dx_ident_clear(ex);
    ex->ident_auth = rint_at(r, 1) == 1;
    ex->ident_user = strdup(user);
    ex->ident_roles = strdup(roles);
    if (!ex->ident_user || !ex->ident_roles) {
        bx_dx_ident_clear(ex);
        bx_dx_reply_broker_down(ex, "out of memory");
        bx_dx_complete(ex);
        return;
    }
    snprintf(ex->ident_cid, sizeof ex->ident_cid, "%s", bx_msg_client_id(ex->cur.msg));
    ex->k = NULL;
    ex->ident_resume(ex); /* the same message again, now with the identity */
}

/* 1 when the identity of cid is at hand (or not needed for ops on these channels), else 0 after starting
 * to load it: resume runs the message again once it is there. */
int bx_dx_identity_ready(bx_exchange *ex, const char *cid, char *const *channels, int ops, resume_fn *resume)
{
    int need = 0;
    for (size_t i = 0; channels[i] && !need; i++)
        need = bx_auth_needs_identity(ex->d->auth, channels[i], ops);
    if (!need || strcmp(ex->ident_cid, cid) == 0)
        return 1;
    args a = {0};
    bx_dx_args_add(&a, cid);
    bx_dx_args_add(&a, bx_dx_session_browser(ex));
    ex->ident_resume = resume;
    bx_dx_call(ex, "bx_session_auth", &a, ident_done);
    return 0;
}

/* The denial error for op on channel, NULL when allowed (create first, as CometD's SecurityPolicy). */
const char *bx_dx_policy_error(bx_exchange *ex, const char *channel, bx_auth_op op)
{
    bx_identity id = { ex->ident_auth, ex->ident_user ? ex->ident_user : "", ex->ident_roles ? ex->ident_roles : "" };
    const char *error = !bx_auth_allows(ex->d->auth, channel, BX_OP_CREATE, &id) ? BX_ERR_CREATE_DENIED
                      : bx_auth_allows(ex->d->auth, channel, op, &id) ? NULL
                      : op == BX_OP_SUBSCRIBE ? BX_ERR_SUBSCRIBE_DENIED : BX_ERR_PUBLISH_DENIED;
    if (error)
        bx_info("%s c=%s: %s by the security policy (user '%.64s', %s)", channel, bx_msg_client_id(ex->cur.msg),
                error, id.user, id.authenticated ? "authenticated" : "anonymous");
    return error;
}
