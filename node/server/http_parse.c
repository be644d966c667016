/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 request parser (RFC 9112 request line and header fields), a pure function over bytes.
 * The request is parsed from its first byte on every call; requests are small (16 KiB of header
 * at most), so re-scanning a slowly arriving one costs little and keeps the parser stateless.
 */
#include <string.h>

#include "node/server/http.h"

#define MAX_METHOD 16u

/* RFC 9110 tchar */
static bool is_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c - 'A' + 'a') : c;
}

static bool str_ieq(const uint8_t *p, size_t n, const char *s)
{
	size_t k = strlen(s);
	if (n != k)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (lower(p[i]) != lower((uint8_t)s[i]))
			return false;
	}
	return true;
}

bool http_has_token(http_str_t v, const char *tok)
{
	const uint8_t *p = (const uint8_t *)v.p;
	size_t i = 0;
	while (i < v.len) {
		while (i < v.len && (p[i] == ' ' || p[i] == '\t' || p[i] == ','))
			i++;
		size_t s = i;
		while (i < v.len && p[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
			e--;
		if (e > s && str_ieq(p + s, e - s, tok))
			return true;
	}
	return false;
}

static http_method_t method_of(const uint8_t *p, size_t n)
{
	static const struct {
		const char *s;
		http_method_t m;
	} tab[] = {{"GET", HTTP_M_GET},       {"HEAD", HTTP_M_HEAD},     {"POST", HTTP_M_POST},
	           {"PUT", HTTP_M_PUT},       {"DELETE", HTTP_M_DELETE}, {"OPTIONS", HTTP_M_OPTIONS}};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strlen(tab[i].s) == n && memcmp(tab[i].s, p, n) == 0)
			return tab[i].m;
	}
	return HTTP_M_OTHER;
}

/* "METHOD SP target SP HTTP/1.x" */
static http_parse_rc_t parse_request_line(const uint8_t *p, size_t n, http_req_t *r)
{
	size_t i = 0;
	while (i < n && is_tchar(p[i]))
		i++;
	if (i == 0 || i > MAX_METHOD || i >= n || p[i] != ' ')
		return HTTP_PARSE_BAD;
	r->method_s = (http_str_t){(const char *)p, i};
	r->method = method_of(p, i);
	size_t ts = ++i;
	while (i < n && p[i] > 0x20 && p[i] != 0x7f)
		i++;
	if (i == ts || i >= n || p[i] != ' ')
		return HTTP_PARSE_BAD;
	r->target = (http_str_t){(const char *)p + ts, i - ts};
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.' || p[i + 5] < '0' ||
	    p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
		return HTTP_PARSE_BAD;
	if (p[i + 5] != '1')
		return HTTP_PARSE_VERSION;
	r->minor = (unsigned)(p[i + 7] - '0');
	return HTTP_PARSE_OK;
}

typedef struct hdr_state {
	bool conn_close;
	bool conn_keep;
	bool te;
} hdr_state_t;

