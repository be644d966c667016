/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief In-flight upstream queries (dflight.h): sixteen shards, each a mutex over a chained
 *        hash table of flights; a flight holds its key, its leader and a FIFO of followers.
 *        Notifications are decided under the lock and delivered after it is released.
 */
#include "node/resolver/dflight.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/resolver/rhash.h"

#define SHARD_BITS  4u
#define NSHARDS     (1u << SHARD_BITS)
#define BUCKETS_MIN 16u
#define BUCKETS_MAX 65536u

typedef struct dflight_slot {
	struct dflight_slot *hnext;
	uint64_t hash;
	dflight_waiter_t *leader;
	dflight_waiter_t *head, *tail; /* followers, oldest first */
	unsigned n;                    /* followers */
	uint32_t klen;
	uint8_t key[];
} slot_t;

typedef struct fshard {
	_Alignas(64) pthread_mutex_t mu;
	slot_t **b;
	size_t nb;
	uint64_t leaders, followers, refused, left, promoted, failed, answered;
	size_t waiters;
} fshard_t;

struct dflight {
	fshard_t sh[NSHARDS];
	uint64_t key[2];
	_Atomic unsigned max_keys;
	_Atomic unsigned max_waiters;
	_Atomic size_t keys;
};

int dflight_new(unsigned max_keys, unsigned max_waiters, dflight_t **out)
{
	*out = NULL;
	if (max_keys == 0)
		return HDL_EINVAL;
	dflight_t *f = aligned_alloc(64, sizeof(*f));
	if (!f)
		return HDL_ENOMEM;
	memset(f, 0, sizeof(*f));
	rhash_new_key(f->key);
	dflight_set_limits(f, max_keys, max_waiters);
	size_t nb = BUCKETS_MIN;
	while (nb < BUCKETS_MAX && nb * NSHARDS < max_keys)
		nb *= 2;
	for (unsigned i = 0; i < NSHARDS; i++) {
		fshard_t *s = &f->sh[i];
		s->b = calloc(nb, sizeof(*s->b));
		if (!s->b || pthread_mutex_init(&s->mu, NULL) != 0) {
			free(s->b);
			s->b = NULL;
			dflight_free(f);
			return HDL_ENOMEM;
		}
		s->nb = nb;
	}
	*out = f;
	return HDL_EOK;
}

void dflight_free(dflight_t *f)
{
	if (!f)
		return;
	for (unsigned i = 0; i < NSHARDS; i++) {
		fshard_t *s = &f->sh[i];
		if (!s->b)
			break;
		for (size_t j = 0; j < s->nb; j++) {
			slot_t *x = s->b[j];
			while (x) {
				slot_t *next = x->hnext;
				free(x);
				x = next;
			}
		}
		free(s->b);
		pthread_mutex_destroy(&s->mu);
	}
	free(f);
}

void dflight_set_limits(dflight_t *f, unsigned max_keys, unsigned max_waiters)
{
	atomic_store(&f->max_keys, max_keys);
	atomic_store(&f->max_waiters, max_waiters);
}

static slot_t *find(fshard_t *s, const uint8_t *key, size_t klen, uint64_t h)
{
	for (slot_t *x = s->b[h & (s->nb - 1)]; x; x = x->hnext) {
		if (x->hash == h && x->klen == klen && memcmp(x->key, key, klen) == 0)
			return x;
	}
	return NULL;
}

static void slot_unlink(fshard_t *s, slot_t *x)
{
	slot_t **pp = &s->b[x->hash & (s->nb - 1)];
	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
}

static void follower_unlink(slot_t *x, dflight_waiter_t *w)
{
	if (w->prev_)
		w->prev_->next_ = w->next_;
	else
		x->head = w->next_;
	if (w->next_)
		w->next_->prev_ = w->prev_;
	else
		x->tail = w->prev_;
	w->next_ = w->prev_ = NULL;
	x->n--;
}

int dflight_join(dflight_t *f, const uint8_t *key, size_t klen, dflight_waiter_t *w)
{
	if (klen == 0 || klen > DFLIGHT_KEY_MAX || w->slot_)
		return HDL_EINVAL;
	uint64_t h = rhash_sip13(key, klen, f->key);
	unsigned si = (unsigned)(h >> (64 - SHARD_BITS));
	fshard_t *s = &f->sh[si];
	int ret;
	pthread_mutex_lock(&s->mu);
	slot_t *x = find(s, key, klen, h);
	if (x) {
		if (x->n >= atomic_load(&f->max_waiters)) {
			s->refused++;
			ret = HDL_ELIMIT;
			goto out;
		}
		w->next_ = NULL;
		w->prev_ = x->tail;
		if (x->tail)
			x->tail->next_ = w;
		else
			x->head = w;
		x->tail = w;
		x->n++;
		s->waiters++;
		s->followers++;
		ret = DFLIGHT_FOLLOWER;
	} else {
		if (atomic_fetch_add(&f->keys, 1) >= atomic_load(&f->max_keys)) {
			atomic_fetch_sub(&f->keys, 1);
			s->refused++;
			ret = HDL_ELIMIT;
			goto out;
		}
		x = malloc(sizeof(*x) + klen);
		if (!x) {
			atomic_fetch_sub(&f->keys, 1);
			ret = HDL_ENOMEM;
			goto out;
		}
		memset(x, 0, sizeof(*x));
		x->hash = h;
		x->klen = (uint32_t)klen;
		memcpy(x->key, key, klen);
		x->leader = w;
		slot_t **slot = &s->b[h & (s->nb - 1)];
		x->hnext = *slot;
		*slot = x;
		w->next_ = w->prev_ = NULL;
		s->leaders++;
		ret = DFLIGHT_LEADER;
	}
	w->slot_ = x;
	w->shard_ = si;
	w->notified_ = false;
out:
	pthread_mutex_unlock(&s->mu);
	return ret;
}

