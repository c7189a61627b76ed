/* Push filters: symbol / job / topic sets, client messages, SSE query arguments. */
#include "push/push_filter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bus/bus.h"

/* ---- sets ------------------------------------------------------------------------------- */

static void set_clear(push_set_t *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int set_has(const push_set_t *s, const char *key) {
    if (s->mode == PUSH_SET_ALL) return 1;
    if (s->mode == PUSH_SET_NONE || !key) return 0;
    return bsearch(&key, s->v, s->n, sizeof *s->v, cmp_str) != NULL;
}

static int set_copy(push_set_t *dst, const push_set_t *src) {
    memset(dst, 0, sizeof *dst);
    dst->mode = src->mode;
    if (!src->n) return 0;
    dst->v = calloc(src->n, sizeof *dst->v);
    if (!dst->v) return -1;
    dst->cap = src->n;
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i] = strdup(src->v[i]);
        if (!dst->v[i]) return -1; /* the caller clears dst (n counts the copies made) */
        dst->n++;
    }
    return 0;
}

/* Adds keys (a set that is "all" stays so). 0 ok, -1 no memory, -2 over max. */
static int set_add(push_set_t *s, const char *const *keys, size_t n, size_t max) {
    if (s->mode == PUSH_SET_ALL) return 0;
    if (s->n + n > s->cap) {
        size_t cap = s->cap ? s->cap : 8;
        while (cap < s->n + n) cap *= 2;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    size_t old = s->n;
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i];
        if (old && bsearch(&k, s->v, old, sizeof *s->v, cmp_str)) continue;
        char *dup = strdup(k);
        if (!dup) return -1;
        s->v[s->n++] = dup;
    }
    qsort(s->v, s->n, sizeof *s->v, cmp_str);
    size_t j = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (j > 0 && strcmp(s->v[i], s->v[j - 1]) == 0) free(s->v[i]);
        else s->v[j++] = s->v[i];
    }
    s->n = j;
    if (s->n) s->mode = PUSH_SET_SOME;
    return s->n > max ? -2 : 0;
}

static void set_remove(push_set_t *s, const char *const *keys, size_t n) {
    for (size_t i = 0; i < n && s->mode == PUSH_SET_SOME; i++) {
        const char *k = keys[i];
        char **hit = bsearch(&k, s->v, s->n, sizeof *s->v, cmp_str);
        if (!hit) continue;
        size_t at = (size_t)(hit - s->v);
        free(s->v[at]);
        memmove(s->v + at, s->v + at + 1, (s->n - at - 1) * sizeof *s->v);
        s->n--;
    }
    if (s->mode == PUSH_SET_SOME && s->n == 0) set_clear(s);
}

static void set_describe(const push_set_t *s, buf_t *out, const char *none) {
    if (s->mode == PUSH_SET_ALL) {
        buf_puts(out, "\"*\"");
        return;
    }
    if (s->mode == PUSH_SET_NONE) {
        buf_puts(out, none);
        return;
    }
    buf_putc(out, '[');
    for (size_t i = 0; i < s->n; i++) {
        if (i) buf_putc(out, ',');
        buf_json_str(out, s->v[i], strlen(s->v[i]));
    }
    buf_putc(out, ']');
}

/* ---- filters ---------------------------------------------------------------------------- */

void push_filter_clear(push_filter_t *f) {
    set_clear(&f->symbols);
    set_clear(&f->jobs);
    set_clear(&f->topics);
}

void push_filter_all(push_filter_t *f) {
    push_filter_clear(f);
    f->symbols.mode = f->jobs.mode = f->topics.mode = PUSH_SET_ALL;
}

int push_filter_copy(push_filter_t *dst, const push_filter_t *src) {
    memset(dst, 0, sizeof *dst);
    if (set_copy(&dst->symbols, &src->symbols) || set_copy(&dst->jobs, &src->jobs) ||
        set_copy(&dst->topics, &src->topics)) {
        push_filter_clear(dst);
        return -1;
    }
    return 0;
}

static int topic_listed(const push_set_t *t, const char *topic) {
    if (t->mode != PUSH_SET_SOME) return t->mode == PUSH_SET_ALL;
    for (size_t i = 0; i < t->n; i++)
        if (bus_topic_match(t->v[i], topic)) return 1;
    return 0;
}

int push_filter_match(const push_filter_t *f, const char *topic, const char *symbol, const char *job_id) {
    if (f->topics.mode != PUSH_SET_NONE && !topic_listed(&f->topics, topic)) return 0;
    if (symbol && set_has(&f->symbols, symbol)) return 1;
    if (job_id && set_has(&f->jobs, job_id)) return 1;
    return !symbol && !job_id && f->topics.mode != PUSH_SET_NONE;
}

/* ---- names ------------------------------------------------------------------------------ */

static int name_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int push_symbol_valid(const char *s) { return name_ok(s, PUSH_SYMBOL_MAX_LEN); }
int push_job_id_valid(const char *s) { return name_ok(s, PUSH_JOB_MAX_LEN); }

