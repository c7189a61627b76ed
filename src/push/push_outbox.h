/* A push client's outgoing messages: a bounded buffer with coalescing, behind a token-bucket
 * rate limit. Pure: time comes in as an argument (now_ms, any monotonic clock), no locking
 * (the owner serialises access), no I/O.
 *
 *   - rate: at most rate_per_s messages per second leave (push_outbox_take), in bursts of at
 *     most rate_per_s (the bucket starts full);
 *   - coalescing: a message pushed with a key replaces the queued message with the same key,
 *     in place (it keeps its turn; the newest value wins); without a key it queues FIFO;
 *   - bounds: at most max_msgs messages and max_bytes bytes are held; beyond them the oldest
 *     are dropped (counted). A single message larger than max_bytes is dropped (counted).
 *
 * Messages are push_frame_t: immutable, reference-counted (atomically, so a frame built once
 * may sit in many clients' outboxes, owned by different threads). */
#ifndef PREDICTD_PUSH_OUTBOX_H
#define PREDICTD_PUSH_OUTBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct push_frame {
    _Atomic long refs;
    size_t len;
    char text[]; /* len bytes + NUL */
} push_frame_t;

/* {"type":<topic>,"data":<data>} with data copied as is (a JSON value). One reference. NULL:
 * no memory. */
push_frame_t *push_frame_new(const char *topic, const char *data, size_t data_len);
/* A frame holding text as is (len bytes). */
push_frame_t *push_frame_raw(const char *text, size_t len);
push_frame_t *push_frame_ref(push_frame_t *f);
void push_frame_unref(push_frame_t *f); /* NULL is a no-op */

typedef struct {
    size_t max_msgs;  /* >= 1 */
    size_t max_bytes; /* >= 1 */
    int rate_per_s;   /* >= 1 */
} push_outbox_cfg_t;

typedef struct {
    uint64_t pushed;       /* messages accepted by push (coalesced ones included) */
    uint64_t sent;         /* messages handed out by take */
    uint64_t dropped;      /* lost to the bounds */
    uint64_t coalesced;    /* replaced by a newer message with the same key */
    uint64_t rate_limited; /* pushed while the client had no token left */
    size_t queued, queued_bytes;
} push_outbox_stats_t;

/* What one push did (for the caller's counters). */
typedef struct {
    int coalesced;     /* 1: replaced a queued message */
    int rate_limited;  /* 1: no token at now_ms */
    size_t dropped;    /* messages dropped to make room (this one included when too big) */
} push_outbox_result_t;

typedef struct push_outbox push_outbox_t;

push_outbox_t *push_outbox_new(const push_outbox_cfg_t *cfg, int64_t now_ms); /* NULL: no memory */
void push_outbox_free(push_outbox_t *o); /* NULL is a no-op; drops its references */

/* Queues a new reference to fr. key: coalescing key (copied; NULL or "" = FIFO). 0 ok, -1 no
 * memory (nothing queued, counted as dropped). */
int push_outbox_push(push_outbox_t *o, push_frame_t *fr, const char *key, int64_t now_ms,
                     push_outbox_result_t *res);
/* The oldest message, when a token is available at now_ms: 1 and *out (the caller owns that
 * reference); 0 when none may leave now, with *wait_ms = ms until the next token (-1: the
 * buffer is empty). */
int push_outbox_take(push_outbox_t *o, int64_t now_ms, push_frame_t **out, int64_t *wait_ms);
size_t push_outbox_len(const push_outbox_t *o);
void push_outbox_stats(const push_outbox_t *o, push_outbox_stats_t *out);

#endif
