/* SPDX-License-Identifier: Apache-2.0 */
/*
 * UDP transport: recvmmsg batches, one reply per request, replies over 512 bytes split into
 * 492-byte fragments (TC set), multi-packet requests reassembled in a small per-worker table
 * (udp_reasm_slots; when it is full, a source holding the most slots loses its oldest: the
 * newcomer's own, else the one that started a request last).
 *
 * Amplification: an answer is sent over UDP only when it fits the UDP answer cap, the smaller of
 * udp_answer_max_datagrams datagrams and udp_answer_max_ratio times the request's bytes; a larger
 * one is replaced by the TCP redirect (see udp_redirect()). Protocol-error replies are never
 * larger than the request they refuse. Response-rate limiting per source prefix (rrl.c) runs
 * before the request is dispatched.
 *
 * Sockets bound to a wildcard address (server.c turns on IP_PKTINFO / IPV6_RECVPKTINFO there)
 * receive each datagram's destination address as a control message and send every reply datagram
 * (GSO sends and fragments included) with that address as its source, so that on a multi-homed
 * host the reply leaves from the address the client queried. Sockets bound to one address take
 * the plain path (no control messages).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/server/rrl.h"
#include "node/server/admin.h"
#include "node/server/obs.h"
#include "node/server/preq.h"
#include "node/server/rebind.h"
#include "node/server/worker.h"

/* Monotonic milliseconds, read once per receive batch (RRL buckets). */
static _Thread_local uint64_t t_now_ms;
/* Monotonic nanoseconds of the receive batch when latencies are measured (obs.h), else 0. */
static _Thread_local uint64_t t_batch_ns;
/* udp_sock_t.serial of the socket being read (0 outside rx_loop), and the last one handed out. */
static _Thread_local uint32_t t_rx_serial;
static _Thread_local uint32_t t_serial_last;

/* Source address for a reply: the destination address of the request (pktinfo sockets only). */
typedef struct udp_src {
	int family; /* AF_INET, AF_INET6, or 0: none (plain socket, or no control message came) */
	union {
		struct in_pktinfo v4;
		struct in6_pktinfo v6;
	} pi;
} udp_src_t;

/* Control buffer big enough for one pktinfo plus one UDP_SEGMENT message. */
#define UDP_CTL_LEN (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t)))
typedef union udp_ctl {
	char buf[UDP_CTL_LEN];
	struct cmsghdr align;
} udp_ctl_t;

/* The reply source from a received datagram's control messages (none if absent/truncated). */
static void src_from_cmsg(struct msghdr *h, int family, udp_src_t *src)
{
	src->family = 0;
	if (!family || (h->msg_flags & MSG_CTRUNC))
		return;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
			struct in_pktinfo in;
			memcpy(&in, CMSG_DATA(cm), sizeof(in));
			memset(&src->pi.v4, 0, sizeof(src->pi.v4));
			/* the local address the request reached (its destination for unicast) */
			src->pi.v4.ipi_spec_dst = in.ipi_spec_dst;
			src->family = AF_INET;
			return;
		}
		if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
			struct in6_pktinfo in6;
			memcpy(&in6, CMSG_DATA(cm), sizeof(in6));
			memset(&src->pi.v6, 0, sizeof(src->pi.v6));
			/* a multicast destination is no source: let the kernel pick one */
			if (!IN6_IS_ADDR_MULTICAST(&in6.ipi6_addr))
				src->pi.v6.ipi6_addr = in6.ipi6_addr;
			src->pi.v6.ipi6_ifindex = in6.ipi6_ifindex;
			src->family = AF_INET6;
			return;
		}
	}
}

/* Write the pktinfo message for \p src at \p cm; returns the control bytes used (0: none). */
static size_t src_put(struct cmsghdr *cm, const udp_src_t *src)
{
	if (!src || !src->family)
		return 0;
	if (src->family == AF_INET) {
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
		memcpy(CMSG_DATA(cm), &src->pi.v4, sizeof(src->pi.v4));
		return CMSG_SPACE(sizeof(struct in_pktinfo));
	}
	cm->cmsg_level = IPPROTO_IPV6;
	cm->cmsg_type = IPV6_PKTINFO;
	cm->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
	memcpy(CMSG_DATA(cm), &src->pi.v6, sizeof(src->pi.v6));
	return CMSG_SPACE(sizeof(struct in6_pktinfo));
}

/* Point \p h's control at \p ctl holding the pktinfo for \p src (nothing when src is none). */
static void src_attach(struct msghdr *h, udp_ctl_t *ctl, const udp_src_t *src)
{
	if (!src || !src->family)
		return;
	memset(ctl, 0, sizeof(*ctl));
	h->msg_control = ctl->buf;
	h->msg_controllen = sizeof(ctl->buf);
	h->msg_controllen = src_put(CMSG_FIRSTHDR(h), src);
}

