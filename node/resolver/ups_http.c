/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The head of an HTTP/1.x response from an upstream native tunnel (Handle.Net's POST
 *        application/x-hdl-message exchange): status line and the headers that matter
 *        (Content-Length, Transfer-Encoding, Connection, Content-Type), read strictly: one
 *        Content-Length of digits only, no obsolete line folding, no control bytes, since a
 *        lenient parser here is a smuggling vector.
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "hdl/error.h"
#include "node/resolver/ups_int.h"

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

/* Does the comma-separated list \p v (\p n bytes) hold \p tok (case-insensitive)? */
static bool list_has(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return true;
	}
	return false;
}

static int header(ups_http_head_t *h, const char *name, size_t nl, const char *v, size_t vl,
                  bool *seen_len)
{
	if (name_is(name, nl, "Content-Length")) {
		uint64_t x = 0;
		if (*seen_len || vl == 0 || vl > 15)
			return HDL_EPROTO;
		for (size_t i = 0; i < vl; i++) {
			if (v[i] < '0' || v[i] > '9')
				return HDL_EPROTO;
			x = x * 10u + (uint64_t)(v[i] - '0');
		}
		*seen_len = true;
		h->has_length = true;
		h->content_length = x;
	} else if (name_is(name, nl, "Transfer-Encoding")) {
		if (!(vl == 8 && strncasecmp(v, "identity", 8) == 0))
			h->chunked = true;
	} else if (name_is(name, nl, "Connection")) {
		if (list_has(v, vl, "close"))
			h->close = true;
		else if (list_has(v, vl, "keep-alive"))
			h->close = false;
	} else if (name_is(name, nl, "Content-Type")) {
		static const char want[] = "application/x-hdl-message";
		size_t wl = sizeof(want) - 1;
		h->content_type_ok = vl >= wl && strncasecmp(v, want, wl) == 0 &&
		                     (vl == wl || v[wl] == ';' || v[wl] == ' ' || v[wl] == '\t');
	}
	return HDL_EOK;
}

int ups_http_head_parse(const char *p, size_t n, ups_http_head_t *h)
{
	const char *end = p + n;
	bool seen_len = false;
	memset(h, 0, sizeof(*h));
	h->content_type_ok = true;

	/* status line: HTTP/1.D SP DDD [SP reason] */
	if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return HDL_EPROTO;
	h->minor = (unsigned)(p[7] - '0');
	h->status = (unsigned)((p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0'));
	h->close = h->minor == 0; /* HTTP/1.0: closes unless it says keep-alive */
	const char *line = p + 12;
	if (line < end && *line != ' ' && *line != '\r' && *line != '\n')
		return HDL_EPROTO;
	bool first = true;
	while (line < end) {
		const char *nlp = memchr(line, '\n', (size_t)(end - line));
		if (!nlp)
			return HDL_EPROTO;
		size_t ll = (size_t)(nlp - line);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		for (size_t i = 0; i < ll; i++) {
			unsigned char c = (unsigned char)line[i];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return HDL_EPROTO;
		}
		if (first) { /* the rest of the status line: the reason phrase */
			first = false;
			line = nlp + 1;
			continue;
		}
		if (ll == 0) /* the empty line: it must be the last */
			return nlp + 1 == end ? HDL_EOK : HDL_EPROTO;
		if (line[0] == ' ' || line[0] == '\t')
			return HDL_EPROTO; /* obsolete folding */
		const char *colon = memchr(line, ':', ll);
		if (!colon || colon == line)
			return HDL_EPROTO;
		size_t nl = (size_t)(colon - line);
		for (size_t i = 0; i < nl; i++) {
			if (!is_tchar((unsigned char)line[i]))
				return HDL_EPROTO;
		}
		const char *v = colon + 1, *ve = line + ll;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (header(h, line, nl, v, (size_t)(ve - v), &seen_len) != HDL_EOK)
			return HDL_EPROTO;
		line = nlp + 1;
	}
	return HDL_EPROTO; /* no empty line */
}
