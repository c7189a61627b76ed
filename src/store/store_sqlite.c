/* The SQLite store backend.
 *
 * Writes: every write is an op on one queue, owned by one writer thread with its own
 * connection. The writer takes every op waiting, runs each inside its own SAVEPOINT (a
 * failing op rolls back alone) and commits the lot in one transaction: one fsync for many
 * submissions (group commit). After the commit it applies each op's graph changes to the
 * attached graph in commit order, then runs the async callbacks and wakes the synchronous
 * callers. Reads: a pool of connections, one per concurrent reader; WAL lets them run
 * beside the writer, each statement seeing the last committed state.
 *
 * Entity versions come from one store-wide clock (meta.version_clock): each op that
 * changes graph data takes the next value and gives it to every entity it touches. A
 * version is therefore never reused, not even by an entity deleted and created again, and
 * a cache keyed on (entity, version) cannot serve a stale entry. */
#include "store/store.h"
#include "store/store_sqlite_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "metrics/metrics.h"

/* 2: a job's ids in job_ids, so settling a chunk never rewrites them; 3: jobs indexed by
 * (status, finished_at), so the retention sweep finds expired jobs without a scan */
#define SCHEMA_VERSION 3
#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- statements ------------------------------------------------------------------------ */

#define JOB_COLS "id, model, status, priority, chunk_size, n_entities, n_chunks, chunks_done, " \
                 "chunks_dead, successful, failed, created_at, started_at, finished_at, updated_at, exec_ms"