/* One datagram to \p peer, from \p src where given. */
static ssize_t send_one(int fd, const void *p, size_t len, const struct sockaddr_storage *peer,
                        socklen_t plen, const udp_src_t *src)
{
	if (!src || !src->family)
		return sendto(fd, p, len, MSG_DONTWAIT, (const struct sockaddr *)peer, plen);
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
	struct msghdr h;
	udp_ctl_t ctl;
	memset(&h, 0, sizeof(h));
	h.msg_name = (void *)peer;
	h.msg_namelen = plen;
	h.msg_iov = &iov;
	h.msg_iovlen = 1;
	src_attach(&h, &ctl, src);
	return sendmsg(fd, &h, MSG_DONTWAIT);
}

static bool same_peer(const struct sockaddr_storage *a, socklen_t al,
                      const struct sockaddr_storage *b, socklen_t bl)
{
	return al == bl && memcmp(a, b, al) == 0;
}

/* Same source address, whatever the port. */
static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		              &((const struct sockaddr_in6 *)b)->sin6_addr,
		              sizeof(struct in6_addr)) == 0;
	return false;
}

static void send_reply(worker_t *w, int fd, const struct sockaddr_storage *peer, socklen_t plen,
                       const udp_src_t *src, size_t n)
{
	if (n <= HDL_UDP_MAX_DGRAM) {
		if (send_one(fd, w->out, n, peer, plen, src) < 0)
			log_peer(LOG_LVL_INFO, "udp send: %s", strerror(errno));
		return;
	}
	uint32_t np = hdl_udp_npackets((uint32_t)(n - HDL_ENVELOPE_LEN));
	struct mmsghdr msgs[64];
	struct iovec iov[64];
	udp_ctl_t ctl;
	struct msghdr ch;
	memset(&ch, 0, sizeof(ch));
	src_attach(&ch, &ctl, src); /* one pktinfo message, shared by every fragment */
	uint32_t k = 0;
	while (k < np) {
		unsigned batch = 0;
		for (; batch < 64 && k < np; batch++, k++) {
			uint8_t *pkt = w->frags + (size_t)k * HDL_UDP_MAX_DGRAM;
			size_t pl = hdl_udp_packet(w->out, n, k, true, pkt);
			iov[batch].iov_base = pkt;
			iov[batch].iov_len = pl;
			memset(&msgs[batch], 0, sizeof(msgs[batch]));
			msgs[batch].msg_hdr.msg_name = (void *)peer;
			msgs[batch].msg_hdr.msg_namelen = plen;
			msgs[batch].msg_hdr.msg_iov = &iov[batch];
			msgs[batch].msg_hdr.msg_iovlen = 1;
			msgs[batch].msg_hdr.msg_control = ch.msg_control;
			msgs[batch].msg_hdr.msg_controllen = ch.msg_controllen;
		}
		unsigned sent = 0;
		while (sent < batch) {
			int r = sendmmsg(fd, msgs + sent, batch - sent, MSG_DONTWAIT);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				log_peer(LOG_LVL_INFO, "udp send of %u fragments: %s", np,
				         r < 0 ? strerror(errno) : "nothing sent");
				return;
			}
			sent += (unsigned)r;
		}
	}
}

/*
 * Reply datagrams of one receive batch (fragments of multi-packet replies included), sent
 * together with one sendmmsg. The datagrams lie in w->udp_tx at a 512-byte stride. A
 * multi-packet reply is one message whose fragments are contiguous (all but the last are exactly
 * 512 bytes) and, where the kernel has UDP GSO (Linux 4.18+), goes out as one UDP_SEGMENT send
 * that the stack cuts into the same datagrams: the peer sees exactly what separate sends give,
 * at a fraction of the send-path cost. Without GSO each fragment is a message of its own.
 */
#define UDP_TX_SLOTS 128u /* datagram slots per batch (w->udp_tx) */
#define UDP_GSO_MAX 64u   /* fragments per GSO send (the kernel's UDP_MAX_SEGMENTS is >= 64) */
#define UDP_RX_ROUNDS 8u  /* recvmmsg batches per wakeup at most (then back to the loop) */

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* Cleared for good on the first send the kernel refuses with a GSO error. */
static _Atomic bool udp_gso_ok = true;

typedef struct tx_batch {
	struct mmsghdr msgs[UDP_TX_SLOTS];
	struct iovec iov[UDP_TX_SLOTS];
	struct sockaddr_storage peers[UDP_TX_SLOTS];
	udp_ctl_t ctl[UDP_TX_SLOTS];   /* pktinfo (first, if any), then UDP_SEGMENT (if GSO) */
	uint8_t pilen[UDP_TX_SLOTS];   /* control bytes of message i's pktinfo (0: none) */
	uint8_t nfrag[UDP_TX_SLOTS]; /* datagrams in message i (GSO when > 1) */
	unsigned n;     /* messages */
	unsigned slots; /* datagram slots of w->udp_tx used */
} tx_batch_t;

