/* The push outbox: a FIFO list of entries plus a hash of the keyed ones (for coalescing),
 * and a token bucket counted in thousandths of a message (integer arithmetic, no drift). */
#include "push/push_outbox.h"

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* ---- frames ----------------------------------------------------------------------------- */

push_frame_t *push_frame_raw(const char *text, size_t len) {
    push_frame_t *f = malloc(sizeof *f + len + 1);
    if (!f) return NULL;
    atomic_init(&f->refs, 1);
    f->len = len;
    memcpy(f->text, text, len);
    f->text[len] = '\0';
    return f;
}

push_frame_t *push_frame_new(const char *topic, const char *data, size_t data_len) {
    static const char a[] = "{\"type\":\"", b[] = "\",\"data\":", c[] = "}";
    size_t tl = strlen(topic);
    size_t len = sizeof a - 1 + tl + sizeof b - 1 + data_len + sizeof c - 1;
    push_frame_t *f = malloc(sizeof *f + len + 1);
    if (!f) return NULL;
    atomic_init(&f->refs, 1);
    f->len = len;
    char *p = f->text;
    /* topic names are [a-z0-9_.-] (bus_topic_valid): no escaping needed */
    memcpy(p, a, sizeof a - 1), p += sizeof a - 1;
    memcpy(p, topic, tl), p += tl;
    memcpy(p, b, sizeof b - 1), p += sizeof b - 1;
    memcpy(p, data, data_len), p += data_len;
    memcpy(p, c, sizeof c - 1), p += sizeof c - 1;
    *p = '\0';
    return f;
}

push_frame_t *push_frame_ref(push_frame_t *f) {
    atomic_fetch_add(&f->refs, 1);
    return f;
}

void push_frame_unref(push_frame_t *f) {
    if (f && atomic_fetch_sub(&f->refs, 1) == 1) free(f);
}

/* ---- the outbox ------------------------------------------------------------------------- */

typedef struct ent {
    push_frame_t *fr;
    char *key;           /* NULL: FIFO */
    uint64_t hash;
    struct ent *next;    /* FIFO order */
    struct ent *hnext;   /* hash chain */
} ent_t;

struct push_outbox {
    push_outbox_cfg_t cfg;
    ent_t *head, *tail;
    size_t n, bytes;
    ent_t **buckets;     /* keyed entries; n_buckets a power of two (0: none yet) */
    size_t n_buckets, n_keyed;
    int64_t tokens_m;    /* thousandths of a message, at most rate_per_s * 1000 */
    int64_t last_ms;
    push_outbox_stats_t st;
};

push_outbox_t *push_outbox_new(const push_outbox_cfg_t *cfg, int64_t now_ms) {
    push_outbox_t *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->cfg = *cfg;
    if (o->cfg.max_msgs < 1) o->cfg.max_msgs = 1;
    if (o->cfg.max_bytes < 1) o->cfg.max_bytes = 1;
    if (o->cfg.rate_per_s < 1) o->cfg.rate_per_s = 1;
    o->tokens_m = (int64_t)o->cfg.rate_per_s * 1000;
    o->last_ms = now_ms;
    return o;
}

static void ent_free(ent_t *e) {
    push_frame_unref(e->fr);
    free(e->key);
    free(e);
}

void push_outbox_free(push_outbox_t *o) {
    if (!o) return;
    for (ent_t *e = o->head, *next; e; e = next) {
        next = e->next;
        ent_free(e);
    }
    free(o->buckets);
    free(o);
}

static void refill(push_outbox_t *o, int64_t now_ms) {
    if (now_ms <= o->last_ms) return; /* a clock that went back refills nothing */
    int64_t cap = (int64_t)o->cfg.rate_per_s * 1000;
    int64_t dt = now_ms - o->last_ms;
    /* dt ms at rate r per second = dt * r thousandths */
    o->tokens_m = dt >= 1000 ? cap : o->tokens_m + dt * o->cfg.rate_per_s; /* a second refills all */
    if (o->tokens_m > cap) o->tokens_m = cap;
    o->last_ms = now_ms;
}

static ent_t **bucket_of(push_outbox_t *o, uint64_t h) { return &o->buckets[h & (o->n_buckets - 1)]; }

static void hash_unlink(push_outbox_t *o, ent_t *e) {
    for (ent_t **pp = bucket_of(o, e->hash); *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            o->n_keyed--;
            return;
        }
    }
}

