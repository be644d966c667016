/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle resolver client: UDP (retries, multi-packet reassembly, TCP fallback), TCP and
 *        the HTTP native tunnel (hand-written HTTP/1.1, no libcurl).
 *
 * A client is immutable after hdl_client_new(); every call owns its sockets and buffers, so one
 * client may be shared between threads. The only other state is per thread: the words that
 * explain the last failure (hdl_client_last_detail()).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/internal.h"
#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"

#define CLIENT_DEFAULT_PORT 2641u
#define CLIENT_DEFAULT_HTTP_PORT 8000u
#define CLIENT_DEFAULT_TIMEOUT_MS 5000u
#define CLIENT_DEFAULT_UDP_TRIES 3u
#define CLIENT_MAX_UDP_TRIES 16u
#define CLIENT_UDP_STEP_MS 500u     /**< hdllib: 500, 1000, 1500 ms */
#define CLIENT_EXPIRATION_S 43200u  /**< hdllib: now + 12 h */
#define CLIENT_HTTP_MAX_HEAD 16384u /**< status line + headers */
#define CLIENT_USER_AGENT "idnode-hdlclient/0.1"
#define CLIENT_FRAME_MAX (HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN)

struct hdl_client {
	char *host;
	uint16_t port;
	hdl_transport_t transport;
	unsigned timeout_ms;
	unsigned udp_tries;
	bool no_tcp_fallback;
	bool have_addr; /**< host was numeric: addr is fixed */
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

struct hdl_result {
	uint8_t *raw;
	size_t raw_len;
	hdl_arena_t arena;
	hdl_msg_t msg;
	hdl_transport_t transport;
	struct hdl_result *next; /**< the next message of a streamed (CN) answer */
};

/** One encoded request and what the answer must match. */
typedef struct request {
	const uint8_t *frame; /**< envelope + message */
	size_t len;
	uint32_t request_id;
	uint32_t opcode;
	bool digest; /**< RD asked: check the digest in the answer */
	hdl_slice_t handle; /**< for the HTTP path */
} request_t;

/* ---- what went wrong, in words ----------------------------------------------------------- */

#define CLIENT_DETAIL_MAX 256u

static _Thread_local char last_detail[CLIENT_DETAIL_MAX];

static void detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Say why the current call fails (the first reason found stays). */
static void detail(const char *fmt, ...)
{
	va_list ap;
	if (last_detail[0])
		return;
	va_start(ap, fmt);
	vsnprintf(last_detail, sizeof(last_detail), fmt, ap);
	va_end(ap);
}

const char *hdl_client_last_detail(void)
{
	return last_detail;
}

/** Does the start of a reply look like HTTP ("HTTP/")? */
static bool looks_http(const uint8_t *p, size_t n)
{
	return n >= 5 && memcmp(p, "HTTP/", 5) == 0;
}

/* ---- time ------------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
	int64_t d = deadline - now_ms();
	if (d <= 0)
		return 0;
	return d > INT32_MAX ? INT32_MAX : (int)d;
}

/* ---- addresses --------------------------------------------------------------------------- */

static int lookup(const char *host, uint16_t port, bool numeric_only,
                  struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	int ret = HDL_EDNS;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = numeric_only ? AI_NUMERICHOST : AI_ADDRCONFIG;
	snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
	hints.ai_flags |= AI_NUMERICSERV;
	if (getaddrinfo(host, portstr, &hints, &res) != 0 || res == NULL)
		goto fail;
	if (res->ai_addrlen > sizeof(*ss))
		goto fail;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = (socklen_t)res->ai_addrlen;
	ret = HDL_EOK;
fail:
	if (res)
		freeaddrinfo(res);
	return ret;
}

static int client_addr(const hdl_client_t *c, struct sockaddr_storage *ss, socklen_t *sslen)
{
	if (c->have_addr) {
		memcpy(ss, &c->addr, sizeof(*ss));
		*sslen = c->addrlen;
		return HDL_EOK;
	}
	return lookup(c->host, c->port, false, ss, sslen);
}

/* ---- client ------------------------------------------------------------------------------ */

int hdl_client_new(const hdl_client_opts_t *opts, hdl_client_t **out)
{
	hdl_client_t *c = NULL;
	int ret = HDL_EINVAL;

	if (out)
		*out = NULL;
	if (!opts || !out || !opts->host || !opts->host[0])
		goto fail;
	if (opts->transport != HDL_TRANSPORT_UDP && opts->transport != HDL_TRANSPORT_TCP &&
	    opts->transport != HDL_TRANSPORT_HTTP)
		goto fail;
	if (opts->udp_tries > CLIENT_MAX_UDP_TRIES)
		goto fail;
	ret = HDL_ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->host = strdup(opts->host);
	if (!c->host)
		goto fail;
	c->transport = opts->transport;
	c->port = opts->port;
	if (c->port == 0)
		c->port = opts->transport == HDL_TRANSPORT_HTTP ? CLIENT_DEFAULT_HTTP_PORT
		                                               : CLIENT_DEFAULT_PORT;
	c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
	c->udp_tries = opts->udp_tries ? opts->udp_tries : CLIENT_DEFAULT_UDP_TRIES;
	c->no_tcp_fallback = opts->no_tcp_fallback;
	/* A numeric address is fixed for the client's life; names are looked up per call. */
	if (lookup(c->host, c->port, true, &c->addr, &c->addrlen) == HDL_EOK)
		c->have_addr = true;
	*out = c;
	c = NULL;
	ret = HDL_EOK;
fail:
	hdl_client_free(c);
	return ret;
}

void hdl_client_free(hdl_client_t *c)
{
	if (!c)
		return;
	free(c->host);
	free(c);
}

/* ---- result ------------------------------------------------------------------------------ */

uint32_t hdl_result_rcode(const hdl_result_t *r)
{
	return r ? r->msg.hdr.rcode : 0;
}

const hdl_msg_t *hdl_result_msg(const hdl_result_t *r)
{
	return r ? &r->msg : NULL;
}

const hdl_value_t *hdl_result_values(const hdl_result_t *r, uint32_t *n)
{
	if (n)
		*n = 0;
	if (!r || r->msg.hdr.rcode != HDL_RC_SUCCESS || r->msg.kind != HDL_BODY_VALUES)
		return NULL;
	if (n)
		*n = r->msg.u.values.n_values;
	return r->msg.u.values.values;
}

const uint8_t *hdl_result_raw(const hdl_result_t *r, size_t *len)
{
	if (len)
		*len = r ? r->raw_len : 0;
	return r ? r->raw : NULL;
}

hdl_transport_t hdl_result_transport(const hdl_result_t *r)
{
	return r ? r->transport : HDL_TRANSPORT_UDP;
}

void hdl_result_free(hdl_result_t *r)
{
	while (r) {
		hdl_result_t *next = r->next;
		hdl_arena_free(&r->arena);
		free(r->raw);
		free(r);
		r = next;
	}
}

/**
 * \brief Take ownership of \p raw (envelope + message), decode it and check it answers \p req.
 * \retval HDL_EOK (\p *out set), HDL_EPROTO, HDL_EDIGEST, HDL_ENOMEM
 */
static int result_make(uint8_t *raw, size_t len, const request_t *req, hdl_transport_t tr,
                       hdl_result_t **out)
{
	hdl_result_t *r = calloc(1, sizeof(*r));
	int ret = HDL_ENOMEM;

	if (!r) {
		free(raw);
		goto fail;
	}
	r->raw = raw;
	r->raw_len = len;
	r->transport = tr;
	hdl_arena_init(&r->arena, NULL, 0, 4u * CLIENT_FRAME_MAX);
	ret = hdl_msg_decode(raw, len, &r->arena, &r->msg);
	if (ret != HDL_EOK) {
		ret = ret == HDL_ENOMEM ? HDL_ENOMEM : HDL_EPROTO;
		goto fail;
	}
	ret = HDL_EPROTO;
	if (r->msg.env.request_id != req->request_id)
		goto fail;
	/* A challenge answer (OC 200) is answered with the original request's opcode. */
	if (req->opcode != HDL_OC_CHALLENGE_RESPONSE && r->msg.hdr.opcode != req->opcode)
		goto fail;
	if (req->digest) {
		uint8_t dig[HDL_DIGEST_MAX_LEN];
		size_t dlen = 0;
		uint32_t body_len;

		ret = HDL_EDIGEST;
		if (r->msg.rd.len == 0 || req->len < HDL_ENVELOPE_LEN + HDL_HEADER_LEN)
			goto fail;
		body_len = (uint32_t)req->frame[40] << 24 | (uint32_t)req->frame[41] << 16 |
		           (uint32_t)req->frame[42] << 8 | req->frame[43];
		if (body_len > req->len - HDL_ENVELOPE_LEN - HDL_HEADER_LEN)
			goto fail;
		if (hdl_digest(r->msg.rd_alg, req->frame + HDL_ENVELOPE_LEN,
		               HDL_HEADER_LEN + (size_t)body_len, dig, &dlen) != HDL_EOK)
			goto fail;
		if (dlen != r->msg.rd.len || memcmp(dig, r->msg.rd.p, dlen) != 0)
			goto fail;
	}
	*out = r;
	r = NULL;
	ret = HDL_EOK;
fail:
	hdl_result_free(r);
	return ret;
}

/* ---- sockets ----------------------------------------------------------------------------- */

static int err_from_errno(int e)
{
	switch (e) {
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return HDL_ECONNREFUSED;
	case ETIMEDOUT:
		return HDL_ETIMEDOUT;
	case ENOMEM:
	case ENOBUFS:
		return HDL_ENOMEM;
	default:
		return HDL_EIO;
	}
}

/** \brief Wait for \p events on \p fd until \p deadline. \retval HDL_EOK, HDL_ETIMEDOUT, HDL_EIO */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int ms = left_ms(deadline);
		int n;