/* Send message i's fragments as separate datagrams (after a refused GSO send). */
static void tx_send_split(int fd, tx_batch_t *tx, unsigned i)
{
	const struct msghdr *h = &tx->msgs[i].msg_hdr;
	const uint8_t *p = h->msg_iov[0].iov_base;
	size_t left = h->msg_iov[0].iov_len;
	/* the same message without its UDP_SEGMENT control (the pktinfo, first, is kept) */
	struct iovec iov;
	struct msghdr one = *h;
	one.msg_iov = &iov;
	one.msg_iovlen = 1;
	one.msg_control = tx->pilen[i] ? h->msg_control : NULL;
	one.msg_controllen = tx->pilen[i];
	while (left > 0) {
		size_t dl = left > HDL_UDP_MAX_DGRAM ? HDL_UDP_MAX_DGRAM : left;
		iov.iov_base = (void *)p;
		iov.iov_len = dl;
		if (sendmsg(fd, &one, MSG_DONTWAIT) < 0) {
			log_peer(LOG_LVL_INFO, "udp send: %s", strerror(errno));
			return;
		}
		p += dl;
		left -= dl;
	}
}

static void tx_flush(int fd, tx_batch_t *tx)
{
	unsigned sent = 0;
	while (sent < tx->n) {
		int r = sendmmsg(fd, tx->msgs + sent, tx->n - sent, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : 0;
			if (tx->nfrag[sent] > 1 && (e == EIO || e == EINVAL || e == ENOPROTOOPT ||
			                            e == EOPNOTSUPP)) {
				/* no UDP GSO here: fragments one by one from now on */
				if (atomic_exchange(&udp_gso_ok, false))
					log_notice("udp: segmentation offload refused (%s); "
					           "sending fragments separately", strerror(e));
				tx_send_split(fd, tx, sent);
			} else {
				/* skip the datagram that failed (e.g. an unreachable peer) */
				log_peer(LOG_LVL_INFO, "udp send: %s",
				         r < 0 ? strerror(e) : "nothing sent");
			}
			sent++;
			continue;
		}
		sent += (unsigned)r;
	}
	tx->n = 0;
	tx->slots = 0;
}

/* Queue slots [tx->slots, tx->slots + nfrag) as one message of \p len bytes. */
static void tx_add(worker_t *w, tx_batch_t *tx, const struct sockaddr_storage *peer,
                   socklen_t plen, const udp_src_t *src, size_t len, unsigned nfrag)
{
	unsigned i = tx->n++;
	memcpy(&tx->peers[i], peer, plen);
	tx->iov[i].iov_base = w->udp_tx + (size_t)tx->slots * HDL_UDP_MAX_DGRAM;
	tx->iov[i].iov_len = len;
	tx->nfrag[i] = (uint8_t)nfrag;
	tx->slots += nfrag;
	struct msghdr *h = &tx->msgs[i].msg_hdr;
	memset(h, 0, sizeof(*h));
	h->msg_name = &tx->peers[i];
	h->msg_namelen = plen;
	h->msg_iov = &tx->iov[i];
	h->msg_iovlen = 1;
	tx->pilen[i] = 0;
	if (nfrag == 1 && (!src || !src->family))
		return; /* the plain path: no control messages */
	memset(&tx->ctl[i], 0, sizeof(tx->ctl[i]));
	h->msg_control = tx->ctl[i].buf;
	h->msg_controllen = sizeof(tx->ctl[i].buf);
	struct cmsghdr *cm = CMSG_FIRSTHDR(h);
	size_t used = src_put(cm, src);
	tx->pilen[i] = (uint8_t)used;
	if (nfrag > 1) {
		if (used)
			cm = (struct cmsghdr *)(void *)(tx->ctl[i].buf + used);
		cm->cmsg_level = SOL_UDP;
		cm->cmsg_type = UDP_SEGMENT;
		cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		uint16_t seg = HDL_UDP_MAX_DGRAM;
		memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
		used += CMSG_SPACE(sizeof(uint16_t));
	}
	h->msg_controllen = used;
}

static uint32_t rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Datagrams and bytes on the wire (UDP payloads) of an \p n-byte reply. */
static uint32_t reply_npackets(size_t n)
{
	return n <= HDL_UDP_MAX_DGRAM ? 1 : hdl_udp_npackets((uint32_t)(n - HDL_ENVELOPE_LEN));
}

static size_t wire_bytes(size_t n)
{
	return n + (size_t)HDL_ENVELOPE_LEN * (reply_npackets(n) - 1);
}

/* The UDP answer cap for a request of \p bytes_in bytes (UDP payloads). */
static size_t answer_cap(const node_limits_t *lim, size_t bytes_in)
{
	uint32_t maxd = NODE_LIMIT(lim, udp_answer_max_datagrams);
	uint32_t ratio = NODE_LIMIT(lim, udp_answer_max_ratio);
	if (maxd == 0 || maxd > HDL_UDP_MAX_PACKETS)
		maxd = HDL_UDP_MAX_PACKETS;
	/* n datagrams of at most 512 bytes each <=> at most n * 512 bytes (all but the last full)
	 */
	size_t cap = (size_t)maxd * HDL_UDP_MAX_DGRAM;
	if (ratio && bytes_in * ratio < cap)
		cap = bytes_in * ratio;
	return cap;
}

