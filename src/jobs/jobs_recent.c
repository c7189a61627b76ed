/* Recently finished jobs kept in memory, for their status and results reads.
 *
 * A job done in its submission has its final record and every chunk's result blob in hand
 * when its commit returns; clients read exactly those right after (the status, then the
 * results pages). Keeping them here for a while (bounded by bytes, least recently used first
 * out) answers those reads without the store: no read transaction, no page reads of a blob
 * spread over a dozen pages, no copy. Nothing here can go stale: a finished job's record
 * and results never change (a COMPLETED job is never reopened or cancelled), and the store
 * has them all the same. A reader holds a reference while it renders, so an entry evicted
 * meanwhile is freed by the last reader. */
#include "jobs/jobs_int.h"

#include <stdlib.h>
#include <string.h>

struct jobs_recent_entry {
    struct jobs_recent_entry *hnext, *lprev, *lnext; /* map chain; LRU: head = newest */
    store_job_t job;
    const void **blob;  /* [job.n_chunks], owned */
    size_t *len;
    size_t bytes;
    int refs;           /* the table's own (while linked) and readers'; under mu */
    int linked;
};

#define RECENT_BUCKETS 4096

struct jobs_recent {
    pthread_mutex_t mu; /* protects everything below and the entries' refs and links */
    jobs_recent_entry_t *buckets[RECENT_BUCKETS];
    jobs_recent_entry_t *head, *tail;
    size_t bytes, max_bytes;
};

static size_t bucket_of(const char *id) { return (size_t)hash_bytes(id, strlen(id), 0x7ecb) % RECENT_BUCKETS; }

jobs_recent_t *jobs_recent_new(size_t max_bytes) {
    if (max_bytes == 0) return NULL;
    jobs_recent_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->max_bytes = max_bytes;
    return r;
}

static void entry_free(jobs_recent_entry_t *e) {
    for (long c = 0; c < e->job.n_chunks; c++) free((void *)e->blob[c]);
    free(e->blob);
    free(e->len);
    free(e);
}

/* Unlinks e from the map and the LRU; frees it unless a reader holds it. mu held. */
static void unlink_entry(jobs_recent_t *r, jobs_recent_entry_t *e) {
    jobs_recent_entry_t **pp = &r->buckets[bucket_of(e->job.id)];
    while (*pp && *pp != e) pp = &(*pp)->hnext;
    if (*pp) *pp = e->hnext;
    if (e->lprev) e->lprev->lnext = e->lnext; else r->head = e->lnext;
    if (e->lnext) e->lnext->lprev = e->lprev; else r->tail = e->lprev;
    r->bytes -= e->bytes;
    e->linked = 0;
    if (--e->refs == 0) entry_free(e);
}

void jobs_recent_free(jobs_recent_t *r) {
    if (!r) return;
    while (r->head) unlink_entry(r, r->head);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void jobs_recent_put(jobs_recent_t *r, const store_job_t *job, store_chunk_blob_t *settled, size_t n) {
    int keep = r && job->n_chunks > 0 && (size_t)job->n_chunks == n;
    jobs_recent_entry_t *e = keep ? calloc(1, sizeof *e) : NULL;
    if (e) {
        e->blob = calloc((size_t)job->n_chunks, sizeof *e->blob);
        e->len = calloc((size_t)job->n_chunks, sizeof *e->len);
    }
    if (e && e->blob && e->len) {
        e->job = *job;
        e->bytes = sizeof *e + (size_t)job->n_chunks * (sizeof *e->blob + sizeof *e->len);
        for (size_t i = 0; i < n; i++) {
            uint32_t c = settled[i].chunk;
            if (c >= (uint32_t)job->n_chunks || e->blob[c]) { keep = 0; break; } /* not one of each */
            e->blob[c] = settled[i].blob;
            e->len[c] = settled[i].len;
            e->bytes += settled[i].len;
        }
    } else {
        keep = 0;
    }
    if (!keep || e->bytes > r->max_bytes / 4) {
        /* not kept: the blobs stay the caller's */
        if (e) {
            free(e->blob);
            free(e->len);
            free(e);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) settled[i].blob = NULL; /* ours now */
    e->refs = 1;
    e->linked = 1;
    pthread_mutex_lock(&r->mu);
    size_t b = bucket_of(job->id);
    e->hnext = r->buckets[b];
    r->buckets[b] = e;
    e->lnext = r->head;
    if (r->head) r->head->lprev = e; else r->tail = e;
    r->head = e;
    r->bytes += e->bytes;
    while (r->bytes > r->max_bytes && r->tail && r->tail != e) unlink_entry(r, r->tail);
    pthread_mutex_unlock(&r->mu);
}

void jobs_recent_expire(jobs_recent_t *r, int64_t finished_before_ms) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    for (jobs_recent_entry_t *e = r->head, *next; e; e = next) {
        next = e->lnext;
        if (e->job.finished_at < finished_before_ms) unlink_entry(r, e);
    }
    pthread_mutex_unlock(&r->mu);
}

const jobs_recent_entry_t *jobs_recent_get(jobs_recent_t *r, const char *id, store_job_t *job) {
    if (!r) return NULL;
    pthread_mutex_lock(&r->mu);
    jobs_recent_entry_t *e = r->buckets[bucket_of(id)];
    while (e && strcmp(e->job.id, id) != 0) e = e->hnext;
    if (e) {
        e->refs++;
        if (job) *job = e->job;
    }
    pthread_mutex_unlock(&r->mu);
    return e;
}

void jobs_recent_blob(const jobs_recent_entry_t *e, uint32_t chunk, const void **blob, size_t *len) {
    *blob = chunk < (uint32_t)e->job.n_chunks ? e->blob[chunk] : NULL;
    *len = *blob ? e->len[chunk] : 0;
}

void jobs_recent_release(jobs_recent_t *r, const jobs_recent_entry_t *ce) {
    if (!r || !ce) return;
    jobs_recent_entry_t *e = (jobs_recent_entry_t *)ce;
    pthread_mutex_lock(&r->mu);
    int last = --e->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last) entry_free(e); /* evicted while read: the last reader frees it */
}
