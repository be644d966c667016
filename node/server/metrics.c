/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prometheus metrics (see metrics.h): the exposition writer, the registry of module
 * collectors, the node's own families, and the listener thread.
 *
 * The listener is a minimal HTTP/1.1 server on its own event_base: one request per connection
 * (answered with Connection: close), GET or HEAD /metrics only, a request head of at most
 * METRICS_HEAD_MAX bytes, metrics_timeout_ms for the whole exchange, metrics_max_connections at
 * once (more are closed as they come).
 */
#define _GNU_SOURCE
#include "node/server/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/dcache.h"
#include "node/resolver/dflight.h"
#include "node/server/connlimit.h"
#include "node/server/node.h"
#include "node/server/obs.h"
#include "node/server/rrl.h"
#include "node/server/stats.h"
#include "node/server/writer.h"
#include "node/store/store.h"

#define METRICS_HEAD_MAX 8192u /* bytes of a request head */

/* ---- exposition writer ----------------------------------------------------------------------- */

void mx_family(mx_t *m, const char *name, const char *type, const char *help)
{
	hdl_buf_puts(m->b, "# HELP ");
	hdl_buf_puts(m->b, name);
	hdl_buf_puts(m->b, " ");
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			hdl_buf_puts(m->b, "\\\\");
		else if (*p == '\n')
			hdl_buf_puts(m->b, "\\n");
		else
			hdl_buf_put(m->b, p, 1);
	}
	hdl_buf_puts(m->b, "\n# TYPE ");
	hdl_buf_puts(m->b, name);
	hdl_buf_puts(m->b, " ");
	hdl_buf_puts(m->b, type);
	hdl_buf_puts(m->b, "\n");
}

static void sample_head(mx_t *m, const char *name, const char *labels)
{
	hdl_buf_puts(m->b, name);
	if (labels && *labels) {
		hdl_buf_puts(m->b, "{");
		hdl_buf_puts(m->b, labels);
		hdl_buf_puts(m->b, "}");
	}
	hdl_buf_puts(m->b, " ");
}

void mx_sample(mx_t *m, const char *name, const char *labels, double v)
{
	char num[40];
	sample_head(m, name, labels);
	if (isnan(v))
		snprintf(num, sizeof(num), "NaN");
	else if (isinf(v))
		snprintf(num, sizeof(num), v > 0 ? "+Inf" : "-Inf");
	else
		snprintf(num, sizeof(num), "%.15g", v);
	hdl_buf_puts(m->b, num);
	hdl_buf_puts(m->b, "\n");
}

void mx_sample_u64(mx_t *m, const char *name, const char *labels, uint64_t v)
{
	sample_head(m, name, labels);
	hdl_buf_putu(m->b, v);
	hdl_buf_puts(m->b, "\n");
}

const char *mx_labels(char *out, size_t cap, unsigned n, const char *const *names,
                      const char *const *values)
{
	size_t len = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		char tmp[512];
		size_t k = 0;
		for (const char *p = values[i]; *p && k + 3 < sizeof(tmp); p++) {
			if (*p == '\\' || *p == '"') {
				tmp[k++] = '\\';
				tmp[k++] = *p;
			} else if (*p == '\n') {
				tmp[k++] = '\\';
				tmp[k++] = 'n';
			} else {
				tmp[k++] = *p;
			}
		}
		tmp[k] = '\0';
		int w = snprintf(out + len, cap - len, "%s%s=\"%s\"", i ? "," : "", names[i], tmp);
		if (w < 0 || (size_t)w >= cap - len) {
			out[len] = '\0'; /* this pair does not fit: stop before it */
			break;
		}
		len += (size_t)w;
	}
	return out;
}

static const char *label1(char *out, size_t cap, const char *name, const char *value)
{
	return mx_labels(out, cap, 1, &name, &value);
}

/* A whole one-sample family. */
static void mx_one(mx_t *m, const char *name, const char *type, const char *help, uint64_t v)
{
	mx_family(m, name, type, help);
	mx_sample_u64(m, name, NULL, v);
}

/* ---- registry -------------------------------------------------------------------------------- */