static const char *const SQL[Q_COUNT] = {
    [Q_CLOCK_SET] = "UPDATE meta SET value = ?1 WHERE key = 'version_clock'",
    [Q_ENT_GET] = "SELECT props, version FROM entities WHERE id = ?1",
    [Q_ENT_UPSERT] = "INSERT INTO entities(id, props, version) VALUES (?1, ?2, ?3) "
                     "ON CONFLICT(id) DO UPDATE SET props = excluded.props, version = excluded.version",
    [Q_ENT_EXISTS] = "SELECT k FROM entities WHERE id = ?1",
    [Q_ENT_SET_VERSION] = "UPDATE entities SET version = ?2 WHERE id = ?1",
    [Q_ENT_SET_VERSION_K] = "UPDATE entities SET version = ?2 WHERE k = ?1",
    [Q_ENT_SET_PROPS] = "UPDATE entities SET props = ?2, version = ?3 WHERE id = ?1",
    [Q_ENT_DELETE] = "DELETE FROM entities WHERE id = ?1",
    /* relationships refer to entities by their integer key k: small, fast indexes */
    [Q_REL_INSERT] = "INSERT INTO relationships(source, target, type, weight) VALUES (?1, ?2, ?3, ?4)",
    [Q_REL_MATCH] = "SELECT r.rowid, s.id, t.id, r.weight FROM relationships r "
                    "JOIN entities s ON s.k = r.source JOIN entities t ON t.k = r.target WHERE "
                    "((r.source = ?1 AND r.target = ?2) OR (r.source = ?2 AND r.target = ?1)) AND (?3 IS NULL OR r.type = ?3)",
    [Q_REL_DEL_ROWID] = "DELETE FROM relationships WHERE rowid = ?1",
    [Q_REL_NEIGHBOURS] = "SELECT id FROM entities WHERE k <> ?1 AND k IN "
                         "(SELECT target FROM relationships WHERE source = ?1 UNION SELECT source FROM relationships WHERE target = ?1)",
    [Q_REL_DEL_ENTITY] = "DELETE FROM relationships WHERE source = ?1 OR target = ?1",
    [Q_OBS_UPSERT] = "INSERT INTO observations(entity_id, series, ts, value) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT(entity_id, series, ts) DO UPDATE SET value = excluded.value",
    [Q_OBS_DEL_ENTITY] = "DELETE FROM observations WHERE entity_id = ?1",
    [Q_JOB_INSERT] = "INSERT INTO jobs(" JOB_COLS ", params, idem_key) VALUES "
                     "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    [Q_JOB_IDS_INSERT] = "INSERT INTO job_ids(job_id, ids) VALUES (?1, ?2)",
    [Q_JOB_BY_IDEM] = "SELECT id FROM jobs WHERE idem_key = ?1",
    [Q_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [Q_JOB_LIST] = "SELECT " JOB_COLS " FROM jobs WHERE (?1 < 0 OR status = ?1) AND (?2 IS NULL OR model = ?2) "
                   "AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4",
    [Q_JOB_WORK] = "SELECT j.params, w.ids FROM jobs j JOIN job_ids w ON w.job_id = j.id WHERE j.id = ?1",
    [Q_JOB_UNFINISHED] = "SELECT id FROM jobs WHERE status IN (0, 1) ORDER BY id",
    [Q_JOB_COUNTS] = "SELECT status, count(*) FROM jobs GROUP BY status",
    [Q_JOB_STARTED] = "UPDATE jobs SET status = 1, started_at = CASE WHEN started_at = 0 THEN ?2 ELSE started_at END, "
                      "updated_at = ?2 WHERE id = ?1 AND status = 0",
    /* ?2 successful ?3 failed ?4 exec_ms ?5 done ?6 dead ?7 now: settles one chunk and,
     * when it was the last, finishes the job (right-hand sides see the old row) */
    [Q_JOB_SETTLE] = "UPDATE jobs SET successful = successful + ?2, failed = failed + ?3, exec_ms = exec_ms + ?4, "
                     "chunks_done = chunks_done + ?5, chunks_dead = chunks_dead + ?6, updated_at = ?7, "
                     "status = CASE WHEN chunks_done + ?5 + chunks_dead + ?6 >= n_chunks "
                     "THEN (CASE WHEN chunks_dead + ?6 > 0 THEN 3 ELSE 2 END) WHEN status = 0 THEN 1 ELSE status END, "
                     "finished_at = CASE WHEN chunks_done + ?5 + chunks_dead + ?6 >= n_chunks THEN ?7 ELSE finished_at END, "
                     "started_at = CASE WHEN started_at = 0 THEN ?7 ELSE started_at END WHERE id = ?1",
    /* finished jobs past their retention (store_jobs_expire), oldest first, per status */
    [Q_JOB_EXPIRED] = "SELECT id FROM jobs WHERE status = ?1 AND finished_at > 0 AND finished_at < ?2 "
                      "ORDER BY finished_at LIMIT ?3",
    [Q_JOB_DEL] = "DELETE FROM jobs WHERE id = ?1",
    [Q_JOB_IDS_DEL] = "DELETE FROM job_ids WHERE job_id = ?1",
    [Q_CHUNK_DEL_JOB] = "DELETE FROM chunk_results WHERE job_id = ?1",
    [Q_DL_DEL_JOB] = "DELETE FROM deadletters WHERE job_id = ?1",
    [Q_JOB_CANCEL] = "UPDATE jobs SET status = 4, finished_at = ?2, updated_at = ?2 WHERE id = ?1",
    /* a dead chunk's entities count as failed until it is retried (?3: the chunk) */
    [Q_JOB_REOPEN] = "UPDATE jobs SET chunks_dead = chunks_dead - 1, status = 1, finished_at = 0, updated_at = ?2, "
                     "failed = failed - MIN(chunk_size, n_entities - ?3 * chunk_size) WHERE id = ?1",
    [Q_CHUNK_N] = "SELECT MIN(chunk_size, n_entities - ?2 * chunk_size) FROM jobs WHERE id = ?1",
    [Q_CHUNK_EXISTS] = "SELECT 1 FROM chunk_results WHERE job_id = ?1 AND chunk = ?2",
    [Q_CHUNK_INSERT] = "INSERT INTO chunk_results(job_id, chunk, blob, created_at) VALUES (?1, ?2, ?3, ?4)",
    [Q_CHUNK_LIST] = "SELECT chunk FROM chunk_results WHERE job_id = ?1",
    [Q_DL_ACTIVE] = "SELECT 1 FROM deadletters WHERE job_id = ?1 AND chunk = ?2 AND retried = 0",
    [Q_DL_INSERT] = "INSERT INTO deadletters(job_id, chunk, reason, attempts, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_DL_LIST] = "SELECT id, job_id, chunk, attempts, created_at, reason FROM deadletters "
                  "WHERE retried = 0 AND id > ?1 ORDER BY id LIMIT ?2",
    [Q_DL_GET] = "SELECT d.job_id, d.chunk, d.retried, j.status FROM deadletters d JOIN jobs j ON j.id = d.job_id WHERE d.id = ?1",
    [Q_DL_MARK_RETRIED] = "UPDATE deadletters SET retried = 1 WHERE id = ?1",
    [Q_DL_DEAD_LIST] = "SELECT chunk FROM deadletters WHERE job_id = ?1 AND retried = 0",
    [Q_RESULTS_SCAN] = "SELECT chunk, blob FROM chunk_results WHERE job_id = ?1 AND chunk BETWEEN ?2 AND ?3 ORDER BY chunk",
    [Q_ENT_ALL] = "SELECT id, props, version, k FROM entities ORDER BY k",
    [Q_OBS_GET] = "SELECT ts, value FROM observations WHERE entity_id = ?1 AND series = ?2 AND ts >= ?3 AND ts <= ?4 ORDER BY ts",
    [Q_REL_ALL] = "SELECT source, target, weight FROM relationships",
    /* the writer's transaction control, prepared once (a group runs 4 + 2 per op of them) */
    [Q_TX_BEGIN] = "BEGIN IMMEDIATE",
    [Q_TX_SAVEPOINT] = "SAVEPOINT op",
    [Q_TX_ROLLBACK_TO] = "ROLLBACK TO op",
    [Q_TX_RELEASE] = "RELEASE op",
    [Q_TX_COMMIT] = "COMMIT",
    [Q_TX_ROLLBACK] = "ROLLBACK",
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta(key, value) VALUES ('version_clock', 0);"
    "CREATE TABLE IF NOT EXISTS entities(k INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, props TEXT NOT NULL,"
    " version INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS relationships(source INTEGER NOT NULL, target INTEGER NOT NULL,"
    " type TEXT NOT NULL DEFAULT '', weight REAL NOT NULL);"
    SQ_REL_INDEXES
    "CREATE TABLE IF NOT EXISTS observations(entity_id TEXT NOT NULL, series TEXT NOT NULL, ts REAL NOT NULL,"
    " value REAL NOT NULL, PRIMARY KEY (entity_id, series, ts)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS jobs(id TEXT PRIMARY KEY, model TEXT NOT NULL, status INTEGER NOT NULL,"
    " priority INTEGER NOT NULL, chunk_size INTEGER NOT NULL, n_entities INTEGER NOT NULL, n_chunks INTEGER NOT NULL,"
    " chunks_done INTEGER NOT NULL, chunks_dead INTEGER NOT NULL, successful INTEGER NOT NULL, failed INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    " exec_ms REAL NOT NULL, params TEXT NOT NULL, idem_key TEXT);"
    /* the ids (up to millions, megabytes) apart from the row every chunk settle rewrites */
    "CREATE TABLE IF NOT EXISTS job_ids(job_id TEXT PRIMARY KEY, ids BLOB NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idem_key ON jobs(idem_key) WHERE idem_key IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS jobs_status_finished ON jobs(status, finished_at);"
    "CREATE TABLE IF NOT EXISTS chunk_results(job_id TEXT NOT NULL, chunk INTEGER NOT NULL, blob BLOB NOT NULL,"
    " created_at INTEGER NOT NULL, PRIMARY KEY (job_id, chunk));"
    "CREATE TABLE IF NOT EXISTS deadletters(id INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL,"
    " chunk INTEGER NOT NULL, reason TEXT NOT NULL, attempts INTEGER NOT NULL, created_at INTEGER NOT NULL,"
    " retried INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS deadletters_job ON deadletters(job_id, chunk);";

/* ---- connections ----------------------------------------------------------------------- */


sqlite3_stmt *sq_stmt(conn_t *c, int i) {
    if (!c->q[i] && sqlite3_prepare_v3(c->db, SQL[i], -1, SQLITE_PREPARE_PERSISTENT, &c->q[i], NULL) != SQLITE_OK) {
        LOG_E("store: prepare failed", "sql=%d err=\"%s\"", i, sqlite3_errmsg(c->db));
        c->q[i] = NULL;
    }
    return c->q[i];
}

void sq_done_stmt(sqlite3_stmt *s) {
    if (!s) return;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

static conn_t *conn_open(const char *path, int create, char *err, size_t errlen);

static void conn_close(conn_t *c) {
    if (!c) return;
    for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(c->q[i]);
    sqlite3_close(c->db);
    free(c);
}

/* ---- small helpers (the graph ops: store_sqlite_graph.c, the jobs': store_sqlite_jobs.c) --- */

void sq_seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void sq_bind_text(sqlite3_stmt *s, int i, const char *t) {
    if (t) sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else sqlite3_bind_null(s, i);
}

static void op_effects_free(op_t *op) {
    if (op->clean) {
        for (size_t i = 0; i < op->n; i++) json_decref(op->clean[i]);
        free(op->clean);
        op->clean = NULL;
    }
    json_decref(op->merged);
    op->merged = NULL;
    if (op->touched_owned)
        for (size_t i = 0; i < op->n_touched; i++) free((char *)op->touched[i]);
    free(op->touched);
    op->touched = NULL;
    free(op->touched_k);
    op->touched_k = NULL;
    op->n_touched = 0;
    for (size_t i = 0; i < op->n_removed; i++) { free(op->removed[i].a); free(op->removed[i].b); }
    free(op->removed);
    op->removed = NULL;
    op->n_removed = 0;
}

/* ---- writer: one op each --------------------------------------------------------------- */

/* Runs a statement that returns no rows. 0 ok, -1 error (op->err filled). */
int sq_exec_step(store_t *st, op_t *op, sqlite3_stmt *s) {
    if (!s) { sq_seterr(op->err, op->errlen, "store: statement unavailable"); return -1; }
    int rc = sqlite3_step(s);
    sq_done_stmt(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
        return -1;
    }
    return 0;
}

/* 1 exists, 0 not, -1 error */
int sq_exists1(store_t *st, op_t *op, int q, const char *a, const char *b, int64_t i2) {
    sqlite3_stmt *s = sq_stmt(st->w, q);
    if (!s) { sq_seterr(op->err, op->errlen, "store: statement unavailable"); return -1; }
    sq_bind_text(s, 1, a);
    if (b) sq_bind_text(s, 2, b);
    else sqlite3_bind_int64(s, 2, i2);
    int rc = sqlite3_step(s);
    sq_done_stmt(s);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
    return -1;
}

static int op_run(store_t *st, op_t *op) {
    switch (op->kind) {
    case OP_IMPORT_ENT: return sq_op_import_entities(st, op);
    case OP_IMPORT_REL: return sq_op_import_relationships(st, op);
    case OP_IMPORT_OBS: return sq_op_import_observations(st, op);
    case OP_PATCH: return sq_op_patch(st, op);
    case OP_DELETE: return sq_op_delete(st, op);
    case OP_REL_DELETE: return sq_op_rel_delete(st, op);
    case OP_JOB_INSERT: return sq_op_job_insert(st, op);
    case OP_JOB_STARTED: {
        sqlite3_stmt *s = sq_stmt(st->w, Q_JOB_STARTED);
        if (s) {
            sq_bind_text(s, 1, op->job_id);
            sqlite3_bind_int64(s, 2, op->at_ms);
        }
        return sq_exec_step(st, op, s);
    }
    case OP_CHUNK_COMMIT: return sq_op_chunk_commit(st, op);
    case OP_DEADLETTER: return sq_op_deadletter(st, op);
    case OP_CANCEL: return sq_op_cancel(st, op);
    case OP_DL_RETRY: return sq_op_dl_retry(st, op);
    case OP_JOBS_EXPIRE: return sq_op_jobs_expire(st, op);
    case OP_SQL: {
        int rc = op->sql_fn(st->w->db, op->sql_arg, op->err, op->errlen);
        if (rc && !op->err[0]) sq_seterr(op->err, op->errlen, "store: %s", sqlite3_errmsg(st->w->db));
        return rc ? -1 : 0;
    }
    }
    return -1;
}

/* Applies a committed op's changes to the graph (writer thread, commit order). */
static void op_apply_graph(store_t *st, op_t *op) {
    graph_t *g = st->graph;
    /* job and chunk writes change no entity: taking the graph's write lock for them would
     * stall every reader (lookups of a submission, chunks computing) behind this thread */
    const int graph_op = op->kind == OP_IMPORT_ENT || op->kind == OP_IMPORT_REL || op->kind == OP_PATCH ||
                         op->kind == OP_DELETE || op->kind == OP_REL_DELETE;
    if (!g || (!graph_op && op->n_touched == 0 && !(st->apply_hook && op->version))) return;
    graph_wrlock(g); /* once for the whole op: an import applies all its rows under one lock */
    switch (op->kind) {
    case OP_IMPORT_ENT: {
        const entity_row_t *rows = op->rows;
        for (size_t i = 0; i < op->n; i++)
            graph_upsert_entity_locked(g, rows[i].entity_id, op->clean && op->clean[i] ? op->clean[i] : rows[i].props, op->version);
        break;
    }
    case OP_IMPORT_REL: {
        const rel_row_t *rows = op->rows;
        for (size_t i = 0; i < op->n; i++) graph_add_relationship_locked(g, rows[i].source, rows[i].target, rows[i].weight, 1);
        break;
    }
    case OP_PATCH: graph_upsert_entity_locked(g, op->id, op->merged, op->version); break;
    case OP_DELETE: graph_delete_entity_locked(g, op->id); break;
    case OP_REL_DELETE:
        for (size_t i = 0; i < op->n_removed; i++) graph_add_relationship_locked(g, op->removed[i].a, op->removed[i].b, op->removed[i].w, -1);
        break;
    default: break;
    }
    for (size_t i = 0; i < op->n_touched; i++) graph_set_version_locked(g, op->touched[i], op->version);
    if (st->apply_hook && op->version) st->apply_hook(st->apply_hook_arg, op->version);
    graph_unlock(g);
}

/* Runs one of the transaction-control statements (Q_TX_*). */
static int w_exec(store_t *st, int q) {
    sqlite3_stmt *s = sq_stmt(st->w, q);
    int rc = s ? sqlite3_step(s) : SQLITE_ERROR;
    if (rc != SQLITE_DONE)
        LOG_E("store: statement failed", "sql=\"%s\" err=\"%s\"", SQL[q], sqlite3_errmsg(st->w->db));
    if (s) sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static uint64_t load_clock(sqlite3 *db) {
    sqlite3_stmt *s = NULL;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'version_clock'", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        v = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* One group: every op in its savepoint, one commit, then graph changes and wake-ups. */
static void run_group(store_t *st, op_t *ops) {
    char errtmp[256];
    uint64_t n_ops = 0;
    for (op_t *op = ops; op; op = op->next) n_ops++;
    metrics_t *m = atomic_load(&st->metrics);
    const double t_begin = m ? mono_s() : 0;
    int began = w_exec(st, Q_TX_BEGIN) == 0;
    for (op_t *op = ops; op; op = op->next) {
        if (!op->sync || !op->err) { op->err = errtmp; op->errlen = sizeof errtmp; errtmp[0] = 0; }
        if (!began) { sq_seterr(op->err, op->errlen, "store: cannot begin a transaction: %s", sqlite3_errmsg(st->w->db)); op->rc = -1; continue; }
        uint64_t clock = st->clock;
        if (w_exec(st, Q_TX_SAVEPOINT)) { op->rc = -1; sq_seterr(op->err, op->errlen, "store: savepoint failed"); continue; }
        op->rc = op_run(st, op);
        if (op->rc < 0) {
            w_exec(st, Q_TX_ROLLBACK_TO);
            st->clock = clock;
            op_effects_free(op);
            if (!op->sync) LOG_E("store: write failed", "op=%d job=%s err=\"%s\"", (int)op->kind, op->job_id, errtmp);
        }
        w_exec(st, Q_TX_RELEASE);
    }
    const double t_commit = m ? mono_s() : 0;
    const int commit_failed = began && w_exec(st, Q_TX_COMMIT);
    if (m) {
        const double t_end = mono_s();
        metrics_observe(m, "predictd_store_commit_seconds", NULL, t_end - t_commit);
        metrics_observe(m, "predictd_store_group_seconds", NULL, t_end - t_begin);
        metrics_observe(m, "predictd_store_group_ops", NULL, (double)n_ops);
    }
    if (commit_failed) {
        const char *why = sqlite3_errmsg(st->w->db);
        for (op_t *op = ops; op; op = op->next) {
            if (op->rc >= 0) { op->rc = -1; sq_seterr(op->err, op->errlen, "store: commit failed: %s", why); }
            op_effects_free(op);
        }
        w_exec(st, Q_TX_ROLLBACK);
        st->clock = load_clock(st->w->db);
    }
    for (op_t *op = ops; op; op = op->next) {
        if (op->rc == 0) op_apply_graph(st, op);
        op_effects_free(op);
    }
    /* async ops: callbacks in commit order, then freed */
    op_t *waiting = NULL, **wtail = &waiting;
    for (op_t *op = ops, *next; op; op = next) {
        next = op->next;
        if (op->sync) {
            op->next = NULL;
            *wtail = op;
            wtail = &op->next;
            continue;
        }
        if (op->cb) op->cb(op->cb_arg, op->rc);
        if (op->sql_free) op->sql_free(op->sql_arg);
        free(op->blob);
        free(op->reason);
        free(op);
    }
    pthread_mutex_lock(&st->mu);
    st->groups++;
    st->ops += n_ops;
    for (op_t *op = waiting, *next; op; op = next) {
        next = op->next;
        pthread_cond_t *cv = op->done_cv;
        op->done = 1; /* the caller may free op from here on (it waits for mu first) */
        /* only the submitters of this group wake, each on its own condition */
        if (cv) pthread_cond_signal(cv);
        else pthread_cond_broadcast(&st->done_cv);
    }
    pthread_mutex_unlock(&st->mu);
}

/* The checkpointer copies the WAL into the database file each time the WAL grew by this many
 * pages (4 KiB each in new databases, 16 KiB in older ones), not after every commit: each
 * passive checkpoint ends with an fsync of the database file, and one per commit (3,000 in a
 * 10 s sustained run) competed with the commits' own fsyncs for the disk. Measured on the
 * loadgen's submit + sustained phases, 4 paired runs: +1.5 to +6.6 % sustained predictions
 * with 256 against every commit; 1,024 did as well on average but left the writer's RESTART
 * more to copy (sustained job p99 16-20 ms instead of 10-12). The first one runs at 256
 * pages too: starting at 2,000 made it copy and fsync 8 MB at once while commits waited
 * (submit p99 over 1,000 jobs, 8 clients: 10-11 ms with the first at 2,000, 7.6-8.0 ms). */
#define CKPT_STEP_PAGES 256
/* Under a steady load with readers, the WAL seldom starts over by itself: it may only when a
 * write begins with every frame checkpointed and no reader on the old frames, and a reader
 * is nearly always active. It would grow without bound (hundreds of MB a minute under the
 * benchmark). Past st->restart_pages (store.wal_max_mb) the writer itself, between two
 * groups (it holds the write lock then without competing for it), runs
 * SQLITE_CHECKPOINT_RESTART: it copies the few frames the passive checkpoints left, waits for
 * the readers of the old frames (short reads), and the next write starts the WAL over. It
 * waits at most CKPT_RESTART_WAIT_MS for them, else gives up until the next group. Each
 * restart pauses the commits for a few ms (1-client submissions: 4-8 ms instead of 1): at the
 * default 128 MiB that is once per ~2,000 1000-entity jobs, at 32 MiB it was every ~540. */
#define CKPT_RESTART_WAIT_MS 100

/* sqlite3_wal_hook: runs on the writer after each commit (replaces the auto-checkpoint). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages) {
    (void)db;
    (void)name;
    store_t *st = arg;
    st->wal_pages = pages; /* the writer thread: read by writer_main after the group */
    metrics_gauge_set(atomic_load(&st->metrics), "predictd_store_wal_pages", NULL, pages);
    if (pages < st->ckpt_last) st->ckpt_last = 0; /* the WAL started over */
    if (pages - st->ckpt_last >= CKPT_STEP_PAGES) {
        st->ckpt_last = pages;
        pthread_mutex_lock(&st->ckpt_mu);
        st->ckpt_wanted = 1;
        pthread_cond_signal(&st->ckpt_cv);
        pthread_mutex_unlock(&st->ckpt_mu);
    }
    return SQLITE_OK;
}

static void *ckpt_main(void *arg) {
    store_t *st = arg;
    char err[256];
    conn_t *c = conn_open(st->path, 0, err, sizeof err);
    if (!c) LOG_E("store: checkpointer cannot open the database", "err=\"%s\"", err);
    else {
        sqlite3_busy_timeout(c->db, CKPT_RESTART_WAIT_MS);
        /* SQLite opens the file at a connection's first statement: until then it is not in
         * WAL mode, and sqlite3_wal_checkpoint_v2 returns OK having done nothing (-1 frames).
         * Every checkpoint here was such a no-op before this read. */
        if (sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
            LOG_E("store: checkpointer cannot read the database", "err=\"%s\"", sqlite3_errmsg(c->db));
    }
    pthread_mutex_lock(&st->ckpt_mu);
    for (;;) {
        while (!st->ckpt_wanted && !st->ckpt_stop) pthread_cond_wait(&st->ckpt_cv, &st->ckpt_mu);
        if (st->ckpt_stop) break;
        st->ckpt_wanted = 0;
        pthread_mutex_unlock(&st->ckpt_mu);
        int log_pages = 0, done_pages = 0;
        if (c && !atomic_load(&st->restart_wanted)) {
            if (sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log_pages, &done_pages) != SQLITE_OK)
                LOG_W("store: checkpoint failed", "err=\"%s\"", sqlite3_errmsg(c->db));
            else
                metrics_counter_add(atomic_load(&st->metrics), "predictd_store_checkpoints_total", "mode=\"passive\"", 1);
        }
        pthread_mutex_lock(&st->ckpt_mu);
    }
    pthread_mutex_unlock(&st->ckpt_mu);
    conn_close(c);
    return NULL;
}

/* See CKPT_STEP_PAGES and restart_pages. Writer thread, between groups (their submitters are answered). */
static void wal_restart(store_t *st) {
    sqlite3 *db = st->w->db;
    int log_pages = 0, done_pages = 0;
    /* the checkpointer starts no passive run until this succeeds: one in progress makes the
     * restart fail at once (SQLite does not wait for the checkpoint lock), and with a run
     * started after every commit it would fail every time */
    atomic_store(&st->restart_wanted, 1);
    sqlite3_busy_timeout(db, CKPT_RESTART_WAIT_MS);
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_RESTART, &log_pages, &done_pages);
    sqlite3_busy_timeout(db, SQ_BUSY_TIMEOUT_MS);
    if (rc == SQLITE_BUSY) return; /* after the next group */
    atomic_store(&st->restart_wanted, 0);
    if (rc != SQLITE_OK) LOG_W("store: checkpoint failed", "err=\"%s\"", sqlite3_errmsg(db));
    else metrics_counter_add(atomic_load(&st->metrics), "predictd_store_checkpoints_total", "mode=\"restart\"", 1);
    st->wal_pages = 0; /* not again before the WAL has grown as much once more */
}

static void *writer_main(void *arg) {
    store_t *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->mu);
        while (!st->head && !st->stop) pthread_cond_wait(&st->cv, &st->mu);
        op_t *ops = st->head;
        st->head = st->tail = NULL;
        pthread_mutex_unlock(&st->mu);
        if (!ops) break; /* stop with nothing left */
        /* keep the async ops' pointers: run_group frees them */
        run_group(st, ops);
        if (st->wal_pages >= st->restart_pages) wal_restart(st);
    }
    return NULL;
}

