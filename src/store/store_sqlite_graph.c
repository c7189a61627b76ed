/* The SQLite store's graph ops: imports of entities, relationships and observations, an
 * entity's patch and delete, relationship deletes. Each checks its rows (errors name the
 * line or index and the field), writes them, takes the next version from the store's clock
 * and lists the entities it touched, whose graph changes the writer applies after the
 * commit (store_sqlite.c). The writer thread runs them inside its group transaction, one
 * SAVEPOINT each. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/store_sqlite_int.h"

#define STORE_ID_MAX 256

/* "line 17: target 'X' does not exist" / "[3].target: 'X' does not exist" */
static void row_err(op_t *op, long line, size_t idx, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void row_err(op_t *op, long line, size_t idx, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) sq_seterr(op->err, op->errlen, "line %ld: %s %s", line, field, msg);
    else sq_seterr(op->err, op->errlen, "[%zu].%s: %s", idx, field, msg);
}


static const char *id_problem(const char *s) {
    if (!s) return "is missing";
    size_t n = strlen(s);
    if (n == 0) return "is empty";
    if (n > STORE_ID_MAX) return "is longer than 256 bytes";
    if (!utf8_valid((const char *)s, n)) return "is not valid UTF-8";
    return NULL;
}

/* A set of strings (pointers borrowed) to visit each entity once per op. */
typedef struct {
    const char **slot;
    int64_t *val;    /* per slot: the entity's key k */
    uint64_t *hash;  /* per slot: the member's hash (compared before the string) */
    size_t cap, n;
} strset_t;

static void strset_free(strset_t *s) { free(s->slot); free(s->val); free(s->hash); memset(s, 0, sizeof *s); }

static uint64_t str_hash(const char *p) {
    uint64_t h = 1469598103934665603ull;
    for (; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* 1 added, 0 already there, -1 out of memory; *val points at the member's value. */
static int strset_add_v(strset_t *s, const char *str, int64_t **val) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        const char **slot = calloc(cap, sizeof *slot);
        int64_t *v = calloc(cap, sizeof *v);
        uint64_t *hs = calloc(cap, sizeof *hs);
        if (!slot || !v || !hs) { free(slot); free(v); free(hs); return -1; }
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->slot[i]) continue;
            size_t h = s->hash[i] & (cap - 1);
            while (slot[h]) h = (h + 1) & (cap - 1);
            slot[h] = s->slot[i];
            v[h] = s->val[i];
            hs[h] = s->hash[i];
        }
        free(s->slot);
        free(s->val);
        free(s->hash);
        s->slot = slot;
        s->val = v;
        s->hash = hs;
        s->cap = cap;
    }
    uint64_t hv = str_hash(str);
    size_t h = hv & (s->cap - 1);
    while (s->slot[h]) {
        if (s->hash[h] == hv && !strcmp(s->slot[h], str)) { if (val) *val = &s->val[h]; return 0; }
        h = (h + 1) & (s->cap - 1);
    }
    s->slot[h] = str;
    s->hash[h] = hv;
    s->n++;
    if (val) *val = &s->val[h];
    return 1;
}

static int strset_add(strset_t *s, const char *str) { return strset_add_v(s, str, NULL); }

typedef struct { int64_t k; const char *id; } keyed_id_t;

static int keyed_id_cmp(const void *a, const void *b) {
    const keyed_id_t *x = a, *y = b;
    return x->k < y->k ? -1 : x->k > y->k;
}

/* The set's members as the op's touched list (pointers borrowed from the rows); with_keys:
 * the set's values are entity keys, kept in key order (updates walk the table in order). */
static int touched_from_set(op_t *op, const strset_t *s, int with_keys) {
    size_t n = s->n ? s->n : 1;
    op->touched = malloc(n * sizeof *op->touched);
    op->touched_k = with_keys ? malloc(n * sizeof *op->touched_k) : NULL;
    keyed_id_t *tmp = with_keys ? malloc(n * sizeof *tmp) : NULL;
    if (!op->touched || (with_keys && (!op->touched_k || !tmp))) { free(tmp); return -1; }
    op->n_touched = 0;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slot[i]) continue;
        if (tmp) tmp[op->n_touched] = (keyed_id_t){s->val[i], s->slot[i]};
        op->touched[op->n_touched++] = s->slot[i];
    }
    if (tmp) {
        qsort(tmp, op->n_touched, sizeof *tmp, keyed_id_cmp);
        for (size_t i = 0; i < op->n_touched; i++) {
            op->touched[i] = tmp[i].id;
            op->touched_k[i] = tmp[i].k;
        }
        free(tmp);
    }
    return 0;
}

