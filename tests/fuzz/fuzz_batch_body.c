/* libFuzzer target: the API's one-pass batch body parser (src/api/api_batch_body.c) against
 * jansson on the same bytes. Whatever the input, both give the same result: the same error
 * body, or documents equal once entity_ids is put back. Any difference aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api_internal.h"
#include "../unit/batch_body_check.h"

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
    int fast;
    if (!batch_body_same_as_jansson(body, size, &fast)) abort();
    free(body);
    return 0;
}
