/* predictd serve: builds the app (config, store, graph, metrics, jobs, api), serves until
 * SIGTERM/SIGINT, then shuts down in reverse within the configured deadline.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked in the main thread before any other thread
 * exists, so every thread inherits the mask and only the main thread's sigwait() sees them:
 * no async-signal-safety puzzles, shutdown runs as ordinary code. A second signal while
 * shutting down (2 s or more after the first) ends the process at once (the store is crash-safe; unfinished chunks are
 * redone at the next start). */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "bus/bus.h"
#include "cache/cache.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "core/app.h"
#include "core/log.h"
#include "core/util.h"
#include "market/calendar.h"
#include "market/pipeline.h"
#include "push/push_hub.h"
#include "serving/serving.h"
#include "sessions/sessions.h"

static void serve_usage(FILE *out) {
    fprintf(out,
            "usage: predictd serve [OPTIONS]\n"
            "\n"
            "Runs the HTTP API, the durable job queue and the worker pool in one process, on\n"
            "an embedded SQLite database in DATA_DIR/predictd.db. Only one server (or offline\n"
            "import) may use a data dir at a time: DATA_DIR/predictd.lock is held while it runs.\n"
            "Logs go to stderr, one logfmt line per event. SIGTERM or Ctrl-C: stop accepting,\n"
            "finish the chunks in hand within jobs.shutdown_deadline_ms, exit 0; anything not\n"
            "finished is redone at the next start.\n"
            "\n"
            "options (each overrides the config file and PREDICTD_* variables):\n"
            "  -l, --listen HOST:PORT  address to bind (server.listen, default 127.0.0.1:8080;\n"
            "                          port 0 picks a free port, logged as port=N)\n"
            "  -d, --data-dir DIR      where the database lives (server.data_dir, default ./data)\n"
            "  -m, --models DIR        ONNX model repository served over KServe v2 at /v2\n"
            "                          (models.dir; DIR/{name}/{version}/model.onnx)\n"
            "  -w, --workers N         worker threads, 0 = two per core (jobs.workers)\n"
            "  -L, --log-level LEVEL   debug, info, warn or error (log.level)\n"
            "  -c, --config FILE       YAML configuration (default ./predictd.yaml if present)\n"
            "  -h, --help              this help\n"
            "\n"
            "examples:\n"
            "  predictd serve\n"
            "  predictd serve --listen 0.0.0.0:9000 --data-dir /var/lib/predictd --workers 8\n"
            "  PREDICTD_JOBS_CHUNK_SIZE=500 predictd serve --log-level debug\n"
            "  predictd --config prod.yaml serve\n");
}

/* A signal within 2 s of the first is the same request delivered twice (Ctrl-C reaches both
 * a wrapper script and the server, and the script forwards it): ignored. */
static void *second_signal(void *arg) {
    sigset_t *set = arg;
    double first = mono_s();
    int sig;
    while (sigwait(set, &sig) == 0) {
        if (sig == SIGHUP || mono_s() - first < 2.0) continue;
        LOG_W("second signal: exiting now; unfinished chunks are redone at the next start",
              "signal=%d", sig);
        _exit(1);
    }
    return NULL;
}

