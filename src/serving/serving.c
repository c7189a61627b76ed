/* The model repository: scanning DIR/{name}/{version}/, reading config.yaml (libyaml),
 * loading and checking each model, the index, load/unload and references. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "core/log.h"
#include "core/util.h"
#include "serving/serving_int.h"

typedef struct {
    char name[128], version[32];
    int ready;
    char reason[256];
    serving_model_t *m; /* the repository's reference; NULL when not ready */
} entry_t;

struct serving {
    char dir[512];
    metrics_t *metrics;
    pthread_mutex_t mu; /* guards entries, n, cap and every model's refs */
    entry_t *entries;
    int n, cap;
};

static const double BATCH_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

/* ---- config.yaml ------------------------------------------------------------------------ */

static const char *scalar(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int yaml_int(yaml_node_t *n, const char *key, long min, long max, int *out, char *err,
                    size_t errlen) {
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < min || v > max) {
        snprintf(err, errlen, "config.yaml: %s must be an integer in [%ld, %ld]", key, min, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* A sequence of numbers into a new float array. */
static int yaml_floats(yaml_document_t *doc, yaml_node_t *n, const char *key, float **out, int *count,
                       char *err, size_t errlen) {
    if (!n || n->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errlen, "config.yaml: %s must be a list of numbers", key);
        return -1;
    }
    int len = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    float *v = calloc(len ? (size_t)len : 1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < len; i++) {
        const char *s = scalar(yaml_document_get_node(doc, n->data.sequence.items.start[i]));
        char *end = NULL;
        double d = s ? strtod(s, &end) : NAN;
        if (!s || end == s || *end || !isfinite(d)) {
            snprintf(err, errlen, "config.yaml: %s[%d] is not a finite number", key, i);
            free(v);
            return -1;
        }
        v[i] = (float)d;
    }
    *out = v;
    *count = len;
    return 0;
}

/* inputs: [{name, scaler: {mean, scale}}]; the scaler's length must be the input's last dim. */
static int yaml_input(serving_model_t *m, yaml_document_t *doc, yaml_node_t *n, int idx, char *err,
                      size_t errlen) {
    if (!n || n->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "config.yaml: inputs[%d] must be a mapping", idx);
        return -1;
    }
    const char *name = NULL;
    yaml_node_t *scaler = NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(doc, p->key));
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (k && strcmp(k, "name") == 0) name = scalar(v);
        else if (k && strcmp(k, "scaler") == 0) scaler = v;
        else if (k && (strcmp(k, "datatype") == 0 || strcmp(k, "dims") == 0)) continue; /* informative */
        else {
            snprintf(err, errlen, "config.yaml: inputs[%d].%s: unknown key (name, scaler)", idx, k ? k : "?");
            return -1;
        }
    }
    int i = 0;
    if (name) {
        for (i = 0; i < m->n_in && strcmp(nn_model_input_name(m->nn, i), name); i++) {}
        if (i == m->n_in) {
            snprintf(err, errlen, "config.yaml: inputs[%d].name '%s' is not an input of the model", idx, name);
            return -1;
        }
    } else if (m->n_in != 1) {
        snprintf(err, errlen, "config.yaml: inputs[%d] needs a name (the model has %d inputs)", idx, m->n_in);
        return -1;
    }
    if (!scaler) return 0;
    if (scaler->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "config.yaml: inputs[%d].scaler must be a mapping {mean, scale}", idx);
        return -1;
    }
    float *mean = NULL, *scale = NULL;
    int nm = -1, ns = -1;
    char key[64];
    for (yaml_node_pair_t *p = scaler->data.mapping.pairs.start; p < scaler->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(doc, p->key));
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        snprintf(key, sizeof key, "inputs[%d].scaler.%s", idx, k ? k : "?");
        if (k && strcmp(k, "mean") == 0 && !mean) {
            if (yaml_floats(doc, v, key, &mean, &nm, err, errlen)) goto fail;
        } else if (k && strcmp(k, "scale") == 0 && !scale) {
            if (yaml_floats(doc, v, key, &scale, &ns, err, errlen)) goto fail;
        } else {
            snprintf(err, errlen, "config.yaml: %s: unknown or repeated key (mean, scale)", key);
            goto fail;
        }
    }
    const nn_tensor_t *info = &m->in_info[i];
    int64_t feat = info->dims[info->ndim - 1];
    if (!mean || !scale || nm != ns || nm != feat) {
        snprintf(err, errlen, "config.yaml: inputs[%d].scaler needs mean and scale with %lld values each "
                 "(the last dimension of input '%s')", idx, (long long)feat, nn_model_input_name(m->nn, i));
        goto fail;
    }
    for (int j = 0; j < ns; j++) {
        if (scale[j] == 0) {
            snprintf(err, errlen, "config.yaml: inputs[%d].scaler.scale[%d] is 0", idx, j);
            goto fail;
        }
        scale[j] = 1.0f / scale[j];
    }
    free(m->mean[i]);
    free(m->inv_scale[i]);
    m->mean[i] = mean;
    m->inv_scale[i] = scale;
    return 0;
