/* The dynamic batcher: one thread per served model version, a queue of requests between
 * the HTTP threads and it, and the engine runs (plain runs batched, MC runs alone). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"
#include "serving/serving_int.h"

/* ---- plans ------------------------------------------------------------------------------ */

nn_plan_t *serving_plan(serving_model_t *m, int64_t batch, int passes, char *err, size_t errlen) {
    int lru = 0;
    for (int i = 0; i < SERVING_PLAN_CACHE; i++) {
        if (m->plans[i].plan && m->plans[i].batch == batch && m->plans[i].passes == passes) {
            m->plans[i].used = ++m->clock;
            return m->plans[i].plan;
        }
        if (m->plans[i].used < m->plans[lru].used) lru = i;
    }
    nn_plan_opts_t o = {.batch = batch, .threads = m->threads, .mc_passes = passes};
    nn_plan_t *p = NULL;
    if (nn_plan_create(m->nn, &o, &p, err, errlen)) return NULL;
    nn_plan_free(m->plans[lru].plan);
    m->plans[lru].plan = p;
    m->plans[lru].batch = batch;
    m->plans[lru].passes = passes;
    m->plans[lru].used = ++m->clock;
    return p;
}

void serving_plans_free(serving_model_t *m) {
    for (int i = 0; i < SERVING_PLAN_CACHE; i++) {
        nn_plan_free(m->plans[i].plan);
        m->plans[i].plan = NULL;
    }
}

static int grow(float **buf, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    float *b = realloc(*buf, n * sizeof *b);
    if (!b) return -1;
    *buf = b;
    *cap = n;
    return 0;
}

/* ---- runs ------------------------------------------------------------------------------- */

/* Copies rows [off, off + r) of a planned output (P rows on its batch axis) into dst. */
static void split_rows(const serving_model_t *m, int o, const float *src, int64_t P, int64_t off, int64_t r,
                       float *dst) {
    const nn_tensor_t *t = &m->out_info[o];
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < m->out_axis[o]; d++) outer *= t->dims[d];
    for (int d = m->out_axis[o] + 1; d < t->ndim; d++) inner *= t->dims[d];
    for (int64_t k = 0; k < outer; k++)
        memcpy(dst + k * r * inner, src + (k * P + off) * inner, (size_t)(r * inner) * sizeof *dst);
}

static void job_fail(serving_job_t *j, int rc, const char *msg) {
    j->rc = rc;
    snprintf(j->err, sizeof j->err, "%s", msg);
}

/* The plain jobs first..last (count rows R) as one run at the next power of two >= R (at
 * most max_batch), zero rows padding the rest: a few plans serve every batch size. */
static void run_plain(serving_model_t *m, serving_job_t *first, int count, int64_t R) {
    int64_t P = 1;
    while (P < R) P *= 2;
    if (P > m->max_batch) P = R;
    char err[256];
    nn_plan_t *plan = serving_plan(m, P, 0, err, sizeof err);
    const void *ins[SERVING_MAX_IO];
    void *outs[SERVING_MAX_IO];
    int oom = 0;
    for (int i = 0; i < m->n_in; i++) oom |= grow(&m->in_buf[i], &m->in_cap[i], (size_t)(P * m->in_row[i]));
    for (int o = 0; o < m->n_out; o++) oom |= grow(&m->out_buf[o], &m->out_cap[o], (size_t)(P * m->out_row[o]));
    if (!plan || oom) {
        for (serving_job_t *j = first; count--; j = j->next) job_fail(j, SERVING_ERR_RUN, oom ? "out of memory" : err);
        return;
    }
    for (int i = 0; i < m->n_in; i++) {
        int64_t off = 0;
        serving_job_t *j = first;
        for (int c = 0; c < count; c++, j = j->next) {
            memcpy(m->in_buf[i] + off * m->in_row[i], j->req->inputs[i],
                   (size_t)(j->req->rows * m->in_row[i]) * sizeof(float));
            off += j->req->rows;
        }
        memset(m->in_buf[i] + R * m->in_row[i], 0, (size_t)((P - R) * m->in_row[i]) * sizeof(float));
        ins[i] = m->in_buf[i];
    }
    for (int o = 0; o < m->n_out; o++) outs[o] = m->out_buf[o];
    double t0 = mono_s();
    int rc = nn_run(plan, ins, outs, err, sizeof err);
    double dt = mono_s() - t0;
    int64_t off = 0;
    serving_job_t *j = first;
    for (int c = 0; c < count; c++, j = j->next) {
        if (rc) {
            job_fail(j, SERVING_ERR_RUN, err);
            continue;
        }
        for (int o = 0; o < m->n_out; o++)
            split_rows(m, o, m->out_buf[o], P, off, j->req->rows, j->req->outputs[o]);
        off += j->req->rows;
    }
    if (m->metrics) {
        char labels[160];
        snprintf(labels, sizeof labels, "model=\"%s\"", m->name);
        metrics_observe(m->metrics, "predictd_nn_batch_size", labels, (double)R);
        metrics_observe(m->metrics, "predictd_nn_requests_per_run", labels, count);
        metrics_observe(m->metrics, "predictd_nn_run_seconds", labels, dt);
    }
}

