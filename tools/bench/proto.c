/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Request builders and reply parsers of idnode-bench for Handle over UDP/TCP/HTTP, REST
 *        and DNS (no main()).
 *
 * A Handle resolution request is encoded once with hdl_msg_encode() for a one-byte stand-in
 * handle and split around the handle STR into a head (envelope + header) and a tail (indexes,
 * types, credential length). Each request is then head + U32 length + key + tail with
 * MessageLength, BodyLength and RequestId patched in: byte-for-byte what hdl_msg_encode() would
 * produce for that key, at the cost of two memcpy.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "tools/bench/bench.h"

static const char *const proto_names[] = {"udp", "tcp", "http", "rest", "dns", "dns-tcp"};

int bk_proto_parse(const char *s, bk_proto_t *p)
{
	for (size_t i = 0; i < sizeof(proto_names) / sizeof(proto_names[0]); i++)
		if (strcmp(s, proto_names[i]) == 0) {
			*p = (bk_proto_t)i;
			return 0;
		}
	if (strcmp(s, "dnstcp") == 0) {
		*p = BK_DNSTCP;
		return 0;
	}
	return -1;
}

const char *bk_proto_name(bk_proto_t p)
{
	return (unsigned)p < sizeof(proto_names) / sizeof(proto_names[0]) ? proto_names[p] : "?";
}

