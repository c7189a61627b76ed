/* The WebSocket push hub: every client of GET /api/v1/ws after the HTTP upgrade, fed from
 * one bus subscription.
 *
 * Threads (both the hub's own):
 *   - fan-out: takes events from the bus (its own bounded subscription: the publisher never
 *     waits, a backlog loses the oldest, counted by the bus), matches each against every
 *     client's filter and pushes it into that client's outbox (push_outbox.h: rate limit,
 *     coalescing of prediction.updated by data.symbol, bounded, oldest dropped). It never
 *     touches a socket.
 *   - I/O: one poll() over every client socket (non-blocking) and a wake-up eventfd; reads
 *     client messages through wslay (subscribe / unsubscribe / stats; ping, pong and close
 *     are wslay's), and moves messages from the outboxes into wslay's send queue only while
 *     that queue is short, so a client that does not read holds at most its outbox, a few
 *     messages in wslay and its kernel socket buffer. It never waits on one client.
 * Lock: hub.mu protects the client list, the count, each client's filter and outbox, and
 * stopping; wslay contexts and sockets belong to the I/O thread alone. */
#ifndef PREDICTD_PUSH_HUB_H
#define PREDICTD_PUSH_HUB_H

#include <stddef.h>

#include "bus/bus.h"
#include "core/config.h"
#include "metrics/metrics.h"

struct MHD_UpgradeResponseHandle;
typedef struct push_hub push_hub_t;

/* Subscribes to the bus and starts both threads. cfg: push.* keys (rate_per_s, max_clients,
 * buffer_messages, buffer_bytes). m may be NULL. 0 ok; -1 with err. */
int push_hub_open(push_hub_t **out, const predictd_config_t *cfg, bus_t *bus, metrics_t *m, char *err,
                  size_t errlen);
/* 1 when max_clients are connected or the hub is stopping (refuse with 503). */
int push_hub_full(push_hub_t *h);
/* Takes an upgraded connection (libmicrohttpd's upgrade handler): sock is non-blocking from
 * here; extra holds bytes the server read past the request headers. Never blocks. Over
 * max_clients or stopping, the connection is closed at once. Any thread. */
void push_hub_adopt(push_hub_t *h, int sock, struct MHD_UpgradeResponseHandle *urh, const char *extra,
                    size_t extra_len);
/* Sends close (1001 going away) to every client, waits up to about a second for the close
 * handshakes, closes every connection and joins the threads. Later adoptions are closed at
 * once. Call before the HTTP server stops (it waits for upgraded connections). Idempotent;
 * NULL is a no-op. */
void push_hub_stop(push_hub_t *h);
void push_hub_free(push_hub_t *h); /* NULL is a no-op; stops first */

/* ---- push_ws.c: the RFC 6455 handshake ---- */
/* Is key a valid Sec-WebSocket-Key (base64 of 16 bytes)? */
int push_ws_key_valid(const char *key);
/* Sec-WebSocket-Accept for key: base64(SHA-1(key + the RFC's GUID)), 28 characters + NUL. */
void push_ws_accept(const char *key, char out[29]);

#endif
