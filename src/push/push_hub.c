/* The WebSocket push hub (see push_hub.h for the threads and the lock). */
#include "push/push_hub.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <wslay/wslay.h>

#include "core/log.h"
#include "core/util.h"
#include "push/push_filter.h"
#include "push/push_outbox.h"

#define HUB_BUS_QUEUE 16384          /* events the hub's bus subscription holds */
#define HUB_WSLAY_QUEUE_MSGS 8       /* messages handed to wslay ahead of the socket */
#define HUB_WSLAY_MAX_BYTES (4u << 20) /* wslay's queue beyond this: the client is cut off */
#define HUB_MAX_RECV_BYTES (1u << 20) /* largest client message (wslay answers 1009 beyond) */
#define HUB_CLOSE_WAIT_MS 1000       /* close handshake: wait this long for the peer */
#define HUB_FEED_ROUNDS 64           /* per client per poll round, so one cannot starve others */
#define HUB_FANOUT_BATCH 1024        /* events fanned out between wake-ups of the I/O thread */
#define PREDICTION_TOPIC "prediction.updated"

typedef struct client {
    push_hub_t *hub;
    uint64_t id;
    int sock;
    struct MHD_UpgradeResponseHandle *urh;
    wslay_event_context_ptr ws;   /* I/O thread */
    push_filter_t filter;         /* hub.mu */
    push_outbox_t *outbox;        /* hub.mu */
    char *pre;                    /* bytes read by the HTTP server past the headers */
    size_t pre_len, pre_off;
    int dead;                     /* I/O thread: close it now */
    int closing;                  /* I/O thread: close frame queued, no more messages */
    int64_t close_deadline_ms;
    int64_t next_ms;              /* I/O thread: when its outbox has a token again (0: none) */
    uint64_t bad_msgs;
    struct client *next;          /* hub.mu */
} client_t;

struct push_hub {
    bus_t *bus;
    metrics_t *m;
    bus_sub_t *sub;
    push_outbox_cfg_t ocfg;
    long max_clients;
    int wake_fd;

    pthread_mutex_t mu;           /* protects the fields below and clients' filter and outbox */
    client_t *clients;
    long n_clients;
    int stopping;
    uint64_t next_id;

    _Atomic int stop_fanout;
    pthread_t fan_t, io_t;
    int fan_started, io_started, joined;
};

static void wake(push_hub_t *h) {
    uint64_t one = 1;
    ssize_t w = write(h->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, a wake-up is pending */
}

/* ---- wslay callbacks (I/O thread) ------------------------------------------------------- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud) {
    (void)flags;
    client_t *c = ud;
    if (c->pre_off < c->pre_len) {
        size_t n = c->pre_len - c->pre_off;
        if (n > len) n = len;
        memcpy(buf, c->pre + c->pre_off, n);
        c->pre_off += n;
        return (ssize_t)n;
    }
    ssize_t n = recv(c->sock, buf, len, 0);
    if (n > 0) return n;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    } else {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE); /* 0: the peer went away */
    }
    return -1;
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud) {
    (void)flags;
    client_t *c = ud;
    ssize_t n = send(c->sock, data, len, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static void queue_text(client_t *c, const char *text, size_t len) {
    struct wslay_event_msg msg = {.opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)text, .msg_length = len};
    if (wslay_event_queue_msg(c->ws, &msg) != 0) c->dead = 1; /* no memory, or closing */
}

static void reply_error(client_t *c, const push_err_t *e) {
    buf_t b = {0};
    buf_puts(&b, "{\"type\":\"error\",\"data\":{\"code\":");
    buf_json_str(&b, e->code, strlen(e->code));
    buf_puts(&b, ",\"message\":");
    buf_json_str(&b, e->message, strlen(e->message));
    buf_puts(&b, ",\"field\":");
    if (e->field[0]) buf_json_str(&b, e->field, strlen(e->field));
    else buf_puts(&b, "null");
    buf_puts(&b, "}}");
    if (!b.oom) queue_text(c, b.data, b.len);
    buf_free(&b);
    c->bad_msgs++;
    metrics_counter_add(c->hub->m, "predictd_ws_bad_messages_total", NULL, 1);
}

/* A client message: subscribe / unsubscribe (answered with the subscription as it now
 * stands), stats (the outbox counters), anything else an error frame. */
static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud) {
    (void)ctx;
    client_t *c = ud;
    push_hub_t *h = c->hub;
    push_err_t e = {{0}, {0}, {0}};
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        snprintf(e.code, sizeof e.code, "invalid_message");
        snprintf(e.message, sizeof e.message, "binary messages are not accepted; send JSON text");
        reply_error(c, &e);
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME) return; /* ping, pong, close: wslay's */
    buf_t b = {0};
    pthread_mutex_lock(&h->mu);
    int kind = push_filter_apply_msg(&c->filter, (const char *)arg->msg, arg->msg_length, &e);
    if (kind == PUSH_MSG_STATS) {
        push_outbox_stats_t st;
        push_outbox_stats(c->outbox, &st);
        buf_printf(&b,
                   "{\"type\":\"stats\",\"data\":{\"client_id\":%llu,\"sent\":%llu,\"dropped\":%llu,"
                   "\"coalesced\":%llu,\"rate_limited\":%llu,\"queued\":%zu,\"queued_bytes\":%zu,"
                   "\"bad_messages\":%llu}}",
                   (unsigned long long)c->id, (unsigned long long)st.sent, (unsigned long long)st.dropped,
                   (unsigned long long)st.coalesced, (unsigned long long)st.rate_limited, st.queued,
                   st.queued_bytes, (unsigned long long)c->bad_msgs);
    } else if (kind > 0) {
        buf_printf(&b, "{\"type\":\"%s\",\"data\":", kind == PUSH_MSG_SUBSCRIBE ? "subscribed" : "unsubscribed");
        push_filter_describe(&c->filter, &b);
        buf_putc(&b, '}');
    }
    pthread_mutex_unlock(&h->mu);
    if (kind < 0) reply_error(c, &e);
    else if (!b.oom) queue_text(c, b.data, b.len);
    buf_free(&b);
}

