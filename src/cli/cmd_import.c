/* predictd import: CSV into a running server (POST /api/v1/import/KIND) or, with --data-dir,
 * straight into a stopped server's store (the data-dir lock must be free). Either way the
 * import is all-or-nothing and bad rows are reported by line number. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/util.h"
#include "store/csv.h"
#include "store/store.h"

#define IMPORT_MAX_ERRORS 50

static void import_usage(FILE *out) {
    fprintf(out,
            "usage: predictd import [OPTIONS] entities|relationships|observations|features|calendar FILE.csv\n"
            "\n"
            "Loads a CSV file whose header row names the columns:\n"
            "  entities       entity_id,<property>...   (a value that parses as a number is\n"
            "                                            numeric; Ising reads spin and field)\n"
            "  relationships  source,target[,weight][,type]   (both ends must exist)\n"
            "  observations   entity_id,timestamp,value[,series]\n"
            "  features       symbol,timestamp,price,t0..t19[,e0..e16]   (market pipeline)\n"
            "  calendar       symbol,date,time   (earnings calendar: time bmo, amc or unknown)\n"
            "All rows or none: any bad row is reported by its line number and nothing changes.\n"
            "FILE '-' reads stdin.\n"
            "\n"
            "Into a running server (default): POST /api/v1/import/KIND over HTTP.\n"
            "Into a stopped server's data dir (--data-dir): opens the store directly; refused\n"
            "while a server holds DATA_DIR/predictd.lock.\n"
            "\n"
            "options:\n"
            "  -u, --url URL         server (default $PREDICTD_URL or %s)\n"
            "  -d, --data-dir DIR    import offline into DIR instead (server stopped)\n"
            "  -c, --config FILE     YAML configuration, for the offline import's store settings\n"
            "  -h, --help            this help\n"
            "\n"
            "examples:\n"
            "  predictd import entities data/demo/entities.csv\n"
            "  predictd import relationships data/demo/relationships.csv --url http://10.0.0.5:8080\n"
            "  predictd import --data-dir ./data entities entities.csv   # server stopped\n",
            CLI_DEFAULT_URL);
}

static int read_file(const char *path, buf_t *out) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "error: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char chunk[1 << 16];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(out, chunk, n);
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad || out->oom) {
        fprintf(stderr, "error: %s: %s\n", path, bad ? "read error" : "out of memory");
        return -1;
    }
    return 0;
}

static int import_http(const char *url_opt, const char *kind, const char *file, const buf_t *data) {
    char url[1024], path[128];
    cli_resolve_url(url_opt, url, sizeof url);
    snprintf(path, sizeof path, "/api/v1/import/%s", kind);
    double t0 = mono_s();
    cli_http_t res;
    if (cli_http(url, "POST", path, "text/csv", data->data, data->len, NULL, &res)) {
        buf_free(&res.body);
        return 1;
    }
    double dt = mono_s() - t0;
    int rc = 1;
    if (res.status < 200 || res.status >= 300) {
        fprintf(stderr, "%s: nothing imported\n", file);
        cli_print_http_error(&res);
        goto out;
    }
    json_t *ans = cli_http_json(&res);
    if (!ans) goto out;
    json_t *n = json_object_get(ans, "imported");
    if (!n) n = json_object_get(ans, "rows");
    if (!n) n = json_object_get(ans, "count");
    if (json_is_integer(n))
        printf("imported %lld %s from %s in %.2f s\n", (long long)json_integer_value(n), kind, file, dt);
    else {
        char *s = json_dumps(ans, JSON_COMPACT);
        printf("%s (%.2f s)\n", s ? s : "ok", dt);
        free(s);
    }
    json_decref(ans);
    rc = 0;
out:
    buf_free(&res.body);
    return rc;
}

static int import_offline(const char *config, const char *data_dir, csv_kind_t kind, const char *kind_name,
                          const char *file, const buf_t *data) {
    predictd_config_t cfg;
    if (cli_load_config(&cfg, config) || cli_set(&cfg, "server.data_dir", data_dir)) return 1;
    char err[1024];
    int lock = cli_lock_data_dir(cfg.data_dir, err, sizeof err);
    if (lock < 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    double t0 = mono_s();
    int rc = 1;
    store_t *st = NULL;
    buf_t errors = {0};
    void *rows = NULL;
    long n = -1;
    switch (kind) {
    case CSV_ENTITIES: n = csv_parse_entities(data->data, data->len, (entity_row_t **)&rows, &errors, IMPORT_MAX_ERRORS); break;
    case CSV_RELATIONSHIPS: n = csv_parse_relationships(data->data, data->len, (rel_row_t **)&rows, &errors, IMPORT_MAX_ERRORS); break;
    case CSV_OBSERVATIONS: n = csv_parse_observations(data->data, data->len, (obs_row_t **)&rows, &errors, IMPORT_MAX_ERRORS); break;
    }
    if (n < 0) {
        fprintf(stderr, "%s: nothing imported; bad rows:\n%.*s", file, (int)errors.len, errors.data ? errors.data : "");
        if (errors.len && errors.data[errors.len - 1] != '\n') fputc('\n', stderr);
        goto out;
    }
    double t_parse = mono_s() - t0;
    if (store_open(&st, &cfg, err, sizeof err)) {
        fprintf(stderr, "error: cannot open the store in %s: %s\n", cfg.data_dir, err);
        goto out;
    }
    int r = -1;
    switch (kind) {
    case CSV_ENTITIES: r = store_import_entities(st, rows, (size_t)n, err, sizeof err); break;
    case CSV_RELATIONSHIPS: r = store_import_relationships(st, rows, (size_t)n, err, sizeof err); break;
    case CSV_OBSERVATIONS: r = store_import_observations(st, rows, (size_t)n, err, sizeof err); break;
    }
    if (r) {
        fprintf(stderr, "%s: nothing imported: %s\n", file, err);
        goto out;
    }
    store_close(st); /* flushes: the rows are durable once this returns */
    st = NULL;
    printf("imported %ld %s from %s into %s in %.2f s (parse %.2f s)\n", n, kind_name, file, cfg.data_dir,
           mono_s() - t0, t_parse);
    rc = 0;
