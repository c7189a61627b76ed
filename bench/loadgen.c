/* loadgen: a load generator for the Ising batch API, in C so that the generator is not the
 * bottleneck (the peer's Python one saturates a core before a fast server does).
 *
 * Same four phases as the peer's loadgen.py, every loop bounded in count and in time:
 *   1 submit     --jobs (200) submissions of --size (1000) entity jobs from --clients (8)
 *                threads: POST latency; then the time until all of them are COMPLETED
 *   2 sustained  --clients closed-loop threads for --duration (30) s, each: submit, poll the
 *                status every --poll-ms (10), fetch every results page; predictions per
 *                minute whose results were fetched within the window
 *   3 e2e        one job at a time: submit -> results fetched (--e2e-runs, 20)
 *   4 cache      --jobs repeats of one completed request, 1 thread and then --clients
 *                threads: POST latency, and POST + results
 *
 * HTTP: libcurl, one easy handle per thread (keep-alive, one request at a time); answers are
 * read with jansson. Each request's entity sample (ids ACTOR-000001..) comes from a seeded
 * xorshift generator, one per thread. Targets are loopback addresses only.
 *
 * Jobs of phases 1-3 get a fresh random entity sample and a temperature of their own in
 * [0.5, 0.6), so that they are computed, not served from a cache (a per-entity cache keyed by
 * parameters would otherwise answer most of them once the graph has been covered); phase 4
 * repeats one request with T = 0.5. --same-params: T = 0.5 everywhere, as loadgen.py does.
 * "completed_at_post" counts submissions answered COMPLETED at once: a cache hit (phase 4), or
 * a small job predictd computed in its submission (jobs.inline_max_entities); a job answered
 * COMPLETED still gets one status GET (it is what the e2e breakdown reads), then its results
 * (the default seed is the clock; pass --seed for repeatable samples).
 *
 * Prints one line per phase, "name: {json}", and with --json FILE writes them all; --trace
 * FILE writes the submit phase's requests (job, start ms into the phase, latency ms).
 * Exit status: 0 all phases ran clean, 1 a phase failed (its error is in the output),
 * 2 usage. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <yajl/yajl_parse.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define PATH_SUBMIT "/api/v1/predict/batch/ising"
#define MAX_CLIENTS 256
#define MAX_PAGES 10000          /* results pages followed per job, at most */
#define REQUEST_TIMEOUT_MS 30000 /* one HTTP request, at most */

/* ---------------------------------------------------------------- options, clock, rng */

typedef struct {
    char host[64];
    int port;
    int entities, size, jobs, clients, e2e_runs;
    int fresh; /* phases 1-3: a temperature of its own per job (default); 0: all T = 0.5 */
    double duration_s, poll_ms, phase_timeout_s;
    long status_wait_ms; /* > 0: status reads ask the server to wait (?wait_ms=); not the peer's protocol */
    uint64_t seed;
    const char *json_path;
    const char *trace_path; /* phase 1's requests, one line each */
    char base[128]; /* "http://host:port" */
} opts_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* xorshift64* seeded through splitmix64; one per thread, never shared. */
typedef struct {
    uint64_t s;
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    r->s = (z ^ (z >> 31)) | 1;
}

static uint64_t rng_next(rng_t *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dULL;
}

/* A sampler draws --size distinct entity numbers out of 1..entities, uniformly: each draw a
 * random number (multiply-shift range reduction, no division) kept unless already drawn for
 * this job, which a small table answers (it stays in the L1 cache; a table stamped with the
 * job number needs no clearing). A Fisher-Yates shuffle over a permutation of all the entities
 * gave the same distribution but missed the cache on every draw (a 400 KB array per thread):
 * the generator's biggest cost. */
typedef struct {
    rng_t rng;
    int n;
    uint32_t *key, *mark; /* [cap]: entity number, and the job that drew it */
    uint32_t cap, job;
} sampler_t;

static int sampler_init(sampler_t *s, int n, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->n = n;
    rng_seed(&s->rng, seed);
    return 0;
}

static void sampler_free(sampler_t *s) {
    free(s->key);
    free(s->mark);
    s->key = s->mark = NULL;
}

/* k distinct numbers in 1..n into out (k <= n). 0, or -1 out of memory. */
static int sampler_draw(sampler_t *s, int k, uint32_t *out) {
    uint32_t need = 16;
    while (need < (uint32_t)k * 4) need *= 2;
    if (need > s->cap) {
        free(s->key);
        free(s->mark);
        s->key = calloc(need, sizeof *s->key);
        s->mark = calloc(need, sizeof *s->mark);
        s->cap = s->key && s->mark ? need : 0;
        if (!s->cap) return -1;
        s->job = 0;
    }
    if (++s->job == 0) { /* the stamp wrapped: clear once */
        memset(s->mark, 0, s->cap * sizeof *s->mark);
        s->job = 1;
    }
    for (int i = 0; i < k;) {
        uint32_t v = 1 + (uint32_t)(((rng_next(&s->rng) >> 32) * (uint64_t)s->n) >> 32);
        uint32_t h = (v * 2654435761u) & (s->cap - 1);
        while (s->mark[h] == s->job && s->key[h] != v) h = (h + 1) & (s->cap - 1);
        if (s->mark[h] == s->job) continue; /* drawn already for this job */
        s->mark[h] = s->job;
        s->key[h] = v;
        out[i++] = v;
    }
    return 0;
}

/* Writes [,]"ACTOR-NNNNNN" (at least 6 digits, as gen_graph.py names them); returns its length. */
static size_t id_format(char *out, int comma, uint32_t id) {
    char digits[10];
    int nd = 0;
    do {
        digits[nd++] = (char)('0' + id % 10);
        id /= 10;
    } while (id);
    while (nd < 6)
        digits[nd++] = '0';
    char *o = out;
    if (comma)
        *o++ = ',';
    memcpy(o, "\"ACTOR-", 7);
    o += 7;
    while (nd)
        *o++ = digits[--nd];
    *o++ = '"';
    return (size_t)(o - out);
}