static const char udp_redirect_msg[] = "answer too large for UDP, ask over TCP";

/*
 * The TCP redirect: what tells a client to ask again over TCP, in place of an answer too large
 * for UDP (and of a rate-limited one, "slip").
 *
 * CNRI Handle.Net 9.2's client, net.handle.hdllib.HandleResolver, never looks at TC (its
 * sendHdlUdpRequest() counts datagrams from MessageLength) and knows no "truncated" response
 * code. What moves it to TCP at once is an RC_ERROR (2) answer: sendRequestToInterface() turns
 * a response with responseCode == RC_ERROR into a HandleException(SERVER_ERROR);
 * sendRequestToServerByProtocol() passes it up, and the protocol loops of
 * sendRequestToServer() / sendRequestToSite() and HappyEyeballsResolver.sendRequestToSites()
 * catch it and try the next entry of preferredProtocols (UDP, TCP, HTTP), i.e. TCP, after one
 * round trip. A partial answer (only some datagrams) would also end on TCP, but only after
 * sendHdlUdpRequest() has waited out its 500 + 1000 + 1500 ms retry scheme. Any other response
 * code is returned to the caller as the answer. Our own client (client/client.c) falls back to
 * TCP on the same RC_ERROR.
 *
 * The reply carries the request's RequestId, opcode and, when asked for, its digest, so that
 * hdllib accepts it as the answer to its request. Built from the raw request: a slipped request
 * is never dispatched. \return reply length in w->out, 0 when none fits \p cap
 */
static size_t udp_redirect(worker_t *w, const uint8_t *msg, size_t len, const char *text,
                           size_t cap)
{
	size_t n =
	    dispatch_error_reply(&w->dctx, msg, len, HDL_RC_ERROR, text, w->out, DISPATCH_OUT_CAP);
	if (n > cap && text[0])
		n = dispatch_error_reply(&w->dctx, msg, len, HDL_RC_ERROR, "", w->out,
		                         DISPATCH_OUT_CAP);
	return n <= cap ? n : 0;
}

/*
 * Make the \p n-byte reply in w->out fit UDP for a request of \p bytes_in bytes: a protocol-level
 * refusal (RC 4 or 5: the request did not parse, or asks for an operation we do not do) is
 * rebuilt without its text when it is larger than the request, and dropped when even that is
 * larger; an answer over the UDP answer cap becomes the TCP redirect. \return the new length
 */
static size_t udp_fit(worker_t *w, const uint8_t *msg, size_t len, size_t bytes_in, size_t n)
{
	uint32_t rc = n >= HDL_ENVELOPE_LEN + 8 ? rd_be32(w->out + HDL_ENVELOPE_LEN + 4) : 0;
	if ((rc == HDL_RC_PROTOCOL_ERROR || rc == HDL_RC_OPERATION_NOT_SUPPORTED) && n > bytes_in) {
		n = dispatch_error_reply(&w->dctx, msg, len, rc, "", w->out, DISPATCH_OUT_CAP);
		w->dctx.n_errors--; /* the same refusal, counted once */
		if (n > bytes_in) {
			log_peer(LOG_LVL_INFO,
			         "udp: no %zu-byte error reply (RC %u) to a %zu-byte request", n,
			         rc, bytes_in);
			w->dctx.n_dropped++;
			return 0;
		}
		return n;
	}
	size_t cap = answer_cap(&w->node->limits, bytes_in);
	if (wire_bytes(n) <= cap)
		return n;
	size_t big = n;
	n = udp_redirect(w, msg, len, udp_redirect_msg, cap);
	if (n == 0) {
		log_peer(LOG_LVL_INFO,
		         "udp: no redirect fits the %zu-byte cap of a %zu-byte request", cap,
		         bytes_in);
		return 0;
	}
	log_debug("udp: %zu-byte answer over the %zu-byte UDP cap: redirected to TCP", big, cap);
	rrl_count(w->node->rrl, (unsigned)w->id, RRL_CTR_REDIRECTED);
	return n;
}

/* Answer to a rate-limited request that slips: the redirect without text, never to a response. */
static size_t udp_slip(worker_t *w, const uint8_t *msg, size_t len, size_t bytes_in)
{
	if (len < HDL_ENVELOPE_LEN + HDL_HEADER_LEN)
		return 0; /* no whole header: nothing a client would take for an answer */
	if (rd_be32(msg + HDL_ENVELOPE_LEN + 4) != 0)
		return 0; /* a response (non-zero ResponseCode): never answered */
	return udp_redirect(w, msg, len, "", answer_cap(&w->node->limits, bytes_in));
}

/*
 * Rate-limit, dispatch and send the answer to one whole request \p msg (\p len bytes; it came in
 * \p bytes_in bytes of UDP payload). \p tx: the batch to queue it in, or NULL to send now.
 */
