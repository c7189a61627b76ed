#include "market/calendar.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/util.h"

/* Howard Hinnant's days_from_civil / civil_from_days (public-domain algorithms). */
static int32_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int32_t)doe - 719468;
}

static void civil_from_days(int32_t z, int *y, int *m, int *d) {
    z += 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)yoe + era * 400 + (*m <= 2);
}

int mkt_date_parse(const char *s, int32_t *day) {
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return -1;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return -1;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1900 || m < 1 || m > 12 || d < 1) return -1;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] + (m == 2 && leap)) return -1;
    *day = days_from_civil(y, m, d);
    return 0;
}

void mkt_date_format(int32_t day, char out[11]) {
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u, (unsigned)d % 100u);
}

int32_t mkt_today(void) {
    time_t now = (time_t)(now_ms() / 1000);
    struct tm tm;
    if (!localtime_r(&now, &tm)) return (int32_t)(now / 86400);
    return days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

int mkt_set_timezone(const char *zone, char *err, size_t errlen) {
    if (!zone || !*zone || !strcmp(zone, "UTC")) zone = "UTC";
    else {
        char path[160];
        struct stat sb;
        if (zone[0] == '/' || strstr(zone, "..") || strlen(zone) > 100) {
            snprintf(err, errlen, "pipeline.timezone '%.100s' is not an IANA zone name", zone);
            return -1;
        }
        snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", zone);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            snprintf(err, errlen, "pipeline.timezone '%s': no such zone in /usr/share/zoneinfo (install tzdata, or use UTC)", zone);
            return -1;
        }
    }
    if (setenv("TZ", zone, 1) != 0) {
        snprintf(err, errlen, "cannot set TZ");
        return -1;
    }
    tzset();
    return 0;
}

int mkt_weekday(int32_t day) {
    int w = (int)((day + 4) % 7); /* 1970-01-01 was a Thursday */
    return w < 0 ? w + 7 : w;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int mkt_holidays_parse(const char *list, mkt_holidays_t *h, char *err, size_t errlen) {
    h->days = NULL;
    h->n = 0;
    if (!list) return 0;
    size_t cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    h->days = calloc(cap, sizeof *h->days);
    if (!h->days) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if (t > p) {
            char item[16];
            int32_t d;
            if ((size_t)(t - p) >= sizeof item || (memcpy(item, p, (size_t)(t - p)), item[t - p] = 0,
                                                  mkt_date_parse(item, &d) != 0)) {
                snprintf(err, errlen, "holiday '%.*s' is not a YYYY-MM-DD date", (int)(t - p > 20 ? 20 : t - p), p);
                mkt_holidays_free(h);
                return -1;
            }
            h->days[h->n++] = d;
        }
        p = *e ? e + 1 : e;
    }
    qsort(h->days, h->n, sizeof *h->days, cmp_i32);
    size_t k = 0;
    for (size_t i = 0; i < h->n; i++)
        if (k == 0 || h->days[k - 1] != h->days[i]) h->days[k++] = h->days[i];
    h->n = k;
    return 0;
}

void mkt_holidays_free(mkt_holidays_t *h) {
    free(h->days);
    h->days = NULL;
    h->n = 0;
}

int mkt_is_trading_day(const mkt_holidays_t *h, int32_t day) {
    int w = mkt_weekday(day);
    if (w == 0 || w == 6) return 0;
    return !(h && h->n && bsearch(&day, h->days, h->n, sizeof *h->days, cmp_i32));
}

int32_t mkt_prev_trading_day(const mkt_holidays_t *h, int32_t day) {
    /* a holiday list cannot cover every weekday for long; bound the walk anyway */
    for (int i = 0; i < 3660; i++)
        if (mkt_is_trading_day(h, --day)) return day;
    return day;
}

const char *earn_time_name(earn_time_t t) {
    return t == EARN_BMO ? "bmo" : t == EARN_AMC ? "amc" : "unknown";
}

int earn_time_parse(const char *s, earn_time_t *t) {
    if (!s) return -1;
    if (!strcmp(s, "bmo")) *t = EARN_BMO;
    else if (!strcmp(s, "amc")) *t = EARN_AMC;
    else if (!strcmp(s, "unknown")) *t = EARN_UNKNOWN;
    else return -1;
    return 0;
}

const char *mkt_route_name(mkt_route_t r) { return r == ROUTE_EARNINGS ? "earnings_day" : "normal_day"; }

mkt_route_t mkt_route(const mkt_holidays_t *h, int32_t day, const cal_row_t *rows, size_t n, const char **why) {
    const char *w = n ? "no report before the open today or after the previous close" : "no calendar entry";
    mkt_route_t r = ROUTE_NORMAL;
    int32_t prev = -1;
    int have_prev = 0;
    for (size_t i = 0; i < n && r == ROUTE_NORMAL; i++) {
        if (rows[i].time == EARN_BMO && rows[i].date == day) {
            r = ROUTE_EARNINGS;
            w = "report before market open today";
        } else if (rows[i].time == EARN_AMC) {
            if (!have_prev) prev = mkt_prev_trading_day(h, day), have_prev = 1;
            if (rows[i].date == prev) {
                r = ROUTE_EARNINGS;
                w = "report after market close on the previous trading day";
            }
        }
    }
    if (why) *why = w;
    return r;
}

static int cmp_row(const void *a, const void *b) {
    return strcmp(((const cal_row_t *)a)->symbol, ((const cal_row_t *)b)->symbol);
}

void calendar_init(calendar_t *c) {
    memset(c, 0, sizeof *c);
    pthread_rwlock_init(&c->lock, NULL);
}

void calendar_destroy(calendar_t *c) {
    free(c->rows);
    c->rows = NULL;
    pthread_rwlock_destroy(&c->lock);
}

void calendar_replace(calendar_t *c, cal_row_t *rows, size_t n) {
    if (n) qsort(rows, n, sizeof *rows, cmp_row);
    pthread_rwlock_wrlock(&c->lock);
    cal_row_t *old = c->rows;
    c->rows = rows;
    c->n = n;
    c->loaded_ms = mono_ms();
    pthread_rwlock_unlock(&c->lock);
    free(old);
}

mkt_route_t calendar_route(calendar_t *c, const mkt_holidays_t *h, const char *symbol, int32_t day,
                           const char **why) {
    pthread_rwlock_rdlock(&c->lock);
    /* first row of the symbol (lower bound) */
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(c->rows[mid].symbol, symbol) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t end = lo;
    while (end < c->n && !strcmp(c->rows[end].symbol, symbol)) end++;
    mkt_route_t r = mkt_route(h, day, c->rows + lo, end - lo, why);
    pthread_rwlock_unlock(&c->lock);
    return r;
}

size_t calendar_size(calendar_t *c) {
    pthread_rwlock_rdlock(&c->lock);
    size_t n = c->n;
    pthread_rwlock_unlock(&c->lock);
    return n;
}