bool bk_proto_stream(bk_proto_t p)
{
	return p == BK_TCP || p == BK_HTTP || p == BK_REST || p == BK_DNSTCP;
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int bk_tmpl_init(bk_tmpl_t *t, bk_proto_t proto, const char *const *types, size_t ntypes,
                 const char *host)
{
	memset(t, 0, sizeof(*t));
	t->proto = proto;
	snprintf(t->host, sizeof(t->host), "%s", host ? host : "localhost");
	if (ntypes > 32)
		return -1;
	hdl_slice_t tv[32];
	for (size_t i = 0; i < ntypes; i++)
		tv[i] = hdl_slice_str(types[i]);
	hdl_msg_t m;
	hdl_msg_init(&m);
	m.env.major = HDL_PROTO_MAJOR;
	m.env.minor = HDL_PROTO_MINOR;
	m.env.sugg_major = HDL_PROTO_MAJOR;
	m.env.sugg_minor = HDL_PROTO_MINOR;
	m.hdr.opcode = HDL_OC_RESOLUTION;
	m.hdr.rcode = 0;
	m.hdr.opflags = HDL_OF_REC | HDL_OF_CA | HDL_OF_PO; /* 0x19000000, as hdllib sends */
	m.hdr.site_serial = 0xFFFF;
	m.hdr.expiration = (uint32_t)time(NULL) + 43200u;
	m.kind = HDL_BODY_RESOLVE;
	m.u.resolve.handle = hdl_slice_str("X");
	m.u.resolve.n_types = (uint32_t)ntypes;
	m.u.resolve.types = ntypes ? tv : NULL;
	uint8_t buf[2048 + 128];
	size_t len = 0;
	int rc = hdl_msg_encode(&m, buf, sizeof(buf), &len);
	/* head 44, STR "X" = 5 bytes, then the tail */
	if (rc != HDL_EOK || len < HDL_HEADER_LEN + HDL_ENVELOPE_LEN + 5 + 12
	    || be32(buf + 44) != 1 || buf[48] != 'X' || len - 49 > sizeof(t->tail))
		return -1;
	memcpy(t->head, buf, 44);
	t->tail_len = len - 49;
	memcpy(t->tail, buf + 49, t->tail_len);
	return 0;
}

void bk_tmpl_keep(bk_tmpl_t *t)
{
	t->head[HDL_ENVELOPE_LEN + 8] |= (uint8_t)(HDL_OF_KC >> 24);
}

/* Handle message for key into out; returns length or 0. */
static size_t build_hdl(const bk_tmpl_t *t, const char *key, size_t klen, uint32_t id,
                        uint8_t *out, size_t cap)
{
	size_t len = 44 + 4 + klen + t->tail_len;
	if (len > cap)
		return 0;
	memcpy(out, t->head, 44);
	put32(out + 44, (uint32_t)klen);
	memcpy(out + 48, key, klen);
	memcpy(out + 48 + klen, t->tail, t->tail_len);
	put32(out + 8, id);
	put32(out + 16, (uint32_t)(len - HDL_ENVELOPE_LEN));
	put32(out + 40, (uint32_t)(len - 44 - 4)); /* body: all but the credential length */
	return len;
}

static size_t urlenc(const char *s, size_t n, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		             || c == '-' || c == '.' || c == '_' || c == '~' || c == '/';
		if (plain) {
			if (o + 1 > cap)
				return 0;
			out[o++] = (char)c;
		} else {
			if (o + 3 > cap)
				return 0;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	return o;
}

static size_t build_dns(const char *key, size_t klen, uint16_t id, uint8_t *out, size_t cap)
{
	if (cap < 12 + klen + 2 + 4 + 11)
		return 0;
	memset(out, 0, 12);
	out[0] = (uint8_t)(id >> 8);
	out[1] = (uint8_t)id;
	out[5] = 1; /* QDCOUNT */
	size_t o = 12, ls = 0;
	while (ls < klen) {
		const char *dot = memchr(key + ls, '.', klen - ls);
		size_t le = dot ? (size_t)(dot - key) : klen;
		size_t ll = le - ls;
		if (ll == 0 || ll > 63)
			return 0;
		out[o++] = (uint8_t)ll;
		memcpy(out + o, key + ls, ll);
		o += ll;
		ls = le + 1;
	}
	if (o + 1 + 4 > 255 + 12 || o + 5 + 11 > cap)
		return 0;
	out[o++] = 0;
	out[o++] = 0;
	out[o++] = 16; /* TXT */
	out[o++] = 0;
	out[o++] = 1; /* IN */
	/* EDNS(0) OPT, 4096-byte UDP payload, so answers the size of a Handle record are not
	 * truncated to 512 bytes */
	static const uint8_t opt[11] = {0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0};
	memcpy(out + o, opt, sizeof(opt));
	out[11] = 1; /* ARCOUNT */
	return o + sizeof(opt);
}

size_t bk_build(const bk_tmpl_t *t, const char *key, size_t klen, uint32_t id, uint8_t *out,
                size_t cap)
{
	char path[3 * BK_KEY_MAX];
	size_t pl, n, hl;
	int w;
	switch (t->proto) {
	case BK_UDP:
	case BK_TCP:
		return build_hdl(t, key, klen, id, out, cap);
	case BK_HTTP: {
		uint8_t msg[BK_KEY_MAX + 2200];
		size_t ml = build_hdl(t, key, klen, id, msg, sizeof(msg));
		pl = urlenc(key, klen, path, sizeof(path));
		if (!ml || !pl)
			return 0;
		w = snprintf((char *)out, cap,
		             "POST /%.*s HTTP/1.1\r\nHost: %s\r\nAccept: application/x-hdl-message\r\n"
		             "Content-Type: application/x-hdl-message\r\nContent-Length: %zu\r\n%s\r\n",
		             (int)pl, path, t->host, ml, t->close ? "Connection: close\r\n" : "");
		if (w < 0 || (size_t)w + ml > cap)
			return 0;
		hl = (size_t)w;
		memcpy(out + hl, msg, ml);
		return hl + ml;
	}
	case BK_REST:
		pl = urlenc(key, klen, path, sizeof(path));
		if (!pl)
			return 0;
		w = snprintf((char *)out, cap, "GET /api/handles/%.*s HTTP/1.1\r\nHost: %s\r\n%s\r\n",
		             (int)pl, path, t->host, t->close ? "Connection: close\r\n" : "");
		return w < 0 || (size_t)w >= cap ? 0 : (size_t)w;
	case BK_DNS:
		return build_dns(key, klen, (uint16_t)id, out, cap);
	case BK_DNSTCP:
		if (cap < 2)
			return 0;
		n = build_dns(key, klen, (uint16_t)id, out + 2, cap - 2);
		if (!n)
			return 0;
		out[0] = (uint8_t)(n >> 8);
		out[1] = (uint8_t)n;
		return n + 2;
	}
	return 0;
}

int bk_id_offset(const bk_tmpl_t *t, size_t klen)
{
	(void)klen;
	switch (t->proto) {
	case BK_UDP:
	case BK_TCP:
		return 8;
	case BK_DNS:
		return 0;
	case BK_DNSTCP:
		return 2;
	default:
		return -1;
	}
}

/* Parse the Handle message at buf (whole or first UDP datagram). */
static int parse_hdl(const uint8_t *buf, size_t len, bool dgram, bk_reply_t *r)
{
	if (len < HDL_ENVELOPE_LEN)
		return -1;
	uint8_t major = buf[0];
	if (major != 2 && major != 3 && major != 5)
		return -1;
	r->id = be32(buf + 8);
	r->has_id = true;
	r->seq = be32(buf + 12);
	uint32_t msglen = be32(buf + 16);
	if (msglen > HDL_MAX_MESSAGE_LEN || msglen < HDL_HEADER_LEN)
		return -1;
	r->npackets = 1;
	if (dgram) {
		r->npackets = hdl_udp_npackets(msglen);
		if (r->seq >= r->npackets)
			return -1;
		uint32_t left = msglen - r->seq * HDL_UDP_MAX_PAYLOAD;
		uint32_t want = left < HDL_UDP_MAX_PAYLOAD ? left : HDL_UDP_MAX_PAYLOAD;
		if (len != HDL_ENVELOPE_LEN + want)
			return -1;
	} else if (len != HDL_ENVELOPE_LEN + (size_t)msglen) {
		return -1;
	}
	if (r->seq == 0) {
		uint32_t opcode = be32(buf + 20);
		r->code = be32(buf + 24);
		r->is_request = r->code == 0 && opcode == HDL_OC_RESOLUTION;
		if (r->npackets == 1) {
			r->msg = buf;
			r->msg_len = len;
		}
	}
	return 0;
}

static int parse_dns(const uint8_t *buf, size_t len, bk_reply_t *r)
{
	if (len < 12)
		return -1;
	r->id = (uint32_t)buf[0] << 8 | buf[1];
	r->has_id = true;
	r->code = buf[3] & 0x0Fu;
	r->is_request = (buf[2] & 0x80u) == 0;
	r->npackets = 1;
	return 0;
}

int bk_parse_dgram(bk_proto_t p, const uint8_t *buf, size_t len, bk_reply_t *r)
{
	memset(r, 0, sizeof(*r));
	if (p == BK_UDP)
		return parse_hdl(buf, len, true, r);
	if (p == BK_DNS)
		return parse_dns(buf, len, r);
	return -1;
}

/* Case-insensitive header lookup inside [p, end); returns the value start or NULL. */
static const char *http_header(const char *p, const char *end, const char *name, size_t nl,
                               const char **vend)
{
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = eol;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
				ve--;
			*vend = ve;
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

static long parse_http(bk_proto_t proto, const uint8_t *buf, size_t len, bk_reply_t *r)
{
	const size_t max_head = 16384;
	const char *s = (const char *)buf;
	size_t scan = len < max_head ? len : max_head;
	const char *eoh = NULL;
	for (size_t i = 3; i < scan; i++)
		if (s[i] == '\n' && s[i - 1] == '\r' && s[i - 2] == '\n' && s[i - 3] == '\r') {
			eoh = s + i + 1;
			break;
		}
	if (!eoh)
		return len >= max_head ? -1 : 0;
	if (eoh - s < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[8] != ' ')
		return -1;
	unsigned status = 0;
	for (int i = 9; i < 12; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		status = status * 10u + (unsigned)(s[i] - '0');
	}
	const char *ve = NULL;
	const char *te = http_header(s, eoh, "Transfer-Encoding", 17, &ve);
	if (te)
		return -1; /* chunked replies are not supported (and not allowed for the tunnel) */
	size_t clen = 0;
	const char *cl = http_header(s, eoh, "Content-Length", 14, &ve);
	if (cl) {
		if (cl == ve)
			return -1;
		for (const char *q = cl; q < ve; q++) {
			if (*q < '0' || *q > '9' || clen > 100000000u)
				return -1;
			clen = clen * 10u + (size_t)(*q - '0');
		}
	}
	size_t head = (size_t)(eoh - s);
	if (len < head + clen)
		return 0;
	r->npackets = 1;
	r->code = status;
	if (proto == BK_HTTP) {
		bk_reply_t h;
		memset(&h, 0, sizeof(h));
		if (status != 200 || parse_hdl(buf + head, clen, false, &h) != 0) {
			r->bad = true; /* the tunnel answers 200 + a Handle message, or it failed */
			r->code = status;
		} else {
			*r = h;
		}
	}
	return (long)(head + clen);
}

long bk_parse_stream(bk_proto_t p, const uint8_t *buf, size_t len, bk_reply_t *r)
{
	memset(r, 0, sizeof(*r));
	switch (p) {
	case BK_TCP: {
		if (len < HDL_ENVELOPE_LEN)
			return 0;
		uint32_t msglen = be32(buf + 16);
		if (msglen > HDL_MAX_MESSAGE_LEN || (buf[0] != 2 && buf[0] != 3 && buf[0] != 5))
			return -1;
		size_t frame = HDL_ENVELOPE_LEN + (size_t)msglen;
		if (len < frame)
			return 0;
		if (parse_hdl(buf, frame, false, r) != 0)
			r->bad = true;
		return (long)frame;
	}
	case BK_HTTP:
	case BK_REST:
		return parse_http(p, buf, len, r);
	case BK_DNSTCP: {
		if (len < 2)
			return 0;
		size_t frame = 2 + ((size_t)buf[0] << 8 | buf[1]);
		if (len < frame)
			return 0;
		if (parse_dns(buf + 2, frame - 2, r) != 0)
			r->bad = true;
		return (long)frame;
	}
	default:
		return -1;
	}
}

static const char *const dns_rcodes[16] = {
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
	"NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
};

const char *bk_code_name(bk_proto_t p, uint32_t code, bool echo, char *buf, size_t cap)
{
	if (echo)
		return "ECHO";
	switch (p) {
	case BK_REST:
		snprintf(buf, cap, "HTTP_%u", code);
		return buf;
	case BK_DNS:
	case BK_DNSTCP:
		return code < 16 ? dns_rcodes[code] : "?";
	default: {
		const char *n = hdl_rcode_name(code);
		if (n && *n)
			return n;
		snprintf(buf, cap, "RC_%u", code);
		return buf;
	}
	}
}
