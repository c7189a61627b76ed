/* Operators, part 3: LSTM, GRU and RNN with ONNX semantics (directions, sequence_lens,
 * initial states, LSTM peepholes, clip, activations Sigmoid/Tanh/Relu, layout 0 and 1).
 *
 * Shapes (layout 0): X [T, B, I], W [D, G*H, I], R [D, G*H, H], B [D, 2*G*H],
 * Y [T, D, B, H], Y_h and Y_c [D, B, H]; G = 4 (LSTM: i, o, f, c), 3 (GRU: z, r, h), 1 (RNN).
 *
 * Two phases, both split across the pool: the input projection of every time step at once
 * (Gx = X W^T + biases, rows split), then the recurrence with the batch rows split (rows
 * are independent, so each thread runs the whole sequence for its rows). W^T and R^T are
 * packed at plan time when the weights are constant. */
#include "nn/nn_ops.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { K_LSTM, K_GRU, K_RNN };
enum { ACT_SIGMOID, ACT_TANH, ACT_RELU };

typedef struct {
    int kind, G, D, dir, layout, lbr, packed;
    int xbf;         /* X is [B, T, I]: layout 1, or layout 0 with the Transpose before it
                        folded away by the planner (nn_rnn_x_batch_first) */
    int64_t T, B, I, H, GH;
    int act[2][3];
    float clip;
    int has_b, has_seq, has_h0, has_c0, has_p;
    size_t off_gx, off_h, off_c, off_g, off_m, off_tmp, off_bias, off_rbh; /* scratch, floats */
    float *wt, *rt;  /* packed W^T [D, I, GH], R^T [D, H, GH] (inside the same block) */
    float *rp, *wp;  /* R^T and W^T in 16-column panels per direction, when kern */
    int kern;        /* the step's products through k->mm */
    const nn_kern_t *k; /* the plan's kernel set (NULL: nn_gemm and plain loops) */
    int isa;         /* the plan's NN_ISA_* (the vector activations follow it) */
    /* fused LSTM (rnn_fused): [W^T; R^T] stacked along K (I + H) in 16-column panels per
     * direction, so that one product of the row [x_t | h] gives every gate; NULL: not fused */
    float *xp;
    int run_fused;   /* rnn_run takes the fused path: xp, and the plan is not the reference one */
    size_t off_a;    /* scratch: the rows [x_t | h], B x (I + H) */
    size_t off_h2;   /* scratch: the new h of a step with k->lstm_rows (the old one in off_h) */
} rnn_t;

static inline float act(int a, float x) {
    switch (a) {
    case ACT_SIGMOID: return nn_sigmoidf(x);
    case ACT_TANH: return tanhf(x);
    default: return x > 0 ? x : 0;
    }
}

