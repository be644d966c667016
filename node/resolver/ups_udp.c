/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle over UDP to upstream servers (RFC 3652): each query
 *        has its own connected socket (a fresh source port, only the server's datagrams reach
 *        it) and a random RequestId; the request goes out as 512-byte datagrams, again at
 *        retry, 2 x retry, 3 x retry ... ms (Handle.Net's 500/1000/1500 ms by default) until the
 *        deadline; the answer's datagrams are reassembled in any order (hdl_udp_reasm_*) into a
 *        buffer sized by its MessageLength, refused over max_reply.
 *
 * Datagrams that do not belong (other RequestId, bad envelope, fragments that do not fit) are
 * dropped without ending the query: a spoofer on the path cannot make it fail, only the deadline
 * or an ICMP refusal (ECONNREFUSED on the connected socket) can.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/resolver/ups_int.h"

/* Send every datagram of the request. \retval HDL_EOK, HDL_ECONNREFUSED, HDL_EIO */
static int udp_send_all(ups_query_t *q)
{
	uint8_t d[HDL_UDP_MAX_DGRAM];
	uint32_t n = hdl_udp_npackets((uint32_t)(q->len - HDL_ENVELOPE_LEN));
	for (uint32_t k = 0; k < n; k++) {
		size_t dl = hdl_udp_packet(q->req, q->len, k, true, d);
		if (send(q->fd, d, dl, 0) < 0) {
			if (errno == ECONNREFUSED)
				return HDL_ECONNREFUSED;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
				return HDL_EIO;
			continue; /* the retransmission will try again */
		}
		q->pool->st.udp_sent++;
	}
	q->tries++;
	q->next_try_ms = ups_now_ms() + (uint64_t)q->pool->lim.udp_retry_ms * q->tries;
	ups_timer_at(q->timer, q->next_try_ms < q->deadline_ms ? q->next_try_ms : q->deadline_ms);
	return HDL_EOK;
}

static void udp_fail(ups_query_t *q, int err, const char *why)
{
	ups_server_t *s = q->srv;
	log_peer(LOG_LVL_WARN, "upstream %s: %s", s->label, why);
	ups_server_fail(s, err);
	ups_complete(q, err, NULL, 0);
}

static void udp_read(evutil_socket_t fd, short what, void *arg)
{
	ups_query_t *q = arg;
	uint32_t max = q->pool->lim.max_reply;
	uint8_t d[HDL_UDP_MAX_DGRAM + 64];
	for (unsigned burst = 0; burst < UPS_UDP_BURST; burst++) {
		ssize_t n = recv(q->fd, d, sizeof(d), 0);
		hdl_envelope_t env;
		if (n < 0) {
			if (errno == ECONNREFUSED)
				udp_fail(q, HDL_ECONNREFUSED, "refused (ICMP port unreachable)");
			return;
		}
		if ((size_t)n < HDL_ENVELOPE_LEN || (size_t)n > HDL_UDP_MAX_DGRAM ||
		    hdl_envelope_decode(d, (size_t)n, &env) != HDL_EOK ||
		    env.request_id != q->reasm.request_id)
			continue;
		if (!q->rbuf) {
			if (env.msg_len > max) {
				udp_fail(q, HDL_ELIMIT, "answer over upstream_max_reply");
				return;
			}
			size_t cap = HDL_ENVELOPE_LEN + (size_t)env.msg_len;
			if (!(q->rbuf = malloc(cap)))
				return;
			uint32_t id = q->reasm.request_id;
			hdl_udp_reasm_init(&q->reasm, q->rbuf, cap);
			q->reasm.request_id = id;
		}
		int r = hdl_udp_reasm_add(&q->reasm, d, (size_t)n);
		if (r < 0) {
			log_debug("upstream %s: datagram dropped (%s)", q->srv->label,
			          hdl_strerror(r));
			continue;
		}
		if (r == 1) {
			uint8_t *buf = q->rbuf;
			size_t len = HDL_ENVELOPE_LEN + (size_t)q->reasm.msg_len;
			q->rbuf = NULL;
			uint64_t rtt = ups_now_ms() - q->sent_ms;
			/* Karn: a retransmitted request gives no RTT sample */
			ups_server_ok(q->srv, q->tries == 1 ? (uint32_t)(rtt > 60000 ? 60000 : rtt)
			                                    : UINT32_MAX);
			ups_complete(q, HDL_EOK, buf, len);
			free(buf);
			return;
		}
	}
}

int ups_udp_start(ups_query_t *q)
{
	ups_server_t *s = q->srv;
	const struct sockaddr_storage *ss = &s->addr[s->addr_i];
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? HDL_ENOMEM : HDL_EIO;
	if (connect(fd, (const struct sockaddr *)ss, s->alen[s->addr_i]) != 0) {
		close(fd);
		return HDL_EIO;
	}
	q->fd = fd;
	q->uev = event_new(q->pool->base, fd, EV_READ | EV_PERSIST, udp_read, q);
	if (!q->uev || event_add(q->uev, NULL) != 0) {
		ups_udp_stop(q);
		return HDL_ENOMEM;
	}
	uint32_t id = (uint32_t)ups_rand(q->pool);
	q->req[8] = (uint8_t)(id >> 24);
	q->req[9] = (uint8_t)(id >> 16);
	q->req[10] = (uint8_t)(id >> 8);
	q->req[11] = (uint8_t)id;
	hdl_udp_reasm_init(&q->reasm, NULL, 0);
	q->reasm.request_id = id;
	q->state = Q_UDP;
	q->sent_ms = ups_now_ms();
	q->tries = 0;
	int r = udp_send_all(q);
	if (r != HDL_EOK) {
		ups_udp_stop(q);
		q->state = Q_IDLE; /* the caller fails it */
		return r;
	}
	return HDL_EOK;
}

void ups_udp_retry(ups_query_t *q)
{
	int r = udp_send_all(q);
	if (r != HDL_EOK)
		udp_fail(q, r,
		         r == HDL_ECONNREFUSED ? "refused (ICMP port unreachable)" : "cannot send");
}

void ups_udp_stop(ups_query_t *q)
{
	if (q->uev) {
		event_free(q->uev);
		q->uev = NULL;
	}
	if (q->fd >= 0) {
		close(q->fd);
		q->fd = -1;
	}
	free(q->rbuf);
	q->rbuf = NULL;
}