/* A fresh job body with k random ids; the caller frees it. */
static char *job_body(sampler_t *s, int k, int fresh, size_t *len) {
    size_t cap = (size_t)k * 24 + 256, n = 0;
    char *b = malloc(cap);
    if (!b)
        return NULL;
    uint32_t *pick = malloc(sizeof *pick * (size_t)(k > 0 ? k : 1));
    if (!pick || k > s->n || sampler_draw(s, k, pick) < 0) {
        free(pick);
        free(b);
        return NULL;
    }
    n += (size_t)snprintf(b + n, cap - n, "{\"entity_ids\":[");
    for (int i = 0; i < k; i++)
        n += id_format(b + n, i > 0, pick[i]);
    free(pick);
    /* fresh: a temperature of its own in [0.5, 0.6) (1e9 values), so that no job is answered
     * from a result cache keyed by parameters, per entity or per request */
    double temperature = fresh ? 0.5 + (double)(rng_next(&s->rng) % 1000000000ULL) * 1e-10 : 0.5;
    n += (size_t)snprintf(b + n, cap - n,
                          "],\"prediction_type\":\"spin_flip_probability\","
                          "\"parameters\":{\"temperature\":%.12g,\"time_horizon\":\"24h\"}}",
                          temperature);
    *len = n;
    return b;
}

/* ---------------------------------------------------------------- samples */

typedef struct {
    double *v;
    size_t n, cap;
} samples_t;

static void samples_add(samples_t *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return; /* a lost sample under OOM beats a crash in a benchmark */
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static void samples_merge(samples_t *into, const samples_t *from) {
    for (size_t i = 0; i < from->n; i++)
        samples_add(into, from->v[i]);
}

static void samples_free(samples_t *s) {
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile, as loadgen.py computes it: sorted[ceil(q/100 n) - 1]. */
static double pct(samples_t *s, double q) {
    if (!s->n)
        return NAN;
    qsort(s->v, s->n, sizeof *s->v, cmp_double);
    long i = (long)ceil(q / 100.0 * (double)s->n) - 1;
    return s->v[i < 0 ? 0 : i];
}

static json_t *jround(double x) {
    return isfinite(x) ? json_real(round(x * 100.0) / 100.0) : json_null();
}

static json_t *summary(samples_t *s) {
    if (!s->n)
        return json_pack("{s:i}", "n", 0);
    double sum = 0, max = s->v[0];
    for (size_t i = 0; i < s->n; i++) {
        sum += s->v[i];
        max = s->v[i] > max ? s->v[i] : max;
    }
    return json_pack("{s:I, s:o, s:o, s:o, s:o}", "n", (json_int_t)s->n, "p50_ms", jround(pct(s, 50)),
                     "p99_ms", jround(pct(s, 99)), "mean_ms", jround(sum / (double)s->n), "max_ms",
                     jround(max));
}

/* Server-side time of each job from its created/started/finished timestamps (epoch
 * numbers or ISO 8601 strings). */
typedef struct {
    samples_t queued, executing;
} breakdown_t;

static int iso_seconds(const char *s, double *out) {
    int Y, M, D, h, m, n = 0;
    double sec;
    if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%lf%n", &Y, &M, &D, &h, &m, &sec, &n) != 6)
        return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m};
    double t = (double)timegm(&tm) + sec;
    const char *z = s + n;
    int oh, om;
    if (*z == '+' || *z == '-') {
        if (sscanf(z + 1, "%2d:%2d", &oh, &om) != 2 && sscanf(z + 1, "%2d%2d", &oh, &om) != 2)
            return -1;
        t -= (*z == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
    } else if (*z && *z != 'Z') {
        return -1;
    }
    *out = t;
    return 0;
}

static int json_seconds(json_t *v, double *out) {
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    return json_is_string(v) ? iso_seconds(json_string_value(v), out) : -1;
}

static void breakdown_add(breakdown_t *b, json_t *job) {
    double c, s, f;
    if (!job || json_seconds(json_object_get(job, "created_at"), &c) ||
        json_seconds(json_object_get(job, "started_at"), &s) ||
        json_seconds(json_object_get(job, "finished_at"), &f))
        return;
    samples_add(&b->queued, (s - c) * 1000);
    samples_add(&b->executing, (f - s) * 1000);
}

static json_t *breakdown_report(breakdown_t *b) {
    if (!b->queued.n)
        return json_null();
    return json_pack("{s:o, s:o, s:o, s:o}", "queued_p50_ms", jround(pct(&b->queued, 50)),
                     "queued_p99_ms", jround(pct(&b->queued, 99)), "executing_p50_ms",
                     jround(pct(&b->executing, 50)), "executing_p99_ms",
                     jround(pct(&b->executing, 99)));
}

static void breakdown_free(breakdown_t *b) {
    samples_free(&b->queued);
    samples_free(&b->executing);
}

/* ---------------------------------------------------------------- one phase's shared state */

typedef struct {
    const opts_t *o;
    double deadline; /* hard: nothing in this phase runs past it */
    atomic_int failed;
    pthread_mutex_t mu; /* protects error */
    char error[512];
} phase_t;

static void phase_init(phase_t *p, const opts_t *o, double timeout_s) {
    memset(p, 0, sizeof *p);
    p->o = o;
    p->deadline = now_s() + timeout_s;
    atomic_init(&p->failed, 0);
    pthread_mutex_init(&p->mu, NULL);
}

static void phase_fail(phase_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void phase_fail(phase_t *p, const char *fmt, ...) {
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->error, sizeof p->error, fmt, ap);
        va_end(ap);
        atomic_store(&p->failed, 1);
    }
    pthread_mutex_unlock(&p->mu);
}

static int phase_going(phase_t *p) {
    if (atomic_load(&p->failed))
        return 0;
    if (now_s() > p->deadline) {
        phase_fail(p, "phase timed out");
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- HTTP over libcurl */

typedef struct {
    CURL *curl;
    struct curl_slist *hdrs;
    char *body; /* last answer, NUL-terminated */
    size_t len, cap;
    long code;
    const opts_t *o;
} conn_t;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
    conn_t *c = userdata;
    size_t n = size * nmemb;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *b = realloc(c->body, cap);
        if (!b)
            return 0; /* curl reports a write error */
        c->body = b;
        c->cap = cap;
    }
    memcpy(c->body + c->len, ptr, n);
    c->len += n;
    c->body[c->len] = '\0';
    return n;
}

static int conn_open(conn_t *c, const opts_t *o) {
    memset(c, 0, sizeof *c);
    c->o = o;
    c->curl = curl_easy_init();
    if (!c->curl)
        return -1;
    c->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    c->hdrs = curl_slist_append(c->hdrs, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_PROXY, ""); /* never through an environment proxy */
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http");
    return 0;
}

static void conn_close(conn_t *c) {
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->hdrs);
    free(c->body);
    memset(c, 0, sizeof *c);
}