		if (ms == 0)
			return HDL_ETIMEDOUT;
		n = poll(&p, 1, ms);
		if (n > 0)
			return HDL_EOK;
		if (n == 0)
			return HDL_ETIMEDOUT;
		if (errno != EINTR)
			return HDL_EIO;
	}
}

/** \brief Non-blocking TCP connect bounded by \p deadline. \return fd >= 0 or an hdl_err_t */
static int tcp_connect(const struct sockaddr_storage *ss, socklen_t sslen, int64_t deadline)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ret;

	if (fd < 0)
		return err_from_errno(errno);
	if (connect(fd, (const struct sockaddr *)ss, sslen) != 0) {
		int soerr = 0;
		socklen_t l = sizeof(soerr);

		if (errno != EINPROGRESS) {
			ret = err_from_errno(errno);
			goto fail;
		}
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret != HDL_EOK)
			goto fail;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0) {
			ret = HDL_EIO;
			goto fail;
		}
		if (soerr != 0) {
			ret = err_from_errno(soerr);
			goto fail;
		}
	}
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return ret;
}

/**
 * \brief Connect to the client's server: its fixed numeric address, or each address the name
 *        resolves to in turn until one accepts.
 * \return fd >= 0 or an hdl_err_t
 */
static int connect_any(const hdl_client_t *c, int64_t deadline)
{
	struct addrinfo hints, *res = NULL;
	char portstr[8];
	int ret = HDL_EDNS;

	if (c->have_addr)
		return tcp_connect(&c->addr, c->addrlen, deadline);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", (unsigned)c->port);
	if (getaddrinfo(c->host, portstr, &hints, &res) != 0 || res == NULL)
		goto out;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct sockaddr_storage ss;

		if (ai->ai_addrlen > sizeof(ss))
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		ret = tcp_connect(&ss, (socklen_t)ai->ai_addrlen, deadline);
		if (ret >= 0 || ret == HDL_ETIMEDOUT)
			break;
	}
