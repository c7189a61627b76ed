/* The SQL extension point of the store: subsystems that keep their own tables (sessions,
 * market pipeline, ...) run their own statements on the store's connections, in their own
 * files, without growing the store's op list.
 *
 * Writes go through the one writer thread like every other op: fn runs inside the current
 * group's transaction, under a SAVEPOINT of its own (returning -1 rolls back only what fn
 * did), and is durable once the group commits (store.synchronous decides the fsync).
 * store_sql_write returns after that commit; store_sql_write_async returns at once and calls
 * done(arg, rc) on the writer thread after the commit (rc -1 when fn failed or the commit
 * did). Reads take a pooled read connection (WAL: they run beside the writer and see the
 * last committed state).
 *
 * A subsystem creates its tables with CREATE TABLE IF NOT EXISTS through store_sql_write at
 * start (its own schema, versioned by itself if it needs to be); the store's schema version
 * covers only the store's own tables.
 *
 * fn must not BEGIN/COMMIT/ROLLBACK itself, must not call back into the store (the writer
 * would wait on itself), and should prepare its statements with sqlite3_prepare_v3(...,
 * SQLITE_PREPARE_PERSISTENT, ...) cached per connection if it runs often (the db pointer of
 * the writer is stable for the store's life). */
#ifndef PREDICTD_STORE_SQL_H
#define PREDICTD_STORE_SQL_H

#include <stddef.h>

#include <sqlite3.h>

#include "store/store.h"

/* Runs on the writer (fn) or a read connection (read fn): 0 ok, -1 with err filled. */
typedef int (*store_sql_fn)(sqlite3 *db, void *arg, char *err, size_t errlen);

/* Runs fn in the writer's transaction and waits for the commit. 0 committed, -1 with err. */
int store_sql_write(store_t *st, store_sql_fn fn, void *arg, char *err, size_t errlen);

/* Queues fn; after the commit calls done(done_arg, rc) on the writer thread (NULL: none),
 * then free_arg(arg) (NULL: none). fn and done run on the writer thread: keep them short.
 * Returns 0 queued, -1 out of memory (then neither done nor free_arg is called). */
int store_sql_write_async(store_t *st, store_sql_fn fn, void *arg, void (*free_arg)(void *),
                          void (*done)(void *done_arg, int rc), void *done_arg);

/* Runs fn on a pooled read connection. 0 ok, -1 with err (no connection, or fn's). */
int store_sql_read(store_t *st, store_sql_fn fn, void *arg, char *err, size_t errlen);

#endif