/* One request; body == NULL means GET. Returns the HTTP status, or -1 (transport error,
 * message in err). The answer is in c->body. */
static long conn_request(conn_t *c, const char *path, const char *body, size_t len, char *err,
                         size_t errlen) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->o->base, path);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)len);
    } else {
        curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
    }
    c->len = 0;
    if (c->body)
        c->body[0] = '\0';
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s %s: %s", body ? "POST" : "GET", path, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->code);
    return c->code;
}

/* Parses the last answer; on failure fills the phase error. */
static json_t *conn_json(conn_t *c, phase_t *p, const char *what) {
    json_error_t je;
    json_t *v = json_loadb(c->body ? c->body : "", c->len, 0, &je);
    if (!v)
        phase_fail(p, "%s: HTTP %ld, not JSON (%s): %.200s", what, c->code, je.text,
                   c->body ? c->body : "");
    return v;
}

/* ---------------------------------------------------------------- the API calls */

/* Submits; fills job_id (and *completed when the answer says COMPLETED: a cache hit).
 * Returns 0, or -1 with the phase failed. */
static int api_submit(conn_t *c, phase_t *p, const char *body, size_t len, char *job_id,
                      size_t idlen, int *completed) {
    char err[256];
    long code = conn_request(c, PATH_SUBMIT, body, len, err, sizeof err);
    if (code < 0) {
        phase_fail(p, "%s", err);
        return -1;
    }
    if (code != 200 && code != 201 && code != 202) {
        phase_fail(p, "submit: HTTP %ld %.200s", code, c->body ? c->body : "");
        return -1;
    }
    json_t *v = conn_json(c, p, "submit");
    if (!v)
        return -1;
    json_t *id = json_object_get(v, "job_id");
    const char *st = json_string_value(json_object_get(v, "status"));
    int rc = 0;
    if (json_is_string(id))
        snprintf(job_id, idlen, "%s", json_string_value(id));
    else if (json_is_integer(id))
        snprintf(job_id, idlen, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
    else {
        phase_fail(p, "submit: no job_id in %.200s", c->body);
        rc = -1;
    }
    if (completed)
        *completed = st && !strcmp(st, "COMPLETED");
    json_decref(v);
    return rc;
}

/* Polls the job every poll_ms until COMPLETED. Returns the last status answer (the caller
 * decrefs), or NULL with the phase failed. */
static json_t *api_wait_done(conn_t *c, phase_t *p, const char *job_id, double poll_ms) {
    char path[256], err[256];
    if (p->o->status_wait_ms > 0)
        snprintf(path, sizeof path, "/api/v1/jobs/%s?wait_ms=%ld", job_id, p->o->status_wait_ms);
    else
        snprintf(path, sizeof path, "/api/v1/jobs/%s", job_id);
    while (phase_going(p)) {
        long code = conn_request(c, path, NULL, 0, err, sizeof err);
        if (code < 0) {
            phase_fail(p, "%s", err);
            return NULL;
        }
        json_t *job = conn_json(c, p, "status");
        if (!job)
            return NULL;
        const char *st = json_string_value(json_object_get(job, "status"));
        if (code == 200 && st && !strcmp(st, "COMPLETED"))
            return job;
        if (code != 200 || !st || !strcmp(st, "FAILED") || !strcmp(st, "CANCELLED")) {
            phase_fail(p, "job %s: HTTP %ld %.200s", job_id, code, c->body);
            json_decref(job);
            return NULL;
        }
        json_decref(job);
        sleep_ms(poll_ms);
    }
    return NULL;
}

typedef struct {
    long results;     /* entries seen over all pages */
    long predictions; /* entries that carry a prediction object */
    double execution_time_ms; /* metadata.execution_time_ms, NAN when absent */
    int completed_at_post;    /* the submission was answered COMPLETED (a cache hit) */
    double post_ms, wait_ms, results_ms; /* api_run_job's three steps, client side */
    double check_ms;  /* spent re-parsing pages with jansson to check the probe: the
                       * generator's own work, taken out of every latency it reports */
} fetched_t;

/* Reading a results page cheaply. A 1000-entity page is ~170 KB; building jansson's tree of it
 * costs ~6 ms of CPU, which would make the generator, not the server, the bottleneck at a few
 * hundred jobs a second on a 2-core machine. So a page is read by probing: count the
 * `"prediction": {` and `"entity_id":` keys (a key pattern cannot occur inside a JSON string,
 * where its quotes would be escaped), and let jansson decode the single value after the
 * `"next_cursor":` and `"execution_time_ms":` keys. Every 32nd job per thread, and every page
 * where exactness matters (warm-up, e2e), is also parsed fully (page_parse: yajl, validating)
 * and the two readings must agree, or the phase fails. */
#define FULL_PARSE_EVERY 32

/* If q (at a '"') starts the key `"key"<ws>:<ws>`, points after it; else NULL. */
static const char *key_at(const char *q, const char *end, const char *key, size_t kl) {
    if ((size_t)(end - q) < kl + 2 || memcmp(q + 1, key, kl) != 0 || q[kl + 1] != '"')
        return NULL;
    q += kl + 2;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
        q++;
    if (q == end || *q != ':')
        return NULL;
    for (q++; q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'); q++) {
    }
    return q;
}

static json_t *value_at(const char *v, const char *end) {
    json_error_t je;
    return json_loadb(v, (size_t)(end - v), JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
}

typedef struct {
    long results, predictions;
    double execution_time_ms;
    char cursor[512]; /* "" when this is the last page; URL-escaped */
} page_t;

static void set_cursor(CURL *curl, page_t *pg, json_t *next) {
    pg->cursor[0] = '\0';
    if (json_is_string(next) && json_string_length(next) > 0) {
        char *esc = curl_easy_escape(curl, json_string_value(next), 0);
        snprintf(pg->cursor, sizeof pg->cursor, "%s", esc ? esc : "");
        curl_free(esc);
    } else if (json_is_integer(next)) {
        snprintf(pg->cursor, sizeof pg->cursor, "%" JSON_INTEGER_FORMAT, json_integer_value(next));
    }
}

static int blank(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

/* The keys next_cursor and execution_time_ms over the quotes of [q, end). */
static void probe_tail(const char *q, const char *end, json_t **next, json_t **ms) {
    const char *v;
    while (q < end && (q = memchr(q, '"', (size_t)(end - q))) != NULL) {
        v = NULL;
        if (q + 1 < end && q[1] == 'e' && !*ms && (v = key_at(q, end, "execution_time_ms", 17)))
            *ms = value_at(v, end);
        else if (q + 1 < end && q[1] == 'n' && !*next && (v = key_at(q, end, "next_cursor", 11)))
            *next = value_at(v, end);
        q = v ? v : q + 1;
    }
}

/* One pass over the page's '{' (see "Reading a results page cheaply" above): an entry opens
 * with `{"entity_id":`, a prediction is the object after `"prediction":`; both sit next to a
 * '{', which a page has eight times fewer of than quotes. next_cursor and metadata follow the
 * results: their keys are looked for in the page's tail (the whole page if not there). */
#define PROBE_TAIL 4096
static void page_probe(conn_t *c, page_t *pg) {
    const char *b = c->body ? c->body : "", *q = b, *end = b + c->len;
    json_t *next = NULL, *ms = NULL;
    memset(pg, 0, sizeof *pg);
    pg->execution_time_ms = NAN;
    static const char PRED[] = "\"prediction\"";
    const size_t pl = sizeof PRED - 1;
    while (q < end && (q = memchr(q, '{', (size_t)(end - q))) != NULL) {
        const char *k = q + 1;
        while (k < end && blank(*k)) k++;
        if (k < end && *k == '"' && key_at(k, end, "entity_id", 9)) pg->results++;
        const char *p = q - 1;
        while (p > b && blank(*p)) p--;
        if (p > b && *p == ':') {
            p--;
            while (p > b && blank(*p)) p--;
            if ((size_t)(p - b) + 1 >= pl && memcmp(p + 1 - pl, PRED, pl) == 0) pg->predictions++;
        }
        q++;
    }
    probe_tail(c->len > PROBE_TAIL ? end - PROBE_TAIL : b, end, &next, &ms);
    if (!next && c->len > PROBE_TAIL) probe_tail(b, end, &next, &ms);
    set_cursor(c->curl, pg, next);
    if (json_is_number(ms))
        pg->execution_time_ms = json_number_value(ms);
    json_decref(next);
    json_decref(ms);
}

/* The checking read of a page: a full, validating parse with yajl's event parser (a syntax
 * error anywhere fails it), counting results entries and their prediction objects and taking
 * next_cursor and metadata.execution_time_ms: the same facts as the probe, found a different
 * way. A tree of the page (jansson) cost ~6 ms of the generator's CPU a page; this ~0.5 ms. */
typedef struct {
    int depth;           /* open containers; the page object is depth 1 */
    int in_results;      /* depth of the results array, 0 outside it */
    int in_metadata;     /* depth of the metadata object, 0 outside it */
    enum { K_NONE, K_RESULTS, K_NEXT, K_METADATA, K_EXEC_MS, K_PREDICTION } key;
    long results, predictions;
    double exec_ms;
    char cursor[512];
    int cursor_set;
} check_t;

static int ck_scalar(check_t *k) {
    k->key = K_NONE;
    return 1;
}
static int ck_null(void *ctx) { return ck_scalar(ctx); }
static int ck_bool(void *ctx, int b) {
    (void)b;
    return ck_scalar(ctx);
}
static int ck_number(void *ctx, const char *s, size_t l) {
    check_t *k = ctx;
    if (k->key == K_EXEC_MS) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(l < 63 ? l : 63), s);
        k->exec_ms = strtod(tmp, NULL);
    } else if (k->key == K_NEXT) {
        snprintf(k->cursor, sizeof k->cursor, "%.*s", (int)(l < 500 ? l : 500), s);
        k->cursor_set = 1;
    }
    return ck_scalar(k);
}
static int ck_string(void *ctx, const unsigned char *s, size_t l) {
    check_t *k = ctx;
    if (k->key == K_NEXT && l > 0) {
        snprintf(k->cursor, sizeof k->cursor, "%.*s", (int)(l < 500 ? l : 500), (const char *)s);
        k->cursor_set = 1;
    }
    return ck_scalar(k);
}
static int ck_key(void *ctx, const unsigned char *s, size_t l) {
    check_t *k = ctx;
#define KEY_IS(lit) (l == sizeof lit - 1 && memcmp(s, lit, l) == 0)
    k->key = K_NONE;
    if (k->depth == 1) {
        if (KEY_IS("results")) k->key = K_RESULTS;
        else if (KEY_IS("next_cursor")) k->key = K_NEXT;
        else if (KEY_IS("metadata")) k->key = K_METADATA;
    } else if (k->in_metadata && k->depth == k->in_metadata && KEY_IS("execution_time_ms")) {
        k->key = K_EXEC_MS;
    } else if (k->in_results && k->depth == k->in_results + 1 && KEY_IS("prediction")) {
        k->key = K_PREDICTION;
    }
#undef KEY_IS
    return 1;
}
static int ck_start_map(void *ctx) {
    check_t *k = ctx;
    if (k->key == K_METADATA) k->in_metadata = k->depth + 1;
    if (k->key == K_PREDICTION) k->predictions++;
    if (k->in_results && k->depth == k->in_results) k->results++; /* an entry of the array */
    k->key = K_NONE;
    k->depth++;
    return 1;
}
static int ck_end(void *ctx) {
    check_t *k = ctx;
    if (k->in_metadata == k->depth) k->in_metadata = 0;
    if (k->in_results == k->depth) k->in_results = 0;
    k->depth--;
    k->key = K_NONE;
    return 1;
}
static int ck_start_array(void *ctx) {
    check_t *k = ctx;
    if (k->key == K_RESULTS) k->in_results = k->depth + 1;
    k->key = K_NONE;
    k->depth++;
    return 1;
}
static const yajl_callbacks CHECK_CB = {
    .yajl_null = ck_null, .yajl_boolean = ck_bool, .yajl_number = ck_number, .yajl_string = ck_string,
    .yajl_start_map = ck_start_map, .yajl_map_key = ck_key, .yajl_end_map = ck_end,
    .yajl_start_array = ck_start_array, .yajl_end_array = ck_end,
};

static int page_parse(conn_t *c, phase_t *p, page_t *pg) {
    check_t k;
    memset(&k, 0, sizeof k);
    k.exec_ms = NAN;
    yajl_handle h = yajl_alloc(&CHECK_CB, NULL, &k);
    if (!h) {
        phase_fail(p, "results: out of memory");
        return -1;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)(c->body ? c->body : ""), c->len);
    if (st == yajl_status_ok) st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        unsigned char *e = yajl_get_error(h, 0, NULL, 0);
        phase_fail(p, "results: malformed JSON (%s) in %.200s", e ? (const char *)e : "?", c->body);
        if (e) yajl_free_error(h, e);
        yajl_free(h);
        return -1;
    }
    yajl_free(h);
    memset(pg, 0, sizeof *pg);
    pg->results = k.results;
    pg->predictions = k.predictions;
    pg->execution_time_ms = k.exec_ms;
    pg->cursor[0] = '\0';
    if (k.cursor_set) {
        char *esc = curl_easy_escape(c->curl, k.cursor, 0);
        snprintf(pg->cursor, sizeof pg->cursor, "%s", esc ? esc : "");
        curl_free(esc);
    }
    return 0;
}

