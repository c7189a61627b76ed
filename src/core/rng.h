/* A small seeded pseudo-random generator (xoshiro256**, state seeded by splitmix64).
 * Library code takes an rng_t * from its caller and never uses rand(): the same seed gives
 * the same stream on every platform, so every seeded result is reproducible. Not for
 * cryptography. One rng_t per thread; derive independent streams with rng_seed2. */
#ifndef PREDICTD_RNG_H
#define PREDICTD_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t;

void rng_seed(rng_t *r, uint64_t seed);
/* A stream for (seed, stream): e.g. (job seed, sample index); streams do not overlap in
 * practice (both words are mixed through splitmix64). */
void rng_seed2(rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(rng_t *r);
double rng_uniform(rng_t *r);      /* [0, 1), 53 random bits */
double rng_uniform_pos(rng_t *r);  /* (0, 1]: safe under log() */
uint64_t rng_below(rng_t *r, uint64_t n); /* uniform in [0, n), n > 0, unbiased */
double rng_normal(rng_t *r);       /* standard normal (Marsaglia polar method) */
double rng_exp(rng_t *r);          /* Exp(1) */

#endif
