/* import_bench: where the time of a graph import goes, without HTTP.
 *
 *   import_bench ENTITIES.csv RELATIONSHIPS.csv [DATA_DIR]
 *
 * Steps, each timed: read each file, csv_parse_* it, store_import_* it into a fresh SQLite
 * store (a graph attached, as `predictd serve` does, so in-memory updates are counted), then
 * store_load_graph into a second graph (the restart path). The goal the issue sets for the
 * whole import (100k entities + 500k relationships, over HTTP) is under 5 s; run.sh times
 * that end to end with `predictd import`, this splits it.
 * DATA_DIR defaults to a temporary folder that is removed afterwards. Exit 0 when every step
 * succeeded. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/util.h"
#include "graph/graph.h"
#include "store/csv.h"
#include "store/store.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    if (!(data = malloc((size_t)n + 1)) || fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
        goto fail;
    }
    data[n] = '\0';
    *len = (size_t)n;
fail:
    fclose(f);
    return data;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void step(const char *name, double t0, double t1, long rows) {
    if (rows >= 0)
        printf("%-36s %8.3f s  (%ld rows)\n", name, t1 - t0, rows);
    else
        printf("%-36s %8.3f s\n", name, t1 - t0);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s ENTITIES.csv RELATIONSHIPS.csv [DATA_DIR]\n", argv[0]);
        return 2;
    }
    char tmpl[] = "/tmp/predictd-import-bench.XXXXXX", err[512] = "";
    const char *dir = argc == 4 ? argv[3] : mkdtemp(tmpl);
    int rc = 1;
    char *ent_csv = NULL, *rel_csv = NULL;
    size_t ent_len = 0, rel_len = 0;
    entity_row_t *ents = NULL;
    rel_row_t *rels = NULL;
    long n_ents = -1, n_rels = -1;
    buf_t errors = {0};
    store_t *st = NULL;
    graph_t *live = graph_new(), *loaded = graph_new();
    predictd_config_t cfg;
    if (!dir || !live || !loaded) {
        fprintf(stderr, "import_bench: cannot make a data dir or a graph\n");
        goto fail;
    }
    config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);

    double t0 = now_s();
    if (!(ent_csv = read_file(argv[1], &ent_len)) || !(rel_csv = read_file(argv[2], &rel_len))) {
        fprintf(stderr, "import_bench: cannot read %s or %s\n", argv[1], argv[2]);
        goto fail;
    }
    double t1 = now_s();
    step("read both files", t0, t1, -1);

    if ((n_ents = csv_parse_entities(ent_csv, ent_len, &ents, &errors, 10)) < 0)
        goto bad_csv;
    double t2 = now_s();
    step("csv_parse_entities", t1, t2, n_ents);
    if ((n_rels = csv_parse_relationships(rel_csv, rel_len, &rels, &errors, 10)) < 0)
        goto bad_csv;
    double t3 = now_s();
    step("csv_parse_relationships", t2, t3, n_rels);

    if (store_open(&st, &cfg, err, sizeof err) != 0)
        goto bad_store;
    store_attach_graph(st, live);
    double t4 = now_s();
    step("store_open", t3, t4, -1);
    if (store_import_entities(st, ents, (size_t)n_ents, err, sizeof err) != 0)
        goto bad_store;
    double t5 = now_s();
    step("store_import_entities (+ live graph)", t4, t5, n_ents);
    if (store_import_relationships(st, rels, (size_t)n_rels, err, sizeof err) != 0)
        goto bad_store;
    double t6 = now_s();
    step("store_import_relationships (+ graph)", t5, t6, n_rels);
    if (store_load_graph(st, loaded, err, sizeof err) != 0)
        goto bad_store;
    double t7 = now_s();
    step("store_load_graph (restart path)", t6, t7, -1);

    printf("%-36s %8.3f s  (goal for the HTTP import: < 5 s)\n", "import total (parse + store)",
           (t3 - t1) + (t6 - t4));
    rc = 0;
    goto done;

bad_csv:
    fprintf(stderr, "import_bench: bad CSV:\n%.*s\n", (int)errors.len,
            errors.data ? errors.data : "");
    goto fail;
bad_store:
    fprintf(stderr, "import_bench: store: %s\n", err);
fail:
done:
    store_close(st);
    graph_free(live);
    graph_free(loaded);
    if (ents)
        entity_rows_free(ents, (size_t)n_ents);
    if (rels)
        rel_rows_free(rels, (size_t)n_rels);
    buf_free(&errors);
    free(ent_csv);
    free(rel_csv);
    if (dir && argc != 4)
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return rc;
}