typedef struct source {
	char name[48];
	metrics_collect_fn collect;
	metrics_status_fn status;
	void *arg;
} source_t;

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static source_t reg[METRICS_MAX_SOURCES];
static unsigned reg_n;

int metrics_register(const char *name, metrics_collect_fn collect, metrics_status_fn status,
                     void *arg)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n >= sizeof(reg[0].name))
		return HDL_EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return HDL_EINVAL;
	}
	int ret = HDL_EOK;
	pthread_mutex_lock(&reg_mu);
	for (unsigned i = 0; i < reg_n; i++) {
		if (strcmp(reg[i].name, name) == 0 && reg[i].arg == arg)
			ret = HDL_EEXIST;
	}
	if (ret == HDL_EOK && reg_n == METRICS_MAX_SOURCES)
		ret = HDL_ELIMIT;
	if (ret == HDL_EOK) {
		memcpy(reg[reg_n].name, name, n + 1);
		reg[reg_n].collect = collect;
		reg[reg_n].status = status;
		reg[reg_n].arg = arg;
		reg_n++;
	}
	pthread_mutex_unlock(&reg_mu);
	return ret;
}

void metrics_unregister(const char *name, void *arg)
{
	pthread_mutex_lock(&reg_mu);
	for (unsigned i = 0; i < reg_n; i++) {
		if (strcmp(reg[i].name, name) == 0 && reg[i].arg == arg) {
			memmove(&reg[i], &reg[i + 1], sizeof(reg[0]) * (reg_n - i - 1));
			reg_n--;
			break;
		}
	}
	pthread_mutex_unlock(&reg_mu);
}

void metrics_status(json_t *obj)
{
	pthread_mutex_lock(&reg_mu);
	for (unsigned i = 0; i < reg_n; i++) {
		if (!reg[i].status)
			continue;
		json_t *o = json_object();
		if (!o)
			break;
		reg[i].status(o, reg[i].arg);
		json_object_set_new(obj, reg[i].name, o);
	}
	pthread_mutex_unlock(&reg_mu);
}

/* ---- the node's families --------------------------------------------------------------------- */

static void collect_requests(mx_t *m, const node_obs_t *o, const obs_sum_t *s)
{
	static const char *const names[] = {"transport", "opcode", "rcode"};
	char lb[256];
	mx_family(m, "idnode_requests_total", "counter",
	          "Requests answered, by transport, opcode and response code of the answer");
	for (unsigned t = 0; t < OBS_T_N; t++) {
		for (unsigned op = 0; op < OBS_OP_N; op++) {
			for (unsigned rc = 0; rc < OBS_RC_N; rc++) {
				if (!s->req[t][op][rc])
					continue;
				const char *v[] = {stats_transport_name(t), obs_op_label(op),
				                   obs_rc_label(rc)};
				mx_sample_u64(m, "idnode_requests_total",
				              mx_labels(lb, sizeof(lb), 3, names, v),
				              s->req[t][op][rc]);
			}
		}
	}
	mx_family(m, "idnode_requests_dropped_total", "counter",
	          "Requests left without an answer (not a Handle request, a response, no reply "
	          "possible), by transport");
	for (unsigned t = 0; t < OBS_T_N; t++)
		mx_sample_u64(m, "idnode_requests_dropped_total",
		              label1(lb, sizeof(lb), "transport", stats_transport_name(t)),
		              s->dropped[t]);
	if (!o->timing)
		return;
	mx_family(m, "idnode_request_duration_seconds", "histogram",
	          "Time from a whole request in (UDP: its datagram batch; TCP: its read) to its "
	          "answer built, by transport");
	for (unsigned t = 0; t < OBS_T_N; t++) {
		uint64_t cum = 0;
		for (unsigned b = 0; b < OBS_LAT_N; b++) {
			char le[32];
			cum += s->lat[t][b];
			if (b < OBS_LAT_N - 1)
				snprintf(le, sizeof(le), "%g", (double)obs_lat_bounds_ns[b] / 1e9);
			else
				snprintf(le, sizeof(le), "+Inf");
			const char *names2[] = {"transport", "le"};
			const char *v[] = {stats_transport_name(t), le};
			mx_sample_u64(m, "idnode_request_duration_seconds_bucket",
			              mx_labels(lb, sizeof(lb), 2, names2, v), cum);
		}
		label1(lb, sizeof(lb), "transport", stats_transport_name(t));
		mx_sample(m, "idnode_request_duration_seconds_sum", lb,
		          (double)s->lat_sum_ns[t] / 1e9);
		mx_sample_u64(m, "idnode_request_duration_seconds_count", lb, cum);
	}
}