void sq_enqueue(store_t *st, op_t *op) {
    op->next = NULL;
    pthread_mutex_lock(&st->mu);
    if (st->tail) st->tail->next = op;
    else st->head = op;
    st->tail = op;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

int sq_submit_sync(store_t *st, op_t *op) {
    pthread_cond_t cv;
    int own = pthread_cond_init(&cv, NULL) == 0;
    op->sync = 1;
    op->next = NULL;
    op->done_cv = own ? &cv : NULL;
    pthread_mutex_lock(&st->mu);
    if (st->tail) st->tail->next = op;
    else st->head = op;
    st->tail = op;
    pthread_cond_signal(&st->cv);
    while (!op->done) pthread_cond_wait(own ? &cv : &st->done_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
    if (own) pthread_cond_destroy(&cv);
    return op->rc;
}

/* ---- open / close ---------------------------------------------------------------------- */

static int mkdir_p(const char *dir) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    return 0;
}

/* SQLite's memory statistics (on by default) put a process-wide mutex around every malloc it
 * makes; the writer and the readers then queue on it. We read no statistics: off, once,
 * before the library initialises (a later call would be refused, harmlessly). */
static void sqlite_setup(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

static conn_t *conn_open(const char *path, int create, char *err, size_t errlen) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    conn_t *c = calloc(1, sizeof *c);
    if (!c) { sq_seterr(err, errlen, "out of memory"); return NULL; }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        sq_seterr(err, errlen, "cannot open %s: %s", path, c->db ? sqlite3_errmsg(c->db) : "out of memory");
        conn_close(c);
        return NULL;
    }
    sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
    return c;
}

