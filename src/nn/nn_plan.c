/* Planner and executor: shape inference with constant folding, liveness-based arena,
 * the run loop, and Monte Carlo dropout with passes stacked on the batch axis.
 *
 * Values of a plan: for a plain plan, one nn_val_t per model value (the "det" half). An MC
 * plan has a second, "stacked" half for the part of the graph some Dropout reaches,
 * inferred at batch passes*B: a value there is the same value for all passes at once, laid
 * out as [outer, passes, B_axis, inner] around its batch axis. Values the stacked part reads
 * from the det part are tiled once per run. Extra "dummy" values absorb unused optional
 * outputs so that kernels can always write every output. */
#include "nn/nn_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS's own (not in every cblas.h); the shutdown is absent from its serial build */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
int blas_thread_shutdown_(void) __attribute__((weak));

/* OpenBLAS runs on the calling thread (a plan's pool splits the work). Its pthread build
 * starts worker threads when it loads, which spin on sched_yield for about 0.1 s before
 * they sleep, taking a core from the pool while the first runs of a process go on: stop
 * them once (setting the thread count again would start them anew, hence the check). */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_stop_threads(void) {
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}
static void blas_single_threaded(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    pthread_once(&blas_once, blas_stop_threads);
}

struct nn_plan {
    const nn_model_t *m;
    nn_plan_stats_t stats;
    int passes;             /* 0 for a plain plan */
    int threads;
    int reference;
    int isa;                /* NN_ISA_*: the kernel set, resolved from the options and the CPU */
    size_t max_bytes;
    nn_val_t *vals;
    int n_vals;             /* halves * n_values + dummies */
    int nv;                 /* model values per half */
    nn_step_t *steps;
    int n_steps;
    uint8_t *arena;
    size_t arena_bytes;
    nn_pool_t *pool;
    int *in_val;            /* per model input: det value index, -1 when fixed */
    nn_val_t *out_det;      /* per model output: det value (pointer into vals) */
    nn_val_t **out_stk;     /* per model output: stacked value or NULL (unreached) */
    int64_t (*out_axis)[3]; /* outer, bax, inner of reached outputs */
    float *mc_tmp;          /* passes floats for the statistics */
    char *reached;          /* per node */
};

void nn_val_set_shape(nn_val_t *v, int dtype, int ndim, const int64_t *dims) {
    v->dtype = dtype;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++) v->dims[i] = dims[i];
    v->numel = nn_numel(ndim, dims);
}

int64_t nn_val_geti(const nn_val_t *v, int64_t i) {
    switch (v->dtype) {
    case NN_INT64: return ((const int64_t *)v->data)[i];
    case NN_INT32: return ((const int32_t *)v->data)[i];
    case NN_FLOAT: return (int64_t)((const float *)v->data)[i];
    case NN_DOUBLE: return (int64_t)((const double *)v->data)[i];
    case NN_INT8: return ((const int8_t *)v->data)[i];
    default: return ((const uint8_t *)v->data)[i];
    }
}

double nn_val_getf(const nn_val_t *v, int64_t i) {
    switch (v->dtype) {
    case NN_FLOAT: return ((const float *)v->data)[i];
    case NN_DOUBLE: return ((const double *)v->data)[i];
    default: return (double)nn_val_geti(v, i);
    }
}

static size_t val_bytes(const nn_val_t *v) { return (size_t)v->numel * nn_dtype_size(v->dtype); }

static void step_clear(nn_step_t *s) {
    free(s->packed);
    free(s->in);
    free(s->out);
    memset(s, 0, sizeof *s);
}

void nn_plan_free(nn_plan_t *p) {
    if (!p) return;
    for (int i = 0; i < p->n_steps; i++) step_clear(&p->steps[i]);
    for (int i = 0; i < p->n_vals; i++) free(p->vals[i].owned);
    free(p->steps);
    free(p->vals);
    free(p->arena);
    nn_pool_free(p->pool);
    free(p->in_val);
    free(p->out_det);
    free(p->out_stk);
    free(p->out_axis);
    free(p->mc_tmp);
    free(p->reached);
    free(p);
}

/* The batch axis of a value: the one axis that is passes times larger in the stacked half. */
static int batch_axis(const nn_val_t *d, const nn_val_t *s, int passes, int64_t ax[3]) {
    if (d->ndim != s->ndim) return -1;
    int a = -1;
    for (int i = 0; i < d->ndim; i++) {
        if (d->dims[i] == s->dims[i]) continue;
        if (a >= 0 || s->dims[i] != d->dims[i] * passes) return -1;
        a = i;
    }
    if (a < 0) {
        if (passes != 1 && d->numel) return -1;
        a = 0;
    }
    ax[0] = nn_numel(a, d->dims);
    ax[1] = d->ndim ? d->dims[a] : 1;
    ax[2] = d->ndim ? nn_numel(d->ndim - a - 1, d->dims + a + 1) : 1;
    return a;
}