int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"data-dir", required_argument, 0, 'd'},
        {"models", required_argument, 0, 'm'},
        {"workers", required_argument, 0, 'w'},
        {"log-level", required_argument, 0, 'L'},
        {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *path = NULL, *listen = NULL, *data_dir = NULL, *workers = NULL, *level = NULL;
    const char *models = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "l:d:m:w:L:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'm': models = optarg; break;
        case 'w': workers = optarg; break;
        case 'L': level = optarg; break;
        case 'c': path = optarg; break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "predictd serve: unexpected argument '%s'\n\n", argv[optind]);
        serve_usage(stderr);
        return 2;
    }
    /* Results pages and request bodies are buffers of 100 KB to a few MB, made and freed by
     * every request. glibc would mmap each one above 128 KB and trim the heap after it: every
     * request then page-faults fresh zeroed pages (a tenth of the server's CPU under load).
     * Keep them in the heap and let the heap keep its free memory up to 64 MiB. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);

    predictd_t app;
    memset(&app, 0, sizeof app);
    app.started_ms = now_ms();
    if (cli_load_config(&app.cfg, path)) return 1;
    if ((listen && cli_set(&app.cfg, "server.listen", listen)) ||
        (data_dir && cli_set(&app.cfg, "server.data_dir", data_dir)) ||
        (models && cli_set(&app.cfg, "models.dir", models)) ||
        (workers && cli_set(&app.cfg, "jobs.workers", workers)) ||
        (level && cli_set(&app.cfg, "log.level", level)))
        return 2;
    log_set_level_name(app.cfg.log_level);
    /* the exchange's zone, for the market pipeline's "today": TZ is set before any thread */
    char tzerr[256];
    if (mkt_set_timezone(app.cfg.pipeline_timezone, tzerr, sizeof tzerr)) {
        LOG_E("bad configuration", "reason=\"%s\"", tzerr);
        return 1;
    }

    /* Before any thread starts: every thread inherits the blocked set. A shell starts
     * background jobs with SIGINT ignored; take the default back so sigwait sees it. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    char err[1024];
    int rc = 1;
    api_t *api = NULL;
    int lock_fd = cli_lock_data_dir(app.cfg.data_dir, err, sizeof err);
    if (lock_fd < 0) {
        LOG_E("cannot start", "reason=\"%s\"", err);
        return 1;
    }
    LOG_I("starting", "version=%s pid=%ld data_dir=%s listen=%s workers=%d store=%s synchronous=%s",
          PREDICTD_VERSION, (long)getpid(), app.cfg.data_dir, app.cfg.listen,
          app.cfg.workers ? app.cfg.workers : 2 * cpu_count(), app.cfg.store_backend,
          app.cfg.store_synchronous);

    double t0 = mono_s();
    if (store_open(&app.store, &app.cfg, err, sizeof err)) {
        LOG_E("cannot open the store", "data_dir=%s reason=\"%s\"", app.cfg.data_dir, err);
        goto done;
    }
    app.graph = graph_new();
    if (!app.graph) {
        LOG_E("out of memory", "what=graph");
        goto done;
    }
    if (store_load_graph(app.store, app.graph, err, sizeof err)) {
        LOG_E("cannot load the graph", "reason=\"%s\"", err);
        goto done;
    }
    store_attach_graph(app.store, app.graph);
    LOG_I("graph loaded", "entities=%u relationships=%llu ms=%.0f", app.graph->live,
          (unsigned long long)app.graph->edges, (mono_s() - t0) * 1000.0);

    app.metrics = metrics_new();
    if (!app.metrics) {
        LOG_E("out of memory", "what=metrics");
        goto done;
    }
    store_attach_metrics(app.store, app.metrics);
    if (cache_open(&app.cache, &app.cfg, app.metrics, err, sizeof err)) {
        LOG_E("cannot create the result cache", "reason=\"%s\"", err);
        goto done;
    }
    if (app.cache) store_set_apply_hook(app.store, cache_on_graph_change, app.cache);
    cache_attach_graph(app.cache, app.graph);
    if (jobs_start(&app.jobs, &app.cfg, app.store, app.graph, app.metrics, err, sizeof err)) {
        LOG_E("cannot start the job engine", "reason=\"%s\"", err);
        goto done;
    }
    jobs_attach_cache(app.jobs, app.cache);
    if (bus_open(&app.bus, "inproc", app.metrics, err, sizeof err)) {
        LOG_E("cannot create the event bus", "reason=\"%s\"", err);
        goto done;
    }
    jobs_attach_bus(app.jobs, app.bus);
    if (app.cfg.push_max_clients > 0 &&
        push_hub_open(&app.push, &app.cfg, app.bus, app.metrics, err, sizeof err)) {
        LOG_E("cannot start WebSocket push", "reason=\"%s\"", err);
        goto done;
    }
    if (serving_open(&app.serving, app.cfg.models_dir, app.metrics, err, sizeof err)) {
        LOG_E("cannot open the model repository", "dir=%s reason=\"%s\"", app.cfg.models_dir, err);
        goto done;
    }
    if (sessions_open(&app.sessions, &app.cfg, app.store, app.metrics, err, sizeof err)) {
        LOG_E("cannot start session scoring", "reason=\"%s\"", err);
        goto done;
    }
    if (pipeline_open(&app.pipeline, &app.cfg, app.store, app.jobs, app.serving, app.bus, app.metrics, err,
                      sizeof err)) {
        LOG_E("cannot start the market pipeline", "reason=\"%s\"", err);
        goto done;
    }
    if (api_start(&api, &app, err, sizeof err)) {
        LOG_E("cannot start the HTTP API", "listen=%s reason=\"%s\"", app.cfg.listen, err);
        goto done;
    }
    app.ready = 1;
    /* The address as bound: with port 0 in the config, the port the kernel picked. */
    char addr[160];
    const char *colon = strrchr(app.cfg.listen, ':');
    snprintf(addr, sizeof addr, "%.*s:%d", colon ? (int)(colon - app.cfg.listen) : 0, app.cfg.listen,
             api_port(api));
    LOG_I("listening", "addr=%s port=%d startup_ms=%.0f", addr, api_port(api), (mono_s() - t0) * 1000.0);

    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
        LOG_I("SIGHUP ignored", "hint=%s", "restart to apply configuration changes");

    pthread_t t;
    if (pthread_create(&t, NULL, second_signal, &sigs) == 0) pthread_detach(t);
    LOG_I("stopping", "signal=%s deadline_ms=%d", sig == SIGINT ? "SIGINT" : "SIGTERM",
          app.cfg.shutdown_deadline_ms);
    double ts = mono_s();
    app.stopping = 1;
    app.ready = 0;
    api_quiesce(api);
    pipeline_stop(app.pipeline); /* before the job engine: its thread submits runs */
    int released = jobs_stop(app.jobs, app.cfg.shutdown_deadline_ms);
    bus_close(app.bus); /* event streams end (their readers wake) before the HTTP server stops */
    push_hub_stop(app.push); /* WebSocket clients closed: the HTTP server waits for upgraded ones */
    api_free(api);
    api = NULL;
    jobs_free(app.jobs);
    app.jobs = NULL;
    sessions_close(app.sessions); /* after the API, before the store: a batch in progress finishes */
    app.sessions = NULL;
    pipeline_free(app.pipeline); /* after the job engine: its workers run the pipeline's chunks */
    app.pipeline = NULL;
    store_close(app.store);
    app.store = NULL;
    cache_free(app.cache); /* after the store: its apply hook points at the cache */
    app.cache = NULL;
    LOG_I("stopped", "released_chunks=%d shutdown_ms=%.0f", released, (mono_s() - ts) * 1000.0);
    rc = 0;
done:
    bus_close(app.bus);
    pipeline_stop(app.pipeline);
    push_hub_stop(app.push);
    api_free(api);
    push_hub_free(app.push); /* after the HTTP server: no upgrade arrives any more */
    jobs_free(app.jobs);
    pipeline_free(app.pipeline);
    bus_free(app.bus); /* after the jobs: they publish on it */
    sessions_close(app.sessions);
    store_close(app.store);
    cache_free(app.cache);
    graph_free(app.graph);
    serving_free(app.serving); /* after the API: no request holds a model */
    metrics_free(app.metrics);
    close(lock_fd);
    return rc;
}