out:
	if (res)
		freeaddrinfo(res);
	return ret;
}

/**
 * An errno of send/recv on a connected socket: a reset there is not a refused connection (the
 * server accepted it) but a server that dropped it without answering.
 */
static int err_after_connect(int e)
{
	if (e == ECONNRESET || e == EPIPE) {
		detail("the server accepted the connection, then reset it without answering");
		return HDL_EIO;
	}
	return err_from_errno(e);
}

static int send_all(int fd, const uint8_t *p, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int ret = wait_fd(fd, POLLOUT, deadline);
			if (ret != HDL_EOK)
				return ret;
			continue;
		}
		return err_after_connect(errno);
	}
	return HDL_EOK;
}

/**
 * \brief Read up to \p cap bytes (at least 1) before \p deadline.
 * \return bytes read, 0 at EOF, or a negative hdl_err_t
 */
static ssize_t recv_some(int fd, uint8_t *p, size_t cap, int64_t deadline)
{
	for (;;) {
		ssize_t n = recv(fd, p, cap, 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			int ret = wait_fd(fd, POLLIN, deadline);
			if (ret == HDL_ETIMEDOUT)
				detail("the server accepted the connection but sent no "
				       "answer in time");
			if (ret != HDL_EOK)
				return ret;
			continue;
		}
		return err_after_connect(errno);
	}
}

/** \brief Read exactly \p len bytes. EOF before that is HDL_EPROTO. */
static int recv_exact(int fd, uint8_t *p, size_t len, int64_t deadline)
{
	while (len > 0) {
		ssize_t n = recv_some(fd, p, len, deadline);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return HDL_EPROTO;
		p += n;
		len -= (size_t)n;
	}
	return HDL_EOK;
}

/** \brief Read one framed message: envelope, then MessageLength bytes (capped). */
static int read_frame(int fd, int64_t deadline, uint8_t **out, size_t *outlen)
{
	uint8_t env[HDL_ENVELOPE_LEN];
	hdl_envelope_t e;
	uint8_t *buf = NULL;
	size_t total;
	int ret;

	ssize_t got = recv_some(fd, env, HDL_ENVELOPE_LEN, deadline);
	if (got == 0)
		detail("the server closed the connection without answering: is this a Handle "
		       "protocol port (UDP/TCP, 2641)?");
	if (got <= 0) {
		ret = got == 0 ? HDL_EPROTO : (int)got;
		goto fail;
	}
	ret = recv_exact(fd, env + got, HDL_ENVELOPE_LEN - (size_t)got, deadline);
	if (looks_http(env, (size_t)got))
		detail(
		    "the server answered in HTTP: is this the HTTP port? (idnode resolve --http)");
	if (ret != HDL_EOK)
		goto fail;
	ret = HDL_EPROTO;
	if (hdl_envelope_decode(env, sizeof(env), &e) != HDL_EOK) {
		detail("the reply does not start with a Handle message envelope");
		goto fail;
	}
	if (e.msg_len > HDL_MAX_MESSAGE_LEN)
		goto fail;
	total = HDL_ENVELOPE_LEN + (size_t)e.msg_len;
	ret = HDL_ENOMEM;
	buf = malloc(total);
	if (!buf)
		goto fail;
	memcpy(buf, env, HDL_ENVELOPE_LEN);
	ret = recv_exact(fd, buf + HDL_ENVELOPE_LEN, total - HDL_ENVELOPE_LEN, deadline);
	if (ret != HDL_EOK)
		goto fail;
	*out = buf;
	*outlen = total;
	buf = NULL;
fail:
	free(buf);
	return ret;
}

