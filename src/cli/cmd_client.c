/* The client commands: submit, status, results, jobs. They speak the HTTP API (docs/api.md)
 * through libcurl and print either what a person reads (tables, a progress bar on a
 * terminal) or what a script reads (a job id, JSON, JSON lines). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/util.h"

static const char *const TERMINAL[] = {"COMPLETED", "FAILED", "CANCELLED"};

static int is_terminal(const char *status) {
    for (size_t i = 0; status && i < sizeof TERMINAL / sizeof TERMINAL[0]; i++)
        if (!strcmp(status, TERMINAL[i])) return 1;
    return 0;
}

static const char *str_or(const char *s, const char *dflt) { return s ? s : dflt; }

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

/* A value as text: strings raw, everything else as compact JSON. Caller frees. */
static char *value_text(const json_t *v) {
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_real(v)) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.6g", json_real_value(v));
        return strdup(tmp);
    }
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    return s ? s : strdup("-");
}

static void print_json(const json_t *v, int pretty) {
    char *s = json_dumps(v, pretty ? JSON_INDENT(2) : JSON_COMPACT);
    if (s) puts(s);
    free(s);
}

/* GET path and parse; on an error answer prints it. Returns NULL on any failure. */
static json_t *get_json(const char *url, const char *path, long *status) {
    cli_http_t res;
    json_t *out = NULL;
    if (cli_http(url, "GET", path, NULL, NULL, 0, NULL, &res) == 0) {
        if (status) *status = res.status;
        if (res.status >= 200 && res.status < 300) out = cli_http_json(&res);
        else cli_print_http_error(&res);
    }
    buf_free(&res.body);
    return out;
}

/* ---- submit ------------------------------------------------------------------------ */

static void submit_usage(FILE *out) {
    fprintf(out,
            "usage: predictd submit [OPTIONS] (--ids ID,ID,... | --ids-file FILE) --temperature T\n"
            "\n"
            "Submits one batch prediction job (POST /api/v1/predict/batch/MODEL). The job is\n"
            "durable once this prints its id; the computation runs in the background.\n"
            "Prints the job id (or the server's JSON answer with --json).\n"
            "\n"
            "options:\n"
            "  -m, --model NAME           model to run (default ising)\n"
            "  -i, --ids A,B,C            entity ids, comma-separated\n"
            "  -f, --ids-file FILE        entity ids, one per line ('-' reads stdin; blank lines\n"
            "                             and lines starting with # are skipped)\n"
            "  -T, --temperature T        Ising temperature, > 0 (parameters.temperature)\n"
            "  -H, --time-horizon DUR     prediction horizon: 90s, 30m, 24h, 7d (default 24h)\n"
            "  -p, --param KEY=VALUE      any other parameter, repeatable; VALUE is sent as a\n"
            "                             number, true/false/null, JSON [..]/{..} or a string\n"
            "  -P, --priority N           0..9, higher runs first (default 0)\n"
            "  -k, --idempotency-key KEY  the same key returns the same job (safe retries)\n"
            "  -w, --wait                 wait until the job finishes; a progress bar is drawn\n"
            "                             on stderr when it is a terminal; exit 1 unless COMPLETED\n"
            "  -j, --json                 print the JSON answer (with --wait: the final status)\n"
            "  -u, --url URL              server (default $PREDICTD_URL or %s)\n"
            "  -h, --help                 this help\n"
            "\n"
            "examples:\n"
            "  predictd submit --ids ACTOR-000001,ACTOR-000002 --temperature 2.0\n"
            "  predictd submit --ids-file ids.txt --temperature 1.5 --time-horizon 7d --wait\n"
            "  seq -f 'ACTOR-%%06g' 1 1000 | predictd submit --ids-file - -T 2 -p attempt_rate=0.5\n"
            "  JOB=$(predictd submit -i ACTOR-000001 -T 2 -k nightly-2026-11-25) && predictd status $JOB\n",
            CLI_DEFAULT_URL);
}

/* "2.5" -> 2.5, "true" -> true, "[1,2]" -> array, anything else -> string. */
static json_t *param_value(const char *v) {
    if (!*v) return json_string(v);
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*end && !errno) return json_integer(n);
    double d = strtod(v, &end);
    if (!*end && isfinite(d) && !isspace((unsigned char)*v)) return json_real(d);
    if (!strcmp(v, "true")) return json_true();
    if (!strcmp(v, "false")) return json_false();
    if (!strcmp(v, "null")) return json_null();
    if (*v == '[' || *v == '{') {
        json_error_t je;
        json_t *j = json_loads(v, 0, &je);
        if (j) return j;
    }
    return json_string(v);
}

