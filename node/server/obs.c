/* SPDX-License-Identifier: Apache-2.0 */
/* Per-worker counters and the node's observable state (see obs.h). */
#include "node/server/obs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/conf/conf.h"
#include "node/server/cache.h"
#include "node/server/metrics.h"
#include "node/server/stats.h"
#include "node/server/web.h"
#include "node/server/worker.h"

/* 10 us .. 10 s; a Handle answer from memory takes some microseconds, a durable write some ms */
const uint64_t obs_lat_bounds_ns[OBS_LAT_N - 1] = {
    10000,     25000,     50000,     100000,     250000,         500000,
    1000000,   2500000,   5000000,   10000000,   25000000,       50000000,
    100000000, 250000000, 500000000, 1000000000, 10000000000ull,
};

static const struct {
	uint32_t op;
	const char *label;
} ops[OBS_OP_N - 1] = {
    {HDL_OC_RESERVED, "reserved"},
    {HDL_OC_RESOLUTION, "resolution"},
    {HDL_OC_GET_SITEINFO, "get_siteinfo"},
    {HDL_OC_CREATE_HANDLE, "create_handle"},
    {HDL_OC_DELETE_HANDLE, "delete_handle"},
    {HDL_OC_ADD_VALUE, "add_value"},
    {HDL_OC_REMOVE_VALUE, "remove_value"},
    {HDL_OC_MODIFY_VALUE, "modify_value"},
    {HDL_OC_LIST_HANDLES, "list_handles"},
    {HDL_OC_LIST_NA, "list_na"},
    {HDL_OC_CHALLENGE_RESPONSE, "challenge_response"},
    {HDL_OC_VERIFY_RESPONSE, "verify_response"},
    {HDL_OC_HOME_NA, "home_na"},
    {HDL_OC_UNHOME_NA, "unhome_na"},
    {HDL_OC_LIST_HOMED_NAS, "list_homed_nas"},
    {HDL_OC_SESSION_SETUP, "session_setup"},
    {HDL_OC_SESSION_TERMINATE, "session_terminate"},
    {HDL_OC_SESSION_EXCHANGEKEY, "session_exchangekey"},
    {HDL_OC_LOGIN, "login"},
    {HDL_OC_LOGIN_ID_SYSTEM, "login_id_system"},
};

static const struct {
	uint32_t rc;
	const char *label;
} rcs[OBS_RC_N - 1] = {
    {HDL_RC_RESERVED, "reserved"},
    {HDL_RC_SUCCESS, "success"},
    {HDL_RC_ERROR, "error"},
    {HDL_RC_SERVER_TOO_BUSY, "server_too_busy"},
    {HDL_RC_PROTOCOL_ERROR, "protocol_error"},
    {HDL_RC_OPERATION_NOT_SUPPORTED, "operation_not_supported"},
    {HDL_RC_RECURSION_COUNT_TOO_HIGH, "recursion_count_too_high"},
    {HDL_RC_SERVER_BACKUP, "server_backup"},
    {HDL_RC_HANDLE_NOT_FOUND, "handle_not_found"},
    {HDL_RC_HANDLE_ALREADY_EXISTS, "handle_already_exists"},
    {HDL_RC_INVALID_HANDLE, "invalid_handle"},
    {HDL_RC_VALUES_NOT_FOUND, "values_not_found"},
    {HDL_RC_VALUE_ALREADY_EXISTS, "value_already_exists"},
    {HDL_RC_INVALID_VALUE, "invalid_value"},
    {HDL_RC_OUT_OF_DATE_SITE_INFO, "out_of_date_site_info"},
    {HDL_RC_SERVER_NOT_RESP, "server_not_resp"},
    {HDL_RC_SERVICE_REFERRAL, "service_referral"},
    {HDL_RC_PREFIX_REFERRAL, "prefix_referral"},
    {HDL_RC_INVALID_ADMIN, "invalid_admin"},
    {HDL_RC_INSUFFICIENT_PERMISSIONS, "insufficient_permissions"},
    {HDL_RC_AUTHENTICATION_NEEDED, "authentication_needed"},
    {HDL_RC_AUTHENTICATION_FAILED, "authentication_failed"},
    {HDL_RC_INVALID_CREDENTIAL, "invalid_credential"},
    {HDL_RC_AUTHEN_TIMEOUT, "authen_timeout"},
    {HDL_RC_AUTHEN_ERROR, "authen_error"},
    {HDL_RC_SESSION_TIMEOUT, "session_timeout"},
    {HDL_RC_SESSION_FAILED, "session_failed"},
    {HDL_RC_INVALID_SESSION_KEY, "invalid_session_key"},
    {HDL_RC_NEED_RSAKEY_FOR_SESSIONEXCHANGE, "need_rsakey_for_sessionexchange"},
    {HDL_RC_INVALID_SESSIONSETUP_REQUEST, "invalid_sessionsetup_request"},
    {HDL_RC_SESSION_MESSAGE_REJECTED, "session_message_rejected"},
};

