/* GET /api/v1/events?topics=ews.alert,job.completed[&symbols=A,B][&jobs=J1,J2][&heartbeat_s=15]
 * as Server-Sent Events.
 *
 * symbols / jobs ("*" or comma-separated; absent = "*") narrow the events that carry a
 * data.symbol / data.job_id, as push/push_filter.h matches them (the WebSocket's rules): an
 * event with a key is sent when one of its keys is listed; an event with neither key is
 * sent whenever its topic is (topics).
 *
 * One bus subscription per connection (queue of BUS_QUEUE_DEFAULT events: a client that
 * reads too slowly loses the oldest, and the next event it gets says how many with a
 * `: dropped N` comment). Each event is
 *     id: <bus seq>\nevent: <topic>\ndata: <json>\n\n
 * and a `: heartbeat` comment goes out after heartbeat_s without an event, so proxies keep
 * the connection and a vanished client is noticed at the next write. The stream ends (the
 * chunked body is closed) when the bus closes at shutdown.
 *
 * The body is produced by libmicrohttpd's content reader, which here waits on the
 * subscription (at most heartbeat_s per call). That suits the default thread-per-connection
 * server; with a thread pool (server.http_threads > 0) a stream would hold a pool thread for
 * its whole life, so it is refused there (503) rather than starving other clients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "api/api_internal.h"
#include "bus/bus.h"
#include "core/log.h"
#include "push/push_filter.h"

#define EVENTS_HEARTBEAT_S_DEFAULT 15
#define EVENTS_TOPICS_MAX 512
#define EVENTS_KEYS_MAX 65536 /* bytes of ?symbols= or ?jobs= */

typedef struct {
    bus_t *bus;
    bus_sub_t *sub;
    int heartbeat_ms;
    int keyed;              /* symbols or jobs given: events are matched against filter */
    push_filter_t filter;
    uint64_t dropped_seen;
    int ended;
    buf_t pending;          /* bytes produced but not yet handed to libmicrohttpd */
    size_t pending_off;
} stream_t;

static void stream_free(void *cls) {
    stream_t *s = cls;
    if (!s) return;
    bus_unsubscribe(s->bus, s->sub);
    push_filter_clear(&s->filter);
    buf_free(&s->pending);
    free(s);
}

/* Appends one SSE event; data is one JSON line (the bus payloads are compact JSON, but a
 * newline inside would end the field, so each line gets its own data: prefix). */
static void put_event(buf_t *b, const bus_event_t *ev) {
    buf_printf(b, "id: %llu\nevent: %s\n", (unsigned long long)ev->seq, ev->topic);
    const char *p = ev->data, *end = ev->data + ev->len;
    for (size_t guard = ev->len + 1; guard > 0; guard--) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        buf_puts(b, "data: ");
        buf_append(b, p, n);
        buf_puts(b, "\n");
        if (!nl) break;
        p = nl + 1;
    }
    buf_puts(b, "\n");
}

static int wanted(const stream_t *s, const bus_event_t *ev) {
    if (!s->keyed) return 1;
    char sym[PUSH_KEY_MAX], job[PUSH_KEY_MAX];
    int has_sym, has_job;
    push_event_keys(ev->data, ev->len, sym, &has_sym, job, &has_job);
    return push_filter_match(&s->filter, ev->topic, has_sym ? sym : NULL, has_job ? job : NULL);
}

/* bus_next for the events this stream wants: 1 one in ev, 0 none within the heartbeat
 * interval (events filtered out do not restart it), -1 the bus closed. */