static int add_ids_text(json_t *ids, char *text, const char *seps) {
    char *save = NULL;
    for (char *t = strtok_r(text, seps, &save); t; t = strtok_r(NULL, seps, &save)) {
        while (isspace((unsigned char)*t)) t++;
        size_t n = strlen(t);
        while (n > 0 && isspace((unsigned char)t[n - 1])) t[--n] = 0;
        if (!n || *t == '#') continue;
        if (json_array_append_new(ids, json_string(t))) return -1;
    }
    return 0;
}

static int read_all(const char *path, buf_t *out) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(out, chunk, n);
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    buf_putc(out, 0);
    out->len--;
    if (bad || out->oom) {
        fprintf(stderr, "error: %s: %s\n", path, bad ? "read error" : "out of memory");
        return -1;
    }
    return 0;
}

/* How long one status read of `submit --wait` and `status --wait` may wait on the server. */
#define WAIT_READ_MS 1000

static void draw_bar(double progress, const char *status, double elapsed_s, int final) {
    const int width = 30;
    if (progress < 0) progress = 0;
    if (progress > 1) progress = 1;
    int fill = (int)(progress * width + 0.5);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '-';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %5.1f%%  %-10s %6.1fs\033[K%s", bar, progress * 100.0,
            status ? status : "?", elapsed_s, final ? "\n" : "");
    fflush(stderr);
}

/* Follows the job until it is terminal: each status read waits on the server until the job
 * moves (?wait_ms=), so the bar moves when the job does, without polling. Returns the last
 * status JSON (caller decrefs), or NULL when the server stayed unreachable for 60 s or the
 * job vanished. */
static json_t *wait_job(const char *url, const char *job_id, int bar) {
    char *esc = cli_escape(job_id);
    char path[512];
    snprintf(path, sizeof path, "/api/v1/jobs/%s?wait_ms=%d", esc ? esc : job_id, WAIT_READ_MS);
    free(esc);
    double t0 = mono_s(), last_ok = t0;
    long delay_ms = 100;
    double last_p = -1;
    json_t *job = NULL;
    for (;;) {
        cli_http_t res;
        double t_read = mono_s();
        int rc = cli_http_quiet(url, "GET", path, NULL, NULL, 0, NULL, &res, 1);
        if (rc == 0 && res.status == 200) {
            json_decref(job);
            job = cli_http_json(&res);
            buf_free(&res.body);
            if (!job) return NULL;
            last_ok = mono_s();
            const char *st = json_string_value(json_object_get(job, "status"));
            double p = json_number_value(json_object_get(job, "progress"));
            int done = is_terminal(st);
            if (bar) draw_bar(done && st && !strcmp(st, "COMPLETED") ? 1.0 : p, st, mono_s() - t0, done);
            if (done) return job;
            /* the server waited for the job to move: ask again at once. A fast answer is a
             * chunk settling (the next read waits 0.1 s: the bar needs no more) or a server
             * that does not wait (then the reads back off as plain polling, up to 1 s). */
            if (mono_s() - t_read >= 0.05) {
                delay_ms = 100;
                last_p = p;
                continue;
            }
            if (p != last_p) delay_ms = 100;
            last_p = p;
        } else if (rc == 0 && res.status != 503) {
            if (bar) fputc('\n', stderr);
            cli_print_http_error(&res);
            buf_free(&res.body);
            json_decref(job);
            return NULL;
        } else {
            buf_free(&res.body);
            /* The server is restarting (503 while recovering, or refused): keep waiting. */
            if (mono_s() - last_ok > 60) {
                if (bar) fputc('\n', stderr);
                fprintf(stderr, "error: gave up waiting for %s: %s did not answer for 60 s (%s)\n", job_id,
                        url, res.err[0] ? res.err : "503");
                json_decref(job);
                return NULL;
            }
        }
        sleep_ms(delay_ms);
        delay_ms = delay_ms * 3 / 2;
        if (delay_ms > 1000) delay_ms = 1000;
    }
}

