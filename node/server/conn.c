/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Stream connections of a worker: accept with the node-wide limits, idle eviction,
 *        scratch and owned buffers under the node's buffer budget, back-pressure, timers,
 *        lingering close and the shutdown drain (see conn.h).
 */
#define _GNU_SOURCE
#include "node/server/conn.h"

#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/rebind.h"
#include "node/server/tls.h"
#include "node/server/worker.h"

#define ACCEPT_PAUSE_MS 100u
#define ACCEPT_BATCH    64u /**< accepts per wakeup, so other events get their turn */
#define WAIT_SCAN       64u /**< waiting connections compared for the least busy source */
#define EVICT_SCAN      64u /**< idle connections looked at for one of a given source */
#define EVICT_ON_EMFILE 16u /**< idle connections closed when out of descriptors */
#define OBUF_KEEP       (256u * 1024u) /**< output scratch kept between passes */
#define IN_MIN          4096u          /**< smallest owned input buffer for a partial request */
#define DEFER_ACCEPT_S  1 /**< TCP_DEFER_ACCEPT: a silent connection is handed over after ~1 s */

enum { L_NONE = 0, L_IDLE = 1, L_WAIT = 2, L_MORE = 3 };

/* What a listener's connections speak at the byte level. */
enum { LIS_PLAIN = 0, LIS_TLS = 1, LIS_UNIFIED = 2 };

