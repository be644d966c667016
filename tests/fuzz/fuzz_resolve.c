/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: upstream answers fed to the resolution state machine (resolve.h). The
 *        input is a sequence of answers, each `U8 kind, U16 length, bytes`: kind 0 is a whole
 *        message as it came off the wire, kind 1 a response body that gets a well-formed
 *        envelope and header (response code from its first two bytes), so the decoder reaches
 *        values, referrals and HS_SITE records. One client asks for 88.100.2/X (a prefix
 *        handle lookup at the root, sites, referrals ...); every upstream query the engine sends
 *        is answered with the next answer of the input, and once they run out, the clock passes
 *        every deadline. Checks: the client is answered exactly once, with a response code the
 *        resolver may give; an RC 1 answer is a values part that decodes and holds only
 *        PUBLIC_READ values; nothing is left running; no leak (ASan in the replay build).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/dcache.h"
#include "node/resolver/dflight.h"
#include "node/resolver/resolve.h"
#include "node/resolver/upconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct pend {
	ups_cb_t cb;
	void *arg;
	uint32_t rid;
	bool live;
} pend_t;

#define MAX_PEND 16

static uint64_t f_now;
static uint64_t f_armed = UINT64_MAX;
static pend_t f_pend[MAX_PEND];
static int f_answers;
static res_answer_t f_ans;
static uint8_t *f_vals;
static dcache_t *f_dc;
static dflight_t *f_fl;
static res_hold_t *f_hold;
static ups_set_t *f_set;
static res_engine_t *f_e;

static uint64_t now_cb(void *env)
{
	(void)env;
	return f_now;
}

static int query_cb(void *env, const ups_target_t *c, unsigned n, const uint8_t *req, size_t len,
                    uint64_t deadline, uint32_t try_ms, ups_cb_t cb, void *arg, void **qh)
{
	(void)env;
	(void)c;
	(void)n;
	(void)deadline;
	(void)try_ms;
	if (len < HDL_ENVELOPE_LEN)
		abort(); /* the engine always sends a whole message */
	for (unsigned i = 0; i < MAX_PEND; i++) {
		if (!f_pend[i].live) {
			f_pend[i] = (pend_t){cb, arg,
			                     (uint32_t)req[8] << 24 | (uint32_t)req[9] << 16 |
			                         (uint32_t)req[10] << 8 | req[11],
			                     true};
			*qh = &f_pend[i];
			return HDL_EOK;
		}
	}
	return HDL_ELIMIT;
}

static void cancel_cb(void *env, void *qh)
{
	(void)env;
	((pend_t *)qh)->live = false;
}

static void arm_cb(void *env, uint64_t at)
{
	(void)env;
	f_armed = at;
}

static void wake_cb(void *env)
{
	(void)env;
}

static void answer_cb(void *env, res_client_t *c)
{
	(void)env;
	f_answers++;
	f_ans = c->ans;
	free(f_vals);
	f_vals = NULL;
	if (c->ans.vlen) {
		f_vals = malloc(c->ans.vlen);
		if (!f_vals)
			abort();
		memcpy(f_vals, c->ans.vals, c->ans.vlen);
		f_ans.vals = f_vals;
	}
	res_client_release(c);
}

static void setup(void)
{
	static char up[] = "root 10.0.0.1:2641 transport=tcp";
	static char fw[] = "0.NA root";
	static char *ups[] = {up}, *fws[] = {fw};
	conf_t c;
	char err[256];
	memset(&c, 0, sizeof(c));
	c.upstream = ups;
	c.n_upstream = 1;
	c.forward = fws;
	c.n_forward = 1;
	log_set_level(LOG_LVL_ERR);
	dcache_opts_t o = {.max_bytes = 1u << 20,
	                   .policy = {.max_ttl = 86400, .negative_ttl = 60, .stale_max = 3600}};
	if (ups_set_build(&c, &f_set, err, sizeof(err)) != HDL_EOK ||
	    dcache_new(&o, &f_dc) != HDL_EOK || dflight_new(64, 64, &f_fl) != HDL_EOK ||
	    res_hold_new(1024, &f_hold) != HDL_EOK)
		abort();
	static const res_ops_t ops = {now_cb, query_cb, cancel_cb, arm_cb, wake_cb, answer_cb};
	res_conf_t rc;
	res_conf_default(&rc);
	rc.max_jobs = 32;
	res_shared_t sh = {f_set, f_dc, f_fl, f_hold};
	if (res_new(&ops, NULL, &rc, &sh, &f_e) != HDL_EOK)
		abort();
}