/* Fetches every results page, following next_cursor; full: parse every page with jansson
 * too and check the probe against it. Returns 0, or -1 with the phase failed. */
static int api_fetch_results(conn_t *c, phase_t *p, const char *job_id, int full, fetched_t *out) {
    char path[1024], err[256];
    page_t pg = {0}, chk;
    out->results = out->predictions = 0;
    out->execution_time_ms = NAN;
    out->check_ms = 0;
    for (int page = 0; page < MAX_PAGES && phase_going(p); page++) {
        if (pg.cursor[0])
            snprintf(path, sizeof path, "/api/v1/jobs/%s/results?cursor=%s", job_id, pg.cursor);
        else
            snprintf(path, sizeof path, "/api/v1/jobs/%s/results", job_id);
        long code = conn_request(c, path, NULL, 0, err, sizeof err);
        if (code < 0) {
            phase_fail(p, "%s", err);
            return -1;
        }
        if (code != 200) {
            phase_fail(p, "results %s: HTTP %ld %.200s", job_id, code, c->body);
            return -1;
        }
        page_probe(c, &pg);
        if (full) {
            double tc = now_s();
            int bad = page_parse(c, p, &chk);
            out->check_ms += (now_s() - tc) * 1000;
            if (bad)
                return -1;
            if (chk.results != pg.results || chk.predictions != pg.predictions ||
                strcmp(chk.cursor, pg.cursor) != 0) {
                phase_fail(p, "results %s: probe read %ld/%ld/'%s', full parse %ld/%ld/'%s'", job_id,
                           pg.results, pg.predictions, pg.cursor, chk.results, chk.predictions,
                           chk.cursor);
                return -1;
            }
        }
        out->results += pg.results;
        out->predictions += pg.predictions;
        if (!isnan(pg.execution_time_ms))
            out->execution_time_ms = pg.execution_time_ms;
        if (!pg.cursor[0])
            return 0;
    }
    if (!atomic_load(&p->failed))
        phase_fail(p, "results %s: more than %d pages", job_id, MAX_PAGES);
    return -1;
}

