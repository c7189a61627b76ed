/* pred_read: read latency of the market pipeline's fast layer (issue 6; seed: < 2 ms p99).
 *
 * --clients (8) threads, each with one keep-alive libcurl handle, send GET
 * /api/v1/predictions/{symbol} back to back for --duration (5) seconds, each symbol drawn
 * from --symbols FILE (one per line) by a seeded xorshift generator of its own. Every answer
 * is parsed (jansson): it must be 200 with the symbol asked for; answers whose "source" is
 * not "fast_layer" are counted apart (a read served from the store). Latency is measured
 * around curl_easy_perform (request sent -> answer read) on the monotonic clock.
 *
 * Prints one line: "reads: {json}" with requests, errors, not_fast_layer, rps and the p50,
 * p90, p99, p99.9 and max latency in ms over all clients. Exit status 0 when every request
 * was a 200 for the right symbol, 1 otherwise, 2 usage. Targets loopback addresses only. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PR_MAX_CLIENTS 64
#define PR_MAX_SAMPLES (1 << 20) /* latencies kept per client */
#define PR_SYMBOL_MAX 32

typedef struct {
    char host[64];
    int port, clients;
    double duration_s;
    uint64_t seed;
    char **symbols;
    size_t n_symbols;
} pr_opts_t;

typedef struct {
    const pr_opts_t *o;
    int id;
    double *lat_ms;
    size_t n;
    long errors, not_fast;
    char first_error[256];
    char *body;
    size_t len, cap;
} pr_client_t;

static double pr_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t pr_xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t pr_on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
    pr_client_t *c = userdata;
    size_t n = size * nmemb;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1) cap *= 2;
        char *b = realloc(c->body, cap);
        if (!b) return 0;
        c->body = b;
        c->cap = cap;
    }
    memcpy(c->body + c->len, ptr, n);
    c->len += n;
    c->body[c->len] = '\0';
    return n;
}

static void pr_error(pr_client_t *c, const char *fmt, const char *a, long b) {
    c->errors++;
    if (!c->first_error[0]) snprintf(c->first_error, sizeof c->first_error, fmt, a, b);
}

/* Checks one answer: 200, JSON, the symbol asked for; counts a source other than the fast layer. */
static void pr_check(pr_client_t *c, const char *symbol, long code) {
    if (code != 200) {
        pr_error(c, "GET %s: HTTP %ld", symbol, code);
        return;
    }
    json_error_t je;
    json_t *v = json_loadb(c->body ? c->body : "", c->len, 0, &je);
    const char *sym = v ? json_string_value(json_object_get(v, "symbol")) : NULL;
    const char *src = v ? json_string_value(json_object_get(v, "source")) : NULL;
    if (!sym || strcmp(sym, symbol) != 0)
        pr_error(c, "GET %s: not the symbol's prediction (HTTP %ld)", symbol, code);
    else if (!src || strcmp(src, "fast_layer") != 0)
        c->not_fast++;
    json_decref(v);
}

static void *pr_client_main(void *arg) {
    pr_client_t *c = arg;
    const pr_opts_t *o = c->o;
    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + (uint64_t)c->id * 0xBF58476D1CE4E5B9ull + 1;
    CURL *curl = curl_easy_init();
    if (!curl) {
        pr_error(c, "%s%ld: curl_easy_init failed", "", 0);
        return NULL;
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, pr_on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_PROXY, "");
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    double end = pr_now_s() + o->duration_s;
    char url[256];
    for (size_t guard = 0; guard < PR_MAX_SAMPLES && pr_now_s() < end; guard++) {
        const char *sym = o->symbols[pr_xorshift(&rng) % o->n_symbols];
        snprintf(url, sizeof url, "http://%s:%d/api/v1/predictions/%s", o->host, o->port, sym);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        c->len = 0;
        double t0 = pr_now_s();
        CURLcode rc = curl_easy_perform(curl);
        double dt = (pr_now_s() - t0) * 1000.0;
        if (rc != CURLE_OK) {
            pr_error(c, "GET: %s (%ld)", curl_easy_strerror(rc), (long)rc);
            continue;
        }
        long code = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        c->lat_ms[c->n++] = dt;
        pr_check(c, sym, code);
    }
    curl_easy_cleanup(curl);
    return NULL;
}

static int pr_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted v (nearest rank). */
static double pr_quantile(const double *v, size_t n, double q) {
    if (n == 0) return NAN;
    size_t k = (size_t)ceil(q * (double)n);
    return v[k ? k - 1 : 0];
}