struct conn_listener {
	worker_t *w;
	const conn_proto_t *proto;
	int fd;
	uint8_t tls_mode; /**< LIS_* */
	uint8_t kind;     /**< conn_lis_kind_t */
	struct event *ev; /**< EV_READ | EV_PERSIST on the listening socket */
	struct conn_listener *next;
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void conn_readable(conn_t *c);
static bool write_arm(conn_t *c, bool on);

/* ---- accounting ------------------------------------------------------------------------------ */

static connlimit_t *node_cl(const worker_t *w)
{
	return w->node->conns;
}

static bool over_budget(const worker_t *w)
{
	return connlimit_mem(node_cl(w)) > NODE_LIMIT(&w->node->limits, conn_buffer_budget);
}

/* 7/8 of the budget: past it, connections that do not read their answers are closed. */
static size_t budget_high(const worker_t *w)
{
	size_t budget = NODE_LIMIT(&w->node->limits, conn_buffer_budget);
	return budget - budget / 8;
}

/*
 * Owned buffers: below a page from malloc, in power-of-two sizes (freed blocks fit the next
 * one); a page and more mapped directly (mmap, mremap, munmap), so they never fragment the
 * allocator's heaps under churn and their memory is back with the system the moment they are
 * freed. Owned buffers are the slow path (leftovers, back-pressure): the system calls are cheap
 * there.
 */
#define PAGE 4096u

static size_t size_class(size_t n)
{
	if (n >= PAGE)
		return (n + PAGE - 1) & ~(size_t)(PAGE - 1);
	size_t c = 256;
	while (c < n)
		c *= 2;
	return c;
}

static uint8_t *mem_resize(uint8_t *p, size_t old, size_t want)
{
	if (want < PAGE && old < PAGE)
		return realloc(p, want);
	uint8_t *np;
	if (want >= PAGE && old >= PAGE) {
		np = mremap(p, old, want, MREMAP_MAYMOVE);
		return np == MAP_FAILED ? NULL : np;
	}
	if (want >= PAGE) {
		np = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (np == MAP_FAILED)
			return NULL;
	} else if ((np = malloc(want)) == NULL) {
		return NULL;
	}
	if (p)
		memcpy(np, p, old < want ? old : want);
	if (old >= PAGE)
		munmap(p, old);
	else
		free(p);
	return np;
}

/* Resize an owned buffer to hold \p want bytes (0 frees it), charging the difference. */
static bool buf_resize(conn_t *c, uint8_t **p, size_t *cap, size_t want)
{
	connlimit_t *cl = node_cl(c->w);
	if (want)
		want = size_class(want);
	if (want == *cap)
		return true;
	if (want == 0) {
		if (*cap >= PAGE)
			munmap(*p, *cap);
		else
			free(*p);
		connlimit_mem_sub(cl, *cap);
		*p = NULL;
		*cap = 0;
		return true;
	}
	uint8_t *np = mem_resize(*p, *cap, want);
	if (!np)
		return false;
	if (want > *cap)
		connlimit_mem_add(cl, want - *cap);
	else
		connlimit_mem_sub(cl, *cap - want);
	*p = np;
	*cap = want;
	return true;
}

/* ---- lists ---------------------------------------------------------------------------------- */

/* The head and tail of list \p which. */
static void list_ends(conn_worker_t *cw, uint8_t which, conn_t ***head, conn_t ***tail)
{
	*head = which == L_IDLE   ? &cw->idle_head
	        : which == L_WAIT ? &cw->wait_head
	                          : &cw->more_head;
	*tail = which == L_IDLE   ? &cw->idle_tail
	        : which == L_WAIT ? &cw->wait_tail
	                          : &cw->more_tail;
}

static void list_unlink(conn_t *c)
{
	conn_worker_t *cw = &c->w->cw;
	if (c->list == L_NONE)
		return;
	conn_t **head, **tail;
	list_ends(cw, c->list, &head, &tail);
	if (c->lprev)
		c->lprev->lnext = c->lnext;
	else
		*head = c->lnext;
	if (c->lnext)
		c->lnext->lprev = c->lprev;
	else
		*tail = c->lprev;
	c->lprev = c->lnext = NULL;
	c->list = L_NONE;
}

static void list_append(conn_t *c, uint8_t which)
{
	conn_worker_t *cw = &c->w->cw;
	list_unlink(c);
	conn_t **head, **tail;
	list_ends(cw, which, &head, &tail);
	c->lprev = *tail;
	c->lnext = NULL;
	if (*tail)
		(*tail)->lnext = c;
	else
		*head = c;
	*tail = c;
	c->list = which;
	c->since_ms = worker_now_ms();
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static void conn_free(conn_t *c)
{
	worker_t *w = c->w;
	conn_worker_t *cw = &w->cw;
	while (c->waiting) {
		preq_t *p = c->waiting;
		preq_unlink(&c->waiting, p);
		preq_cancel(p);
	}
	conn_auth_clear(&c->auth);
	list_unlink(c);
	if (c->deferred) {
		conn_t **pp = &cw->defer_head;
		while (*pp && *pp != c)
			pp = &(*pp)->dnext;
		if (*pp)
			*pp = c->dnext;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		cw->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	cw->n--;
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->ssl) {
		if (c->tls == CONN_TLS_UP && !c->tls_dead)
			tls_io_shutdown(c->ssl); /* close_notify: the answers before it are whole */
		tls_io_free(c->ssl);
	}
	close(c->fd);
	buf_resize(c, &c->in, &c->in_cap, 0);
	buf_resize(c, &c->out, &c->out_cap, 0);
	connlimit_put(node_cl(w), &c->src);
	free(c);
}

/* The deadline of c->frame_ms: the TLS handshake's until it is done, else the frame timer. */
static uint32_t frame_limit_ms(const conn_t *c)
{
	const node_limits_t *l = &c->w->node->limits;
	if (c->tls == CONN_TLS_SNIFF || c->tls == CONN_TLS_HANDSHAKE)
		return NODE_LIMIT(l, tls_handshake_timeout_ms);
	return NODE_LIMIT(l, tcp_frame_timeout_ms);
}

/* Add the read event with the idle timeout, or with what is left of the frame deadline. */
static bool read_arm(conn_t *c)
{
	worker_t *w = c->w;
	if (!c->rev) {
		c->rev = event_new(w->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
		if (!c->rev)
			return false;
	}
	if (c->frame_ms) {
		uint64_t now = worker_now_ms(), end = c->frame_ms + frame_limit_ms(c);
		uint64_t left = end > now ? end - now : 1;
		struct timeval tv = {(time_t)(left / 1000u), (suseconds_t)((left % 1000u) * 1000u)};
		if (event_add(c->rev, &tv) != 0)
			return false;
		c->rev_frame = true;
	} else if (!c->reading || c->rev_frame) {
		if (event_add(c->rev, w->cw.idle_tv) != 0)
			return false;
		c->rev_frame = false;
	}
	c->reading = true;
	if (c->ssl && c->tls == CONN_TLS_UP && tls_io_pending(c->ssl))
		event_active(c->rev, EV_READ, 0); /* plaintext already inside the SSL */
	return true;
}

static void read_stop(conn_t *c)
{
	if (c->reading)
		event_del(c->rev);
	c->reading = false;
}

static bool write_arm(conn_t *c, bool on)
{
	if (on == c->writing)
		return true;
	if (on) {
		if (!c->wev) {
			c->wev = event_new(c->w->base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
			if (!c->wev)
				return false;
		}
		if (event_add(c->wev, c->w->cw.idle_tv) != 0)
			return false;
	} else {
		event_del(c->wev);
	}
	c->writing = on;
	return true;
}

/*
 * We close first while the peer may still be sending: closing at once would answer its unread
 * bytes with a RST that can destroy our last answers in flight; so the write side is shut and
 * input is discarded until EOF, CONN_LINGER_MS or CONN_LINGER_MAX bytes.
 */
static void linger_start(conn_t *c)
{
	list_unlink(c);
	buf_resize(c, &c->in, &c->in_cap, 0);
	c->in_len = 0;
	c->lingering = true;
	c->frame_ms = 0;
	if (c->ssl && c->tls == CONN_TLS_UP && !c->tls_dead)
		tls_io_shutdown(c->ssl);
	(void)shutdown(c->fd, SHUT_WR);
	if (!c->rev)
		c->rev = event_new(c->w->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	struct timeval tv = {CONN_LINGER_MS / 1000u, (CONN_LINGER_MS % 1000u) * 1000u};
	if (!c->rev || event_add(c->rev, &tv) != 0) {
		conn_free(c);
		return;
	}
	c->reading = true;
}

static void linger_read(conn_t *c)
{
	ssize_t n = read(c->fd, c->w->cw.rbuf, CONN_RBUF);
	if (n > 0)
		c->discarded += (size_t)n;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
	    c->discarded > CONN_LINGER_MAX)
		conn_free(c);
}

/* ---- output --------------------------------------------------------------------------------- */

hdl_buf_t *conn_out(conn_t *c)
{
	return &c->w->cw.obuf;
}

bool conn_is_tls(const conn_t *c)
{
	return c->ssl != NULL;
}

bool conn_out_full(const conn_t *c)
{
	const worker_t *w = c->w;
	size_t pending = c->out_len - c->out_off + w->cw.obuf.len;
	return pending >= NODE_LIMIT(&w->node->limits, tcp_buffer_max) ||
	       w->cw.obuf.len >= CONN_PASS_MAX || over_budget(w);
}

static void tick_start(worker_t *w);

/* Keep \p n bytes of output the socket did not take. */
static bool out_keep(conn_t *c, const uint8_t *p, size_t n)
{
	size_t have = c->out_len - c->out_off;
	if (c->out_off && have)
		memmove(c->out, c->out + c->out_off, have);
	c->out_off = 0;
	c->out_len = have;
	if (have + n > c->out_cap && !buf_resize(c, &c->out, &c->out_cap, have + n))
		return false;
	memcpy(c->out + have, p, n);
	c->out_len = have + n;
	return true;
}

/* write(2), or SSL_write on a TLS connection (errno EAGAIN when it waits). */
static ssize_t conn_send(conn_t *c, const uint8_t *p, size_t len)
{
	if (!c->ssl)
		return write(c->fd, p, len);
	size_t n = 0;
	switch (tls_io_write(c->ssl, p, len, &n)) {
	case TLS_IO_OK: return (ssize_t)n;
	case TLS_IO_WANT_WRITE: errno = EAGAIN; return -1;
	default: {
		/* WANT_READ cannot happen without renegotiation (refused): count it as an error */
		char why[160];
		log_debug("%s: TLS write: %s", c->proto->name, tls_io_reason(why, sizeof(why)));
		c->tls_dead = true;
		errno = EPIPE;
		return -1;
	}
	}
}

/*
 * read(2), or SSL_read on a TLS connection, filling \p buf as far as the SSL has records (a
 * record is at most 16 KiB): 0 at EOF, -1 with errno EAGAIN when nothing is there yet.
 */
static ssize_t conn_recv(conn_t *c, uint8_t *buf, size_t room)
{
	if (!c->ssl)
		return read(c->fd, buf, room);
	size_t got = 0;
	while (got < room) {
		size_t n = 0;
		tls_io_t r = tls_io_read(c->ssl, buf + got, room - got, &n);
		if (r == TLS_IO_OK) {
			got += n;
			continue;
		}
		if (r == TLS_IO_WANT_WRITE) {
			c->tls_rd_wants_write = true; /* on_write reads again */
			(void)write_arm(c, true);
		} else if (r == TLS_IO_EOF) {
			if (got == 0)
				return 0;
		} else if (r == TLS_IO_ERROR) {
			if (got == 0) {
				char why[160];
				log_debug("%s: TLS read: %s", c->proto->name,
				          tls_io_reason(why, sizeof(why)));
				c->tls_dead = true;
				errno = EIO;
				return -1;
			}
		}
		break;
	}
	if (got == 0) {
		errno = EAGAIN;
		return -1;
	}
	return (ssize_t)got;
}

/* Write p[*off..len) until done or EAGAIN. \return false on a write error. */
static bool write_some(conn_t *c, const uint8_t *p, size_t len, size_t *off, bool *moved)
{
	while (*off < len) {
		ssize_t n = conn_send(c, p + *off, len - *off);
		if (n > 0) {
			*off += (size_t)n;
			*moved = true;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return true;
		} else {
			log_debug("%s: write: %s", c->proto->name, strerror(errno));
			return false;
		}
	}
	return true;
}

/* Write the answers of this pass and what was pending. \return false when \p c was freed. */
static bool out_flush(conn_t *c)
{
	conn_worker_t *cw = &c->w->cw;
	hdl_buf_t *ob = &cw->obuf;
	bool moved = false;
	if (ob->fail) {
		log_err("%s: out of memory for an answer, closing", c->proto->name);
		ob->len = 0;
		ob->fail = false;
		conn_free(c);
		return false;
	}
	if (ob->len) {
		size_t off = 0;
		/* nothing queued before: straight from the scratch buffer */
		bool ok = c->out_len != c->out_off || write_some(c, ob->p, ob->len, &off, &moved);
		const char *why = ok ? "out of memory for pending output" : NULL;
		ok = ok && (off == ob->len || out_keep(c, ob->p + off, ob->len - off));
		ob->len = 0;
		if (ob->cap > OBUF_KEEP)
			hdl_buf_free(ob); /* one big pass: do not keep its memory */
		if (!ok) {
			if (why)
				log_err("%s: %s, closing", c->proto->name, why);
			conn_free(c);
			return false;
		}
	}
	if (!write_some(c, c->out, c->out_len, &c->out_off, &moved)) {
		conn_free(c);
		return false;
	}
	if (c->out_off < c->out_len) {
		if (moved || !c->stall_ms)
			c->stall_ms = worker_now_ms();
		if (!write_arm(c, true)) {
			conn_free(c);
			return false;
		}
		if (connlimit_mem(node_cl(c->w)) > budget_high(c->w))
			tick_start(c->w);
		return true;
	}
	c->out_off = c->out_len = 0;
	c->stall_ms = 0;
	buf_resize(c, &c->out, &c->out_cap, 0);
	write_arm(c, c->tls_rd_wants_write);
	return true;
}

/* ---- input ---------------------------------------------------------------------------------- */

/* Make room in the owned input for more of a partial request. */
static bool in_grow(conn_t *c)
{
	size_t max = c->proto->in_max(c->w);
	if (max < c->in_cap)
		max = c->in_cap;
	size_t cap = c->in_cap < IN_MIN / 2 ? IN_MIN : c->in_cap * 2;
	if (cap > max)
		cap = max;
	return cap > c->in_cap && buf_resize(c, &c->in, &c->in_cap, cap);
}

/*
 * Hand p[0..len) to the protocol and keep what it did not consume: \p scratch says p is the
 * worker's read buffer (else it is c->in). \return false when out of memory (caller closes).
 */
static bool take_input(conn_t *c, const uint8_t *p, size_t len, bool scratch)
{
	c->partial = false;
	size_t used = len ? c->proto->process(c, p, len) : 0;
	size_t rest = len - used;
	if (c->closing) {
		if (rest || !c->drained)
			c->linger = true; /* the peer may still be sending */
		rest = 0;
		c->partial = false;
	} else if (c->peer_eof && c->partial) {
		rest = 0; /* the peer half-closed: this request can never complete */
		c->partial = false;
	}
	if (!scratch) {
		if (used && rest)
			memmove(c->in, c->in + used, rest);
		c->in_len = rest;
		if (rest == 0)
			return buf_resize(c, &c->in, &c->in_cap, 0);
		if (c->in_cap > 4 * IN_MIN && rest < c->in_cap / 4)
			(void)buf_resize(c, &c->in, &c->in_cap,
			                 rest < IN_MIN / 2 ? IN_MIN : rest * 2);
		return true;
	}
	if (rest == 0)
		return true;
	/* a partial request will grow: leave room; whole requests waiting need only their bytes */
	size_t cap = c->partial ? (rest < IN_MIN / 2 ? IN_MIN : rest * 2) : rest;
	size_t max = c->proto->in_max(c->w);
	if (c->partial && cap > max)
		cap = max > rest ? max : rest;
	if (!buf_resize(c, &c->in, &c->in_cap, cap))
		return false;
	memcpy(c->in, p + used, rest);
	c->in_len = rest;
	return true;
}

static void conn_wait(conn_t *c)
{
	read_stop(c);
	list_append(c, L_WAIT);
	tick_start(c->w);
}

/*
 * The node stops reading \p c for its own reasons (back-pressure, the buffer budget, an answer
 * awaited, the others' turn): a partial request in the input is not the peer's delay, so its
 * frame timer starts again when reading resumes (the TLS handshake's deadline stays).
 */
static void frame_pause(conn_t *c)
{
	if (c->tls != CONN_TLS_SNIFF && c->tls != CONN_TLS_HANDSHAKE)
		c->frame_ms = 0;
}

/*
 * After a read or a write: write what is pending and decide what the connection waits for
 * next (reading, writing, the budget, closing, idle).
 */
static void conn_after(conn_t *c)
{
	worker_t *w = c->w;
	if (!out_flush(c))
		return;
	bool pending = c->out_len > c->out_off;
	if (c->closing || (c->peer_eof && c->in_len == 0)) {
		c->closing = true;
		c->frame_ms = 0;
		read_stop(c);
		if (pending || c->n_waiting)
			return; /* on_write comes back */
		if (c->linger && !c->peer_eof && !w->stopping)
			linger_start(c);
		else
			conn_free(c);
		return;
	}
	bool backlog = c->in_len && !c->partial; /* whole requests not answered yet */
	if (c->blocked) {
		/* input waits until an answer comes back (conn_resume) */
		frame_pause(c);
		read_stop(c);
		list_unlink(c);
		return;
	}
	if (pending && (backlog || c->peer_eof || conn_out_full(c))) {
		frame_pause(c);
		read_stop(c); /* back-pressure: on_write goes on once the peer took its answers */
		list_unlink(c);
		return;
	}
	if (backlog) {
		frame_pause(c);
		if (over_budget(w)) {
			conn_wait(c); /* stopped by the buffer budget */
			return;
		}
		/* stopped at CONN_PASS_MAX: the others' turn first, then go on */
		read_stop(c);
		list_append(c, L_MORE);
		if (!evtimer_pending(w->cw.more_ev, NULL)) {
			struct timeval zero = {0, 0};
			evtimer_add(w->cw.more_ev, &zero);
		}
		return;
	}
	if (!c->partial) {
		c->frame_ms = 0;
	} else if (!c->frame_ms) {
		c->frame_ms = worker_now_ms();
	} else if (worker_now_ms() - c->frame_ms >= frame_limit_ms(c)) {
		w->cw.n_frame_timeouts++;
		log_peer(LOG_LVL_INFO, "%s: request not complete after %u ms, closing",
		         c->proto->name, frame_limit_ms(c));
		conn_free(c);
		return;
	}
	if (!read_arm(c)) {
		conn_free(c);
		return;
	}
	if (!pending && c->in_len == 0 && c->n_waiting == 0) {
		if (w->stopping) {
			conn_free(c); /* drain: everything it sent is answered */
			return;
		}
		list_append(c, L_IDLE);
	} else {
		list_unlink(c);
	}
}

/* ---- TLS -------------------------------------------------------------------------------- */

/* Make the connection's SSL. \return false when it cannot (TLS off, out of memory). */
static bool tls_begin(conn_t *c)
{
	tls_kind_t kind = c->proto == &tcp_proto ? TLS_KIND_STREAM : TLS_KIND_HTTP;
	c->ssl = tls_accept(c->w->node->tls, kind, c->fd);
	if (c->ssl)
		return true;
	char s[64];
	conn_src_format(&c->src, s, sizeof(s));
	if (tls_server_on(c->w->node->tls))
		log_peer(LOG_LVL_NOTICE, "%s: TLS from %s refused: out of memory", c->proto->name,
		         s);
	else
		log_peer(LOG_LVL_INFO,
		         "%s: TLS handshake from %s on a plain port (no tls_cert loaded), closing",
		         c->proto->name, s);
	return false;
}

/* Wait for the socket during the handshake (the read event carries its deadline). */
static void tls_wait(conn_t *c, bool want_write)
{
	c->tls_rd_wants_write = want_write;
	if (!write_arm(c, want_write) || !read_arm(c))
		conn_free(c);
}

/*
 * Port unification and the handshake: look at the first byte (unified ports), then drive the
 * handshake as far as the socket allows. Once it is done the connection is read as any other.
 */
static void tls_step(conn_t *c)
{
	conn_worker_t *cw = &c->w->cw;
	char s[64], why[160];
	if (c->tls == CONN_TLS_SNIFF) {
		uint8_t b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			tls_wait(c, false);
			return;
		}
		if (n <= 0) {
			conn_free(c);
			return;
		}
		if (b != 0x16) {
			/* not a TLS handshake record: plain HTTP on the unified port */
			c->tls = CONN_TLS_NONE;
			conn_readable(c);
			return;
		}
		if (!tls_begin(c)) {
			conn_free(c);
			return;
		}
		c->tls = CONN_TLS_HANDSHAKE;
		c->frame_ms = worker_now_ms(); /* the handshake is due within its timeout */
	}
	switch (tls_io_handshake(c->ssl)) {
	case TLS_IO_OK:
		c->tls = CONN_TLS_UP;
		c->frame_ms = 0;
		c->tls_rd_wants_write = false;
		cw->n_tls_handshakes++;
		if (tls_io_resumed(c->ssl))
			cw->n_tls_resumed++;
		if (!write_arm(c, false)) {
			conn_free(c);
			return;
		}
		conn_readable(c); /* the first request may have come with the handshake's end */
		return;
	case TLS_IO_WANT_READ: tls_wait(c, false); return;
	case TLS_IO_WANT_WRITE: tls_wait(c, true); return;
	default:
		cw->n_tls_failed++;
		conn_src_format(&c->src, s, sizeof(s));
		log_peer(LOG_LVL_INFO, "%s: TLS handshake from %s failed: %s, closing",
		         c->proto->name, s, tls_io_reason(why, sizeof(why)));
		c->tls_dead = true;
		conn_free(c);
		return;
	}
}

/* The socket is readable, or the connection was just accepted (TCP_DEFER_ACCEPT: data is in). */
static void conn_readable(conn_t *c)
{
	worker_t *w = c->w;
	conn_worker_t *cw = &w->cw;
	if (c->lingering) {
		linger_read(c);
		return;
	}
	if (c->tls == CONN_TLS_SNIFF || c->tls == CONN_TLS_HANDSHAKE) {
		tls_step(c);
		return;
	}
	if (over_budget(w)) {
		conn_wait(c);
		return;
	}
	list_unlink(c);
	bool scratch = c->in_len == 0;
	if (!scratch && c->in_len == c->in_cap && !in_grow(c)) {
		log_peer(LOG_LVL_INFO, "%s: request over the size limit, closing", c->proto->name);
		conn_free(c);
		return;
	}
	uint8_t *buf = scratch ? cw->rbuf : c->in + c->in_len;
	size_t room = scratch ? CONN_RBUF : c->in_cap - c->in_len;
	ssize_t n = conn_recv(c, buf, room);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			c->drained = true;
			conn_after(c);
			return;
		}
		log_debug("%s: read: %s", c->proto->name, strerror(errno));
		conn_free(c);
		return;
	}
	bool ok;
	if (n == 0) {
		/* half-closed: answer the whole requests still buffered, then close */
		c->peer_eof = true;
		c->drained = true;
		ok = take_input(c, c->in, c->in_len, false);
	} else {
		c->drained = (size_t)n < room;
		if (scratch) {
			ok = take_input(c, buf, (size_t)n, true);
		} else {
			c->in_len += (size_t)n;
			ok = take_input(c, c->in, c->in_len, false);
		}
	}
	if (!ok) {
		log_err("%s: out of memory for input, closing", c->proto->name);
		conn_free(c);
		return;
	}
	conn_after(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	conn_t *c = arg;
	(void)fd;
	if ((what & EV_TIMEOUT) && !(what & EV_READ)) {
		worker_t *w = c->w;
		if (c->lingering) {
			conn_free(c);
		} else if (c->frame_ms && worker_now_ms() - c->frame_ms >= frame_limit_ms(c) &&
		           (c->tls == CONN_TLS_SNIFF || c->tls == CONN_TLS_HANDSHAKE)) {
			w->cw.n_tls_timeouts++;
			char s[64];
			conn_src_format(&c->src, s, sizeof(s));
			log_peer(LOG_LVL_INFO,
			         "%s: TLS handshake from %s not done after %u ms, closing",
			         c->proto->name, s, frame_limit_ms(c));
			conn_free(c);
		} else if (c->frame_ms && worker_now_ms() - c->frame_ms >= frame_limit_ms(c)) {
			w->cw.n_frame_timeouts++;
			log_peer(LOG_LVL_INFO, "%s: request not complete after %u ms, closing",
			         c->proto->name, frame_limit_ms(c));
			conn_free(c);
		} else if (c->frame_ms || c->out_len > c->out_off || c->n_waiting) {
			/* not idle: a raised frame limit, or answers still going out (the write
			 * side has its own timeout) */
			c->reading = false;
			if (!read_arm(c))
				conn_free(c);
		} else {
			log_debug("%s: idle timeout, closing", c->proto->name);
			conn_free(c);
		}
		return;
	}
	conn_readable(c);
}

void conn_resume(conn_t *c)
{
	conn_worker_t *cw = &c->w->cw;
	hdl_buf_t *ob = &cw->obuf;
	if (!cw->deferring || ob->fail) {
		conn_after(c);
		return;
	}
	/* keep the answer with the connection; conn_defer_end() writes them all at once */
	if (ob->len && !out_keep(c, ob->p, ob->len)) {
		ob->len = 0;
		log_err("%s: out of memory for pending output, closing", c->proto->name);
		conn_free(c);
		return;
	}
	ob->len = 0;
	if (!c->deferred) {
		c->deferred = true;
		c->dnext = cw->defer_head;
		cw->defer_head = c;
	}
}

void conn_defer_begin(worker_t *w)
{
	w->cw.deferring = true;
}

void conn_defer_end(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	cw->deferring = false;
	while (cw->defer_head) {
		conn_t *c = cw->defer_head;
		cw->defer_head = c->dnext;
		c->dnext = NULL;
		c->deferred = false;
		conn_after(c);
	}
}

/* The output drained or the budget has room again: go on where the connection stopped. */
static void conn_continue(conn_t *c)
{
	list_unlink(c);
	if (c->on_drain) {
		preq_t *p = c->on_drain;
		c->on_drain = NULL;
		p->inflight = true;
		preq_post(p);
	}
	if (c->blocked) {
		conn_after(c);
		return;
	}
	if (c->in_len && !c->partial && !c->closing) {
		/* whole requests waiting */
		if (over_budget(c->w)) {
			conn_wait(c);
			return;
		}
		if (!take_input(c, c->in, c->in_len, false)) {
			log_err("%s: out of memory for input, closing", c->proto->name);
			conn_free(c);
			return;
		}
		conn_after(c);
	} else if (c->reading || c->closing || c->peer_eof || c->lingering) {
		conn_after(c);
	} else {
		conn_readable(c);
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	conn_t *c = arg;
	(void)fd;
	if ((what & EV_TIMEOUT) && !(what & EV_WRITE)) {
		log_peer(LOG_LVL_INFO, "%s: peer does not read its answers, closing",
		         c->proto->name);
		conn_free(c);
		return;
	}
	bool rd = c->tls_rd_wants_write;
	c->tls_rd_wants_write = false;
	if (c->tls == CONN_TLS_HANDSHAKE) {
		tls_step(c);
		return;
	}
	if (!out_flush(c))
		return;
	if (rd && c->reading) {
		conn_readable(c); /* the TLS read that waited for the socket goes on */
		return;
	}
	if (c->out_len == c->out_off)
		conn_continue(c);
}

/* Connections that stopped at CONN_PASS_MAX go on, once each, after the loop polled again. */
static void on_more(evutil_socket_t fd, short what, void *arg)
{
	worker_t *w = arg;
	conn_worker_t *cw = &w->cw;
	(void)fd;
	(void)what;
	conn_t *stop = cw->more_tail;
	while (cw->more_head) {
		conn_t *c = cw->more_head;
		bool last = c == stop;
		conn_continue(c);
		if (last)
			break;
	}
}

/* ---- the buffer budget ---------------------------------------------------------------------- */

/* Close this worker's connections that do not read their answers, largest first. */
static void reclaim(worker_t *w, uint64_t now, size_t target)
{
	conn_worker_t *cw = &w->cw;
	while (connlimit_mem(node_cl(w)) > target) {
		conn_t *worst = NULL;
		size_t worst_sz = 0;
		for (conn_t *c = cw->all; c; c = c->next) {
			if (c->out_len == c->out_off || !c->stall_ms ||
			    now - c->stall_ms < CONN_STALL_MS)
				continue;
			size_t sz = c->out_cap + c->in_cap;
			if (sz > worst_sz) {
				worst = c;
				worst_sz = sz;
			}
		}
		if (!worst)
			return;
		char s[64];
		conn_src_format(&worst->src, s, sizeof(s));
		log_peer(
		    LOG_LVL_NOTICE,
		    "%s: closing a connection from %s that does not read its answers (%zu bytes "
		    "held, node over 7/8 of conn_buffer_budget)",
		    worst->proto->name, s, worst_sz);
		cw->n_reclaimed++;
		conn_free(worst);
	}
}

static bool has_stalled_output(const worker_t *w)
{
	for (const conn_t *c = w->cw.all; c; c = c->next) {
		if (c->out_len > c->out_off)
			return true;
	}
	return false;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	worker_t *w = arg;
	conn_worker_t *cw = &w->cw;
	(void)fd;
	(void)what;
	uint64_t now = worker_now_ms();
	size_t high = budget_high(w);
	if (connlimit_mem(node_cl(w)) > cw->mem_peak)
		cw->mem_peak = connlimit_mem(node_cl(w));

	if (connlimit_mem(node_cl(w)) > high)
		reclaim(w, now, high);
	if (!over_budget(w)) {
		/* resume the waiting connections, those of the least busy sources first (a client
		 * among many that flood the node gets its turn); one that tips the node over again
		 * waits again, at the end */
		unsigned n = 0;
		for (conn_t *c = cw->wait_head; c; c = c->lnext)
			n++;
		while (n-- && cw->wait_head && !over_budget(w)) {
			conn_t *best = cw->wait_head;
			uint32_t best_n = connlimit_source(node_cl(w), &best->src);
			unsigned k = 0;
			for (conn_t *c = best->lnext; c && k < WAIT_SCAN && best_n > 1;
			     c = c->lnext, k++) {
				uint32_t cn = connlimit_source(node_cl(w), &c->src);
				if (cn < best_n) {
					best = c;
					best_n = cn;
				}
			}
			conn_continue(best);
		}
	} else {
		/* waiting is bounded like idleness */
		uint32_t idle_ms = NODE_LIMIT(&w->node->limits, tcp_idle_timeout_ms);
		while (cw->wait_head && now - cw->wait_head->since_ms >= idle_ms) {
			log_peer(LOG_LVL_INFO, "%s: waited %u ms for the buffer budget, closing",
			         cw->wait_head->proto->name, idle_ms);
			conn_free(cw->wait_head);
		}
	}
	if (!cw->wait_head && (connlimit_mem(node_cl(w)) <= high || !has_stalled_output(w)))
		event_del(cw->tick_ev);
}

static void tick_start(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	if (!cw->tick_ev || evtimer_pending(cw->tick_ev, NULL))
		return;
	struct timeval tv = {0, CONN_TICK_MS * 1000u};
	evtimer_add(cw->tick_ev, &tv);
}

/* ---- accept --------------------------------------------------------------------------------- */

/* Close this worker's longest idle connection (of \p src when given). */
static bool evict_idle(worker_t *w, const conn_src_t *src, const char *why)
{
	conn_worker_t *cw = &w->cw;
	unsigned k = 0;
	for (conn_t *c = cw->idle_head; c && k < EVICT_SCAN; c = c->lnext, k++) {
		if (src && !conn_src_eq(&c->src, src))
			continue;
		char s[64];
		conn_src_format(&c->src, s, sizeof(s));
		log_peer(LOG_LVL_INFO,
		         "%s: %s: closing the longest idle connection (from %s, idle %llu ms)",
		         c->proto->name, why, s,
		         (unsigned long long)(worker_now_ms() - c->since_ms));
		cw->n_evicted++;
		conn_free(c);
		return true;
	}
	return false;
}

/* A new connection \p fd from \p sa: count it against the limits, then read it at once. */
static void conn_new(struct conn_listener *cl, int fd, const struct sockaddr *sa)
{
	worker_t *w = cl->w;
	conn_worker_t *cw = &w->cw;
	const node_limits_t *lim = &w->node->limits;
	conn_src_t src;
	conn_src_make(sa, NODE_LIMIT(lim, src_v4_bits), NODE_LIMIT(lim, src_v6_bits), &src);
	uint32_t max_total = NODE_LIMIT(lim, max_connections);
	if (max_total > w->node->fd_conn_cap)
		max_total = w->node->fd_conn_cap;
	uint32_t max_src = NODE_LIMIT(lim, max_conn_per_source);
	cl_verdict_t v = connlimit_take(node_cl(w), &src, max_total, max_src);
	if (v == CL_NODE_FULL && evict_idle(w, NULL, "max_connections reached"))
		v = connlimit_take(node_cl(w), &src, max_total, max_src);
	if (v == CL_SOURCE_FULL && evict_idle(w, &src, "max_connections_per_source reached"))
		v = connlimit_take(node_cl(w), &src, max_total, max_src);
	if (v != CL_OK) {
		char s[64];
		conn_src_format(&src, s, sizeof(s));
		cw->n_refused++;
		log_peer(LOG_LVL_WARN, "%s: %s (%u), refusing a connection from %s",
		         cl->proto->name,
		         v == CL_NODE_FULL     ? "max_connections reached"
		         : v == CL_SOURCE_FULL ? "max_connections_per_source reached"
		                               : "out of memory",
		         v == CL_SOURCE_FULL ? max_src : max_total, s);
		close(fd);
		return;
	}
	conn_t *c = calloc(1, sizeof(*c));
	if (!c) {
		connlimit_put(node_cl(w), &src);
		close(fd);
		return;
	}
	c->w = w;
	c->proto = cl->proto;
	c->fd = fd;
	c->src = src;
	socklen_t sl = sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
	               : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                           : 0;
	memcpy(&c->peer, sa, sl);
	c->peer_len = sl;
	c->next = cw->all;
	if (c->next)
		c->next->prev = c;
	cw->all = c;
	cw->n++;
	cw->n_accepted++;
	if (cl->tls_mode == LIS_TLS) {
		/* the handshake is due within tls_handshake_timeout_ms of the accept */
		c->frame_ms = worker_now_ms();
		c->tls = CONN_TLS_HANDSHAKE;
		if (!tls_begin(c)) {
			conn_free(c);
			return;
		}
	} else if (cl->tls_mode == LIS_UNIFIED && tls_server_on(w->node->tls)) {
		/* the first byte decides; until it comes the connection is idle (idle timeout) */
		c->tls = CONN_TLS_SNIFF;
	}
	conn_readable(c);
}

static void listeners_enable(worker_t *w, bool on)
{
	for (struct conn_listener *cl = w->cw.lis; cl; cl = cl->next) {
		if (cl->ev)
			on ? event_add(cl->ev, NULL) : event_del(cl->ev);
	}
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	worker_t *w = arg;
	(void)fd;
	(void)what;
	if (!w->stopping)
		listeners_enable(w, true);
}

/*
 * Out of descriptors: close idle connections to make room (the listener fires again); with none
 * to close, pause accepting for a moment instead of spinning on a readable listening socket.
 */
static void accept_error(worker_t *w, int err)
{
	conn_worker_t *cw = &w->cw;
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_peer(LOG_LVL_INFO, "accept: %s", strerror(err));
		return;
	}
	unsigned freed = 0;
	while (freed < EVICT_ON_EMFILE && evict_idle(w, NULL, strerror(err)))
		freed++;
	if (freed)
		return;
	log_peer(LOG_LVL_WARN, "accept: %s; pausing new connections for %u ms", strerror(err),
	         ACCEPT_PAUSE_MS);
	if (!cw->resume_ev)
		cw->resume_ev = evtimer_new(w->base, on_accept_resume, w);
	if (cw->resume_ev && !evtimer_pending(cw->resume_ev, NULL)) {
		struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000u};
		listeners_enable(w, false);
		evtimer_add(cw->resume_ev, &tv);
	}
}

/* The listening socket is readable: accept up to ACCEPT_BATCH connections. */
static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct conn_listener *cl = arg;
	worker_t *w = cl->w;
	(void)what;
	for (unsigned i = 0; i < ACCEPT_BATCH && !w->stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int nfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (nfd >= 0) {
			conn_new(cl, nfd, (const struct sockaddr *)&ss);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED || errno == EPERM || errno == EPROTO)
			continue; /* that one is gone; the next may be fine */
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			accept_error(w, errno);
		return;
	}
}

