/* Graph data over JSON: entities (bulk upsert, get, patch, delete), relationships (bulk add,
 * bulk delete) and observations. Every request is validated whole before anything is written,
 * and each write is one store transaction, so a bad request changes nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "store/rows.h"

#define ID_MAX_BYTES 256

/* Turns a store failure into a response: a row the store refused ("[3]: ...", "line 7: ...")
 * is the client's 422, anything else is the server's 503. */
static void store_failed(api_resp_t *rs, const char *err) {
    if (err[0] == '[' || strncmp(err, "line ", 5) == 0) {
        char field[32] = "";
        const char *close = err[0] == '[' ? strchr(err, ']') : NULL;
        if (close && (size_t)(close - err) < sizeof field - 1) memcpy(field, err, (size_t)(close - err) + 1);
        api_invalid(rs, field, "%s", err);
    } else {
        api_error(rs, 503, "store_unavailable", NULL, "the store could not apply the change: %s", err);
        rs->retry_after_s = 1;
    }
}

/* Checks that obj[key] is a string of 1..ID_MAX_BYTES bytes (field names it in the error). */
static const char *id_field(const json_t *obj, const char *key, const char *field, api_resp_t *rs) {
    const json_t *v = json_object_get(obj, key);
    if (!v) {
        api_invalid(rs, field, "%s is required", field);
        return NULL;
    }
    if (!json_is_string(v)) {
        api_invalid(rs, field, "%s must be a string", field);
        return NULL;
    }
    size_t n = json_string_length(v);
    if (n == 0 || n > ID_MAX_BYTES) {
        api_invalid(rs, field, "%s must be 1 to %d bytes long", field, ID_MAX_BYTES);
        return NULL;
    }
    return json_string_value(v);
}

/* Checks a property object: values are numbers, strings, booleans (and null when patching). */
static int props_ok(const json_t *props, const char *field, int allow_null, api_resp_t *rs) {
    if (!json_is_object(props)) {
        api_invalid(rs, field, "%s must be an object", field);
        return 0;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)props, key, v) {
        if (!api_scalar_ok(v, allow_null)) {
            char f[320];
            snprintf(f, sizeof f, "%s.%.256s", field, key);
            api_invalid(rs, f, "%s must be a number, a string or a boolean%s", f,
                        allow_null ? " (or null to remove it)" : "");
            return 0;
        }
    }
    return 1;
}

/* The body must be a non-empty array; returns its size or 0 with the error in rs. */
static size_t nonempty_array(const json_t *doc, const char *what, api_resp_t *rs) {
    if (!json_is_array(doc)) {
        api_invalid(rs, NULL, "the body must be a JSON array of %s", what);
        return 0;
    }
    size_t n = json_array_size(doc);
    if (n == 0) api_invalid(rs, NULL, "the array of %s is empty", what);
    return n;
}

static int element_is_object(const json_t *el, size_t i, api_resp_t *rs) {
    if (json_is_object(el)) return 1;
    char f[32];
    snprintf(f, sizeof f, "[%zu]", i);
    api_invalid(rs, f, "%s must be an object", f);
    return 0;
}

static int require_store(const api_req_t *rq, api_resp_t *rs) {
    if (rq->app->store) return 1;
    api_error(rs, 503, "store_unavailable", NULL, "the store is not open");
    return 0;
}

/* ---- entities ------------------------------------------------------------------------------- */

