/* Batch submission bodies in one pass (yajl's event parser): the top-level "entity_ids"
 * strings go straight into one buffer, the rest of the object is built as jansson values for
 * the models' xParse. jansson builds a value per id (an allocation, a hashtable-free but
 * byte-by-byte decode): ~330 us for a 1000-id body and ~0.3 s for a million ids on this
 * project's machines, about 9x yajl's time for the same bytes.
 *
 * Anything this pass does not reproduce exactly as api_parse_body would goes to it instead:
 * malformed JSON (its error message says line and column), a top level that is not an
 * object, duplicate keys, "\u" escapes (jansson refuses \u0000 and lone surrogates), numbers
 * out of range, nesting deeper than MAX_DEPTH, form feeds and vertical tabs (blanks to yajl),
 * bytes after the object, and entity_ids holding anything but strings (the job engine
 * reports the offending index). Same documents in, same errors out: tests/fuzz/
 * fuzz_batch_body.c checks exactly that. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "api/api_internal.h"

#define MAX_DEPTH 64

typedef struct {
    int depth;                 /* open containers, the top-level object is depth 1 */
    json_t *stack[MAX_DEPTH];  /* containers being built; stack[0] = the top-level object */
    char *key[MAX_DEPTH];      /* an object's pending key (malloc'd), NULL in arrays */
    int ids_next;              /* the next value is top-level entity_ids */
    int in_ids;                /* inside the top-level entity_ids array */
    int ids_done;              /* entity_ids was seen (a second one is a duplicate key) */
    int fallback;              /* stop: api_parse_body decides */
    yajl_handle h;
    size_t end_off;            /* bytes up to the top-level object's closing brace */
    api_ids_t *ids;
} pass_t;

static int stop(pass_t *p) {
    p->fallback = 1;
    return 0; /* yajl: cancel the parse */
}

/* Adds a built value to the open container; steals v. */
static int add_value(pass_t *p, json_t *v) {
    if (!v) return stop(p);
    if (p->depth == 0) { /* a scalar at the top level */
        json_decref(v);
        return stop(p);
    }
    json_t *c = p->stack[p->depth - 1];
    int rc;
    if (json_is_object(c)) {
        char *k = p->key[p->depth - 1];
        p->key[p->depth - 1] = NULL;
        rc = k && !json_object_get(c, k) ? json_object_set_new(c, k, v) : (json_decref(v), -1);
        free(k);
    } else {
        rc = json_array_append_new(c, v);
    }
    return rc == 0 ? 1 : stop(p);
}

static int ids_push(api_ids_t *ids, const char *s, size_t len) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 1024;
        uint32_t *o = realloc(ids->off, cap * sizeof *o), *l;
        if (!o) return -1;
        ids->off = o;
        l = realloc(ids->len, cap * sizeof *l);
        if (!l) return -1;
        ids->len = l;
        ids->cap = cap;
    }
    if (ids->strs.len + len + 1 > UINT32_MAX || len > UINT32_MAX) return -1;
    ids->off[ids->n] = (uint32_t)ids->strs.len;
    ids->len[ids->n] = (uint32_t)len;
    buf_append(&ids->strs, s, len);
    buf_putc(&ids->strs, 0);
    if (ids->strs.oom) return -1;
    ids->n++;
    return 0;
}

static int on_null(void *ctx) {
    pass_t *p = ctx;
    if (p->in_ids) return stop(p);
    p->ids_next = 0;
    return add_value(p, json_null());
}

static int on_bool(void *ctx, int b) {
    pass_t *p = ctx;
    if (p->in_ids) return stop(p);
    p->ids_next = 0;
    return add_value(p, json_boolean(b));
}

/* jansson's rules: a number with '.', 'e' or 'E' is real, else an integer; out of range is
 * an error it words itself (so: its turn). */
static int on_number(void *ctx, const char *s, size_t len) {
    pass_t *p = ctx;
    if (p->in_ids || len >= 64) return stop(p);
    p->ids_next = 0;
    char tmp[64];
    memcpy(tmp, s, len);
    tmp[len] = 0;
    errno = 0;
    char *end;
    if (memchr(tmp, '.', len) || memchr(tmp, 'e', len) || memchr(tmp, 'E', len)) {
        double d = strtod(tmp, &end);
        if (errno == ERANGE || *end) return stop(p);
        return add_value(p, json_real(d));
    }
    long long v = strtoll(tmp, &end, 10);
    if (errno == ERANGE || *end) return stop(p);
    return add_value(p, json_integer((json_int_t)v));
}