conn_t *sq_rconn_get(store_t *st) {
    pthread_mutex_lock(&st->pool_mu);
    conn_t *c = st->pool;
    if (c) st->pool = c->next;
    pthread_mutex_unlock(&st->pool_mu);
    if (c) return c;
    char err[256];
    c = conn_open(st->path, 0, err, sizeof err);
    if (!c) LOG_E("store: cannot open a read connection", "err=\"%s\"", err);
    return c;
}

void sq_rconn_put(store_t *st, conn_t *c) {
    if (!c) return;
    pthread_mutex_lock(&st->pool_mu);
    c->next = st->pool;
    st->pool = c;
    pthread_mutex_unlock(&st->pool_mu);
}

int store_open(store_t **out, const predictd_config_t *cfg, char *err, size_t errlen) {
    *out = NULL;
    store_t *st = calloc(1, sizeof *st);
    if (!st) { sq_seterr(err, errlen, "out of memory"); return -1; }
    st->cfg = *cfg;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    pthread_cond_init(&st->done_cv, NULL);
    pthread_mutex_init(&st->pool_mu, NULL);
    pthread_mutex_init(&st->ckpt_mu, NULL);
    pthread_cond_init(&st->ckpt_cv, NULL);
    const char *dir = cfg->data_dir[0] ? cfg->data_dir : ".";
    if (mkdir_p(dir)) { sq_seterr(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno)); goto fail; }
    snprintf(st->path, sizeof st->path, "%s/predictd.db", dir);
    const char *sync = cfg->store_synchronous[0] ? cfg->store_synchronous : "full";
    const char *sync_sql;
    if (!strcasecmp(sync, "full")) sync_sql = "PRAGMA synchronous=FULL";
    else if (!strcasecmp(sync, "normal")) sync_sql = "PRAGMA synchronous=NORMAL";
    else if (!strcasecmp(sync, "off")) sync_sql = "PRAGMA synchronous=OFF";
    else { sq_seterr(err, errlen, "store.synchronous: '%s' is not full|normal|off", sync); goto fail; }
    if (!(st->w = conn_open(st->path, 1, err, errlen))) goto fail;
    sqlite3 *db = st->w->db;
    char *msg = NULL;
    sqlite3_stmt *s = NULL;
    int uv = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        uv = sqlite3_column_int(s, 0);
    else { sqlite3_finalize(s); sq_seterr(err, errlen, "%s: %s", st->path, sqlite3_errmsg(db)); goto fail; }
    sqlite3_finalize(s);
    if (uv > SCHEMA_VERSION) { sq_seterr(err, errlen, "%s has schema version %d; this predictd knows up to %d", st->path, uv, SCHEMA_VERSION); goto fail; }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; %s; PRAGMA cache_size=-16384; PRAGMA temp_store=MEMORY;", sync_sql);
    if (sqlite3_exec(db, pragmas, NULL, NULL, &msg) != SQLITE_OK) goto fail_msg;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) goto fail_msg;
    /* version 1 kept the ids in the jobs row: move them to job_ids */
    static const char MIGRATE_1_2[] =
        "CREATE TABLE job_ids(job_id TEXT PRIMARY KEY, ids BLOB NOT NULL);"
        "INSERT INTO job_ids(job_id, ids) SELECT id, ids FROM jobs;"
        "ALTER TABLE jobs DROP COLUMN ids;";
    /* version 2 indexed jobs by status alone: SCHEMA makes the (status, finished_at) index */
    static const char MIGRATE_2_3[] = "DROP INDEX IF EXISTS jobs_status;";
    if ((uv == 1 && sqlite3_exec(db, MIGRATE_1_2, NULL, NULL, &msg) != SQLITE_OK) ||
        (uv >= 1 && uv < 3 && sqlite3_exec(db, MIGRATE_2_3, NULL, NULL, &msg) != SQLITE_OK) ||
        sqlite3_exec(db, SCHEMA, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA user_version=" STR(SCHEMA_VERSION) "; COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        goto fail_msg;
    }
    st->clock = load_clock(db);
    int page_size = 4096;
    if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        page_size = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    s = NULL;
    const long wal_mb = cfg->store_wal_max_mb > 0 ? cfg->store_wal_max_mb : 128;
    st->restart_pages = (int)(wal_mb * 1048576 / (page_size > 0 ? page_size : 4096));
    if (buf_reserve(&st->scratch, 4096)) { sq_seterr(err, errlen, "out of memory"); goto fail; }
    sqlite3_wal_hook(db, wal_hook, st);
    if (pthread_create(&st->ckpt, NULL, ckpt_main, st) == 0) {
        st->ckpt_started = 1;
        pthread_setname_np(st->ckpt, "pd-checkpoint");
    } else {
        sqlite3_wal_autocheckpoint(db, 1000); /* no thread: let commits checkpoint */
    }
    if (pthread_create(&st->writer, NULL, writer_main, st)) { sq_seterr(err, errlen, "cannot start the writer thread"); goto fail; }
    st->writer_started = 1;
    pthread_setname_np(st->writer, "pd-writer");
    *out = st;
    return 0;
fail_msg:
    sq_seterr(err, errlen, "%s: %s", st->path, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
fail:
    store_close(st);
    return -1;
}

void store_close(store_t *st) {
    if (!st) return;
    if (st->writer_started) {
        pthread_mutex_lock(&st->mu);
        st->stop = 1;
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->writer, NULL);
    }
    if (st->ckpt_started) {
        pthread_mutex_lock(&st->ckpt_mu);
        st->ckpt_stop = 1;
        pthread_cond_signal(&st->ckpt_cv);
        pthread_mutex_unlock(&st->ckpt_mu);
        pthread_join(st->ckpt, NULL);
    }
    while (st->pool) {
        conn_t *c = st->pool;
        st->pool = c->next;
        conn_close(c);
    }
    conn_close(st->w);
    buf_free(&st->scratch);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->done_cv);
    pthread_mutex_destroy(&st->pool_mu);
    pthread_mutex_destroy(&st->ckpt_mu);
    pthread_cond_destroy(&st->ckpt_cv);
    free(st);
}

