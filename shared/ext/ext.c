/* ext.c — helpers every extension uses to read and write the "ext" object. */
#include "ext/ext.h"

#include <time.h>

long long bx_ext_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

json_t *bx_ext_get(const json_t *msg, const char *name)
{
    json_t *ext = json_object_get(msg, "ext");
    if (!json_is_object(ext))
        return NULL;
    return json_object_get(ext, name);
}

int bx_ext_set(json_t *reply, const char *name, json_t *value)
{
    if (!value)
        return -1;
    json_t *ext = json_object_get(reply, "ext");
    if (!json_is_object(ext)) {
        ext = json_object();
        /* json_object_set_new steals ext even on failure */
        if (!ext || json_object_set_new(reply, "ext", ext) < 0) {
            json_decref(value);
            return -1;
        }
    }
    return json_object_set_new(ext, name, value);
}

long long bx_ext_int(const json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i > 9000000000000000LL ? 9000000000000000LL : i < -9000000000000000LL ? -9000000000000000LL : i;
    }
    if (!json_is_real(v))
        return 0;
    double d = json_real_value(v);
    if (!(d == d))
        return 0;
    return d > 9e15 ? 9000000000000000LL : d < -9e15 ? -9000000000000000LL : (long long)d;
}
