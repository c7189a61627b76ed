/* CSV import: parse a whole file (header row names the columns) into rows.
 *   entities       entity_id,<property>...        a value that parses as a number is numeric,
 *                                                  an empty cell leaves the property out
 *   relationships  source,target[,weight][,type]
 *   observations   entity_id,timestamp,value[,series]   timestamp: epoch seconds or ISO 8601
 * RFC 4180 quoting ("a,b", "" for a quote) is understood. Every bad row is reported by its
 * line number ("line 17: weight 'abc' is not a number"); up to max_errors are collected.
 * Returns the number of rows (>= 0) with *rows owned by the caller, or -1 when any row was
 * bad (then *rows is NULL and errors holds the report, one line each). */
#ifndef PREDICTD_CSV_H
#define PREDICTD_CSV_H

#include <stddef.h>

#include "core/util.h"
#include "store/rows.h"

typedef enum { CSV_ENTITIES, CSV_RELATIONSHIPS, CSV_OBSERVATIONS } csv_kind_t;

/* "entities" | "relationships" | "observations" -> kind; -1 if unknown. */
int csv_kind_parse(const char *name, csv_kind_t *kind);

long csv_parse_entities(const char *data, size_t len, entity_row_t **rows, buf_t *errors, int max_errors);
long csv_parse_relationships(const char *data, size_t len, rel_row_t **rows, buf_t *errors, int max_errors);
long csv_parse_observations(const char *data, size_t len, obs_row_t **rows, buf_t *errors, int max_errors);

/* Generic records, for kinds parsed outside the store (the market pipeline's features and
 * calendar): reads the header, then calls fn once per data record with its fields
 * (NUL-terminated, RFC 4180 unquoted) after checking it has as many fields as the header.
 * fn returns 0, or -1 with msg filled: reported as "line N: msg" (parsing goes on, so that
 * every bad row is reported). header/n_header: the trimmed column names, valid during the
 * call. Returns the number of records, or -1 when the header or any record was bad (errors
 * holds the report) -- then the caller must drop whatever fn kept. */
typedef int (*csv_record_fn)(void *arg, long line, const char *const *header, size_t n_header,
                             const char *const *fields, char *msg, size_t msglen);
/* Called once after the header was read (before any record): 0 ok, -1 with msg (line 1). */
typedef int (*csv_header_fn)(void *arg, const char *const *header, size_t n_header, char *msg, size_t msglen);
long csv_parse_records(const char *data, size_t len, csv_header_fn on_header, csv_record_fn fn, void *arg,
                       buf_t *errors, int max_errors);
/* Epoch seconds or ISO 8601 (as the observations' timestamp column). 0 ok, -1 malformed. */
int csv_parse_time(const char *s, double *out);

#endif