static void collect_cache(mx_t *m, const obs_sum_t *s)
{
	mx_one(m, "idnode_response_cache_hits_total", "counter",
	       "Resolutions answered from the workers' response caches", s->cache_hits);
	mx_one(m, "idnode_response_cache_misses_total", "counter",
	       "Cacheable resolutions not found in the response caches", s->cache_misses);
	mx_one(m, "idnode_response_cache_inserts_total", "counter",
	       "Answers stored in the response caches", s->cache_inserts);
	mx_one(m, "idnode_response_cache_evictions_total", "counter",
	       "Entries evicted from the response caches to make room", s->cache_evictions);
	mx_one(m, "idnode_response_cache_flushes_total", "counter",
	       "Whole-cache drops (homing changes, txlog gaps, a reload)", s->cache_flushes);
	mx_one(m, "idnode_response_cache_invalidations_total", "counter",
	       "Entries dropped because the txlog named their handle", s->cache_invalidations);
	mx_one(m, "idnode_response_cache_rejected_total", "counter",
	       "Answers the admission rule kept out of a full cache", s->cache_rejected);
	mx_one(m, "idnode_response_cache_entries", "gauge", "Entries in the response caches",
	       s->cache_entries);
	mx_one(m, "idnode_response_cache_size_bytes", "gauge", "Bytes held by the response caches",
	       s->cache_bytes);
	mx_one(m, "idnode_response_cache_limit_bytes", "gauge",
	       "Limit of the response caches (cache_size)", s->cache_max_bytes);
}

/* The resolver's shared cache of upstream answers and its table of queries in flight. */
static void collect_resolver(mx_t *m, const node_shared_t *n)
{
	char lb[64];
	if (n->dcache) {
		dcache_stats_t d;
		dcache_get_stats(n->dcache, &d);
		mx_one(m, "idnode_resolver_cache_hits_total", "counter",
		       "Upstream answers served fresh from the resolver cache", d.hits);
		mx_one(m, "idnode_resolver_cache_misses_total", "counter",
		       "Resolver cache lookups that found nothing", d.misses);
		mx_one(m, "idnode_resolver_cache_stale_total", "counter",
		       "Stale answers served (the upstream failing: serve-stale)", d.stale_served);
		mx_one(m, "idnode_resolver_cache_prefetches_total", "counter",
		       "Refreshes of entries near their expiry", d.prefetches);
		mx_one(m, "idnode_resolver_cache_evictions_total", "counter",
		       "Entries dropped to make room", d.evictions);
		mx_one(m, "idnode_resolver_cache_expired_total", "counter",
		       "Entries dropped past their stale window", d.expired);
		mx_one(m, "idnode_resolver_cache_inserts_total", "counter", "Answers stored",
		       d.inserts);
		mx_one(m, "idnode_resolver_cache_refused_total", "counter",
		       "Answers not stored (too large, TTL 0, malformed)", d.refused);
		mx_one(m, "idnode_resolver_cache_invalidations_total", "counter",
		       "Entries dropped by invalidation (idnode cache flush HANDLE)",
		       d.invalidations);
		mx_one(m, "idnode_resolver_cache_entries", "gauge", "Entries in the resolver cache",
		       d.entries);
		mx_one(m, "idnode_resolver_cache_size_bytes", "gauge",
		       "Bytes held by the resolver cache", d.bytes);
		mx_one(m, "idnode_resolver_cache_limit_bytes", "gauge",
		       "Limit of the resolver cache", d.max_bytes);
	}
	if (n->dflight) {
		dflight_stats_t f;
		dflight_get_stats(n->dflight, &f);
		static const char *const ev[] = {"leader",   "follower", "refused", "left",
		                                 "promoted", "failed",   "answered"};
		const uint64_t v[] = {f.leaders,  f.followers, f.refused, f.left,
		                      f.promoted, f.failed,    f.answered};
		mx_family(
		    m, "idnode_resolver_flight_events_total", "counter",
		    "Identical upstream misses coalesced: joins as leader or follower, joins "
		    "refused over the limits, followers that left, were promoted, told a failure "
		    "or handed an answer");
		for (unsigned i = 0; i < 7; i++)
			mx_sample_u64(m, "idnode_resolver_flight_events_total",
			              label1(lb, sizeof(lb), "event", ev[i]), v[i]);
		mx_one(m, "idnode_resolver_flights", "gauge", "Upstream queries in flight", f.keys);
		mx_one(m, "idnode_resolver_flight_waiters", "gauge",
		       "Requests waiting for a query in flight", f.waiters);
	}
}