/* 1 exists (its key in *k), 0 not, -1 error */
static int entity_key(store_t *st, op_t *op, const char *id, int64_t *k) {
    sqlite3_stmt *s = sq_stmt(st->w, Q_ENT_EXISTS);
    if (!s) { sq_seterr(op->err, op->errlen, "store: statement unavailable"); return -1; }
    sq_bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && k) *k = sqlite3_column_int64(s, 0);
    sq_done_stmt(s);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
    return -1;
}

static int next_version(store_t *st, op_t *op) {
    op->version = ++st->clock;
    sqlite3_stmt *s = sq_stmt(st->w, Q_CLOCK_SET);
    if (s) sqlite3_bind_int64(s, 1, (sqlite3_int64)op->version);
    return sq_exec_step(st, op, s);
}

static int set_versions(store_t *st, op_t *op) {
    for (size_t i = 0; i < op->n_touched; i++) {
        sqlite3_stmt *s = sq_stmt(st->w, op->touched_k ? Q_ENT_SET_VERSION_K : Q_ENT_SET_VERSION);
        if (!s) return sq_exec_step(st, op, s);
        if (op->touched_k) sqlite3_bind_int64(s, 1, op->touched_k[i]);
        else sq_bind_text(s, 1, op->touched[i]);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)op->version);
        if (sq_exec_step(st, op, s)) return -1;
    }
    return 0;
}

/* Checks a property object: values numbers, strings, booleans (null: dropped on upsert,
 * removes on patch). Returns 1 if it holds a null. -1 bad (err filled). */
static int props_check(op_t *op, long line, size_t idx, const json_t *props) {
    const char *key;
    json_t *v;
    int has_null = 0;
    if (!json_is_object(props)) { row_err(op, line, idx, "properties", "must be an object"); return -1; }
    json_object_foreach((json_t *)props, key, v) {
        if (json_is_null(v)) has_null = 1;
        else if (!json_is_number(v) && !json_is_string(v) && !json_is_boolean(v)) {
            char f[300];
            snprintf(f, sizeof f, "properties.%s", key);
            row_err(op, line, idx, f, "must be a number, string, boolean or null");
            return -1;
        }
    }
    return has_null;
}

/* The property object's JSON text in st->scratch (no per-row allocation). */
static int props_text(store_t *st, op_t *op, const json_t *props) {
    size_t need = json_dumpb(props, st->scratch.data, st->scratch.cap, JSON_COMPACT);
    if (need == 0) { sq_seterr(op->err, op->errlen, "store: cannot encode properties"); return -1; }
    if (need >= st->scratch.cap) {
        st->scratch.len = 0;
        if (buf_reserve(&st->scratch, need + 1)) { sq_seterr(op->err, op->errlen, "out of memory"); return -1; }
        json_dumpb(props, st->scratch.data, st->scratch.cap, JSON_COMPACT);
    }
    st->scratch.len = need;
    return 0;
}

int sq_op_import_entities(store_t *st, op_t *op) {
    const entity_row_t *rows = op->rows;
    if (op->n == 0) return 0; /* nothing changes, no version taken */
    for (size_t i = 0; i < op->n; i++) {
        const char *p = id_problem(rows[i].entity_id);
        if (p) { row_err(op, rows[i].line, i, "entity_id", "%s", p); return -1; }
        /* no property object: an empty one */
        int hn = rows[i].props ? props_check(op, rows[i].line, i, rows[i].props) : 1;
        if (hn < 0) return -1;
        if (hn) {
            if (!op->clean && !(op->clean = calloc(op->n, sizeof *op->clean))) { sq_seterr(op->err, op->errlen, "out of memory"); return -1; }
            json_t *c = json_object();
            const char *key;
            json_t *v;
            json_object_foreach(rows[i].props, key, v)
                if (!json_is_null(v)) json_object_set(c, key, v);
            op->clean[i] = c;
        }
    }
    if (next_version(st, op)) return -1;
    sqlite3_stmt *s = sq_stmt(st->w, Q_ENT_UPSERT);
    if (!s) return sq_exec_step(st, op, s);
    for (size_t i = 0; i < op->n; i++) {
        const json_t *props = op->clean && op->clean[i] ? op->clean[i] : rows[i].props;
        if (props_text(st, op, props)) return -1;
        sq_bind_text(s, 1, rows[i].entity_id);
        sqlite3_bind_text(s, 2, st->scratch.data, (int)st->scratch.len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)op->version);
        if (sq_exec_step(st, op, s)) return -1;
    }
    return 0;
}