/* ---- TCP --------------------------------------------------------------------------------- */

static int do_tcp(const hdl_client_t *c, const request_t *req, int64_t deadline,
                  hdl_result_t **out)
{
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	int fd = -1;
	int ret;

	fd = connect_any(c, deadline);
	if (fd < 0) {
		ret = fd;
		goto fail;
	}
	ret = send_all(fd, req->frame, req->len, deadline);
	if (ret != HDL_EOK)
		goto fail;
	ret = read_frame(fd, deadline, &raw, &rawlen);
	if (ret != HDL_EOK)
		goto fail;
	ret = result_make(raw, rawlen, req, HDL_TRANSPORT_TCP, out);
	raw = NULL;
fail:
	free(raw);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- HTTP native tunnel ------------------------------------------------------------------ */

/** \brief Percent-encode everything but RFC 3986 unreserved characters ('/' becomes %2F). */
static size_t url_encode(hdl_slice_t s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (uint32_t i = 0; i < s.len; i++) {
		uint8_t ch = s.p[i];
		bool keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
		if (keep) {
			if (o + 1 >= cap)
				return 0;
			out[o++] = (char)ch;
		} else {
			if (o + 3 >= cap)
				return 0;
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return o;
}

/** \brief Case-insensitive search of \p needle in the \p n bytes at \p hay. */
static bool contains_nocase(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle);
	for (size_t i = 0; i + m <= n; i++)
		if (strncasecmp(hay + i, needle, m) == 0)
			return true;
	return false;
}

/**
 * \brief Parse the status line and headers in \p head (\p n bytes, CRLF or LF line ends, ending
 *        with the empty line).
 * \retval HDL_EOK with \p *clen, HDL_EPROTO (not 200, no Content-Length, chunked, bad numbers)
 */
static int http_parse_head(const char *head, size_t n, size_t *clen)
{
	const char *p = head, *end = head + n;
	bool have_len = false;
	int ret = HDL_EPROTO;

	/* status line: HTTP/1.x SP 3DIGIT ... */
	if (n < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
		goto fail;
	if (p[9] != '2' || p[10] != '0' || p[11] != '0')
		goto fail;
	p = memchr(p, '\n', (size_t)(end - p));
	if (!p)
		goto fail;
	p++;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *colon, *v, *ve;
		size_t llen;

		if (!eol)
			goto fail;
		llen = (size_t)(eol - p);
		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		if (llen == 0)
			break; /* end of headers */
		colon = memchr(p, ':', llen);
		if (!colon)
			goto fail;
		v = colon + 1;
		ve = p + llen;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if ((size_t)(colon - p) == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
			if (contains_nocase(v, (size_t)(ve - v), "chunked"))
				goto fail;
		} else if ((size_t)(colon - p) == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
			size_t val = 0;
			if (v == ve || have_len)
				goto fail;
			for (const char *q = v; q < ve; q++) {
				if (*q < '0' || *q > '9')
					goto fail;
				val = val * 10 + (size_t)(*q - '0');
				if (val > CLIENT_FRAME_MAX + 2)
					goto fail;
			}
			*clen = val;
			have_len = true;
		}
		p = eol + 1;
	}
	if (have_len)
		ret = HDL_EOK;
fail:
	return ret;
}

/** \brief Position just after the blank line ending the headers, or NULL. */
static const char *http_head_end(const char *buf, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return buf + i + 2;
		if (i + 2 < n && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return buf + i + 3;
	}
	return NULL;
}

static int do_http(const hdl_client_t *c, const request_t *req, int64_t deadline,
                   hdl_result_t **out)
{
	char *head = NULL, *path = NULL, *resp = NULL;
	uint8_t *raw = NULL, *body = NULL;
	size_t rawlen = 0, hlen, plen, got = 0, clen = 0, bstart, skip = 0;
	const char *hend = NULL;
	char hostbuf[300];
	int fd = -1;
	int ret;

	ret = HDL_ENOMEM;
	plen = (size_t)req->handle.len * 3 + 2;
	path = malloc(plen);
	if (!path)
		goto fail;
	if (req->handle.len == 0)
		path[0] = '\0';
	else if (url_encode(req->handle, path, plen) == 0)
		goto fail;
	if (strchr(c->host, ':'))
		snprintf(hostbuf, sizeof(hostbuf), "[%.256s]:%u", c->host, (unsigned)c->port);
	else
		snprintf(hostbuf, sizeof(hostbuf), "%.256s:%u", c->host, (unsigned)c->port);
	hlen = strlen(path) + strlen(hostbuf) + 512;
	head = malloc(hlen);
	if (!head)
		goto fail;
	hlen = (size_t)snprintf(head, hlen,
	                        "POST /%s HTTP/1.1\r\n"
	                        "Host: %s\r\n"
	                        "Accept: application/x-hdl-message\r\n"
	                        "User-Agent: " CLIENT_USER_AGENT "\r\n"
	                        "Content-Type: application/x-hdl-message\r\n"
	                        "Content-Length: %zu\r\n"
	                        "Connection: close\r\n"
	                        "\r\n",
	                        path, hostbuf, req->len);

	fd = connect_any(c, deadline);
	if (fd < 0) {
		ret = fd;
		goto fail;
	}
	ret = send_all(fd, (const uint8_t *)head, hlen, deadline);
	if (ret != HDL_EOK)
		goto fail;
	ret = send_all(fd, req->frame, req->len, deadline);
	if (ret != HDL_EOK)
		goto fail;

	/* Read until the end of the headers; whatever follows starts the body. */
	ret = HDL_ENOMEM;
	resp = malloc(CLIENT_HTTP_MAX_HEAD);
	if (!resp)
		goto fail;
	while (!hend) {
		ssize_t n;

		ret = HDL_EPROTO;
		if (got == CLIENT_HTTP_MAX_HEAD)
			goto fail;
		n = recv_some(fd, (uint8_t *)resp + got, CLIENT_HTTP_MAX_HEAD - got, deadline);
		if (n > 0 && got < 5 && got + (size_t)n >= 5 && !looks_http((uint8_t *)resp, 5))
			detail("is this the HTTP port? the server answered with a non-HTTP reply%s",
			       (uint8_t)resp[0] == 2
			           ? " (it looks like the Handle protocol: the UDP/TCP port)"
			           : "");
		if (n < 0) {
			ret = (int)n;
			goto fail;
		}
		if (n == 0) {
			detail(
			    got ? "the server closed the connection in the middle of its answer"
			        : "is this the HTTP port? the server closed the connection without "
			          "answering");
			goto fail;
		}
		got += (size_t)n;
		hend = http_head_end(resp, got);
	}
	bstart = (size_t)(hend - resp);
	ret = http_parse_head(resp, bstart, &clen);
	if (ret != HDL_EOK) {
		if (!looks_http((uint8_t *)resp, got))
			detail("is this the HTTP port? the server answered with a non-HTTP reply");
		else
			detail("the server answered \"%.*s\", not 200 with a Content-Length",
			       (int)strcspn(resp, "\r\n") > 80 ? 80 : (int)strcspn(resp, "\r\n"),
			       resp);
		goto fail;
	}
	ret = HDL_EPROTO;
	if (clen < HDL_ENVELOPE_LEN || got - bstart > clen)
		goto fail;
	/* The whole body, then check it is exactly one frame (one leading CR/LF tolerated). */
	ret = HDL_ENOMEM;
	body = malloc(clen);
	if (!body)
		goto fail;
	memcpy(body, resp + bstart, got - bstart);
	ret = recv_exact(fd, body + (got - bstart), clen - (got - bstart), deadline);
	if (ret != HDL_EOK)
		goto fail;
	if (body[0] == '\r' && clen > 1 && body[1] == '\n')
		skip = 2;
	else if (body[0] == '\n' || body[0] == '\r')
		skip = 1;
	ret = HDL_EPROTO;
	if (clen - skip < HDL_ENVELOPE_LEN)
		goto fail;
	{
		hdl_envelope_t e;
		if (hdl_envelope_decode(body + skip, clen - skip, &e) != HDL_EOK)
			goto fail;
		if ((size_t)e.msg_len + HDL_ENVELOPE_LEN != clen - skip)
			goto fail;
	}
	rawlen = clen - skip;
	ret = HDL_ENOMEM;
	raw = malloc(rawlen);
	if (!raw)
		goto fail;
	memcpy(raw, body + skip, rawlen);
	ret = result_make(raw, rawlen, req, HDL_TRANSPORT_HTTP, out);
	raw = NULL;
fail:
	free(raw);
	free(body);
	free(resp);
	free(head);
	free(path);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- UDP --------------------------------------------------------------------------------- */

/** Outcome of the UDP attempts, to decide on the TCP fallback. */
typedef enum udp_outcome {
	UDP_NOTHING = 0, /**< no datagram of ours arrived */
	UDP_PARTIAL,     /**< part of a multi-packet answer arrived */
	UDP_REFUSED,     /**< ICMP port unreachable */
	UDP_BAD,         /**< an answer of ours arrived but didn't decode */
	UDP_REDIRECT,    /**< RC_ERROR: the server wants TCP (answer too large, rate-limited) */
} udp_outcome_t;

/** Receive buffer asked for UDP answers (the kernel caps it at net.core.rmem_max). */
#define CLIENT_UDP_RCVBUF (4 * 1024 * 1024)

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int udp_send_request(int fd, const request_t *req)
{
	uint8_t dgram[HDL_UDP_MAX_DGRAM];
	uint32_t msg_len = (uint32_t)(req->len - HDL_ENVELOPE_LEN);
	uint32_t np = hdl_udp_npackets(msg_len);

	for (uint32_t k = 0; k < np; k++) {
		size_t n = hdl_udp_packet(req->frame, req->len, k, true, dgram);
		if (n == 0)
			return HDL_EINVAL;
		if (send(fd, dgram, n, 0) < 0) {
			if (errno == ECONNREFUSED)
				return HDL_ECONNREFUSED;
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
				continue; /* a lost datagram; the retry covers it */
			return err_from_errno(errno);
		}
	}
	return HDL_EOK;
}

/**
 * \brief UDP attempts with growing waits. On success \p *out is set; otherwise \p *outcome tells
 *        why, and the return is HDL_ETIMEDOUT / HDL_ECONNREFUSED / HDL_EPROTO / HDL_EDIGEST /
 *        another error.
 */
static int do_udp(const hdl_client_t *c, const request_t *req, int64_t deadline,
                  udp_outcome_t *outcome, hdl_result_t **out)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	hdl_udp_reasm_t reasm;
	uint8_t *rbuf = NULL;
	uint8_t dgram[HDL_UDP_MAX_DGRAM + 1];
	unsigned tries = c->udp_tries;
	unsigned steps = tries * (tries + 1) / 2; /* 1 + 2 + ... + tries, in 500 ms units */
	int64_t budget, start = now_ms();
	int64_t spent = 0;
	int fd = -1;
	int ret;

	*outcome = UDP_NOTHING;
	ret = client_addr(c, &ss, &sslen);
	if (ret != HDL_EOK)
		goto fail;
	/* hdllib waits 500, 1000, 1500 ms; keep that, but leave TCP part of a short budget. */
	budget = left_ms(deadline);
	if (!c->no_tcp_fallback) {
		int64_t cap = budget * 3 / 5;
		budget = (int64_t)CLIENT_UDP_STEP_MS * steps;
		if (budget > cap)
			budget = cap;
	}
	ret = HDL_ENOMEM;
	rbuf = malloc(CLIENT_FRAME_MAX);
	if (!rbuf)
		goto fail;
	hdl_udp_reasm_init(&reasm, rbuf, CLIENT_FRAME_MAX);
	reasm.request_id = req->request_id;

	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = err_from_errno(errno);
		goto fail;
	}
	/* A multi-packet answer arrives in one burst: room for all of its datagrams. */
	{
		int rb = CLIENT_UDP_RCVBUF;
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
	}
	/* connect(): the kernel drops datagrams from other peers and reports ICMP unreachable. */
	if (connect(fd, (const struct sockaddr *)&ss, sslen) != 0) {
		ret = err_from_errno(errno);
		goto fail;
	}
	ret = HDL_ETIMEDOUT;
	for (unsigned k = 0; k < tries; k++) {
		int64_t try_end;
		int sret;

		spent += budget * (int64_t)(k + 1) / (int64_t)steps;
		if (k + 1 == tries && c->no_tcp_fallback)
			try_end = deadline;
		else
			try_end = start + spent;
		if (try_end > deadline)
			try_end = deadline;
		sret = udp_send_request(fd, req);
		if (sret == HDL_ECONNREFUSED) {
			*outcome = UDP_REFUSED;
			ret = HDL_ECONNREFUSED;
			goto fail;
		}
		if (sret != HDL_EOK) {
			ret = sret;
			goto fail;
		}
		for (;;) {
			int w = wait_fd(fd, POLLIN, try_end);
			ssize_t n;
			int ar;

			if (w == HDL_ETIMEDOUT)
				break;
			if (w != HDL_EOK) {
				ret = w;
				goto fail;
			}
			n = recv(fd, dgram, sizeof(dgram), 0);
			if (n < 0) {
				if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
					continue;
				if (errno == ECONNREFUSED) {
					*outcome = UDP_REFUSED;
					ret = HDL_ECONNREFUSED;
					goto fail;
				}
				ret = err_from_errno(errno);
				goto fail;
			}
			/* Ignore what isn't ours: short, oversized, or another RequestId. */
			if ((size_t)n < HDL_ENVELOPE_LEN || (size_t)n > HDL_UDP_MAX_DGRAM)
				continue;
			if (be32(dgram + 8) != req->request_id)
				continue;
			ar = hdl_udp_reasm_add(&reasm, dgram, (size_t)n);
			if (ar < 0) {
				*outcome = UDP_BAD;
				continue;
			}
			if (reasm.started && *outcome == UDP_NOTHING)
				*outcome = UDP_PARTIAL;
			if (ar == 1) {
				size_t len = HDL_ENVELOPE_LEN + (size_t)reasm.msg_len;
				uint8_t *raw = malloc(len);
				if (!raw) {
					ret = HDL_ENOMEM;
					goto fail;
				}
				memcpy(raw, rbuf, len);
				ret = result_make(raw, len, req, HDL_TRANSPORT_UDP, out);
				if (ret == HDL_EPROTO)
					*outcome = UDP_BAD;
				/*
				 * RC_ERROR over UDP means "ask again over TCP" (an answer over
				 * the server's UDP cap, or a rate-limited request), as hdllib's
				 * HandleResolver takes it: retry on TCP when that is allowed.
				 */
				if (ret == HDL_EOK && !c->no_tcp_fallback &&
				    hdl_result_rcode(*out) == HDL_RC_ERROR) {
					hdl_result_free(*out);
					*out = NULL;
					*outcome = UDP_REDIRECT;
					ret = HDL_EPROTO;
				}
				goto fail;
			}
		}
		if (left_ms(deadline) == 0)
			break;
	}
	ret = *outcome == UDP_NOTHING ? HDL_ETIMEDOUT : HDL_EPROTO;
fail:
	if (fd >= 0)
		close(fd);
	free(rbuf);
	return ret;
}

/* ---- requests ---------------------------------------------------------------------------- */

static uint32_t random_request_id(void)
{
	uint32_t id = 0;
	ssize_t n;

	do {
		n = getrandom(&id, sizeof(id), 0);
	} while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(id)) {
		/* No entropy source: fall back to the clock (ids need not be secret, only varied). */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		id = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec ^ (uint32_t)getpid();
	}
	id &= 0x7FFFFFFFu;
	return id ? id : 1;
}