/* A waiting UDP request keeps its return path and the size it came in (the answer caps). */
typedef struct udp_wait {
	udp_src_t src;
	uint32_t bytes_in;
	uint32_t serial; /* the socket it came in on (udp_sock_t.serial) */
} udp_wait_t;

_Static_assert(sizeof(udp_wait_t) <= sizeof(((preq_t *)0)->tpriv), "preq tpriv too small");

/* True when socket \p fd with \p serial is still read by \p w. */
static bool sock_live(const worker_t *w, int fd, uint32_t serial)
{
	for (const udp_sock_t *us = w->udp; us; us = us->next) {
		if (us->fd == fd)
			return us->serial == serial;
	}
	return false;
}

/*
 * A request that waited is answered to where it came from. An administrative answer is short
 * (a handle name or an error message, never larger than the request's own data by more than a
 * header); a delegated resolution's can be anything, so it gets the answer caps of udp_fit()
 * (its request is kept in p->req).
 */
static void on_complete(preq_t *p)
{
	worker_t *w = p->w;
	udp_wait_t uw;
	memcpy(&uw, p->tpriv, sizeof(uw));
	size_t n = dispatch_preq_reply(&w->dctx, p, w->out, DISPATCH_OUT_CAP);
	if (n && p->req)
		n = udp_fit(w, p->req, p->req_len, uw.bytes_in, n);
	/* a reload may have closed the socket it came in on (and the fd number be reused) */
	if (n && p->udp_fd >= 0 && !w->stopping && sock_live(w, p->udp_fd, uw.serial))
		send_reply(w, p->udp_fd, &p->peer, p->peer_len, &uw.src, n);
	preq_done(p);
}

typedef struct udp_origin {
	int fd;
	const struct sockaddr_storage *peer;
	socklen_t plen;
	const udp_src_t *src;
	size_t bytes_in;
} udp_origin_t;

static void attach(void *tctx, preq_t *p)
{
	const udp_origin_t *u = tctx;
	udp_wait_t uw = {
	    .src = {.family = 0}, .bytes_in = (uint32_t)u->bytes_in, .serial = t_rx_serial};
	if (u->src)
		uw.src = *u->src;
	p->udp_fd = u->fd;
	memcpy(&p->peer, u->peer, u->plen);
	p->peer_len = u->plen;
	memcpy(p->tpriv, &uw, sizeof(uw));
	p->complete = on_complete;
}

static void answer(worker_t *w, int fd, const struct sockaddr_storage *peer, socklen_t plen,
                   const udp_src_t *src, const uint8_t *msg, size_t len, size_t bytes_in,
                   tx_batch_t *tx)
{
	const node_limits_t *lim = &w->node->limits;
	rrl_verdict_t v = RRL_PASS;
	size_t n = 0;
	if (w->node->rrl) {
		rrl_params_t p = {
		    .rate = NODE_LIMIT(lim, udp_rrl_rate),
		    .burst = NODE_LIMIT(lim, udp_rrl_burst),
		    .slip = NODE_LIMIT(lim, udp_rrl_slip),
		};
		v = rrl_check(w->node->rrl, (unsigned)w->id, (const struct sockaddr *)peer, &p,
		              t_now_ms);
	}
	if (v == RRL_DROP) {
		w->dctx.n_dropped++;
		return;
	}
	if (v == RRL_SLIP) {
		n = udp_slip(w, msg, len, bytes_in);
	} else {
		udp_origin_t uo = {fd, peer, plen, src, bytes_in};
		dispatch_origin_t o = {
		    .transport = WR_T_UDP,
		    .peer = peer,
		    .peer_len = plen,
		    .attach = attach,
		    .tctx = &uo,
		};
		w->dctx.t_in_ns = t_batch_ns;
		dispatch_message_from(&w->dctx, &o, msg, len, w->out, DISPATCH_OUT_CAP, &n);
		if (n)
			n = udp_fit(w, msg, len, bytes_in, n);
	}
	if (n == 0)
		return;
	uint32_t np = reply_npackets(n);
	if (!tx || np > UDP_TX_SLOTS) {
		send_reply(w, fd, peer, plen, src, n);
		return;
	}
	if (tx->slots + np > UDP_TX_SLOTS || tx->n == UDP_TX_SLOTS)
		tx_flush(fd, tx);
	if (np == 1) {
		memcpy(w->udp_tx + (size_t)tx->slots * HDL_UDP_MAX_DGRAM, w->out, n);
		tx_add(w, tx, peer, plen, src, n, 1);
		return;
	}
	bool gso = np <= UDP_GSO_MAX && NODE_LIMIT(lim, udp_gso) &&
	           atomic_load_explicit(&udp_gso_ok, memory_order_relaxed);
	/*
	 * Datagram k goes to slot base + k. Without GSO each datagram is queued as a message of its
	 * own (tx_add advances tx->slots by one, to base + k + 1 for the next one); with GSO the
	 * whole run becomes one message once it is written.
	 */
	unsigned base = tx->slots;
	size_t total = 0;
	for (uint32_t k = 0; k < np; k++) {
		size_t pl = hdl_udp_packet(w->out, n, k, true,
		                           w->udp_tx + (size_t)(base + k) * HDL_UDP_MAX_DGRAM);
		if (!gso)
			tx_add(w, tx, peer, plen, src, pl, 1);
		total += pl;
	}
	if (gso)
		tx_add(w, tx, peer, plen, src, total, np);
}