/* ---- clients ---------------------------------------------------------------------------- */

static void client_free(client_t *c) {
    if (!c) return;
    if (c->ws) wslay_event_context_free(c->ws);
    push_filter_clear(&c->filter);
    push_outbox_free(c->outbox);
    free(c->pre);
    free(c);
}

/* Unlinks, logs, hands the socket back to the HTTP server to close, frees. I/O thread. */
static void client_close(push_hub_t *h, client_t *c) {
    pthread_mutex_lock(&h->mu);
    for (client_t **pp = &h->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            /* the last client gone: stop taking the bus's events (nobody to fan them out to) */
            if (--h->n_clients == 0) bus_set_topics(h->bus, h->sub, BUS_TOPICS_NONE);
            break;
        }
    }
    push_outbox_stats_t st;
    push_outbox_stats(c->outbox, &st);
    pthread_mutex_unlock(&h->mu);
    LOG_I("websocket client closed", "client=%llu sent=%llu dropped=%llu coalesced=%llu rate_limited=%llu bad_messages=%llu",
          (unsigned long long)c->id, (unsigned long long)st.sent, (unsigned long long)st.dropped,
          (unsigned long long)st.coalesced, (unsigned long long)st.rate_limited, (unsigned long long)c->bad_msgs);
    MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
    client_free(c);
}

void push_hub_adopt(push_hub_t *h, int sock, struct MHD_UpgradeResponseHandle *urh, const char *extra,
                    size_t extra_len) {
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = on_recv, .send_callback = on_send, .on_msg_recv_callback = on_msg};
    client_t *c = calloc(1, sizeof *c);
    if (!c) goto fail;
    c->hub = h;
    c->sock = sock;
    c->urh = urh;
    c->outbox = push_outbox_new(&h->ocfg, mono_ms());
    if (!c->outbox || wslay_event_context_server_init(&c->ws, &cbs, c) != 0) goto fail;
    wslay_event_config_set_max_recv_msg_length(c->ws, HUB_MAX_RECV_BYTES);
    if (extra_len) {
        c->pre = malloc(extra_len);
        if (!c->pre) goto fail;
        memcpy(c->pre, extra, extra_len);
        c->pre_len = extra_len;
    }
    int fl = fcntl(sock, F_GETFL, 0);
    if (fl < 0 || fcntl(sock, F_SETFL, fl | O_NONBLOCK) < 0) goto fail;
    pthread_mutex_lock(&h->mu);
    if (h->stopping || h->n_clients >= h->max_clients) {
        pthread_mutex_unlock(&h->mu);
        goto fail;
    }
    c->id = ++h->next_id;
    c->next = h->clients;
    h->clients = c;
    if (h->n_clients++ == 0) bus_set_topics(h->bus, h->sub, "*"); /* the first client: every event */
    pthread_mutex_unlock(&h->mu);
    metrics_counter_add(h->m, "predictd_ws_connections_total", "outcome=\"accepted\"", 1);
    LOG_D("websocket client connected", "client=%llu", (unsigned long long)c->id);
    wake(h);
    return;
