/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Key sets for idnode-bench: a pattern over a numeric range, or a file of handles (plain
 *        lines or JSON Lines with a top-level "handle"). No main().
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/bench.h"

static int parse_u64(const char *s, const char *end, uint64_t *out)
{
	if (s == end)
		return -1;
	uint64_t v = 0;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10u)
			return -1;
		v = v * 10u + d;
	}
	*out = v;
	return 0;
}

int bk_keys_pattern(bk_keys_t *k, const char *pattern, const char *range, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	size_t np = 0, pl = 0, ql = 0;
	char *dst = k->pre;
	size_t *dl = &pl;
	for (const char *p = pattern; *p; p++) {
		char c = *p;
		if (c == '%') {
			if (p[1] == '%') {
				p++;
			} else {
				/* %s, %d, %u, optionally zero-padded: %06d */
				const char *q = p + 1;
				unsigned width = 0;
				if (*q == '0')
					while (*q >= '0' && *q <= '9' && width < 100)
						width = width * 10u + (unsigned)(*q++ - '0');
				if (*q != 's' && *q != 'd' && *q != 'u') {
					snprintf(err, errlen, "pattern: unsupported conversion (use %%s or %%06d)");
					return -1;
				}
				if (width > 20) {
					snprintf(err, errlen, "pattern: zero-pad width over 20");
					return -1;
				}
				if (++np > 1)
					break;
				k->width = width;
				p = q;
				dst = k->post;
				dl = &ql;
				continue;
			}
		}
		if (*dl + 1 >= BK_KEY_MAX - 24) {
			snprintf(err, errlen, "pattern too long");
			return -1;
		}
		dst[(*dl)++] = c;
	}
	if (np != 1) {
		snprintf(err, errlen, "pattern must contain exactly one %%s");
		return -1;
	}
	k->pre_len = pl;
	k->post_len = ql;
	const char *dash = range ? strchr(range, '-') : NULL;
	if (!dash || parse_u64(range, dash, &k->lo) || parse_u64(dash + 1, dash + strlen(dash), &k->hi)
	    || k->lo > k->hi || k->hi - k->lo == UINT64_MAX) {
		snprintf(err, errlen, "range must be A-B with 0 <= A <= B");
		return -1;
	}
	k->n = k->hi - k->lo + 1u;
	k->is_list = false;
	return 0;
}

/* ---- JSON: find the top-level "handle" string ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int rd_hex4(const char *p, const char *end, unsigned *out)
{
	if (end - p < 4)
		return -1;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | (unsigned)h;
	}
	*out = v;
	return 0;
}

/* Decode a JSON string starting after the opening quote. Returns a pointer after the closing
 * quote, or NULL. When out is non-NULL the UTF-8 is written there (up to cap, *olen). */
static const char *json_str(const char *p, const char *end, char *out, size_t cap, size_t *olen,
                            bool *overflow)
{
	size_t n = 0;
	while (p < end) {
		unsigned c = (unsigned char)*p++;
		unsigned cp;
		if (c == '"') {
			if (olen)
				*olen = n;
			return p;
		}
		if (c < 0x20)
			return NULL;
		if (c != '\\') {
			if (out) {
				if (n >= cap) {
					*overflow = true;
				} else {
					out[n] = (char)c;
				}
			}
			n++;
			continue;
		}
		if (p >= end)
			return NULL;
		c = (unsigned char)*p++;
		switch (c) {
		case '"': cp = '"'; break;
		case '\\': cp = '\\'; break;
		case '/': cp = '/'; break;
		case 'b': cp = 8; break;
		case 'f': cp = 12; break;
		case 'n': cp = 10; break;
		case 'r': cp = 13; break;
		case 't': cp = 9; break;
		case 'u':
			if (rd_hex4(p, end, &cp))
				return NULL;
			p += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned lo;
				if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || rd_hex4(p + 2, end, &lo)
				    || lo < 0xDC00 || lo > 0xDFFF)
					return NULL;
				p += 6;
				cp = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				return NULL;
			}
			break;
		default:
			return NULL;
		}
		uint8_t u[4];
		size_t ul;
		if (cp < 0x80) {
			u[0] = (uint8_t)cp;
			ul = 1;
		} else if (cp < 0x800) {
			u[0] = (uint8_t)(0xC0 | cp >> 6);
			u[1] = (uint8_t)(0x80 | (cp & 0x3F));
			ul = 2;
		} else if (cp < 0x10000) {
			u[0] = (uint8_t)(0xE0 | cp >> 12);
			u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
			u[2] = (uint8_t)(0x80 | (cp & 0x3F));
			ul = 3;
		} else {
			u[0] = (uint8_t)(0xF0 | cp >> 18);
			u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
			u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
			u[3] = (uint8_t)(0x80 | (cp & 0x3F));
			ul = 4;
		}
		for (size_t i = 0; i < ul; i++) {
			if (out) {
				if (n >= cap)
					*overflow = true;
				else
					out[n] = (char)u[i];
			}
			n++;
		}
	}
	return NULL;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

