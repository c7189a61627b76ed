#include "store/rows.h"

#include <stdlib.h>

void entity_rows_free(entity_row_t *rows, size_t n) {
    if (!rows) return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].entity_id);
        json_decref(rows[i].props);
    }
    free(rows);
}

void rel_rows_free(rel_row_t *rows, size_t n) {
    if (!rows) return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].source);
        free(rows[i].target);
        free(rows[i].type);
    }
    free(rows);
}

void obs_rows_free(obs_row_t *rows, size_t n) {
    if (!rows) return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].entity_id);
        free(rows[i].series);
    }
    free(rows);
}