static int rnn_infer(nn_step_t *s, int kind, char *err, size_t errlen) {
    static const int gates[] = { 4, 3, 1 };
    int G = gates[kind];
    if (s->n_in < 3 || !s->in[0] || !s->in[1] || !s->in[2]) FAIL(NN_ERR_INVALID, "needs X, W, R");
    const nn_val_t *X = s->in[0], *W = s->in[1], *R = s->in[2];
#define OPT(k) (s->n_in > (k) ? s->in[k] : NULL)
    const nn_val_t *Bv = OPT(3), *seq = OPT(4), *h0 = OPT(5), *c0 = kind == K_LSTM ? OPT(6) : NULL, *P = kind == K_LSTM ? OPT(7) : NULL;
    if (X->dtype != NN_FLOAT || W->dtype != NN_FLOAT || R->dtype != NN_FLOAT) FAIL(NN_ERR_UNSUPPORTED, "float32 only");
    if (X->ndim != 3 || W->ndim != 3 || R->ndim != 3) FAIL(NN_ERR_SHAPE, "X, W, R must be 3-D");
    char dir[32];
    nn_attr_s(s->node, "direction", dir, sizeof dir, "forward");
    int d = strcmp(dir, "forward") == 0 ? 0 : strcmp(dir, "reverse") == 0 ? 1 : strcmp(dir, "bidirectional") == 0 ? 2 : -1;
    if (d < 0) FAIL(NN_ERR_INVALID, "direction '%s'", dir);
    int D = d == 2 ? 2 : 1;
    int layout = (int)nn_attr_i(s->node, "layout", 0);
    if (layout != 0 && layout != 1) FAIL(NN_ERR_INVALID, "layout %d", layout);
    int64_t T = layout ? X->dims[1] : X->dims[0], B = layout ? X->dims[0] : X->dims[1], I = X->dims[2];
    int64_t H = nn_attr_i(s->node, "hidden_size", R->dims[2]);
    int64_t GH = G * H;
    if (H <= 0) FAIL(NN_ERR_INVALID, "hidden_size %lld", (long long)H);
    if (W->dims[0] != D || W->dims[1] != GH || W->dims[2] != I)
        FAIL(NN_ERR_SHAPE, "W is [%lld, %lld, %lld], expected [%d, %lld, %lld]", (long long)W->dims[0], (long long)W->dims[1], (long long)W->dims[2], D, (long long)GH, (long long)I);
    if (R->dims[0] != D || R->dims[1] != GH || R->dims[2] != H)
        FAIL(NN_ERR_SHAPE, "R is [%lld, %lld, %lld], expected [%d, %lld, %lld]", (long long)R->dims[0], (long long)R->dims[1], (long long)R->dims[2], D, (long long)GH, (long long)H);
    if (Bv && (Bv->dtype != NN_FLOAT || Bv->numel != D * 2 * GH)) FAIL(NN_ERR_SHAPE, "B must be float [%d, %lld]", D, (long long)(2 * GH));
    if (seq && ((seq->dtype != NN_INT32 && seq->dtype != NN_INT64) || seq->numel != B)) FAIL(NN_ERR_SHAPE, "sequence_lens must be int32 [%lld]", (long long)B);
    if (h0 && (h0->dtype != NN_FLOAT || h0->numel != D * B * H)) FAIL(NN_ERR_SHAPE, "initial_h must be float [%d, %lld, %lld]", D, (long long)B, (long long)H);
    if (c0 && (c0->dtype != NN_FLOAT || c0->numel != D * B * H)) FAIL(NN_ERR_SHAPE, "initial_c must be float [%d, %lld, %lld]", D, (long long)B, (long long)H);
    if (P && (P->dtype != NN_FLOAT || P->numel != D * 3 * H)) FAIL(NN_ERR_SHAPE, "P must be float [%d, %lld]", D, (long long)(3 * H));
    if (nn_attr(s->node, "activation_alpha") || nn_attr(s->node, "activation_beta")) FAIL(NN_ERR_UNSUPPORTED, "activation_alpha/beta unsupported");
    if (nn_attr_i(s->node, "input_forget", 0)) FAIL(NN_ERR_UNSUPPORTED, "input_forget=1 unsupported");

    int nact = kind == K_LSTM ? 3 : kind == K_GRU ? 2 : 1;
    static const int defaults[3][3] = { { ACT_SIGMOID, ACT_TANH, ACT_TANH }, { ACT_SIGMOID, ACT_TANH, 0 }, { ACT_TANH, 0, 0 } };
    int acts[2][3];
    const Onnx__AttributeProto *aa = nn_attr(s->node, "activations");
    if (aa && aa->n_strings && (int)aa->n_strings != nact * D) FAIL(NN_ERR_INVALID, "%zu activations, expected %d", aa->n_strings, nact * D);
    for (int di = 0; di < 2; di++)
        for (int k = 0; k < 3; k++) {
            acts[di][k] = defaults[kind][k];
            if (!aa || !aa->n_strings || k >= nact || di >= D) continue;
            const ProtobufCBinaryData *sv = &aa->strings[di * nact + k];
            char name[32];
            size_t l = sv->len < sizeof name - 1 ? sv->len : sizeof name - 1;
            memcpy(name, sv->data, l);
            name[l] = 0;
            if (strcasecmp(name, "Sigmoid") == 0) acts[di][k] = ACT_SIGMOID;
            else if (strcasecmp(name, "Tanh") == 0) acts[di][k] = ACT_TANH;
            else if (strcasecmp(name, "Relu") == 0) acts[di][k] = ACT_RELU;
            else FAIL(NN_ERR_UNSUPPORTED, "activation '%s' unsupported", name);
        }

    int packed = W->is_const && R->is_const;
    const nn_kern_t *kset = nn_kern_for(s->isa);
    int kern = packed && GH % 16 == 0 && (kind != K_GRU || H % 16 == 0) && kset;
    /* the fused LSTM step: default activations, no clip, peepholes or sequence lengths */
    int fused = kern && kind == K_LSTM && H % 8 == 0 && !seq && !P && nn_attr_f(s->node, "clip", 0.0f) == 0;
    for (int di = 0; di < D && fused; di++)
        fused = acts[di][0] == ACT_SIGMOID && acts[di][1] == ACT_TANH && acts[di][2] == ACT_TANH;
    size_t extra = packed ? (size_t)(D * I * GH + D * H * GH) : 0;
    if (kern) extra += (size_t)(D * H * GH + D * I * GH);
    if (fused) extra += (size_t)(D * (I + H) * GH);
    rnn_t *p = calloc(1, sizeof *p + sizeof(float) * (extra + 1));
    if (!p) FAIL(NN_ERR_NOMEM, "out of memory");
    s->packed = p;
    p->kind = kind, p->G = G, p->D = D, p->dir = d, p->layout = layout, p->packed = packed, p->xbf = layout;
    p->lbr = kind == K_GRU ? (int)nn_attr_i(s->node, "linear_before_reset", 0) : 0;
    p->T = T, p->B = B, p->I = I, p->H = H, p->GH = GH;
    memcpy(p->act, acts, sizeof acts);
    p->clip = nn_attr_f(s->node, "clip", 0.0f);
    p->has_b = Bv != NULL, p->has_seq = seq != NULL, p->has_h0 = h0 != NULL, p->has_c0 = c0 != NULL, p->has_p = P != NULL;
    p->kern = kern;
    p->k = kern ? kset : NULL;
    p->isa = s->isa;
    if (packed) {
        p->wt = (float *)(p + 1);
        p->rt = p->wt + D * I * GH;
        if (kern) {
            p->rp = p->rt + D * H * GH;
            p->wp = p->rp + D * H * GH;
            for (int di = 0; di < D; di++) {
                nn_pack_b(p->rp + di * H * GH, (const float *)R->data + di * GH * H, H, 1, H, GH);
                nn_pack_b(p->wp + di * I * GH, (const float *)W->data + di * GH * I, I, 1, I, GH);
            }
        }
        if (fused) {
            /* panel q of direction di: rows 0..I-1 are W_di^T's, rows I..I+H-1 R_di^T's */
            p->xp = p->wp + D * I * GH;
            const int64_t K = I + H;
            for (int di = 0; di < D; di++)
                for (int64_t q = 0; q < GH / 16; q++) {
                    float *dst = p->xp + (di * (GH / 16) + q) * K * 16;
                    memcpy(dst, p->wp + di * I * GH + q * I * 16, sizeof(float) * (size_t)(I * 16));
                    memcpy(dst + I * 16, p->rp + di * H * GH + q * H * 16, sizeof(float) * (size_t)(H * 16));
                }
        }
        const float *w = W->data, *r = R->data;
        for (int di = 0; di < D; di++) {
            for (int64_t g = 0; g < GH; g++)
                for (int64_t i = 0; i < I; i++) p->wt[(di * I + i) * GH + g] = w[(di * GH + g) * I + i];
            for (int64_t g = 0; g < GH; g++)
                for (int64_t i = 0; i < H; i++) p->rt[(di * H + i) * GH + g] = r[(di * GH + g) * H + i];
        }
    }
    size_t off = 0;
    /* the input projection of every step (T x B x 4H per direction) only for the unfused
     * path: the fused LSTM computes it block by block (32 MiB at batch 1024, T 32, H 64) */
    p->run_fused = p->xp && !s->reference;
    p->off_gx = off, off += p->run_fused ? 0 : (size_t)(D * T * B * GH);
    p->off_h = off, off += (size_t)(D * B * H);
    p->off_c = off, off += (size_t)(D * B * H);
    p->off_g = off, off += (size_t)(B * GH);
    p->off_m = off, off += (size_t)(B * GH);
    p->off_tmp = off, off += (size_t)(B * H);
    p->off_bias = off, off += (size_t)(D * GH);
    p->off_rbh = off, off += (size_t)(D * H);
    p->off_a = off, off += p->xp ? (size_t)(B * (I + H)) : 0;
    p->off_h2 = off, off += p->xp ? (size_t)(B * H) : 0;
    s->scratch_bytes = off * sizeof(float);

    int64_t dy[4], dh[3];
    if (layout) { dy[0] = B, dy[1] = T, dy[2] = D, dy[3] = H; dh[0] = B, dh[1] = D, dh[2] = H; }
    else { dy[0] = T, dy[1] = D, dy[2] = B, dy[3] = H; dh[0] = D, dh[1] = B, dh[2] = H; }
    if (s->n_out > 0) nn_val_set_shape(s->out[0], NN_FLOAT, 4, dy);
    for (int k = 1; k < s->n_out && k < (kind == K_LSTM ? 3 : 2); k++) nn_val_set_shape(s->out[k], NN_FLOAT, 3, dh);
    if (s->n_out > (kind == K_LSTM ? 3 : 2)) FAIL(NN_ERR_INVALID, "too many outputs");
    return 0;
#undef OPT
}

