/* Shared between the shortest double formatter (fmt_double.c) and its generated table. */
#ifndef PREDICTD_FMT_DOUBLE_INT_H
#define PREDICTD_FMT_DOUBLE_INT_H

#include <stdint.h>

/* g(i) = floor(10^i 2^(125 - floor(log2 10^i))) + 1 for i in [FMT_POW10_MIN, FMT_POW10_MAX],
 * as {g >> 63, g mod 2^63} (scripts/gen-pow10-table.py writes fmt_double_tab.c). */
extern const int FMT_POW10_MIN, FMT_POW10_MAX;
extern const uint64_t FMT_POW10_G[][2];

/* floor(q log10 2), floor(q log10 2 + log10 3/4), floor(i log2 10): exact for |q|, |i| <= 1100
 * (tests/unit/test_util.c checks every value in that range). */
static inline int fmt_flog10_pow2(int q) { return (int)(((int64_t)q * 315653) >> 20); }
static inline int fmt_flog10_34_pow2(int q) { return (int)(((int64_t)q * 315653 - 131008) >> 20); }
static inline int fmt_flog2_pow10(int i) { return (int)(((int64_t)i * 1741647) >> 19); }

#endif