static void collect_conns(mx_t *m, const node_obs_t *o, const obs_sum_t *s)
{
	const node_shared_t *n = o->node;
	char lb[128];
	mx_one(m, "idnode_connections_open", "gauge", "TCP and HTTP connections open",
	       n->conns ? connlimit_open(n->conns) : s->conn_open);
	mx_one(m, "idnode_connection_sources", "gauge",
	       "Sources (addresses or prefixes) with a connection open",
	       n->conns ? connlimit_sources(n->conns) : 0);
	mx_one(m, "idnode_connection_buffer_bytes", "gauge",
	       "Bytes held in connection buffers (conn_buffer_budget counts them)",
	       n->conns ? connlimit_mem(n->conns) : 0);
	mx_one(m, "idnode_connections_accepted_total", "counter",
	       "TCP and HTTP connections accepted", s->conn_accepted);
	mx_one(m, "idnode_connections_refused_total", "counter",
	       "Connections refused at max_connections or max_connections_per_source",
	       s->conn_refused);
	mx_family(m, "idnode_connections_closed_total", "counter",
	          "Connections the node closed early, by reason: evicted (idle, to make room), "
	          "reclaimed (not reading its answers, over the buffer budget), frame_timeout");
	mx_sample_u64(m, "idnode_connections_closed_total",
	              label1(lb, sizeof(lb), "reason", "evicted"), s->conn_evicted);
	mx_sample_u64(m, "idnode_connections_closed_total",
	              label1(lb, sizeof(lb), "reason", "reclaimed"), s->conn_reclaimed);
	mx_sample_u64(m, "idnode_connections_closed_total",
	              label1(lb, sizeof(lb), "reason", "frame_timeout"), s->conn_frame_timeouts);
	mx_one(m, "idnode_pending_requests", "gauge",
	       "Requests waiting for the writer or streaming a list", s->pending);
	if (!n->rrl)
		return;
	rrl_stats_t rs;
	rrl_get_stats(n->rrl, &rs);
	mx_family(m, "idnode_udp_rate_limited_total", "counter",
	          "UDP requests over their source prefix's rate (udp_rrl_rate), by what was done: "
	          "slipped (short redirect to TCP) or dropped");
	mx_sample_u64(m, "idnode_udp_rate_limited_total",
	              label1(lb, sizeof(lb), "action", "slipped"), rs.c[RRL_CTR_SLIPPED]);
	mx_sample_u64(m, "idnode_udp_rate_limited_total",
	              label1(lb, sizeof(lb), "action", "dropped"), rs.c[RRL_CTR_DROPPED]);
	mx_one(m, "idnode_udp_rrl_shared_total", "counter",
	       "UDP requests charged to another prefix's bucket (rate-limit table full)",
	       rs.c[RRL_CTR_SHARED]);
	mx_one(m, "idnode_udp_redirected_total", "counter",
	       "UDP answers over the answer cap replaced by a redirect to TCP",
	       rs.c[RRL_CTR_REDIRECTED]);
}