typedef struct {
    nn_exec_t *ex;
    nn_step_t *s;
    rnn_t *p;
    float *sc;
    int32_t lens_ok;
} rjob_t;

/* row of (t, b) in X and Gx; offsets of Y and of the [D, B, H] states */
static inline int64_t xrow(const rnn_t *p, int64_t t, int64_t b) { return p->xbf ? b * p->T + t : t * p->B + b; }
static inline int64_t yoff(const rnn_t *p, int64_t t, int d, int64_t b) {
    return (p->layout ? (b * p->T + t) * p->D + d : (t * p->D + d) * p->B + b) * p->H;
}
static inline int64_t hoff(const rnn_t *p, int d, int64_t b) { return (p->layout ? b * p->D + d : d * p->B + b) * p->H; }

/* operand op(W_d) restricted to columns from col: (pointer, transposed, leading dim) */
static const float *wop(const rnn_t *p, const nn_step_t *s, int d, int64_t col, int *trans, int64_t *ld) {
    if (p->packed) { *trans = 0; *ld = p->GH; return p->wt + d * p->I * p->GH + col; }
    *trans = 1;
    *ld = p->I;
    return (const float *)s->in[1]->data + (d * p->GH + col) * p->I;
}
static const float *rop(const rnn_t *p, const nn_step_t *s, int d, int64_t col, int *trans, int64_t *ld) {
    if (p->packed) { *trans = 0; *ld = p->GH; return p->rt + d * p->H * p->GH + col; }
    *trans = 1;
    *ld = p->H;
    return (const float *)s->in[2]->data + (d * p->GH + col) * p->H;
}