fail:
    metrics_counter_add(h->m, "predictd_ws_connections_total", "outcome=\"refused\"", 1);
    client_free(c);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

int push_hub_full(push_hub_t *h) {
    pthread_mutex_lock(&h->mu);
    int full = h->stopping || h->n_clients >= h->max_clients;
    pthread_mutex_unlock(&h->mu);
    return full;
}

/* ---- fan-out thread --------------------------------------------------------------------- */

typedef struct {
    uint64_t dropped, coalesced, rate_limited;
} fan_counts_t;

static void fan_one(push_hub_t *h, const bus_event_t *ev, fan_counts_t *n) {
    pthread_mutex_lock(&h->mu);
    int any = h->n_clients > 0;
    pthread_mutex_unlock(&h->mu);
    if (!any) return; /* nobody listening: not even parsed */
    char sym[PUSH_KEY_MAX], job[PUSH_KEY_MAX];
    int has_sym = 0, has_job = 0;
    push_event_keys(ev->data, ev->len, sym, &has_sym, job, &has_job);
    push_frame_t *fr = push_frame_new(ev->topic, ev->data, ev->len);
    if (!fr) return;
    const char *key = has_sym && strcmp(ev->topic, PREDICTION_TOPIC) == 0 ? sym : NULL;
    int64_t now = mono_ms();
    pthread_mutex_lock(&h->mu);
    for (client_t *c = h->clients; c; c = c->next) {
        if (!push_filter_match(&c->filter, ev->topic, has_sym ? sym : NULL, has_job ? job : NULL)) continue;
        push_outbox_result_t r;
        push_outbox_push(c->outbox, fr, key, now, &r);
        n->dropped += r.dropped;
        n->coalesced += (uint64_t)r.coalesced;
        n->rate_limited += (uint64_t)r.rate_limited;
    }
    pthread_mutex_unlock(&h->mu);
    push_frame_unref(fr);
}

static void *fanout_main(void *arg) {
    push_hub_t *h = arg;
    while (!atomic_load(&h->stop_fanout)) {
        bus_event_t ev;
        int rc = bus_next(h->bus, h->sub, 200, &ev);
        if (rc < 0) break;
        if (rc == 0) continue;
        fan_counts_t n = {0};
        int batch = 0;
        do {
            fan_one(h, &ev, &n);
            bus_event_clear(&ev);
        } while (++batch < HUB_FANOUT_BATCH && bus_next(h->bus, h->sub, 0, &ev) == 1);
        wake(h);
        if (n.dropped) metrics_counter_add(h->m, "predictd_ws_messages_dropped_total", NULL, (double)n.dropped);
        if (n.coalesced) metrics_counter_add(h->m, "predictd_ws_messages_coalesced_total", NULL, (double)n.coalesced);
        if (n.rate_limited) metrics_counter_add(h->m, "predictd_ws_rate_limited_total", NULL, (double)n.rate_limited);
    }
    return NULL;
}

/* ---- I/O thread ------------------------------------------------------------------------- */

/* Moves messages the rate allows from the outbox into wslay while its queue is short.
 * Returns how many; sets c->next_ms when the outbox waits for a token. */
static int feed(push_hub_t *h, client_t *c, int64_t now) {
    size_t queued = wslay_event_get_queued_msg_count(c->ws);
    size_t room = c->closing || queued >= HUB_WSLAY_QUEUE_MSGS ? 0 : HUB_WSLAY_QUEUE_MSGS - queued;
    push_frame_t *batch[HUB_WSLAY_QUEUE_MSGS];
    size_t nb = 0;
    int64_t wait = -1;
    c->next_ms = 0;
    pthread_mutex_lock(&h->mu);
    while (nb < room) {
        push_frame_t *f;
        if (!push_outbox_take(c->outbox, now, &f, &wait)) break;
        batch[nb++] = f;
    }
    pthread_mutex_unlock(&h->mu);
    if (nb < room && wait > 0) c->next_ms = now + wait;
    for (size_t i = 0; i < nb; i++) {
        if (!c->dead) queue_text(c, batch[i]->text, batch[i]->len); /* wslay copies it */
        push_frame_unref(batch[i]);
    }
    if (nb) metrics_counter_add(h->m, "predictd_ws_messages_sent_total", NULL, (double)nb);
    return (int)nb;
}

