/* Rows of the graph data as they come in (CSV import or the JSON API), before they are
 * applied to the store. Each array owns its strings; free with the *_rows_free helpers. */
#ifndef PREDICTD_ROWS_H
#define PREDICTD_ROWS_H

#include <stddef.h>
#include <jansson.h>

typedef struct {
    long line;         /* CSV line number, or 0 when it came from JSON */
    char *entity_id;   /* 1..256 bytes of UTF-8 */
    json_t *props;     /* JSON object (owned reference): numbers, strings; null removes on PATCH */
} entity_row_t;

typedef struct {
    long line;
    char *source, *target;
    double weight;     /* default 1.0 */
    char *type;        /* may be "" (no type) */
} rel_row_t;

typedef struct {
    long line;
    char *entity_id;
    char *series;      /* default "value" */
    double ts;         /* seconds since the epoch */
    double value;
} obs_row_t;

void entity_rows_free(entity_row_t *rows, size_t n);
void rel_rows_free(rel_row_t *rows, size_t n);
void obs_rows_free(obs_row_t *rows, size_t n);

#endif