static http_parse_rc_t parse_header_line(const uint8_t *p, size_t n, uint64_t max_body,
                                         http_req_t *r, hdr_state_t *st)
{
	size_t i = 0;
	while (i < n && is_tchar(p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return HTTP_PARSE_BAD; /* also obs-fold (a line starting with SP/HT) */
	const uint8_t *name = p;
	size_t nlen = i++;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	size_t vs = i, ve = n;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	for (size_t k = vs; k < ve; k++) {
		if ((p[k] < 0x20 && p[k] != '\t') || p[k] == 0x7f)
			return HTTP_PARSE_BAD;
	}
	http_str_t v = {(const char *)p + vs, ve - vs};
	if (str_ieq(name, nlen, "content-length")) {
		if (v.len == 0)
			return HTTP_PARSE_BAD;
		uint64_t cl = 0;
		bool big = false;
		for (size_t k = 0; k < v.len; k++) {
			uint8_t c = (uint8_t)v.p[k];
			if (c < '0' || c > '9')
				return HTTP_PARSE_BAD;
			if (cl > (UINT64_MAX - 9) / 10)
				big = true;
			else
				cl = cl * 10 + (uint64_t)(c - '0');
		}
		if (big)
			cl = UINT64_MAX;
		if (r->has_length)
			return HTTP_PARSE_BAD; /* two lengths: request smuggling, even when equal */
		r->has_length = true;
		r->content_length = cl;
		(void)max_body;
	} else if (str_ieq(name, nlen, "connection")) {
		st->conn_close |= http_has_token(v, "close");
		st->conn_keep |= http_has_token(v, "keep-alive");
	} else if (str_ieq(name, nlen, "transfer-encoding")) {
		st->te = true;
	} else if (str_ieq(name, nlen, "content-type")) {
		r->content_type = v;
	} else if (str_ieq(name, nlen, "accept")) {
		r->accept = v;
	} else if (str_ieq(name, nlen, "host")) {
		r->host = v;
	} else if (str_ieq(name, nlen, "authorization")) {
		if (r->authorization.p)
			return HTTP_PARSE_BAD; /* which one would count? */
		r->authorization = v;
	}
	return HTTP_PARSE_OK;
}

http_parse_rc_t http_parse(const uint8_t *p, size_t len, size_t max_header, uint64_t max_body,
                           http_req_t *r)
{
	memset(r, 0, sizeof(*r));
	hdr_state_t st = {0};
	size_t pos = 0;
	/* RFC 9112 §2.2: empty lines before the request line are ignored */
	while (pos < len && pos < 8 && (p[pos] == '\r' || p[pos] == '\n'))
		pos++;
	if (max_header > HTTP_MAX_HEADER_BYTES)
		max_header = HTTP_MAX_HEADER_BYTES;
	unsigned lines = 0;
	for (;;) {
		size_t avail = len - pos;
		const uint8_t *nl = avail ? memchr(p + pos, '\n', avail) : NULL;
		if (!nl) {
			if (len > max_header)
				return HTTP_PARSE_HDR_LARGE;
			/* a bare CR can only be followed by LF */
			if (avail >= 2 && memchr(p + pos, '\r', avail - 1))
				return HTTP_PARSE_BAD;
			return HTTP_PARSE_MORE;
		}
		size_t end = (size_t)(nl - p) + 1; /* after the LF */
		if (end > max_header)
			return HTTP_PARSE_HDR_LARGE;
		size_t ll = (size_t)(nl - (p + pos));
		if (ll && p[pos + ll - 1] == '\r')
			ll--;
		if (memchr(p + pos, '\r', ll))
			return HTTP_PARSE_BAD;
		const uint8_t *line = p + pos;
		pos = end;
		http_parse_rc_t rc;
		if (lines == 0) {
			rc = parse_request_line(line, ll, r);
		} else if (ll == 0) {
			break; /* end of the header section */
		} else {
			if (lines > HTTP_MAX_HEADERS)
				return HTTP_PARSE_HDR_LARGE;
			rc = parse_header_line(line, ll, max_body, r, &st);
		}
		if (rc != HTTP_PARSE_OK)
			return rc;
		lines++;
	}
	r->header_len = pos;
	if (st.te && r->has_length)
		return HTTP_PARSE_BAD; /* RFC 9112 §6.1: both framings, a smuggling attempt */
	if (st.te)
		return HTTP_PARSE_LEN_REQUIRED;
	if (r->content_length > max_body)
		return HTTP_PARSE_BODY_LARGE;
	r->total_len = pos + (size_t)r->content_length;
	if (len < r->total_len)
		return HTTP_PARSE_MORE;
	r->body = p + pos;
	r->keep_alive = r->minor >= 1 ? !st.conn_close : (st.conn_keep && !st.conn_close);
	return HTTP_PARSE_OK;
}