/* A topic name, "*" or "prefix.*". */
static int topic_pattern_valid(const char *s) {
    size_t n = strlen(s);
    if (n == 1 && s[0] == '*') return 1;
    if (n == 0 || n >= BUS_TOPIC_MAX) return 0;
    char one[BUS_TOPIC_MAX];
    memcpy(one, s, n + 1);
    if (n >= 3 && one[n - 1] == '*' && one[n - 2] == '.') one[n - 2] = '\0';
    return bus_topic_valid(one);
}

static void set_err(push_err_t *err, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(push_err_t *err, const char *code, const char *field, const char *fmt, ...) {
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* ---- client messages -------------------------------------------------------------------- */

typedef enum { KIND_SYMBOLS, KIND_JOBS, KIND_TOPICS } set_kind_t;

static const char *const SET_NAMES[] = {"symbols", "jobs", "topics"};

static push_set_t *set_of(push_filter_t *f, set_kind_t k) {
    return k == KIND_SYMBOLS ? &f->symbols : k == KIND_JOBS ? &f->jobs : &f->topics;
}

static int elem_valid(set_kind_t k, const char *s) {
    return k == KIND_SYMBOLS ? push_symbol_valid(s) : k == KIND_JOBS ? push_job_id_valid(s) : topic_pattern_valid(s);
}

static const char *elem_rule(set_kind_t k) {
    return k == KIND_SYMBOLS ? "a symbol is 1..32 characters of [A-Za-z0-9._-]"
           : k == KIND_JOBS  ? "a job id is 1..31 characters of [A-Za-z0-9._-]"
                             : "a topic is a name of [a-z0-9_.-], \"*\" or \"prefix.*\"";
}

static size_t set_max(set_kind_t k) { return k == KIND_TOPICS ? PUSH_FILTER_MAX_TOPICS : PUSH_FILTER_MAX_KEYS; }

/* Applies one "symbols"/"jobs"/"topics" value of a subscribe (add) or unsubscribe. */
static int apply_set(push_filter_t *f, set_kind_t k, const json_t *v, int add, const char *verb, push_err_t *err) {
    char field[64];
    snprintf(field, sizeof field, "%s.%s", verb, SET_NAMES[k]);
    push_set_t *s = set_of(f, k);
    if (json_is_string(v) && strcmp(json_string_value(v), "*") == 0) {
        set_clear(s);
        if (add) s->mode = PUSH_SET_ALL;
        return 0;
    }
    if (!json_is_array(v)) {
        set_err(err, "invalid_field", field, "%s is \"*\" or an array of strings", field);
        return -1;
    }
    size_t n = json_array_size(v);
    if (n > set_max(k)) {
        set_err(err, "invalid_field", field, "%s has %zu entries; at most %zu", field, n, set_max(k));
        return -1;
    }
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    if (!keys) {
        set_err(err, "out_of_memory", field, "no memory for the subscription");
        return -1;
    }
    int rc = 0, all = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const json_t *e = json_array_get(v, i);
        const char *s_i = json_is_string(e) ? json_string_value(e) : NULL;
        if (!s_i || strlen(s_i) != json_string_length(e) || !elem_valid(k, s_i)) {
            char f_i[80];
            snprintf(f_i, sizeof f_i, "%s[%zu]", field, i);
            set_err(err, "invalid_field", f_i, "%s: %s", f_i, elem_rule(k));
            rc = -1;
        } else if (strcmp(s_i, "*") == 0) {
            all = 1; /* topics: ["*"] is "*" */
        }
        keys[i] = s_i;
    }
    if (rc == 0 && all) {
        set_clear(s);
        if (add) s->mode = PUSH_SET_ALL;
    } else if (rc == 0 && add) {
        int a = set_add(s, keys, n, set_max(k));
        if (a == -2) set_err(err, "too_many", field, "a client may subscribe to at most %zu %s", set_max(k), SET_NAMES[k]);
        else if (a < 0) set_err(err, "out_of_memory", field, "no memory for the subscription");
        rc = a < 0 ? -1 : 0;
    } else if (rc == 0) {
        if (s->mode == PUSH_SET_ALL && n > 0) {
            set_err(err, "invalid_field", field,
                    "subscribed to every %s (\"*\"): unsubscribe \"*\" before naming some", SET_NAMES[k]);
            rc = -1;
        } else {
            set_remove(s, keys, n);
        }
    }
    free(keys);
    return rc;
}

int push_filter_apply_msg(push_filter_t *f, const char *text, size_t len, push_err_t *err) {
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    push_filter_t next = {0};
    int kind = -1;
    if (!root) {
        set_err(err, "invalid_json", NULL, "the message is not JSON: %s (at byte %d)", je.text, je.position);
        goto fail;
    }
    if (!json_is_object(root) || json_object_size(root) != 1) {
        set_err(err, "invalid_message", NULL,
                "a message is an object with exactly one of subscribe, unsubscribe, stats");
        goto fail;
    }
    const char *verb = json_object_iter_key(json_object_iter(root));
    const json_t *body = json_object_get(root, verb);
    if (strcmp(verb, "stats") == 0) {
        if (!json_is_object(body)) {
            set_err(err, "invalid_field", "stats", "stats is an object ({})");
            goto fail;
        }
        json_decref(root);
        return PUSH_MSG_STATS;
    }
    int add = strcmp(verb, "subscribe") == 0;
    if (!add && strcmp(verb, "unsubscribe") != 0) {
        char field[64];
        snprintf(field, sizeof field, "%.60s", verb);
        set_err(err, "unknown_field", field, "unknown message '%.60s' (subscribe, unsubscribe, stats)", verb);
        goto fail;
    }
    if (!json_is_object(body) || json_object_size(body) == 0) {
        set_err(err, "invalid_field", verb, "%s is an object naming symbols, jobs and/or topics", verb);
        goto fail;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v) {
        int known = 0;
        for (int i = 0; i < 3; i++) known |= strcmp(k, SET_NAMES[i]) == 0;
        if (!known) {
            char field[64];
            snprintf(field, sizeof field, "%s.%.40s", verb, k);
            set_err(err, "unknown_field", field, "unknown field %s (symbols, jobs, topics)", field);
            goto fail;
        }
    }
    if (push_filter_copy(&next, f)) {
        set_err(err, "out_of_memory", verb, "no memory for the subscription");
        goto fail;
    }
    for (int i = 0; i < 3; i++) {
        const json_t *sv = json_object_get(body, SET_NAMES[i]);
        if (sv && apply_set(&next, (set_kind_t)i, sv, add, verb, err)) goto fail;
    }
    push_filter_clear(f);
    *f = next;
    json_decref(root);
    return add ? PUSH_MSG_SUBSCRIBE : PUSH_MSG_UNSUBSCRIBE;
fail:
    push_filter_clear(&next);
    json_decref(root);
    return kind;
}

/* ---- SSE query arguments ---------------------------------------------------------------- */

static int query_set(push_filter_t *f, set_kind_t k, const char *csv, push_err_t *err) {
    push_set_t *s = set_of(f, k);
    if (!csv) return 0;
    if (strcmp(csv, "*") == 0) {
        set_clear(s);
        s->mode = PUSH_SET_ALL;
        return 0;
    }
    set_clear(s);
    const char *p = csv;
    char one[PUSH_KEY_MAX];
    for (size_t guard = strlen(csv) + 1; guard > 0; guard--) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n >= sizeof one) n = sizeof one - 1; /* too long: fails the name check below */
        memcpy(one, p, n);
        one[n] = '\0';
        if (!elem_valid(k, one) || strcmp(one, "*") == 0) {
            set_err(err, "invalid_field", SET_NAMES[k],
                    "%s is \"*\" or a comma-separated list; %s", SET_NAMES[k], elem_rule(k));
            return -1;
        }
        const char *key = one;
        int a = set_add(s, &key, 1, set_max(k));
        if (a == -2) {
            set_err(err, "invalid_field", SET_NAMES[k], "%s names more than %zu entries", SET_NAMES[k], set_max(k));
            return -1;
        }
        if (a < 0) {
            set_err(err, "out_of_memory", SET_NAMES[k], "no memory for the filter");
            return -1;
        }
        if (!end) return 0;
        p = end + 1;
    }
    return 0;
}