static void pump(push_hub_t *h, client_t *c, int64_t now) {
    int round = 0;
    for (; round < HUB_FEED_ROUNDS && !c->dead; round++) {
        int fed = feed(h, c, now);
        if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) c->dead = 1;
        if (fed == 0) break;
    }
    if (round == HUB_FEED_ROUNDS) c->next_ms = now; /* more ready: come back after the others */
}

static void start_close(client_t *c, uint16_t code, const char *reason, int64_t now) {
    if (c->closing) return;
    c->closing = 1;
    c->close_deadline_ms = now + HUB_CLOSE_WAIT_MS;
    if (wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, strlen(reason)) != 0) c->dead = 1;
}

static void *io_main(void *arg) {
    push_hub_t *h = arg;
    client_t **snap = NULL;
    struct pollfd *pfd = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        int stopping = h->stopping;
        size_t n = (size_t)h->n_clients;
        if (n + 1 > cap) {
            size_t nc = (n + 1) * 2;
            client_t **s2 = realloc(snap, nc * sizeof *s2);
            if (s2) snap = s2;
            struct pollfd *p2 = s2 ? realloc(pfd, nc * sizeof *p2) : NULL;
            if (p2) pfd = p2;
            if (s2 && p2) cap = nc;
        }
        if (n + 1 > cap) n = cap ? cap - 1 : 0; /* no memory: serve those that fit this round */
        size_t i = 0;
        for (client_t *c = h->clients; c && i < n; c = c->next) snap[i++] = c;
        pthread_mutex_unlock(&h->mu);
        int64_t now = mono_ms();
        if (stopping && n == 0) break;
        int timeout = 1000;
        if (pfd) {
            pfd[0] = (struct pollfd){.fd = h->wake_fd, .events = POLLIN};
            for (i = 0; i < n; i++) {
                client_t *c = snap[i];
                if (stopping) start_close(c, 1001, "server shutting down", now);
                short ev = 0;
                if (wslay_event_want_read(c->ws)) ev |= POLLIN;
                if (wslay_event_want_write(c->ws)) ev |= POLLOUT;
                pfd[i + 1] = (struct pollfd){.fd = c->sock, .events = ev};
                int64_t due = c->closing ? c->close_deadline_ms : c->next_ms;
                if (due > 0 && due - now < timeout) timeout = due - now < 0 ? 0 : (int)(due - now);
                if (c->pre_off < c->pre_len || c->dead) timeout = 0;
            }
            if (poll(pfd, (nfds_t)n + 1, timeout) < 0 && errno != EINTR) LOG_W("poll failed", "errno=%d", errno);
        } else {
            usleep(10000); /* could not allocate the poll set: try again shortly */
        }
        uint64_t cnt;
        if (pfd && (pfd[0].revents & POLLIN) && read(h->wake_fd, &cnt, sizeof cnt) < 0) { /* EAGAIN */ }
        now = mono_ms();
        for (i = 0; i < n && pfd; i++) {
            client_t *c = snap[i];
            short re = pfd[i + 1].revents;
            if (!c->dead && (c->pre_off < c->pre_len || (re & (POLLIN | POLLHUP | POLLERR))) &&
                wslay_event_want_read(c->ws) && wslay_event_recv(c->ws) != 0)
                c->dead = 1;
            if (!c->dead) pump(h, c, now);
            if (!wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws)) c->dead = 1; /* closed */
            if (wslay_event_get_queued_msg_length(c->ws) > HUB_WSLAY_MAX_BYTES) {
                LOG_W("websocket client not reading its replies: cut off", "client=%llu", (unsigned long long)c->id);
                c->dead = 1;
            }
            if (c->closing && now >= c->close_deadline_ms) c->dead = 1;
            if (c->dead) client_close(h, c);
        }
    }
    free(snap);
    free(pfd);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------- */

static void collect(void *arg, metrics_t *m) {
    push_hub_t *h = arg;
    size_t msgs = 0, bytes = 0;
    pthread_mutex_lock(&h->mu);
    long n = h->n_clients;
    for (client_t *c = h->clients; c; c = c->next) {
        push_outbox_stats_t st;
        push_outbox_stats(c->outbox, &st);
        msgs += st.queued;
        bytes += st.queued_bytes;
    }
    pthread_mutex_unlock(&h->mu);
    metrics_gauge_set(m, "predictd_ws_clients", NULL, (double)n);
    metrics_gauge_set(m, "predictd_ws_buffered_messages", NULL, (double)msgs);
    metrics_gauge_set(m, "predictd_ws_buffered_bytes", NULL, (double)bytes);
}