static hdl_slice_t msg_handle(const hdl_msg_t *m)
{
	hdl_slice_t none = {NULL, 0};

	switch (m->kind) {
	case HDL_BODY_RESOLVE:
		return m->u.resolve.handle;
	case HDL_BODY_VALUES:
		return m->u.values.handle;
	case HDL_BODY_HANDLE:
		return m->u.handle;
	case HDL_BODY_INDEXES:
		return m->u.indexes.handle;
	case HDL_BODY_LOGIN:
		return m->u.login.id_handle;
	case HDL_BODY_CHAL_ANSWER:
		return m->u.answer.id_handle;
	case HDL_BODY_SESSION_REQ:
		return m->u.session.id_handle;
	default:
		return none;
	}
}

/** \brief Encode \p m into a new buffer, growing it until it fits. */
static int encode_alloc(const hdl_msg_t *m, uint8_t **out, size_t *outlen)
{
	size_t cap = 1024;
	int ret;

	for (;;) {
		uint8_t *buf = malloc(cap);
		if (!buf)
			return HDL_ENOMEM;
		ret = hdl_msg_encode(m, buf, cap, outlen);
		if (ret == HDL_EOK) {
			*out = buf;
			return HDL_EOK;
		}
		free(buf);
		if (ret != HDL_ESPACE || cap >= CLIENT_FRAME_MAX)
			return ret == HDL_ESPACE ? HDL_ELIMIT : ret;
		cap *= 4;
		if (cap > CLIENT_FRAME_MAX)
			cap = CLIENT_FRAME_MAX;
	}
}