static void collect_writer(mx_t *m, writer_t *w)
{
	static const char *const sizes[8] = {"1",     "2-3",   "4-7",    "8-15",
	                                     "16-31", "32-63", "64-127", "128+"};
	char lb[64];
	writer_stats_t ws;
	writer_stats(w, &ws);
	mx_family(m, "idnode_writer_batches_total", "counter",
	          "Group commits of the write path, by the number of jobs in them");
	for (unsigned i = 0; i < 8; i++)
		mx_sample_u64(m, "idnode_writer_batches_total",
		              label1(lb, sizeof(lb), "jobs", sizes[i]), ws.batch_hist[i]);
	mx_family(
	    m, "idnode_writer_jobs_total", "counter",
	    "Changes finished by the writer: applied (acknowledged after their commit; durable "
	    "when write_sync = full), refused (nothing written), failed (their batch failed)");
	mx_sample_u64(m, "idnode_writer_jobs_total", label1(lb, sizeof(lb), "result", "applied"),
	              ws.applied);
	mx_sample_u64(m, "idnode_writer_jobs_total", label1(lb, sizeof(lb), "result", "refused"),
	              ws.refused);
	mx_sample_u64(m, "idnode_writer_jobs_total", label1(lb, sizeof(lb), "result", "failed"),
	              ws.failed);
	mx_one(m, "idnode_writer_rejected_total", "counter",
	       "Changes refused at once because the write queue was full (write_queue_max)",
	       ws.rejected);
	mx_one(m, "idnode_writer_queue_depth", "gauge", "Changes queued or in the current batch",
	       writer_depth(w));
	mx_one(m, "idnode_writer_batch_jobs_max", "gauge", "Most jobs in one batch so far",
	       ws.max_batch);
	mx_one(m, "idnode_writer_syncs_total", "counter", "fsyncs of write_sync = periodic",
	       ws.syncs);
	mx_one(m, "idnode_audit_pruned_total", "counter",
	       "Audit entries removed by audit_retention_days", ws.pruned);
}

static void collect_store(mx_t *m, store_t *s)
{
	mx_one(m, "idnode_store_handles", "gauge", "Handles in the store", store_count(s));
	mx_one(m, "idnode_store_homed_prefixes", "gauge", "Prefixes homed on this node",
	       store_homed_count(s));
	mx_one(m, "idnode_store_map_size_bytes", "gauge", "Size of the LMDB map",
	       store_map_size(s));
	mx_one(m, "idnode_store_map_used_bytes", "gauge", "Bytes of the LMDB map in use",
	       store_map_used(s));
}

static void collect_stats(mx_t *m, const stats_node_t *sn)
{
	stats_info_t si;
	stats_get_info(sn, &si);
	mx_one(m, "idnode_stats_flushes_total", "counter", "Usage statistics flushes committed",
	       si.flushes);
	mx_one(m, "idnode_stats_flush_errors_total", "counter",
	       "Usage statistics flushes that failed (their counts were lost)", si.flush_errors);
	mx_one(m, "idnode_stats_records_written_total", "counter",
	       "Per-day, per-prefix statistics records written", si.records);
	mx_one(m, "idnode_stats_audit_entries_total", "counter",
	       "Audit entries counted as registrations", si.audit_entries);
	mx_one(m, "idnode_stats_overflow_total", "counter",
	       "Resolutions counted under '-' because stats_max_prefixes was reached", si.overflow);
	mx_one(m, "idnode_stats_last_flush_timestamp_seconds", "gauge",
	       "When the last statistics flush committed (0 = not yet)", si.last_flush_unix);
}

