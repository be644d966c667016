/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The load engine of idnode-bench: worker threads with non-blocking sockets and ppoll().
 *
 * Each worker owns its sockets, a table of in-flight slots and its statistics; nothing is shared
 * between workers while they run. A request's slot index and a generation number form its
 * request id (Handle: gen << 16 | slot; DNS: gen << 12 | slot), so replies are matched without
 * a search and late replies to a reused slot are told apart. REST replies (no id) are matched
 * in order per connection. Stream connections may run over TLS (bk_conf_t.tls): the handshake
 * is driven by the same poll loop (non-blocking), a reconnection offers the connection's last
 * session, and reads and writes go through SSL_read / SSL_write.
 *
 * Open loop: requests are due at start + k / rate; a request sent late (no free slot or
 * connection) keeps its intended time, and latency is measured from that time, so a stalled
 * server shows up in the latency instead of slowing the load (no coordinated omission).
 * Closed loop: the worker keeps its share of --inflight requests outstanding.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "tools/bench/bench.h"

#define UDP_BATCH 64u
#define RX_DGRAM 2048u
#define STREAM_RX_CAP (HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN + 16384u)
#define STREAM_TX_CAP 262144u
#define REQ_MAX (BK_KEY_MAX * 3u + 2600u)
#define NS 1000000000ull

enum { SLOT_FREE = 0, SLOT_OUT = 1 };
enum { C_CLOSED = 0, C_CONNECTING, C_HANDSHAKE, C_OPEN };

typedef struct slot {
	uint64_t t0;       /* intended send time */
	uint64_t deadline; /* t0 or actual send + timeout */
	uint32_t gen;
	uint32_t conn;
	uint32_t code;     /* rcode from datagram 0 (multi-packet replies) */
	uint16_t pkts;     /* datagrams received */
	uint8_t state;
	uint8_t measured;
	uint8_t answered;  /* write modes: its challenge was answered */
} slot_t;

typedef struct conn {
	int fd;
	int state;
	uint32_t outstanding;
	uint64_t retry_at; /* closed: earliest reconnect */
	bool ever_open;
	/* write modes: the IDIS login of this connection (enum bk_login_state) */
	uint8_t login;
	uint32_t session;
	uint64_t login_deadline;
	/* stream */
	uint8_t *rx;
	size_t rxlen;
	uint8_t *tx;
	size_t txlen, txoff;
	SSL *ssl;            /* TLS: the session of this connection */
	SSL_SESSION *sess;   /* TLS: the last session, offered when it reconnects */
	bool ssl_want_write; /* TLS: the handshake or a read waits for POLLOUT */
	uint32_t *fifo; /* REST: slots in send order */
	uint32_t fhead, fcount, fcap;
	/* udp */
	struct mmsghdr mm[UDP_BATCH];
	struct iovec iov[UDP_BATCH];
	uint8_t (*dg)[HDL_UDP_MAX_DGRAM + 64];
	unsigned nb;
} conn_t;

typedef struct worker {
	const bk_conf_t *c;
	unsigned idx;
	conn_t *conns;
	unsigned nconns;
	slot_t *slots;
	unsigned nslots;
	uint32_t *freel;
	unsigned nfree;
	struct pollfd *pfd;
	bk_rng_t rng;
	bk_zipf_t zipf;
	uint64_t zmult;
	uint64_t interval; /* ns between requests (open loop) */
	uint64_t next;     /* next intended send time */
	uint64_t quota;    /* measured requests allowed (0 = no limit) */
	uint64_t t_start, t_measure, t_end, timeout;
	unsigned rr;
	bool stream, has_id, dns;
	int id_shift;
	uint32_t id_mask;
	bk_result_t res;
	bh_hist_t hist;
	hdl_arena_t arena;
	uint8_t (*rxb)[RX_DGRAM];
	struct mmsghdr rmm[UDP_BATCH];
	struct iovec riov[UDP_BATCH];
	uint64_t measured_issued;
	bool exhausted; /* write modes: every key was sent once */
	atomic_int *done_sending;
	pthread_t th;
	char err[160];
} worker_t;

uint64_t bk_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

int bk_proc_cpu(int pid, double *utime, double *stime)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces */
	if (!p)
		return -1;
	p++;
	/* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime(14) stime(15) */
	unsigned long long ut = 0, st = 0;
	int field = 2;
	char *save = NULL;
	for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 14)
			ut = strtoull(tok, NULL, 10);
		else if (field == 15) {
			st = strtoull(tok, NULL, 10);
			break;
		}
	}
	if (field < 15)
		return -1;
	double hz = (double)sysconf(_SC_CLK_TCK);
	*utime = (double)ut / hz;
	*stime = (double)st / hz;
	return 0;
}