/* Submit, poll, fetch. Returns 0 and the final status answer in *job (caller decrefs). */
static int api_run_job(conn_t *c, phase_t *p, const char *body, size_t len, int full,
                       fetched_t *f, json_t **job) {
    char id[128];
    double t0 = now_s(), t1, t2;
    *job = NULL;
    if (api_submit(c, p, body, len, id, sizeof id, &f->completed_at_post))
        return -1;
    t1 = now_s();
    if (!(*job = api_wait_done(c, p, id, p->o->poll_ms)))
        return -1;
    t2 = now_s();
    int rc = api_fetch_results(c, p, id, full, f);
    f->post_ms = (t1 - t0) * 1000;
    f->wait_ms = (t2 - t1) * 1000;
    f->results_ms = (now_s() - t2) * 1000 - f->check_ms;
    return rc;
}

/* ---------------------------------------------------------------- threads */

typedef struct {
    phase_t *p;
    conn_t conn;
    sampler_t sampler;
    samples_t lat, lat2; /* phase-specific meaning */
    breakdown_t where;
    long predictions, completed_at_post;
    /* phase 1 */
    char **bodies;
    size_t *lens;
    char (*ids)[128];
    double *trace; /* per job: start (s, monotonic) and latency (ms), for --trace */
    atomic_int *next;
    int total;
    /* phase 2 */
    double window_end;
    /* phase 4 */
    const char *body;
    size_t body_len;
} worker_t;

typedef void *(*thread_fn)(void *);

/* Runs fn on n workers; each gets its own connection (and sampler if seed_base != 0). */
static int run_workers(worker_t *w, int n, thread_fn fn) {
    pthread_t t[MAX_CLIENTS];
    int started = 0;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&t[i], NULL, fn, &w[i]) != 0) {
            phase_fail(w[i].p, "pthread_create failed");
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    return started == n ? 0 : -1;
}

static void workers_free(worker_t *w, int n) {
    if (!w)
        return;
    for (int i = 0; i < n; i++) {
        conn_close(&w[i].conn);
        sampler_free(&w[i].sampler);
        samples_free(&w[i].lat);
        samples_free(&w[i].lat2);
        breakdown_free(&w[i].where);
    }
    free(w);
}

static worker_t *workers_new(phase_t *p, int n, uint64_t seed) {
    worker_t *w = calloc((size_t)n, sizeof *w);
    if (!w)
        return NULL;
    for (int i = 0; i < n; i++) {
        w[i].p = p;
        if (conn_open(&w[i].conn, p->o) ||
            sampler_init(&w[i].sampler, p->o->entities, seed * 1000003ULL + (uint64_t)i)) {
            phase_fail(p, "out of memory");
            workers_free(w, n);
            return NULL;
        }
    }
    return w;
}

/* ---------------------------------------------------------------- phase 0: readiness, warm-up */

static void *warmup_thread(void *arg) {
    worker_t *w = arg;
    size_t len;
    char *body = job_body(&w->sampler, w->p->o->size, w->p->o->fresh, &len);
    fetched_t f;
    json_t *job = NULL;
    if (body && !api_run_job(&w->conn, w->p, body, len, 1, &f, &job) && f.predictions != w->p->o->size)
        phase_fail(w->p, "warm-up: %ld predictions for %d entities", f.predictions, w->p->o->size);
    json_decref(job);
    free(body);
    return NULL;
}