fail:
    free(mean);
    free(scale);
    return -1;
}

static int read_config(serving_model_t *m, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0; /* a bare model.onnx: defaults */
        snprintf(err, errlen, "config.yaml: %s", strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "config.yaml:%zu:%zu: %s", parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    int rc = -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) { rc = 0; goto done; }
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "config.yaml: the top level must be a mapping");
        goto done;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const char *k = scalar(yaml_document_get_node(&doc, p->key));
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        if (!k) {
            snprintf(err, errlen, "config.yaml: keys must be scalars");
            goto done;
        }
        if (strcmp(k, "max_batch_size") == 0) {
            if (yaml_int(v, k, 1, 65536, &m->max_batch, err, errlen)) goto done;
        } else if (strcmp(k, "max_queue_delay_ms") == 0) {
            if (yaml_int(v, k, 0, 60000, &m->delay_ms, err, errlen)) goto done;
        } else if (strcmp(k, "mc_passes") == 0) {
            if (yaml_int(v, k, 2, 10000, &m->mc_passes, err, errlen)) goto done;
        } else if (strcmp(k, "threads") == 0) {
            if (yaml_int(v, k, 1, 256, &m->threads, err, errlen)) goto done;
        } else if (strcmp(k, "type") == 0 || strcmp(k, "model_type") == 0) {
            const char *s = scalar(v);
            if (!s || strlen(s) >= sizeof m->type) {
                snprintf(err, errlen, "config.yaml: %s must be a short string", k);
                goto done;
            }
            snprintf(m->type, sizeof m->type, "%s", s);
        } else if (strcmp(k, "inputs") == 0) {
            if (v->type != YAML_SEQUENCE_NODE) {
                snprintf(err, errlen, "config.yaml: inputs must be a list");
                goto done;
            }
            int len = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
            for (int i = 0; i < len; i++)
                if (yaml_input(m, &doc, yaml_document_get_node(&doc, v->data.sequence.items.start[i]), i,
                               err, errlen))
                    goto done;
        } else {
            snprintf(err, errlen, "config.yaml: %s: unknown key (type, max_batch_size, max_queue_delay_ms, "
                     "mc_passes, threads, inputs)", k);
            goto done;
        }
    }
    rc = 0;
done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ---- one model version ------------------------------------------------------------------ */

static void model_free(serving_model_t *m) {
    if (!m) return;
    if (m->started) serving_batcher_stop(m);
    serving_plans_free(m);
    for (int i = 0; i < SERVING_MAX_IO; i++) {
        free(m->mean[i]);
        free(m->inv_scale[i]);
        free(m->in_buf[i]);
        free(m->out_buf[i]);
    }
    nn_model_free(m->nn);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->done);
    free(m);
}

/* Loads dir/model.onnx (+ config.yaml), checks it plans at batch 1 and 2 and finds each
 * output's batch axis (the axis that grows from 1 to 2), starts its batcher. */