/* Phase 1: Gx[d] = X W_d^T + bias_d for all T*B rows (rows split across threads). */
static void rnn_project(void *arg, int ith, int nth) {
    rjob_t *j = arg;
    const rnn_t *p = j->p;
    int64_t rows = p->T * p->B, r0, r1;
    nn_split(rows, ith, nth, &r0, &r1);
    if (r1 <= r0) return;
    const float *X = j->s->in[0]->data;
    for (int d = 0; d < p->D; d++) {
        int tr;
        int64_t ld;
        float *gx = j->sc + p->off_gx + d * rows * p->GH;
        const float *bias = j->sc + p->off_bias + d * p->GH;
        if (p->kern && !j->ex->reference) {
            p->k->mm(p->wp + d * p->I * p->GH, p->I, 0, p->GH, r1 - r0, X + r0 * p->I, p->I, gx + r0 * p->GH, p->GH, 0, bias);
            continue;
        }
        const float *w = wop(p, j->s, d, 0, &tr, &ld);
        nn_gemm(j->ex, 0, tr, r1 - r0, p->GH, p->I, 1.0f, X + r0 * p->I, p->I, w, ld, 0.0f, gx + r0 * p->GH, p->GH);
        for (int64_t r = r0; r < r1; r++)
            for (int64_t g = 0; g < p->GH; g++) gx[r * p->GH + g] += bias[g];
    }
}

