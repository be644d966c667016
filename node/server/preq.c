/* SPDX-License-Identifier: Apache-2.0 */
/* Requests that wait, and each worker's completion queue (see preq.h). */
#include "node/server/preq.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/worker.h"

preq_t *preq_new(worker_t *w, preq_kind_t kind, size_t arena_first, size_t arena_limit)
{
	preq_t *p = calloc(1, sizeof(*p) + arena_first);
	if (!p)
		return NULL;
	p->w = w;
	p->kind = kind;
	p->udp_fd = -1;
	p->started_ms = worker_now_ms();
	hdl_arena_init(&p->arena, (uint8_t *)(p + 1), arena_first, arena_limit);
	p->job.arena = &p->arena;
	p->job.owner = p;
	w->pq.n_live++;
	return p;
}

uint32_t preq_source_hash(const struct sockaddr_storage *ss)
{
	const uint8_t *p = NULL;
	size_t n = 0;
	if (!ss)
		return 0;
	if (ss->ss_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		n = 4;
	} else if (ss->ss_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		n = 8;
	} else {
		return 0;
	}
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h | 1u;
}

bool preq_source_take(worker_t *w, preq_t *p, uint32_t src)
{
	node_limits_t *l = &w->node->limits;
	if (w->pq.n_live > NODE_LIMIT(l, pending_max))
		return false;
	if (!src)
		return true;
	uint16_t *slot = &w->pq.src_count[src % PREQ_SRC_SLOTS];
	if (*slot >= NODE_LIMIT(l, pending_per_source))
		return false;
	(*slot)++;
	p->source_slot = src % PREQ_SRC_SLOTS + 1;
	return true;
}

void preq_free(preq_t *p)
{
	worker_t *w = p->w;
	if (p->release)
		p->release(p);
	if (p->cancelled)
		w->pq.n_cancelled--;
	if (p->source_slot && w->pq.src_count[p->source_slot - 1])
		w->pq.src_count[p->source_slot - 1]--;
	w->pq.n_live--;
	hdl_arena_free(&p->arena);
	free(p);
}

void preq_link(preq_t **head, preq_t *p, void *conn)
{
	p->conn = conn;
	p->cprev = NULL;
	p->cnext = *head;
	if (*head)
		(*head)->cprev = p;
	*head = p;
}

void preq_unlink(preq_t **head, preq_t *p)
{
	if (p->cprev)
		p->cprev->cnext = p->cnext;
	else if (*head == p)
		*head = p->cnext;
	if (p->cnext)
		p->cnext->cprev = p->cprev;
	p->cnext = p->cprev = NULL;
}

void preq_post(preq_t *p)
{
	preq_queue_t *q = &p->w->pq;
	pthread_mutex_lock(&q->mu);
	bool wake = q->head == NULL;
	p->qnext = NULL;
	if (q->tail)
		q->tail->qnext = p;
	else
		q->head = p;
	q->tail = p;
	pthread_mutex_unlock(&q->mu);
	if (wake) {
		uint64_t one = 1;
		/* the counter cannot overflow in practice; EAGAIN would only mean "already woken" */
		if (write(q->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_err("completion queue wake-up: %s", strerror(errno));
	}
}

void preq_cancel(preq_t *p)
{
	p->conn = NULL;
	p->cnext = p->cprev = NULL;
	if (p->inflight) {
		if (!p->cancelled)
			p->w->pq.n_cancelled++;
		p->cancelled = true;
		return;
	}
	preq_free(p);
}

void preq_done(preq_t *p)
{
	preq_free(p);
}

void preq_queue_run(worker_t *w)
{
	preq_queue_t *q = &w->pq;
	uint64_t cnt;
	if (read(q->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN && errno != EINTR)
		log_err("completion queue: %s", strerror(errno));
	pthread_mutex_lock(&q->mu);
	preq_t *list = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mu);
	/* the answers of one connection go out in one write (a group commit finishes many) */
	conn_defer_begin(w);
	while (list) {
		preq_t *p = list;
		list = p->qnext;
		p->qnext = NULL;
		p->inflight = false;
		if (p->cancelled || !p->complete)
			preq_free(p);
		else
			p->complete(p);
	}
	conn_defer_end(w);
}

static void on_queue(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	preq_queue_run(arg);
}

int preq_queue_init(worker_t *w, preq_queue_t *q)
{
	q->head = q->tail = NULL;
	q->n_live = q->n_cancelled = 0;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0)
		return HDL_EIO;
	if (pthread_mutex_init(&q->mu, NULL) != 0) {
		close(q->efd);
		q->efd = -1;
		return HDL_ENOMEM;
	}
	q->ev = event_new(w->base, q->efd, EV_READ | EV_PERSIST, on_queue, w);
	if (!q->ev || event_add(q->ev, NULL) != 0)
		return HDL_ENOMEM;
	return HDL_EOK;
}

void preq_queue_free(preq_queue_t *q)
{
	if (q->efd < 0)
		return;
	if (q->ev)
		event_free(q->ev);
	q->ev = NULL;
	pthread_mutex_lock(&q->mu);
	preq_t *list = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mu);
	while (list) {
		preq_t *p = list;
		list = p->qnext;
		preq_free(p);
	}
	if (q->n_live)
		log_warn("%u waiting request(s) left without an answer at shutdown", q->n_live);
	pthread_mutex_destroy(&q->mu);
	close(q->efd);
	q->efd = -1;
}