/** \brief Send the encoded \p req over the client's transport. */
static int send_request(hdl_client_t *c, const request_t *req, hdl_result_t **out)
{
	int64_t deadline = now_ms() + c->timeout_ms;
	udp_outcome_t oc = UDP_NOTHING;
	int ret;

	switch (c->transport) {
	case HDL_TRANSPORT_TCP:
		return do_tcp(c, req, deadline, out);
	case HDL_TRANSPORT_HTTP:
		return do_http(c, req, deadline, out);
	case HDL_TRANSPORT_UDP:
	default:
		break;
	}
	ret = do_udp(c, req, deadline, &oc, out);
	if (ret == HDL_EOK || c->no_tcp_fallback)
		return ret;
	/* A wrong digest is a real answer from the server, not a transport failure. */
	if (ret == HDL_EDIGEST || ret == HDL_ENOMEM || ret == HDL_EDNS)
		return ret;
	/* UDP failed (silent, refused, partial or garbled answer, or a redirect): try TCP with
	 * what is left. */
	{
		int tret = do_tcp(c, req, deadline, out);
		if (tret == HDL_EOK)
			return tret;
		/* Report the TCP error unless UDP saw something more telling. */
		if (oc == UDP_BAD || oc == UDP_PARTIAL)
			return tret == HDL_ETIMEDOUT || tret == HDL_ECONNREFUSED ? HDL_EPROTO : tret;
		return tret;
	}
}