/* C[nb, ncols] (+)= h[nb, H] R_d^T[:, col0 : col0 + ncols] */
static void rmul(const rjob_t *j, int d, int64_t col0, int64_t ncols, int64_t nb, const float *h, float *C, int64_t ldc, int acc) {
    const rnn_t *p = j->p;
    if (p->kern && !j->ex->reference) {
        p->k->mm(p->rp + d * p->H * p->GH, p->H, col0, ncols, nb, h, p->H, C, ldc, acc, NULL);
        return;
    }
    int tr;
    int64_t ld;
    const float *r = rop(p, j->s, d, col0, &tr, &ld);
    nn_gemm(j->ex, 0, tr, nb, ncols, p->H, 1.0f, h, p->H, r, ld, acc ? 1.0f : 0.0f, C, ldc);
}

static inline float clipf(float x, float c) { return c > 0 ? (x < -c ? -c : x > c ? c : x) : x; }

/* Phase 2: the recurrence for batch rows [b0, b1), all directions and steps. */
static void rnn_recur(void *arg, int ith, int nth) {
    rjob_t *j = arg;
    const rnn_t *p = j->p;
    nn_step_t *s = j->s;
    int64_t b0, b1, H = p->H, GH = p->GH, T = p->T;
    nn_split(p->B, ith, nth, &b0, &b1);
    if (b1 <= b0) return;
    int64_t nb = b1 - b0;
    const nn_val_t *seq = p->has_seq ? s->in[4] : NULL;
    const float *h0 = p->has_h0 ? s->in[5]->data : NULL;
    const float *c0 = p->has_c0 ? s->in[6]->data : NULL;
    const float *Pp = p->has_p ? s->in[7]->data : NULL;
    float *Y = s->n_out > 0 && !s->out[0]->unread ? s->out[0]->data : NULL;
    float *G = j->sc + p->off_g, *M = j->sc + p->off_m, *tmp = j->sc + p->off_tmp;
    float clip = p->clip;
    for (int d = 0; d < p->D; d++) {
        int rev = p->dir == 1 || (p->dir == 2 && d == 1);
        float *hs = j->sc + p->off_h + d * p->B * H, *cs = j->sc + p->off_c + d * p->B * H;
        float *gx = j->sc + p->off_gx + d * T * p->B * GH;
        const float *rbh = j->sc + p->off_rbh + d * H;
        const float *pi = Pp ? Pp + d * 3 * H : NULL, *po = pi ? pi + H : NULL, *pf = pi ? pi + 2 * H : NULL;
        const int *a = p->act[d];
        /* the vectorized activations when they are the defaults (not for the reference run) */
        int fast = !j->ex->reference && clip == 0 && !Pp &&
                   (p->kind == K_LSTM ? a[0] == ACT_SIGMOID && a[1] == ACT_TANH && a[2] == ACT_TANH
                    : p->kind == K_GRU ? a[0] == ACT_SIGMOID && a[1] == ACT_TANH : a[0] == ACT_TANH);
        for (int64_t b = b0; b < b1; b++)
            for (int64_t k = 0; k < H; k++) {
                hs[b * H + k] = h0 ? h0[hoff(p, d, b) + k] : 0.0f;
                cs[b * H + k] = c0 ? c0[hoff(p, d, b) + k] : 0.0f;
            }
        for (int64_t step = 0; step < T; step++) {
            /* the step's gate rows: in place in Gx when every row is at the same t (no
             * sequence_lens; Gx is read once), else gathered into G */
            float *G0;
            int64_t ldg;
            if (!seq) {
                G0 = gx + xrow(p, rev ? T - 1 - step : step, b0) * GH;
                ldg = (p->xbf ? T : 1) * GH;
            } else {
                for (int64_t b = b0; b < b1; b++) {
                    int64_t len = nn_val_geti(seq, b);
                    if (step >= len) { memset(G + b * GH, 0, sizeof(float) * (size_t)GH); continue; }
                    int64_t t = rev ? len - 1 - step : step;
                    memcpy(G + b * GH, gx + xrow(p, t, b) * GH, sizeof(float) * (size_t)GH);
                }
                G0 = G + b0 * GH;
                ldg = GH;
            }
            if (p->kind != K_GRU) rmul(j, d, 0, GH, nb, hs + b0 * H, G0, ldg, 1);
            else rmul(j, d, 0, p->lbr ? GH : 2 * H, nb, hs + b0 * H, M + b0 * GH, GH, 0);
            for (int64_t b = b0; b < b1; b++) {
                int64_t len = seq ? nn_val_geti(seq, b) : T;
                if (step >= len) continue;
                int64_t t = rev ? len - 1 - step : step;
                float *g = G0 + (b - b0) * ldg, *h = hs + b * H, *c = cs + b * H, *m = M + b * GH;
                if (p->kind == K_LSTM && fast && p->kern && H % 8 == 0) {
                    p->k->lstm_cell(g, c, h, H);
                } else if (p->kind == K_LSTM && fast) {
                    float *tc = tmp + b * H;
                    nn_vsigmoid(g, g, 3 * H, p->isa);                 /* i, o, f */
                    nn_vtanh(g + 3 * H, g + 3 * H, H, p->isa);        /* c~ */
                    for (int64_t k = 0; k < H; k++) c[k] = g[2 * H + k] * c[k] + g[k] * g[3 * H + k];
                    nn_vtanh(tc, c, H, p->isa);
                    for (int64_t k = 0; k < H; k++) h[k] = g[H + k] * tc[k];
                } else if (p->kind == K_LSTM) {
                    for (int64_t k = 0; k < H; k++) {
                        float cp = c[k];
                        float ig = act(a[0], clipf(g[k] + (pi ? pi[k] * cp : 0.0f), clip));
                        float fg = act(a[0], clipf(g[2 * H + k] + (pf ? pf[k] * cp : 0.0f), clip));
                        float cc = act(a[1], clipf(g[3 * H + k], clip));
                        float cn = fg * cp + ig * cc;
                        float og = act(a[0], clipf(g[H + k] + (po ? po[k] * cn : 0.0f), clip));
                        c[k] = cn;
                        h[k] = og * act(a[2], cn);
                    }
                } else if (p->kind == K_RNN) {
                    if (fast) nn_vtanh(h, g, H, p->isa);
                    else for (int64_t k = 0; k < H; k++) h[k] = act(a[0], clipf(g[k], clip));
                } else {
                    /* z = f(gx_z + m_z), r = f(gx_r + m_r); gx already holds Wb and Rb for z, r */
                    if (fast) {
                        for (int64_t k = 0; k < 2 * H; k++) m[k] += g[k];
                        nn_vsigmoid(m, m, 2 * H, p->isa);
                    } else for (int64_t k = 0; k < H; k++) {
                        m[k] = act(a[0], clipf(g[k] + m[k], clip));             /* z */
                        m[H + k] = act(a[0], clipf(g[H + k] + m[H + k], clip)); /* r */
                    }
                    if (p->lbr)
                        for (int64_t k = 0; k < H; k++) tmp[b * H + k] = m[H + k] * (m[2 * H + k] + rbh[k]);
                    else
                        for (int64_t k = 0; k < H; k++) tmp[b * H + k] = m[H + k] * h[k];
                }
                if (Y && p->kind != K_GRU) memcpy(Y + yoff(p, t, d, b), h, sizeof(float) * (size_t)H);
            }
            if (p->kind == K_GRU) {
                if (!p->lbr) rmul(j, d, 2 * H, H, nb, tmp + b0 * H, M + b0 * GH + 2 * H, GH, 0);   /* (r . h) R_h^T */
                for (int64_t b = b0; b < b1; b++) {
                    int64_t len = seq ? nn_val_geti(seq, b) : T;
                    if (step >= len) continue;
                    int64_t t = rev ? len - 1 - step : step;
                    float *g = G0 + (b - b0) * ldg, *h = hs + b * H, *m = M + b * GH;
                    if (fast) {
                        float *hh = g + 2 * H;
                        for (int64_t k = 0; k < H; k++) hh[k] += p->lbr ? tmp[b * H + k] : m[2 * H + k] + rbh[k];
                        nn_vtanh(hh, hh, H, p->isa);
                        for (int64_t k = 0; k < H; k++) h[k] = (1.0f - m[k]) * hh[k] + m[k] * h[k];
                    } else for (int64_t k = 0; k < H; k++) {
                        float pre = p->lbr ? g[2 * H + k] + tmp[b * H + k] : g[2 * H + k] + m[2 * H + k] + rbh[k];
                        float hh = act(a[1], clipf(pre, clip));
                        float z = m[k];
                        h[k] = (1.0f - z) * hh + z * h[k];
                    }
                    if (Y) memcpy(Y + yoff(p, t, d, b), h, sizeof(float) * (size_t)H);
                }
            }
        }
        for (int64_t b = b0; b < b1; b++) {
            if (s->n_out > 1) memcpy((float *)s->out[1]->data + hoff(p, d, b), hs + b * H, sizeof(float) * (size_t)H);
            if (s->n_out > 2 && p->kind == K_LSTM) memcpy((float *)s->out[2]->data + hoff(p, d, b), cs + b * H, sizeof(float) * (size_t)H);
        }
    }
}

