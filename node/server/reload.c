/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The reload hook list and the retirement of state workers may still read
 *        (quiescent-state-based reclamation); see reload.h.
 */
#include "node/server/reload.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"

#define SLOT_OFFLINE        UINT64_MAX
#define RETIRE_FULL_WAIT_MS 2000u

typedef struct retired {
	void *p;
	void (*fn)(void *);
	uint64_t epoch; /**< freeable once every slot has seen this epoch */
} retired_t;

/* one cache line per slot: workers store into their own */
typedef struct slot {
	_Atomic uint64_t seen;
	char pad[64 - sizeof(uint64_t)];
} slot_t;

struct reload {
	reload_hook_t hooks[RELOAD_HOOKS_MAX];
	unsigned n_hooks;
	_Atomic uint64_t epoch;
	slot_t *slots;
	unsigned n_slots;
	retired_t retired[RELOAD_RETIRED_MAX];
	unsigned n_retired;
};

int reload_new(unsigned n_workers, reload_t **out)
{
	*out = NULL;
	reload_t *r = calloc(1, sizeof(*r));
	if (!r)
		return HDL_ENOMEM;
	r->slots = calloc(n_workers ? n_workers : 1, sizeof(*r->slots));
	if (!r->slots) {
		free(r);
		return HDL_ENOMEM;
	}
	r->n_slots = n_workers;
	for (unsigned i = 0; i < n_workers; i++)
		atomic_init(&r->slots[i].seen, SLOT_OFFLINE);
	atomic_init(&r->epoch, 1);
	*out = r;
	return HDL_EOK;
}

void reload_free(reload_t *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < r->n_retired; i++)
		r->retired[i].fn(r->retired[i].p);
	free(r->slots);
	free(r);
}

int reload_register(reload_t *r, const reload_hook_t *h)
{
	if (!h || !h->name || (!h->prepare && !h->commit))
		return HDL_EINVAL;
	if (r->n_hooks >= RELOAD_HOOKS_MAX)
		return HDL_ENOMEM;
	/* insertion sort by order; ties keep registration order */
	unsigned at = r->n_hooks;
	while (at > 0 && r->hooks[at - 1].order > h->order) {
		r->hooks[at] = r->hooks[at - 1];
		at--;
	}
	r->hooks[at] = *h;
	r->n_hooks++;
	return HDL_EOK;
}

bool reload_claims(const reload_t *r, const char *key)
{
	for (unsigned i = 0; i < r->n_hooks; i++) {
		for (const char *const *k = r->hooks[i].keys; k && *k; k++) {
			if (strcmp(*k, key) == 0)
				return true;
		}
	}
	return false;
}

/* Append "name" to the comma-separated list \p out. */
static void list_add(char *out, size_t cap, const char *name)
{
	size_t used = strlen(out);
	if (used + 1 >= cap)
		return;
	snprintf(out + used, cap - used, "%s%s", used ? ", " : "", name);
}

/* " +ADDR" for each address of \p b not in \p a (sign '+'), or of \p a not in \p b ('-'). */
static void addr_diff(char *out, size_t cap, char sign, char **a, unsigned na, char **b,
                      unsigned nb)
{
	for (unsigned i = 0; i < nb; i++) {
		bool found = false;
		for (unsigned j = 0; j < na && !found; j++)
			found = strcmp(a[j], b[i]) == 0;
		if (!found) {
			size_t used = strlen(out);
			if (used + 1 < cap)
				snprintf(out + used, cap - used, " %c%s", sign, b[i]);
		}
	}
}

/* Listener addresses that changed since the start and that no hook re-binds (rebind.h does). */
static void listen_changes(const reload_t *r, const conf_t *boot, const conf_t *nc, char *out,
                           size_t cap)
{
	char l[256] = "", h[256] = "";
	if (!reload_claims(r, "listen")) {
		addr_diff(l, sizeof(l), '+', boot->listen, boot->n_listen, nc->listen,
		          nc->n_listen);
		addr_diff(l, sizeof(l), '-', nc->listen, nc->n_listen, boot->listen,
		          boot->n_listen);
	}
	if (!reload_claims(r, "http")) {
		addr_diff(h, sizeof(h), '+', boot->http, boot->n_http, nc->http, nc->n_http);
		addr_diff(h, sizeof(h), '-', nc->http, nc->n_http, boot->http, boot->n_http);
	}
	out[0] = '\0';
	if (l[0] && h[0])
		snprintf(out, cap, "listen%s; http%s", l, h);
	else if (l[0])
		snprintf(out, cap, "listen%s", l);
	else if (h[0])
		snprintf(out, cap, "http%s", h);
}