int hdl_client_exchange(hdl_client_t *c, hdl_msg_t *m, hdl_result_t **out)
{
	request_t req;
	uint8_t *frame = NULL;
	size_t len = 0;
	int ret = HDL_EINVAL;

	if (out)
		*out = NULL;
	last_detail[0] = '\0';
	if (!c || !m || !out)
		goto fail;
	m->env.request_id = random_request_id();
	m->env.seq = 0;
	ret = encode_alloc(m, &frame, &len);
	if (ret != HDL_EOK)
		goto fail;
	memset(&req, 0, sizeof(req));
	req.frame = frame;
	req.len = len;
	req.request_id = m->env.request_id;
	req.opcode = m->hdr.opcode;
	req.digest = (m->hdr.opflags & HDL_OF_RD) != 0;
	req.handle = msg_handle(m);
	ret = send_request(c, &req, out);
fail:
	free(frame);
	return ret;
}

int hdl_resolve(hdl_client_t *c, const hdl_resolve_req_t *rq, hdl_result_t **out)
{
	hdl_msg_t m;
	hdl_slice_t *types = NULL;
	uint32_t *indexes = NULL;
	size_t hlen;
	int ret = HDL_EINVAL;

	if (out)
		*out = NULL;
	if (!c || !rq || !out || !rq->handle)
		goto fail;
	if (rq->n_types > HDL_MAX_FILTER || rq->n_indexes > HDL_MAX_FILTER)
		goto fail;
	if ((rq->n_types && !rq->types) || (rq->n_indexes && !rq->indexes))
		goto fail;
	hlen = strlen(rq->handle);
	ret = HDL_ENAME;
	if (hlen == 0 || hlen > HDL_MAX_HANDLE_LEN ||
	    hdl_name_check((const uint8_t *)rq->handle, hlen) != HDL_EOK)
		goto fail;

	ret = HDL_ENOMEM;
	if (rq->n_types) {
		types = calloc(rq->n_types, sizeof(*types));
		if (!types)
			goto fail;
		for (uint32_t i = 0; i < rq->n_types; i++) {
			ret = HDL_EINVAL;
			if (!rq->types[i] || strlen(rq->types[i]) > HDL_MAX_TYPE_LEN)
				goto fail;
			types[i] = hdl_slice_str(rq->types[i]);
		}
	}
	ret = HDL_ENOMEM;
	if (rq->n_indexes) {
		indexes = calloc(rq->n_indexes, sizeof(*indexes));
		if (!indexes)
			goto fail;
		memcpy(indexes, rq->indexes, rq->n_indexes * sizeof(*indexes));
	}

	hdl_msg_init(&m);
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.hdr.opflags = HDL_OF_REC | HDL_OF_CA | HDL_OF_PO;
	if (rq->not_public_only)
		m.hdr.opflags &= ~HDL_OF_PO;
	if (rq->authoritative)
		m.hdr.opflags |= HDL_OF_AT;
	if (rq->digest)
		m.hdr.opflags |= HDL_OF_RD;
	m.hdr.site_serial = 0xFFFF;
	m.hdr.expiration = (uint32_t)time(NULL) + CLIENT_EXPIRATION_S;
	m.kind = HDL_BODY_RESOLVE;
	m.u.resolve.handle.p = (const uint8_t *)rq->handle;
	m.u.resolve.handle.len = (uint32_t)hlen;
	m.u.resolve.n_types = rq->n_types;
	m.u.resolve.types = types;
	m.u.resolve.n_indexes = rq->n_indexes;
	m.u.resolve.indexes = indexes;
	ret = hdl_client_exchange(c, &m, out);
fail:
	free(types);
	free(indexes);
	return ret;
}