static void slot_release(reasm_slot_t *s)
{
	s->used = false;
	s->r.started = false;
}

/* A hash of the source address (not the port) of \p a. */
static uint32_t addr_hash(const struct sockaddr_storage *a)
{
	uint32_t h = 2166136261u;
	const uint8_t *p = NULL;
	size_t n = 0;
	if (a->ss_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
		n = 4;
	} else if (a->ss_family == AF_INET6) {
		p = (const uint8_t *)&((const struct sockaddr_in6 *)a)->sin6_addr;
		n = 16;
	}
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

#define REASM_HT 2048u /* >= 2 x the most udp_reasm_slots (1024) */

/*
 * The slot a new request from \p peer takes when every slot is in use. Among the sources holding
 * the most slots: the newcomer's own oldest request when its source is one of them (a source
 * flooding partial requests evicts its own), else the oldest request of the one of them that
 * started a request last. A flood from as many addresses as there are slots thus churns its own
 * slots (each flooding address restarts one every few milliseconds), and a request that has
 * waited quietly for its next datagram is not the one that goes.
 */
static reasm_slot_t *reasm_victim(worker_t *w, const struct sockaddr_storage *peer)
{
	struct {
		const struct sockaddr_storage *addr;
		unsigned count;
		uint64_t last; /* the source's newest request started then */
	} ht[REASM_HT];
	uint16_t of[1024]; /* slot -> its source's entry in ht */
	unsigned mask = REASM_HT - 1, n = w->n_reasm < 1024 ? w->n_reasm : 1024;
	memset(ht, 0, sizeof(ht));
	for (unsigned i = 0; i < n; i++) {
		const struct sockaddr_storage *a = &w->reasm[i].peer;
		unsigned k = addr_hash(a) & mask;
		while (ht[k].addr && !same_addr(ht[k].addr, a))
			k = (k + 1) & mask;
		ht[k].addr = a;
		ht[k].count++;
		if (w->reasm[i].started_ms > ht[k].last)
			ht[k].last = w->reasm[i].started_ms;
		of[i] = (uint16_t)k;
	}
	unsigned most = 0;
	for (unsigned i = 0; i < n; i++)
		most = ht[of[i]].count > most ? ht[of[i]].count : most;
	/* the source that loses a request: the newcomer's when it holds the most, else the busiest
	 * source that started a request last */
	int pick = -1;
	for (unsigned i = 0; i < n; i++) {
		unsigned k = of[i];
		if (ht[k].count != most)
			continue;
		if (same_addr(ht[k].addr, peer)) {
			pick = (int)k;
			break;
		}
		if (pick < 0 || ht[k].last > ht[pick].last)
			pick = (int)k;
	}
	reasm_slot_t *victim = NULL;
	for (unsigned i = 0; i < n; i++) {
		reasm_slot_t *s = &w->reasm[i];
		if ((int)of[i] == pick && (!victim || s->started_ms < victim->started_ms))
			victim = s;
	}
	return victim;
}

/*
 * Add one fragment of a multi-packet request; a new request takes a free slot, or evicts one
 * (reasm_victim()).
 */
static void reassemble(worker_t *w, int fd, const struct sockaddr_storage *peer, socklen_t plen,
                       const udp_src_t *src, const hdl_envelope_t *env, const uint8_t *dg,
                       size_t len)
{
	reasm_slot_t *slot = NULL, *free_slot = NULL;
	for (unsigned i = 0; i < w->n_reasm; i++) {
		reasm_slot_t *s = &w->reasm[i];
		if (!s->used) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (s->fd == fd && s->r.request_id == env->request_id &&
		    same_peer(&s->peer, s->peer_len, peer, plen)) {
			slot = s;
			break;
		}
	}
	if (!slot) {
		slot = free_slot;
		if (!slot) {
			slot = reasm_victim(w, peer);
			log_peer(LOG_LVL_NOTICE,
			         "udp reassembly table full; dropping request %u of the busiest source",
			         slot->r.request_id);
		}
		size_t need = HDL_ENVELOPE_LEN + (size_t)env->msg_len;
		if (slot->buf_cap < need) {
			uint8_t *nb = realloc(slot->buf, need);
			if (!nb) {
				log_err("udp reassembly: out of memory");
				slot_release(slot);
				return;
			}
			slot->buf = nb;
			slot->buf_cap = need;
		}
		hdl_udp_reasm_init(&slot->r, slot->buf, slot->buf_cap);
		slot->used = true;
		slot->fd = fd;
		memcpy(&slot->peer, peer, plen);
		slot->peer_len = plen;
		slot->started_ms = worker_now_ms();
	}
	int ret = hdl_udp_reasm_add(&slot->r, dg, len);
	if (ret == 1) {
		size_t mlen = HDL_ENVELOPE_LEN + (size_t)slot->r.msg_len;
		size_t bytes_in = mlen + (size_t)HDL_ENVELOPE_LEN * (slot->r.npackets - 1);
		slot_release(slot);
		answer(w, fd, peer, plen, src, slot->buf, mlen, bytes_in, NULL);
	} else if (ret < 0) {
		log_peer(LOG_LVL_INFO, "udp fragment of request %u rejected: %s", env->request_id,
		         hdl_strerror(ret));
		slot_release(slot);
	}
}

static void on_datagram(worker_t *w, int fd, const struct sockaddr_storage *peer, socklen_t plen,
                        const udp_src_t *src, const uint8_t *dg, size_t len, tx_batch_t *tx)
{
	hdl_envelope_t env;
	int ret = hdl_envelope_decode(dg, len, &env);
	if (ret != HDL_EOK && ret != HDL_ELIMIT) {
		log_peer(LOG_LVL_INFO, "udp: dropped %zu-byte datagram: %s", len, hdl_strerror(ret));
		w->dctx.n_dropped++;
		return;
	}
	uint32_t max_len = NODE_LIMIT(&w->node->limits, max_message_len);
	bool single = env.seq == 0 && (size_t)env.msg_len + HDL_ENVELOPE_LEN <= len;
	/* one-packet messages that arrive short are answered (protocol error) rather than held */
	if (ret == HDL_ELIMIT || env.msg_len > max_len ||
	    (env.seq == 0 && hdl_udp_npackets(env.msg_len) <= 1))
		single = true;
	if (single)
		answer(w, fd, peer, plen, src, dg, len, len, tx);
	else
		reassemble(w, fd, peer, plen, src, &env, dg, len);
}

/*
 * Receive and answer; \p pkt_family is the family whose pktinfo the socket receives (wildcard
 * binds) or 0 (the plain path: no control buffers).
 */
static inline void rx_loop(evutil_socket_t fd, udp_sock_t *us, int pkt_family)
{
	worker_t *w = us->w;
	struct mmsghdr msgs[WORKER_UDP_BATCH];
	struct iovec iov[WORKER_UDP_BATCH];
	struct sockaddr_storage peers[WORKER_UDP_BATCH];
	udp_ctl_t rxctl[WORKER_UDP_BATCH]; /* used by pktinfo sockets only */
	udp_src_t src;
	src.family = 0;
	tx_batch_t tx;
	tx.n = 0;
	tx.slots = 0;
	t_rx_serial = us->serial;

	for (unsigned round = 0; round < UDP_RX_ROUNDS; round++) {
		for (unsigned i = 0; i < WORKER_UDP_BATCH; i++) {
			iov[i].iov_base = w->udp_rx + (size_t)i * WORKER_UDP_RXBUF;
			iov[i].iov_len = WORKER_UDP_RXBUF;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_name = &peers[i];
			msgs[i].msg_hdr.msg_namelen = sizeof(peers[i]);
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			if (pkt_family) {
				msgs[i].msg_hdr.msg_control = rxctl[i].buf;
				msgs[i].msg_hdr.msg_controllen = sizeof(rxctl[i].buf);
			}
		}
		int n = recvmmsg(fd, msgs, WORKER_UDP_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_peer(LOG_LVL_WARN, "udp receive: %s", strerror(errno));
			break;
		}
		t_now_ms = worker_now_ms();
		t_batch_ns = w->dctx.timing ? obs_now_ns() : 0;
		for (int i = 0; i < n; i++) {
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
				log_peer(LOG_LVL_INFO, "udp: dropped datagram over %u bytes",
				         WORKER_UDP_RXBUF);
				continue;
			}
			if (pkt_family)
				src_from_cmsg(&msgs[i].msg_hdr, pkt_family, &src);
			on_datagram(w, fd, &peers[i], msgs[i].msg_hdr.msg_namelen, &src,
			            iov[i].iov_base, msgs[i].msg_len, &tx);
		}
		tx_flush(fd, &tx);
		if ((unsigned)n < WORKER_UDP_BATCH)
			break;
	}
	tx_flush(fd, &tx);
	t_rx_serial = 0;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	rx_loop(fd, arg, 0);
}