/* ---- public writes --------------------------------------------------------------------- */

int store_import_entities(store_t *st, const entity_row_t *rows, size_t n, char *err, size_t errlen) {
    op_t op = {.kind = OP_IMPORT_ENT, .rows = rows, .n = n, .err = err, .errlen = errlen};
    return sq_submit_sync(st, &op) == 0 ? 0 : -1;
}

int store_import_relationships(store_t *st, const rel_row_t *rows, size_t n, char *err, size_t errlen) {
    op_t op = {.kind = OP_IMPORT_REL, .rows = rows, .n = n, .err = err, .errlen = errlen};
    return sq_submit_sync(st, &op) == 0 ? 0 : -1;
}

int store_import_observations(store_t *st, const obs_row_t *rows, size_t n, char *err, size_t errlen) {
    op_t op = {.kind = OP_IMPORT_OBS, .rows = rows, .n = n, .err = err, .errlen = errlen};
    return sq_submit_sync(st, &op) == 0 ? 0 : -1;
}

void store_attach_graph(store_t *st, graph_t *g) { st->graph = g; }

void store_set_apply_hook(store_t *st, void (*fn)(void *arg, uint64_t version), void *arg) {
    st->apply_hook = fn;
    st->apply_hook_arg = arg;
}

int store_entity_patch(store_t *st, const char *id, const json_t *props, char *err, size_t errlen) {
    op_t op = {.kind = OP_PATCH, .id = id, .props = props, .err = err, .errlen = errlen};
    return sq_submit_sync(st, &op);
}