/* process_* as the Prometheus client libraries export them, from /proc/self. */
static void collect_process(mx_t *m)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0, start = 0, vsize = 0, rss = 0;
	if (p &&
	    sscanf(p + 2,
	           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
	           "%llu %llu %llu",
	           &ut, &st, &start, &vsize, &rss) == 5) {
		double tck = (double)sysconf(_SC_CLK_TCK);
		mx_family(m, "process_cpu_seconds_total", "counter",
		          "Total user and system CPU time spent in seconds");
		mx_sample(m, "process_cpu_seconds_total", NULL, (double)(ut + st) / tck);
		mx_one(m, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes",
		       vsize);
		mx_one(m, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes",
		       rss * (unsigned long long)sysconf(_SC_PAGESIZE));
		unsigned long long btime = 0;
		FILE *s = fopen("/proc/stat", "r");
		char line[256];
		while (s && fgets(line, sizeof(line), s)) {
			if (sscanf(line, "btime %llu", &btime) == 1)
				break;
		}
		if (s)
			fclose(s);
		if (btime) {
			mx_family(m, "process_start_time_seconds", "gauge",
			          "Start time of the process since unix epoch in seconds");
			mx_sample(m, "process_start_time_seconds", NULL,
			          (double)btime + (double)start / tck);
		}
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		uint64_t fds = 0;
		for (struct dirent *e = readdir(d); e; e = readdir(d))
			fds += e->d_name[0] != '.';
		closedir(d);
		mx_one(m, "process_open_fds", "gauge", "Number of open file descriptors",
		       fds > 0 ? fds - 1 : 0);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		mx_one(m, "process_max_fds", "gauge", "Maximum number of open file descriptors",
		       rl.rlim_cur);
}

static void collect_node(mx_t *m, const node_obs_t *o)
{
	char lb[128];
	mx_family(m, "idnode_build_info", "gauge", "Build of idnoded (always 1)");
	mx_sample_u64(m, "idnode_build_info", label1(lb, sizeof(lb), "version", HDL_VERSION), 1);
	mx_one(m, "idnode_start_time_seconds", "gauge", "When the node started (Unix time)",
	       o->start_unix);
	mx_one(m, "idnode_workers", "gauge", "Worker threads", o->n_workers);
	obs_sum_t *s = malloc(sizeof(*s));
	if (!s) {
		m->b->fail = true;
		return;
	}
	obs_sum(o, s);
	collect_requests(m, o, s);
	collect_cache(m, s);
	collect_resolver(m, o->node);
	collect_conns(m, o, s);
	free(s);
	if (o->node->writer)
		collect_writer(m, o->node->writer);
	if (o->node->store)
		collect_store(m, o->node->store);
	if (o->stats)
		collect_stats(m, o->stats);
}

int metrics_collect(const node_obs_t *o, hdl_buf_t *out)
{
	mx_t m = {out};
	if (o)
		collect_node(&m, o);
	collect_process(&m);
	pthread_mutex_lock(&reg_mu);
	for (unsigned i = 0; i < reg_n; i++) {
		if (reg[i].collect)
			reg[i].collect(&m, reg[i].arg);
	}
	pthread_mutex_unlock(&reg_mu);
	return out->fail ? HDL_ENOMEM : HDL_EOK;
}

/* ---- listener -------------------------------------------------------------------------------- */

struct metrics_srv {
	int fd;
	struct event_base *base;
	struct evconnlistener *lis;
	struct event *stop_ev;
	int stop[2];
	pthread_t thread;
	bool started;
	const node_obs_t *obs;
	struct mconn *conns; /* open connections (freed with the listener) */
	unsigned max_conns, n_conns;
	uint32_t timeout_ms;
	_Atomic uint64_t scrapes, refused, errors;
};

int metrics_open(const conf_t *c, metrics_srv_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!c->metrics_listen || !c->metrics_listen[0])
		return HDL_EOK;
	struct sockaddr_storage ss;
	socklen_t sl;
	if (conf_parse_addr(c->metrics_listen, &ss, &sl) != HDL_EOK) {
		snprintf(err, errlen, "metrics_listen %s: not ADDR:PORT", c->metrics_listen);
		return HDL_EIO;
	}
	metrics_srv_t *s = calloc(1, sizeof(*s));
	if (!s)
		return HDL_ENOMEM;
	s->stop[0] = s->stop[1] = -1;
	s->max_conns = c->metrics_max_connections;
	s->timeout_ms = c->metrics_timeout_ms;
	int one = 1;
	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(s->fd, (struct sockaddr *)&ss, sl) != 0 || listen(s->fd, 64) != 0 ||
	    pipe2(s->stop, O_CLOEXEC | O_NONBLOCK) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", c->metrics_listen, strerror(errno));
		metrics_close(s);
		return HDL_EIO;
	}
	*out = s;
	return HDL_EOK;
}