static void on_readable_pi4(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	rx_loop(fd, arg, AF_INET);
}

static void on_readable_pi6(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	rx_loop(fd, arg, AF_INET6);
}

/* The family whose pktinfo \p fd receives (server.c enables it on wildcard binds), or 0. */
static int pktinfo_family(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int on = 0;
	socklen_t ol = sizeof(on);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return 0;
	if (ss.ss_family == AF_INET &&
	    getsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, &ol) == 0 && on)
		return AF_INET;
	if (ss.ss_family == AF_INET6 &&
	    getsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, &ol) == 0 && on)
		return AF_INET6;
	return 0;
}

/* Send buffer of a UDP socket: room for the largest answer's datagrams (best effort). */
#define UDP_SNDBUF (2 * 1024 * 1024)

int udp_start(worker_t *w)
{
	uint32_t slots = NODE_LIMIT(&w->node->limits, udp_reasm_slots);
	slots = slots ? slots : 16;
	slots = slots < 1024 ? slots : 1024; /* reasm_victim()'s tables */
	w->reasm = calloc(slots, sizeof(*w->reasm));
	w->n_reasm = w->reasm ? slots : 0;
	w->udp_rx = malloc((size_t)WORKER_UDP_BATCH * WORKER_UDP_RXBUF);
	w->frags = malloc((size_t)HDL_UDP_MAX_PACKETS * HDL_UDP_MAX_DGRAM);
	w->udp_tx = malloc((size_t)UDP_TX_SLOTS * HDL_UDP_MAX_DGRAM);
	w->udp = NULL;
	if (!w->reasm || !w->udp_rx || !w->frags || !w->udp_tx)
		return HDL_ENOMEM;
	for (unsigned i = 0; i < w->fds.n_udp; i++) {
		int fd = w->fds.udp[i];
		w->fds.udp[i] = -1; /* the list owns it now (closed on failure) */
		if (udp_sock_add(w, fd) != HDL_EOK)
			return HDL_ENOMEM;
	}
	return HDL_EOK;
}

