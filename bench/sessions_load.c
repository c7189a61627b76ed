/* sessions_load: submit latency of POST /api/v1/sessions/score under concurrent clients.
 *
 *   sessions_load --port N [--clients 8] [--requests 250] [--events 60] [--seed 1]
 *
 * Each of --clients threads (libcurl, one keep-alive handle each) submits --requests
 * sessions of its own (ids LOAD-<seed>-<client>-<i>), one at a time, each with --events
 * pointer moves, 2 clicks and 6 keys drawn from a seeded generator. Latency is from sending
 * the request to having the whole answer (a 202 means it is committed). Prints one JSON line:
 * count, errors, p50/p90/p99/max in ms, submissions per second. Loopback targets only.
 * Exit status 1 when any request was not answered 202. */
#include <curl/curl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"

typedef struct {
    int port, requests, events, id;
    uint64_t seed;
    double *lat_ms; /* [requests] */
    int errors;
} worker_t;

static size_t sink(char *p, size_t sz, size_t n, void *arg) {
    (void)p;
    (void)arg;
    return sz * n;
}

static void body(buf_t *b, rng_t *r, const char *id, int events) {
    buf_reset(b);
    double t = 0, x = 500, y = 400;
    buf_printf(b, "{\"session_id\":\"%s\",\"pointer\":[", id);
    for (int i = 0; i < events; i++) {
        t += 15 + rng_uniform(r) * 60;
        x += rng_normal(r) * 12;
        y += rng_normal(r) * 12;
        buf_printf(b, "%s[%.1f,%.1f,%.1f]", i ? "," : "", t, x, y);
    }
    buf_printf(b, "],\"clicks\":[[%.1f,%.1f,%.1f],[%.1f,%.1f,%.1f]],\"keys\":[", t + 100, x, y, t + 700, x, y);
    for (int i = 0; i < 6; i++) buf_printf(b, "%s[%.1f,\"k%d\"]", i ? "," : "", t + 900 + i * 120 + rng_uniform(r) * 50, i);
    buf_printf(b, "],\"duration_ms\":%.1f,\"client\":{\"ua\":\"sessions_load\",\"screen\":[1920,1080]}}", t + 2000);
}

static void *run(void *arg) {
    worker_t *w = arg;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/sessions/score", w->port);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    rng_t r;
    rng_seed2(&r, w->seed, (uint64_t)w->id);
    buf_t b = {0};
    for (int i = 0; i < w->requests; i++) {
        char id[96];
        snprintf(id, sizeof id, "LOAD-%llu-%d-%d", (unsigned long long)w->seed, w->id, i);
        body(&b, &r, id, w->events);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, b.data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)b.len);
        double t0 = mono_s();
        CURLcode rc = curl_easy_perform(c);
        w->lat_ms[i] = (mono_s() - t0) * 1000.0;
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK || code != 202) w->errors++;
    }
    buf_free(&b);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int port = 0, clients = 8, requests = 250, events = 60;
    uint64_t seed = 1;
    static const struct option opts[] = {
        {"port", required_argument, 0, 'p'}, {"clients", required_argument, 0, 'c'},
        {"requests", required_argument, 0, 'r'}, {"events", required_argument, 0, 'e'},
        {"seed", required_argument, 0, 's'}, {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 'c': clients = atoi(optarg); break;
        case 'r': requests = atoi(optarg); break;
        case 'e': events = atoi(optarg); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    if (port <= 0 || clients < 1 || clients > 256 || requests < 1 || events < 0) {
        fprintf(stderr, "usage: sessions_load --port N [--clients 8] [--requests 250] [--events 60] [--seed 1]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    worker_t *w = calloc((size_t)clients, sizeof *w);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double *all = malloc((size_t)clients * (size_t)requests * sizeof *all);
    double t0 = mono_s();
    for (int i = 0; i < clients; i++) {
        w[i] = (worker_t){.port = port, .requests = requests, .events = events, .id = i, .seed = seed,
                          .lat_ms = all + (size_t)i * (size_t)requests};
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    int errors = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        errors += w[i].errors;
    }
    double wall = mono_s() - t0;
    size_t n = (size_t)clients * (size_t)requests;
    qsort(all, n, sizeof *all, cmp);
#define PCT(p) all[(size_t)((double)(n - 1) * (p))]
    printf("{\"clients\":%d,\"count\":%zu,\"errors\":%d,\"events\":%d,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"per_s\":%.1f}\n",
           clients, n, errors, events, PCT(0.50), PCT(0.90), PCT(0.99), all[n - 1], (double)n / wall);
    free(all);
    free(th);
    free(w);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