static int pr_load_symbols(const char *path, pr_opts_t *o) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "pred_read: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[256];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        if (strlen(line) > PR_SYMBOL_MAX || strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(line)) {
            fprintf(stderr, "pred_read: %s: bad symbol '%.40s'\n", path, line);
            fclose(f);
            return -1;
        }
        if (o->n_symbols == cap) {
            cap = cap ? cap * 2 : 1024;
            char **s = realloc(o->symbols, cap * sizeof *s);
            if (!s) break;
            o->symbols = s;
        }
        o->symbols[o->n_symbols] = strdup(line);
        if (!o->symbols[o->n_symbols]) break;
        o->n_symbols++;
    }
    fclose(f);
    if (o->n_symbols == 0) {
        fprintf(stderr, "pred_read: %s: no symbols\n", path);
        return -1;
    }
    return 0;
}

static int pr_usage(FILE *f, int rc) {
    fprintf(f, "usage: pred_read --symbols FILE [--host 127.0.0.1] [--port 8080] [--clients 8]\n"
               "                 [--duration 5] [--seed 1]\n");
    return rc;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"symbols", required_argument, 0, 'f'}, {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},    {"clients", required_argument, 0, 'c'},
        {"duration", required_argument, 0, 'd'}, {"seed", required_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    pr_opts_t o = {.port = 8080, .clients = 8, .duration_s = 5, .seed = 1};
    snprintf(o.host, sizeof o.host, "127.0.0.1");
    const char *file = NULL;
    int ch, rc = 2;
    pr_client_t *cl = NULL;
    pthread_t th[PR_MAX_CLIENTS];
    int started = 0;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'f': file = optarg; break;
        case 'H': snprintf(o.host, sizeof o.host, "%s", optarg); break;
        case 'p': o.port = atoi(optarg); break;
        case 'c': o.clients = atoi(optarg); break;
        case 'd': o.duration_s = atof(optarg); break;
        case 's': o.seed = strtoull(optarg, NULL, 10); break;
        case 'h': return pr_usage(stdout, 0);
        default: return pr_usage(stderr, 2);
        }
    }
    if (!file || o.port < 1 || o.port > 65535 || o.clients < 1 || o.clients > PR_MAX_CLIENTS ||
        !(o.duration_s > 0 && o.duration_s <= 3600))
        return pr_usage(stderr, 2);
    if (strcmp(o.host, "127.0.0.1") && strcmp(o.host, "localhost") && strcmp(o.host, "::1")) {
        fprintf(stderr, "pred_read: loopback targets only\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = 1;
    if (pr_load_symbols(file, &o)) goto fail;
    cl = calloc((size_t)o.clients, sizeof *cl);
    if (!cl) goto fail;
    for (int i = 0; i < o.clients; i++) {
        cl[i].o = &o;
        cl[i].id = i;
        cl[i].lat_ms = malloc(PR_MAX_SAMPLES * sizeof(double));
        if (!cl[i].lat_ms) goto fail;
    }
    double t0 = pr_now_s();
    for (; started < o.clients; started++)
        if (pthread_create(&th[started], NULL, pr_client_main, &cl[started])) break;
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double wall = pr_now_s() - t0;
    if (started < o.clients) {
        fprintf(stderr, "pred_read: could not start %d clients\n", o.clients);
        goto fail;
    }
    size_t n = 0;
    long errors = 0, not_fast = 0;
    const char *first = "";
    for (int i = 0; i < o.clients; i++) {
        n += cl[i].n;
        errors += cl[i].errors;
        not_fast += cl[i].not_fast;
        if (!first[0] && cl[i].first_error[0]) first = cl[i].first_error;
    }
    double *all = malloc((n ? n : 1) * sizeof *all);
    if (!all) goto fail;
    size_t k = 0;
    for (int i = 0; i < o.clients; i++) {
        memcpy(all + k, cl[i].lat_ms, cl[i].n * sizeof *all);
        k += cl[i].n;
    }
    qsort(all, n, sizeof *all, pr_cmp_double);
    printf("reads: {\"clients\": %d, \"symbols\": %zu, \"requests\": %zu, \"errors\": %ld, "
           "\"not_fast_layer\": %ld, \"rps\": %.0f",
           o.clients, o.n_symbols, n, errors, not_fast, (double)n / wall);
    static const double QS[] = {0.5, 0.9, 0.99, 0.999, 1.0};
    static const char *const QN[] = {"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"};
    for (int i = 0; i < 5; i++) {
        if (n) printf(", \"%s\": %.3f", QN[i], pr_quantile(all, n, QS[i]));
        else printf(", \"%s\": null", QN[i]);
    }
    printf("}\n");
    if (first[0]) fprintf(stderr, "pred_read: first error: %s\n", first);
    free(all);
    rc = (errors == 0 && n > 0) ? 0 : 1;
fail:
    if (cl)
        for (int i = 0; i < o.clients; i++) {
            free(cl[i].lat_ms);
            free(cl[i].body);
        }
    free(cl);
    for (size_t i = 0; i < o.n_symbols; i++) free(o.symbols[i]);
    free(o.symbols);
    curl_global_cleanup();
    return rc;
}
