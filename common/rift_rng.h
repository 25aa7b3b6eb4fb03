/* rift_rng.h — the one seeded PRNG every deterministic module takes from its caller.
 *
 * xoshiro256** seeded through splitmix64. Protocol cores never call rand(): the
 * simulator hands each core its own stream so a seed replays byte for byte. */
#ifndef RIFT_RNG_H
#define RIFT_RNG_H

#include <stdint.h>

typedef struct rift_rng {
    uint64_t s[4];
} rift_rng;

static inline uint64_t rift_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void rift_rng_seed(rift_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = rift_splitmix64(&seed);
}

static inline uint64_t rift_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rift_rng_next(rift_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rift_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rift_rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). 53 random bits, so every double in the grid is reachable. */
static inline double rift_rng_double(rift_rng *r)
{
    return (double)(rift_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [lo, hi] inclusive; hi < lo returns lo. Modulo bias is below 2^-40
 * for the ranges rift uses (timeouts, indices), which is fine for fault injection. */
static inline uint64_t rift_rng_range(rift_rng *r, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    return lo + rift_rng_next(r) % (hi - lo + 1);
}

/* An independent stream for a child (a replica, a link): derived, not shared,
 * so adding a consumer does not shift every other consumer's numbers. */
static inline void rift_rng_fork(rift_rng *parent, rift_rng *child, uint64_t salt)
{
    rift_rng_seed(child, rift_rng_next(parent) ^ (salt * 0x9e3779b97f4a7c15ULL));
}

#endif