/* An MC job alone, at its own row count: the masks depend on a row's place in the batch. */
static void run_mc(serving_model_t *m, serving_job_t *j) {
    char err[256];
    const serving_req_t *r = j->req;
    nn_plan_t *plan = serving_plan(m, r->rows, r->mc_passes, err, sizeof err);
    if (!plan) {
        job_fail(j, SERVING_ERR_INPUT, err);
        return;
    }
    const void *ins[SERVING_MAX_IO];
    nn_mc_stats_t st[SERVING_MAX_IO];
    for (int i = 0; i < m->n_in; i++) ins[i] = r->inputs[i];
    for (int o = 0; o < m->n_out; o++) {
        float *const *x = r->outputs + 5 * o;
        st[o] = (nn_mc_stats_t){.mean = x[0], .std = x[1], .p10 = x[2], .p50 = x[3], .p90 = x[4]};
    }
    double t0 = mono_s();
    if (nn_run_mc(plan, r->seed, ins, st, err, sizeof err)) job_fail(j, SERVING_ERR_RUN, err);
    if (m->metrics) {
        char labels[160];
        snprintf(labels, sizeof labels, "model=\"%s\"", m->name);
        metrics_observe(m->metrics, "predictd_nn_batch_size", labels, (double)r->rows);
        metrics_observe(m->metrics, "predictd_nn_requests_per_run", labels, 1);
        metrics_observe(m->metrics, "predictd_nn_run_seconds", labels, mono_s() - t0);
    }
}

/* ---- the batcher thread ----------------------------------------------------------------- */

static void abs_deadline(double mono_deadline_s, struct timespec *ts) {
    /* the conditions use CLOCK_MONOTONIC (see serving_batcher_start) */
    ts->tv_sec = (time_t)mono_deadline_s;
    ts->tv_nsec = (long)((mono_deadline_s - (double)ts->tv_sec) * 1e9);
}

static void *batcher_main(void *arg) {
    serving_model_t *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->head && !m->stop) pthread_cond_wait(&m->wake, &m->mu);
        if (!m->head) break;
        serving_job_t *first = m->head;
        int count = 1;
        int64_t rows = first->req->rows;
        if (first->req->mc_passes == 0) {
            /* wait for company: until max_batch rows are queued, an MC job is behind (it must
             * not wait), or the first job has waited max_queue_delay_ms */
            double deadline = first->enq_s + m->delay_ms / 1000.0;
            for (;;) {
                rows = 0;
                count = 0;
                int blocked = 0;
                for (serving_job_t *j = m->head; j; j = j->next) {
                    if (j->req->mc_passes || rows + j->req->rows > m->max_batch) {
                        blocked = 1;
                        break;
                    }
                    rows += j->req->rows;
                    count++;
                }
                if (blocked || rows >= m->max_batch || m->stop || mono_s() >= deadline) break;
                struct timespec ts;
                abs_deadline(deadline, &ts);
                pthread_cond_timedwait(&m->wake, &m->mu, &ts);
            }
            if (count == 0) count = 1, rows = first->req->rows; /* one larger than max_batch: alone */
        }
        serving_job_t *last = first;
        for (int c = 1; c < count; c++) last = last->next;
        m->head = last->next;
        if (!m->head) m->tail = NULL;
        pthread_mutex_unlock(&m->mu);

        if (first->req->mc_passes) run_mc(m, first);
        else run_plain(m, first, count, rows);

        pthread_mutex_lock(&m->mu);
        serving_job_t *j = first;
        for (int c = 0; c < count; c++) {
            serving_job_t *next = j->next; /* j belongs to its caller once done is set */
            j->done = 1;
            j = next;
        }
        pthread_cond_broadcast(&m->done);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int serving_batcher_start(serving_model_t *m, char *err, size_t errlen) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&m->wake);
    pthread_cond_init(&m->wake, &ca);
    pthread_condattr_destroy(&ca);
    int e = pthread_create(&m->thread, NULL, batcher_main, m);
    if (e) {
        snprintf(err, errlen, "cannot start the batcher thread: %s", strerror(e));
        return -1;
    }
    m->started = 1;
    return 0;
}

void serving_batcher_stop(serving_model_t *m) {
    pthread_mutex_lock(&m->mu);
    m->stop = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    m->started = 0;
}

/* ---- a request -------------------------------------------------------------------------- */

int serving_infer(serving_model_t *m, const serving_req_t *req, char *err, size_t errlen) {
    if (req->rows < 1) {
        snprintf(err, errlen, "a request needs at least one row");
        return SERVING_ERR_INPUT;
    }
    if (req->mc_passes == 1 || req->mc_passes < 0) {
        snprintf(err, errlen, "mc_passes must be 0 (off) or at least 2");
        return SERVING_ERR_INPUT;
    }
    if (req->mc_passes == 0 && req->rows > m->max_batch) {
        snprintf(err, errlen, "%d rows are more than the model's max_batch_size %d", req->rows, m->max_batch);
        return SERVING_ERR_INPUT;
    }
    for (int i = 0; i < m->n_in; i++) {
        float *x = req->inputs[i];
        int64_t n = req->rows * m->in_row[i];
        for (int64_t k = 0; k < n; k++)
            if (!isfinite(x[k])) {
                snprintf(err, errlen, "input '%s' element %lld is not a finite number",
                         nn_model_input_name(m->nn, i), (long long)k);
                return SERVING_ERR_INPUT;
            }
        if (!m->mean[i]) continue;
        int64_t f = m->in_info[i].dims[m->in_info[i].ndim - 1];
        for (int64_t k = 0; k < n; k++) x[k] = (x[k] - m->mean[i][k % f]) * m->inv_scale[i][k % f];
    }
    serving_job_t job = {.req = req, .enq_s = mono_s()};
    pthread_mutex_lock(&m->mu);
    if (m->tail) m->tail->next = &job;
    else m->head = &job;
    m->tail = &job;
    pthread_cond_signal(&m->wake);
    while (!job.done) pthread_cond_wait(&m->done, &m->mu);
    pthread_mutex_unlock(&m->mu);
    if (job.rc) snprintf(err, errlen, "%s", job.err);
    return job.rc;
}