/* A listener of \p kind on \p *fdp, appended to the worker's list; it owns *fdp once added. */
static int listener_open(worker_t *w, int *fdp, conn_lis_kind_t kind)
{
	conn_worker_t *cw = &w->cw;
	struct conn_listener *cl = calloc(1, sizeof(*cl));
	if (!cl)
		return HDL_ENOMEM;
	int one = 1, defer = DEFER_ACCEPT_S;
	/* accepted sockets inherit TCP_NODELAY: no setsockopt per connection */
	(void)setsockopt(*fdp, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(*fdp, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
	cl->w = w;
	cl->kind = (uint8_t)kind;
	cl->proto = kind == CONN_LIS_HTTP ? &http_proto : &tcp_proto;
	cl->tls_mode = kind == CONN_LIS_TLS                         ? LIS_TLS
	               : kind == CONN_LIS_HTTP && w->node->http_tls ? LIS_UNIFIED
	                                                            : LIS_PLAIN;
	cl->ev = event_new(w->base, *fdp, EV_READ | EV_PERSIST, on_accept, cl);
	if (!cl->ev || event_add(cl->ev, NULL) != 0) {
		if (cl->ev)
			event_free(cl->ev);
		free(cl);
		return HDL_ENOMEM;
	}
	cl->fd = *fdp;
	*fdp = -1; /* owned by the listener now */
	struct conn_listener **tail = &cw->lis;
	while (*tail)
		tail = &(*tail)->next;
	*tail = cl;
	cw->n_lis++;
	return HDL_EOK;
}

static void listener_free(struct conn_listener *cl)
{
	event_free(cl->ev);
	close(cl->fd);
	free(cl);
}

static void listeners_close(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	while (cw->lis) {
		struct conn_listener *cl = cw->lis;
		cw->lis = cl->next;
		listener_free(cl);
	}
	cw->n_lis = 0;
}

int conn_listener_add(worker_t *w, int fd, conn_lis_kind_t kind)
{
	int ret = listener_open(w, &fd, kind);
	if (ret != HDL_EOK)
		close(fd);
	return ret;
}

unsigned conn_listener_close(worker_t *w, conn_lis_kind_t kind, const struct sockaddr_storage *addr)
{
	conn_worker_t *cw = &w->cw;
	unsigned closed = 0;
	for (struct conn_listener **pp = &cw->lis; *pp;) {
		struct conn_listener *cl = *pp;
		if (cl->kind != (uint8_t)kind || !rebind_fd_bound_to(cl->fd, addr)) {
			pp = &cl->next;
			continue;
		}
		/* connections accepted from it are on cw->all and never look back at it */
		*pp = cl->next;
		listener_free(cl);
		cw->n_lis--;
		closed++;
	}
	return closed;
}

/* ---- start / stop -------------------------------------------------------------------------- */

void conn_apply_limits(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	uint32_t ms = NODE_LIMIT(&w->node->limits, tcp_idle_timeout_ms);
	if (ms == cw->idle_ms && cw->idle_tv)
		return;
	struct timeval tv = {(time_t)(ms / 1000u), (suseconds_t)((ms % 1000u) * 1000u)};
	const struct timeval *ct = event_base_init_common_timeout(w->base, &tv);
	if (ct) {
		cw->idle_tv = ct;
		cw->idle_ms = ms;
	}
	/* open connections keep their timeout until their events are added again */
}

int conn_start(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	hdl_buf_init(&cw->obuf, 0);
	cw->rbuf = malloc(CONN_RBUF);
	cw->lis = NULL;
	cw->n_lis = 0;
	cw->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
	cw->more_ev = evtimer_new(w->base, on_more, w);
	if (!cw->rbuf || !cw->tick_ev || !cw->more_ev)
		return HDL_ENOMEM;
	conn_apply_limits(w);
	if (!cw->idle_tv)
		return HDL_ENOMEM;
	for (unsigned i = 0; i < w->fds.n_tcp; i++) {
		if (listener_open(w, &w->fds.tcp[i], CONN_LIS_HANDLE) != HDL_EOK)
			return HDL_ENOMEM;
	}
	for (unsigned i = 0; i < w->fds.n_http; i++) {
		if (listener_open(w, &w->fds.http[i], CONN_LIS_HTTP) != HDL_EOK)
			return HDL_ENOMEM;
	}
	for (unsigned i = 0; i < w->fds.n_tls; i++) {
		if (listener_open(w, &w->fds.tls[i], CONN_LIS_TLS) != HDL_EOK)
			return HDL_ENOMEM;
	}
	return HDL_EOK;
}

unsigned conn_count(const worker_t *w)
{
	return w->cw.n;
}

void conn_drain(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	listeners_close(w);
	if (cw->resume_ev)
		event_del(cw->resume_ev);
	/* idle connections close now; the others once everything they sent is answered */
	while (cw->idle_head)
		conn_free(cw->idle_head);
	/* so do those that have sent no request yet (TLS handshakes) */
	for (conn_t *c = cw->all, *next; c; c = next) {
		next = c->next;
		if (c->tls == CONN_TLS_SNIFF || c->tls == CONN_TLS_HANDSHAKE)
			conn_free(c);
	}
}

void conn_maintain(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	size_t mem = connlimit_mem(node_cl(w));
	if (mem > cw->mem_peak)
		cw->mem_peak = mem;
	/* connection buffers shrank a lot: give the freed memory back to the system */
	if (cw->mem_peak >= mem + CONN_TRIM_MIN || (mem == 0 && cw->mem_peak)) {
		(void)malloc_trim(0);
		cw->mem_peak = mem;
	}
}

void conn_free_all(worker_t *w)
{
	conn_worker_t *cw = &w->cw;
	conn_drain(w);
	while (cw->all)
		conn_free(cw->all);
	if (cw->n_tls_handshakes || cw->n_tls_failed || cw->n_tls_timeouts)
		log_info(
		    "TLS: %llu handshakes (%llu resumed), %llu failed, %llu timed out",
		    (unsigned long long)cw->n_tls_handshakes, (unsigned long long)cw->n_tls_resumed,
		    (unsigned long long)cw->n_tls_failed, (unsigned long long)cw->n_tls_timeouts);
	if (cw->n_refused || cw->n_evicted || cw->n_reclaimed || cw->n_frame_timeouts)
		log_info("connections: %llu accepted, %llu refused at the limits, %llu idle closed "
		         "to make room, %llu closed for not reading under the buffer budget, %llu "
		         "frame timeouts",
		         (unsigned long long)cw->n_accepted, (unsigned long long)cw->n_refused,
		         (unsigned long long)cw->n_evicted, (unsigned long long)cw->n_reclaimed,
		         (unsigned long long)cw->n_frame_timeouts);
	if (cw->tick_ev)
		event_free(cw->tick_ev);
	if (cw->resume_ev)
		event_free(cw->resume_ev);
	if (cw->more_ev)
		event_free(cw->more_ev);
	cw->tick_ev = cw->resume_ev = cw->more_ev = NULL;
	free(cw->rbuf);
	cw->rbuf = NULL;
	hdl_buf_free(&cw->obuf);
}
