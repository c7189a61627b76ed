/* Structured logging: one logfmt line per event on stderr.
 *   ts=2026-11-24T10:00:00.123Z level=info msg="listening" addr=127.0.0.1:8080
 * Thread-safe (one write(2) per line). The level is process-wide, set once at start. */
#ifndef PREDICTD_LOG_H
#define PREDICTD_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

/* Returns 0, or -1 if name is not debug|info|warn|error. */
int log_set_level_name(const char *name);
void log_set_level(log_level_t level);
int log_enabled(log_level_t level);

/* msg is quoted; fmt/... append further key=value pairs (caller formats them). */
void log_msg(log_level_t level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_D(msg, ...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, msg, __VA_ARGS__); } while (0)
#define LOG_I(msg, ...) log_msg(LOG_INFO, msg, __VA_ARGS__)
#define LOG_W(msg, ...) log_msg(LOG_WARN, msg, __VA_ARGS__)
#define LOG_E(msg, ...) log_msg(LOG_ERROR, msg, __VA_ARGS__)

#endif