void bk_proc_rss(int pid, long *anon_kb, long *file_kb)
{
	char path[64], line[256];
	*anon_kb = -1;
	*file_kb = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "RssAnon:", 8) == 0)
			*anon_kb = strtol(line + 8, NULL, 10);
		else if (strncmp(line, "RssFile:", 8) == 0)
			*file_kb = strtol(line + 8, NULL, 10);
	}
	fclose(f);
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6
	       + (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- connections ---- */

static void conn_close(worker_t *w, conn_t *cn, bool error)
{
	if (cn->fd >= 0) {
		char b;
		/* connect-per-request: a server that closed after its answer gets a FIN back, as from
		 * a client that read to EOF; otherwise a RST (no TIME_WAIT pile-up on our side) */
		bool eof = w->c->new_conn && !error && recv(cn->fd, &b, 1, MSG_DONTWAIT) == 0;
		if (w->stream && !eof) {
			struct linger lg = {1, 0}; /* RST: no TIME_WAIT pile-up on our side */
			setsockopt(cn->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(cn->fd);
	}
	if (cn->ssl) {
		SSL_free(cn->ssl);
		cn->ssl = NULL;
		ERR_clear_error();
	}
	cn->ssl_want_write = false;
	cn->fd = -1;
	cn->state = C_CLOSED;
	cn->rxlen = cn->txlen = cn->txoff = 0;
	cn->fhead = cn->fcount = 0;
	cn->nb = 0;
	cn->login = BK_LOGIN_NONE;
	if (error)
		w->res.conn_errors++;
	cn->retry_at = bk_now_ns() + (error ? 10000000ull : 0);
}

/* Fail every request outstanding on connection ci. */
static void conn_fail_slots(worker_t *w, uint32_t ci)
{
	conn_t *cn = &w->conns[ci];
	if (cn->outstanding == 0)
		return;
	for (unsigned i = 0; i < w->nslots; i++) {
		slot_t *s = &w->slots[i];
		if (s->state == SLOT_OUT && s->conn == ci) {
			if (s->measured)
				w->res.lost++;
			s->state = SLOT_FREE;
			s->gen++;
			w->freel[w->nfree++] = i;
		}
	}
	cn->outstanding = 0;
}

static int conn_open(worker_t *w, conn_t *cn)
{
	const bk_conf_t *c = w->c;
	int type = w->stream ? SOCK_STREAM : SOCK_DGRAM;
	int fd = socket(c->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(w->err, sizeof(w->err), "socket: %s", strerror(errno));
		return -1;
	}
	if (w->stream) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	} else {
		int sz = 4 << 20;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	if (connect(fd, (const struct sockaddr *)&c->addr, c->addrlen) != 0 && errno != EINPROGRESS) {
		snprintf(w->err, sizeof(w->err), "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (cn->ever_open)
		w->res.reconnects++;
	cn->ever_open = true;
	cn->fd = fd;
	cn->state = w->stream ? C_CONNECTING : C_OPEN;
	cn->rxlen = cn->txlen = cn->txoff = 0;
	cn->fhead = cn->fcount = 0;
	return 0;
}

/* ---- write modes: the IDIS login of a connection, per-request challenges (write.c) ---- */

/* True while a connection's login has not finished: no requests may go on it yet. */
static bool bk_login_pending(const bk_conf_t *c, const conn_t *cn)
{
	return c->write && c->write->login && cn->login != BK_LOGIN_READY;
}

/* A connection just opened: send the login first (write modes with --auth). */
static void bk_login_start(worker_t *w, conn_t *cn)
{
	const bk_conf_t *c = w->c;
	size_t n;
	if (!c->write || !c->write->login)
		return;
	cn->session = (uint32_t)(bk_rng_next(&w->rng) & 0x7FFFFFFFu) | 1u;
	n = bk_login_build(c->write, cn->session, cn->session, cn->tx + cn->txlen,
	                   STREAM_TX_CAP - cn->txlen);
	cn->txlen += n;
	cn->login = BK_LOGIN_SENT;
	cn->login_deadline = bk_now_ns() + w->timeout;
}

/* A frame on a connection whose login is under way: the challenge, then the result. */
static void bk_login_step(worker_t *w, conn_t *cn, const bk_reply_t *r)
{
	const bk_write_t *wr = w->c->write;
	if (cn->login == BK_LOGIN_SENT && r->code == HDL_RC_AUTHENTICATION_NEEDED) {
		size_t n = bk_write_answer(wr, &w->arena, r->msg, r->msg_len, cn->tx + cn->txlen,
		                           STREAM_TX_CAP - cn->txlen);
		if (n) {
			cn->txlen += n;
			cn->login = BK_LOGIN_ANSWERED;
			return;
		}
	} else if (cn->login == BK_LOGIN_ANSWERED && r->code == HDL_RC_SUCCESS) {
		cn->login = BK_LOGIN_READY;
		w->res.logins++;
		return;
	}
	/* refused, or nothing we can answer: drop the connection and retry it later */
	w->res.auth_failures++;
	conn_close(w, cn, true);
	cn->retry_at = bk_now_ns() + NS;
}

/* Per-request authentication: answer slot si's RC 402 on its connection and keep it waiting.
 * \return true when answered (the slot stays out), false to complete it as it is. */
static bool bk_answer_challenge(worker_t *w, conn_t *cn, uint32_t si, const bk_reply_t *r)
{
	const bk_write_t *wr = w->c->write;
	slot_t *s = &w->slots[si];
	size_t n;
	if (!wr || r->code != HDL_RC_AUTHENTICATION_NEEDED || s->answered || !wr->auth)
		return false;
	n = bk_write_answer(wr, &w->arena, r->msg, r->msg_len, cn->tx + cn->txlen,
	                    STREAM_TX_CAP - cn->txlen);
	if (n == 0) {
		w->res.auth_failures++;
		return false;
	}
	cn->txlen += n;
	s->answered = 1;
	cn->fifo[(cn->fhead + cn->fcount) % cn->fcap] = si; /* its reply comes after the others */
	cn->fcount++;
	if (s->measured)
		w->res.challenges++;
	return true;
}

/* ---- slots and keys ---- */

static size_t pick_key(worker_t *w, char *out, size_t cap)
{
	const bk_keys_t *k = w->c->keys;
	uint64_t i;
	if (w->c->write && w->c->write->next_key) {
		/* create / delete: every key once, in order, shared by the workers */
		i = __atomic_fetch_add(w->c->write->next_key, 1, __ATOMIC_RELAXED);
		if (i >= k->n) {
			w->exhausted = true;
			return 0;
		}
		return bk_key_get(k, i, out, cap);
	}
	if (w->c->zipf_s > 0.0)
		i = bk_zipf_spread(bk_zipf_next(&w->zipf, &w->rng), k->n, w->zmult);
	else
		i = bk_rng_below(&w->rng, k->n);
	bool miss = w->c->miss_pct > 0.0 && bk_rng_double(&w->rng) * 100.0 < w->c->miss_pct;
	if (!miss)
		return bk_key_get(k, i, out, cap);
	if (w->dns) { /* a label no zone holds */
		if (cap < 4)
			return 0;
		memcpy(out, "nx-", 3);
		size_t n = bk_key_get(k, i, out + 3, cap - 3);
		return n ? n + 3 : 0;
	}
	size_t n = bk_key_get(k, i, out, cap - 8);
	if (!n)
		return 0;
	memcpy(out + n, "~nx-0", 5);
	return n + 5;
}

static inline uint32_t make_id(worker_t *w, uint32_t si)
{
	return ((w->slots[si].gen << w->id_shift) | si) & w->id_mask;
}

/* Send one request due at t_intended; false when no slot / connection / buffer is free. */
static bool issue(worker_t *w, uint64_t t_intended, uint64_t now)
{
	const bk_conf_t *c = w->c;
	if (w->nfree == 0)
		return false;
	uint32_t ci = UINT32_MAX;
	if (!w->stream) {
		for (unsigned k = 0; k < w->nconns; k++) {
			unsigned j = (w->rr + k) % w->nconns;
			if (w->conns[j].state == C_OPEN && w->conns[j].nb < UDP_BATCH) {
				ci = j;
				break;
			}
		}
	} else if (c->new_conn) {
		for (unsigned k = 0; k < w->nconns; k++) {
			unsigned j = (w->rr + k) % w->nconns;
			if (w->conns[j].state == C_CLOSED && w->conns[j].outstanding == 0) {
				if (conn_open(w, &w->conns[j]) != 0) {
					w->res.conn_errors++;
					return false;
				}
				ci = j;
				break;
			}
		}
	} else {
		for (unsigned k = 0; k < w->nconns; k++) {
			unsigned j = (w->rr + k) % w->nconns;
			conn_t *cn = &w->conns[j];
			if (cn->state != C_CLOSED && cn->outstanding < c->depth
			    && cn->txlen + REQ_MAX <= STREAM_TX_CAP && !bk_login_pending(c, cn)) {
				ci = j;
				break;
			}
		}
	}
	if (ci == UINT32_MAX)
		return false;
	w->rr = ci + 1;
	conn_t *cn = &w->conns[ci];
	uint32_t si = w->freel[--w->nfree];
	slot_t *s = &w->slots[si];
	char key[BK_KEY_MAX + 16];
	size_t kl = pick_key(w, key, sizeof(key));
	uint32_t id = make_id(w, si);
	size_t len = 0;
	if (kl && c->write) {
		len = bk_write_build(c->write, key, kl, id, cn->session, cn->tx + cn->txlen,
		                     STREAM_TX_CAP - cn->txlen);
	} else if (kl) {
		if (!w->stream) {
			len = bk_build(c->tmpl, key, kl, id, cn->dg[cn->nb], HDL_UDP_MAX_DGRAM);
		} else {
			len = bk_build(c->tmpl, key, kl, id, cn->tx + cn->txlen, STREAM_TX_CAP - cn->txlen);
		}
	}
	if (len == 0) {
		/* a key we cannot encode: count it as malformed on our side and drop it */
		w->freel[w->nfree++] = si;
		if (w->exhausted)
			return false;
		w->res.malformed++;
		return true;
	}
	if (!w->stream) {
		cn->iov[cn->nb].iov_base = cn->dg[cn->nb];
		cn->iov[cn->nb].iov_len = len;
		cn->nb++;
	} else {
		cn->txlen += len;
		if (cn->fifo) {
			cn->fifo[(cn->fhead + cn->fcount) % cn->fcap] = si;
			cn->fcount++;
		}
	}
	s->state = SLOT_OUT;
	s->t0 = t_intended;
	s->deadline = (now > t_intended ? now : t_intended) + w->timeout;
	s->conn = ci;
	s->pkts = 0;
	s->code = 0;
	s->answered = 0;
	s->measured = t_intended >= w->t_measure;
	cn->outstanding++;
	if (s->measured) {
		w->res.sent++;
		w->res.req_bytes += len;
		w->measured_issued++;
	}
	return true;
}

static void slot_done(worker_t *w, uint32_t si, uint32_t code, bool echo, uint64_t now)
{
	slot_t *s = &w->slots[si];
	conn_t *cn = &w->conns[s->conn];
	if (s->measured) {
		w->res.completed++;
		if (echo)
			w->res.echoes++;
		if (code < BK_MAX_CODES)
			w->res.codes[code]++;
		else
			w->res.codes_other++;
		bh_record(&w->hist, now > s->t0 ? now - s->t0 : 0);
	}
	s->state = SLOT_FREE;
	s->gen++;
	w->freel[w->nfree++] = si;
	if (cn->outstanding)
		cn->outstanding--;
	if (w->c->new_conn && w->stream && cn->outstanding == 0)
		conn_close(w, cn, false);
}

/* Free a slot without a completion (a reply that could not be used). */
static void slot_drop(worker_t *w, uint32_t si)
{
	slot_t *s = &w->slots[si];
	conn_t *cn = &w->conns[s->conn];
	s->state = SLOT_FREE;
	s->gen++;
	w->freel[w->nfree++] = si;
	if (cn->outstanding)
		cn->outstanding--;
	if (w->c->new_conn && w->stream && cn->outstanding == 0)
		conn_close(w, cn, false);
}

/*
 * Match a reply to its request. Datagrams: by id (slot + generation). Streams: replies come in
 * request order per connection (HTTP/1.1 requires it; pipelining Handle and DNS servers do it),
 * so the connection's FIFO decides; an id, when there is one, is looked up in the FIFO so a
 * server that reorders is still matched, and a frame that is whole but unusable (an HTTP error
 * from the tunnel, a garbled message) answers the oldest request as malformed.
 */
static void on_reply(worker_t *w, uint32_t ci, const bk_reply_t *r, size_t bytes, uint64_t now)
{
	const bk_conf_t *c = w->c;
	uint32_t si;
	if (w->stream) {
		conn_t *cn = &w->conns[ci];
		if (cn->fcount == 0) {
			w->res.malformed++;
			return;
		}
		uint32_t pos = 0;
		if (r->has_id && !r->bad) {
			while (pos < cn->fcount
			       && make_id(w, cn->fifo[(cn->fhead + pos) % cn->fcap]) != r->id)
				pos++;
			if (pos == cn->fcount) {
				w->res.malformed++; /* an id we never sent on this connection */
				return;
			}
		}
		si = cn->fifo[(cn->fhead + pos) % cn->fcap];
		for (uint32_t k = pos; k > 0; k--) /* close the gap: shift older entries up */
			cn->fifo[(cn->fhead + k) % cn->fcap] = cn->fifo[(cn->fhead + k - 1) % cn->fcap];
		cn->fhead = (cn->fhead + 1) % cn->fcap;
		cn->fcount--;
		if (r->bad || (r->is_request && !c->echo_ok)) {
			w->res.malformed++;
			slot_drop(w, si);
			return;
		}
		if (bk_answer_challenge(w, cn, si, r))
			return; /* the slot waits for the reply to its answer */
	} else {
		if (r->bad) {
			w->res.malformed++;
			return;
		}
		si = r->id & ((1u << w->id_shift) - 1u);
		if (si >= w->nslots) {
			w->res.malformed++;
			return;
		}
		slot_t *s = &w->slots[si];
		if (s->state != SLOT_OUT || make_id(w, si) != r->id) {
			w->res.late++;
			return;
		}
		if (r->is_request && !c->echo_ok) {
			w->res.malformed++;
			return;
		}
	}
	slot_t *s = &w->slots[si];
	if (s->measured)
		w->res.rep_bytes += bytes;
	uint32_t code = r->code;
	if (!w->stream && r->npackets > 1) {
		if (r->seq == 0)
			s->code = r->code;
		if (++s->pkts < r->npackets)
			return;
		code = s->code;
	}
	if (c->verify && r->msg && !r->is_request) {
		hdl_msg_t m;
		hdl_arena_reset(&w->arena);
		if (hdl_msg_decode(r->msg, r->msg_len, &w->arena, &m) != HDL_EOK) {
			w->res.malformed++;
			slot_drop(w, si);
			return;
		}
	}
	slot_done(w, si, code, r->is_request && c->echo_ok, now);
}

/* ---- I/O ---- */

static void udp_flush(worker_t *w, conn_t *cn)
{
	unsigned off = 0;
	while (off < cn->nb) {
		for (unsigned i = off; i < cn->nb; i++) {
			memset(&cn->mm[i].msg_hdr, 0, sizeof(cn->mm[i].msg_hdr));
			cn->mm[i].msg_hdr.msg_iov = &cn->iov[i];
			cn->mm[i].msg_hdr.msg_iovlen = 1;
		}
		int n = sendmmsg(cn->fd, cn->mm + off, cn->nb - off, 0);
		if (n <= 0) {
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			/* ECONNREFUSED and friends: the datagrams are lost; timeouts count them */
			off++;
			continue;
		}
		off += (unsigned)n;
	}
	if (off >= cn->nb) {
		cn->nb = 0;
	} else if (off > 0) {
		/* keep the unsent datagrams at the front, each iov pointing at its own buffer */
		unsigned left = cn->nb - off;
		memmove(cn->dg, cn->dg + off, left * sizeof(cn->dg[0]));
		for (unsigned i = 0; i < left; i++) {
			cn->iov[i].iov_len = cn->iov[off + i].iov_len;
			cn->iov[i].iov_base = cn->dg[i];
		}
		cn->nb = left;
	}
	(void)w;
}

static void udp_read(worker_t *w, uint32_t ci)
{
	conn_t *cn = &w->conns[ci];
	for (;;) {
		for (unsigned i = 0; i < UDP_BATCH; i++) {
			w->riov[i].iov_base = w->rxb[i];
			w->riov[i].iov_len = RX_DGRAM;
			memset(&w->rmm[i].msg_hdr, 0, sizeof(w->rmm[i].msg_hdr));
			w->rmm[i].msg_hdr.msg_iov = &w->riov[i];
			w->rmm[i].msg_hdr.msg_iovlen = 1;
		}
		int n = recvmmsg(cn->fd, w->rmm, UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno == ECONNREFUSED)
				continue; /* an ICMP error from an earlier send; keep reading */
			return;
		}
		uint64_t now = bk_now_ns();
		for (int i = 0; i < n; i++) {
			bk_reply_t r;
			size_t len = w->rmm[i].msg_len;
			if (bk_parse_dgram(w->c->proto, w->rxb[i], len, &r) != 0) {
				w->res.malformed++;
				continue;
			}
			on_reply(w, ci, &r, len, now);
		}
		if ((unsigned)n < UDP_BATCH)
			return;
	}
}

/* send(2), or SSL_write on a TLS connection (-1 with errno EAGAIN when it waits) */
static ssize_t stream_send(conn_t *cn, const uint8_t *p, size_t len)
{
	if (!cn->ssl)
		return send(cn->fd, p, len, MSG_NOSIGNAL);
	size_t n = 0;
	ERR_clear_error();
	if (SSL_write_ex(cn->ssl, p, len, &n) == 1)
		return (ssize_t)n;
	int e = SSL_get_error(cn->ssl, 0);
	errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : EPIPE;
	return -1;
}

/* recv(2), or SSL_read on a TLS connection (0 at EOF, -1 with errno EAGAIN when nothing) */
static ssize_t stream_recv(conn_t *cn, uint8_t *p, size_t cap)
{
	if (!cn->ssl)
		return recv(cn->fd, p, cap, 0);
	size_t n = 0;
	ERR_clear_error();
	if (SSL_read_ex(cn->ssl, p, cap, &n) == 1)
		return (ssize_t)n;
	int e = SSL_get_error(cn->ssl, 0);
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		cn->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
		errno = EAGAIN;
		return -1;
	}
	errno = EIO;
	return -1;
}

static void stream_write(worker_t *w, uint32_t ci)
{
	conn_t *cn = &w->conns[ci];
	while (cn->state == C_OPEN && cn->txoff < cn->txlen) {
		ssize_t n = stream_send(cn, cn->tx + cn->txoff, cn->txlen - cn->txoff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			conn_fail_slots(w, ci);
			conn_close(w, cn, true);
			return;
		}
		cn->txoff += (size_t)n;
	}
	if (cn->txoff == cn->txlen)
		cn->txoff = cn->txlen = 0;
	else if (cn->txoff > STREAM_TX_CAP / 2) {
		memmove(cn->tx, cn->tx + cn->txoff, cn->txlen - cn->txoff);
		cn->txlen -= cn->txoff;
		cn->txoff = 0;
	}
}

static void stream_read(worker_t *w, uint32_t ci)
{
	conn_t *cn = &w->conns[ci];
	for (;;) {
		if (cn->rxlen == STREAM_RX_CAP) {
			w->res.malformed++;
			conn_fail_slots(w, ci);
			conn_close(w, cn, true);
			return;
		}
		ssize_t n = stream_recv(cn, cn->rx + cn->rxlen, STREAM_RX_CAP - cn->rxlen);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			/* closed by the server: an error only when replies were still owed */
			bool owed = cn->outstanding > 0;
			conn_fail_slots(w, ci);
			conn_close(w, cn, owed);
			return;
		}
		if (n < 0)
			return;
		cn->rxlen += (size_t)n;
		uint64_t now = bk_now_ns();
		size_t off = 0;
		for (;;) {
			bk_reply_t r;
			long fl = bk_parse_stream(w->c->proto, cn->rx + off, cn->rxlen - off, &r);
			if (fl == 0)
				break;
			if (fl < 0) {
				w->res.malformed++;
				conn_fail_slots(w, ci);
				conn_close(w, cn, true);
				return;
			}
			off += (size_t)fl;
			if (bk_login_pending(w->c, cn)) {
				bk_login_step(w, cn, &r);
				if (cn->state == C_CLOSED)
					return;
				continue;
			}
			on_reply(w, ci, &r, (size_t)fl, now);
			if (cn->state == C_CLOSED) /* new-conn mode closed it after the reply */
				return;
		}
		if (off) {
			memmove(cn->rx, cn->rx + off, cn->rxlen - off);
			cn->rxlen -= off;
		}
		if ((size_t)n < 65536 && !(cn->ssl && SSL_has_pending(cn->ssl)))
			return;
	}
}

/* TLS: go on with the handshake; once done the connection is open (and logs in). */
static void tls_step(worker_t *w, uint32_t ci)
{
	conn_t *cn = &w->conns[ci];
	ERR_clear_error();
	int r = SSL_do_handshake(cn->ssl);
	if (r == 1) {
		w->res.tls_handshakes++;
		if (SSL_session_reused(cn->ssl))
			w->res.tls_resumed++;
		if (cn->sess)
			SSL_SESSION_free(cn->sess);
		cn->sess = SSL_get1_session(cn->ssl);
		cn->ssl_want_write = false;
		cn->state = C_OPEN;
		bk_login_start(w, cn);
		return;
	}
	int e = SSL_get_error(cn->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		cn->ssl_want_write = e == SSL_ERROR_WANT_WRITE;
		return;
	}
	const char *why = ERR_reason_error_string(ERR_peek_last_error());
	snprintf(w->err, sizeof(w->err), "TLS handshake: %.120s", why ? why : "error");
	if (cn->sess) { /* a session the server no longer takes: start afresh */
		SSL_SESSION_free(cn->sess);
		cn->sess = NULL;
	}
	conn_fail_slots(w, ci);
	conn_close(w, cn, true);
}

static void check_connected(worker_t *w, uint32_t ci)
{
	conn_t *cn = &w->conns[ci];
	int err = 0;
	socklen_t el = sizeof(err);
	if (getsockopt(cn->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
		conn_fail_slots(w, ci);
		conn_close(w, cn, true);
		return;
	}
	if (w->c->tls) {
		cn->ssl = SSL_new(w->c->tls);
		if (!cn->ssl || SSL_set_fd(cn->ssl, cn->fd) != 1) {
			conn_fail_slots(w, ci);
			conn_close(w, cn, true);
			return;
		}
		SSL_set_connect_state(cn->ssl);
		SSL_set_tlsext_host_name(cn->ssl, "localhost");
		if (cn->sess)
			SSL_set_session(cn->ssl, cn->sess);
		cn->state = C_HANDSHAKE;
		tls_step(w, ci);
		return;
	}
	cn->state = C_OPEN;
	bk_login_start(w, cn);
}

static void expire(worker_t *w, uint64_t now)
{
	for (unsigned i = 0; i < w->nslots; i++) {
		slot_t *s = &w->slots[i];
		if (s->state != SLOT_OUT || s->deadline > now)
			continue;
		if (w->stream) {
			/* a stream that stopped answering: drop it and its requests */
			uint32_t ci = s->conn;
			conn_fail_slots(w, ci);
			conn_close(w, &w->conns[ci], true);
			continue;
		}
		if (s->measured)
			w->res.lost++;
		s->state = SLOT_FREE;
		s->gen++;
		w->freel[w->nfree++] = i;
		if (w->conns[s->conn].outstanding)
			w->conns[s->conn].outstanding--;
	}
	for (unsigned j = 0; w->c->write && j < w->nconns; j++) {
		conn_t *cn = &w->conns[j];
		if (cn->state == C_OPEN && bk_login_pending(w->c, cn) && now > cn->login_deadline) {
			w->res.auth_failures++;
			conn_close(w, cn, true);
			cn->retry_at = now + NS; /* no answer to the login: back off */
		}
	}
	if (w->stream && !w->c->new_conn)
		for (unsigned j = 0; j < w->nconns; j++) {
			conn_t *cn = &w->conns[j];
			if (cn->state == C_CLOSED && now >= cn->retry_at && now < w->t_end
			    && conn_open(w, cn) != 0)
				conn_close(w, cn, true);
		}
}

static unsigned outstanding(const worker_t *w)
{
	return w->nslots - w->nfree;
}

static void *worker_main(void *arg)
{
	worker_t *w = arg;
	const bk_conf_t *c = w->c;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	uint64_t last_expire = 0;
	bool sending = true;
	uint64_t drain_until = 0;
	for (;;) {
		uint64_t now = bk_now_ns();
		if (sending && (now >= w->t_end || (w->quota && w->measured_issued >= w->quota)
		                || w->exhausted)) {
			sending = false;
			if (c->rate > 0.0 && w->next < w->t_end && !(w->quota && w->measured_issued >= w->quota)) {
				uint64_t from = w->next > w->t_measure ? w->next : w->t_measure;
				w->res.unsent += (w->t_end - from + w->interval - 1) / w->interval;
			}
			drain_until = now + w->timeout;
			atomic_fetch_add(w->done_sending, 1);
		}
		if (!sending && (outstanding(w) == 0 || now >= drain_until))
			break;
		bool blocked = false; /* no slot or connection free: wait for a reply */
		/* writes take each key once: none may go before the run starts (unmeasured) */
		if (sending && !(c->write && now < w->t_start)) {
			if (c->rate > 0.0) {
				while (w->next <= now && w->next < w->t_end) {
					if (w->quota && w->next >= w->t_measure && w->measured_issued >= w->quota)
						break;
					if (!issue(w, w->next, now)) {
						blocked = true;
						break;
					}
					w->next += w->interval;
				}
			} else {
				/* at most one pass over the free slots, so keys that cannot be encoded
				 * (counted as malformed) cannot spin this loop */
				for (unsigned k = w->nfree; k > 0; k--) {
					if (w->quota && now >= w->t_measure && w->measured_issued >= w->quota)
						break;
					if (!issue(w, now, now))
						break;
				}
			}
		}
		for (unsigned j = 0; j < w->nconns; j++) {
			conn_t *cn = &w->conns[j];
			if (!w->stream && cn->nb)
				udp_flush(w, cn);
			else if (w->stream && cn->state == C_OPEN && cn->txlen > cn->txoff)
				stream_write(w, j);
		}
		if (now - last_expire >= 1000000ull) {
			expire(w, now);
			last_expire = now;
		}
		/* wait */
		uint64_t wait = 1000000ull;
		if (sending && c->rate > 0.0) {
			if (w->next <= now && w->nfree > 0 && !blocked)
				wait = 0;
			else if (w->next > now && w->next - now < wait)
				wait = w->next - now;
		}
		unsigned np = 0;
		for (unsigned j = 0; j < w->nconns; j++) {
			conn_t *cn = &w->conns[j];
			w->pfd[j].fd = cn->fd;
			w->pfd[j].events = 0;
			w->pfd[j].revents = 0;
			if (cn->fd < 0)
				continue;
			w->pfd[j].events = POLLIN;
			if (cn->state == C_CONNECTING || cn->ssl_want_write ||
			    (w->stream && cn->state == C_OPEN && cn->txlen > cn->txoff) ||
			    (!w->stream && cn->nb))
				w->pfd[j].events |= POLLOUT;
			np++;
		}
		struct timespec ts = {(time_t)(wait / NS), (long)(wait % NS)};
		int pr = ppoll(w->pfd, w->nconns, &ts, NULL);
		if (pr <= 0)
			continue;
		for (unsigned j = 0; j < w->nconns; j++) {
			short re = w->pfd[j].revents;
			conn_t *cn = &w->conns[j];
			if (!re || cn->fd < 0 || cn->fd != w->pfd[j].fd)
				continue;
			if (!w->stream) {
				if (re & (POLLIN | POLLERR))
					udp_read(w, j);
				continue;
			}
			if (cn->state == C_CONNECTING) {
				if (re & (POLLOUT | POLLERR | POLLHUP))
					check_connected(w, j);
				if (cn->state == C_OPEN)
					stream_write(w, j);
				continue;
			}
			if (cn->state == C_HANDSHAKE) {
				tls_step(w, j);
				if (cn->state == C_OPEN)
					stream_write(w, j);
				continue;
			}
			if (cn->ssl_want_write && (re & POLLOUT)) {
				cn->ssl_want_write = false;
				re |= POLLIN; /* the read that waited for the socket goes on */
			}
			if (re & (POLLIN | POLLERR | POLLHUP))
				stream_read(w, j);
			if (cn->state == C_OPEN && (re & POLLOUT))
				stream_write(w, j);
		}
		(void)np;
	}
	/* whatever is still out after the drain is lost */
	for (unsigned i = 0; i < w->nslots; i++)
		if (w->slots[i].state == SLOT_OUT && w->slots[i].measured)
			w->res.lost++;
	return NULL;
}

static void worker_free(worker_t *w)
{
	if (w->conns) {
		for (unsigned j = 0; j < w->nconns; j++) {
			conn_t *cn = &w->conns[j];
			if (cn->fd >= 0)
				close(cn->fd);
			if (cn->ssl)
				SSL_free(cn->ssl);
			if (cn->sess)
				SSL_SESSION_free(cn->sess);
			free(cn->rx);
			free(cn->tx);
			free(cn->fifo);
			free(cn->dg);
		}
	}
	free(w->conns);
	free(w->slots);
	free(w->freel);
	free(w->pfd);
	free(w->rxb);
	hdl_arena_free(&w->arena);
}

static int worker_init(worker_t *w, const bk_conf_t *c, unsigned idx, unsigned nconns,
                       unsigned nslots)
{
	memset(w, 0, sizeof(*w));
	w->c = c;
	w->idx = idx;
	w->stream = bk_proto_stream(c->proto);
	w->dns = c->proto == BK_DNS || c->proto == BK_DNSTCP;
	w->has_id = c->proto != BK_REST;
	w->id_shift = w->dns ? 12 : 16;
	w->id_mask = w->dns ? 0xFFFFu : 0x7FFFFFFFu;
	w->nconns = nconns;
	w->nslots = nslots;
	bh_init(&w->hist);
	bk_rng_seed(&w->rng, c->seed * 7919u + idx + 1u);
	if (c->zipf_s > 0.0) {
		bk_zipf_init(&w->zipf, c->keys->n, c->zipf_s);
		w->zmult = bk_zipf_mult(c->keys->n);
	}
	hdl_arena_init(&w->arena, NULL, 0, 1u << 22);
	w->conns = calloc(nconns, sizeof(*w->conns));
	w->slots = calloc(nslots, sizeof(*w->slots));
	w->freel = calloc(nslots, sizeof(*w->freel));
	w->pfd = calloc(nconns, sizeof(*w->pfd));
	w->rxb = w->stream ? NULL : malloc(UDP_BATCH * sizeof(*w->rxb));
	if (!w->conns || !w->slots || !w->freel || !w->pfd || (!w->stream && !w->rxb))
		goto nomem;
	for (unsigned i = 0; i < nslots; i++)
		w->freel[i] = nslots - 1u - i;
	w->nfree = nslots;
	for (unsigned j = 0; j < nconns; j++) {
		conn_t *cn = &w->conns[j];
		cn->fd = -1;
		if (w->stream) {
			cn->rx = malloc(STREAM_RX_CAP);
			cn->tx = malloc(STREAM_TX_CAP);
			if (!cn->rx || !cn->tx)
				goto nomem;
			cn->fcap = c->new_conn ? 1u : c->depth;
			cn->fifo = calloc(cn->fcap, sizeof(*cn->fifo));
			if (!cn->fifo)
				goto nomem;
		} else {
			cn->dg = malloc(UDP_BATCH * sizeof(*cn->dg));
			if (!cn->dg)
				goto nomem;
		}
		if (!(w->stream && c->new_conn) && conn_open(w, cn) != 0)
			return -1;
	}
	return 0;
nomem:
	snprintf(w->err, sizeof(w->err), "out of memory");
	return -1;
}

int bk_run(const bk_conf_t *c, bk_result_t *res, char *err, size_t errlen)
{
	bh_hist_t *hist = res->hist;
	memset(res, 0, sizeof(*res));
	res->hist = hist;
	bh_init(hist);
	res->srv_utime = res->srv_stime = -1.0;
	res->srv_rss_anon_kb = res->srv_rss_file_kb = -1;
	unsigned nt = c->threads ? c->threads : 1;
	unsigned max_slots = (c->proto == BK_DNS || c->proto == BK_DNSTCP) ? 4096u : 65536u;
	worker_t *ws = calloc(nt, sizeof(*ws));
	atomic_int done_sending = 0;
	int rc = -1;
	unsigned started = 0;
	if (!ws) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	double cpu0 = self_cpu();
	for (unsigned i = 0; i < nt; i++) {
		unsigned share_in = c->inflight / nt + (i < c->inflight % nt ? 1u : 0u);
		unsigned share_cn = c->conns / nt + (i < c->conns % nt ? 1u : 0u);
		if (share_in == 0)
			share_in = 1;
		if (share_in > max_slots)
			share_in = max_slots;
		if (bk_proto_stream(c->proto) && c->new_conn)
			share_cn = share_in;
		if (share_cn == 0)
			share_cn = 1;
		worker_t *w = &ws[i];
		if (worker_init(w, c, i, share_cn, share_in) != 0) {
			snprintf(err, errlen, "worker %u: %s", i, w->err);
			worker_free(w);
			goto out;
		}
		w->done_sending = &done_sending;
		w->timeout = (uint64_t)(c->timeout_ms * 1e6);
		if (c->max_count)
			w->quota = c->max_count / nt + (i < c->max_count % nt ? 1u : 0u);
		started++;
	}
	/*
	 * The clock starts once every worker is set up: thousands of connection buffers take a
	 * while on a slow (sanitized) build, and a short run must not end before it began.
	 */
	uint64_t t_start = bk_now_ns() + 20000000ull; /* 20 ms to set up sockets */
	uint64_t t_measure = t_start + (uint64_t)(c->warmup * 1e9);
	uint64_t t_end = t_measure + (uint64_t)(c->duration * 1e9);
	for (unsigned i = 0; i < nt; i++) {
		worker_t *w = &ws[i];
		w->t_start = t_start;
		w->t_measure = t_measure;
		w->t_end = t_end;
		if (c->rate > 0.0) {
			double per = c->rate / nt;
			w->interval = (uint64_t)(1e9 / per);
			if (w->interval == 0)
				w->interval = 1;
			w->next = t_start + w->interval * i / nt; /* stagger the workers */
		}
	}
	for (unsigned i = 0; i < nt; i++) {
		if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
			snprintf(err, errlen, "pthread_create failed");
			for (unsigned k = 0; k < i; k++)
				pthread_join(ws[k].th, NULL);
			goto out;
		}
	}
	/* the server's CPU over the measured phase */
	double u0 = 0, s0 = 0, u1 = 0, s1 = 0;
	bool cpu_ok = false;
	for (uint64_t now = bk_now_ns(); now < t_measure; now = bk_now_ns()) {
		uint64_t d = t_measure - now;
		struct timespec ts = {(time_t)(d / NS), (long)(d % NS)};
		nanosleep(&ts, NULL);
	}
	uint64_t m0 = bk_now_ns();
	if (c->server_pid > 0)
		cpu_ok = bk_proc_cpu(c->server_pid, &u0, &s0) == 0;
	uint64_t m1;
	for (;;) {
		m1 = bk_now_ns();
		if (m1 >= t_end || atomic_load(&done_sending) >= (int)nt)
			break;
		uint64_t d = t_end - m1;
		if (d > 5000000ull)
			d = 5000000ull;
		struct timespec ts = {0, (long)d};
		nanosleep(&ts, NULL);
	}
	if (cpu_ok && bk_proc_cpu(c->server_pid, &u1, &s1) == 0) {
		res->srv_utime = u1 - u0;
		res->srv_stime = s1 - s0;
	}
	if (c->server_pid > 0)
		bk_proc_rss(c->server_pid, &res->srv_rss_anon_kb, &res->srv_rss_file_kb);
	for (unsigned i = 0; i < nt; i++)
		pthread_join(ws[i].th, NULL);
	/* writes: acks/s over the time to the last ack (the run ends when the keys run out) */
	if (c->write && atomic_load(&done_sending) >= (int)nt)
		m1 = bk_now_ns();
	res->elapsed = (double)(m1 - m0) / 1e9;
	if (res->elapsed <= 0.0)
		res->elapsed = 1e-9;
	res->offered = c->rate;
	for (unsigned i = 0; i < nt; i++) {
		bk_result_t *r = &ws[i].res;
		res->sent += r->sent;
		res->completed += r->completed;
		res->lost += r->lost;
		res->late += r->late;
		res->malformed += r->malformed;
		res->conn_errors += r->conn_errors;
		res->reconnects += r->reconnects;
		res->unsent += r->unsent;
		res->echoes += r->echoes;
		res->codes_other += r->codes_other;
		res->req_bytes += r->req_bytes;
		res->rep_bytes += r->rep_bytes;
		res->challenges += r->challenges;
		res->logins += r->logins;
		res->auth_failures += r->auth_failures;
		res->tls_handshakes += r->tls_handshakes;
		res->tls_resumed += r->tls_resumed;
		for (unsigned k = 0; k < BK_MAX_CODES; k++)
			res->codes[k] += r->codes[k];
		bh_merge(res->hist, &ws[i].hist);
	}
	res->cli_cpu = self_cpu() - cpu0;
	rc = 0;
out:
	for (unsigned i = 0; i < started; i++)
		worker_free(&ws[i]);
	free(ws);
	return rc;
}
