/* graph_bench: the graph analytics benchmarks of issue 4, each printing its figure.
 *
 *   graph_bench gen DIR N M SEED       N entities (G0000000.., spin ±1, field) and M random
 *                                      undirected relationships (weight in (0,1]) as CSVs
 *   graph_bench mc DATA_DIR [SAMPLES [H_HOURS]]  Monte Carlo Ising on the whole imported graph
 *                                      (radius all, 1 thread, in-process): attempts/s/core
 *   graph_bench repeat URL [ROUNDS]    repeated-query workload over HTTP on its own graph
 *                                      (20k entities, 60k relationships): sliding overlapping
 *                                      entity sets, 10 % of entities updated between rounds;
 *                                      cache hit rate over the servable entities, stale results
 *   graph_bench big URL N [SAMPLES]    a job on every entity G0..G(N-1) of the imported graph:
 *                                      Ising analytic (accept + complete times), then a
 *                                      cascade with SAMPLES samples (default 100)
 *
 * "Servable" (repeat): an entity requested by an earlier job of the same parameters whose own
 * state and its neighbours' (all an Ising result depends on, MODELS.md) did not change since.
 * Every served value is compared with a fresh closed-form computation here (relative 1e-9):
 * a mismatch is a stale (or wrong) result. Hits come from predictd_cache_hits_total. Exit 0
 * when the run completed and no result was stale. Every loop is bounded (rounds, pages,
 * polls with a deadline). */
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/rng.h"
#include "core/util.h"
#include "graph/graph.h"
#include "models/model.h"
#include "store/store.h"

/* ---- HTTP (libcurl, one keep-alive handle) ------------------------------------------------ */

static CURL *H;
static char BASE[256];

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
    buf_append(arg, p, sz * n);
    return sz * n;
}