/*
 * End flight \p x (locked shard \p s): unlink it and its followers, mark them notified and
 * return the list, which the caller notifies after unlocking; then it frees \p x.
 */
static dflight_waiter_t *flight_end(dflight_t *f, fshard_t *s, slot_t *x, bool ok)
{
	dflight_waiter_t *list = x->head;
	slot_unlink(s, x);
	x->leader->slot_ = NULL;
	for (dflight_waiter_t *w = list; w; w = w->next_) {
		w->slot_ = NULL;
		w->notified_ = true;
	}
	if (ok)
		s->answered += x->n;
	else
		s->failed += x->n;
	s->waiters -= x->n;
	atomic_fetch_sub(&f->keys, 1);
	return list;
}

/* Deliver \p r to every waiter of \p list (no lock held); a callback may free its waiter. */
static int notify_all(dflight_waiter_t *list, const dflight_result_t *r)
{
	int n = 0;
	while (list) {
		dflight_waiter_t *next = list->next_;
		list->next_ = list->prev_ = NULL;
		list->done(list, r);
		list = next;
		n++;
	}
	return n;
}

/* Lock the shard of \p leader's flight; NULL (unlocked) when it leads none. */
static slot_t *lead_lock(dflight_t *f, dflight_waiter_t *leader, fshard_t **sp)
{
	fshard_t *s = &f->sh[leader->shard_ % NSHARDS];
	pthread_mutex_lock(&s->mu);
	slot_t *x = leader->slot_;
	if (!x || x->leader != leader) {
		pthread_mutex_unlock(&s->mu);
		return NULL;
	}
	*sp = s;
	return x;
}

int dflight_finish(dflight_t *f, dflight_waiter_t *leader, const dflight_result_t *r)
{
	if (r->status == DFLIGHT_PROMOTED)
		return HDL_EINVAL;
	fshard_t *s;
	slot_t *x = lead_lock(f, leader, &s);
	if (!x)
		return HDL_EINVAL;
	dflight_waiter_t *list = flight_end(f, s, x, r->status == HDL_EOK);
	pthread_mutex_unlock(&s->mu);
	free(x);
	return notify_all(list, r);
}

/* Abandon on the locked shard \p s; unlocks it. */
static void abandon_locked(dflight_t *f, fshard_t *s, slot_t *x, int status)
{
	dflight_waiter_t *leader = x->leader;
	if (status == DFLIGHT_PROMOTED && x->head) {
		dflight_waiter_t *next = x->head;
		follower_unlink(x, next);
		s->waiters--;
		s->promoted++;
		x->leader = next;
		leader->slot_ = NULL;
		next->notified_ = true; /* next->slot_ stays: it leads this flight now */
		pthread_mutex_unlock(&s->mu);
		dflight_result_t r = {.status = DFLIGHT_PROMOTED};
		next->done(next, &r);
		return;
	}
	dflight_waiter_t *list = flight_end(f, s, x, false);
	pthread_mutex_unlock(&s->mu);
	free(x);
	dflight_result_t r = {.status = status == DFLIGHT_PROMOTED ? HDL_EIO : status};
	notify_all(list, &r);
}

int dflight_abandon(dflight_t *f, dflight_waiter_t *leader, int status)
{
	if (status == HDL_EOK)
		return HDL_EINVAL;
	fshard_t *s;
	slot_t *x = lead_lock(f, leader, &s);
	if (!x)
		return HDL_EINVAL;
	abandon_locked(f, s, x, status);
	return HDL_EOK;
}

bool dflight_leave(dflight_t *f, dflight_waiter_t *w)
{
	fshard_t *s = &f->sh[w->shard_ % NSHARDS];
	pthread_mutex_lock(&s->mu);
	slot_t *x = w->slot_;
	bool none_coming = !w->notified_;
	if (!x) {
		pthread_mutex_unlock(&s->mu);
		return none_coming;
	}
	if (x->leader == w) {
		abandon_locked(f, s, x, DFLIGHT_PROMOTED); /* unlocks */
		return none_coming;
	}
	follower_unlink(x, w);
	w->slot_ = NULL;
	s->waiters--;
	s->left++;
	pthread_mutex_unlock(&s->mu);
	return true;
}

void dflight_get_stats(dflight_t *f, dflight_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < NSHARDS; i++) {
		fshard_t *s = &f->sh[i];
		pthread_mutex_lock(&s->mu);
		st->leaders += s->leaders;
		st->followers += s->followers;
		st->refused += s->refused;
		st->left += s->left;
		st->promoted += s->promoted;
		st->failed += s->failed;
		st->answered += s->answered;
		st->waiters += s->waiters;
		pthread_mutex_unlock(&s->mu);
	}
	st->keys = atomic_load(&f->keys);
}