/* The next answer of the input as a whole message for request \p rid (in \p out). */
static size_t next_answer(const uint8_t **p, size_t *left, uint32_t rid, uint8_t *out, size_t cap)
{
	if (*left < 3)
		return 0;
	uint8_t kind = (*p)[0];
	size_t n = (size_t)(*p)[1] << 8 | (*p)[2];
	*p += 3;
	*left -= 3;
	if (n > *left)
		n = *left;
	const uint8_t *b = *p;
	*p += n;
	*left -= n;
	if (kind == 0) {
		if (n > cap)
			n = cap;
		memcpy(out, b, n);
		return n;
	}
	uint32_t rc = n >= 2 ? ((uint32_t)b[0] << 8 | b[1]) : 1;
	b += n >= 2 ? 2 : n;
	n -= n >= 2 ? 2 : n;
	size_t mlen = HDL_HEADER_LEN + n + 4;
	if (HDL_ENVELOPE_LEN + mlen > cap)
		return 0;
	uint8_t *o = out;
	memset(o, 0, HDL_ENVELOPE_LEN + HDL_HEADER_LEN);
	o[0] = 2;
	o[1] = 10;
	o[8] = (uint8_t)(rid >> 24);
	o[9] = (uint8_t)(rid >> 16);
	o[10] = (uint8_t)(rid >> 8);
	o[11] = (uint8_t)rid;
	o[16] = (uint8_t)(mlen >> 24);
	o[17] = (uint8_t)(mlen >> 16);
	o[18] = (uint8_t)(mlen >> 8);
	o[19] = (uint8_t)mlen;
	uint8_t *h = o + HDL_ENVELOPE_LEN;
	h[3] = HDL_OC_RESOLUTION;
	h[4] = (uint8_t)(rc >> 24);
	h[5] = (uint8_t)(rc >> 16);
	h[6] = (uint8_t)(rc >> 8);
	h[7] = (uint8_t)rc;
	h[20] = (uint8_t)(n >> 24);
	h[21] = (uint8_t)(n >> 16);
	h[22] = (uint8_t)(n >> 8);
	h[23] = (uint8_t)n;
	memcpy(h + HDL_HEADER_LEN, b, n);
	memset(h + HDL_HEADER_LEN + n, 0, 4);
	return HDL_ENVELOPE_LEN + mlen;
}

static bool valid_rcode(uint32_t rc)
{
	switch (rc) {
	case HDL_RC_SUCCESS:
	case HDL_RC_ERROR:
	case HDL_RC_SERVER_TOO_BUSY:
	case HDL_RC_RECURSION_COUNT_TOO_HIGH:
	case HDL_RC_HANDLE_NOT_FOUND:
	case HDL_RC_INVALID_HANDLE:
	case HDL_RC_VALUES_NOT_FOUND:
	case HDL_RC_SERVER_NOT_RESP: return true;
	default: return false;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t msg[HDL_ENVELOPE_LEN + 65536 + 64];
	if (!f_e)
		setup();
	dcache_flush(f_dc);
	f_now += 100000000; /* far from the last run: no hold, nothing fresh */
	f_answers = 0;
	res_question_t q = {.handle = hdl_slice_str("88.100.2/X"), .opflags = HDL_OF_REC};
	res_client_t c;
	memset(&c, 0, sizeof(c));
	if (res_start(f_e, &q, &c) == RES_DONE) {
		res_client_release(&c);
		return 0;
	}
	const uint8_t *p = data;
	size_t left = size;
	for (unsigned rounds = 0; rounds < 64 && f_answers == 0; rounds++) {
		pend_t *pq = NULL;
		for (unsigned i = 0; i < MAX_PEND && !pq; i++)
			pq = f_pend[i].live ? &f_pend[i] : NULL;
		if (!pq)
			break;
		pq->live = false;
		size_t n = next_answer(&p, &left, pq->rid, msg, sizeof(msg));
		if (n == 0)
			pq->cb(pq->arg, HDL_ETIMEDOUT, NULL, 0);
		else
			pq->cb(pq->arg, HDL_EOK, msg, n);
	}
	/* whatever still waits runs into its deadline */
	for (unsigned rounds = 0; rounds < 16 && f_armed != UINT64_MAX; rounds++) {
		f_now = f_armed > f_now ? f_armed : f_now;
		res_timers(f_e);
	}
	if (f_answers != 1 || c.job_)
		abort();
	if (!valid_rcode(f_ans.rcode))
		abort();
	if (f_ans.rcode == HDL_RC_SUCCESS) {
		hdl_arena_t a;
		hdl_arena_init(&a, NULL, 0, 1u << 24);
		hdl_value_t *v;
		uint32_t nv;
		if (hdl_values_decode(f_ans.vals, f_ans.vlen, &a, &v, &nv) != HDL_EOK)
			abort();
		for (uint32_t i = 0; i < nv; i++) {
			if (!(v[i].perms & HDL_PERM_PUBLIC_READ))
				abort();
		}
		hdl_arena_free(&a);
	}
	res_stats_t st;
	res_get_stats(f_e, &st);
	if (st.running != 0)
		abort();
	for (unsigned i = 0; i < MAX_PEND; i++) {
		if (f_pend[i].live)
			abort();
	}
	free(f_vals);
	f_vals = NULL;
	return 0;
}