int store_entity_delete(store_t *st, const char *id, char *err, size_t errlen) {
    op_t op = {.kind = OP_DELETE, .id = id, .err = err, .errlen = errlen};
    return sq_submit_sync(st, &op);
}

int store_relationships_delete(store_t *st, const rel_row_t *rows, size_t n, int match_type,
                               long *deleted, char *err, size_t errlen) {
    op_t op = {.kind = OP_REL_DELETE, .rows = rows, .n = n, .match_type = match_type, .err = err, .errlen = errlen};
    int rc = sq_submit_sync(st, &op);
    if (deleted) *deleted = rc == 0 ? (long)op.len : 0;
    return rc == 0 ? 0 : -1;
}

int store_job_insert(store_t *st, const store_new_job_t *nj, char existing_id[32], char *err, size_t errlen) {
    op_t op = {.kind = OP_JOB_INSERT, .nj = nj, .existing_id = existing_id, .err = err, .errlen = errlen};
    return sq_submit_sync(st, &op);
}

void store_job_mark_started(store_t *st, const char *id, int64_t at_ms) {
    op_t *op = calloc(1, sizeof *op);
    if (!op) { LOG_E("store: out of memory", "job=%s", id); return; }
    op->kind = OP_JOB_STARTED;
    snprintf(op->job_id, sizeof op->job_id, "%s", id);
    op->at_ms = at_ms;
    sq_enqueue(st, op);
}