/* method path [body] -> status (0 on transport failure); the answer in out (NUL-terminated). */
static long http(const char *method, const char *path, const char *body, size_t len, buf_t *out) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", BASE, path);
    buf_reset(out);
    curl_easy_reset(H);
    curl_easy_setopt(H, CURLOPT_URL, url);
    curl_easy_setopt(H, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(H, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(H, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(H, CURLOPT_TIMEOUT, 300L);
    struct curl_slist *hd = NULL;
    if (body) {
        hd = curl_slist_append(hd, "Content-Type: application/json");
        hd = curl_slist_append(hd, "Expect:");
        curl_easy_setopt(H, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(H, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(H, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    long status = 0;
    if (curl_easy_perform(H) == CURLE_OK) curl_easy_getinfo(H, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hd);
    buf_append(out, "", 1);
    out->len--;
    return status;
}

static json_t *http_json(const char *method, const char *path, const char *body, size_t len, long *status) {
    buf_t out = {0};
    *status = http(method, path, body, len, &out);
    json_t *v = out.data ? json_loadb(out.data, out.len, 0, NULL) : NULL;
    if (!v) fprintf(stderr, "graph_bench: %s %s -> %ld: %.300s\n", method, path, *status, out.data ? out.data : "");
    buf_free(&out);
    return v;
}

/* Polls GET /api/v1/jobs/ID every 5 ms until finished (deadline_s). Returns the record. */
static json_t *wait_job(const char *id, double deadline_s) {
    char path[128];
    snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
    double t0 = mono_s();
    for (long i = 0; i < 10000000 && mono_s() - t0 < deadline_s; i++) {
        long st;
        json_t *j = http_json("GET", path, NULL, 0, &st);
        const char *s = j ? json_string_value(json_object_get(j, "status")) : NULL;
        if (s && (!strcmp(s, "COMPLETED") || !strcmp(s, "FAILED") || !strcmp(s, "CANCELLED"))) return j;
        json_decref(j);
        usleep(5000);
    }
    fprintf(stderr, "graph_bench: job %s not finished within %.0f s\n", id, deadline_s);
    return NULL;
}

/* Sum of predictd_cache_hits_total (or misses) lines for model ising. */
static double cache_counter(const char *name) {
    buf_t out = {0};
    http("GET", "/metrics", NULL, 0, &out);
    double sum = 0;
    size_t nl = strlen(name);
    for (char *p = out.data; p && *p;) {
        char *e = strchr(p, '\n');
        if (!strncmp(p, name, nl) && p[nl] == '{' && strstr(p, "model=\"ising\"") &&
            (!e || strstr(p, "model=\"ising\"") < e)) {
            char *sp = strrchr(e ? (*e = 0, p) : p, ' ');
            if (sp) sum += strtod(sp + 1, NULL);
            if (e) *e = '\n';
        }
        p = e ? e + 1 : NULL;
    }
    buf_free(&out);
    return sum;
}

/* ---- the bench's own copy of a graph (closed-form oracle) --------------------------------- */

typedef struct {
    long n;
    int *spin;
    double *field;
    long *off;    /* CSR: neighbours of i are nbr[off[i]..off[i+1]) */
    long *nbr;
    double *w;
} lgraph_t;

static void lgraph_build(lgraph_t *g, long n, long m, const long *a, const long *b, const double *wt) {
    g->n = n;
    g->off = calloc((size_t)n + 1, sizeof *g->off);
    g->nbr = malloc((size_t)(2 * m) * sizeof *g->nbr);
    g->w = malloc((size_t)(2 * m) * sizeof *g->w);
    for (long e = 0; e < m; e++) g->off[a[e] + 1]++, g->off[b[e] + 1]++;
    for (long i = 0; i < n; i++) g->off[i + 1] += g->off[i];
    long *fill = malloc((size_t)n * sizeof *fill);
    memcpy(fill, g->off, (size_t)n * sizeof *fill);
    for (long e = 0; e < m; e++) {
        g->nbr[fill[a[e]]] = b[e], g->w[fill[a[e]]++] = wt[e];
        g->nbr[fill[b[e]]] = a[e], g->w[fill[b[e]]++] = wt[e];
    }
    free(fill);
}

/* MODELS.md, analytic Ising: p_flip for entity i at T, H hours, nu per hour. */
static double oracle_p(const lgraph_t *g, long i, double T, double H, double nu, double *local) {
    double m = g->field[i];
    for (long e = g->off[i]; e < g->off[i + 1]; e++) m += g->w[e] * g->spin[g->nbr[e]];
    double dE = 2.0 * g->spin[i] * m;
    double w = nu / (1.0 + exp(dE / T));
    *local = m;
    return 1.0 - exp(-w * H);
}

static void random_edges(rng_t *r, long n, long m, long *a, long *b, double *w) {
    for (long e = 0; e < m; e++) {
        long x = (long)rng_below(r, (uint64_t)n), y = (long)rng_below(r, (uint64_t)(n - 1));
        if (y >= x) y++; /* no self loops */
        a[e] = x, b[e] = y;
        w[e] = 1.0 - rng_uniform(r); /* (0, 1] */
    }
}

/* ---- gen ---------------------------------------------------------------------------------- */

static int cmd_gen(const char *dir, long n, long m, uint64_t seed) {
    char path[1024];
    rng_t r;
    rng_seed(&r, seed);
    double t0 = mono_s();
    snprintf(path, sizeof path, "%s/entities.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) { perror(path); return 1; }
    fputs("entity_id,spin,field\n", f);
    for (long i = 0; i < n; i++)
        fprintf(f, "G%07ld,%d,%.6f\n", i, rng_uniform(&r) < 0.5 ? -1 : 1, 0.2 * rng_uniform(&r) - 0.1);
    fclose(f);
    snprintf(path, sizeof path, "%s/relationships.csv", dir);
    if (!(f = fopen(path, "w"))) { perror(path); return 1; }
    fputs("source,target,weight\n", f);
    for (long e = 0; e < m; e++) {
        long x = (long)rng_below(&r, (uint64_t)n), y = (long)rng_below(&r, (uint64_t)(n - 1));
        if (y >= x) y++;
        fprintf(f, "G%07ld,G%07ld,%.4f\n", x, y, 1.0 - rng_uniform(&r));
    }
    fclose(f);
    printf("gen: %ld entities, %ld relationships in %s (%.1f s)\n", n, m, dir, mono_s() - t0);
    return 0;
}

/* ---- mc ----------------------------------------------------------------------------------- */

static int cmd_mc(const char *data_dir, long samples, double H_h) {
    predictd_config_t cfg;
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", data_dir);
    char err[512] = "";
    store_t *st = NULL;
    graph_t *g = graph_new();
    double t0 = mono_s();
    if (!g || store_open(&st, &cfg, err, sizeof err) || store_load_graph(st, g, err, sizeof err)) {
        fprintf(stderr, "graph_bench mc: %s\n", err);
        return 1;
    }
    printf("mc: graph loaded from the store: %u entities, %llu relationships (%.1f s)\n", g->live,
           (unsigned long long)g->edges, mono_s() - t0);
    const model_t *md = model_find("ising");
    char req[512];
    const double nu = 1.0;
    snprintf(req, sizeof req,
             "{\"entity_ids\":[\"G0000000\"],\"parameters\":{\"temperature\":2.0,\"method\":\"monte_carlo\","
             "\"samples\":%ld,\"radius\":\"all\",\"time_horizon\":\"%gh\",\"attempt_rate\":1.0,\"seed\":7}}",
             samples, H_h);
    json_t *rq = json_loads(req, 0, NULL), *params = NULL;
    model_error_t me;
    if (!md || !rq || md->xParse(rq, &params, &me) != 0) {
        fprintf(stderr, "graph_bench mc: bad parameters: %s %s\n", me.field, me.message);
        return 1;
    }
    model_env_t env = {.graph = g, .store = st, .threads = 1};
    const char *ids[] = {"G0000000"};
    void *state = NULL;
    t0 = mono_s();
    int rc = md->xPrepare(&env, params, ids, 1, &state, err, sizeof err);
    double dt = mono_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "graph_bench mc: %s\n", err);
        return 1;
    }
    /* each of the n spins attempts at rate nu for H: n * nu * H attempts per sample (Poisson;
     * over this many the relative spread is ~1e-4) */
    double attempts = (double)samples * (double)g->live * nu * H_h;
    printf("mc: %ld samples x %u spins x %.0f attempts/spin/sample = %.3g attempts in %.3f s on 1 thread "
           "(BFS and set-up included)\n", samples, g->live, nu * H_h, attempts, dt);
    printf("FIGURE mc_attempts_per_s_per_core %.4g\n", attempts / dt);
    if (md->xFreeState) md->xFreeState(state);
    json_decref(params);
    json_decref(rq);
    store_close(st);
    graph_free(g);
    return 0;
}

/* ---- repeat ------------------------------------------------------------------------------- */

static void put_entity(buf_t *b, long i, int spin, double field) {
    buf_printf(b, "{\"entity_id\":\"R%06ld\",\"properties\":{\"spin\":%d,\"field\":", i, spin);
    buf_json_double(b, field);
    buf_puts(b, "}}");
}

static int cmd_repeat(long rounds) {
    const long P = 20000, M = 60000, K = 5000, STEP = 1000, UPD = P / 10;
    const double T = 1.5, Hh = 24.0, nu = 1.0;
    rng_t r;
    rng_seed(&r, 4242);
    lgraph_t g = {0};
    g.spin = malloc((size_t)P * sizeof *g.spin);
    g.field = malloc((size_t)P * sizeof *g.field);
    long *a = malloc((size_t)M * sizeof *a), *bb = malloc((size_t)M * sizeof *bb);
    double *w = malloc((size_t)M * sizeof *w);
    for (long i = 0; i < P; i++) g.spin[i] = rng_uniform(&r) < 0.5 ? -1 : 1, g.field[i] = 0.2 * rng_uniform(&r) - 0.1;
    random_edges(&r, P, M, a, bb, w);
    lgraph_build(&g, P, M, a, bb, w);
    buf_t body = {0}, out = {0};
    long st;
    double t0 = mono_s();
    for (long s = 0; s < P; s += 5000) { /* entities, then relationships, in batches */
        buf_reset(&body);
        buf_puts(&body, "[");
        for (long i = s; i < s + 5000 && i < P; i++) {
            if (i > s) buf_puts(&body, ",");
            put_entity(&body, i, g.spin[i], g.field[i]);
        }
        buf_puts(&body, "]");
        if ((st = http("POST", "/api/v1/entities", body.data, body.len, &out)) / 100 != 2) goto http_fail;
    }
    for (long s = 0; s < M; s += 20000) {
        buf_reset(&body);
        buf_puts(&body, "[");
        for (long e = s; e < s + 20000 && e < M; e++)
            buf_printf(&body, "%s{\"source\":\"R%06ld\",\"target\":\"R%06ld\",\"weight\":%.17g}", e > s ? "," : "",
                       a[e], bb[e], w[e]);
        buf_puts(&body, "]");
        if ((st = http("POST", "/api/v1/relationships", body.data, body.len, &out)) / 100 != 2) goto http_fail;
    }
    printf("repeat: graph of %ld entities, %ld relationships loaded over HTTP (%.1f s)\n", P, M, mono_s() - t0);

    long *req_epoch = malloc((size_t)P * sizeof *req_epoch), *dep_epoch = calloc((size_t)P, sizeof *dep_epoch);
    for (long i = 0; i < P; i++) req_epoch[i] = -1;
    long epoch = 0, servable_total = 0, compared = 0, stale = 0, requested_total = 0;
    double hits_total = 0, job_s_total = 0;
    for (long round = 0; round < rounds; round++) {
        /* the job: K ids from a window sliding by STEP (80 % overlap with the previous one) */
        long from = (round * STEP) % P, servable = 0;
        buf_reset(&body);
        buf_printf(&body, "{\"entity_ids\":[");
        for (long k = 0; k < K; k++) {
            long i = (from + k) % P;
            buf_printf(&body, "%s\"R%06ld\"", k ? "," : "", i);
            if (req_epoch[i] >= 0 && dep_epoch[i] <= req_epoch[i]) servable++;
        }
        buf_printf(&body, "],\"parameters\":{\"temperature\":%.17g,\"time_horizon\":\"24h\"}}", T);
        double h0 = cache_counter("predictd_cache_hits_total");
        double j0 = mono_s();
        json_t *sub = http_json("POST", "/api/v1/predict/batch/ising", body.data, body.len, &st);
        if (!sub || st != 202) goto http_fail;
        char id[64];
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(sub, "job_id")));
        json_decref(sub);
        json_t *done = wait_job(id, 120);
        if (!done) return 1;
        json_decref(done);
        job_s_total += mono_s() - j0;
        double hits = cache_counter("predictd_cache_hits_total") - h0;
        /* every result against the closed form of the state the bench knows now */
        char cursor[128] = "";
        long got = 0;
        for (int page = 0; page < 100; page++) {
            char path[512];
            snprintf(path, sizeof path, "/api/v1/jobs/%s/results?limit=10000%s%s", id, cursor[0] ? "&cursor=" : "", cursor);
            json_t *res = http_json("GET", path, NULL, 0, &st);
            if (!res) goto http_fail;
            json_t *arr = json_object_get(res, "results"), *it;
            size_t x;
            json_array_foreach(arr, x, it) {
                const char *eid = json_string_value(json_object_get(it, "entity_id"));
                json_t *p = json_object_get(it, "prediction");
                long i = eid ? strtol(eid + 1, NULL, 10) : -1;
                got++;
                if (!p || i < 0 || i >= P) { stale++; continue; }
                double lf, want = oracle_p(&g, i, T, Hh, nu, &lf);
                double have = json_number_value(json_object_get(p, "p_flip"));
                double have_lf = json_number_value(json_object_get(p, "local_field"));
                compared++;
                if (fabs(have - want) > 1e-9 * fmax(1e-12, fabs(want)) + 1e-15 || fabs(have_lf - lf) > 1e-9 * fmax(1.0, fabs(lf))) {
                    if (stale < 5) fprintf(stderr, "STALE job %s %s: p_flip %.17g expected %.17g\n", id, eid, have, want);
                    stale++;
                }
            }
            const char *nc = json_string_value(json_object_get(res, "next_cursor"));
            snprintf(cursor, sizeof cursor, "%s", nc ? nc : "");
            json_decref(res);
            if (!cursor[0]) break;
        }
        if (got != K) fprintf(stderr, "repeat: job %s returned %ld results, expected %ld\n", id, got, K);
        for (long k = 0; k < K; k++) req_epoch[(from + k) % P] = epoch;
        printf("repeat: round %2ld: %ld ids, servable %5ld, cache hits %5.0f (%.1f %%), job %.0f ms\n", round, K,
               servable, hits, servable ? 100.0 * hits / (double)servable : 0.0, (mono_s() - j0) * 1000.0);
        if (round > 0) {
            servable_total += servable;
            hits_total += hits;
        }
        requested_total += K;
        /* 10 % of the entities change (spin flipped): they and their neighbours' results go */
        epoch++;
        buf_reset(&body);
        buf_puts(&body, "[");
        for (long u = 0; u < UPD; u++) {
            long i = (long)rng_below(&r, (uint64_t)P);
            g.spin[i] = -g.spin[i];
            dep_epoch[i] = epoch;
            for (long e = g.off[i]; e < g.off[i + 1]; e++) dep_epoch[g.nbr[e]] = epoch;
            if (u) buf_puts(&body, ",");
            put_entity(&body, i, g.spin[i], g.field[i]);
        }
        buf_puts(&body, "]");
        if ((st = http("POST", "/api/v1/entities", body.data, body.len, &out)) / 100 != 2) goto http_fail;
    }
    printf("repeat: %ld rounds of %ld ids, %ld results compared with the closed form, %ld stale\n", rounds, K,
           compared, stale);
    printf("FIGURE repeat_hit_rate_of_servable %.4f (%.0f hits / %ld servable, rounds 1..%ld)\n",
           servable_total ? hits_total / (double)servable_total : 0.0, hits_total, servable_total, rounds - 1);
    printf("FIGURE repeat_stale_results %ld\n", stale);
    printf("FIGURE repeat_mean_job_s %.3f\n", job_s_total / (double)rounds);
    (void)requested_total;
    buf_free(&body);
    buf_free(&out);
    return stale == 0 ? 0 : 1;
http_fail:
    fprintf(stderr, "graph_bench repeat: HTTP %ld: %.300s\n", st, out.data ? out.data : "");
    return 1;
}

/* ---- big ---------------------------------------------------------------------------------- */

static int run_big_job(const char *model, const char *body, size_t len, const char *what, double deadline_s) {
    long st;
    double t0 = mono_s();
    json_t *sub = http_json("POST", model, body, len, &st);
    double accept = mono_s() - t0;
    if (!sub || st != 202) return 1;
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(sub, "job_id")));
    json_decref(sub);
    json_t *done = wait_job(id, deadline_s);
    double total = mono_s() - t0;
    if (!done) return 1;
    const char *status = json_string_value(json_object_get(done, "status"));
    printf("%s: job %s %s; accepted (202) in %.3f s, COMPLETED seen %.3f s after the POST began\n", what, id,
           status, accept, total);
    printf("FIGURE %s_accept_s %.3f\n", what, accept);
    printf("FIGURE %s_complete_s %.3f\n", what, total);
    char *txt = json_dumps(done, JSON_COMPACT);
    printf("%s: job record %.600s\n", what, txt ? txt : "");
    free(txt);
    int ok = status && !strcmp(status, "COMPLETED");
    json_decref(done);
    return ok ? 0 : 1;
}

static int cmd_big(long n, long samples) {
    buf_t body = {0};
    double t0 = mono_s();
    buf_puts(&body, "{\"entity_ids\":[");
    for (long i = 0; i < n; i++) buf_printf(&body, "%s\"G%07ld\"", i ? "," : "", i);
    buf_puts(&body, "],\"parameters\":{\"temperature\":2.0,\"time_horizon\":\"24h\"}}");
    printf("big: request body of %ld ids, %.1f MB (built in %.2f s)\n", n, body.len / 1e6, mono_s() - t0);
    int rc = run_big_job("/api/v1/predict/batch/ising", body.data, body.len, "ising_1m", 120);
    buf_reset(&body);
    buf_printf(&body, "{\"seed_entities\":[\"G0000000\",\"G0000001\",\"G0000002\",\"G0000003\",\"G0000004\"],"
                      "\"samples\":%ld,\"max_generations\":5,\"seed\":1,"
                      "\"threshold_distribution\":\"uniform\",\"threshold_type\":\"count\"}", samples);
    rc |= run_big_job("/api/v1/predict/batch/cascade", body.data, body.len, "cascade", 240);
    buf_free(&body);
    return rc;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "gen")) return cmd_gen(argv[2], atol(argv[3]), atol(argv[4]), strtoull(argv[5], NULL, 10));
    if (argc >= 3 && !strcmp(argv[1], "mc")) return cmd_mc(argv[2], argc > 3 ? atol(argv[3]) : 4, argc > 4 ? atof(argv[4]) : 10.0);
    if (argc >= 3 && (!strcmp(argv[1], "repeat") || !strcmp(argv[1], "big"))) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        H = curl_easy_init();
        snprintf(BASE, sizeof BASE, "%s", argv[2]);
        int rc = !strcmp(argv[1], "repeat") ? cmd_repeat(argc > 3 ? atol(argv[3]) : 20)
                                            : cmd_big(argc > 3 ? atol(argv[3]) : 1000000, argc > 4 ? atol(argv[4]) : 100);
        curl_easy_cleanup(H);
        curl_global_cleanup();
        return rc;
    }
    fprintf(stderr, "usage: graph_bench gen DIR N M SEED | mc DATA_DIR [SAMPLES [H_HOURS]] | repeat URL [ROUNDS] | big URL [N] [SAMPLES]\n");
    return 2;
}