/* Stacking passes on the batch axis is only the same as separate passes when no op after a
 * Dropout mixes rows or moves them across axes. Checked per stacked step: every value has a
 * batch axis; ops with an axis or with matrix operands keep it out of what they combine. */
static int check_stacked(const nn_plan_t *p, const nn_step_t *s, char *err, size_t errlen) {
    int ax_in[NN_MAX_DIMS + 8];
    int64_t ai[3], ao[3] = { 0, 0, 0 };
    const char *op = s->node->op;
    for (int k = 0; k < NN_MAX_DIMS + 8; k++) ax_in[k] = -2;   /* -2: constant or absent */
    for (int k = 0; k < s->n_in && k < NN_MAX_DIMS + 8; k++) {
        const nn_val_t *v = s->in[k];
        if (!v || v->is_const) continue;
        int vid = (int)(v - (p->vals + p->nv));
        ax_in[k] = batch_axis(&p->vals[vid], v, p->passes, ai);
        if (ax_in[k] < 0) goto mixed;
        if (k == 0) memcpy(ao, ai, sizeof ai);
    }
    for (int k = 0; k < s->n_out; k++) {
        const nn_val_t *v = s->out[k];
        int vid = (int)(v - (p->vals + p->nv));
        if (vid < 0 || vid >= p->nv) continue;   /* an unused optional output */
        int a = batch_axis(&p->vals[vid], v, p->passes, ai);
        if (a < 0) goto mixed;
        if (k == 0) {
            /* Reshape, Flatten: the rows must stay whole (same product of dims before) */
            if ((!strcmp(op, "Reshape") || !strcmp(op, "Flatten")) && ax_in[0] >= 0 && ai[0] != ao[0]) goto mixed;
        }
    }
    int b = ax_in[0];
    if (p->passes == 1 || b < 0) return 0;
    int64_t a = 0;
    const nn_val_t *x = s->in[0];
    if (!strcmp(op, "Concat") || !strcmp(op, "Gather")) {
        nn_axis(nn_attr_i(s->node, "axis", !strcmp(op, "Concat") ? 1 : 0), x->ndim, &a);
        if (a == b) goto mixed;
        if (!strcmp(op, "Gather") && s->n_in > 1 && ax_in[1] != -2) goto mixed;
    } else if (!strcmp(op, "Softmax") || !strcmp(op, "LayerNormalization")) {
        int legacy = !strcmp(op, "Softmax") && s->opset < 13;
        nn_axis(nn_attr_i(s->node, "axis", legacy ? 1 : -1), x->ndim ? x->ndim : 1, &a);
        if (legacy || !strcmp(op, "LayerNormalization") ? a <= b : a == b) goto mixed;
    } else if (!strcmp(op, "Slice")) {
        for (int k = 1; k < s->n_in; k++)
            if (ax_in[k] != -2) goto mixed;
        if (s->out[0]->dims[b] != x->dims[b]) goto mixed;   /* rows selected */
    } else if (!strcmp(op, "Gemm")) {
        if (b != (nn_attr_i(s->node, "transA", 0) ? 1 : 0) || (s->n_in > 1 && ax_in[1] != -2) || (s->n_in > 2 && ax_in[2] >= 0 && ax_in[2] != 0)) goto mixed;
    } else if (!strcmp(op, "MatMul")) {
        if (b >= x->ndim - 1 || (s->n_in > 1 && ax_in[1] != -2)) goto mixed;
    } else if (!strcmp(op, "BatchNormalization")) {
        if (b == 1) goto mixed;
    } else if (!strcmp(op, "LSTM") || !strcmp(op, "GRU") || !strcmp(op, "RNN")) {
        if (b != (nn_attr_i(s->node, "layout", 0) ? 0 : 1)) goto mixed;
        for (int k = 1; k < s->n_in; k++)
            if (ax_in[k] >= 0 && k != 4 && k != 5 && k != 6) goto mixed;   /* weights, biases, peepholes */
    }
    return 0;
mixed:
    return nn_errf(err, errlen, NN_ERR_UNSUPPORTED,
                   "node '%s' (%s) after a Dropout combines or moves batch rows: MC passes cannot be stacked on the batch axis", s->node->name, op);
}

typedef struct {
    size_t size, off;
    int first, last;
    void **ptr;          /* where the address goes */
} buf_t;

