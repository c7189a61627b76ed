/* The fast layer's backend choice and its NULL-safe wrappers. */
#include "kv/kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static int64_t mono_clock(void *arg) {
    (void)arg;
    return mono_ms();
}

int kv_open(kv_t **out, const char *kind, kv_clock_fn clock, void *clock_arg, char *err, size_t errlen) {
    *out = NULL;
    kv_t *kv = calloc(1, sizeof *kv);
    if (!kv) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    kv->clock = clock ? clock : mono_clock;
    kv->clock_arg = clock_arg;
    if (!kind || !strcmp(kind, "mem")) {
        if (kv_mem_open(kv, err, errlen) != 0) {
            free(kv);
            return -1;
        }
    } else {
        snprintf(err, errlen, "unknown fast-layer backend '%s' (mem)", kind);
        free(kv);
        return -1;
    }
    *out = kv;
    return 0;
}

void kv_free(kv_t *kv) {
    if (!kv) return;
    kv->ops->xFree(kv);
    free(kv);
}

int kv_put(kv_t *kv, const char *key, const void *val, size_t len, int64_t ttl_ms) {
    if (!kv || kv->down) return KV_ERR_DOWN;
    return kv->ops->xPut(kv, key, val, len, ttl_ms);
}

int kv_get(kv_t *kv, const char *key, char **val, size_t *len, int64_t *ttl_left_ms) {
    *val = NULL;
    if (len) *len = 0;
    if (!kv || kv->down) return KV_ERR_DOWN;
    return kv->ops->xGet(kv, key, val, len, ttl_left_ms);
}

int kv_del(kv_t *kv, const char *key) {
    if (!kv || kv->down) return KV_ERR_DOWN;
    return kv->ops->xDel(kv, key);
}

long kv_count(kv_t *kv) {
    if (!kv || kv->down) return -1;
    return kv->ops->xCount(kv);
}

void kv_set_down(kv_t *kv, int down) {
    if (kv) kv->down = down ? 1 : 0;
}
