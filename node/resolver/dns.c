/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Per-worker c-ares channel on a libevent base, and the name cache in front of it.
 *
 * c-ares tells us through its socket-state callback which descriptors it wants watched; each gets
 * a persistent event that hands readiness to ares_process_fd(). One timer, re-armed from
 * ares_timeout() after every call into c-ares, drives its retransmissions and timeouts.
 *
 * The cache is a hash table of at most cache_size entries with an LRU list. An entry is empty
 * (being resolved: lookups wait on it), an answer (kept until its TTL, capped at max_ttl_s, runs
 * out) or a failure (kept DNS_NEG_TTL_MS). Entries being resolved are never evicted, so the
 * table size also bounds the lookups in flight.
 */
#include "node/resolver/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/resolver/upstream.h"

typedef enum entry_state {
	E_NEW = 0, /**< just made, nothing asked yet */
	E_PENDING, /**< c-ares lookup running */
	E_OK,      /**< addresses until a.expires_ms */
	E_FAIL,    /**< failure until fail_until_ms */
} entry_state_t;

typedef struct dns_entry dns_entry_t;

struct dns_wait {
	dns_entry_t *e;
	dns_wait_t *prev, *next;
	dns_cb_t cb;
	void *arg;
};

struct dns_entry {
	dns_t *d;
	dns_entry_t *hnext;         /**< hash chain */
	dns_entry_t *lprev, *lnext; /**< LRU list, most recent first */
	entry_state_t state;
	bool starting;  /**< inside ares_getaddrinfo(): an answer now is returned, not notified */
	bool notifying; /**< callbacks running: not to be evicted */
	dns_addrs_t a;
	uint64_t fail_until_ms;
	dns_wait_t *waiters;
	unsigned n_waiters;
	char name[DNS_NAME_MAX + 1];
};

typedef struct fd_watch {
	struct fd_watch *next;
	ares_socket_t fd;
	struct event *ev;
} fd_watch_t;