static int cmp_buf(const void *a, const void *b) {
    const buf_t *x = *(buf_t *const *)a, *y = *(buf_t *const *)b;
    return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

/* Greedy first-fit by decreasing size among buffers whose lifetimes overlap. */
static int arena_layout(nn_plan_t *p, buf_t *bufs, int n, char *err, size_t errlen) {
    buf_t **ord = malloc(sizeof(buf_t *) * (size_t)(n + 1));
    if (!ord) return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) ord[i] = &bufs[i];
    qsort(ord, (size_t)n, sizeof *ord, cmp_buf);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ord[i]->size > p->max_bytes) break;
        buf_t *b = ord[i];
        size_t off = 0;
        for (int again = 1; again;) {
            again = 0;
            for (int j = 0; j < i; j++) {
                buf_t *o = ord[j];
                if (o->last < b->first || b->last < o->first) continue;
                if (off < o->off + o->size && o->off < off + b->size) {
                    off = o->off + o->size;
                    again = 1;
                }
            }
        }
        b->off = off;
        if (off + b->size > total) total = off + b->size;
    }
    free(ord);
    if (total > p->max_bytes) return nn_errf(err, errlen, NN_ERR_SHAPE, "arena of %zu bytes over the plan's limit of %zu", total, p->max_bytes);
    p->arena_bytes = total;
    p->arena = aligned_alloc(64, total ? (total + 63) / 64 * 64 : 64);
    if (!p->arena) return nn_errf(err, errlen, NN_ERR_NOMEM, "arena of %zu bytes: out of memory", total);
    for (int i = 0; i < n; i++) *bufs[i].ptr = p->arena + bufs[i].off;
    return 0;
}

static int is_dropout(const nn_node_t *n) { return strcmp(n->op, "Dropout") == 0; }

/* Infers (and folds) every node into half `h` at batch multiplier `mult`. Returns the kept
 * steps through *steps (appended). keep(node) decides which non-constant nodes get a step. */