void api_entities_post(api_req_t *rq, api_resp_t *rs) {
    json_t *doc;
    if (!require_store(rq, rs) || api_parse_body(rq, rs, &doc)) return;
    size_t n = nonempty_array(doc, "{entity_id, properties}", rs);
    entity_row_t *rows = n ? calloc(n, sizeof *rows) : NULL;
    size_t built = 0;
    if (n && !rows) {
        api_error(rs, 500, "out_of_memory", NULL, "too many entities for memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *el = json_array_get(doc, i);
        char f[48], fp[48];
        if (!element_is_object(el, i, rs)) goto done;
        snprintf(f, sizeof f, "[%zu].entity_id", i);
        snprintf(fp, sizeof fp, "[%zu].properties", i);
        const char *id = id_field(el, "entity_id", f, rs);
        if (!id) goto done;
        json_t *props = json_object_get(el, "properties");
        if (props && !json_is_null(props) && !props_ok(props, fp, 0, rs)) goto done;
        rows[i].entity_id = strdup(id);
        rows[i].props = props && !json_is_null(props) ? json_incref(props) : json_object();
        built = i + 1;
        if (!rows[i].entity_id || !rows[i].props) {
            api_error(rs, 500, "out_of_memory", NULL, "too many entities for memory");
            goto done;
        }
    }
    if (n) {
        char err[512] = "";
        if (store_import_entities(rq->app->store, rows, n, err, sizeof err) != 0) store_failed(rs, err);
        else buf_printf(&rs->body, "{\"upserted\":%zu}", n);
    }
done:
    if (rows) entity_rows_free(rows, built);
    json_decref(doc);
}

/* Renders the entity as {entity_id, properties, version}; 0 ok, else the error is in rs. */
static int render_entity(const api_req_t *rq, api_resp_t *rs) {
    char *props = NULL;
    uint64_t version = 0;
    int rc = store_entity_get(rq->app->store, rq->param, &props, &version);
    if (rc == 1) {
        api_error(rs, 404, "entity_not_found", NULL, "no entity with id '%.256s'", rq->param);
        return -1;
    }
    if (rc != 0) {
        free(props);
        api_error(rs, 503, "store_unavailable", NULL, "the store could not read the entity");
        return -1;
    }
    buf_reset(&rs->body);
    buf_puts(&rs->body, "{\"entity_id\":");
    buf_json_str(&rs->body, rq->param, strlen(rq->param));
    buf_puts(&rs->body, ",\"properties\":");
    buf_puts(&rs->body, props && *props ? props : "{}");
    buf_printf(&rs->body, ",\"version\":%llu}", (unsigned long long)version);
    free(props);
    return 0;
}

void api_entity_get(api_req_t *rq, api_resp_t *rs) {
    if (require_store(rq, rs)) render_entity(rq, rs);
}

void api_entity_patch(api_req_t *rq, api_resp_t *rs) {
    json_t *doc;
    if (!require_store(rq, rs) || api_parse_body(rq, rs, &doc)) return;
    if (!json_is_object(doc)) {
        api_invalid(rs, NULL, "the body must be a JSON object {properties:{...}}");
        goto done;
    }
    json_t *props = json_object_get(doc, "properties");
    if (!props) {
        api_invalid(rs, "properties", "properties is required");
        goto done;
    }
    if (!props_ok(props, "properties", 1, rs)) goto done;
    char err[512] = "";
    int rc = store_entity_patch(rq->app->store, rq->param, props, err, sizeof err);
    if (rc == 1) api_error(rs, 404, "entity_not_found", NULL, "no entity with id '%.256s'", rq->param);
    else if (rc != 0) store_failed(rs, err);
    else render_entity(rq, rs);
done:
    json_decref(doc);
}

void api_entity_delete(api_req_t *rq, api_resp_t *rs) {
    if (!require_store(rq, rs)) return;
    char err[512] = "";
    int rc = store_entity_delete(rq->app->store, rq->param, err, sizeof err);
    if (rc == 1) api_error(rs, 404, "entity_not_found", NULL, "no entity with id '%.256s'", rq->param);
    else if (rc != 0) store_failed(rs, err);
    else buf_puts(&rs->body, "{\"deleted\":true}");
}

/* ---- relationships ------------------------------------------------------------------------ */

/* Parses [{source, target, weight?, type?}] (with_weight: weight allowed). *typed counts rows
 * that name a type. Returns the rows (n of them) or NULL with the error in rs. */
static rel_row_t *parse_rels(const json_t *doc, size_t n, int with_weight, size_t *typed, api_resp_t *rs) {
    rel_row_t *rows = calloc(n, sizeof *rows);
    if (!rows) {
        api_error(rs, 500, "out_of_memory", NULL, "too many relationships for memory");
        return NULL;
    }
    *typed = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *el = json_array_get(doc, i);
        char fs[48], ft[48], f[48];
        if (!element_is_object(el, i, rs)) goto fail;
        snprintf(fs, sizeof fs, "[%zu].source", i);
        snprintf(ft, sizeof ft, "[%zu].target", i);
        const char *src = id_field(el, "source", fs, rs), *dst = src ? id_field(el, "target", ft, rs) : NULL;
        if (!dst) goto fail;
        if (with_weight && strcmp(src, dst) == 0) {
            api_invalid(rs, ft, "%s: a relationship joins two different entities (source is '%.256s' too)", ft, src);
            goto fail;
        }
        rows[i].weight = 1.0;
        const json_t *w = json_object_get(el, "weight");
        if (with_weight && w && !json_is_null(w)) {
            if (!json_is_number(w)) {
                snprintf(f, sizeof f, "[%zu].weight", i);
                api_invalid(rs, f, "%s must be a number", f);
                goto fail;
            }
            rows[i].weight = json_number_value(w);
        }
        const json_t *t = json_object_get(el, "type");
        if (t && !json_is_null(t) && !json_is_string(t)) {
            snprintf(f, sizeof f, "[%zu].type", i);
            api_invalid(rs, f, "%s must be a string", f);
            goto fail;
        }
        if (t && json_is_string(t)) (*typed)++;
        rows[i].source = strdup(src);
        rows[i].target = strdup(dst);
        rows[i].type = strdup(json_is_string(t) ? json_string_value(t) : "");
        if (!rows[i].source || !rows[i].target || !rows[i].type) {
            api_error(rs, 500, "out_of_memory", NULL, "too many relationships for memory");
            goto fail;
        }
    }
    return rows;
fail:
    rel_rows_free(rows, n);
    return NULL;
}

