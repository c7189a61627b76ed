#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_seed(rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* all-zero state is a fixed point */
}

void rng_seed2(rng_t *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed;
    uint64_t a = splitmix64(&x);
    x = stream ^ 0x6a09e667f3bcc909ULL;
    uint64_t b = splitmix64(&x);
    rng_seed(r, a ^ (b * 0x9e3779b97f4a7c15ULL));
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_u64(rng_t *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rng_uniform(rng_t *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

double rng_uniform_pos(rng_t *r) { return ((double)(rng_u64(r) >> 11) + 1.0) * 0x1.0p-53; }

uint64_t rng_below(rng_t *r, uint64_t n) {
    uint64_t limit = -n % n; /* 2^64 mod n: reject the partial last block */
    for (;;) {
        uint64_t x = rng_u64(r);
        if (x >= limit) return x % n;
    }
}

double rng_normal(rng_t *r) {
    for (;;) {
        double u = 2.0 * rng_uniform(r) - 1.0, v = 2.0 * rng_uniform(r) - 1.0;
        double s = u * u + v * v;
        if (s > 0 && s < 1) return u * sqrt(-2.0 * log(s) / s);
    }
}

double rng_exp(rng_t *r) { return -log(rng_uniform_pos(r)); }