int udp_sock_add(worker_t *w, int fd)
{
	udp_sock_t *us = calloc(1, sizeof(*us));
	if (!us) {
		close(fd);
		return HDL_ENOMEM;
	}
	us->fd = fd;
	us->w = w;
	if (++t_serial_last == 0)
		t_serial_last = 1; /* 0: no socket */
	us->serial = t_serial_last;
	/*
	 * A multi-datagram answer is queued at once with MSG_DONTWAIT: what does not fit the send
	 * buffer is lost, so make room for the largest the caps allow.
	 */
	int sb = UDP_SNDBUF;
	(void)setsockopt(us->fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	int pf = pktinfo_family(us->fd);
	event_callback_fn cb = pf == AF_INET    ? on_readable_pi4
	                       : pf == AF_INET6 ? on_readable_pi6
	                                        : on_readable;
	us->ev = event_new(w->base, us->fd, EV_READ | EV_PERSIST, cb, us);
	if (!us->ev || event_add(us->ev, NULL) != 0) {
		if (us->ev)
			event_free(us->ev);
		close(fd);
		free(us);
		return HDL_ENOMEM;
	}
	udp_sock_t **tail = &w->udp;
	while (*tail)
		tail = &(*tail)->next;
	*tail = us;
	return HDL_EOK;
}

static void sock_free(worker_t *w, udp_sock_t *us)
{
	/* fragments of requests that came in on it will never complete */
	for (unsigned i = 0; i < w->n_reasm; i++) {
		if (w->reasm[i].used && w->reasm[i].fd == us->fd)
			slot_release(&w->reasm[i]);
	}
	event_free(us->ev);
	close(us->fd);
	free(us);
}

unsigned udp_sock_close(worker_t *w, const struct sockaddr_storage *addr)
{
	unsigned closed = 0;
	for (udp_sock_t **pp = &w->udp; *pp;) {
		udp_sock_t *us = *pp;
		if (!rebind_fd_bound_to(us->fd, addr)) {
			pp = &us->next;
			continue;
		}
		*pp = us->next;
		sock_free(w, us);
		closed++;
	}
	return closed;
}

void udp_stop(worker_t *w)
{
	while (w->udp) {
		udp_sock_t *us = w->udp;
		w->udp = us->next;
		sock_free(w, us);
	}
}

void udp_reasm_expire(worker_t *w, uint64_t now_ms)
{
	for (unsigned i = 0; i < w->n_reasm; i++) {
		reasm_slot_t *s = &w->reasm[i];
		if (s->used && now_ms - s->started_ms >= WORKER_REASM_TIMEOUT_MS) {
			log_peer(LOG_LVL_INFO, "udp: request %u incomplete after %u ms, dropped",
			         s->r.request_id, WORKER_REASM_TIMEOUT_MS);
			slot_release(s);
		}
	}
}

void udp_free(worker_t *w)
{
	udp_stop(w);
	for (unsigned i = 0; w->reasm && i < w->n_reasm; i++) {
		free(w->reasm[i].buf);
		w->reasm[i].buf = NULL;
	}
	free(w->reasm);
	w->reasm = NULL;
	w->n_reasm = 0;
	free(w->udp_rx);
	free(w->frags);
	free(w->udp_tx);
	w->udp_tx = NULL;
	w->udp_rx = NULL;
	w->frags = NULL;
}