/* Both ends of every row must be known entities (checked on the graph, which mirrors the
 * store; the store checks again inside its transaction). 1 ok, 0 with the error in rs. */
static int ends_known(graph_t *g, const rel_row_t *rows, size_t n, api_resp_t *rs) {
    if (!g) return 1;
    long bad = -1;
    int bad_target = 0;
    graph_rdlock(g);
    for (size_t i = 0; i < n && bad < 0; i++) {
        if (graph_find(g, rows[i].source) < 0) bad = (long)i;
        else if (graph_find(g, rows[i].target) < 0) bad = (long)i, bad_target = 1;
    }
    graph_unlock(g);
    if (bad < 0) return 1;
    char f[48];
    snprintf(f, sizeof f, "[%ld].%s", bad, bad_target ? "target" : "source");
    const char *id = bad_target ? rows[bad].target : rows[bad].source;
    api_error(rs, 422, "unknown_entity", f, "%s: no entity with id '%.256s'", f, id);
    return 0;
}

void api_relationships_post(api_req_t *rq, api_resp_t *rs) {
    json_t *doc;
    if (!require_store(rq, rs) || api_parse_body(rq, rs, &doc)) return;
    size_t n = nonempty_array(doc, "{source, target, weight?, type?}", rs), typed;
    rel_row_t *rows = n ? parse_rels(doc, n, 1, &typed, rs) : NULL;
    if (rows && ends_known(rq->app->graph, rows, n, rs)) {
        char err[512] = "";
        if (store_import_relationships(rq->app->store, rows, n, err, sizeof err) != 0) store_failed(rs, err);
        else buf_printf(&rs->body, "{\"created\":%zu}", n);
    }
    if (rows) rel_rows_free(rows, n);
    json_decref(doc);
}

/* Deletes rows[from, to) in one call; match_type applies to all of them. */
static int delete_rels(store_t *st, rel_row_t *rows, size_t n, int match_type, long *total, api_resp_t *rs) {
    if (!n) return 0;
    long deleted = 0;
    char err[512] = "";
    if (store_relationships_delete(st, rows, n, match_type, &deleted, err, sizeof err) != 0) {
        store_failed(rs, err);
        return -1;
    }
    *total += deleted;
    return 0;
}