int push_filter_from_query(push_filter_t *f, const char *symbols, const char *jobs, push_err_t *err) {
    if (query_set(f, KIND_SYMBOLS, symbols, err) || query_set(f, KIND_JOBS, jobs, err)) return -1;
    return 0;
}

void push_filter_describe(const push_filter_t *f, buf_t *out) {
    buf_puts(out, "{\"symbols\":");
    set_describe(&f->symbols, out, "[]");
    buf_puts(out, ",\"jobs\":");
    set_describe(&f->jobs, out, "[]");
    buf_puts(out, ",\"topics\":");
    set_describe(&f->topics, out, "null");
    buf_putc(out, '}');
}

/* ---- event keys ------------------------------------------------------------------------- */

static void key_of(const json_t *obj, const char *name, char out[PUSH_KEY_MAX], int *has) {
    const json_t *v = json_object_get(obj, name);
    out[0] = '\0';
    *has = json_is_string(v);
    if (!*has) return;
    size_t n = json_string_length(v);
    if (n < PUSH_KEY_MAX && strlen(json_string_value(v)) == n) memcpy(out, json_string_value(v), n + 1);
}

int push_event_keys(const char *json, size_t len, char symbol[PUSH_KEY_MAX], int *has_symbol,
                    char job_id[PUSH_KEY_MAX], int *has_job) {
    symbol[0] = job_id[0] = '\0';
    *has_symbol = *has_job = 0;
    json_t *root = json_loadb(json, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    key_of(root, "symbol", symbol, has_symbol);
    key_of(root, "job_id", job_id, has_job);
    json_decref(root);
    return 0;
}
