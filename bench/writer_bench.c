/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief writer_bench: durable creates through writer_submit (node/server/writer.h), the write
 *        path without the network: N submitter threads, each with one request in flight (a
 *        closed loop, as N clients waiting for their answers), creating handles with two values
 *        under a homed prefix as its full admin. Reports durable creates/s, the ack latency
 *        (submit to done()) p50 / p99, and the group-commit batch sizes. Compare with
 *        bench/lmdb_commit on the same disk (one commit per write).
 *
 * usage: writer_bench [--dir DIR] [--submitters N] [--count N] [--batch-max N]
 *                     [--batch-wait-us US] [--periodic] [--json]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"

#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "node/common/log.h"
#include "node/server/writer.h"
#include "node/store/store.h"

typedef struct sub {
	writer_t *w;
	int id;
	long n;        /**< creates to do */
	uint64_t *lat; /**< ns per create */
	long failed;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
} sub_t;

static void on_done(wr_job_t *j)
{
	sub_t *s = j->owner;
	pthread_mutex_lock(&s->mu);
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static void *submitter(void *arg)
{
	sub_t *s = arg;
	char name[64], url[96];
	hdl_value_t v[2];
	memset(v, 0, sizeof(v));
	v[0].index = 1;
	v[0].ttl = 86400;
	v[0].perms = HDL_PERM_DEFAULT;
	v[0].type = hdl_slice_str("URL");
	v[1] = v[0];
	v[1].index = 2;
	v[1].type = hdl_slice_str("DESC");
	v[1].data = hdl_slice_str("centrifugal pump, 3 kW, serial 2024-000123, plant 7 line 2");
	for (long i = 0; i < s->n; i++) {
		wr_job_t j;
		memset(&j, 0, sizeof(j));
		snprintf(name, sizeof(name), "88.100.1/WB-%d-%ld", s->id, i);
		snprintf(url, sizeof(url), "https://example.org/items/%d/%ld", s->id, i);
		v[0].data = hdl_slice_str(url);
		j.op = WR_CREATE;
		j.handle = hdl_slice_str(name);
		j.values = v;
		j.n_values = 2;
		j.id_handle = hdl_slice_str("0.NA/88.100.1");
		j.id_index = 300;
		j.transport = WR_T_TCP;
		j.done = on_done;
		j.owner = s;
		s->done = false;
		uint64_t t = bench_now_ns();
		while (writer_submit(s->w, &j) == HDL_EAGAIN)
			usleep(100);
		pthread_mutex_lock(&s->mu);
		while (!s->done)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
		s->lat[i] = bench_now_ns() - t;
		if (j.rcode != HDL_RC_SUCCESS)
			s->failed++;
	}
	return NULL;
}

/** The prefix 88.100.1, homed, with an HS_ADMIN for 300:0.NA/88.100.1 on its prefix handle. */
static int seed(store_t *s)
{
	uint8_t adm[128], rec[256];
	size_t alen = 0, rlen = 0;
	hdl_admin_t a = {
	    .perms = HDL_ADM_ALL, .handle = hdl_slice_str("0.NA/88.100.1"), .index = 300};
	if (hdl_admin_encode(&a, adm, sizeof(adm), &alen) != HDL_EOK)
		return HDL_EINVAL;
	hdl_value_t v = {.index = 100,
	                 .ttl = 86400,
	                 .perms = HDL_PERM_DEFAULT,
	                 .type = hdl_slice_str("HS_ADMIN"),
	                 .data = {adm, (uint32_t)alen}};
	if (hdl_values_encode(&v, 1, rec, sizeof(rec), &rlen) != HDL_EOK)
		return HDL_EINVAL;
	store_batch_t *b = NULL;
	int ret = store_batch_begin(s, &b);
	if (ret != HDL_EOK)
		return ret;
	hdl_slice_t r = {rec, (uint32_t)rlen};
	if ((ret = store_batch_home(b, hdl_slice_str("88.100.1"), true)) != HDL_EOK ||
	    (ret = store_batch_put(b, hdl_slice_str("0.NA/88.100.1"), r, true)) != HDL_EOK) {
		store_batch_abort(b);
		return ret;
	}
	return store_batch_commit(b);
}

static void usage(void)
{
	fprintf(stderr, "usage: writer_bench [--dir DIR] [--submitters N] [--count N] "
	                "[--batch-max N] [--batch-wait-us US] [--periodic] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"submitters", required_argument, NULL, 's'},
	    {"count", required_argument, NULL, 'n'},
	    {"batch-max", required_argument, NULL, 'b'},
	    {"batch-wait-us", required_argument, NULL, 'w'},
	    {"periodic", no_argument, NULL, 'p'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	const char *base = "/tmp";
	long subs = 8, count = 4000, bmax = 512, bwait = 0;
	bool periodic = false, json = false;
	int c;
	while ((c = getopt_long(argc, argv, "d:s:n:b:w:pj", opts, NULL)) != -1) {
		switch (c) {
		case 'd': base = optarg; break;
		case 's': subs = strtol(optarg, NULL, 10); break;
		case 'n': count = strtol(optarg, NULL, 10); break;
		case 'b': bmax = strtol(optarg, NULL, 10); break;
		case 'w': bwait = strtol(optarg, NULL, 10); break;
		case 'p': periodic = true; break;
		case 'j': json = true; break;
		default: usage();
		}
	}
	if (subs <= 0 || subs > 4096 || count < subs || count > 10000000 || bmax <= 0 ||
	    bmax > 100000 || bwait < 0 || bwait > 1000000)
		usage();
	log_set_level(LOG_LVL_WARN);
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/writer_bench.XXXXXX", base);
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "writer_bench: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	store_t *s = NULL;
	store_opts_t so = {.path = dir, .txlog = true};
	if (store_open(&so, &s) != HDL_EOK || seed(s) != HDL_EOK) {
		fprintf(stderr, "writer_bench: cannot prepare the store in %s\n", dir);
		return 1;
	}
	writer_t *w = NULL;
	writer_opts_t o = {.queue_max = (unsigned)subs + 16u,
	                   .batch_max = (unsigned)bmax,
	                   .batch_wait_us = (unsigned)bwait,
	                   .sync = periodic ? WR_SYNC_PERIODIC : WR_SYNC_FULL,
	                   .sync_interval_ms = 1000};
	if (writer_start(s, &o, &w) != HDL_EOK) {
		fprintf(stderr, "writer_bench: cannot start the writer\n");
		return 1;
	}
	sub_t *sv = calloc((size_t)subs, sizeof(sub_t));
	pthread_t *t = calloc((size_t)subs, sizeof(pthread_t));
	uint64_t *lat = calloc((size_t)count, sizeof(uint64_t));
	if (sv == NULL || t == NULL || lat == NULL)
		return 1;
	long off = 0;
	uint64_t t0 = bench_now_ns();
	for (long i = 0; i < subs; i++) {
		sv[i].w = w;
		sv[i].id = (int)i;
		sv[i].n = count / subs + (i < count % subs ? 1 : 0);
		sv[i].lat = lat + off;
		off += sv[i].n;
		pthread_mutex_init(&sv[i].mu, NULL);
		pthread_cond_init(&sv[i].cv, NULL);
		pthread_create(&t[i], NULL, submitter, &sv[i]);
	}
	long failed = 0;
	for (long i = 0; i < subs; i++) {
		pthread_join(t[i], NULL);
		failed += sv[i].failed;
	}
	double el = (double)(bench_now_ns() - t0) / 1e9;
	writer_stats_t st;
	writer_stats(w, &st);
	writer_stop(w);
	store_close(s);
	bench_rm_env(dir);
	qsort(lat, (size_t)count, sizeof(uint64_t), bench_cmp_u64);
	double rate = (double)count / el;
	double p50 = (double)lat[count / 2] / 1e3, p99 = (double)lat[(count * 99) / 100] / 1e3;
	double avg_batch = st.batches ? (double)st.jobs / (double)st.batches : 0;
	if (json)
		printf("{\"bench\":\"writer\",\"sync\":\"%s\",\"submitters\":%ld,\"count\":%ld,"
		       "\"failed\":%ld,\"creates_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
		       "\"batches\":%llu,\"avg_batch\":%.1f,\"max_batch\":%u,\"batch_max\":%ld,"
		       "\"batch_wait_us\":%ld}\n",
		       periodic ? "periodic" : "full", subs, count, failed, rate, p50, p99,
		       (unsigned long long)st.batches, avg_batch, st.max_batch, bmax, bwait);
	else
		printf("writer_bench: %ld creates by %ld submitters (%s sync): %.1f creates/s, ack "
		       "p50 %.1f us, p99 %.1f us; %llu batches, avg %.1f, max %u; %ld failed\n",
		       count, subs, periodic ? "periodic" : "full", rate, p50, p99,
		       (unsigned long long)st.batches, avg_batch, st.max_batch, failed);
	for (long i = 0; i < subs; i++) {
		pthread_mutex_destroy(&sv[i].mu);
		pthread_cond_destroy(&sv[i].cv);
	}
	free(sv);
	free(t);
	free(lat);
	return failed ? 1 : 0;
}
