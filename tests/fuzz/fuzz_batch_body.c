/* libFuzzer target: the API's one-pass batch body parser (src/api/api_batch_body.c) against
 * jansson on the same bytes. Whatever the input, both give the same result: the same error
 * body, or documents equal once entity_ids is put back. Any difference aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* api_json.c's job printer needs the store's status names; this target never prints a job and
 * is not linked with the store. */
const char *job_status_name(job_status_t s) {
    (void)s;
    return "";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *body = malloc(size + 1); /* the server's bodies are NUL-terminated */
    if (!body) return 0;
    memcpy(body, data, size);
    body[size] = 0;
    api_req_t rq;
    memset(&rq, 0, sizeof rq);
    rq.body = body;
    rq.body_len = size;
    api_resp_t a = {0}, b = {0};
    json_t *da = NULL, *db = NULL;
    api_ids_t ids;
    int ra = api_parse_batch_body(&rq, &a, &da, &ids);
    int rb = api_parse_body(&rq, &b, &db);
    if (ra != rb || a.status != b.status || a.body.len != b.body.len ||
        (a.body.len && memcmp(a.body.data, b.body.data, a.body.len) != 0))
        abort();
    if (ra == 0) {
        if (ids.present) {
            json_t *arr = json_array();
            for (size_t i = 0; i < ids.n; i++) json_array_append_new(arr, json_stringn(ids.str[i], ids.len[i]));
            json_object_set_new(da, "entity_ids", arr);
        }
        if (!json_equal(da, db)) abort();
    }
    json_decref(da);
    json_decref(db);
    api_ids_free(&ids);
    buf_free(&a.body);
    buf_free(&b.body);
    free(body);
    return 0;
}
