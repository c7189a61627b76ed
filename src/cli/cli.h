/* Helpers shared by the predictd subcommands (cli/cli_common.c): configuration loading with
 * the usual precedence, the data-dir lock that keeps two writers off one SQLite file, and a
 * small libcurl wrapper for the client commands. Not used by the server itself. */
#ifndef PREDICTD_CLI_H
#define PREDICTD_CLI_H

#include <stddef.h>

#include <jansson.h>

#include "core/config.h"
#include "core/util.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"

/* Defaults < YAML (path, or ./predictd.yaml when NULL and present) < environment. Prints
 * "error: config: ..." on stderr and returns -1 on a bad file or value. */
int cli_load_config(predictd_config_t *cfg, const char *path);

/* Sets one key from a command-line option; prints the error and returns -1 when bad. */
int cli_set(predictd_config_t *cfg, const char *key, const char *value);

/* Creates dir (and its parents) and takes an exclusive, non-blocking flock on
 * dir/predictd.lock, writing our pid into it. Returns the lock fd (held until close or exit),
 * or -1 with a message naming the holder's pid in err. */
int cli_lock_data_dir(const char *dir, char *err, size_t errlen);

/* --url, else $PREDICTD_URL, else CLI_DEFAULT_URL; trailing '/' trimmed into out. */
void cli_resolve_url(const char *opt, char *out, size_t outlen);

/* One HTTP exchange. status is the HTTP status (0 when nothing came back: then err says why). */
typedef struct {
    long status;
    buf_t body;
    char err[256];
} cli_http_t;

/* method "GET"/"POST"; path begins with '/'; body may be NULL. extra_header ("Name: value")
 * may be NULL. Returns 0 when an answer came back, -1 on a transport error (printed
 * "error: cannot reach URL: ..." on stderr). The caller frees res->body. */
int cli_http(const char *base, const char *method, const char *path, const char *content_type,
             const char *body, size_t len, const char *extra_header, cli_http_t *res);

/* The same, printing nothing on a transport error when quiet (polling through a restart). */
int cli_http_quiet(const char *base, const char *method, const char *path, const char *content_type,
                   const char *body, size_t len, const char *extra_header, cli_http_t *res, int quiet);

/* Prints an error answer as "error: <code>: <message> (field <field>)" on stderr. */
void cli_print_http_error(const cli_http_t *res);

/* Parses the answer body as JSON; prints an error and returns NULL when it is not. */
json_t *cli_http_json(const cli_http_t *res);

/* Percent-encodes s for use as one path segment or query value (caller frees). */
char *cli_escape(const char *s);

#endif