void store_chunk_commit(store_t *st, const char *job_id, uint32_t chunk, const void *blob, size_t len,
                        long successful, long failed, double exec_ms, store_done_fn done, void *arg) {
    op_t *op = calloc(1, sizeof *op);
    void *copy = malloc(len ? len : 1);
    if (!op || !copy) {
        free(op);
        free(copy);
        LOG_E("store: out of memory", "job=%s chunk=%u", job_id, chunk);
        if (done) done(arg, -1);
        return;
    }
    if (len) memcpy(copy, blob, len);
    op->kind = OP_CHUNK_COMMIT;
    snprintf(op->job_id, sizeof op->job_id, "%s", job_id);
    op->chunk = chunk;
    op->blob = copy;
    op->len = len;
    op->successful = successful;
    op->failed = failed;
    op->exec_ms = exec_ms;
    op->cb = done;
    op->cb_arg = arg;
    sq_enqueue(st, op);
}

void store_chunk_deadletter(store_t *st, const char *job_id, uint32_t chunk, const char *reason,
                            int attempts, store_done_fn done, void *arg) {
    op_t *op = calloc(1, sizeof *op);
    char *r = strdup(reason ? reason : "");
    if (!op || !r) {
        free(op);
        free(r);
        LOG_E("store: out of memory", "job=%s chunk=%u", job_id, chunk);
        if (done) done(arg, -1);
        return;
    }
    op->kind = OP_DEADLETTER;
    snprintf(op->job_id, sizeof op->job_id, "%s", job_id);
    op->chunk = chunk;
    op->reason = r;
    op->attempts = attempts;
    op->cb = done;
    op->cb_arg = arg;
    sq_enqueue(st, op);
}