typedef struct mconn {
	metrics_srv_t *s;
	struct bufferevent *bev;
	struct event *deadline; /* metrics_timeout_ms after the accept: closed, whatever it does */
	struct mconn *prev, *next;
	bool answered;
} mconn_t;

static void mconn_free(mconn_t *c)
{
	metrics_srv_t *s = c->s;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	bufferevent_free(c->bev);
	if (c->deadline)
		event_free(c->deadline);
	s->n_conns--;
	free(c);
}

static void respond(mconn_t *c, int status, const char *reason, const char *ctype, const void *body,
                    size_t len, bool head)
{
	struct evbuffer *o = bufferevent_get_output(c->bev);
	evbuffer_add_printf(o,
	                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                    "Connection: close\r\n\r\n",
	                    status, reason, ctype, len);
	if (!head && len)
		evbuffer_add(o, body, len);
	c->answered = true;
	bufferevent_disable(c->bev, EV_READ);
	if (status != 200)
		atomic_fetch_add_explicit(&c->s->errors, 1, memory_order_relaxed);
}

static void error_answer(mconn_t *c, int status, const char *reason, bool head)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason);
	respond(c, status, reason, "text/plain; charset=utf-8", body, (size_t)n, head);
}

static void serve(mconn_t *c, char *line)
{
	/* METHOD SP TARGET SP HTTP/1.x */
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		error_answer(c, 400, "Bad Request", false);
		return;
	}
	*sp1 = *sp2 = '\0';
	bool head = strcmp(line, "HEAD") == 0;
	if (!head && strcmp(line, "GET") != 0) {
		error_answer(c, 405, "Method Not Allowed", false);
		return;
	}
	char *target = sp1 + 1;
	char *q = strchr(target, '?');
	if (q)
		*q = '\0';
	if (strcmp(target, "/metrics") != 0) {
		error_answer(c, 404, "Not Found", head);
		return;
	}
	hdl_buf_t b;
	hdl_buf_init(&b, 64u << 20);
	if (metrics_collect(c->s->obs, &b) != HDL_EOK) {
		hdl_buf_free(&b);
		error_answer(c, 500, "Internal Server Error", head);
		return;
	}
	respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, head);
	hdl_buf_free(&b);
	atomic_fetch_add_explicit(&c->s->scrapes, 1, memory_order_relaxed);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	mconn_t *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (c->answered) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0) {
		if (evbuffer_get_length(in) > METRICS_HEAD_MAX) {
			log_peer(LOG_LVL_INFO, "metrics: request head over %u bytes, closing",
			         METRICS_HEAD_MAX);
			error_answer(c, 431, "Request Header Fields Too Large", false);
		}
		return;
	}
	if ((size_t)end.pos > METRICS_HEAD_MAX) {
		error_answer(c, 431, "Request Header Fields Too Large", false);
		return;
	}
	char line[METRICS_HEAD_MAX + 1];
	size_t n = 0;
	char *l = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
	if (!l) {
		error_answer(c, 400, "Bad Request", false);
		return;
	}
	snprintf(line, sizeof(line), "%s", l);
	free(l);
	evbuffer_drain(in, evbuffer_get_length(in));
	serve(c, line);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	mconn_t *c = arg;
	if (c->answered && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		mconn_free(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	mconn_t *c = arg;
	if (what & BEV_EVENT_TIMEOUT) {
		atomic_fetch_add_explicit(&c->s->errors, 1, memory_order_relaxed);
		log_peer(LOG_LVL_INFO, "metrics: a scrape connection timed out");
	}
	mconn_free(c);
}

/* A peer that trickles its request or reads its answer slowly still ends on time. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	mconn_t *c = arg;
	atomic_fetch_add_explicit(&c->s->errors, 1, memory_order_relaxed);
	log_peer(LOG_LVL_INFO, "metrics: a scrape connection took over metrics_timeout_ms, closed");
	mconn_free(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	metrics_srv_t *s = arg;
	if (s->n_conns >= s->max_conns) {
		atomic_fetch_add_explicit(&s->refused, 1, memory_order_relaxed);
		log_peer(LOG_LVL_WARN,
		         "metrics: %u connections open (metrics_max_connections), "
		         "closing a new one",
		         s->n_conns);
		close(fd);
		return;
	}
	mconn_t *c = calloc(1, sizeof(*c));
	struct bufferevent *bev =
	    c ? bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		free(c);
		close(fd);
		return;
	}
	c->s = s;
	c->bev = bev;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
	bufferevent_set_timeouts(bev, &tv, &tv);
	c->deadline = evtimer_new(s->base, on_deadline, c);
	if (!c->deadline || evtimer_add(c->deadline, &tv) != 0) {
		mconn_free(c);
		return;
	}
	bufferevent_setcb(bev, on_read, on_write, on_event, c);
	bufferevent_setwatermark(bev, EV_READ, 0, METRICS_HEAD_MAX + 4096);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	metrics_srv_t *s = arg;
	event_base_loopexit(s->base, NULL);
}

/* The listener's own counters, through the registry like any module's. */
static void collect_self(mx_t *m, void *arg)
{
	metrics_srv_stats_t st;
	metrics_srv_get_stats(arg, &st);
	mx_one(m, "idnode_metrics_scrapes_total", "counter", "Expositions served", st.scrapes);
	mx_one(m, "idnode_metrics_refused_total", "counter",
	       "Scrape connections closed at once (metrics_max_connections open)", st.refused);
	mx_one(m, "idnode_metrics_errors_total", "counter",
	       "Scrape requests refused (bad request, other path or method) or timed out",
	       st.errors);
}

static void *metrics_main(void *arg)
{
	metrics_srv_t *s = arg;
	log_set_thread(-1);
	event_base_dispatch(s->base);
	return NULL;
}

int metrics_start(metrics_srv_t *s, const node_obs_t *o)
{
	s->obs = o;
	s->base = event_base_new();
	if (!s->base)
		return HDL_ENOMEM;
	s->lis = evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, -1, s->fd);
	if (!s->lis)
		return HDL_ENOMEM;
	s->fd = -1; /* the listener owns it now */
	s->stop_ev = event_new(s->base, s->stop[0], EV_READ, on_stop, s);
	if (!s->stop_ev || event_add(s->stop_ev, NULL) != 0 ||
	    metrics_register("metrics", collect_self, NULL, s) != HDL_EOK)
		return HDL_ENOMEM;
	/* the main thread owns the process signals */
	sigset_t block, old;
	sigfillset(&block);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int rc = pthread_create(&s->thread, NULL, metrics_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return HDL_ENOMEM;
	s->started = true;
	return HDL_EOK;
}

void metrics_close(metrics_srv_t *s)
{
	if (!s)
		return;
	if (s->started) {
		char q = 'q';
		if (write(s->stop[1], &q, 1) != 1)
			log_err("metrics: cannot stop the listener thread: %s", strerror(errno));
		pthread_join(s->thread, NULL);
	}
	metrics_unregister("metrics", s);
	while (s->conns)
		mconn_free(s->conns); /* connections still open when the loop ended */
	if (s->lis)
		evconnlistener_free(s->lis);
	if (s->stop_ev)
		event_free(s->stop_ev);
	if (s->base)
		event_base_free(s->base);
	if (s->fd >= 0)
		close(s->fd);
	if (s->stop[0] >= 0)
		close(s->stop[0]);
	if (s->stop[1] >= 0)
		close(s->stop[1]);
	free(s);
}

void metrics_srv_get_stats(const metrics_srv_t *s, metrics_srv_stats_t *out)
{
	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	out->scrapes = atomic_load_explicit(&s->scrapes, memory_order_relaxed);
	out->refused = atomic_load_explicit(&s->refused, memory_order_relaxed);
	out->errors = atomic_load_explicit(&s->errors, memory_order_relaxed);
}