/* The fused LSTM (no separate input projection): per block of batch rows, per step, one
 * product [x_t | h] [W^T; R^T] + bias gives every gate (K = I + H), then the cell. The gates
 * of a block stay in cache; there is no T x B x 4H buffer to write and read back. Rows are
 * independent sequences, so a thread runs its rows block by block, each through all steps.
 * With k->lstm_rows (H % 16 == 0), the kernel does product and cell together, reading x_t in
 * X and h in a pair of buffers it alternates between (off_h, off_h2); otherwise x_t and h
 * are copied side by side into A ([rows, I + H]), k->mm writes the gates into G ([rows, 4H])
 * and k->lstm_cell runs per row. x: [T, B, I] (layout 0) or [B, T, I]. */
#define FUSED_BLOCK 64
static void rnn_fused(void *arg, int ith, int nth) {
    rjob_t *j = arg;
    const rnn_t *p = j->p;
    nn_step_t *s = j->s;
    int64_t b0, b1, H = p->H, I = p->I, GH = p->GH, T = p->T, K = p->I + p->H;
    nn_split(p->B, ith, nth, &b0, &b1);
    const float *X = s->in[0]->data;
    const float *h0 = p->has_h0 ? s->in[5]->data : NULL, *c0 = p->has_c0 ? s->in[6]->data : NULL;
    float *Y = s->n_out > 0 && !s->out[0]->unread ? s->out[0]->data : NULL;
    float *A = j->sc + p->off_a, *G = j->sc + p->off_g;
    int rows_kern = p->k->lstm_rows && H % 16 == 0;
    for (int64_t r0 = b0; r0 < b1; r0 += FUSED_BLOCK) {
        int64_t r1 = r0 + FUSED_BLOCK < b1 ? r0 + FUSED_BLOCK : b1, nb = r1 - r0;
        for (int d = 0; d < p->D; d++) {
            int rev = p->dir == 1 || (p->dir == 2 && d == 1);
            float *cs = j->sc + p->off_c + d * p->B * H;
            const float *panels = p->xp + d * K * GH, *bias = j->sc + p->off_bias + d * GH;
            /* h: the block's rows of off_h (or of A's h part) */
            float *hc = rows_kern ? j->sc + p->off_h + d * p->B * H + r0 * H : A + r0 * K + I;
            int64_t ldh = rows_kern ? H : K;
            for (int64_t b = r0; b < r1; b++)
                for (int64_t k = 0; k < H; k++) {
                    hc[(b - r0) * ldh + k] = h0 ? h0[hoff(p, d, b) + k] : 0.0f;
                    cs[b * H + k] = c0 ? c0[hoff(p, d, b) + k] : 0.0f;
                }
            if (rows_kern) {
                float *hn = j->sc + p->off_h2 + r0 * H;
                nn_lstm_rows_t a = { panels, bias, I, H, NULL, (p->xbf ? T : 1) * I, NULL, cs + r0 * H, NULL,
                                     NULL, p->layout ? T * p->D * H : H };
                for (int64_t step = 0; step < T; step++) {
                    int64_t t = rev ? T - 1 - step : step;
                    a.x = X + xrow(p, t, r0) * I;
                    a.h_in = hc;
                    a.h_out = hn;
                    a.y = Y ? Y + yoff(p, t, d, r0) : NULL;
                    p->k->lstm_rows(&a, nb);
                    float *sw = hc;
                    hc = hn, hn = sw;
                }
            } else {
                for (int64_t step = 0; step < T; step++) {
                    int64_t t = rev ? T - 1 - step : step;
                    for (int64_t b = r0; b < r1; b++) memcpy(A + b * K, X + xrow(p, t, b) * I, sizeof(float) * (size_t)I);
                    p->k->mm(panels, K, 0, GH, nb, A + r0 * K, K, G + r0 * GH, GH, 0, bias);
                    for (int64_t b = r0; b < r1; b++) {
                        float *h = A + b * K + I;
                        p->k->lstm_cell(G + b * GH, cs + b * H, h, H);
                        if (Y) memcpy(Y + yoff(p, t, d, b), h, sizeof(float) * (size_t)H);
                    }
                }
            }
            /* hc: the block's last h, ldh apart */
            for (int64_t b = r0; b < r1; b++) {
                if (s->n_out > 1 && !s->out[1]->unread)
                    memcpy((float *)s->out[1]->data + hoff(p, d, b), hc + (b - r0) * ldh, sizeof(float) * (size_t)H);
                if (s->n_out > 2 && !s->out[2]->unread)
                    memcpy((float *)s->out[2]->data + hoff(p, d, b), cs + b * H, sizeof(float) * (size_t)H);
            }
        }
    }
}

