/* jobs_recent.c: finished jobs kept in memory for their reads: what is kept, what is not,
 * eviction by bytes, and an entry evicted while read stays valid until its reader is done. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/jobs_int.h"
#include "test.h"

/* A job of n_chunks chunks whose blobs are blob_len bytes of the chunk number. */
static void make(const char *id, long n_chunks, size_t blob_len, store_job_t *job, store_chunk_blob_t *settled) {
    memset(job, 0, sizeof *job);
    snprintf(job->id, sizeof job->id, "%s", id);
    job->status = JOB_COMPLETED;
    job->n_chunks = n_chunks;
    job->n_entities = n_chunks;
    for (long c = 0; c < n_chunks; c++) {
        char *b = malloc(blob_len);
        memset(b, 'a' + (int)c, blob_len);
        settled[c].chunk = (uint32_t)(n_chunks - 1 - c); /* any order */
        settled[c].blob = b;
        settled[c].len = blob_len;
    }
}

static void free_left(store_chunk_blob_t *settled, long n) {
    for (long c = 0; c < n; c++) free((void *)settled[c].blob);
}

static void kept_jobs_are_read_back_chunk_by_chunk(void) {
    jobs_recent_t *r = jobs_recent_new(1 << 20);
    ASSERT_TRUE(r != NULL);
    store_job_t job, got;
    store_chunk_blob_t s[3];
    make("JOB-a", 3, 100, &job, s);
    job.successful = 7;
    jobs_recent_put(r, &job, s, 3);
    for (int c = 0; c < 3; c++) ASSERT_TRUE(s[c].blob == NULL); /* taken */
    const jobs_recent_entry_t *e = jobs_recent_get(r, "JOB-a", &got);
    ASSERT_TRUE(e != NULL);
    ASSERT_EQ_STR(got.id, "JOB-a");
    ASSERT_EQ_INT(got.successful, 7);
    for (uint32_t c = 0; c < 3; c++) {
        const void *b;
        size_t len;
        jobs_recent_blob(e, c, &b, &len);
        ASSERT_TRUE(b != NULL);
        ASSERT_EQ_INT(len, 100);
        ASSERT_EQ_INT(((const char *)b)[0], 'a' + (2 - (int)c)); /* chunk c came from settled[2 - c] */
    }
    const void *b;
    size_t len;
    jobs_recent_blob(e, 3, &b, &len);
    ASSERT_TRUE(b == NULL && len == 0);
    jobs_recent_release(r, e);
    ASSERT_TRUE(jobs_recent_get(r, "JOB-b", NULL) == NULL);
    jobs_recent_free(r);
    ASSERT_TRUE(jobs_recent_new(0) == NULL); /* 0 bytes: off */
}

static void incomplete_or_oversized_jobs_stay_with_the_caller(void) {
    jobs_recent_t *r = jobs_recent_new(4000);
    store_job_t job;
    store_chunk_blob_t s[3];
    make("JOB-p", 3, 100, &job, s);
    jobs_recent_put(r, &job, s, 2); /* a chunk missing */
    ASSERT_TRUE(s[0].blob != NULL && s[1].blob != NULL);
    ASSERT_TRUE(jobs_recent_get(r, "JOB-p", NULL) == NULL);
    s[1].chunk = s[0].chunk; /* the same chunk twice */
    jobs_recent_put(r, &job, s, 3);
    ASSERT_TRUE(s[0].blob != NULL && s[2].blob != NULL);
    ASSERT_TRUE(jobs_recent_get(r, "JOB-p", NULL) == NULL);
    free_left(s, 3);
    make("JOB-big", 2, 800, &job, s); /* more than a quarter of the budget */
    jobs_recent_put(r, &job, s, 2);
    ASSERT_TRUE(s[0].blob != NULL);
    ASSERT_TRUE(jobs_recent_get(r, "JOB-big", NULL) == NULL);
    free_left(s, 2);
    jobs_recent_put(NULL, &job, s, 0); /* no table: a no-op */
    jobs_recent_free(r);
}

static void least_recent_go_first_and_readers_keep_theirs(void) {
    jobs_recent_t *r = jobs_recent_new(4000);
    store_job_t job;
    store_chunk_blob_t s[1];
    char id[32];
    make("JOB-0", 1, 600, &job, s);
    jobs_recent_put(r, &job, s, 1);
    const jobs_recent_entry_t *held = jobs_recent_get(r, "JOB-0", NULL);
    ASSERT_TRUE(held != NULL);
    for (int i = 1; i <= 6; i++) { /* ~4 fit in 4000 bytes: JOB-0 goes, held by its reader */
        snprintf(id, sizeof id, "JOB-%d", i);
        make(id, 1, 600, &job, s);
        jobs_recent_put(r, &job, s, 1);
    }
    ASSERT_TRUE(jobs_recent_get(r, "JOB-0", NULL) == NULL);
    ASSERT_TRUE(jobs_recent_get(r, "JOB-1", NULL) == NULL);
    const jobs_recent_entry_t *e = jobs_recent_get(r, "JOB-6", NULL);
    ASSERT_TRUE(e != NULL);
    jobs_recent_release(r, e);
    const void *b;
    size_t len;
    jobs_recent_blob(held, 0, &b, &len); /* evicted, still readable by its reader */
    ASSERT_TRUE(b != NULL && len == 600 && ((const char *)b)[599] == 'a');
    jobs_recent_release(r, held); /* the last reference: freed now (the sanitizer build checks) */
    jobs_recent_free(r);
}

static void jobs_past_retention_are_dropped(void) {
    jobs_recent_t *r = jobs_recent_new(1 << 20);
    store_job_t job;
    store_chunk_blob_t s[1];
    const int64_t finished[4] = {1000, 5000, 2000, 9000}; /* not in order of their puts */
    for (int i = 0; i < 4; i++) {
        char id[32];
        snprintf(id, sizeof id, "JOB-%d", i);
        make(id, 1, 10, &job, s);
        job.finished_at = finished[i];
        jobs_recent_put(r, &job, s, 1);
    }
    const jobs_recent_entry_t *held = jobs_recent_get(r, "JOB-0", NULL);
    jobs_recent_expire(r, 5000); /* before 5000: JOB-0 and JOB-2 */
    ASSERT_TRUE(jobs_recent_get(r, "JOB-0", NULL) == NULL);
    ASSERT_TRUE(jobs_recent_get(r, "JOB-2", NULL) == NULL);
    for (int i = 1; i <= 3; i += 2) {
        char id[32];
        snprintf(id, sizeof id, "JOB-%d", i);
        const jobs_recent_entry_t *e = jobs_recent_get(r, id, &job);
        ASSERT_TRUE(e != NULL);
        ASSERT_EQ_INT(job.finished_at, finished[i]);
        jobs_recent_release(r, e);
    }
    const void *b;
    size_t len;
    jobs_recent_blob(held, 0, &b, &len); /* its reader still has it */
    ASSERT_TRUE(b != NULL && len == 10);
    jobs_recent_release(r, held);
    jobs_recent_expire(NULL, 5000); /* no table: a no-op */
    jobs_recent_free(r);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(kept_jobs_are_read_back_chunk_by_chunk),
        TEST_CASE(incomplete_or_oversized_jobs_stay_with_the_caller),
        TEST_CASE(least_recent_go_first_and_readers_keep_theirs),
        TEST_CASE(jobs_past_retention_are_dropped),
    };
    return test_main("jobs_recent", cases, (int)(sizeof cases / sizeof cases[0]));
}
