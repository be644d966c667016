/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief lmdb_commit: LMDB's own one-commit-per-write rate, fsync'ed, on a given disk: the
 *        baseline the write path's group commit (B6, bench/writer_bench.c) is compared with.
 *        Each write is one put of a handle-sized record in its own write transaction, committed
 *        with the default durability (fdatasync of the data file per commit).
 *
 * usage: lmdb_commit [--dir DIR] [--count N] [--value-size BYTES] [--nosync] [--json]
 *   --dir DIR     directory to create the test environment in (default /tmp); use the disk of
 *                 the node's database, the figure is the disk's
 *   --count N     commits (default 2000)
 *   --value-size  bytes per record (default 160, a two-value handle record)
 *   --nosync      MDB_NOSYNC (no fsync): the ceiling without durability
 * Prints commits/s and the p50 / p99 / max commit latency; the environment is removed after.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"

static void usage(void)
{
	fprintf(stderr,
	        "usage: lmdb_commit [--dir DIR] [--count N] [--value-size BYTES] [--nosync] "
	        "[--json]\n");
	exit(2);
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "lmdb_commit: %s: %s\n", what, mdb_strerror(rc));
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"count", required_argument, NULL, 'n'},
	    {"value-size", required_argument, NULL, 'v'},
	    {"nosync", no_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	const char *base = "/tmp";
	long count = 2000, vsize = 160;
	bool nosync = false, json = false;
	int c;
	while ((c = getopt_long(argc, argv, "d:n:v:sj", opts, NULL)) != -1) {
		switch (c) {
		case 'd': base = optarg; break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'v': vsize = strtol(optarg, NULL, 10); break;
		case 's': nosync = true; break;
		case 'j': json = true; break;
		default: usage();
		}
	}
	if (count <= 0 || count > 10000000 || vsize <= 0 || vsize > 65536)
		usage();
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/lmdb_commit.XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "lmdb_commit: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	MDB_env *env = NULL;
	MDB_dbi dbi;
	MDB_txn *txn = NULL;
	int rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_mapsize(env, (size_t)1 << 30);
	if (rc == 0)
		rc = mdb_env_open(env, dir, MDB_NOTLS | (nosync ? MDB_NOSYNC : 0), 0640);
	if (rc != 0)
		return fail("open", rc);
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0)
		return fail("dbi", rc);
	uint64_t *lat = calloc((size_t)count, sizeof(uint64_t));
	char *val = malloc((size_t)vsize);
	if (lat == NULL || val == NULL)
		return 1;
	memset(val, 'v', (size_t)vsize);
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < count; i++) {
		char key[64];
		int kl = snprintf(key, sizeof(key), "88.100.1/BENCH-%ld", i);
		MDB_val k = {(size_t)kl, key}, d = {(size_t)vsize, val};
		uint64_t s = bench_now_ns();
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
			return fail("begin", rc);
		if ((rc = mdb_put(txn, dbi, &k, &d, MDB_NOOVERWRITE)) != 0)
			return fail("put", rc);
		if ((rc = mdb_txn_commit(txn)) != 0)
			return fail("commit", rc);
		lat[i] = bench_now_ns() - s;
	}
	double el = (double)(bench_now_ns() - t0) / 1e9;
	mdb_env_close(env);
	bench_rm_env(dir);
	qsort(lat, (size_t)count, sizeof(uint64_t), bench_cmp_u64);
	double rate = (double)count / el;
	double p50 = (double)lat[count / 2] / 1e3, p99 = (double)lat[(count * 99) / 100] / 1e3;
	double mx = (double)lat[count - 1] / 1e3;
	if (json)
		printf("{\"bench\":\"lmdb_commit\",\"sync\":%s,\"count\":%ld,\"value_size\":%ld,"
		       "\"commits_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f}\n",
		       nosync ? "false" : "true", count, vsize, rate, p50, p99, mx);
	else
		printf("lmdb_commit: %ld commits of %ld bytes, %s: %.1f commits/s, latency p50 "
		       "%.1f us, "
		       "p99 %.1f us, max %.1f us\n",
		       count, vsize, nosync ? "no fsync" : "fsync per commit", rate, p50, p99, mx);
	free(lat);
	free(val);
	return 0;
}