/* ---- for the other client modules (client/internal.h) ------------------------------------- */

int64_t hdl_cli_now_ms(void)
{
	return now_ms();
}

hdl_transport_t hdl_cli_transport(const hdl_client_t *c)
{
	return c->transport;
}

int64_t hdl_cli_deadline(const hdl_client_t *c)
{
	return now_ms() + c->timeout_ms;
}

uint32_t hdl_cli_request_id(void)
{
	return random_request_id();
}

int hdl_cli_connect(const hdl_client_t *c, int64_t deadline)
{
	return connect_any(c, deadline);
}

int hdl_cli_send(int fd, const uint8_t *p, size_t len, int64_t deadline)
{
	return send_all(fd, p, len, deadline);
}

int hdl_cli_read_frame(int fd, int64_t deadline, uint8_t **out, size_t *outlen)
{
	return read_frame(fd, deadline, out, outlen);
}

int hdl_cli_encode(const hdl_msg_t *m, uint8_t **out, size_t *outlen)
{
	return encode_alloc(m, out, outlen);
}

int hdl_cli_result(uint8_t *raw, size_t len, const uint8_t *frame, size_t flen,
                   uint32_t request_id, uint32_t opcode, bool digest, hdl_result_t **out)
{
	request_t req;

	memset(&req, 0, sizeof(req));
	req.frame = frame;
	req.len = flen;
	req.request_id = request_id;
	req.opcode = opcode;
	req.digest = digest;
	return result_make(raw, len, &req, HDL_TRANSPORT_TCP, out);
}

void hdl_cli_result_link(hdl_result_t *prev, hdl_result_t *r)
{
	prev->next = r;
}

const hdl_result_t *hdl_result_next(const hdl_result_t *r)
{
	return r ? r->next : NULL;
}
