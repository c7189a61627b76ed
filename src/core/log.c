#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static volatile int g_level = LOG_INFO; /* set at start-up, read by every thread */

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};

int log_set_level_name(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, LEVEL_NAMES[i]) == 0) { g_level = i; return 0; }
    return -1;
}

void log_set_level(log_level_t level) { g_level = level; }
int log_enabled(log_level_t level) { return (int)level >= g_level; }

void log_msg(log_level_t level, const char *msg, const char *fmt, ...) {
    if (!log_enabled(level)) return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, LEVEL_NAMES[level]);
    for (const char *p = msg; *p && n < (int)sizeof line - 8; p++) {
        if (*p == '"' || *p == '\\') line[n++] = '\\';
        line[n++] = (*p == '\n') ? ' ' : *p;
    }
    line[n++] = '"';
    if (fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
        va_end(ap);
        if (m > 0) n += (m < (int)sizeof line - n - 1) ? m : (int)sizeof line - n - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
