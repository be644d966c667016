/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief xoshiro256** random numbers and a Zipf sampler by rejection-inversion (no main()).
 *
 * Zipf: P(rank k) proportional to k^-s over 1..n. The sampler follows W. Hörmann and
 * G. Derflinger, "Rejection-inversion to generate variates from monotone discrete
 * distributions", ACM TOMACS 6(3), 1996: draw from the continuous hat H(x) = integral of
 * x^-s, round to the nearest rank and accept with a cheap test; O(1) memory for any n.
 */
#include <math.h>

#include "tools/bench/bench.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void bk_rng_seed(bk_rng_t *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t bk_rng_next(bk_rng_t *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5u, 7) * 9u;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

uint64_t bk_rng_below(bk_rng_t *r, uint64_t n)
{
	/* Lemire's multiply-shift; the bias is below 2^-64 * n, irrelevant here. */
	return (uint64_t)(((unsigned __int128)bk_rng_next(r) * n) >> 64);
}

double bk_rng_double(bk_rng_t *r)
{
	return (double)(bk_rng_next(r) >> 11) * 0x1.0p-53;
}

/* log1p(x)/x, continuous at 0 */
static double helper1(double x)
{
	return fabs(x) > 1e-8 ? log1p(x) / x : 1.0 - x / 2.0 + x * x / 3.0;
}

/* expm1(x)/x, continuous at 0 */
static double helper2(double x)
{
	return fabs(x) > 1e-8 ? expm1(x) / x : 1.0 + x / 2.0 + x * x / 6.0;
}

/* H(x) = (x^(1-s) - 1) / (1 - s), or log(x) when s == 1 */
static double h_integral(const bk_zipf_t *z, double x)
{
	double lx = log(x);
	return helper2((1.0 - z->s) * lx) * lx;
}

/* h(x) = x^-s */
static double h_func(const bk_zipf_t *z, double x)
{
	return exp(-z->s * log(x));
}

static double h_integral_inv(const bk_zipf_t *z, double x)
{
	double t = x * (1.0 - z->s);
	if (t < -1.0)
		t = -1.0; /* rounding guard */
	return exp(helper1(t) * x);
}

int bk_zipf_init(bk_zipf_t *z, uint64_t n, double s)
{
	if (n == 0 || !(s > 0.0) || !isfinite(s))
		return -1;
	z->n = n;
	z->s = s;
	z->h_x1 = h_integral(z, 1.5) - 1.0;
	z->h_n = h_integral(z, (double)n + 0.5);
	z->threshold = 2.0 - h_integral_inv(z, h_integral(z, 2.5) - h_func(z, 2.0));
	return 0;
}

uint64_t bk_zipf_next(const bk_zipf_t *z, bk_rng_t *r)
{
	for (;;) {
		double u = z->h_n + bk_rng_double(r) * (z->h_x1 - z->h_n);
		double x = h_integral_inv(z, u);
		double kd = floor(x + 0.5);
		if (kd < 1.0)
			kd = 1.0;
		else if (kd > (double)z->n)
			kd = (double)z->n;
		if (kd - x <= z->threshold || u >= h_integral(z, kd + 0.5) - h_func(z, kd))
			return (uint64_t)kd;
	}
}

static uint64_t gcd64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

uint64_t bk_zipf_mult(uint64_t n)
{
	if (n <= 2)
		return 1;
	uint64_t m = 0x9e3779b97f4a7c15ull % n;
	if (m == 0)
		m = 1;
	while (gcd64(m, n) != 1)
		m = (m + 1) % n ? (m + 1) % n : 1;
	return m;
}

uint64_t bk_zipf_spread(uint64_t rank, uint64_t n, uint64_t mult)
{
	return (uint64_t)(((unsigned __int128)(rank - 1u) * mult) % n);
}
