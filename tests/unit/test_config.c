/* core/config: defaults < YAML file < PREDICTD_<SECTION>_<KEY>; bad values name the key. */
#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "test.h"

extern char **environ;

/* The tests set their own variables; anything inherited from the caller is removed first. */
static void clear_predictd_env(void) {
    for (;;) {
        char name[256] = {0};
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "PREDICTD_", 9) == 0) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                if (n >= sizeof name) n = sizeof name - 1;
                memcpy(name, *e, n);
                break;
            }
        }
        if (!name[0]) return;
        unsetenv(name);
    }
}

static char yaml_path[64];

static void write_yaml(const char *text) {
    snprintf(yaml_path, sizeof yaml_path, "/tmp/predictd-test-config-%d.yaml", (int)getpid());
    FILE *f = fopen(yaml_path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_defaults(void) {
    predictd_config_t c;
    config_defaults(&c);
    ASSERT_EQ_STR(c.listen, "127.0.0.1:8080");
    ASSERT_EQ_STR(c.data_dir, "./data");
    ASSERT_EQ_INT(c.http_threads, 0);
    ASSERT_EQ_INT(c.max_body_bytes, 67108864);
    ASSERT_EQ_INT(c.workers, 0);
    ASSERT_EQ_INT(c.chunk_size, 1000);
    ASSERT_EQ_INT(c.max_entities, 1000000);
    ASSERT_EQ_INT(c.max_queue_chunks, 100000);
    ASSERT_EQ_INT(c.max_attempts, 5);
    ASSERT_EQ_INT(c.backoff_base_ms, 200);
    ASSERT_EQ_INT(c.backoff_max_ms, 30000);
    ASSERT_EQ_INT(c.lease_ms, 30000);
    ASSERT_EQ_INT(c.shutdown_deadline_ms, 10000);
    ASSERT_EQ_STR(c.store_backend, "sqlite");
    ASSERT_EQ_STR(c.store_synchronous, "full");
    ASSERT_EQ_STR(c.log_level, "info");
    ASSERT_EQ_INT(c.fault_chunk_failures, 0);
}

static void test_yaml_file_overrides_defaults(void) {
    clear_predictd_env();
    write_yaml("server:\n  listen: \"0.0.0.0:9090\"\n  data_dir: /var/lib/predictd\n"
               "jobs:\n  chunk_size: 250\n  max_attempts: 3\nlog:\n  level: debug\n");
    predictd_config_t c;
    config_defaults(&c);
    char err[256] = "";
    int rc = config_load(&c, yaml_path, err, sizeof err);
    if (rc) fprintf(stderr, "config_load: %s\n", err);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_STR(c.listen, "0.0.0.0:9090");
    ASSERT_EQ_STR(c.data_dir, "/var/lib/predictd");
    ASSERT_EQ_INT(c.chunk_size, 250);
    ASSERT_EQ_INT(c.max_attempts, 3);
    ASSERT_EQ_STR(c.log_level, "debug");
    ASSERT_EQ_INT(c.lease_ms, 30000); /* untouched keys keep their defaults */
    unlink(yaml_path);
}

static void test_env_overrides_yaml(void) {
    clear_predictd_env();
    write_yaml("jobs:\n  chunk_size: 250\n");
    setenv("PREDICTD_JOBS_CHUNK_SIZE", "50", 1);
    setenv("PREDICTD_SERVER_LISTEN", "127.0.0.1:0", 1);
    predictd_config_t c;
    config_defaults(&c);
    char err[256] = "";
    int rc = config_load(&c, yaml_path, err, sizeof err);
    if (rc) fprintf(stderr, "config_load: %s\n", err);
    clear_predictd_env();
    unlink(yaml_path);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(c.chunk_size, 50);
    ASSERT_EQ_STR(c.listen, "127.0.0.1:0");
}

static void test_env_bad_value_names_key_and_variable(void) {
    clear_predictd_env();
    setenv("PREDICTD_JOBS_CHUNK_SIZE", "abc", 1);
    predictd_config_t c;
    config_defaults(&c);
    char err[256] = "";
    int rc = config_apply_env(&c, err, sizeof err);
    clear_predictd_env();
    ASSERT_EQ_INT(rc, -1);
    ASSERT_TRUE(strstr(err, "jobs.chunk_size") != NULL);
    ASSERT_TRUE(strstr(err, "PREDICTD_JOBS_CHUNK_SIZE") != NULL);
    ASSERT_EQ_INT(c.chunk_size, 1000);
}

static void test_out_of_range_rejected(void) {
    predictd_config_t c;
    config_defaults(&c);
    char err[256] = "";
    ASSERT_EQ_INT(config_set(&c, "jobs.chunk_size", "0", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "jobs.chunk_size") != NULL);
    ASSERT_EQ_INT(config_set(&c, "jobs.max_attempts", "-1", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "jobs.max_attempts") != NULL);
    ASSERT_EQ_INT(config_set(&c, "jobs.workers", "12abc", err, sizeof err), -1);
    ASSERT_EQ_INT(config_set(&c, "jobs.workers", "", err, sizeof err), -1);
    ASSERT_EQ_INT(config_set(&c, "jobs.workers", "99999999999999999999999", err, sizeof err), -1);
    ASSERT_EQ_INT(c.chunk_size, 1000);
    ASSERT_EQ_INT(c.max_attempts, 5);
    ASSERT_EQ_INT(c.workers, 0);
}

static void test_enumerated_strings_checked(void) {
    predictd_config_t c;
    config_defaults(&c);
    char err[256] = "";
    ASSERT_EQ_INT(config_set(&c, "log.level", "verbose", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "log.level") != NULL);
    ASSERT_EQ_INT(config_set(&c, "store.synchronous", "off", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "store.synchronous") != NULL);
    ASSERT_EQ_INT(config_set(&c, "store.backend", "mysql", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "store.backend") != NULL);
    ASSERT_EQ_INT(config_set(&c, "log.level", "warn", err, sizeof err), 0);
    ASSERT_EQ_STR(c.log_level, "warn");
    ASSERT_EQ_INT(config_set(&c, "store.synchronous", "normal", err, sizeof err), 0);
    ASSERT_EQ_STR(c.store_synchronous, "normal");
}

static void test_unknown_and_malformed_keys(void) {
    predictd_config_t c;
    config_defaults(&c);
    char err[256] = "";
    ASSERT_EQ_INT(config_set(&c, "jobs.nope", "1", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "jobs.nope") != NULL);
    ASSERT_EQ_INT(config_set(&c, "chunk_size", "1", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "chunk_size") != NULL);
    ASSERT_EQ_INT(config_set(&c, "server.listen", "0.0.0.0:1", err, sizeof err), 0);
    ASSERT_EQ_STR(c.listen, "0.0.0.0:1");
}

static void test_string_too_long_rejected(void) {
    predictd_config_t c;
    config_defaults(&c);
    char err[256] = "";
    char longv[300];
    memset(longv, 'a', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    ASSERT_EQ_INT(config_set(&c, "server.listen", longv, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "server.listen") != NULL);
    ASSERT_EQ_STR(c.listen, "127.0.0.1:8080");
}

static void test_yaml_errors_name_key_and_line(void) {
    clear_predictd_env();
    predictd_config_t c;
    char err[512] = "";
    write_yaml("server:\n  listen: \"x:1\"\njobs:\n  chunk_size: lots\n");
    config_defaults(&c);
    ASSERT_EQ_INT(config_load(&c, yaml_path, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "jobs.chunk_size") != NULL);
    ASSERT_TRUE(strstr(err, ":4") != NULL); /* the line of the bad value */

    write_yaml("jobs:\n  chunk_sise: 10\n");
    config_defaults(&c);
    ASSERT_EQ_INT(config_load(&c, yaml_path, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "jobs.chunk_sise") != NULL);

    write_yaml("jobs: [1, 2]\n");
    config_defaults(&c);
    ASSERT_EQ_INT(config_load(&c, yaml_path, err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "jobs") != NULL);

    write_yaml("jobs:\n  chunk_size: [1\n"); /* not YAML */
    config_defaults(&c);
    ASSERT_EQ_INT(config_load(&c, yaml_path, err, sizeof err), -1);
    ASSERT_TRUE(strlen(err) > 0);
    unlink(yaml_path);

    config_defaults(&c);
    ASSERT_EQ_INT(config_load(&c, "/nonexistent/predictd.yaml", err, sizeof err), -1);
    ASSERT_TRUE(strstr(err, "/nonexistent/predictd.yaml") != NULL);
}

static void test_empty_yaml_is_defaults(void) {
    clear_predictd_env();
    write_yaml("");
    predictd_config_t c, d;
    config_defaults(&c);
    config_defaults(&d);
    char err[256] = "";
    ASSERT_EQ_INT(config_load(&c, yaml_path, err, sizeof err), 0);
    ASSERT_TRUE(memcmp(&c, &d, sizeof c) == 0);
    unlink(yaml_path);
}

static void test_print_yaml_reads_back(void) {
    clear_predictd_env();
    predictd_config_t c, d;
    config_defaults(&c);
    char err[256];
    ASSERT_EQ_INT(config_set(&c, "jobs.chunk_size", "77", err, sizeof err), 0);
    ASSERT_EQ_INT(config_set(&c, "server.data_dir", "/tmp/x y", err, sizeof err), 0);
    snprintf(yaml_path, sizeof yaml_path, "/tmp/predictd-test-config-%d.yaml", (int)getpid());
    FILE *f = fopen(yaml_path, "w");
    ASSERT_TRUE(f != NULL);
    config_print_yaml(&c, f);
    fclose(f);
    config_defaults(&d);
    int rc = config_load(&d, yaml_path, err, sizeof err);
    if (rc) fprintf(stderr, "config_load of printed YAML: %s\n", err);
    unlink(yaml_path);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(d.chunk_size, 77);
    ASSERT_EQ_STR(d.data_dir, "/tmp/x y");
    ASSERT_TRUE(memcmp(&c, &d, sizeof c) == 0);
}

int main(void) {
    static const test_case_t cases[] = {
        TEST_CASE(test_defaults),
        TEST_CASE(test_yaml_file_overrides_defaults),
        TEST_CASE(test_env_overrides_yaml),
        TEST_CASE(test_env_bad_value_names_key_and_variable),
        TEST_CASE(test_out_of_range_rejected),
        TEST_CASE(test_enumerated_strings_checked),
        TEST_CASE(test_unknown_and_malformed_keys),
        TEST_CASE(test_string_too_long_rejected),
        TEST_CASE(test_yaml_errors_name_key_and_line),
        TEST_CASE(test_empty_yaml_is_defaults),
        TEST_CASE(test_print_yaml_reads_back),
    };
    return test_main("config", cases, (int)(sizeof cases / sizeof cases[0]));
}
