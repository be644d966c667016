/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Helpers shared by the write-path benchmarks (lmdb_commit.c, writer_bench.c): a
 *        monotonic clock, a sort order for latencies, removing the temporary environment.
 */
#ifndef HDL_BENCH_BENCH_UTIL_H
#define HDL_BENCH_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/** \brief Monotonic nanoseconds. */
static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** \brief qsort order of uint64_t latencies. */
static inline int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/** \brief Remove an LMDB environment directory made for one run. */
static inline void bench_rm_env(const char *dir)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
}

#endif /* HDL_BENCH_BENCH_UTIL_H */