/* Checks that id names an entity, once per op (seen); its key in *k. */
static int check_end(store_t *st, op_t *op, strset_t *seen, const char *id, long line, size_t i, const char *field,
                     int64_t *k) {
    if (!id) { row_err(op, line, i, field, "is missing"); return -1; }
    int64_t *val;
    int added = strset_add_v(seen, id, &val);
    if (added < 0) { sq_seterr(op->err, op->errlen, "out of memory"); return -1; }
    if (!added) { *k = *val; return 0; } /* seen and checked before */
    const char *p = id_problem(id);
    if (p) { row_err(op, line, i, field, "%s", p); return -1; }
    int ex = entity_key(st, op, id, val);
    *k = *val;
    if (ex < 0) return -1;
    if (!ex) {
        if (line > 0) row_err(op, line, i, field, "'%s' does not exist", id);
        else row_err(op, line, i, field, "entity '%s' does not exist", id);
        return -1;
    }
    return 0;
}

typedef struct { int64_t ks, kt; size_t row; } rel_key_t;

#define REL_REBUILD_MIN 100000 /* rows of an import worth rebuilding the indexes for */

/* Rows in relationships, from above (the largest rowid: no scan). */
static int64_t rel_rows_estimate(store_t *st) {
    sqlite3_stmt *s = NULL;
    int64_t n = INT64_MAX;
    if (sqlite3_prepare_v2(st->w->db, "SELECT max(rowid) FROM relationships", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0); /* NULL (empty) reads as 0 */
    sqlite3_finalize(s);
    return n;
}

static int rel_key_cmp(const void *a, const void *b) {
    const rel_key_t *x = a, *y = b;
    if (x->ks != y->ks) return x->ks < y->ks ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Validates every row first (ends resolved to keys once per entity), then inserts in
 * source-key order: the source index then grows at its end instead of at random places. */
int sq_op_import_relationships(store_t *st, op_t *op) {
    const rel_row_t *rows = op->rows;
    if (op->n == 0) return 0;
    strset_t seen = {0};
    int rc = -1;
    rel_key_t *keys = malloc((op->n ? op->n : 1) * sizeof *keys);
    if (!keys) { sq_seterr(op->err, op->errlen, "out of memory"); goto out; }
    for (size_t i = 0; i < op->n; i++) {
        const rel_row_t *r = &rows[i];
        if (check_end(st, op, &seen, r->source, r->line, i, "source", &keys[i].ks) ||
            check_end(st, op, &seen, r->target, r->line, i, "target", &keys[i].kt))
            goto out;
        if (keys[i].ks == keys[i].kt) { row_err(op, r->line, i, "target", "is the same entity as source"); goto out; }
        if (!isfinite(r->weight)) { row_err(op, r->line, i, "weight", "must be a finite number"); goto out; }
        if (r->type && r->type[0] && strnlen(r->type, STORE_ID_MAX + 1) > STORE_ID_MAX) {
            row_err(op, r->line, i, "type", "is longer than 256 bytes");
            goto out;
        }
        keys[i].row = i;
    }
    qsort(keys, op->n, sizeof *keys, rel_key_cmp);
    /* A big import into a smaller table: without its indexes, then each index built once by
     * sorting (CREATE INDEX), instead of a random insertion into the target index per row
     * (page reads past the page cache). All inside the op's savepoint: a failure rolls the
     * indexes back too, and readers see the old schema until the commit. */
    const int rebuild = op->n >= REL_REBUILD_MIN && (size_t)rel_rows_estimate(st) <= op->n;
    if (rebuild && sqlite3_exec(st->w->db, "DROP INDEX relationships_source; DROP INDEX relationships_target;",
                                NULL, NULL, NULL) != SQLITE_OK) {
        sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
        goto out;
    }
    sqlite3_stmt *s = sq_stmt(st->w, Q_REL_INSERT);
    if (!s) { sq_exec_step(st, op, s); goto out; }
    for (size_t i = 0; i < op->n; i++) {
        const rel_row_t *r = &rows[keys[i].row];
        sqlite3_bind_int64(s, 1, keys[i].ks);
        sqlite3_bind_int64(s, 2, keys[i].kt);
        sq_bind_text(s, 3, r->type ? r->type : "");
        sqlite3_bind_double(s, 4, r->weight);
        /* every parameter is bound each row: reset only (no clear_bindings) */
        if (sqlite3_step(s) != SQLITE_DONE) {
            sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
            sqlite3_reset(s);
            goto out;
        }
        sqlite3_reset(s);
    }
    if (rebuild && sqlite3_exec(st->w->db, SQ_REL_INDEXES, NULL, NULL, NULL) != SQLITE_OK) {
        sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
        goto out;
    }
    if (touched_from_set(op, &seen, 1)) { sq_seterr(op->err, op->errlen, "out of memory"); goto out; }
    if (next_version(st, op) || set_versions(st, op)) goto out;
    rc = 0;
out:
    free(keys);
    strset_free(&seen);
    return rc;
}

int sq_op_import_observations(store_t *st, op_t *op) {
    const obs_row_t *rows = op->rows;
    if (op->n == 0) return 0;
    strset_t seen = {0};
    int rc = -1;
    sqlite3_stmt *s = sq_stmt(st->w, Q_OBS_UPSERT);
    if (!s) { sq_exec_step(st, op, s); goto out; }
    for (size_t i = 0; i < op->n; i++) {
        const obs_row_t *r = &rows[i];
        int64_t k;
        if (check_end(st, op, &seen, r->entity_id, r->line, i, "entity_id", &k)) goto out;
        const char *series = r->series && r->series[0] ? r->series : "value";
        if (strlen(series) > STORE_ID_MAX) { row_err(op, r->line, i, "series", "is longer than 256 bytes"); goto out; }
        if (!isfinite(r->ts)) { row_err(op, r->line, i, "timestamp", "must be a finite number"); goto out; }
        if (!isfinite(r->value)) { row_err(op, r->line, i, "value", "must be a finite number"); goto out; }
        sq_bind_text(s, 1, r->entity_id);
        sq_bind_text(s, 2, series);
        sqlite3_bind_double(s, 3, r->ts);
        sqlite3_bind_double(s, 4, r->value);
        if (sq_exec_step(st, op, s)) goto out;
    }
    if (touched_from_set(op, &seen, 1)) { sq_seterr(op->err, op->errlen, "out of memory"); goto out; }
    if (next_version(st, op) || set_versions(st, op)) goto out;
    rc = 0;
out:
    strset_free(&seen);
    return rc;
}

int sq_op_patch(store_t *st, op_t *op) {
    sqlite3_stmt *s = sq_stmt(st->w, Q_ENT_GET);
    if (!s) return sq_exec_step(st, op, s);
    sq_bind_text(s, 1, op->id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) { sq_done_stmt(s); return 1; }
    if (rc != SQLITE_ROW) { sq_done_stmt(s); sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db)); return -1; }
    json_error_t je;
    json_t *cur = json_loadb((const char *)sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0), 0, &je);
    sq_done_stmt(s);
    if (!json_is_object(cur)) { json_decref(cur); sq_seterr(op->err, op->errlen, "store: stored properties unreadable"); return -1; }
    op->merged = cur;
    if (props_check(op, 0, 0, op->props) < 0) {
        /* "[0].properties.x: ..." reads badly for one entity: say it plainly */
        if (op->err && !strncmp(op->err, "[0].", 4)) memmove(op->err, op->err + 4, strlen(op->err + 4) + 1);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)op->props, key, v) {
        if (json_is_null(v)) json_object_del(cur, key);
        else json_object_set(cur, key, v);
    }
    if (next_version(st, op) || props_text(st, op, cur)) return -1;
    s = sq_stmt(st->w, Q_ENT_SET_PROPS);
    if (!s) return sq_exec_step(st, op, s);
    sq_bind_text(s, 1, op->id);
    sqlite3_bind_text(s, 2, st->scratch.data, (int)st->scratch.len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)op->version);
    return sq_exec_step(st, op, s);
}