int store_job_cancel(store_t *st, const char *id, store_job_t *out) {
    store_job_t tmp;
    char err[256];
    op_t op = {.kind = OP_CANCEL, .id = id, .job_out = out ? out : &tmp, .err = err, .errlen = sizeof err};
    int rc = sq_submit_sync(st, &op);
    if (rc < 0) LOG_E("store: cancel failed", "job=%s err=\"%s\"", id, err);
    return rc;
}

long store_jobs_expire(store_t *st, int64_t finished_before_ms, int limit) {
    char err[256] = "";
    op_t op = {.kind = OP_JOBS_EXPIRE, .at_ms = finished_before_ms, .n = limit > 0 ? (size_t)limit : 0,
               .err = err, .errlen = sizeof err};
    if (sq_submit_sync(st, &op) != 0) {
        LOG_E("store: expiring finished jobs failed", "err=\"%s\"", err);
        return -1;
    }
    return (long)op.len;
}

int store_deadletter_retry(store_t *st, long id, char job_id[32], uint32_t *chunk) {
    char err[256];
    op_t op = {.kind = OP_DL_RETRY, .dl_id = id, .job_id_out = job_id, .chunk_out = chunk, .err = err, .errlen = sizeof err};
    int rc = sq_submit_sync(st, &op);
    if (rc < 0) LOG_E("store: dead-letter retry failed", "id=%ld err=\"%s\"", id, err);
    return rc;
}

void store_attach_metrics(store_t *st, metrics_t *m) {
    static const double OPS_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
    /* a commit is 0.1 ms (no fsync) to a few ms: finer than the default latency buckets */
    static const double S_BUCKETS[] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1};
    const int n_s = (int)(sizeof S_BUCKETS / sizeof S_BUCKETS[0]);
    metrics_describe(m, "predictd_store_commit_seconds", METRIC_HISTOGRAM,
                     "Time of a group's COMMIT: the WAL write and, with store.synchronous=full, its fsync.",
                     S_BUCKETS, n_s);
    metrics_describe(m, "predictd_store_group_seconds", METRIC_HISTOGRAM,
                     "Time of a whole group commit on the writer thread, from BEGIN to COMMIT done.", S_BUCKETS, n_s);
    metrics_describe(m, "predictd_store_group_ops", METRIC_HISTOGRAM,
                     "Writes per group commit (submissions, chunk results, graph changes, ...).", OPS_BUCKETS,
                     (int)(sizeof OPS_BUCKETS / sizeof OPS_BUCKETS[0]));
    metrics_describe(m, "predictd_store_wal_pages", METRIC_GAUGE, "Pages in the WAL after the last commit.", NULL, 0);
    metrics_describe(m, "predictd_store_checkpoints_total", METRIC_COUNTER,
                     "WAL checkpoints: passive (the checkpointer thread, every 256 new WAL pages) and restart (the writer, past store.wal_max_mb).",
                     NULL, 0);
    metrics_counter_add(m, "predictd_store_checkpoints_total", "mode=\"passive\"", 0);
    metrics_counter_add(m, "predictd_store_checkpoints_total", "mode=\"restart\"", 0);
    atomic_store(&st->metrics, m);
}

void store_write_stats(store_t *st, uint64_t *groups, uint64_t *ops) {
    pthread_mutex_lock(&st->mu);
    if (groups) *groups = st->groups;
    if (ops) *ops = st->ops;
    pthread_mutex_unlock(&st->mu);
}