static serving_model_t *model_load(serving_t *s, const char *dir, const char *name, const char *version,
                                   char *err, size_t errlen) {
    serving_model_t *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, NULL);
    pthread_cond_init(&m->done, NULL);
    m->owner = s;
    m->metrics = s->metrics;
    snprintf(m->name, sizeof m->name, "%.127s", name);
    snprintf(m->version, sizeof m->version, "%.31s", version);
    snprintf(m->type, sizeof m->type, "onnx");
    m->max_batch = 128;
    m->delay_ms = 5;
    m->mc_passes = 20;
    m->threads = cpu_count() < 8 ? cpu_count() : 8;
    char path[1024], sub[512];
    snprintf(path, sizeof path, "%.1000s/model.onnx", dir);
    if (nn_model_load(path, &m->nn, sub, sizeof sub)) {
        snprintf(err, errlen, "model.onnx: %.200s", sub);
        goto fail;
    }
    m->n_in = nn_model_n_inputs(m->nn);
    m->n_out = nn_model_n_outputs(m->nn);
    if (m->n_in < 1 || m->n_in > SERVING_MAX_IO || m->n_out < 1 || m->n_out > SERVING_MAX_IO) {
        snprintf(err, errlen, "the model has %d inputs and %d outputs (serving takes 1 to %d of each)",
                 m->n_in, m->n_out, SERVING_MAX_IO);
        goto fail;
    }
    for (int i = 0; i < m->n_in; i++) {
        nn_tensor_t *t = &m->in_info[i];
        nn_model_input_info(m->nn, i, t);
        if (t->dtype != NN_FLOAT || t->ndim < 1) {
            snprintf(err, errlen, "input '%s' is not a float tensor with a batch axis", nn_model_input_name(m->nn, i));
            goto fail;
        }
        t->dims[0] = -1;
        m->in_row[i] = 1;
        for (int d = 1; d < t->ndim; d++) {
            if (t->dims[d] <= 0) {
                snprintf(err, errlen, "input '%s' has a symbolic dimension %d besides the batch",
                         nn_model_input_name(m->nn, i), d);
                goto fail;
            }
            m->in_row[i] *= t->dims[d];
        }
    }
    snprintf(path, sizeof path, "%.1000s/config.yaml", dir);
    if (read_config(m, path, err, errlen)) goto fail;
    nn_plan_t *p1 = serving_plan(m, 1, 0, sub, sizeof sub);
    nn_plan_t *p2 = p1 ? serving_plan(m, 2, 0, sub, sizeof sub) : NULL;
    if (!p2) {
        snprintf(err, errlen, "cannot plan a run: %.200s", sub);
        goto fail;
    }
    for (int i = 0; i < m->n_out; i++) {
        nn_tensor_t a, b;
        nn_plan_output_info(p1, i, &a);
        nn_plan_output_info(p2, i, &b);
        int axis = -1, differ = 0;
        for (int d = 0; d < a.ndim; d++)
            if (a.dims[d] != b.dims[d]) {
                differ++;
                if (a.dims[d] == 1 && b.dims[d] == 2) axis = d;
            }
        if (a.dtype != NN_FLOAT || differ != 1 || axis < 0) {
            snprintf(err, errlen, "output '%s' is not a float tensor with one batch axis",
                     nn_model_output_name(m->nn, i));
            goto fail;
        }
        m->out_info[i] = a;
        m->out_axis[i] = axis;
        m->out_row[i] = nn_tensor_numel(&a);
    }
    if (serving_batcher_start(m, err, errlen)) goto fail;
    return m;
fail:
    model_free(m);
    return NULL;
}

/* ---- the index -------------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b) {
    const entry_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return strtoll(x->version, NULL, 10) < strtoll(y->version, NULL, 10) ? -1 :
           strtoll(x->version, NULL, 10) > strtoll(y->version, NULL, 10);
}

static int valid_name(const char *n) {
    if (!n[0] || n[0] == '.' || strlen(n) >= 128) return 0;
    for (const char *p = n; *p; p++)
        if (*p == '/' || (unsigned char)*p < 0x20) return 0;
    return 1;
}

static int is_version(const char *v) {
    if (!v[0] || strlen(v) > 18) return 0;
    for (const char *p = v; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return 1;
}

/* Drops the index's reference on every version of name (s->mu held); returns the models
 * whose last reference that was, for the caller to free outside the lock. */
static int drop_refs(serving_t *s, const char *name, serving_model_t **to_free, int max) {
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        entry_t *e = &s->entries[i];
        if (strcmp(e->name, name) || !e->m) continue;
        if (--e->m->refs == 0 && k < max) to_free[k++] = e->m;
        e->m = NULL;
        e->ready = 0;
    }
    return k;
}

static void remove_entries(serving_t *s, const char *name) {
    int j = 0;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].name, name)) s->entries[j++] = s->entries[i];
    s->n = j;
}

static int add_entry(serving_t *s, const entry_t *e) {
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 16;
        entry_t *n = realloc(s->entries, (size_t)cap * sizeof *n);
        if (!n) return -1;
        s->entries = n;
        s->cap = cap;
    }
    s->entries[s->n++] = *e;
    return 0;
}

#define MAX_VERSIONS 64

