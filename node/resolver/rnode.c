/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief idnoded's resolver state from its configuration, and the `cache` control command.
 */
#include "node/resolver/rnode.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/dcache.h"
#include "node/resolver/dflight.h"
#include "node/server/control.h"
#include "node/server/node.h"
#include "node/store/store.h"

void rnode_policy(const conf_t *c, dcache_policy_t *p)
{
	p->min_ttl = c->resolver_min_ttl;
	p->max_ttl = c->resolver_max_ttl;
	p->negative_ttl = c->resolver_negative_ttl;
	p->stale_max = c->resolver_stale_max;
	p->prefetch_pct = c->resolver_prefetch_pct;
}

int rnode_setup(node_shared_t *n, const conf_t *c)
{
	dcache_opts_t o = {.max_bytes = c->resolver_cache_size};
	rnode_policy(c, &o.policy);
	int ret = dcache_new(&o, &n->dcache);
	if (ret == HDL_EOK)
		ret = dflight_new(c->resolver_inflight_max, c->resolver_inflight_waiters,
		                  &n->dflight);
	if (ret != HDL_EOK)
		rnode_free(n);
	return ret;
}

void rnode_apply(node_shared_t *n, const conf_t *c)
{
	dcache_policy_t p;
	rnode_policy(c, &p);
	if (n->dcache) {
		dcache_set_policy(n->dcache, &p);
		dcache_set_max_bytes(n->dcache, c->resolver_cache_size);
	}
	if (n->dflight)
		dflight_set_limits(n->dflight, c->resolver_inflight_max,
		                   c->resolver_inflight_waiters);
}

void rnode_free(node_shared_t *n)
{
	dcache_free(n->dcache);
	dflight_free(n->dflight);
	n->dcache = NULL;
	n->dflight = NULL;
}

/* ---- control: cache ---------------------------------------------------------------------------
 */

typedef struct cache_cmd {
	node_shared_t *n;
	uint32_t dump_max;
} cache_cmd_t;

static cache_cmd_t cache_cmd_ctx;

static void print_stats(const cache_cmd_t *cc, control_out_t *out)
{
	dcache_stats_t st;
	dcache_get_stats(cc->n->dcache, &st);
	control_printf(out,
	               "entries %zu\nbytes %zu\nmax_bytes %zu\nshards %u\nhits %llu\nmisses %llu\n"
	               "stale_served %llu\nprefetches %llu\ninserts %llu\nevictions %llu\n"
	               "expired %llu\nrefused %llu\ninvalidations %llu\nflushes %llu\n",
	               st.entries, st.bytes, st.max_bytes, st.shards, (unsigned long long)st.hits,
	               (unsigned long long)st.misses, (unsigned long long)st.stale_served,
	               (unsigned long long)st.prefetches, (unsigned long long)st.inserts,
	               (unsigned long long)st.evictions, (unsigned long long)st.expired,
	               (unsigned long long)st.refused, (unsigned long long)st.invalidations,
	               (unsigned long long)st.flushes);
	if (!cc->n->dflight)
		return;
	dflight_stats_t fs;
	dflight_get_stats(cc->n->dflight, &fs);
	control_printf(out,
	               "inflight_keys %zu\ninflight_waiters %zu\ninflight_leaders %llu\n"
	               "inflight_followers %llu\ninflight_refused %llu\n",
	               fs.keys, fs.waiters, (unsigned long long)fs.leaders,
	               (unsigned long long)fs.followers, (unsigned long long)fs.refused);
}

static int dump_line(void *ctx, const dcache_info_t *in)
{
	control_out_t *out = ctx;
	char key[512];
	if (dcache_key_describe(in->key, in->klen, key, sizeof(key)) == 0)
		return 0;
	int64_t s = in->ttl_left_ms >= 0 ? in->ttl_left_ms / 1000 : (-in->ttl_left_ms + 999) / 1000;
	control_printf(out, "%s rc=%u values=%u bytes=%zu %s=%lld%s\n", key, in->rcode,
	               in->n_values, in->vlen, in->ttl_left_ms >= 0 ? "ttl" : "stale", (long long)s,
	               in->prefetched ? " prefetched" : "");
	return 0;
}

/* The handle as the cache keys it (store_key(): the node's case rule); 0 when invalid. */
static size_t norm_handle(const cache_cmd_t *cc, const char *h, uint8_t *out, size_t cap)
{
	hdl_slice_t s = hdl_slice_str(h);
	if (cc->n->store)
		return store_key(cc->n->store, s, out, cap);
	if (hdl_name_check(s.p, s.len) != HDL_EOK)
		return 0;
	return hdl_name_normalize(s, false, out, cap);
}

static int cmd_cache(void *arg, const char *args, control_out_t *out)
{
	const cache_cmd_t *cc = arg;
	size_t wl = strcspn(args, " \t");
	const char *rest = args + wl;
	while (*rest == ' ' || *rest == '\t')
		rest++;
	if (!cc->n->dcache)
		return control_fail(out, "no resolver cache");
	if (wl == 5 && memcmp(args, "stats", 5) == 0 && !*rest) {
		print_stats(cc, out);
		return 0;
	}
	if (wl == 4 && memcmp(args, "dump", 4) == 0) {
		if (strpbrk(rest, " \t"))
			return control_fail(out, "usage: cache dump [PREFIX]");
		long n = dcache_foreach(cc->n->dcache, hdl_slice_str(rest), cc->dump_max, dump_line,
		                        out);
		if (n < 0)
			return control_fail(out, "out of memory");
		if ((uint64_t)n >= cc->dump_max)
			control_printf(out, "# stopped after %ld entries (control_dump_max)\n", n);
		else
			control_printf(out, "# %ld entries\n", n);
		return 0;
	}
	if (wl == 5 && memcmp(args, "flush", 5) == 0) {
		if (!*rest) {
			dcache_stats_t st;
			dcache_get_stats(cc->n->dcache, &st);
			dcache_flush(cc->n->dcache);
			log_notice("control: resolver cache flushed (%zu entries)", st.entries);
			control_printf(out, "flushed %zu entries\n", st.entries);
			return 0;
		}
		uint8_t key[HDL_MAX_HANDLE_LEN + 8];
		size_t kl = norm_handle(cc, rest, key, sizeof(key));
		if (kl == 0)
			return control_fail(out, "not a valid handle");
		size_t n = dcache_invalidate(cc->n->dcache, (hdl_slice_t){key, (uint32_t)kl});
		log_notice("control: resolver cache flushed %zu entries of %.*s", n, (int)kl,
		           (const char *)key);
		control_printf(out, "flushed %zu entries of %.*s\n", n, (int)kl, (const char *)key);
		return 0;
	}
	return control_fail(out, "usage: cache stats | cache dump [PREFIX] | cache flush [HANDLE]");
}

int rnode_register_commands(struct control *ctl, node_shared_t *n, const conf_t *c)
{
	cache_cmd_ctx = (cache_cmd_t){n, c->control_dump_max};
	return control_register(ctl, "cache",
	                        "cache stats | cache dump [PREFIX] | cache flush [HANDLE]",
	                        cmd_cache, &cache_cmd_ctx);
}