void api_relationships_delete(api_req_t *rq, api_resp_t *rs) {
    json_t *doc;
    if (!require_store(rq, rs) || api_parse_body(rq, rs, &doc)) return;
    size_t n = nonempty_array(doc, "{source, target, type?}", rs), typed = 0;
    rel_row_t *rows = n ? parse_rels(doc, n, 0, &typed, rs) : NULL;
    if (rows) {
        long total = 0;
        int rc;
        if (typed == 0 || typed == n) {
            rc = delete_rels(rq->app->store, rows, n, typed == n, &total, rs);
        } else {
            /* match_type is per call: rows with a type match it, rows without match any type.
             * Partition (order does not matter for deletes) and delete each group. */
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                if (rows[i].type[0]) {
                    rel_row_t tmp = rows[k];
                    rows[k++] = rows[i];
                    rows[i] = tmp;
                }
            }
            rc = delete_rels(rq->app->store, rows, k, 1, &total, rs);
            if (rc == 0) rc = delete_rels(rq->app->store, rows + k, n - k, 0, &total, rs);
        }
        if (rc == 0) buf_printf(&rs->body, "{\"deleted\":%ld}", total);
        rel_rows_free(rows, n);
    }
    json_decref(doc);
}

/* ---- observations ------------------------------------------------------------------------- */

static int parse_point(const json_t *pt, size_t i, obs_row_t *row, api_resp_t *rs) {
    char f[64];
    if (!json_is_array(pt) || json_array_size(pt) != 2) {
        snprintf(f, sizeof f, "points[%zu]", i);
        api_invalid(rs, f, "%s must be a [timestamp, value] pair", f);
        return 0;
    }
    const json_t *ts = json_array_get(pt, 0), *v = json_array_get(pt, 1);
    snprintf(f, sizeof f, "points[%zu][0]", i);
    if (json_is_number(ts)) {
        row->ts = json_number_value(ts);
    } else if (!json_is_string(ts) || api_parse_iso8601(json_string_value(ts), &row->ts) != 0) {
        api_invalid(rs, f, "%s must be epoch seconds or an ISO 8601 date-time", f);
        return 0;
    }
    snprintf(f, sizeof f, "points[%zu][1]", i);
    if (!json_is_number(v)) {
        api_invalid(rs, f, "%s must be a finite number", f);
        return 0;
    }
    row->value = json_number_value(v);
    return 1;
}

void api_observations_post(api_req_t *rq, api_resp_t *rs) {
    json_t *doc;
    if (!require_store(rq, rs) || api_parse_body(rq, rs, &doc)) return;
    obs_row_t *rows = NULL;
    size_t n = 0, built = 0;
    if (!json_is_object(doc)) {
        api_invalid(rs, NULL, "the body must be a JSON object {series?, points:[[ts, value], ...]}");
        goto done;
    }
    const json_t *series = json_object_get(doc, "series"), *points = json_object_get(doc, "points");
    if (series && !json_is_null(series) &&
        (!json_is_string(series) || json_string_length(series) == 0 || json_string_length(series) > 64)) {
        api_invalid(rs, "series", "series must be a string of 1 to 64 bytes");
        goto done;
    }
    const char *sname = json_is_string(series) ? json_string_value(series) : "value";
    if (!json_is_array(points) || json_array_size(points) == 0) {
        api_invalid(rs, "points", "points must be a non-empty array of [timestamp, value] pairs");
        goto done;
    }
    if (rq->app->graph) {
        graph_rdlock(rq->app->graph);
        int known = graph_find(rq->app->graph, rq->param) >= 0;
        graph_unlock(rq->app->graph);
        if (!known) {
            api_error(rs, 404, "entity_not_found", NULL, "no entity with id '%.256s'", rq->param);
            goto done;
        }
    }
    n = json_array_size(points);
    rows = calloc(n, sizeof *rows);
    if (!rows) {
        api_error(rs, 500, "out_of_memory", NULL, "too many points for memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (!parse_point(json_array_get(points, i), i, &rows[i], rs)) goto done;
        rows[i].entity_id = strdup(rq->param);
        rows[i].series = strdup(sname);
        built = i + 1;
        if (!rows[i].entity_id || !rows[i].series) {
            api_error(rs, 500, "out_of_memory", NULL, "too many points for memory");
            goto done;
        }
    }
    char err[512] = "";
    if (store_import_observations(rq->app->store, rows, n, err, sizeof err) != 0) store_failed(rs, err);
    else buf_printf(&rs->body, "{\"stored\":%zu}", n);
done:
    if (rows) obs_rows_free(rows, built);
    json_decref(doc);
}