static void describe(metrics_t *m) {
    metrics_describe(m, "predictd_ws_clients", METRIC_GAUGE, "WebSocket clients connected", NULL, 0);
    metrics_describe(m, "predictd_ws_buffered_messages", METRIC_GAUGE,
                     "messages waiting in WebSocket clients' outboxes (rate limit or slow socket)", NULL, 0);
    metrics_describe(m, "predictd_ws_buffered_bytes", METRIC_GAUGE,
                     "bytes waiting in WebSocket clients' outboxes (each bounded by push.buffer_bytes)", NULL, 0);
    metrics_describe(m, "predictd_ws_connections_total", METRIC_COUNTER,
                     "WebSocket upgrades by outcome (accepted, refused: over push.max_clients or stopping)", NULL, 0);
    metrics_describe(m, "predictd_ws_messages_sent_total", METRIC_COUNTER,
                     "event messages handed to WebSocket clients' connections", NULL, 0);
    metrics_describe(m, "predictd_ws_messages_dropped_total", METRIC_COUNTER,
                     "event messages dropped from a full client outbox (the oldest go first)", NULL, 0);
    metrics_describe(m, "predictd_ws_messages_coalesced_total", METRIC_COUNTER,
                     "queued prediction.updated messages replaced by a newer one for the same symbol", NULL, 0);
    metrics_describe(m, "predictd_ws_rate_limited_total", METRIC_COUNTER,
                     "event messages that arrived while their client was at its rate limit (push.rate_per_s)", NULL, 0);
    metrics_describe(m, "predictd_ws_bad_messages_total", METRIC_COUNTER,
                     "client messages answered with an error frame", NULL, 0);
}

int push_hub_open(push_hub_t **out, const predictd_config_t *cfg, bus_t *bus, metrics_t *m, char *err,
                  size_t errlen) {
    *out = NULL;
    push_hub_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->bus = bus;
    h->m = m;
    h->wake_fd = -1;
    h->max_clients = cfg->push_max_clients;
    h->ocfg = (push_outbox_cfg_t){.max_msgs = (size_t)cfg->push_buffer_messages,
                                  .max_bytes = (size_t)cfg->push_buffer_bytes,
                                  .rate_per_s = cfg->push_rate_per_s};
    pthread_mutex_init(&h->mu, NULL);
    h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->wake_fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    /* no events until a client connects (push_hub_adopt): a server without WebSocket clients
     * is not woken by every job's events */
    h->sub = bus_subscribe(bus, BUS_TOPICS_NONE, HUB_BUS_QUEUE);
    if (!h->sub) {
        snprintf(err, errlen, "cannot subscribe to the event bus");
        goto fail;
    }
    if (m) {
        describe(m);
        metrics_add_collector(m, collect, h);
    }
    if (pthread_create(&h->fan_t, NULL, fanout_main, h) != 0) {
        snprintf(err, errlen, "cannot start the push fan-out thread");
        goto fail;
    }
    h->fan_started = 1;
    if (pthread_create(&h->io_t, NULL, io_main, h) != 0) {
        snprintf(err, errlen, "cannot start the push I/O thread");
        goto fail;
    }
    h->io_started = 1;
    *out = h;
    return 0;
fail:
    push_hub_free(h);
    return -1;
}

void push_hub_stop(push_hub_t *h) {
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    int first = !h->joined;
    h->stopping = 1;
    h->joined = 1;
    pthread_mutex_unlock(&h->mu);
    if (!first) return;
    atomic_store(&h->stop_fanout, 1);
    wake(h);
    if (h->fan_started) pthread_join(h->fan_t, NULL);
    if (h->io_started) pthread_join(h->io_t, NULL);
    /* The I/O thread closes every client before it ends and later adoptions are refused; any
     * left (the thread never started, or could not allocate its poll set) are closed here:
     * the HTTP server's stop waits for every upgraded connection. */
    pthread_mutex_lock(&h->mu);
    client_t *left = h->clients;
    h->clients = NULL;
    h->n_clients = 0;
    pthread_mutex_unlock(&h->mu);
    for (client_t *c = left, *next; c; c = next) {
        next = c->next;
        MHD_upgrade_action(c->urh, MHD_UPGRADE_ACTION_CLOSE);
        client_free(c);
    }
}

void push_hub_free(push_hub_t *h) {
    if (!h) return;
    push_hub_stop(h);
    if (h->m) metrics_remove_collector(h->m, collect, h);
    bus_unsubscribe(h->bus, h->sub);
    if (h->wake_fd >= 0) close(h->wake_fd);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