int bk_json_handle(const char *line, size_t len, char *out, size_t cap)
{
	const char *p = line, *end = line + len;
	int depth = 0;
	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	while (p < end) {
		char c = *p++;
		if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth <= 0)
				return -1; /* top-level object closed without "handle" */
		} else if (c == '"') {
			char key[8];
			size_t kl = 0;
			bool ovf = false;
			const char *q = json_str(p, end, key, sizeof(key), &kl, &ovf);
			if (!q)
				return -1;
			p = q;
			const char *after = skip_ws(p, end);
			bool is_key = after < end && *after == ':';
			if (depth == 1 && is_key && !ovf && kl == 6 && memcmp(key, "handle", 6) == 0) {
				p = skip_ws(after + 1, end);
				if (p >= end || *p != '"')
					return -1;
				size_t hl = 0;
				ovf = false;
				q = json_str(p + 1, end, out, cap, &hl, &ovf);
				if (!q || ovf || hl == 0)
					return -1;
				return (int)hl;
			}
		}
	}
	return -1;
}

/* ---- list loading ---- */

static int keys_add(bk_keys_t *k, const char *s, size_t len, uint64_t *off_cap)
{
	if (k->n + 2 > *off_cap) {
		uint64_t nc = *off_cap ? *off_cap * 2u : 1024u;
		uint64_t *no = realloc(k->off, nc * sizeof(*no));
		if (!no)
			return -1;
		k->off = no;
		*off_cap = nc;
	}
	uint64_t used = k->n ? k->off[k->n] : 0;
	if (used + len > k->blob_cap) {
		uint64_t nc = k->blob_cap ? k->blob_cap * 2u : 65536u;
		while (nc < used + len)
			nc *= 2u;
		char *nb = realloc(k->blob, nc);
		if (!nb)
			return -1;
		k->blob = nb;
		k->blob_cap = nc;
	}
	if (k->n == 0)
		k->off[0] = 0;
	memcpy(k->blob + used, s, len);
	k->off[k->n + 1] = used + len;
	k->n++;
	return 0;
}

static int add_line(bk_keys_t *k, const char *line, size_t len, uint64_t lineno,
                    uint64_t *off_cap, char *err, size_t errlen)
{
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '
	               || line[len - 1] == '\t'))
		len--;
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	if (len == 0 || *line == '#')
		return 0;
	char buf[BK_KEY_MAX];
	const char *key = line;
	size_t kl = len;
	if (*line == '{') {
		int r = bk_json_handle(line, len, buf, sizeof(buf));
		if (r <= 0) {
			snprintf(err, errlen, "line %" PRIu64 ": no \"handle\" string in JSON object", lineno);
			return -1;
		}
		key = buf;
		kl = (size_t)r;
	}
	if (kl >= BK_KEY_MAX) {
		snprintf(err, errlen, "line %" PRIu64 ": key longer than %u bytes", lineno, BK_KEY_MAX - 1);
		return -1;
	}
	if (keys_add(k, key, kl, off_cap)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int bk_keys_load_mem(bk_keys_t *k, const char *buf, size_t len, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->is_list = true;
	uint64_t off_cap = 0, lineno = 0;
	const char *p = buf, *end = buf + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (add_line(k, p, (size_t)(le - p), ++lineno, &off_cap, err, errlen))
			goto fail;
		p = nl ? nl + 1 : end;
	}
	if (k->n == 0) {
		snprintf(err, errlen, "no keys");
		goto fail;
	}
	return 0;
fail:
	bk_keys_free(k);
	return -1;
}

int bk_keys_load(bk_keys_t *k, const char *path, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	k->is_list = true;
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	char *line = NULL;
	size_t lcap = 0;
	uint64_t off_cap = 0, lineno = 0;
	ssize_t n;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = getline(&line, &lcap, f)) >= 0) {
		if (add_line(k, line, (size_t)n, ++lineno, &off_cap, err, errlen))
			goto fail;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto fail;
	}
	if (k->n == 0) {
		snprintf(err, errlen, "%s: no keys", path);
		goto fail;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return 0;
fail:
	free(line);
	if (f != stdin)
		fclose(f);
	bk_keys_free(k);
	return -1;
}

size_t bk_key_get(const bk_keys_t *k, uint64_t i, char *out, size_t cap)
{
	if (i >= k->n)
		return 0;
	if (k->is_list) {
		size_t len = (size_t)(k->off[i + 1] - k->off[i]);
		if (len > cap)
			return 0;
		memcpy(out, k->blob + k->off[i], len);
		return len;
	}
	char num[24];
	int nl = snprintf(num, sizeof(num), "%0*" PRIu64, (int)k->width, k->lo + i);
	size_t len = k->pre_len + (size_t)nl + k->post_len;
	if (len > cap)
		return 0;
	memcpy(out, k->pre, k->pre_len);
	memcpy(out + k->pre_len, num, (size_t)nl);
	memcpy(out + k->pre_len + (size_t)nl, k->post, k->post_len);
	return len;
}

void bk_keys_free(bk_keys_t *k)
{
	free(k->blob);
	free(k->off);
	k->blob = NULL;
	k->off = NULL;
	k->n = 0;
}