unsigned obs_op_slot(uint32_t op)
{
	switch (op) {
	case HDL_OC_RESERVED: return 0;
	case HDL_OC_RESOLUTION: return 1;
	case HDL_OC_GET_SITEINFO: return 2;
	case HDL_OC_CREATE_HANDLE: return 3;
	case HDL_OC_DELETE_HANDLE: return 4;
	case HDL_OC_ADD_VALUE: return 5;
	case HDL_OC_REMOVE_VALUE: return 6;
	case HDL_OC_MODIFY_VALUE: return 7;
	case HDL_OC_LIST_HANDLES: return 8;
	case HDL_OC_LIST_NA: return 9;
	case HDL_OC_CHALLENGE_RESPONSE: return 10;
	case HDL_OC_VERIFY_RESPONSE: return 11;
	case HDL_OC_HOME_NA: return 12;
	case HDL_OC_UNHOME_NA: return 13;
	case HDL_OC_LIST_HOMED_NAS: return 14;
	case HDL_OC_SESSION_SETUP: return 15;
	case HDL_OC_SESSION_TERMINATE: return 16;
	case HDL_OC_SESSION_EXCHANGEKEY: return 17;
	case HDL_OC_LOGIN: return 18;
	case HDL_OC_LOGIN_ID_SYSTEM: return 19;
	default: return OBS_OP_N - 1;
	}
}

unsigned obs_rc_slot(uint32_t rc)
{
	if (rc <= HDL_RC_SERVER_BACKUP)
		return rc; /* 0..7 */
	switch (rc) {
	case HDL_RC_HANDLE_NOT_FOUND: return 8;
	case HDL_RC_HANDLE_ALREADY_EXISTS: return 9;
	case HDL_RC_INVALID_HANDLE: return 10;
	case HDL_RC_VALUES_NOT_FOUND: return 11;
	case HDL_RC_VALUE_ALREADY_EXISTS: return 12;
	case HDL_RC_INVALID_VALUE: return 13;
	case HDL_RC_OUT_OF_DATE_SITE_INFO: return 14;
	case HDL_RC_SERVER_NOT_RESP: return 15;
	case HDL_RC_SERVICE_REFERRAL: return 16;
	case HDL_RC_PREFIX_REFERRAL: return 17;
	default: break;
	}
	if (rc >= HDL_RC_INVALID_ADMIN && rc <= HDL_RC_AUTHEN_ERROR)
		return 18 + (rc - HDL_RC_INVALID_ADMIN); /* 18..24 */
	if (rc >= HDL_RC_SESSION_TIMEOUT && rc <= HDL_RC_SESSION_MESSAGE_REJECTED)
		return 25 + (rc - HDL_RC_SESSION_TIMEOUT); /* 25..30 */
	return OBS_RC_N - 1;
}

const char *obs_op_label(unsigned slot)
{
	return slot < OBS_OP_N - 1 ? ops[slot].label : "other";
}

uint32_t obs_rc_of_slot(unsigned slot)
{
	return slot < OBS_RC_N - 1 ? rcs[slot].rc : 0;
}

const char *obs_rc_label(unsigned slot)
{
	return slot < OBS_RC_N - 1 ? rcs[slot].label : "other";
}

unsigned obs_lat_bucket(uint64_t ns)
{
	unsigned i = 0;
	while (i < OBS_LAT_N - 1 && ns > obs_lat_bounds_ns[i])
		i++;
	return i;
}

void obs_count(obs_ctr_t *c, unsigned t, uint32_t op, uint32_t rc, bool answered, uint64_t t0_ns)
{
	t = t < OBS_T_N ? t : STATS_T_OTHER;
	if (answered)
		obs_add(&c->req[t][obs_op_slot(op)][obs_rc_slot(rc)], 1);
	else
		obs_add(&c->dropped[t], 1);
	if (t0_ns) {
		uint64_t now = obs_now_ns();
		uint64_t d = now > t0_ns ? now - t0_ns : 0;
		obs_add(&c->lat[t][obs_lat_bucket(d)], 1);
		obs_add(&c->lat_sum_ns[t], d);
	}
}

int obs_init(node_obs_t *o, node_shared_t *node, worker_t *workers, unsigned n_workers,
             const conf_t *c)
{
	memset(o, 0, sizeof(*o));
	o->ctr = calloc(n_workers ? n_workers : 1, sizeof(*o->ctr));
	if (!o->ctr)
		return HDL_ENOMEM;
	o->node = node;
	o->workers = workers;
	o->n_workers = n_workers;
	o->conf = c;
	o->timing = c->metrics_listen && c->metrics_listen[0];
	o->start_unix = (uint64_t)time(NULL);
	o->start_mono_ns = obs_now_ns();
	if (c->stats) {
		stats_opts_t so;
		stats_opts_from_conf(c, &so);
		int ret = stats_node_new(node->store, &so, n_workers, &o->stats);
		if (ret != HDL_EOK) {
			obs_free(o);
			return ret;
		}
	}
	return HDL_EOK;
}

void obs_free(node_obs_t *o)
{
	stats_node_free(o->stats);
	free(o->ctr);
	memset(o, 0, sizeof(*o));
}

