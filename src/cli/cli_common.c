#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

int cli_load_config(predictd_config_t *cfg, const char *path) {
    char err[512];
    config_defaults(cfg);
    if (config_load(cfg, path, err, sizeof err)) {
        fprintf(stderr, "error: config: %s\n", err);
        return -1;
    }
    return 0;
}

int cli_set(predictd_config_t *cfg, const char *key, const char *value) {
    char err[512];
    if (config_set(cfg, key, value, err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    return 0;
}

static int mkdir_p(const char *dir) {
    char path[1024];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path) { errno = ENAMETOOLONG; return -1; }
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(path, 0755) && errno != EEXIST) return -1;
    return 0;
}

int cli_lock_data_dir(const char *dir, char *err, size_t errlen) {
    if (mkdir_p(dir)) {
        snprintf(err, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
        return -1;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/predictd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        char pid[32] = "";
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        if (r > 0) pid[r] = 0;
        pid[strcspn(pid, "\r\n")] = 0;
        close(fd);
        if (e == EWOULDBLOCK)
            snprintf(err, errlen,
                     "data dir %s is in use by another predictd (pid %s): stop that server "
                     "first, or talk to it with --url",
                     dir, *pid ? pid : "?");
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n) {
        /* the pid is only a hint for the error above; the lock is what counts */
    }
    return fd;
}

void cli_resolve_url(const char *opt, char *out, size_t outlen) {
    const char *u = opt;
    if (!u || !*u) u = getenv("PREDICTD_URL");
    if (!u || !*u) u = CLI_DEFAULT_URL;
    snprintf(out, outlen, "%s%s", strstr(u, "://") ? "" : "http://", u);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/') out[--n] = 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg) {
    buf_t *b = arg;
    buf_append(b, p, size * nmemb);
    return b->oom ? 0 : size * nmemb;
}

int cli_http(const char *base, const char *method, const char *path, const char *content_type,
             const char *body, size_t len, const char *extra_header, cli_http_t *res) {
    return cli_http_quiet(base, method, path, content_type, body, len, extra_header, res, 0);
}

int cli_http_quiet(const char *base, const char *method, const char *path, const char *content_type,
                   const char *body, size_t len, const char *extra_header, cli_http_t *res, int quiet) {
    memset(res, 0, sizeof *res);
    char url[4096];
    snprintf(url, sizeof url, "%s%s", base, path);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(res->err, sizeof res->err, "curl_easy_init failed");
        fprintf(stderr, "error: %s\n", res->err);
        return -1;
    }
    struct curl_slist *hdrs = NULL;
    char ct[128];
    if (content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, ct);
    }
    if (extra_header) hdrs = curl_slist_append(hdrs, extra_header);
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip for big imports */
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &res->body);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "predictd-cli");
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        if (strcmp(method, "POST")) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(c);
    int ret = 0;
    if (rc != CURLE_OK) {
        snprintf(res->err, sizeof res->err, "%s", curl_easy_strerror(rc));
        if (!quiet)
            fprintf(stderr, "error: cannot reach %s: %s (is `predictd serve` running there? see --url)\n",
                    base, res->err);
        ret = -1;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
        buf_putc(&res->body, 0); /* NUL-terminate for the JSON parser */
        res->body.len--;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return ret;
}

void cli_print_http_error(const cli_http_t *res) {
    json_error_t je;
    json_t *root = res->body.data ? json_loadb(res->body.data, res->body.len, 0, &je) : NULL;
    json_t *e = root ? json_object_get(root, "error") : NULL;
    if (json_is_object(e)) {
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *field = json_string_value(json_object_get(e, "field"));
        fprintf(stderr, "error: %s: %s", code ? code : "error", msg ? msg : "(no message)");
        if (field && *field) fprintf(stderr, " (field %s)", field);
        fputc('\n', stderr);
        /* import answers list every bad row */
        json_t *rows = json_object_get(e, "lines");
        if (!json_is_array(rows)) rows = json_object_get(e, "errors");
        if (!json_is_array(rows)) rows = json_object_get(root, "errors");
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) {
            if (json_is_string(r)) fprintf(stderr, "  %s\n", json_string_value(r));
            else {
                char *s = json_dumps(r, JSON_COMPACT);
                if (s) fprintf(stderr, "  %s\n", s);
                free(s);
            }
        }
    } else {
        fprintf(stderr, "error: HTTP %ld: %.*s\n", res->status, (int)(res->body.len > 500 ? 500 : res->body.len),
                res->body.data ? res->body.data : "");
    }
    json_decref(root);
}

json_t *cli_http_json(const cli_http_t *res) {
    json_error_t je;
    json_t *root = res->body.data ? json_loadb(res->body.data, res->body.len, 0, &je) : NULL;
    if (!root) fprintf(stderr, "error: the server's answer is not JSON (HTTP %ld)\n", res->status);
    return root;
}

char *cli_escape(const char *s) {
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = e ? strdup(e) : NULL;
    curl_free(e);
    return out;
}
