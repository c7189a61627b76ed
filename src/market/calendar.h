/* Trading days and the earnings router (MODELS.md, "Market prediction pipeline").
 *
 * Dates are whole days since 1970-01-01 (UTC). A trading day is a weekday that is not in
 * the holiday list. A symbol goes to the earnings model on trading day D when its earnings
 * report falls before market open on D ("bmo" dated D) or after market close on the trading
 * day before D ("amc" dated prev_trading_day(D)); otherwise, with "unknown" times, and when
 * the calendar says nothing, to the normal model.
 *
 * calendar_t is the in-memory cache of the earnings calendar the router reads: replaced
 * whole (calendar_replace) when the pipeline reloads it from the store (hourly and after
 * every change). Thread-safe: a read-write lock guards the rows. */
#ifndef PREDICTD_MARKET_CALENDAR_H
#define PREDICTD_MARKET_CALENDAR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { EARN_BMO = 0, EARN_AMC = 1, EARN_UNKNOWN = 2 } earn_time_t;
typedef enum { ROUTE_NORMAL = 0, ROUTE_EARNINGS = 1 } mkt_route_t;

/* Strict "YYYY-MM-DD" (a real calendar date, years 1900..9999). 0 ok, -1 malformed. */
int mkt_date_parse(const char *s, int32_t *day);
void mkt_date_format(int32_t day, char out[11]);
int32_t mkt_today(void);           /* the date now in the exchange's zone (mkt_set_timezone) */
/* Makes zone (an IANA name, e.g. "America/New_York"; "" or "UTC": UTC) the process's local
 * time zone, which mkt_today reads. Sets TZ: call at start, before any thread. 0 ok, -1 with
 * err when the zone is not in /usr/share/zoneinfo (glibc would silently use UTC). */
int mkt_set_timezone(const char *zone, char *err, size_t errlen);
int mkt_weekday(int32_t day);      /* 0 Sunday .. 6 Saturday */

typedef struct {
    int32_t *days;  /* sorted, distinct */
    size_t n;
} mkt_holidays_t;
/* Comma-separated YYYY-MM-DD list (blanks allowed, "" = none). 0 ok, -1 with err naming
 * the bad item. Free with mkt_holidays_free. */
int mkt_holidays_parse(const char *list, mkt_holidays_t *h, char *err, size_t errlen);
void mkt_holidays_free(mkt_holidays_t *h);
int mkt_is_trading_day(const mkt_holidays_t *h, int32_t day);
int32_t mkt_prev_trading_day(const mkt_holidays_t *h, int32_t day); /* strictly before day */

const char *earn_time_name(earn_time_t t);
int earn_time_parse(const char *s, earn_time_t *t); /* "bmo" | "amc" | "unknown" */
const char *mkt_route_name(mkt_route_t r);          /* "normal_day" | "earnings_day" */

/* One calendar row. */
typedef struct {
    char symbol[33];
    int32_t date;
    earn_time_t time;
} cal_row_t;

/* The router's rule for one symbol's rows (any order). *why: what decided it (static text). */
mkt_route_t mkt_route(const mkt_holidays_t *h, int32_t day, const cal_row_t *rows, size_t n, const char **why);

typedef struct {
    pthread_rwlock_t lock;  /* protects rows, n */
    cal_row_t *rows;        /* sorted by symbol */
    size_t n;
    int64_t loaded_ms;      /* when it was last replaced (monotonic) */
} calendar_t;

void calendar_init(calendar_t *c);
void calendar_destroy(calendar_t *c);
/* Takes ownership of rows (malloc'd array, any order). */
void calendar_replace(calendar_t *c, cal_row_t *rows, size_t n);
/* Routes symbol for trading day `day` from the cached rows. */
mkt_route_t calendar_route(calendar_t *c, const mkt_holidays_t *h, const char *symbol, int32_t day,
                           const char **why);
size_t calendar_size(calendar_t *c);

#endif