int reload_apply(reload_t *r, const conf_t *boot, const conf_t *old, const conf_t *nc,
                 reload_result_t *res)
{
	void *staged[RELOAD_HOOKS_MAX] = {0};
	char why[400];
	memset(res, 0, sizeof(*res));

	/* what changed and applies only at the next start */
	size_t n_schema;
	const conf_key_t *schema = conf_schema(&n_schema);
	for (size_t i = 0; i < n_schema; i++) {
		const conf_key_t *k = &schema[i];
		if (k->reloadable || conf_key_equal(boot, nc, k) || reload_claims(r, k->name))
			continue;
		list_add(res->restart, sizeof(res->restart), k->name);
	}
	listen_changes(r, boot, nc, res->listen, sizeof(res->listen));

	for (unsigned i = 0; i < r->n_hooks; i++) {
		const reload_hook_t *h = &r->hooks[i];
		if (!h->prepare)
			continue;
		why[0] = '\0';
		int ret = h->prepare(h->arg, old, nc, &staged[i], why, sizeof(why));
		if (ret == HDL_EOK)
			continue;
		snprintf(res->error, sizeof(res->error), "%s: %s", h->name,
		         why[0] ? why : hdl_strerror(ret));
		for (unsigned j = 0; j <= i; j++) {
			if (r->hooks[j].discard && staged[j])
				r->hooks[j].discard(r->hooks[j].arg, staged[j]);
		}
		return ret;
	}
	for (unsigned i = 0; i < r->n_hooks; i++) {
		const reload_hook_t *h = &r->hooks[i];
		if (h->commit)
			h->commit(h->arg, nc, staged[i]);
	}
	res->hooks = r->n_hooks;
	return HDL_EOK;
}

/* ---- retirement ------------------------------------------------------------------------------ */

static uint64_t min_seen(const reload_t *r)
{
	uint64_t m = SLOT_OFFLINE;
	for (unsigned i = 0; i < r->n_slots; i++) {
		uint64_t s = atomic_load_explicit(&r->slots[i].seen, memory_order_acquire);
		if (s < m)
			m = s;
	}
	return m;
}

unsigned reload_reclaim(reload_t *r)
{
	uint64_t m = min_seen(r);
	unsigned keep = 0;
	for (unsigned i = 0; i < r->n_retired; i++) {
		if (r->retired[i].epoch <= m)
			r->retired[i].fn(r->retired[i].p);
		else
			r->retired[keep++] = r->retired[i];
	}
	r->n_retired = keep;
	return keep;
}

void reload_retire(reload_t *r, void *p, void (*fn)(void *))
{
	if (!p)
		return;
	/* readers that loaded the old pointer before this bump have not yet seen the new epoch */
	uint64_t e = atomic_fetch_add_explicit(&r->epoch, 1, memory_order_seq_cst) + 1;
	if (r->n_retired >= RELOAD_RETIRED_MAX) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		for (unsigned waited = 0; waited < RETIRE_FULL_WAIT_MS && reload_reclaim(r) > 0;
		     waited += 10)
			nanosleep(&ts, NULL);
		if (r->n_retired >= RELOAD_RETIRED_MAX) {
			log_warn(
			    "reload: %u retired objects wait for a stalled worker; freeing the "
			    "oldest early",
			    r->n_retired);
			r->retired[0].fn(r->retired[0].p);
			memmove(&r->retired[0], &r->retired[1],
			        sizeof(r->retired[0]) * (r->n_retired - 1));
			r->n_retired--;
		}
	}
	r->retired[r->n_retired++] = (retired_t){p, fn, e};
	(void)reload_reclaim(r);
}

void reload_quiescent(reload_t *r, unsigned slot)
{
	if (!r || slot >= r->n_slots)
		return;
	uint64_t e = atomic_load_explicit(&r->epoch, memory_order_seq_cst);
	atomic_store_explicit(&r->slots[slot].seen, e, memory_order_seq_cst);
}

void reload_offline(reload_t *r, unsigned slot)
{
	if (r && slot < r->n_slots)
		atomic_store_explicit(&r->slots[slot].seen, SLOT_OFFLINE, memory_order_release);
}