static int infer_half(nn_plan_t *p, int h, int keep_reached, int keep_unreached, nn_step_t **steps, int *n_steps,
                      int *dummy_next, char *err, size_t errlen) {
    const nn_model_t *m = p->m;
    nn_val_t *V = p->vals + (size_t)h * p->nv;
    nn_exec_t fold = { NULL, 1, p->reference, 0, 0, 0 };
    for (int oi = 0; oi < m->n_nodes; oi++) {
        int ni = m->order[oi];
        const nn_node_t *n = &m->nodes[ni];
        if (n->op_id < 0)
            return nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "unsupported op '%s' (node '%s', #%d)", n->op, n->name, ni);
        nn_step_t s;
        memset(&s, 0, sizeof s);
        s.node = n;
        s.node_index = ni;
        s.op = &nn_ops[n->op_id];
        s.opset = m->opset;
        s.isa = p->isa;
        s.reference = p->reference;
        s.n_in = n->n_in;
        s.n_out = n->n_out;
        s.in = calloc((size_t)n->n_in + 1, sizeof(nn_val_t *));
        s.out = calloc((size_t)n->n_out + 1, sizeof(nn_val_t *));
        if (!s.in || !s.out) { step_clear(&s); return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory"); }
        int all_const = 1;
        for (int k = 0; k < n->n_in; k++) {
            s.in[k] = n->in[k] >= 0 ? &V[n->in[k]] : NULL;
            if (s.in[k] && !s.in[k]->is_const) all_const = 0;
        }
        for (int k = 0; k < n->n_out; k++)
            s.out[k] = n->out[k] >= 0 ? &V[n->out[k]] : &p->vals[(*dummy_next)++];
        char e2[300];
        int rc = 0;
        if (n->n_out < 1) rc = nn_errf(e2, sizeof e2, NN_ERR_INVALID, "no outputs");
        for (int k = 0; !rc && k < s.op->min_in; k++)
            if (k >= n->n_in || !s.in[k]) rc = nn_errf(e2, sizeof e2, NN_ERR_INVALID, "input %d missing (needs %d)", k, s.op->min_in);
        if (!rc) rc = s.op->infer(&s, e2, sizeof e2);
        if (rc) {
            step_clear(&s);
            return nn_errf(err, errlen, rc, "node '%s' (%s): %s", n->name, n->op, e2);
        }
        for (int k = 0; k < n->n_out; k++)
            if (s.out[k]->numel < 0 || s.out[k]->numel > (INT64_C(1) << 40) || val_bytes(s.out[k]) > p->max_bytes) {
                step_clear(&s);
                return nn_errf(err, errlen, NN_ERR_SHAPE, "node '%s' (%s): output %d has %lld elements, over the plan's limit of %zu bytes",
                               n->name, n->op, k, (long long)s.out[k]->numel, p->max_bytes);
            }
        if (s.scratch_bytes > p->max_bytes) {
            step_clear(&s);
            return nn_errf(err, errlen, NN_ERR_SHAPE, "node '%s' (%s): needs %zu bytes of scratch, over the plan's limit", n->name, n->op, s.scratch_bytes);
        }
        int outs_const = 1;
        for (int k = 0; k < n->n_out; k++) outs_const &= s.out[k]->is_const;
        if (outs_const) {   /* Shape, Constant: known from the infer step alone */
            step_clear(&s);
            continue;
        }
        if (all_const && !is_dropout(n)) {
            /* fold: run now, keep the outputs as plan constants */
            for (int k = 0; k < n->n_out; k++) {
                nn_val_t *o = s.out[k];
                o->owned = calloc(1, val_bytes(o) + 8);
                o->data = o->owned;
                o->is_const = 1;
                if (!o->owned) { step_clear(&s); return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory"); }
            }
            void *scratch = s.scratch_bytes ? calloc(1, s.scratch_bytes) : NULL;
            s.scratch = scratch;
            rc = s.scratch_bytes && !scratch ? NN_ERR_NOMEM : s.op->run(&fold, &s);
            free(scratch);
            if (rc) {
                step_clear(&s);
                return nn_errf(err, errlen, rc, "node '%s' (%s): cannot evaluate constant (bad indices or values)", n->name, n->op);
            }
            step_clear(&s);
            continue;
        }
        int r = p->reached ? p->reached[ni] : 0;
        if ((r && keep_reached) || (!r && keep_unreached)) {
            (*steps)[(*n_steps)++] = s;
        } else {
            step_clear(&s);
        }
    }
    return 0;
}

static int setup_inputs(nn_plan_t *p, int h, int64_t mult, const nn_plan_opts_t *o, char *err, size_t errlen) {
    const nn_model_t *m = p->m;
    nn_val_t *V = p->vals + (size_t)h * p->nv;
    for (int i = 0; i < m->n_values; i++) {
        const nn_value_t *mv = &m->values[i];
        if (mv->is_init) {
            nn_val_set_shape(&V[i], mv->init.dtype, mv->init.ndim, mv->init.dims);
            V[i].data = mv->init.data;
            V[i].is_const = 1;
        }
    }
    for (int i = 0; i < m->n_inputs; i++) {
        const nn_value_t *mv = &m->values[m->inputs[i]];
        nn_val_t *v = &V[m->inputs[i]];
        const nn_tensor_t *given = o->input_shapes ? o->input_shapes[i] : NULL;
        const nn_tensor_t *decl = &mv->info;
        if (given) {
            if (given->dtype != decl->dtype)
                return nn_errf(err, errlen, NN_ERR_SHAPE, "input '%s': %s given, model says %s", mv->name, nn_dtype_name(given->dtype), nn_dtype_name(decl->dtype));
            if (given->ndim != decl->ndim)
                return nn_errf(err, errlen, NN_ERR_SHAPE, "input '%s': rank %d given, model says %d", mv->name, given->ndim, decl->ndim);
            for (int d = 0; d < decl->ndim; d++)
                if (decl->dims[d] >= 0 && decl->dims[d] != given->dims[d] && !(d == 0 && !given->data))
                    return nn_errf(err, errlen, NN_ERR_SHAPE, "input '%s': dim %d is %lld, model says %lld", mv->name, d, (long long)given->dims[d], (long long)decl->dims[d]);
            nn_val_set_shape(v, given->dtype, given->ndim, given->dims);
            if (given->data) {
                if (h == 0) {
                    v->owned = malloc(val_bytes(v) + 8);
                    if (!v->owned) return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");
                    memcpy(v->owned, given->data, val_bytes(v));
                    v->data = v->owned;
                } else {
                    v->data = p->vals[m->inputs[i]].data;
                }
                v->is_const = 1;
                continue;
            }
        } else {
            nn_val_set_shape(v, decl->dtype, decl->ndim, decl->dims);
            if (decl->ndim > 0) {
                if (o->batch <= 0 && decl->dims[0] < 0)
                    return nn_errf(err, errlen, NN_ERR_SHAPE, "input '%s': batch dimension is symbolic and no batch size given", mv->name);
                if (o->batch > 0) v->dims[0] = o->batch;
            }
            for (int d = 1; d < decl->ndim; d++)
                if (decl->dims[d] < 0)
                    return nn_errf(err, errlen, NN_ERR_SHAPE, "input '%s': dimension %d is symbolic; give the input's shape", mv->name, d);
        }
        if (v->ndim > 0) v->dims[0] *= mult;
        else if (mult > 1)
            return nn_errf(err, errlen, NN_ERR_SHAPE, "input '%s' is a scalar: cannot stack MC passes on it", mv->name);
        v->numel = nn_numel(v->ndim, v->dims);
        if (v->numel < 0 || val_bytes(v) > p->max_bytes)
            return nn_errf(err, errlen, NN_ERR_SHAPE, "input '%s': too large for the plan's limit of %zu bytes", mv->name, p->max_bytes);
        if (h == 0) p->in_val[i] = m->inputs[i];
    }
    return 0;
}

/* A Transpose(perm 1, 0, 2) of a 3-D value whose only reader takes it as input 0 and can
 * read that input batch-first (nn_op_t.x_batch_first: LSTM, GRU, RNN): the reader gets the
 * Transpose's input and the Transpose step goes. Not when the transposed value is a graph
 * output. Steps [0, n_det) are the shared part of an MC plan (stats count them). */
static void fold_transposes(nn_plan_t *p, int n_det) {
    const nn_model_t *m = p->m;
    for (int si = 0; si < p->n_steps; si++) {
        nn_step_t *t = &p->steps[si];
        if (t->is_tile || strcmp(t->node->op, "Transpose") != 0 || t->in[0]->ndim != 3) continue;
        int np;
        const int64_t *perm = nn_attr_ints(t->node, "perm", &np);
        if (np != 3 || perm[0] != 1 || perm[1] != 0 || perm[2] != 2) continue;
        nn_val_t *v = t->out[0];
        int is_output = 0, reads = 0, reader = -1;
        for (int i = 0; i < m->n_outputs; i++) is_output |= v == &p->vals[m->outputs[i]] || v == p->out_stk[i];
        for (int sj = 0; sj < p->n_steps; sj++)
            for (int k = 0; k < p->steps[sj].n_in; k++)
                if (p->steps[sj].in[k] == v) reads++, reader = k == 0 ? sj : -1;
        if (is_output || reads != 1 || reader < 0) continue;
        nn_step_t *r = &p->steps[reader];
        if (r->is_tile || !r->op->x_batch_first || !r->op->x_batch_first(r)) continue;
        r->in[0] = t->in[0];
        step_clear(t);
        memmove(t, t + 1, sizeof *t * (size_t)(p->n_steps - si - 1));
        p->n_steps--;
        if (p->passes) {
            if (si < n_det) p->stats.shared_steps--, n_det--;
            else p->stats.stacked_steps--;
        }
        si--;
    }
}

int nn_plan_create(const nn_model_t *m, const nn_plan_opts_t *opts, nn_plan_t **out, char *err, size_t errlen) {
    *out = NULL;
    nn_plan_opts_t o = opts ? *opts : (nn_plan_opts_t){ 0 };
    if (o.mc_passes < 0 || o.mc_passes > 100000) return nn_errf(err, errlen, NN_ERR_ARG, "mc_passes %d out of range", o.mc_passes);
    if (o.isa < NN_ISA_BEST || o.isa > NN_ISA_AVX512) return nn_errf(err, errlen, NN_ERR_ARG, "isa %d out of range", o.isa);
    nn_plan_t *p = calloc(1, sizeof *p);
    if (!p) return nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");
    int rc = 0;
    p->m = m;
    p->passes = o.mc_passes;
    p->reference = o.reference;
    p->isa = nn_isa_best();
    if (o.isa > 0 && o.isa < p->isa) p->isa = o.isa;
    p->max_bytes = o.max_bytes ? o.max_bytes : (size_t)4 << 30;
    int threads = o.threads > 0 ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    if (o.reference) threads = 1;
    p->threads = threads;
    p->nv = m->n_values;
    int halves = p->passes ? 2 : 1;
    int n_out_slots = 0;
    for (int i = 0; i < m->n_nodes; i++) n_out_slots += m->nodes[i].n_out;
    p->n_vals = halves * (p->nv + n_out_slots);
    p->vals = calloc((size_t)p->n_vals + 1, sizeof *p->vals);
    p->steps = calloc((size_t)(halves * m->n_nodes + m->n_values + 1), sizeof *p->steps);
    p->in_val = calloc((size_t)m->n_inputs + 1, sizeof(int));
    p->out_det = calloc((size_t)m->n_outputs + 1, sizeof(nn_val_t));
    p->out_stk = calloc((size_t)m->n_outputs + 1, sizeof(nn_val_t *));
    p->out_axis = calloc((size_t)m->n_outputs + 1, sizeof *p->out_axis);
    p->reached = calloc((size_t)m->n_nodes + 1, 1);
    if (!p->vals || !p->steps || !p->in_val || !p->out_det || !p->out_stk || !p->out_axis || !p->reached) {
        rc = nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < m->n_inputs; i++) p->in_val[i] = -1;
    int dummy_next = halves * p->nv;

    /* which nodes a Dropout output reaches (Dropout included) */
    if (p->passes) {
        char *vr = calloc((size_t)m->n_values + 1, 1);
        if (!vr) { rc = nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory"); goto fail; }
        for (int oi = 0; oi < m->n_nodes; oi++) {
            const nn_node_t *n = &m->nodes[m->order[oi]];
            int r = is_dropout(n);
            for (int k = 0; k < n->n_in; k++) r |= n->in[k] >= 0 && vr[n->in[k]];
            p->reached[m->order[oi]] = (char)r;
            for (int k = 0; k < n->n_out; k++)
                if (n->out[k] >= 0) vr[n->out[k]] = (char)r;
        }
        free(vr);
    }

    int n_det_steps = 0;
    rc = setup_inputs(p, 0, 1, &o, err, errlen);
    if (!rc) rc = infer_half(p, 0, !p->passes, 1, &p->steps, &p->n_steps, &dummy_next, err, errlen);
    if (rc) goto fail;
    n_det_steps = p->n_steps;
    p->stats.shared_steps = p->passes ? n_det_steps : 0;
    for (int i = 0; i < m->n_outputs; i++) p->out_det[i] = p->vals[m->outputs[i]];

    if (p->passes) {
        rc = setup_inputs(p, 1, p->passes, &o, err, errlen);
        if (rc) goto fail;
        nn_step_t *tmp = calloc((size_t)m->n_nodes + 1, sizeof *tmp);
        int n_tmp = 0;
        if (!tmp) { rc = nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory"); goto fail; }
        rc = infer_half(p, 1, 1, 0, &tmp, &n_tmp, &dummy_next, err, errlen);
        /* tile steps for det values read by the stacked part */
        for (int si = 0; !rc && si < n_tmp; si++) {
            nn_step_t *s = &tmp[si];
            for (int k = 0; k < s->n_in; k++) {
                nn_val_t *sv = s->in[k];
                if (!sv || sv->is_const) continue;
                int vid = (int)(sv - (p->vals + p->nv));
                const nn_value_t *mv = &m->values[vid];
                if (mv->producer >= 0 && p->reached[mv->producer]) continue;
                int done = 0;
                for (int t = n_det_steps; t < p->n_steps; t++) done |= p->steps[t].out[0] == sv;
                if (done) continue;
                nn_step_t *t = &p->steps[p->n_steps];
                t->is_tile = 1;
                t->n_in = t->n_out = 1;
                t->in = calloc(2, sizeof(nn_val_t *));
                t->out = calloc(2, sizeof(nn_val_t *));
                if (!t->in || !t->out) { rc = nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory"); break; }
                p->n_steps++;
                t->in[0] = &p->vals[vid];
                t->out[0] = sv;
                t->mc_passes = p->passes;
                int64_t ax[3];
                if (batch_axis(t->in[0], sv, p->passes, ax) < 0) {
                    rc = nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "value '%s' (read after a Dropout) has no batch axis to stack MC passes on", mv->name);
                    break;
                }
                t->mc_outer = ax[0], t->mc_bax = ax[1], t->mc_inner = ax[2];
            }
        }
        /* dropout layout in the stacked half */
        for (int si = 0; !rc && si < n_tmp; si++) {
            nn_step_t *s = &tmp[si];
            s->mc_passes = p->passes;
            rc = check_stacked(p, s, err, errlen);
            if (rc) break;
            if (!is_dropout(s->node)) continue;
            int vid = (int)(s->in[0] - (p->vals + p->nv));
            int64_t ax[3];
            if (vid < 0 || vid >= p->nv || batch_axis(&p->vals[vid], s->in[0], p->passes, ax) < 0) {
                rc = nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "Dropout node '%s': no batch axis to stack MC passes on", s->node->name);
                break;
            }
            s->mc_outer = ax[0], s->mc_bax = ax[1], s->mc_inner = ax[2];
        }
        p->stats.tiles = p->n_steps - n_det_steps;
        p->stats.stacked_steps = rc ? 0 : n_tmp;
        for (int si = 0; si < n_tmp; si++) {
            if (rc) step_clear(&tmp[si]);
            else p->steps[p->n_steps++] = tmp[si];
        }
        free(tmp);
        if (rc) goto fail;
        for (int i = 0; i < m->n_outputs; i++) {
            const nn_value_t *mv = &m->values[m->outputs[i]];
            if (p->out_det[i].dtype != NN_FLOAT) {
                rc = nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "output '%s' is %s: MC statistics need float outputs", mv->name, nn_dtype_name(p->out_det[i].dtype));
                goto fail;
            }
            if (mv->producer < 0 || !p->reached[mv->producer]) continue;
            p->out_stk[i] = &p->vals[p->nv + m->outputs[i]];
            if (batch_axis(&p->out_det[i], p->out_stk[i], p->passes, p->out_axis[i]) < 0) {
                rc = nn_errf(err, errlen, NN_ERR_UNSUPPORTED, "output '%s' has no batch axis to stack MC passes on", mv->name);
                goto fail;
            }
        }
        p->mc_tmp = malloc(sizeof(float) * (size_t)p->passes);
        if (!p->mc_tmp) { rc = nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory"); goto fail; }
    }

    fold_transposes(p, n_det_steps);

    /* liveness: first writer step, last reader step; inputs from the start, outputs to the end */
    for (int i = 0; i < p->n_vals; i++) p->vals[i].first = p->vals[i].last = -2;
    for (int i = 0; i < m->n_inputs; i++)
        if (p->in_val[i] >= 0) {
            nn_val_t *v = &p->vals[p->in_val[i]];
            int is_output = 0;
            for (int k = 0; k < m->n_outputs; k++) is_output |= m->outputs[k] == p->in_val[i];
            v->borrowed = !is_output;
            v->in_arena = is_output;
            v->first = -1;
            v->last = -1;
        }
    for (int si = 0; si < p->n_steps; si++) {
        nn_step_t *s = &p->steps[si];
        for (int k = 0; k < s->n_out; k++) {
            nn_val_t *v = s->out[k];
            if (!v->in_arena) { v->in_arena = 1; v->first = si; }
            if (v->last < si) v->last = si;
        }
        for (int k = 0; k < s->n_in; k++) {
            nn_val_t *v = s->in[k];
            if (v && !v->is_const && v->last < si) v->last = si;
        }
    }
    for (int i = 0; i < m->n_outputs; i++) {
        nn_val_t *v = p->out_stk[i] ? p->out_stk[i] : &p->vals[m->outputs[i]];
        if (v->in_arena) v->last = p->n_steps;
    }
    /* outputs nothing reads (an LSTM's Y when only Y_h is used): their kernels may skip them */
    for (int si = 0; si < p->n_steps; si++)
        for (int k = 0; k < p->steps[si].n_out; k++) {
            nn_val_t *v = p->steps[si].out[k];
            v->unread = v->first == si && v->last == si;
        }
    {
        buf_t *bufs = calloc((size_t)(p->n_vals + p->n_steps + 1), sizeof *bufs);
        int nb = 0;
        if (!bufs) { rc = nn_errf(err, errlen, NN_ERR_NOMEM, "out of memory"); goto fail; }
        for (int i = 0; i < p->n_vals; i++) {
            nn_val_t *v = &p->vals[i];
            if (!v->in_arena || v->is_const) continue;
            v->bytes = val_bytes(v);
            bufs[nb++] = (buf_t){ (v->bytes + 63) / 64 * 64 + 64, 0, v->first, v->last, &v->data };
        }
        for (int si = 0; si < p->n_steps; si++) {
            nn_step_t *s = &p->steps[si];
            if (s->scratch_bytes) bufs[nb++] = (buf_t){ (s->scratch_bytes + 63) / 64 * 64, 0, si, si, &s->scratch };
        }
        for (int i = 0; i < nb; i++) p->stats.value_bytes += bufs[i].size;
        rc = arena_layout(p, bufs, nb, err, errlen);
        free(bufs);
        if (rc) goto fail;
    }
    for (int i = 0; i < m->n_outputs; i++) p->out_det[i].data = p->vals[m->outputs[i]].data;

    blas_single_threaded();
    if (p->threads > 1) {
        p->pool = nn_pool_create(p->threads);
        if (!p->pool) { rc = nn_errf(err, errlen, NN_ERR_NOMEM, "cannot start %d threads", p->threads); goto fail; }
    }
    *out = p;
    return 0;
fail:
    nn_plan_free(p);
    return rc;
}

void nn_plan_output_info(const nn_plan_t *p, int i, nn_tensor_t *info) {
    const nn_val_t *v = &p->out_det[i];
    memset(info, 0, sizeof *info);
    info->dtype = v->dtype;
    info->ndim = v->ndim;
    memcpy(info->dims, v->dims, sizeof(int64_t) * (size_t)v->ndim);
}

void nn_plan_input_info(const nn_plan_t *p, int i, nn_tensor_t *info) {
    const nn_val_t *v = &p->vals[p->m->inputs[i]];
    memset(info, 0, sizeof *info);
    info->dtype = v->dtype;
    info->ndim = v->ndim;
    memcpy(info->dims, v->dims, sizeof(int64_t) * (size_t)v->ndim);
}

size_t nn_plan_arena_bytes(const nn_plan_t *p) { return p->arena_bytes; }

void nn_plan_stats(const nn_plan_t *p, nn_plan_stats_t *st) {
    *st = p->stats;
    st->steps = p->n_steps;
    st->arena_bytes = p->arena_bytes;
}

/* in: [outer, bax, inner] -> out: [outer, passes, bax, inner] */
static void run_tile(const nn_step_t *s) {
    size_t es = nn_dtype_size(s->in[0]->dtype);
    size_t blk = (size_t)(s->mc_bax * s->mc_inner) * es;
    const uint8_t *src = s->in[0]->data;
    uint8_t *dst = s->out[0]->data;
    for (int64_t o = 0; o < s->mc_outer; o++)
        for (int q = 0; q < s->mc_passes; q++) memcpy(dst + ((size_t)o * (size_t)s->mc_passes + (size_t)q) * blk, src + (size_t)o * blk, blk);
}

static int execute(nn_plan_t *p, nn_exec_t *ex, const void *const *inputs, char *err, size_t errlen) {
    const nn_model_t *m = p->m;
    for (int i = 0; i < m->n_inputs; i++) {
        if (p->in_val[i] < 0) continue;
        nn_val_t *v = &p->vals[p->in_val[i]];
        if (!inputs || !inputs[i]) return nn_errf(err, errlen, NN_ERR_ARG, "input '%s' not given", m->values[m->inputs[i]].name);
        if (v->borrowed) v->data = (void *)inputs[i];
        else memcpy(v->data, inputs[i], v->bytes);
    }
    for (int si = 0; si < p->n_steps; si++) {
        nn_step_t *s = &p->steps[si];
        if (s->is_tile) { run_tile(s); continue; }
        int rc = s->op->run(ex, s);
        if (rc) return nn_errf(err, errlen, rc, "node '%s' (%s) failed at run time (index out of range?)", s->node->name, s->node->op);
    }
    return 0;
}

static int run_plain(nn_plan_t *p, nn_exec_t *ex, const void *const *inputs, void *const *outputs, char *err, size_t errlen) {
    if (p->passes) return nn_errf(err, errlen, NN_ERR_ARG, "this plan is for nn_run_mc");
    int rc = execute(p, ex, inputs, err, errlen);
    if (rc) return rc;
    for (int i = 0; i < p->m->n_outputs; i++) {
        if (!outputs || !outputs[i]) return nn_errf(err, errlen, NN_ERR_ARG, "output buffer %d missing", i);
        memcpy(outputs[i], p->out_det[i].data, val_bytes(&p->out_det[i]));
    }
    return 0;
}

int nn_run(nn_plan_t *p, const void *const *inputs, void *const *outputs, char *err, size_t errlen) {
    nn_exec_t ex = { p->pool, p->threads, p->reference, 0, 0, 0 };
    return run_plain(p, &ex, inputs, outputs, err, errlen);
}

int nn_run_pass(nn_plan_t *p, uint64_t seed, int pass, const void *const *inputs, void *const *outputs, char *err, size_t errlen) {
    nn_exec_t ex = { p->pool, p->threads, p->reference, 1, seed, pass };
    return run_plain(p, &ex, inputs, outputs, err, errlen);
}

/* In place, no allocation (it runs per output element in nn_run_mc): insertion sort for the
 * usual few dozen passes, heapsort beyond. NaN compares as neither smaller nor larger. */
static void sift_down(float *x, int root, int n) {
    for (int child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && x[child] < x[child + 1]) child++;
        if (!(x[root] < x[child])) return;
        float t = x[root];
        x[root] = x[child];
        x[child] = t;
    }
}

void nn_sort_floats(float *x, int n) {
    if (n <= 64) {
        for (int i = 1; i < n; i++) {
            float v = x[i];
            int j = i;
            for (; j > 0 && v < x[j - 1]; j--) x[j] = x[j - 1];
            x[j] = v;
        }
        return;
    }
    for (int i = n / 2 - 1; i >= 0; i--) sift_down(x, i, n);
    for (int end = n - 1; end > 0; end--) {
        float t = x[0];
        x[0] = x[end];
        x[end] = t;
        sift_down(x, 0, end);
    }
}

float nn_quantile_sorted(const float *x, int n, double q) {
    if (n <= 0) return 0.0f;
    double h = (n - 1) * q;
    int f = (int)h;
    if (f >= n - 1) return x[n - 1];
    return (float)(x[f] + (h - f) * ((double)x[f + 1] - x[f]));
}

int nn_run_mc(nn_plan_t *p, uint64_t seed, const void *const *inputs, nn_mc_stats_t *stats, char *err, size_t errlen) {
    if (!p->passes) return nn_errf(err, errlen, NN_ERR_ARG, "plan was not made for MC passes (mc_passes = 0)");
    nn_exec_t ex = { p->pool, p->threads, p->reference, 2, seed, 0 };
    int rc = execute(p, &ex, inputs, err, errlen);
    if (rc) return rc;
    int P = p->passes;
    for (int i = 0; i < p->m->n_outputs; i++) {
        nn_mc_stats_t *st = &stats[i];
        if (!st->mean || !st->std || !st->p10 || !st->p50 || !st->p90)
            return nn_errf(err, errlen, NN_ERR_ARG, "statistics buffers of output %d missing", i);
        const nn_val_t *d = &p->out_det[i];
        if (!p->out_stk[i]) {
            const float *x = d->data;
            for (int64_t e = 0; e < d->numel; e++) {
                st->mean[e] = st->p10[e] = st->p50[e] = st->p90[e] = x[e];
                st->std[e] = 0;
            }
            continue;
        }
        const float *x = p->out_stk[i]->data;
        int64_t outer = p->out_axis[i][0], bax = p->out_axis[i][1], inner = p->out_axis[i][2];
        for (int64_t o = 0; o < outer; o++)
            for (int64_t b = 0; b < bax; b++)
                for (int64_t in = 0; in < inner; in++) {
                    int64_t e = (o * bax + b) * inner + in;
                    double sum = 0, sq = 0;
                    for (int q = 0; q < P; q++) {
                        float v = x[((o * P + q) * bax + b) * inner + in];
                        p->mc_tmp[q] = v;
                        sum += v;
                    }
                    double mean = sum / P;
                    for (int q = 0; q < P; q++) sq += (p->mc_tmp[q] - mean) * (p->mc_tmp[q] - mean);
                    nn_sort_floats(p->mc_tmp, P);
                    st->mean[e] = (float)mean;
                    st->std[e] = (float)sqrt(sq / P);
                    st->p10[e] = nn_quantile_sorted(p->mc_tmp, P, 0.10);
                    st->p50[e] = nn_quantile_sorted(p->mc_tmp, P, 0.50);
                    st->p90[e] = nn_quantile_sorted(p->mc_tmp, P, 0.90);
                }
    }
    return 0;
}