int cmd_submit(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"ids", required_argument, 0, 'i'},
        {"ids-file", required_argument, 0, 'f'},
        {"temperature", required_argument, 0, 'T'},
        {"time-horizon", required_argument, 0, 'H'},
        {"param", required_argument, 0, 'p'},
        {"priority", required_argument, 0, 'P'},
        {"idempotency-key", required_argument, 0, 'k'},
        {"wait", no_argument, 0, 'w'},
        {"json", no_argument, 0, 'j'},
        {"url", required_argument, 0, 'u'},
        {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = "ising", *ids_file = NULL, *temperature = NULL, *horizon = NULL;
    const char *priority = NULL, *idem = NULL, *url_opt = NULL;
    int wait = 0, as_json = 0, c, rc = 2;
    json_t *ids = json_array(), *params = json_object(), *req = NULL;
    buf_t body = {0};
    while ((c = getopt_long(argc, argv, "m:i:f:T:H:p:P:k:wju:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': add_ids_text(ids, optarg, ","); break;
        case 'f': ids_file = optarg; break;
        case 'T': temperature = optarg; break;
        case 'H': horizon = optarg; break;
        case 'p': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "predictd submit: --param wants KEY=VALUE, got '%s'\n", optarg);
                goto out;
            }
            *eq = 0;
            json_object_set_new(params, optarg, param_value(eq + 1));
            break;
        }
        case 'P': priority = optarg; break;
        case 'k': idem = optarg; break;
        case 'w': wait = 1; break;
        case 'j': as_json = 1; break;
        case 'u': url_opt = optarg; break;
        case 'c': break; /* the client reads no config file; accepted for symmetry */
        case 'h': submit_usage(stdout); rc = 0; goto out;
        default: submit_usage(stderr); goto out;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "predictd submit: unexpected argument '%s'\n\n", argv[optind]);
        submit_usage(stderr);
        goto out;
    }
    if (ids_file) {
        buf_t text = {0};
        if (read_all(ids_file, &text)) {
            buf_free(&text);
            rc = 1;
            goto out;
        }
        add_ids_text(ids, text.data, "\r\n");
        buf_free(&text);
    }
    if (json_array_size(ids) == 0) {
        fprintf(stderr, "predictd submit: no entity ids: give --ids A,B,C or --ids-file FILE\n\n");
        submit_usage(stderr);
        goto out;
    }
    if (!temperature && !json_object_get(params, "temperature") && !strcmp(model, "ising")) {
        fprintf(stderr, "predictd submit: ising needs --temperature T (T > 0)\n\n");
        submit_usage(stderr);
        goto out;
    }
    if (temperature) json_object_set_new(params, "temperature", param_value(temperature));
    if (horizon) json_object_set_new(params, "time_horizon", param_value(horizon));

    req = json_object();
    json_object_set(req, "entity_ids", ids);
    if (!strcmp(model, "ising")) json_object_set_new(req, "prediction_type", json_string("spin_flip_probability"));
    json_object_set(req, "parameters", params);
    if (priority) json_object_set_new(req, "priority", param_value(priority));
    char *text = json_dumps(req, JSON_COMPACT);
    if (!text) {
        fprintf(stderr, "error: out of memory\n");
        rc = 1;
        goto out;
    }
    buf_puts(&body, text);
    free(text);

    char url[1024], path[256], hdr[600];
    cli_resolve_url(url_opt, url, sizeof url);
    char *esc = cli_escape(model);
    snprintf(path, sizeof path, "/api/v1/predict/batch/%s", esc ? esc : model);
    free(esc);
    if (idem) snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", idem);
    cli_http_t res;
    rc = 1;
    if (cli_http(url, "POST", path, "application/json", body.data, body.len, idem ? hdr : NULL, &res)) {
        buf_free(&res.body);
        goto out;
    }
    if (res.status < 200 || res.status >= 300) {
        cli_print_http_error(&res);
        buf_free(&res.body);
        goto out;
    }
    json_t *ans = cli_http_json(&res);
    buf_free(&res.body);
    const char *job_id = json_string_value(json_object_get(ans, "job_id"));
    if (!job_id) {
        if (ans) fprintf(stderr, "error: the answer has no job_id\n");
        json_decref(ans);
        goto out;
    }
    if (!wait) {
        if (as_json) print_json(ans, 1);
        else puts(job_id);
        json_decref(ans);
        rc = 0;
        goto out;
    }
    if (!as_json) {
        puts(job_id);
        fflush(stdout);
    }
    json_t *job = wait_job(url, job_id, isatty(STDERR_FILENO));
    json_decref(ans);
    if (!job) goto out;
    const char *st = json_string_value(json_object_get(job, "status"));
    if (as_json) print_json(job, 1);
    else if (!isatty(STDERR_FILENO)) fprintf(stderr, "%s\n", st ? st : "?");
    rc = st && !strcmp(st, "COMPLETED") ? 0 : 1;
    json_decref(job);