int sq_op_delete(store_t *st, op_t *op) {
    int64_t key;
    int ex = entity_key(st, op, op->id, &key);
    if (ex <= 0) return ex < 0 ? -1 : 1;
    sqlite3_stmt *s = sq_stmt(st->w, Q_REL_NEIGHBOURS);
    if (!s) return sq_exec_step(st, op, s);
    op->touched_owned = 1;
    size_t cap = 0;
    sqlite3_bind_int64(s, 1, key);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (op->n_touched == cap) {
            cap = cap ? cap * 2 : 16;
            const char **t = realloc(op->touched, cap * sizeof *t);
            if (!t) { sq_done_stmt(s); sq_seterr(op->err, op->errlen, "out of memory"); return -1; }
            op->touched = t;
        }
        char *nb = strdup((const char *)sqlite3_column_text(s, 0));
        if (!nb) { sq_done_stmt(s); sq_seterr(op->err, op->errlen, "out of memory"); return -1; }
        op->touched[op->n_touched++] = nb;
    }
    sq_done_stmt(s);
    if (rc != SQLITE_DONE) { sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db)); return -1; }
    s = sq_stmt(st->w, Q_REL_DEL_ENTITY);
    if (s) sqlite3_bind_int64(s, 1, key);
    if (sq_exec_step(st, op, s)) return -1;
    static const int dels[] = {Q_OBS_DEL_ENTITY, Q_ENT_DELETE};
    for (size_t i = 0; i < sizeof dels / sizeof dels[0]; i++) {
        s = sq_stmt(st->w, dels[i]);
        if (s) sq_bind_text(s, 1, op->id);
        if (sq_exec_step(st, op, s)) return -1;
    }
    if (next_version(st, op) || set_versions(st, op)) return -1;
    return 0;
}