static int next_wanted(stream_t *s, bus_event_t *ev) {
    int64_t deadline = mono_ms() + s->heartbeat_ms;
    for (;;) {
        int64_t left = deadline - mono_ms();
        int rc = bus_next(s->bus, s->sub, left > 0 ? (int)left : 0, ev);
        if (rc != 1 || wanted(s, ev)) return rc;
        bus_event_clear(ev);
        if (left <= 0) return 0;
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_t *s = cls;
    if (s->pending_off >= s->pending.len) {
        buf_reset(&s->pending);
        s->pending_off = 0;
        if (s->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        bus_event_t ev;
        int rc = next_wanted(s, &ev);
        if (rc < 0) {
            s->ended = 1;
            buf_puts(&s->pending, ": server shutting down\n\n");
        } else if (rc == 0) {
            buf_puts(&s->pending, ": heartbeat\n\n");
        } else {
            uint64_t d = bus_sub_dropped(s->bus, s->sub);
            if (d > s->dropped_seen) {
                buf_printf(&s->pending, ": dropped %llu\n", (unsigned long long)(d - s->dropped_seen));
                s->dropped_seen = d;
            }
            put_event(&s->pending, &ev);
            bus_event_clear(&ev);
        }
        if (s->pending.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = s->pending.len - s->pending_off;
    if (n > max) n = max;
    memcpy(buf, s->pending.data + s->pending_off, n);
    s->pending_off += n;
    return (ssize_t)n;
}

/* Each comma-separated topic is a valid name, "*" or "prefix.*". */
static int topics_ok(const char *topics) {
    char one[BUS_TOPIC_MAX];
    const char *p = topics;
    for (size_t guard = strlen(topics) + 1; guard > 0; guard--) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n >= sizeof one) return 0;
        memcpy(one, p, n);
        one[n] = '\0';
        if (!(n == 1 && one[0] == '*')) {
            if (n >= 2 && one[n - 1] == '*' && one[n - 2] == '.') one[n - 2] = '\0';
            if (!bus_topic_valid(one)) return 0;
        }
        if (!end) return 1;
        p = end + 1;
    }
    return 0;
}

void api_events_get(api_req_t *rq, api_resp_t *rs) {
    bus_t *bus = rq->app->bus;
    if (!bus) {
        api_error(rs, 503, "events_unavailable", NULL, "this server has no event bus");
        return;
    }
    if (rq->app->cfg.http_threads > 0) {
        api_error(rs, 503, "events_unavailable", NULL,
                  "event streams need a thread per connection (server.http_threads = 0)");
        return;
    }
    char topics[EVENTS_TOPICS_MAX] = "";
    int q = api_query(rq, rs, "topics", topics, sizeof topics);
    if (q < 0) return;
    if (q == 0 && topics[0] && !topics_ok(topics)) {
        api_invalid(rs, "topics",
                    "topics is a comma-separated list of topic names ([a-z0-9_.-]), \"*\" or \"prefix.*\"");
        return;
    }
    long hb_s, queue;
    if (api_query_long(rq, rs, "heartbeat_s", EVENTS_HEARTBEAT_S_DEFAULT, 1, 300, &hb_s) < 0) return;
    /* events held for this client while it reads (a burst bigger than that loses its oldest) */
    if (api_query_long(rq, rs, "queue", BUS_QUEUE_DEFAULT, 16, 100000, &queue) < 0) return;
    char *symbols = malloc(EVENTS_KEYS_MAX), *jobs = malloc(EVENTS_KEYS_MAX);
    stream_t *s = calloc(1, sizeof *s);
    if (!symbols || !jobs || !s) {
        api_error(rs, 500, "out_of_memory", NULL, "no memory for the event stream");
        goto fail;
    }
    int qs = api_query(rq, rs, "symbols", symbols, EVENTS_KEYS_MAX);
    if (qs < 0) goto fail;
    int qj = api_query(rq, rs, "jobs", jobs, EVENTS_KEYS_MAX);
    if (qj < 0) goto fail;
    push_filter_all(&s->filter);
    s->keyed = qs == 0 || qj == 0;
    push_err_t perr;
    if (push_filter_from_query(&s->filter, qs == 0 ? symbols : NULL, qj == 0 ? jobs : NULL, &perr)) {
        api_error(rs, strcmp(perr.code, "out_of_memory") ? 422 : 500, perr.code, perr.field, "%s", perr.message);
        goto fail;
    }
    s->bus = bus;
    s->heartbeat_ms = (int)hb_s * 1000;
    s->sub = bus_subscribe(bus, topics[0] ? topics : "*", (size_t)queue);
    if (!s->sub) {
        api_error(rs, 503, "events_unavailable", NULL, "the event bus is closed or out of memory");
        goto fail;
    }
    /* the first bytes go out at once: the client knows it is subscribed from here on */
    buf_printf(&s->pending, ": subscribed topics=%s symbols=%.200s%s jobs=%.200s%s\nretry: 3000\n\n",
               topics[0] ? topics : "*", qs == 0 ? symbols : "*", qs == 0 && strlen(symbols) > 200 ? "..." : "",
               qj == 0 ? jobs : "*", qj == 0 && strlen(jobs) > 200 ? "..." : "");
    free(symbols);
    free(jobs);
    rs->status = 200;
    rs->content_type = "text/event-stream";
    rs->stream_read = stream_read;
    rs->stream_free = stream_free;
    rs->stream_cls = s;
    return;
fail:
    free(symbols);
    free(jobs);
    stream_free(s);
}