out:
    buf_free(&body);
    json_decref(req);
    json_decref(ids);
    json_decref(params);
    return rc;
}

/* ---- status ------------------------------------------------------------------------ */

static void status_usage(FILE *out) {
    fprintf(out,
            "usage: predictd status [OPTIONS] JOB_ID\n"
            "\n"
            "Shows a job (GET /api/v1/jobs/JOB_ID): model, status (QUEUED, PROCESSING,\n"
            "COMPLETED, FAILED, CANCELLED), progress (share of chunks done), timestamps.\n"
            "\n"
            "options:\n"
            "  -j, --json     print the server's JSON\n"
            "  -w, --wait     wait until the job finishes (progress bar on a terminal)\n"
            "  -u, --url URL  server (default $PREDICTD_URL or %s)\n"
            "  -h, --help     this help\n"
            "\n"
            "examples:\n"
            "  predictd status JOB-0192f3a4b5c6d7e8f9a0\n"
            "  predictd status --json $JOB | jq .progress\n",
            CLI_DEFAULT_URL);
}

static void print_fields(const json_t *obj) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char *s = value_text(v);
        if (!strcmp(key, "progress") && json_is_number(v))
            printf("%-16s %.1f%%\n", key, json_number_value(v) * 100.0);
        else
            printf("%-16s %s\n", key, s ? s : "?");
        free(s);
    }
}