int serving_load(serving_t *s, const char *name, char *err, size_t errlen) {
    char dir[1024];
    if (!s->dir[0] || !valid_name(name)) {
        snprintf(err, errlen, "no model '%s' in the repository", name);
        return SERVING_ERR_NOT_FOUND;
    }
    snprintf(dir, sizeof dir, "%s/%s", s->dir, name);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "no model '%s' in the repository (%s)", name, strerror(errno));
        return SERVING_ERR_NOT_FOUND;
    }
    entry_t found[MAX_VERSIONS];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < MAX_VERSIONS) {
        if (!is_version(de->d_name)) continue;
        char vdir[1200];
        struct stat st;
        snprintf(vdir, sizeof vdir, "%.1000s/%.31s", dir, de->d_name);
        if (stat(vdir, &st) || !S_ISDIR(st.st_mode)) continue;
        entry_t *e = &found[n++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%.127s", name);
        snprintf(e->version, sizeof e->version, "%.31s", de->d_name);
        char why[256];
        e->m = model_load(s, vdir, name, de->d_name, why, sizeof why);
        if (e->m) {
            e->ready = 1;
            e->m->refs = 1;
            LOG_I("model loaded", "model=%s version=%s type=%s max_batch=%d", name, e->version, e->m->type,
                  e->m->max_batch);
        } else {
            snprintf(e->reason, sizeof e->reason, "%s", why);
            LOG_W("model not loaded", "model=%s version=%s reason=\"%s\"", name, e->version, why);
        }
    }
    closedir(d);
    serving_model_t *to_free[MAX_VERSIONS];
    pthread_mutex_lock(&s->mu);
    int k = drop_refs(s, name, to_free, MAX_VERSIONS);
    remove_entries(s, name);
    int ready = 0, oom = 0;
    for (int i = 0; i < n; i++) {
        ready += found[i].ready;
        if (add_entry(s, &found[i])) {
            oom = 1;
            if (found[i].m && --found[i].m->refs == 0 && k < MAX_VERSIONS) to_free[k++] = found[i].m;
        }
    }
    qsort(s->entries, (size_t)s->n, sizeof *s->entries, entry_cmp);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < k; i++) model_free(to_free[i]);
    if (oom) {
        snprintf(err, errlen, "out of memory");
        return SERVING_ERR_UNAVAILABLE;
    }
    if (n == 0) {
        snprintf(err, errlen, "model '%s' has no version folder with a model.onnx", name);
        return SERVING_ERR_UNAVAILABLE;
    }
    if (!ready) {
        for (int i = 0; i < n; i++)
            if (!found[i].ready) snprintf(err, errlen, "version %s: %s", found[i].version, found[i].reason);
        return SERVING_ERR_UNAVAILABLE;
    }
    return SERVING_OK;
}

int serving_unload(serving_t *s, const char *name, char *err, size_t errlen) {
    serving_model_t *to_free[MAX_VERSIONS];
    int known = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].name, name) == 0) {
            known = 1;
            if (s->entries[i].m) snprintf(s->entries[i].reason, sizeof s->entries[i].reason, "unloaded");
        }
    int k = drop_refs(s, name, to_free, MAX_VERSIONS);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < k; i++) model_free(to_free[i]);
    if (!known) {
        snprintf(err, errlen, "no model '%s' in the repository", name);
        return SERVING_ERR_NOT_FOUND;
    }
    LOG_I("model unloaded", "model=%s", name);
    return SERVING_OK;
}

