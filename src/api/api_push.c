/* GET /api/v1/ws: the WebSocket opening handshake (RFC 6455 section 4.2), then the
 * connection belongs to the push hub (push/push_hub.h), which speaks the protocol through
 * wslay. POST /api/v1/events/publish: puts events on the bus by hand (testing, operations),
 * only when push.publish_route is 1. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "api/api_internal.h"
#include "bus/bus.h"
#include "push/push_hub.h"

#define WS_RETRY_AFTER_S 5
#define PUBLISH_MAX_EVENTS 10000

/* Does the comma-separated header value hold token (case-insensitive)? */
static int has_token(const char *value, const char *token) {
    size_t tl = strlen(token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - p) == tl && strncasecmp(p, token, tl) == 0) return 1;
        p = end;
    }
    return 0;
}

static void ws_upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                        size_t extra_in_size, int sock, struct MHD_UpgradeResponseHandle *urh) {
    (void)conn;
    (void)con_cls;
    push_hub_adopt(cls, sock, urh, extra_in, extra_in_size);
}

void api_ws_get(api_req_t *rq, api_resp_t *rs) {
    push_hub_t *hub = rq->app->push;
    if (!hub) {
        api_error(rs, 503, "websocket_unavailable", NULL, "WebSocket push is off (push.max_clients is 0)");
        return;
    }
    const char *upgrade = api_header(rq, "Upgrade");
    const char *connection = api_header(rq, "Connection");
    const char *version = api_header(rq, "Sec-WebSocket-Version");
    const char *key = api_header(rq, "Sec-WebSocket-Key");
    if (strcmp(rq->method, "GET") != 0) {
        api_error(rs, 400, "invalid_request", NULL, "a WebSocket handshake is a GET request");
        return;
    }
    if (!upgrade || !has_token(upgrade, "websocket")) {
        api_error(rs, 426, "upgrade_required", "Upgrade",
                  "GET /api/v1/ws is a WebSocket endpoint: send Upgrade: websocket (RFC 6455)");
        snprintf(rs->extra_header_name, sizeof rs->extra_header_name, "Sec-WebSocket-Version");
        snprintf(rs->extra_header_value, sizeof rs->extra_header_value, "13");
        return;
    }
    if (!connection || !has_token(connection, "upgrade")) {
        api_error(rs, 400, "invalid_header", "Connection", "the Connection header must include Upgrade");
        return;
    }
    if (!version || strcmp(version, "13") != 0) {
        api_error(rs, 426, "unsupported_version", "Sec-WebSocket-Version",
                  "Sec-WebSocket-Version must be 13 (RFC 6455), got '%.32s'", version ? version : "");
        snprintf(rs->extra_header_name, sizeof rs->extra_header_name, "Sec-WebSocket-Version");
        snprintf(rs->extra_header_value, sizeof rs->extra_header_value, "13");
        return;
    }
    if (!key || !push_ws_key_valid(key)) {
        api_error(rs, 400, "invalid_header", "Sec-WebSocket-Key",
                  "Sec-WebSocket-Key must be the base64 encoding of 16 bytes (24 characters)");
        return;
    }
    if (push_hub_full(hub)) {
        api_error(rs, 503, "too_many_clients", NULL,
                  "the server has its maximum of WebSocket clients (push.max_clients = %d); retry later",
                  rq->app->cfg.push_max_clients);
        rs->retry_after_s = WS_RETRY_AFTER_S;
        return;
    }
    rs->status = 101;
    rs->upgrade_fn = ws_upgraded;
    rs->upgrade_cls = hub;
    rs->upgrade_proto = "websocket";
    snprintf(rs->extra_header_name, sizeof rs->extra_header_name, "Sec-WebSocket-Accept");
    push_ws_accept(key, rs->extra_header_value);
}

/* One {topic, data} of a publish body; field names the element ("" or "[i]"). */
static int publish_item_ok(api_resp_t *rs, const json_t *it, const char *at) {
    char field[96];
    if (!json_is_object(it)) {
        api_invalid(rs, at[0] ? at : NULL, "an event is an object {\"topic\": ..., \"data\": {...}}");
        return 0;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)it, k, v) {
        if (strcmp(k, "topic") && strcmp(k, "data")) {
            snprintf(field, sizeof field, "%s%s%.40s", at, at[0] ? "." : "", k);
            api_invalid(rs, field, "unknown field '%.40s' (topic, data)", k);
            return 0;
        }
    }
    const json_t *t = json_object_get(it, "topic");
    snprintf(field, sizeof field, "%s%stopic", at, at[0] ? "." : "");
    if (!json_is_string(t) || strlen(json_string_value(t)) != json_string_length(t) ||
        !bus_topic_valid(json_string_value(t))) {
        api_invalid(rs, field, "topic is a name of 1..63 characters of [a-z0-9_.-]");
        return 0;
    }
    snprintf(field, sizeof field, "%s%sdata", at, at[0] ? "." : "");
    if (!json_is_object(json_object_get(it, "data"))) {
        api_invalid(rs, field, "data is a JSON object (the event's payload)");
        return 0;
    }
    return 1;
}

void api_events_publish(api_req_t *rq, api_resp_t *rs) {
    if (!rq->app->cfg.push_publish_route) {
        api_error(rs, 403, "disabled", NULL,
                  "POST /api/v1/events/publish is off; it is a testing and operations tool "
                  "enabled by push.publish_route: 1");
        return;
    }
    if (!rq->app->bus) {
        api_error(rs, 503, "events_unavailable", NULL, "this server has no event bus");
        return;
    }
    json_t *body;
    if (api_parse_body(rq, rs, &body) < 0) return;
    size_t n = json_is_array(body) ? json_array_size(body) : 1;
    if (json_is_array(body) && (n == 0 || n > PUBLISH_MAX_EVENTS)) {
        api_invalid(rs, NULL, "a publish body is one event or an array of 1..%d events", PUBLISH_MAX_EVENTS);
        json_decref(body);
        return;
    }
    for (size_t i = 0; i < n; i++) { /* every event checked before any is published */
        char at[32] = "";
        if (json_is_array(body)) snprintf(at, sizeof at, "[%zu]", i);
        if (!publish_item_ok(rs, json_is_array(body) ? json_array_get(body, i) : body, at)) {
            json_decref(body);
            return;
        }
    }
    size_t published = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *it = json_is_array(body) ? json_array_get(body, i) : body;
        char *data = json_dumps(json_object_get(it, "data"), JSON_COMPACT);
        if (data && bus_publish(rq->app->bus, json_string_value(json_object_get(it, "topic")), data, strlen(data)) == 0)
            published++;
        free(data);
    }
    json_decref(body);
    buf_printf(&rs->body, "{\"published\":%zu,\"requested\":%zu}", published, n);
}
