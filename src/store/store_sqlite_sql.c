/* store_sql.h on the SQLite backend: a subsystem's own statements run as OP_SQL ops on the
 * writer (inside the group's transaction, under the op's savepoint) or on a pooled read
 * connection. */
#include "store/store_sql.h"
#include "store/store_sqlite_int.h"

#include <stdlib.h>

int store_sql_write(store_t *st, store_sql_fn fn, void *arg, char *err, size_t errlen) {
    char tmp[256];
    if (!err || !errlen) { err = tmp; errlen = sizeof tmp; }
    err[0] = 0;
    op_t op = {.kind = OP_SQL, .sql_fn = fn, .sql_arg = arg, .err = err, .errlen = errlen};
    return sq_submit_sync(st, &op);
}

int store_sql_write_async(store_t *st, store_sql_fn fn, void *arg, void (*free_arg)(void *),
                          void (*done)(void *done_arg, int rc), void *done_arg) {
    op_t *op = calloc(1, sizeof *op);
    if (!op) return -1;
    op->kind = OP_SQL;
    op->sql_fn = fn;
    op->sql_arg = arg;
    op->sql_free = free_arg;
    op->cb = done;
    op->cb_arg = done_arg;
    sq_enqueue(st, op);
    return 0;
}

int store_sql_read(store_t *st, store_sql_fn fn, void *arg, char *err, size_t errlen) {
    char tmp[256];
    if (!err || !errlen) { err = tmp; errlen = sizeof tmp; }
    err[0] = 0;
    conn_t *c = sq_rconn_get(st);
    if (!c) { sq_seterr(err, errlen, "store: no read connection"); return -1; }
    int rc = fn(c->db, arg, err, errlen);
    if (rc && !err[0]) sq_seterr(err, errlen, "store: %s", sqlite3_errmsg(c->db));
    sq_rconn_put(st, c);
    return rc ? -1 : 0;
}