int serving_open(serving_t **out, const char *dir, metrics_t *metrics, char *err, size_t errlen) {
    *out = NULL;
    serving_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->metrics = metrics;
    if (metrics) {
        metrics_describe(metrics, "predictd_nn_batch_size", METRIC_HISTOGRAM,
                         "rows per engine run of a served ONNX model (after dynamic batching)", BATCH_BUCKETS,
                         (int)(sizeof BATCH_BUCKETS / sizeof BATCH_BUCKETS[0]));
        metrics_describe(metrics, "predictd_nn_requests_per_run", METRIC_HISTOGRAM,
                         "inference requests served by one engine run", BATCH_BUCKETS,
                         (int)(sizeof BATCH_BUCKETS / sizeof BATCH_BUCKETS[0]));
        metrics_describe(metrics, "predictd_nn_run_seconds", METRIC_HISTOGRAM,
                         "engine time per run of a served ONNX model", NULL, 0);
    }
    if (!dir || !dir[0]) {
        *out = s;
        return 0;
    }
    if (strlen(dir) >= sizeof s->dir) {
        snprintf(err, errlen, "models dir path too long");
        serving_free(s);
        return -1;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "models dir %s: %s", dir, strerror(errno));
        serving_free(s);
        return -1;
    }
    char names[256][128];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256) {
        if (!valid_name(de->d_name)) continue;
        char p[1200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &st) || !S_ISDIR(st.st_mode)) continue;
        snprintf(names[n++], sizeof names[0], "%.127s", de->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        char why[512];
        if (serving_load(s, names[i], why, sizeof why) == SERVING_OK) continue;
        pthread_mutex_lock(&s->mu);
        int listed = 0;
        for (int j = 0; j < s->n; j++) listed |= strcmp(s->entries[j].name, names[i]) == 0;
        if (!listed) { /* a folder without any version: listed, so the operator sees it */
            entry_t e = {0};
            snprintf(e.name, sizeof e.name, "%.127s", names[i]);
            snprintf(e.reason, sizeof e.reason, "%.255s", why);
            add_entry(s, &e);
        }
        pthread_mutex_unlock(&s->mu);
    }
    *out = s;
    return 0;
}

void serving_free(serving_t *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++)
        if (s->entries[i].m && --s->entries[i].m->refs == 0) model_free(s->entries[i].m);
    free(s->entries);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void serving_index(serving_t *s, serving_index_fn fn, void *arg) {
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++)
        fn(arg, s->entries[i].name, s->entries[i].version, s->entries[i].ready, s->entries[i].reason);
    pthread_mutex_unlock(&s->mu);
}

int serving_n_ready(serving_t *s) {
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++) n += s->entries[i].ready;
    pthread_mutex_unlock(&s->mu);
    return n;
}

serving_model_t *serving_get(serving_t *s, const char *name, const char *version, int *rc, char *err,
                             size_t errlen) {
    serving_model_t *m = NULL;
    int known = 0;
    const char *reason = NULL;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n; i++) { /* sorted by version: the last ready one wins */
        entry_t *e = &s->entries[i];
        if (strcmp(e->name, name) || (version && strcmp(e->version, version))) continue;
        known = 1;
        if (e->m) m = e->m;
        else reason = e->reason;
    }
    if (m) m->refs++;
    pthread_mutex_unlock(&s->mu);
    if (m) {
        *rc = SERVING_OK;
        return m;
    }
    if (!known) {
        *rc = SERVING_ERR_NOT_FOUND;
        if (version) snprintf(err, errlen, "model '%s' has no version '%s'", name, version);
        else snprintf(err, errlen, "no model '%s' in the repository", name);
    } else {
        *rc = SERVING_ERR_UNAVAILABLE;
        snprintf(err, errlen, "model '%s'%s%s is not ready: %s", name, version ? " version " : "",
                 version ? version : "", reason && reason[0] ? reason : "not loaded");
    }
    return NULL;
}

void serving_release(serving_model_t *m) {
    if (!m) return;
    serving_t *s = m->owner;
    pthread_mutex_lock(&s->mu);
    int last = --m->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last) model_free(m);
}

/* ---- information ------------------------------------------------------------------------ */

const char *serving_model_name(const serving_model_t *m) { return m->name; }
const char *serving_model_version(const serving_model_t *m) { return m->version; }
const char *serving_model_type(const serving_model_t *m) { return m->type; }
int serving_model_max_batch(const serving_model_t *m) { return m->max_batch; }
int serving_model_mc_passes(const serving_model_t *m) { return m->mc_passes; }
int serving_model_n_inputs(const serving_model_t *m) { return m->n_in; }
int serving_model_n_outputs(const serving_model_t *m) { return m->n_out; }
const char *serving_model_input_name(const serving_model_t *m, int i) { return nn_model_input_name(m->nn, i); }
const char *serving_model_output_name(const serving_model_t *m, int i) { return nn_model_output_name(m->nn, i); }
void serving_model_input_info(const serving_model_t *m, int i, nn_tensor_t *info) { *info = m->in_info[i]; }
void serving_model_output_info(const serving_model_t *m, int i, nn_tensor_t *info, int *batch_axis) {
    *info = m->out_info[i];
    if (batch_axis) *batch_axis = m->out_axis[i];
}
int64_t serving_model_input_row(const serving_model_t *m, int i) { return m->in_row[i]; }
int64_t serving_model_output_row(const serving_model_t *m, int i) { return m->out_row[i]; }