int cmd_status(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},  {"wait", no_argument, 0, 'w'},
        {"url", required_argument, 0, 'u'}, {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},  {0, 0, 0, 0},
    };
    const char *url_opt = NULL;
    int as_json = 0, wait = 0, c;
    while ((c = getopt_long(argc, argv, "jwu:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': as_json = 1; break;
        case 'w': wait = 1; break;
        case 'u': url_opt = optarg; break;
        case 'c': break;
        case 'h': status_usage(stdout); return 0;
        default: status_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        status_usage(stderr);
        return 2;
    }
    char url[1024], path[512];
    cli_resolve_url(url_opt, url, sizeof url);
    json_t *job;
    if (wait) {
        job = wait_job(url, argv[optind], isatty(STDERR_FILENO));
    } else {
        char *esc = cli_escape(argv[optind]);
        snprintf(path, sizeof path, "/api/v1/jobs/%s", esc ? esc : argv[optind]);
        free(esc);
        job = get_json(url, path, NULL);
    }
    if (!job) return 1;
    if (as_json) print_json(job, 1);
    else print_fields(job);
    json_decref(job);
    return 0;
}

/* ---- results ----------------------------------------------------------------------- */

static void results_usage(FILE *out) {
    fprintf(out,
            "usage: predictd results [OPTIONS] JOB_ID\n"
            "\n"
            "Prints a job's results (GET /api/v1/jobs/JOB_ID/results), in submission order, one\n"
            "JSON object per line: {\"entity_id\":..,\"prediction\":{..}} or {\"entity_id\":..,\n"
            "\"error\":{\"code\":..,\"message\":..}}. Without --all, one page; the cursor of the\n"
            "next page is printed on stderr.\n"
            "\n"
            "options:\n"
            "  -n, --limit N      results per page, 1..10000 (default 1000)\n"
            "  -a, --all          follow next_cursor to the end; waits for a job still running\n"
            "  -C, --cursor C     start at this cursor (a previous page's next_cursor)\n"
            "  -t, --table        print an aligned table instead of JSON lines\n"
            "  -r, --raw          print each page's JSON answer as the server sent it\n"
            "  -u, --url URL      server (default $PREDICTD_URL or %s)\n"
            "  -h, --help         this help\n"
            "\n"
            "examples:\n"
            "  predictd results JOB-0192f3a4b5c6d7e8f9a0 --limit 10 --table\n"
            "  predictd results --all $JOB > results.jsonl\n"
            "  predictd results --all $JOB | jq -r 'select(.prediction.p_flip > 0.5) | .entity_id'\n",
            CLI_DEFAULT_URL);
}

typedef struct {
    int table, header_done;
    char cols[16][64];
    int ncols;
} table_t;

static void table_row(table_t *t, const json_t *r) {
    const char *id = json_string_value(json_object_get(r, "entity_id"));
    json_t *pred = json_object_get(r, "prediction");
    json_t *err = json_object_get(r, "error");
    if (!t->header_done && json_is_object(pred)) {
        const char *k;
        json_t *v;
        json_object_foreach(pred, k, v) {
            if (t->ncols < 16) snprintf(t->cols[t->ncols++], 64, "%s", k);
        }
        printf("%-24s", "entity_id");
        for (int i = 0; i < t->ncols; i++) printf(" %14s", t->cols[i]);
        putchar('\n');
        t->header_done = 1;
    }
    printf("%-24s", id ? id : "?");
    if (json_is_object(pred)) {
        for (int i = 0; i < t->ncols; i++) {
            json_t *v = json_object_get(pred, t->cols[i]);
            if (json_is_number(v)) printf(" %14.6g", json_number_value(v));
            else {
                char *s = value_text(v);
                printf(" %14s", s ? s : "-");
                free(s);
            }
        }
    } else {
        printf(" error %s: %s", str_or(json_string_value(json_object_get(err, "code")), "?"),
               str_or(json_string_value(json_object_get(err, "message")), ""));
    }
    putchar('\n');
}

int cmd_results(int argc, char **argv) {
    static const struct option opts[] = {
        {"limit", required_argument, 0, 'n'}, {"all", no_argument, 0, 'a'},
        {"cursor", required_argument, 0, 'C'}, {"table", no_argument, 0, 't'},
        {"raw", no_argument, 0, 'r'},           {"url", required_argument, 0, 'u'},
        {"config", required_argument, 0, 'c'},  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *url_opt = NULL;
    char cursor[256] = "";
    long limit = 1000;
    int all = 0, raw = 0, c;
    table_t t = {0};
    while ((c = getopt_long(argc, argv, "n:aC:tru:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n': {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1) {
                fprintf(stderr, "predictd results: --limit wants a positive number, got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'a': all = 1; break;
        case 'C': snprintf(cursor, sizeof cursor, "%s", optarg); break;
        case 't': t.table = 1; break;
        case 'r': raw = 1; break;
        case 'u': url_opt = optarg; break;
        case 'c': break;
        case 'h': results_usage(stdout); return 0;
        default: results_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        results_usage(stderr);
        return 2;
    }
    const char *job_id = argv[optind];
    char url[1024];
    cli_resolve_url(url_opt, url, sizeof url);
    char *esc = cli_escape(job_id);
    long printed = 0;
    int rc = 1;
    json_t *meta = NULL;
    for (;;) {
        char path[1024];
        char *cesc = cli_escape(cursor);
        snprintf(path, sizeof path, "/api/v1/jobs/%s/results?limit=%ld%s%s", esc ? esc : job_id,
                 limit, *cursor ? "&cursor=" : "", *cursor && cesc ? cesc : "");
        free(cesc);
        json_t *page = get_json(url, path, NULL);
        if (!page) goto done;
        json_t *results = json_object_get(page, "results");
        json_t *next = json_object_get(page, "next_cursor");
        if (raw) print_json(page, 0);
        size_t i;
        json_t *r;
        json_array_foreach(results, i, r) {
            if (raw) break;
            if (t.table) table_row(&t, r);
            else print_json(r, 0);
        }
        printed += (long)json_array_size(results);
        json_decref(meta);
        meta = json_incref(json_object_get(page, "metadata"));
        if (fflush(stdout) || ferror(stdout)) { /* reader went away (| head) */
            json_decref(page);
            rc = 0;
            goto done;
        }
        char next_text[256] = "";
        if (json_is_string(next)) snprintf(next_text, sizeof next_text, "%s", json_string_value(next));
        else if (json_is_integer(next)) snprintf(next_text, sizeof next_text, "%lld", (long long)json_integer_value(next));
        size_t got = json_array_size(results);
        json_decref(page);
        if (!*next_text) break; /* every result returned */
        if (!all) {
            fprintf(stderr, "more: predictd results %s --cursor %s   (or --all)\n", job_id, next_text);
            break;
        }
        if (got == 0) sleep_ms(500); /* the next chunk is not settled yet: the job still runs */
        snprintf(cursor, sizeof cursor, "%s", next_text);
    }
    if (isatty(STDERR_FILENO) && json_is_object(meta)) {
        fprintf(stderr, "%ld results printed; total_entities=%lld successful=%lld failed=%lld\n", printed,
                (long long)json_integer_value(json_object_get(meta, "total_entities")),
                (long long)json_integer_value(json_object_get(meta, "successful")),
                (long long)json_integer_value(json_object_get(meta, "failed")));
    }
    rc = 0;
done:
    json_decref(meta);
    free(esc);
    return rc;
}

/* ---- jobs -------------------------------------------------------------------------- */

static void jobs_usage(FILE *out) {
    fprintf(out,
            "usage: predictd jobs [OPTIONS]\n"
            "\n"
            "Lists jobs, newest first (GET /api/v1/jobs).\n"
            "\n"
            "options:\n"
            "  -s, --status S   only QUEUED, PROCESSING, COMPLETED, FAILED or CANCELLED\n"
            "  -m, --model M    only jobs of this model (e.g. ising)\n"
            "  -n, --limit N    at most N jobs (default 20)\n"
            "  -C, --cursor C   continue after a previous answer's next_cursor\n"
            "  -j, --json       print the server's JSON\n"
            "  -u, --url URL    server (default $PREDICTD_URL or %s)\n"
            "  -h, --help       this help\n"
            "\n"
            "examples:\n"
            "  predictd jobs\n"
            "  predictd jobs --status PROCESSING --model ising --limit 100\n",
            CLI_DEFAULT_URL);
}

int cmd_jobs(int argc, char **argv) {
    static const struct option opts[] = {
        {"status", required_argument, 0, 's'}, {"model", required_argument, 0, 'm'},
        {"limit", required_argument, 0, 'n'},  {"cursor", required_argument, 0, 'C'},
        {"json", no_argument, 0, 'j'},         {"url", required_argument, 0, 'u'},
        {"config", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *url_opt = NULL, *status = NULL, *model = NULL, *limit = "20", *cursor = NULL;
    int as_json = 0, c;
    while ((c = getopt_long(argc, argv, "s:m:n:C:ju:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': status = optarg; break;
        case 'm': model = optarg; break;
        case 'n': limit = optarg; break;
        case 'C': cursor = optarg; break;
        case 'j': as_json = 1; break;
        case 'u': url_opt = optarg; break;
        case 'c': break;
        case 'h': jobs_usage(stdout); return 0;
        default: jobs_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        jobs_usage(stderr);
        return 2;
    }
    char url[1024];
    cli_resolve_url(url_opt, url, sizeof url);
    buf_t path = {0};
    buf_puts(&path, "/api/v1/jobs?");
    const char *keys[] = {"status", "model", "limit", "cursor"};
    const char *vals[] = {status, model, limit, cursor};
    int first = 1;
    for (int i = 0; i < 4; i++) {
        if (!vals[i]) continue;
        char *e = cli_escape(vals[i]);
        buf_printf(&path, "%s%s=%s", first ? "" : "&", keys[i], e ? e : "");
        free(e);
        first = 0;
    }
    buf_putc(&path, 0);
    json_t *ans = get_json(url, path.data, NULL);
    buf_free(&path);
    if (!ans) return 1;
    if (as_json) {
        print_json(ans, 1);
        json_decref(ans);
        return 0;
    }
    json_t *list = json_is_array(ans) ? ans : json_object_get(ans, "jobs");
    printf("%-28s %-10s %-11s %7s %9s  %s\n", "JOB_ID", "MODEL", "STATUS", "PROGRESS", "ENTITIES",
           "CREATED_AT");
    size_t i;
    json_t *j;
    json_array_foreach(list, i, j) {
        char *created = value_text(json_object_get(j, "created_at"));
        json_t *ne = json_object_get(j, "total_entities");
        if (!ne) ne = json_object_get(j, "n_entities");
        char *ents = ne ? value_text(ne) : strdup("-");
        printf("%-28s %-10s %-11s %6.1f%% %9s  %s\n",
               str_or(json_string_value(json_object_get(j, "job_id")), "?"),
               str_or(json_string_value(json_object_get(j, "model")), "?"),
               str_or(json_string_value(json_object_get(j, "status")), "?"),
               json_number_value(json_object_get(j, "progress")) * 100.0, ents ? ents : "-",
               created ? created : "-");
        free(created);
        free(ents);
    }
    json_t *next = json_object_get(ans, "next_cursor");
    if (json_is_string(next))
        fprintf(stderr, "more: predictd jobs --cursor %s\n", json_string_value(next));
    json_decref(ans);
    return 0;
}
