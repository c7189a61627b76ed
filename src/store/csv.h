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

#endif
