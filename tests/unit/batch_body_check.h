/* The one-pass batch body parser (src/api/api_batch_body.c) against jansson on the same
 * bytes, shared by the unit test (test_api_json.c) and the libFuzzer target
 * (tests/fuzz/fuzz_batch_body.c). Needs api/api_internal.h and jansson.h first. */
#ifndef PREDICTD_TESTS_BATCH_BODY_CHECK_H
#define PREDICTD_TESTS_BATCH_BODY_CHECK_H

#include <string.h>

/* 1 when both give the same result: the same error status and body, or documents equal once
 * entity_ids is put back into the one-pass parser's. *fast_path: whether the one pass
 * collected entity_ids itself (1) or left the whole body to jansson (0). */
static inline int batch_body_same_as_jansson(const char *body, size_t len, int *fast_path) {
    api_req_t rq;
    memset(&rq, 0, sizeof rq);
    rq.body = body;
    rq.body_len = len;
    api_resp_t a = {0}, b = {0};
    json_t *da = NULL, *db = NULL;
    api_ids_t ids;
    int ra = api_parse_batch_body(&rq, &a, &da, &ids);
    int rb = api_parse_body(&rq, &b, &db);
    int ok = ra == rb && a.status == b.status && a.body.len == b.body.len &&
             (a.body.len == 0 || memcmp(a.body.data, b.body.data, a.body.len) == 0);
    if (ok && ra == 0) {
        if (ids.present) {
            json_t *arr = json_array();
            for (size_t i = 0; i < ids.n; i++) json_array_append_new(arr, json_stringn(ids.str[i], ids.len[i]));
            json_object_set_new(da, "entity_ids", arr);
        }
        ok = json_equal(da, db);
    }
    *fast_path = ids.present;
    json_decref(da);
    json_decref(db);
    api_ids_free(&ids);
    buf_free(&a.body);
    buf_free(&b.body);
    return ok;
}

#endif
