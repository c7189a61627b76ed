/* The HTTP API on libmicrohttpd (thread pool of cfg.http_threads, HTTP/1.1 keep-alive).
 * Routes, request validation and JSON answers; every error is
 * {"error":{"code","message","field"}} with a 4xx/5xx status. Requests are counted and timed
 * per route template and code in the app's metrics. */
#ifndef PREDICTD_API_H
#define PREDICTD_API_H

#include <stddef.h>

#include "core/app.h"

typedef struct api api_t;

/* Binds app->cfg.listen ("HOST:PORT"; port 0 picks a free one) and starts serving. */
int api_start(api_t **out, predictd_t *app, char *err, size_t errlen);
int api_port(const api_t *a);          /* the bound port */
/* Stops accepting new connections (SIGTERM); open keep-alive connections are still served
 * (mutating routes answer 503 once app->stopping is set). api_free closes the socket. */
void api_quiesce(api_t *a);
void api_free(api_t *a);               /* stops; NULL is a no-op */

#endif