void obs_worker_attach(worker_t *w)
{
	node_obs_t *o = w->node->obs;
	if (!o || (unsigned)w->id >= o->n_workers)
		return;
	w->dctx.obs = &o->ctr[w->id];
	w->dctx.timing = o->timing;
	w->dctx.stats = stats_node_worker(o->stats, (unsigned)w->id);
}

void obs_worker_tick(worker_t *w)
{
	obs_ctr_t *c = w->dctx.obs;
	if (!c)
		return;
	rcache_stats_t st;
	memset(&st, 0, sizeof(st));
	if (w->dctx.cache)
		rcache_get_stats(w->dctx.cache, &st);
	obs_set(&c->cache_hits, st.hits);
	obs_set(&c->cache_misses, st.misses);
	obs_set(&c->cache_inserts, st.inserts);
	obs_set(&c->cache_evictions, st.evictions);
	obs_set(&c->cache_flushes, st.flushes);
	obs_set(&c->cache_invalidations, st.invalidations);
	obs_set(&c->cache_rejected, st.rejected);
	obs_set(&c->cache_entries, st.entries);
	obs_set(&c->cache_bytes, st.bytes);
	obs_set(&c->cache_max_bytes, st.max_bytes);
	const conn_worker_t *cw = &w->cw;
	obs_set(&c->conn_open, cw->n);
	obs_set(&c->conn_accepted, cw->n_accepted);
	obs_set(&c->conn_refused, cw->n_refused);
	obs_set(&c->conn_evicted, cw->n_evicted);
	obs_set(&c->conn_reclaimed, cw->n_reclaimed);
	obs_set(&c->conn_frame_timeouts, cw->n_frame_timeouts);
	obs_set(&c->pending, w->pq.n_live);
	if (w->dctx.stats)
		stats_worker_tick(w->dctx.stats, worker_now_ms());
}

void obs_sum(const node_obs_t *o, obs_sum_t *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned k = 0; k < o->n_workers; k++) {
		const obs_ctr_t *c = &o->ctr[k];
		for (unsigned t = 0; t < OBS_T_N; t++) {
			for (unsigned op = 0; op < OBS_OP_N; op++) {
				for (unsigned rc = 0; rc < OBS_RC_N; rc++)
					s->req[t][op][rc] += obs_get(&c->req[t][op][rc]);
			}
			s->dropped[t] += obs_get(&c->dropped[t]);
			for (unsigned b = 0; b < OBS_LAT_N; b++)
				s->lat[t][b] += obs_get(&c->lat[t][b]);
			s->lat_sum_ns[t] += obs_get(&c->lat_sum_ns[t]);
		}
		s->cache_hits += obs_get(&c->cache_hits);
		s->cache_misses += obs_get(&c->cache_misses);
		s->cache_inserts += obs_get(&c->cache_inserts);
		s->cache_evictions += obs_get(&c->cache_evictions);
		s->cache_flushes += obs_get(&c->cache_flushes);
		s->cache_invalidations += obs_get(&c->cache_invalidations);
		s->cache_rejected += obs_get(&c->cache_rejected);
		s->cache_entries += obs_get(&c->cache_entries);
		s->cache_bytes += obs_get(&c->cache_bytes);
		s->cache_max_bytes += obs_get(&c->cache_max_bytes);
		s->conn_open += obs_get(&c->conn_open);
		s->conn_accepted += obs_get(&c->conn_accepted);
		s->conn_refused += obs_get(&c->conn_refused);
		s->conn_evicted += obs_get(&c->conn_evicted);
		s->conn_reclaimed += obs_get(&c->conn_reclaimed);
		s->conn_frame_timeouts += obs_get(&c->conn_frame_timeouts);
		s->pending += obs_get(&c->pending);
		s->upstream_queries += obs_get(&c->upstream_queries);
	}
}

double obs_uptime(const node_obs_t *o)
{
	return (double)(obs_now_ns() - o->start_mono_ns) / 1e9;
}

int obs_server_setup(node_obs_t *o, node_shared_t *node, worker_t *workers, unsigned n_workers,
                     const conf_t *c, char *err, size_t errlen)
{
	int ret = obs_init(o, node, workers, n_workers, c);
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "cannot set up the counters and statistics: %s",
		         hdl_strerror(ret));
		return ret;
	}
	ret = metrics_open(c, &o->metrics, err, errlen);
	if (ret != HDL_EOK) {
		obs_free(o);
		return ret;
	}
	node->obs = o;
	return HDL_EOK;
}

int obs_server_start(node_obs_t *o, struct event_base *base)
{
	int ret = HDL_EOK;
	if (o->stats)
		ret = stats_start_timer(o->stats, base);
	if (ret == HDL_EOK && o->metrics)
		ret = metrics_start(o->metrics, o);
	return ret;
}

void obs_server_stop(node_obs_t *o)
{
	metrics_close(o->metrics);
	o->metrics = NULL;
	stats_stop_timer(o->stats);
}

void obs_server_finish(node_obs_t *o)
{
	if (o->stats)
		(void)stats_flush(o->stats, true);
	web_cleanup();
	if (o->node)
		o->node->obs = NULL;
	obs_free(o);
}