static int on_string(void *ctx, const unsigned char *s, size_t len) {
    pass_t *p = ctx;
    if (p->in_ids) return ids_push(p->ids, (const char *)s, len) == 0 ? 1 : stop(p);
    p->ids_next = 0;
    return add_value(p, json_stringn((const char *)s, len));
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len) {
    pass_t *p = ctx;
    if (p->depth < 1 || memchr(s, 0, len)) return stop(p);
    char **k = &p->key[p->depth - 1];
    free(*k);
    *k = strndup((const char *)s, len);
    if (!*k) return stop(p);
    p->ids_next = 0;
    if (p->depth == 1 && len == 10 && memcmp(s, "entity_ids", 10) == 0) {
        if (p->ids_done || json_object_get(p->stack[0], "entity_ids")) return stop(p); /* a duplicate key */
        p->ids_next = 1;
    }
    return 1;
}

static int open_container(pass_t *p, json_t *c) {
    if (!c) return stop(p);
    if (p->depth == MAX_DEPTH) {
        json_decref(c);
        return stop(p);
    }
    if (p->depth > 0) {
        /* the container joins its parent at once; the parent keeps a reference */
        json_incref(c);
        if (!add_value(p, c)) {
            json_decref(c);
            return 0;
        }
    }
    p->stack[p->depth] = c;
    p->key[p->depth] = NULL;
    p->depth++;
    return 1;
}

static int on_start_map(void *ctx) {
    pass_t *p = ctx;
    if (p->in_ids) return stop(p);
    p->ids_next = 0;
    return open_container(p, json_object());
}

static int close_container(pass_t *p) {
    if (p->depth < 1) return stop(p);
    p->depth--;
    if (p->depth == 0) p->end_off = yajl_get_bytes_consumed(p->h);
    free(p->key[p->depth]);
    p->key[p->depth] = NULL;
    if (p->depth > 0) json_decref(p->stack[p->depth]); /* the parent holds it */
    return 1;
}

static int on_end_map(void *ctx) { return close_container(ctx); }

static int on_start_array(void *ctx) {
    pass_t *p = ctx;
    if (p->in_ids) return stop(p);
    if (p->ids_next) {
        p->ids_next = 0;
        p->in_ids = 1;
        p->ids_done = 1;
        p->ids->present = 1;
        free(p->key[0]); /* entity_ids is not added to the object */
        p->key[0] = NULL;
        return 1;
    }
    return open_container(p, json_array());
}

static int on_end_array(void *ctx) {
    pass_t *p = ctx;
    if (p->in_ids) {
        p->in_ids = 0;
        return 1;
    }
    return close_container(p);
}

static const yajl_callbacks CALLBACKS = {
    .yajl_null = on_null,
    .yajl_boolean = on_bool,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

void api_ids_free(api_ids_t *ids) {
    buf_free(&ids->strs);
    free(ids->str);
    free(ids->off);
    free(ids->len);
    memset(ids, 0, sizeof *ids);
}

/* 0: *doc is the object without entity_ids, ids filled (ids->present says whether it was
 * there); -1: not for this pass. */
static int one_pass(const char *body, size_t len, json_t **doc, api_ids_t *ids) {
    /* the first non-blank byte must open an object; "\u" escapes are jansson's business */
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) i++;
    if (i == len || body[i] != '{' || memmem(body, len, "\\u", 2)) return -1;
    /* yajl takes form feed and vertical tab for blanks, JSON does not */
    if (memchr(body, '\f', len) || memchr(body, '\v', len)) return -1;
    pass_t p;
    memset(&p, 0, sizeof p);
    p.ids = ids;
    yajl_handle h = yajl_alloc(&CALLBACKS, NULL, &p);
    if (!h) return -1;
    p.h = h;
    yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    yajl_free(h);
    json_t *top = p.stack[0];
    for (int d = 0; d < MAX_DEPTH; d++) free(p.key[d]);
    /* only blanks may follow the object (yajl lets an unterminated string after it pass) */
    int trailing = 0;
    for (size_t k = p.end_off; k < len && !trailing; k++)
        trailing = body[k] != ' ' && body[k] != '\t' && body[k] != '\n' && body[k] != '\r';
    if (st != yajl_status_ok || p.fallback || p.depth != 0 || !top || p.end_off == 0 || trailing) {
        /* containers left open: their parents hold them too, so dropping ours and the top
         * frees everything */
        for (int d = p.depth - 1; d >= 1; d--) json_decref(p.stack[d]);
        json_decref(top);
        api_ids_free(ids);
        return -1;
    }
    if (ids->present) {
        ids->str = malloc((ids->n ? ids->n : 1) * sizeof *ids->str);
        if (!ids->str) {
            json_decref(top);
            api_ids_free(ids);
            return -1;
        }
        for (size_t k = 0; k < ids->n; k++) ids->str[k] = ids->strs.data + ids->off[k];
    }
    *doc = top;
    return 0;
}

int api_parse_batch_body(const api_req_t *rq, api_resp_t *rs, json_t **doc, api_ids_t *ids) {
    memset(ids, 0, sizeof *ids);
    *doc = NULL;
    if (rq->body_len > 0 && one_pass(rq->body, rq->body_len, doc, ids) == 0) return 0;
    return api_parse_body(rq, rs, doc);
}