static int warm_up(const opts_t *o, json_t *out) {
    phase_t p, warm;
    phase_init(&p, o, 30);
    conn_t c;
    char err[256] = "";
    long code = -1;
    if (conn_open(&c, o))
        return -1;
    while (phase_going(&p)) { /* any answer will do: the server listens */
        if ((code = conn_request(&c, "/api/v1/jobs/readiness-probe", NULL, 0, err, sizeof err)) > 0)
            break;
        sleep_ms(100);
    }
    conn_close(&c);
    if (code < 0) {
        json_object_set_new(out, "error", json_sprintf("server not answering: %s", err));
        return -1;
    }
    phase_init(&warm, o, 60); /* worker start, graph load, connections: 4 jobs */
    worker_t *w = workers_new(&warm, 4, o->seed + 7);
    if (w)
        run_workers(w, 4, warmup_thread);
    workers_free(w, 4);
    if (atomic_load(&warm.failed)) {
        json_object_set_new(out, "error", json_sprintf("warm-up: %s", warm.error));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- phase 1: submit */

static void *submit_thread(void *arg) {
    worker_t *w = arg;
    for (;;) {
        int i = atomic_fetch_add(w->next, 1);
        if (i >= w->total || !phase_going(w->p))
            break;
        double t = now_s();
        int completed = 0;
        if (api_submit(&w->conn, w->p, w->bodies[i], w->lens[i], w->ids[i], sizeof w->ids[i],
                       &completed))
            break;
        w->completed_at_post += completed;
        samples_add(&w->lat, (now_s() - t) * 1000);
        w->trace[2 * i] = t;
        w->trace[2 * i + 1] = (now_s() - t) * 1000;
    }
    return NULL;
}

static json_t *phase_submit(const opts_t *o, phase_t *p) {
    int n = o->jobs;
    char **bodies = calloc((size_t)n, sizeof *bodies);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    char(*ids)[128] = calloc((size_t)n, sizeof *ids);
    double *trace = calloc(2 * (size_t)n, sizeof *trace);
    atomic_int next;
    atomic_init(&next, 0);
    sampler_t s = {0};
    samples_t lat = {0};
    json_t *out = NULL;
    worker_t *w = NULL;
    if (!bodies || !lens || !ids || !trace || sampler_init(&s, o->entities, o->seed + 1))
        goto fail;
    for (int i = 0; i < n; i++)
        if (!(bodies[i] = job_body(&s, o->size, o->fresh, &lens[i])))
            goto fail;
    if (!(w = workers_new(p, o->clients, o->seed + 11)))
        goto fail;
    for (int i = 0; i < o->clients; i++) {
        w[i].bodies = bodies;
        w[i].lens = lens;
        w[i].ids = ids;
        w[i].trace = trace;
        w[i].next = &next;
        w[i].total = n;
    }
    double t0 = now_s();
    run_workers(w, o->clients, submit_thread);
    double t1 = now_s();
    if (o->trace_path) { /* where in the phase the slow ones were: job, start ms, latency ms */
        FILE *f = fopen(o->trace_path, "w");
        for (int i = 0; f && i < n && i < atomic_load(&next); i++)
            if (trace[2 * i] > 0) fprintf(f, "%d %.3f %.3f\n", i, (trace[2 * i] - t0) * 1000, trace[2 * i + 1]);
        if (!f || fclose(f) != 0) fprintf(stderr, "loadgen: cannot write %s\n", o->trace_path);
    }
    long at_post = 0;
    for (int i = 0; i < o->clients; i++) {
        samples_merge(&lat, &w[i].lat);
        at_post += w[i].completed_at_post;
    }
    for (int i = 0; i < n && !atomic_load(&p->failed); i++) {
        json_t *job = api_wait_done(&w[0].conn, p, ids[i], 10);
        json_decref(job);
    }
    double t2 = now_s();
    out = json_pack("{s:o, s:I, s:o, s:o}", "latency", summary(&lat), "completed_at_post",
                    (json_int_t)at_post, "submissions_per_s",
                    json_real(round((double)lat.n / (t1 - t0) * 10) / 10), "all_completed_after_s",
                    atomic_load(&p->failed) ? json_null() : json_real(round((t2 - t0) * 100) / 100));
fail:
    if (!out)
        phase_fail(p, "out of memory");
    workers_free(w, o->clients);
    for (int i = 0; bodies && i < n; i++)
        free(bodies[i]);
    free(bodies);
    free(lens);
    free(ids);
    free(trace);
    sampler_free(&s);
    samples_free(&lat);
    return out;
}

/* ---------------------------------------------------------------- phase 2: sustained */

static void *sustained_thread(void *arg) {
    worker_t *w = arg;
    /* a job still in flight at the end of the window finishes but is not counted */
    for (long k = 0; k < 10000000 && now_s() < w->window_end && phase_going(w->p); k++) {
        size_t len;
        char *body = job_body(&w->sampler, w->p->o->size, w->p->o->fresh, &len);
        if (!body) {
            phase_fail(w->p, "out of memory");
            break;
        }
        double t = now_s();
        fetched_t f;
        json_t *job = NULL;
        int rc = api_run_job(&w->conn, w->p, body, len, k % FULL_PARSE_EVERY == 0, &f, &job);
        free(body);
        if (!rc && now_s() <= w->window_end) {
            w->predictions += f.predictions;
            w->completed_at_post += f.completed_at_post;
            samples_add(&w->lat, (now_s() - t) * 1000 - f.check_ms);
            breakdown_add(&w->where, job);
        }
        json_decref(job);
        if (rc)
            break;
    }
    return NULL;
}

static json_t *phase_sustained(const opts_t *o, phase_t *p) {
    worker_t *w = workers_new(p, o->clients, o->seed + 21);
    if (!w)
        return NULL;
    double end = now_s() + o->duration_s;
    p->deadline = end + o->phase_timeout_s;
    for (int i = 0; i < o->clients; i++)
        w[i].window_end = end;
    run_workers(w, o->clients, sustained_thread);
    samples_t lat = {0};
    breakdown_t where = {0};
    long preds = 0, at_post = 0;
    for (int i = 0; i < o->clients; i++) {
        at_post += w[i].completed_at_post;
        samples_merge(&lat, &w[i].lat);
        samples_merge(&where.queued, &w[i].where.queued);
        samples_merge(&where.executing, &w[i].where.executing);
        preds += w[i].predictions;
    }
    json_t *out = json_pack(
        "{s:f, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "seconds", o->duration_s, "jobs_completed",
        (json_int_t)lat.n, "completed_at_post", (json_int_t)at_post, "predictions", (json_int_t)preds, "predictions_per_min",
        (json_int_t)llround((double)preds / o->duration_s * 60), "jobs_per_s",
        json_real(round((double)lat.n / o->duration_s * 10) / 10), "job_latency", summary(&lat),
        "server_side", breakdown_report(&where));
    samples_free(&lat);
    breakdown_free(&where);
    workers_free(w, o->clients);
    return out;
}

/* ---------------------------------------------------------------- phase 3: e2e */

static json_t *phase_e2e(const opts_t *o, phase_t *p) {
    worker_t *w = workers_new(p, 1, o->seed + 31);
    if (!w)
        return NULL;
    samples_t lat = {0}, exec = {0}, post = {0}, wait = {0}, fetch = {0};
    breakdown_t where = {0};
    long at_post = 0;
    for (int i = 0; i < o->e2e_runs && phase_going(p); i++) {
        size_t len;
        char *body = job_body(&w->sampler, o->size, o->fresh, &len);
        if (!body)
            break;
        double t = now_s();
        fetched_t f;
        json_t *job = NULL;
        int rc = api_run_job(&w->conn, p, body, len, 1, &f, &job);
        double ms = (now_s() - t) * 1000 - f.check_ms;
        free(body);
        if (!rc) {
            samples_add(&lat, ms);
            samples_add(&post, f.post_ms);
            samples_add(&wait, f.wait_ms);
            samples_add(&fetch, f.results_ms);
            at_post += f.completed_at_post;
            breakdown_add(&where, job);
            if (!isnan(f.execution_time_ms))
                samples_add(&exec, f.execution_time_ms);
            if (f.predictions != o->size)
                phase_fail(p, "e2e: %ld predictions for %d entities", f.predictions, o->size);
        }
        json_decref(job);
        sleep_ms(50);
    }
    double first = lat.n ? lat.v[0] : NAN; /* before pct() sorts */
    /* client side: POST answered, polled until COMPLETED, every results page read */
    json_t *steps = json_pack("{s:o, s:o, s:o}", "post_p50_ms", jround(pct(&post, 50)),
                              "wait_p50_ms", jround(pct(&wait, 50)), "results_p50_ms",
                              jround(pct(&fetch, 50)));
    json_t *out = json_pack("{s:o, s:o, s:I, s:o, s:o, s:o}", "latency", summary(&lat), "first_ms",
                            jround(first), "completed_at_post", (json_int_t)at_post,
                            "client_side", steps, "server_side", breakdown_report(&where),
                            "metadata_execution_time_ms_p50", jround(pct(&exec, 50)));
    samples_free(&post);
    samples_free(&wait);
    samples_free(&fetch);
    samples_free(&lat);
    samples_free(&exec);
    breakdown_free(&where);
    workers_free(w, 1);
    return out;
}

/* ---------------------------------------------------------------- phase 4: cache */

static void *cache_thread(void *arg) {
    worker_t *w = arg;
    const opts_t *o = w->p->o;
    for (;;) {
        int i = atomic_fetch_add(w->next, 1);
        if (i >= w->total || !phase_going(w->p))
            break;
        char id[128];
        int completed = 0;
        double t = now_s();
        if (api_submit(&w->conn, w->p, w->body, w->body_len, id, sizeof id, &completed))
            break;
        samples_add(&w->lat, (now_s() - t) * 1000);
        if (completed) {
            w->completed_at_post++;
        } else { /* not answered from the cache at once: wait for it, and count the time */
            json_t *job = api_wait_done(&w->conn, w->p, id, o->poll_ms);
            if (!job)
                break;
            json_decref(job);
        }
        fetched_t f;
        if (api_fetch_results(&w->conn, w->p, id, i % FULL_PARSE_EVERY == 0, &f))
            break;
        samples_add(&w->lat2, (now_s() - t) * 1000 - f.check_ms);
        if (f.results != o->size) {
            phase_fail(w->p, "cache: %ld results for %d entities", f.results, o->size);
            break;
        }
    }
    return NULL;
}

static json_t *cache_repeat(const opts_t *o, phase_t *p, const char *body, size_t len, int n) {
    worker_t *w = workers_new(p, n, o->seed + 41);
    if (!w)
        return NULL;
    atomic_int next;
    atomic_init(&next, 0);
    for (int i = 0; i < n; i++) {
        w[i].next = &next;
        w[i].total = o->jobs;
        w[i].body = body;
        w[i].body_len = len;
    }
    run_workers(w, n, cache_thread);
    samples_t post = {0}, full = {0};
    long at_post = 0;
    for (int i = 0; i < n; i++) {
        samples_merge(&post, &w[i].lat);
        samples_merge(&full, &w[i].lat2);
        at_post += w[i].completed_at_post;
    }
    json_t *out = json_pack("{s:o, s:o, s:I}", "post", summary(&post), "post_and_results",
                            summary(&full), "completed_at_post", (json_int_t)at_post);
    samples_free(&post);
    samples_free(&full);
    workers_free(w, n);
    return out;
}

static json_t *phase_cache(const opts_t *o, phase_t *p) {
    sampler_t s;
    if (sampler_init(&s, o->entities, o->seed + 51))
        return NULL;
    size_t len;
    char *body = job_body(&s, o->size, 0, &len); /* the one repeated request */
    sampler_free(&s);
    if (!body)
        return NULL;
    json_t *out = NULL;
    conn_t c;
    fetched_t f;
    json_t *job = NULL;
    if (!conn_open(&c, o) && !api_run_job(&c, p, body, len, 1, &f, &job)) {
        char key[32];
        snprintf(key, sizeof key, "clients_%d", o->clients);
        out = json_object();
        json_object_set_new(out, "clients_1", cache_repeat(o, p, body, len, 1));
        if (!atomic_load(&p->failed))
            json_object_set_new(out, key, cache_repeat(o, p, body, len, o->clients));
    }
    json_decref(job);
    conn_close(&c);
    free(body);
    return out;
}

/* ---------------------------------------------------------------- main */

static int usage(const char *argv0, FILE *f, int rc) {
    fprintf(f,
            "usage: %s [--host 127.0.0.1] [--port 8000] [--entities 100000] [--size 1000]\n"
            "          [--jobs 200] [--clients 8] [--duration 30] [--poll-ms 10] [--e2e-runs 20]\n"
            "          [--phase-timeout 60] [--seed time] [--phases submit,sustained,e2e,cache]\n"
            "          [--same-params] [--json FILE] [--trace FILE] [--status-wait-ms 0]\n"
            "Load generator for the Ising batch API (loopback targets only).\n"
            "--trace FILE: the submit phase's requests, a line each: job, start (ms into the\n"
            "phase), latency (ms); shows whether the slow ones come together (a pause) or not.\n"
            "--status-wait-ms N: status reads wait on the server (predictd's ?wait_ms=) instead\n"
            "of sleeping --poll-ms between reads; not the peer's protocol (its figures are not\n"
            "the goals' comparison).\n",
            argv0);
    return rc;
}

static int parse_opts(int argc, char **argv, opts_t *o, char *phases, size_t plen) {
    *o = (opts_t){.port = 8000, .entities = 100000, .size = 1000, .jobs = 200, .clients = 8,
                  .e2e_runs = 20, .fresh = 1, .duration_s = 30, .poll_ms = 10, .phase_timeout_s = 60,
                  .seed = (uint64_t)time(NULL)};
    snprintf(o->host, sizeof o->host, "127.0.0.1");
    snprintf(phases, plen, "submit,sustained,e2e,cache");
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},     {"port", 1, 0, 'p'},          {"entities", 1, 0, 'n'},
        {"size", 1, 0, 's'},     {"jobs", 1, 0, 'j'},          {"clients", 1, 0, 'c'},
        {"duration", 1, 0, 'd'}, {"poll-ms", 1, 0, 'P'},       {"e2e-runs", 1, 0, 'e'},
        {"seed", 1, 0, 'S'},     {"phase-timeout", 1, 0, 'T'}, {"json", 1, 0, 'o'},
        {"phases", 1, 0, 'x'},   {"help", 0, 0, 'h'},          {"same-params", 0, 0, 'R'},
        {"trace", 1, 0, 't'},    {"status-wait-ms", 1, 0, 'W'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': snprintf(o->host, sizeof o->host, "%s", optarg); break;
        case 'p': o->port = atoi(optarg); break;
        case 'n': o->entities = atoi(optarg); break;
        case 's': o->size = atoi(optarg); break;
        case 'j': o->jobs = atoi(optarg); break;
        case 'c': o->clients = atoi(optarg); break;
        case 'd': o->duration_s = atof(optarg); break;
        case 'P': o->poll_ms = atof(optarg); break;
        case 'e': o->e2e_runs = atoi(optarg); break;
        case 'S': o->seed = strtoull(optarg, NULL, 10); break;
        case 'T': o->phase_timeout_s = atof(optarg); break;
        case 'o': o->json_path = optarg; break;
        case 't': o->trace_path = optarg; break;
        case 'W': o->status_wait_ms = atol(optarg); break;
        case 'x': snprintf(phases, plen, "%s", optarg); break;
        case 'R': o->fresh = 0; break;
        case 'h': exit(usage(argv[0], stdout, 0));
        default: return -1;
        }
    }
    if (optind != argc)
        return -1;
    if (!strcmp(o->host, "localhost"))
        snprintf(o->host, sizeof o->host, "127.0.0.1");
    struct in_addr a;
    if (inet_pton(AF_INET, o->host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: only loopback addresses (127.0.0.0/8) are allowed as targets\n");
        return -1;
    }
    if (o->port < 1 || o->port > 65535 || o->entities < 1 || o->size < 1 ||
        o->size > o->entities || o->jobs < 1 || o->clients < 1 || o->clients > MAX_CLIENTS ||
        o->e2e_runs < 1 || !(o->duration_s > 0 && o->duration_s <= 3600) ||
        !(o->poll_ms >= 0 && o->poll_ms <= 10000) ||
        !(o->phase_timeout_s > 0 && o->phase_timeout_s <= 3600)) {
        fprintf(stderr, "loadgen: an option is out of range\n");
        return -1;
    }
    snprintf(o->base, sizeof o->base, "http://%s:%d", o->host, o->port);
    return 0;
}

typedef json_t *(*phase_fn)(const opts_t *, phase_t *);

int main(int argc, char **argv) {
    opts_t o;
    char phases[128];
    if (parse_opts(argc, argv, &o, phases, sizeof phases))
        return usage(argv[0], stderr, 2);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    static const struct {
        const char *name;
        phase_fn fn;
    } all[] = {{"submit", phase_submit},
               {"sustained", phase_sustained},
               {"e2e", phase_e2e},
               {"cache", phase_cache}};
    json_t *out = json_object();
    double t0 = now_s();
    int rc = 0;
    if (warm_up(&o, out)) {
        fprintf(stderr, "loadgen: %s\n", json_string_value(json_object_get(out, "error")));
        rc = 1;
    }
    for (size_t k = 0; !rc && k < sizeof all / sizeof all[0]; k++) {
        char want[130];
        snprintf(want, sizeof want, ",%s,", phases);
        char key[32];
        snprintf(key, sizeof key, ",%s,", all[k].name);
        if (!strstr(want, key))
            continue;
        phase_t p;
        phase_init(&p, &o, o.phase_timeout_s);
        json_t *r = all[k].fn(&o, &p);
        if (!r)
            r = json_object();
        if (atomic_load(&p.failed)) {
            json_object_set_new(r, "error", json_string(p.error));
            rc = 1;
        }
        char *line = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(12));
        printf("%s: %s\n", all[k].name, line ? line : "{}");
        fflush(stdout);
        free(line);
        json_object_set_new(out, all[k].name, r);
    }
    json_object_set_new(out, "loadgen",
                        json_pack("{s:o, s:o, s:I, s:i, s:i, s:b}", "cpu_s", jround(cpu_self_s()),
                                  "wall_s", jround(now_s() - t0), "seed", (json_int_t)o.seed,
                                  "clients", o.clients, "size", o.size, "fresh_params", o.fresh));
    printf("loadgen: cpu %.2f s, wall %.2f s\n", cpu_self_s(), now_s() - t0);
    if (o.json_path && json_dump_file(out, o.json_path, JSON_INDENT(2) | JSON_REAL_PRECISION(12)) != 0) {
        fprintf(stderr, "loadgen: cannot write %s\n", o.json_path);
        rc = 1;
    }
    json_decref(out);
    curl_global_cleanup();
    return rc;
}