out:
    store_close(st);
    if (rows) {
        switch (kind) {
        case CSV_ENTITIES: entity_rows_free(rows, (size_t)n); break;
        case CSV_RELATIONSHIPS: rel_rows_free(rows, (size_t)n); break;
        case CSV_OBSERVATIONS: obs_rows_free(rows, (size_t)n); break;
        }
    }
    buf_free(&errors);
    close(lock);
    return rc;
}

int cmd_import(int argc, char **argv) {
    static const struct option opts[] = {
        {"url", required_argument, 0, 'u'},
        {"data-dir", required_argument, 0, 'd'},
        {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *url = NULL, *data_dir = NULL, *config = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "u:d:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'd': data_dir = optarg; break;
        case 'c': config = optarg; break;
        case 'h': import_usage(stdout); return 0;
        default: import_usage(stderr); return 2;
        }
    }
    if (optind + 2 != argc) {
        import_usage(stderr);
        return 2;
    }
    if (url && data_dir) {
        fprintf(stderr, "predictd import: give --url (running server) or --data-dir (stopped server), not both\n");
        return 2;
    }
    const char *kind_name = argv[optind], *file = argv[optind + 1];
    csv_kind_t kind = CSV_ENTITIES;
    int market = !strcmp(kind_name, "features") || !strcmp(kind_name, "calendar");
    if (market && data_dir) {
        fprintf(stderr, "predictd import: %s go to a running server (--url), not --data-dir\n", kind_name);
        return 2;
    }
    if (!market && csv_kind_parse(kind_name, &kind) < 0) {
        fprintf(stderr, "predictd import: unknown kind '%s' (entities, relationships, observations, features or calendar)\n\n",
                kind_name);
        import_usage(stderr);
        return 2;
    }
    buf_t data = {0};
    int rc = 1;
    if (read_file(file, &data) == 0)
        rc = data_dir ? import_offline(config, data_dir, kind, kind_name, file, &data)
                      : import_http(url, kind_name, file, &data);
    buf_free(&data);
    return rc;
}