static int rnn_run(nn_exec_t *ex, nn_step_t *s) {
    rnn_t *p = s->packed;
    float *sc = s->scratch;
    rjob_t j = { ex, s, p, sc, 1 };
    /* biases: gx gets Wb + Rb (GRU: Rb only for z and r; Rb_h is applied inside the gate) */
    const float *bv = p->has_b ? s->in[3]->data : NULL;
    for (int d = 0; d < p->D; d++) {
        float *bias = sc + p->off_bias + d * p->GH, *rbh = sc + p->off_rbh + d * p->H;
        for (int64_t g = 0; g < p->GH; g++) {
            float wb = bv ? bv[d * 2 * p->GH + g] : 0.0f, rb = bv ? bv[d * 2 * p->GH + p->GH + g] : 0.0f;
            bias[g] = wb + ((p->kind == K_GRU && g >= 2 * p->H) ? 0.0f : rb);
            if (p->kind == K_GRU && g >= 2 * p->H) rbh[g - 2 * p->H] = rb;
        }
    }
    if (p->has_seq) {
        for (int64_t b = 0; b < p->B; b++) {
            int64_t len = nn_val_geti(s->in[4], b);
            if (len < 0 || len > p->T) return NN_ERR_INVALID;
        }
        if (s->n_out > 0) memset(s->out[0]->data, 0, sizeof(float) * (size_t)s->out[0]->numel);
    }
    /* threads only where the work (multiply-adds) outweighs waking them (tens of us) */
    int64_t work_x = p->D * p->T * p->B * p->I * p->GH, work_h = p->D * p->T * p->B * p->H * p->GH;
    if (p->run_fused) {
        if (ex->pool && p->B >= 2 && work_x + work_h >= (1 << 20)) nn_pool_run(ex->pool, rnn_fused, &j);
        else rnn_fused(&j, 0, 1);
        return 0;
    }
    if (ex->pool && work_x >= (1 << 20)) nn_pool_run(ex->pool, rnn_project, &j);
    else rnn_project(&j, 0, 1);
    if (ex->pool && p->B >= 2 && work_h >= (1 << 20)) nn_pool_run(ex->pool, rnn_recur, &j);
    else rnn_recur(&j, 0, 1);
    return 0;
}

/* X read batch-first from now on (the planner then gives the step the Transpose's input as
 * X): Gx follows X's row order, so only xrow and the strides change. */
int nn_rnn_x_batch_first(nn_step_t *s) {
    rnn_t *p = s->packed;
    if (!p || p->layout || p->xbf) return 0;
    p->xbf = 1;
    return 1;
}

int nn_infer_lstm(nn_step_t *s, char *err, size_t errlen) { return rnn_infer(s, K_LSTM, err, errlen); }
int nn_infer_gru(nn_step_t *s, char *err, size_t errlen) { return rnn_infer(s, K_GRU, err, errlen); }
int nn_infer_rnn(nn_step_t *s, char *err, size_t errlen) { return rnn_infer(s, K_RNN, err, errlen); }
int nn_run_lstm(nn_exec_t *ex, nn_step_t *s) { return rnn_run(ex, s); }
int nn_run_gru(nn_exec_t *ex, nn_step_t *s) { return rnn_run(ex, s); }
int nn_run_rnn(nn_exec_t *ex, nn_step_t *s) { return rnn_run(ex, s); }