/* Doubles the table when keyed entries outnumber buckets. -1: no memory (keeps the old). */
static int hash_grow(push_outbox_t *o) {
    size_t nb = o->n_buckets ? o->n_buckets * 2 : 16;
    ent_t **b = calloc(nb, sizeof *b);
    if (!b) return o->n_buckets ? 0 : -1;
    for (size_t i = 0; i < o->n_buckets; i++) {
        for (ent_t *e = o->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(o->buckets);
    o->buckets = b;
    o->n_buckets = nb;
    return 0;
}

/* Takes e (whose predecessor is prev, NULL for the head) out of the list and the hash. */
static void unlink_ent(push_outbox_t *o, ent_t *prev, ent_t *e) {
    if (prev) prev->next = e->next;
    else o->head = e->next;
    if (o->tail == e) o->tail = prev;
    o->n--;
    o->bytes -= e->fr->len;
    if (e->key) hash_unlink(o, e);
}

static ent_t *pop_front(push_outbox_t *o) {
    ent_t *e = o->head;
    if (e) unlink_ent(o, NULL, e);
    return e;
}

/* Drops the oldest entries other than keep until n <= max_n and bytes <= max_bytes. */
static size_t make_room(push_outbox_t *o, size_t max_n, size_t max_bytes, const ent_t *keep) {
    size_t dropped = 0;
    ent_t *prev = NULL, *e = o->head;
    while (e && (o->n > max_n || o->bytes > max_bytes)) {
        if (e == keep) {
            prev = e;
            e = e->next;
            continue;
        }
        ent_t *next = e->next;
        unlink_ent(o, prev, e);
        ent_free(e);
        dropped++;
        e = next;
    }
    return dropped;
}

int push_outbox_push(push_outbox_t *o, push_frame_t *fr, const char *key, int64_t now_ms,
                     push_outbox_result_t *res) {
    push_outbox_result_t r = {0};
    int rc = 0;
    refill(o, now_ms);
    r.rate_limited = o->tokens_m < 1000;
    o->st.pushed++;
    o->st.rate_limited += (uint64_t)r.rate_limited;
    if (key && !*key) key = NULL;
    if (fr->len > o->cfg.max_bytes) { /* can never fit */
        r.dropped = 1;
        goto done;
    }
    uint64_t h = key ? hash_fnv1a(key, strlen(key), 0) : 0;
    if (key && o->n_buckets) {
        for (ent_t *e = *bucket_of(o, h); e; e = e->hnext) {
            if (e->hash != h || strcmp(e->key, key) != 0) continue;
            o->bytes = o->bytes - e->fr->len + fr->len;
            push_frame_unref(e->fr);
            e->fr = push_frame_ref(fr);
            r.coalesced = 1;
            r.dropped = make_room(o, o->cfg.max_msgs, o->cfg.max_bytes, e);
            goto done;
        }
    }
    ent_t *e = calloc(1, sizeof *e);
    if (!e || (key && !(e->key = strdup(key))) || (key && o->n_keyed >= o->n_buckets && hash_grow(o))) {
        if (e) free(e->key);
        free(e);
        r.dropped = 1;
        rc = -1;
        goto done;
    }
    /* room first, so that the new entry is never the one dropped */
    r.dropped = make_room(o, o->cfg.max_msgs - 1, o->cfg.max_bytes - fr->len, NULL);
    e->fr = push_frame_ref(fr);
    e->hash = h;
    if (key) {
        ent_t **b = bucket_of(o, h);
        e->hnext = *b;
        *b = e;
        o->n_keyed++;
    }
    if (o->tail) o->tail->next = e;
    else o->head = e;
    o->tail = e;
    o->n++;
    o->bytes += fr->len;
done:
    o->st.dropped += r.dropped;
    o->st.coalesced += (uint64_t)r.coalesced;
    if (res) *res = r;
    return rc;
}

int push_outbox_take(push_outbox_t *o, int64_t now_ms, push_frame_t **out, int64_t *wait_ms) {
    *out = NULL;
    refill(o, now_ms);
    if (!o->head) {
        *wait_ms = -1;
        return 0;
    }
    if (o->tokens_m < 1000) {
        int64_t r = o->cfg.rate_per_s;
        *wait_ms = (1000 - o->tokens_m + r - 1) / r;
        return 0;
    }
    ent_t *e = pop_front(o);
    o->tokens_m -= 1000;
    *out = e->fr;
    e->fr = NULL;
    ent_free(e);
    o->st.sent++;
    *wait_ms = 0;
    return 1;
}

size_t push_outbox_len(const push_outbox_t *o) { return o->n; }

void push_outbox_stats(const push_outbox_t *o, push_outbox_stats_t *out) {
    *out = o->st;
    out->queued = o->n;
    out->queued_bytes = o->bytes;
}