struct dns {
	struct event_base *base;
	ares_channel ch;
	bool have_ch;
	struct event *timer;
	fd_watch_t *watches;
	dns_entry_t **buckets;
	unsigned nbuckets; /**< power of two */
	unsigned n_entries;
	dns_entry_t *lru_head, *lru_tail;
	dns_conf_t conf;
	dns_stats_t st;
	bool destroying;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_lib_init(void)
{
	ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

bool dns_name_ok(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > DNS_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

/* ---- event plumbing --------------------------------------------------------------------- */

static void timer_update(dns_t *d)
{
	struct timeval tv, *tvp;
	if (d->destroying)
		return;
	tvp = ares_timeout(d->ch, NULL, &tv);
	if (tvp)
		evtimer_add(d->timer, tvp);
	else
		evtimer_del(d->timer);
}

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
	dns_t *d = arg;
	ares_process_fd(d->ch, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
	timer_update(d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	dns_t *d = arg;
	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	timer_update(d);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	dns_t *d = data;
	fd_watch_t **pp = &d->watches, *w;
	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	w = *pp;
	if (!readable && !writable) {
		if (w) {
			*pp = w->next;
			event_free(w->ev);
			free(w);
		}
		return;
	}
	short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	if (w) {
		event_free(w->ev);
	} else {
		if (!(w = calloc(1, sizeof(*w)))) {
			log_err("dns: out of memory watching a c-ares socket");
			return;
		}
		w->fd = fd;
		w->next = d->watches;
		d->watches = w;
	}
	w->ev = event_new(d->base, (evutil_socket_t)fd, what, on_fd, d);
	if (!w->ev || event_add(w->ev, NULL) != 0)
		log_err("dns: cannot watch c-ares socket %d", (int)fd);
}

/* ---- cache ------------------------------------------------------------------------------ */

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c + 32);
		h = (h ^ c) * 16777619u;
	}
	return h;
}

static void lru_unlink(dns_t *d, dns_entry_t *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		d->lru_head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		d->lru_tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_front(dns_t *d, dns_entry_t *e)
{
	if (d->lru_head == e)
		return;
	if (e->lprev || e->lnext || d->lru_tail == e)
		lru_unlink(d, e);
	e->lnext = d->lru_head;
	if (d->lru_head)
		d->lru_head->lprev = e;
	d->lru_head = e;
	if (!d->lru_tail)
		d->lru_tail = e;
}

static dns_entry_t *entry_find(dns_t *d, const char *name)
{
	dns_entry_t *e = d->buckets[name_hash(name) & (d->nbuckets - 1)];
	while (e && strcasecmp(e->name, name) != 0)
		e = e->hnext;
	return e;
}

static void entry_remove(dns_t *d, dns_entry_t *e)
{
	dns_entry_t **pp = &d->buckets[name_hash(e->name) & (d->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(d, e);
	d->n_entries--;
	free(e);
}

/* A new entry for \p name, evicting the least recently used idle one when full. */
static dns_entry_t *entry_new(dns_t *d, const char *name)
{
	if (d->n_entries >= d->conf.cache_size) {
		dns_entry_t *v = d->lru_tail;
		while (v && (v->state == E_PENDING || v->notifying))
			v = v->lprev;
		if (!v)
			return NULL;
		entry_remove(d, v);
	}
	dns_entry_t *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->d = d;
	snprintf(e->name, sizeof(e->name), "%s", name);
	unsigned b = name_hash(name) & (d->nbuckets - 1);
	e->hnext = d->buckets[b];
	d->buckets[b] = e;
	d->n_entries++;
	lru_front(d, e);
	return e;
}

static void entry_store(dns_entry_t *e, int status, struct ares_addrinfo *res)
{
	dns_t *d = e->d;
	uint64_t now = ups_now_ms();
	memset(&e->a, 0, sizeof(e->a));
	if (status == ARES_SUCCESS && res) {
		int ttl = -1;
		for (struct ares_addrinfo_node *n = res->nodes; n && e->a.n < DNS_MAX_ADDRS;
		     n = n->ai_next) {
			if (n->ai_family == AF_INET && n->ai_addr) {
				struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)n->ai_addr;
				e->a.addr[e->a.n].family = AF_INET;
				memcpy(e->a.addr[e->a.n].a, &s4->sin_addr, 4);
			} else if (n->ai_family == AF_INET6 && n->ai_addr) {
				struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)n->ai_addr;
				e->a.addr[e->a.n].family = AF_INET6;
				memcpy(e->a.addr[e->a.n].a, &s6->sin6_addr, 16);
			} else {
				continue;
			}
			e->a.n++;
			if (ttl < 0 || n->ai_ttl < ttl)
				ttl = n->ai_ttl;
		}
		if (ttl < 0)
			ttl = 0;
		if ((uint32_t)ttl > d->conf.max_ttl_s)
			ttl = (int)d->conf.max_ttl_s;
		e->a.ttl_s = (uint32_t)ttl;
		e->a.expires_ms = now + (uint64_t)ttl * 1000u;
	}
	if (e->a.n > 0) {
		e->state = E_OK;
	} else {
		e->state = E_FAIL;
		e->fail_until_ms = now + DNS_NEG_TTL_MS;
		d->st.failures++;
		log_peer(LOG_LVL_WARN, "dns: %s: %s", e->name,
		         status == ARES_SUCCESS ? "no address" : ares_strerror(status));
	}
}

static void entry_notify(dns_entry_t *e)
{
	/* a callback may look the name up again and restart the entry: answer from a snapshot */
	dns_addrs_t a = e->a;
	int status = e->state == E_OK ? HDL_EOK : HDL_EDNS;
	e->notifying = true;
	while (e->waiters) {
		dns_wait_t *w = e->waiters;
		e->waiters = w->next;
		if (e->waiters)
			e->waiters->prev = NULL;
		e->n_waiters--;
		dns_cb_t cb = w->cb;
		void *arg = w->arg;
		free(w);
		cb(arg, status, &a);
	}
	e->notifying = false;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	dns_entry_t *e = arg;
	if (status == ARES_EDESTRUCTION || e->d->destroying) {
		if (res)
			ares_freeaddrinfo(res);
		return;
	}
	entry_store(e, status, res);
	if (res)
		ares_freeaddrinfo(res);
	if (!e->starting)
		entry_notify(e);
}

/* ---- API -------------------------------------------------------------------------------- */

int dns_new(struct event_base *base, const dns_conf_t *conf, dns_t **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!base || !conf || conf->cache_size == 0 || conf->timeout_ms == 0) {
		snprintf(err, errlen, "dns: bad arguments");
		return HDL_EINVAL;
	}
	pthread_once(&ares_once, ares_lib_init);
	if (ares_init_status != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares: %s", ares_strerror(ares_init_status));
		return HDL_EDNS;
	}
	dns_t *d = calloc(1, sizeof(*d));
	if (!d)
		return HDL_ENOMEM;
	d->base = base;
	d->conf = *conf;
	d->conf.servers = NULL;
	d->conf.n_servers = 0;
	d->nbuckets = 16;
	while (d->nbuckets < conf->cache_size && d->nbuckets < (1u << 20))
		d->nbuckets <<= 1;
	d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
	d->timer = evtimer_new(base, on_timer, d);
	if (!d->buckets || !d->timer) {
		dns_free(d);
		return HDL_ENOMEM;
	}

	struct ares_options o;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state_cb;
	o.sock_state_cb_data = d;
	o.timeout = (int)conf->timeout_ms;
	o.tries = 3;
	o.flags = ARES_FLAG_NOSEARCH;
	o.lookups = (char *)"fb";
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
	           ARES_OPT_LOOKUPS;
	int st = ares_init_options(&d->ch, &o, mask);
	if (st != ARES_SUCCESS) {
		snprintf(err, errlen, "dns: c-ares init: %s", ares_strerror(st));
		dns_free(d);
		return st == ARES_ENOMEM ? HDL_ENOMEM : HDL_EDNS;
	}
	d->have_ch = true;
	if (conf->n_servers > 0) {
		char csv[4096];
		size_t used = 0;
		for (unsigned i = 0; i < conf->n_servers; i++) {
			int n = snprintf(csv + used, sizeof(csv) - used, "%s%s", i ? "," : "",
			                 conf->servers[i]);
			if (n < 0 || (size_t)n >= sizeof(csv) - used) {
				snprintf(err, errlen, "dns: server list too long");
				dns_free(d);
				return HDL_EINVAL;
			}
			used += (size_t)n;
		}
		st = ares_set_servers_ports_csv(d->ch, csv);
		if (st != ARES_SUCCESS) {
			snprintf(err, errlen, "dns: servers '%s': %s", csv, ares_strerror(st));
			dns_free(d);
			return HDL_EDNS;
		}
	}
	*out = d;
	return HDL_EOK;
}

void dns_free(dns_t *d)
{
	if (!d)
		return;
	d->destroying = true;
	if (d->have_ch)
		ares_destroy(d->ch); /* callbacks see ARES_EDESTRUCTION; sockets are unwatched */
	while (d->watches) {
		fd_watch_t *w = d->watches;
		d->watches = w->next;
		event_free(w->ev);
		free(w);
	}
	while (d->lru_head) {
		dns_entry_t *e = d->lru_head;
		while (e->waiters) {
			dns_wait_t *w = e->waiters;
			e->waiters = w->next;
			free(w);
		}
		lru_unlink(d, e);
		free(e);
	}
	free(d->buckets);
	if (d->timer)
		event_free(d->timer);
	free(d);
}

int dns_lookup(dns_t *d, const char *name, dns_cb_t cb, void *arg, dns_addrs_t *now, dns_wait_t **w)
{
	*w = NULL;
	if (!dns_name_ok(name))
		return HDL_EINVAL;
	d->st.lookups++;
	uint64_t t = ups_now_ms();
	dns_entry_t *e = entry_find(d, name);
	if (e) {
		lru_front(d, e);
		if (e->state == E_OK && t < e->a.expires_ms) {
			d->st.hits++;
			*now = e->a;
			return 1;
		}
		if (e->state == E_FAIL && t < e->fail_until_ms) {
			d->st.hits++;
			return HDL_EDNS;
		}
	} else if (!(e = entry_new(d, name))) {
		return HDL_ELIMIT;
	}
	if (e->state != E_PENDING) {
		/* start (or restart, the old answer having expired) a c-ares lookup */
		struct ares_addrinfo_hints hints;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_flags = ARES_AI_NOSORT;
		e->state = E_PENDING;
		e->starting = true;
		d->st.queries++;
		ares_getaddrinfo(d->ch, e->name, NULL, &hints, on_addrinfo, e);
		e->starting = false;
		timer_update(d);
		if (e->state == E_OK) {
			*now = e->a;
			return 1;
		}
		if (e->state == E_FAIL)
			return HDL_EDNS;
	}
	if (e->n_waiters >= DNS_MAX_WAITERS)
		return HDL_ELIMIT;
	dns_wait_t *nw = calloc(1, sizeof(*nw));
	if (!nw)
		return HDL_ENOMEM;
	nw->e = e;
	nw->cb = cb;
	nw->arg = arg;
	nw->next = e->waiters;
	if (e->waiters)
		e->waiters->prev = nw;
	e->waiters = nw;
	e->n_waiters++;
	*w = nw;
	return 0;
}

void dns_cancel(dns_wait_t *w)
{
	if (!w)
		return;
	dns_entry_t *e = w->e;
	if (w->prev)
		w->prev->next = w->next;
	else
		e->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	e->n_waiters--;
	free(w);
}

void dns_get_stats(const dns_t *d, dns_stats_t *st)
{
	*st = d->st;
	st->cached = d->n_entries;
}