int sq_op_rel_delete(store_t *st, op_t *op) {
    const rel_row_t *rows = op->rows;
    strset_t seen = {0};
    size_t cap = 0;
    int rc = -1;
    op->touched_owned = 0;
    for (size_t i = 0; i < op->n; i++) {
        const rel_row_t *r = &rows[i];
        const char *p = id_problem(r->source);
        if (p) { row_err(op, r->line, i, "source", "%s", p); goto out; }
        if ((p = id_problem(r->target))) { row_err(op, r->line, i, "target", "%s", p); goto out; }
        int64_t ks, kt;
        int ex1 = entity_key(st, op, r->source, &ks), ex2 = ex1 > 0 ? entity_key(st, op, r->target, &kt) : 0;
        if (ex1 < 0 || ex2 < 0) goto out;
        if (!ex1 || !ex2) continue; /* an unknown end matches nothing */
        sqlite3_stmt *s = sq_stmt(st->w, Q_REL_MATCH);
        if (!s) { sq_exec_step(st, op, s); goto out; }
        sqlite3_bind_int64(s, 1, ks);
        sqlite3_bind_int64(s, 2, kt);
        sq_bind_text(s, 3, op->match_type ? (r->type ? r->type : "") : NULL);
        size_t first = op->n_removed;
        int64_t *rowids = NULL;
        int sr;
        while ((sr = sqlite3_step(s)) == SQLITE_ROW) {
            if (op->n_removed == cap) {
                cap = cap ? cap * 2 : 16;
                removed_rel_t *m = realloc(op->removed, cap * sizeof *m);
                int64_t *ri = realloc(rowids, cap * sizeof *ri);
                if (m) op->removed = m;
                if (ri) rowids = ri;
                if (!m || !ri) { sq_done_stmt(s); free(rowids); sq_seterr(op->err, op->errlen, "out of memory"); goto out; }
            }
            rowids[op->n_removed - first] = sqlite3_column_int64(s, 0);
            removed_rel_t *m = &op->removed[op->n_removed++];
            m->a = strdup((const char *)sqlite3_column_text(s, 1));
            m->b = strdup((const char *)sqlite3_column_text(s, 2));
            m->w = sqlite3_column_double(s, 3);
            if (!m->a || !m->b) { sq_done_stmt(s); free(rowids); sq_seterr(op->err, op->errlen, "out of memory"); goto out; }
        }
        sq_done_stmt(s);
        if (sr != SQLITE_DONE) { free(rowids); sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db)); goto out; }
        for (size_t k = first; k < op->n_removed; k++) {
            s = sq_stmt(st->w, Q_REL_DEL_ROWID);
            if (s) sqlite3_bind_int64(s, 1, rowids[k - first]);
            if (sq_exec_step(st, op, s)) { free(rowids); goto out; }
        }
        free(rowids);
    }
    for (size_t k = 0; k < op->n_removed; k++)
        if (strset_add(&seen, op->removed[k].a) < 0 || strset_add(&seen, op->removed[k].b) < 0) {
            sq_seterr(op->err, op->errlen, "out of memory");
            goto out;
        }
    /* touched points into op->removed, which lives as long as the op's effects */
    if (op->n_removed) {
        if (touched_from_set(op, &seen, 0)) { sq_seterr(op->err, op->errlen, "out of memory"); goto out; }
        if (next_version(st, op) || set_versions(st, op)) goto out;
    }
    op->len = op->n_removed; /* the count outlives the effects */
    rc = 0;
out:
    strset_free(&seen);
    return rc;
}
