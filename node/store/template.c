/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Metadata templates: parsing and checking (SNMS JSON shape), the pattern guard, the
 *        check of a record against its template, the compiled-template cache, and template
 *        records in the store (see template.h, docs/snms-api.md "Templates").
 */
#include "node/store/template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/store/store.h"

#define DEF_MAX_ITEMS   256u
#define DEF_MAX_PATTERN 256u
#define DEF_MAX_VALUE   4096u
#define DEF_PER_PREFIX  64u
#define RE_MAX_BOUND    255u /* {m,n}: n at most */
#define RE_MAX_DEPTH    32   /* nested groups of a pattern */
#define MSG_NAME_MAX    40u  /* bytes of a prefix, version or type quoted in a refusal */

static const char *const INDUSTRY_KEYS[4] = {"industryCategory", "industrySpecific",
                                             "industryTrade", "industrySubclass"};

tpl_limits_t tpl_limits_or_default(const tpl_limits_t *lim)
{
	tpl_limits_t l = lim ? *lim : (tpl_limits_t){0};
	if (l.max_items == 0)
		l.max_items = DEF_MAX_ITEMS;
	if (l.max_pattern == 0)
		l.max_pattern = DEF_MAX_PATTERN;
	if (l.max_value == 0)
		l.max_value = DEF_MAX_VALUE;
	if (l.max_per_prefix == 0)
		l.max_per_prefix = DEF_PER_PREFIX;
	return l;
}

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/** Bytes of \p s to quote: at most \p max, cut at a UTF-8 character boundary. */
static int quote_len(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return (int)len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return (int)n;
}

static bool no_controls(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	}
	return true;
}

bool tpl_prefix_ok(hdl_slice_t prefix)
{
	if (prefix.len == 0 || prefix.len > TPL_PREFIX_MAX || !hdl_utf8_valid(prefix.p, prefix.len))
		return false;
	for (uint32_t i = 0; i < prefix.len; i++) {
		if (prefix.p[i] <= 0x20 || prefix.p[i] == 0x7f || prefix.p[i] == '/')
			return false;
	}
	return !hdl_slice_eq_nocase(prefix, hdl_slice_str("0.NA"));
}

bool tpl_version_ok(hdl_slice_t version)
{
	return version.len > 0 && version.len <= TPL_VERSION_MAX &&
	       hdl_utf8_valid(version.p, version.len) && no_controls(version.p, version.len);
}

/* ---- the pattern guard --------------------------------------------------------------------- */

typedef struct rescan {
	const char *p;
	size_t i, n;
	int depth;
	unsigned bounds; /**< counted repetitions seen so far */
	const char *err;
} rescan_t;

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t s = a + b;
	return s > TPL_RE_SIZE_MAX + 1u ? TPL_RE_SIZE_MAX + 1u : s;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	if (a == 0 || b == 0)
		return 0;
	if (a > (TPL_RE_SIZE_MAX + 1u) / b + 1u)
		return TPL_RE_SIZE_MAX + 1u;
	uint64_t m = a * b;
	return m > TPL_RE_SIZE_MAX + 1u ? TPL_RE_SIZE_MAX + 1u : m;
}

static uint64_t re_alt(rescan_t *s);

/** Skip a bracket expression starting at '['. */
static void re_bracket(rescan_t *s)
{
	s->i++; /* '[' */
	if (s->i < s->n && s->p[s->i] == '^')
		s->i++;
	if (s->i < s->n && s->p[s->i] == ']')
		s->i++; /* a leading ']' is a member */
	while (s->i < s->n && s->p[s->i] != ']') {
		char c = s->p[s->i];
		if (c == '[' && s->i + 1 < s->n &&
		    (s->p[s->i + 1] == ':' || s->p[s->i + 1] == '.' || s->p[s->i + 1] == '=')) {
			char end = s->p[s->i + 1];
			size_t k = s->i + 2;
			while (k + 1 < s->n && !(s->p[k] == end && s->p[k + 1] == ']'))
				k++;
			if (k + 1 >= s->n) {
				s->err = "unterminated [: :] class";
				return;
			}
			s->i = k + 2;
			continue;
		}
		s->i++;
	}
	if (s->i >= s->n) {
		s->err = "unterminated bracket expression";
		return;
	}
	s->i++; /* ']' */
}

/** A bound "{m}", "{m,}" or "{m,n}" at s->i ('{'): the factor it multiplies by. */
static uint64_t re_bound(rescan_t *s)
{
	size_t k = s->i + 1;
	unsigned long m = 0, n = 0;
	bool have_m = false, comma = false, have_n = false;
	while (k < s->n && s->p[k] >= '0' && s->p[k] <= '9' && m <= RE_MAX_BOUND) {
		m = m * 10 + (unsigned long)(s->p[k++] - '0');
		have_m = true;
	}
	if (k < s->n && s->p[k] == ',') {
		comma = true;
		k++;
		while (k < s->n && s->p[k] >= '0' && s->p[k] <= '9' && n <= RE_MAX_BOUND) {
			n = n * 10 + (unsigned long)(s->p[k++] - '0');
			have_n = true;
		}
	}
	if (!have_m || k >= s->n || s->p[k] != '}') {
		s->err = "invalid repetition bound";
		return 0;
	}
	if (m > RE_MAX_BOUND || n > RE_MAX_BOUND) {
		s->err = "repetition bound over 255";
		return 0;
	}
	if (have_n && n < m) {
		s->err = "invalid repetition bound";
		return 0;
	}
	s->i = k + 1;
	if (!comma)
		return m ? m : 1;
	if (!have_n)
		return m + 1;
	return n ? n : 1;
}

/** One atom and its repetition operators. */
static uint64_t re_piece(rescan_t *s)
{
	uint64_t size = 1;
	bool bounded = false; /* the atom holds (or is under) a counted repetition */
	char c = s->p[s->i];
	if (c == '(') {
		unsigned before = s->bounds;
		if (++s->depth > RE_MAX_DEPTH) {
			s->err = "groups nested too deep";
			return 0;
		}
		s->i++;
		size = sat_add(re_alt(s), 1);
		if (s->err)
			return 0;
		if (s->i >= s->n || s->p[s->i] != ')') {
			s->err = "unbalanced parenthesis";
			return 0;
		}
		s->i++;
		s->depth--;
		bounded = s->bounds > before;
	} else if (c == '[') {
		re_bracket(s);
		if (s->err)
			return 0;
	} else if (c == '\\') {
		if (s->i + 1 >= s->n) {
			s->err = "trailing backslash";
			return 0;
		}
		if (s->p[s->i + 1] >= '1' && s->p[s->i + 1] <= '9') {
			s->err = "back-references are not allowed";
			return 0;
		}
		s->i += 2;
	} else {
		s->i++;
	}
	while (s->i < s->n) {
		c = s->p[s->i];
		if (c == '*' || c == '+' || c == '?') {
			size = sat_mul(size, 2);
			s->i++;
		} else if (c == '{') {
			/* glibc expands a counted repetition into copies; copies of copies explode
			 */
			if (bounded) {
				s->err = "counted repetitions may not nest";
				return 0;
			}
			uint64_t f = re_bound(s);
			if (s->err)
				return 0;
			size = sat_mul(size, f);
			bounded = true;
			s->bounds++;
		} else {
			break;
		}
	}
	return size;
}

/** Branches separated by '|' up to an unmatched ')' or the end. */
static uint64_t re_alt(rescan_t *s)
{
	uint64_t total = 0;
	while (s->i < s->n && !s->err) {
		char c = s->p[s->i];
		if (c == ')')
			break;
		if (c == '|') {
			total = sat_add(total, 1);
			s->i++;
			continue;
		}
		total = sat_add(total, re_piece(s));
	}
	return total;
}

int tpl_pattern_check(const char *pattern, size_t max_len, char *err, size_t errlen)
{
	size_t n = strlen(pattern);
	if (n == 0) {
		fail(err, errlen, "empty pattern");
		return HDL_EJSON;
	}
	if (n > max_len) {
		fail(err, errlen, "longer than %zu bytes", max_len);
		return HDL_EJSON;
	}
	rescan_t s = {.p = pattern, .n = n};
	uint64_t size = re_alt(&s);
	if (s.err == NULL && s.i < s.n)
		s.err = "unbalanced parenthesis";
	if (s.err) {
		fail(err, errlen, "%s", s.err);
		return HDL_EJSON;
	}
	if (size > TPL_RE_SIZE_MAX) {
		fail(err, errlen, "too complex (counted repetitions multiply; at most %u)",
		     TPL_RE_SIZE_MAX);
		return HDL_EJSON;
	}
	return HDL_EOK;
}

/* ---- templates: memory ------------------------------------------------------------------- */

static void item_clear(tpl_item_t *it)
{
	free(it->name);
	free(it->id_type);
	if (it->pattern) {
		regfree(&it->re);
		free(it->pattern);
	}
	memset(it, 0, sizeof(*it));
}

void tpl_free(tpl_t *t)
{
	if (t == NULL)
		return;
	for (uint32_t i = 0; i < t->n_items; i++)
		item_clear(&t->items[i]);
	free(t->items);
	free(t->prefix);
	free(t->version);
	free(t->name);
	free(t->description);
	for (int k = 0; k < 4; k++)
		free(t->industry[k]);
	free(t);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/** Compile \p it->pattern (already checked). \retval HDL_EOK, HDL_EJSON */
static int item_compile(tpl_item_t *it, char *err, size_t errlen)
{
	int rc = regcomp(&it->re, it->pattern, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char why[128];
		regerror(rc, &it->re, why, sizeof(why));
		regfree(&it->re);
		free(it->pattern);
		it->pattern = NULL;
		fail(err, errlen, "%s", why);
		return HDL_EJSON;
	}
	return HDL_EOK;
}

/** Deep copy (the pattern compiled again). \retval HDL_EOK, HDL_ENOMEM, HDL_EJSON */
static int item_copy(tpl_item_t *dst, const tpl_item_t *src)
{
	*dst = *src;
	dst->name = dup_or_null(src->name);
	dst->id_type = dup_or_null(src->id_type);
	dst->pattern = dup_or_null(src->pattern);
	if ((src->name && !dst->name) || (src->id_type && !dst->id_type) ||
	    (src->pattern && !dst->pattern)) {
		dst->pattern = NULL; /* nothing compiled yet */
		item_clear(dst);
		return HDL_ENOMEM;
	}
	if (dst->pattern && item_compile(dst, NULL, 0) != HDL_EOK) {
		item_clear(dst);
		return HDL_EJSON;
	}
	return HDL_EOK;
}

/* ---- templates: JSON in ------------------------------------------------------------------ */

/** A string member: \retval 1 set, 0 absent (or null), -1 invalid (err set), -2 no memory */
static int get_text(const json_t *o, const char *key, size_t max, bool plain, char **out,
                    const char *path, char *err, size_t errlen)
{
	*out = NULL;
	const json_t *v = json_object_get(o, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		fail(err, errlen, "%s%s: expected a string", path, key);
		return -1;
	}
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n != strlen(s) || n > max || (plain && !no_controls((const uint8_t *)s, n))) {
		fail(err, errlen, "%s%s: at most %zu bytes of text without control characters",
		     path, key, max);
		return -1;
	}
	*out = strdup(s);
	return *out ? 1 : -2;
}

/** An unsigned integer member (a JSON integer or a numeric string). 1 set, 0 absent, -1 bad */
static int get_uint(const json_t *o, const char *key, uint64_t max, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);
		if (x < 0 || (uint64_t)x > max)
			return -1;
		*out = (uint64_t)x;
		return 1;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (n == 0 || n > 10)
			return -1;
		uint64_t x = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			x = x * 10 + (uint64_t)(s[i] - '0');
		}
		if (x > max)
			return -1;
		*out = x;
		return 1;
	}
	return -1;
}

/** A boolean member (true/false, or 0/1). 1 set, 0 absent, -1 bad */
static int get_flag(const json_t *o, const char *key, int8_t *out)
{
	const json_t *v = json_object_get(o, key);
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_boolean(v)) {
		*out = json_is_true(v) ? 1 : 0;
		return 1;
	}
	if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
		*out = (int8_t)json_integer_value(v);
		return 1;
	}
	return -1;
}

static int get_num(const json_t *o, const char *key, bool *has, double *out)
{
	const json_t *v = json_object_get(o, key);
	*has = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return -1;
	*out = json_number_value(v);
	*has = true;
	return 1;
}

static int parse_metadata(const json_t *m, const tpl_limits_t *lim, tpl_item_t *it,
                          const char *path, char *err, size_t errlen)
{
	if (m == NULL || json_is_null(m))
		return HDL_EOK; /* a string of any text up to max_value */
	if (!json_is_object(m)) {
		fail(err, errlen, "%smetadata: expected an object", path);
		return HDL_EJSON;
	}
	const json_t *jt = json_object_get(m, "type");
	if (jt != NULL && !json_is_null(jt)) {
		const char *t = json_string_value(jt);
		if (t && strcmp(t, "string") == 0)
			it->kind = TPL_K_STRING;
		else if (t && strcmp(t, "number") == 0)
			it->kind = TPL_K_NUMBER;
		else if (t && strcmp(t, "date") == 0)
			it->kind = TPL_K_DATE;
		else {
			fail(err, errlen,
			     "%smetadata.type: one of \"string\", \"number\", \"date\"", path);
			return HDL_EJSON;
		}
	}
	uint64_t x = 0;
	int r = get_uint(m, "minLength", lim->max_value, &x);
	if (r < 0) {
		fail(err, errlen, "%smetadata.minLength: an integer 0..%u", path, lim->max_value);
		return HDL_EJSON;
	}
	it->min_len = r ? (uint32_t)x : 0;
	x = 0;
	r = get_uint(m, "maxLength", lim->max_value, &x);
	if (r < 0) {
		fail(err, errlen, "%smetadata.maxLength: an integer 0..%u", path, lim->max_value);
		return HDL_EJSON;
	}
	it->max_len = r ? (uint32_t)x : 0;
	if (it->max_len && it->min_len > it->max_len) {
		fail(err, errlen, "%smetadata: minLength over maxLength", path);
		return HDL_EJSON;
	}
	if (get_num(m, "minimum", &it->has_min, &it->minimum) < 0 ||
	    get_num(m, "maximum", &it->has_max, &it->maximum) < 0) {
		fail(err, errlen, "%smetadata.minimum/maximum: numbers", path);
		return HDL_EJSON;
	}
	if ((it->has_min || it->has_max) && it->kind != TPL_K_NUMBER) {
		fail(err, errlen, "%smetadata: minimum/maximum only for type \"number\"", path);
		return HDL_EJSON;
	}
	if (it->has_min && it->has_max && it->minimum > it->maximum) {
		fail(err, errlen, "%smetadata: minimum over maximum", path);
		return HDL_EJSON;
	}
	char *pat = NULL;
	char sub[64];
	snprintf(sub, sizeof(sub), "%.40smetadata.", path);
	r = get_text(m, "pattern", lim->max_pattern, false, &pat, sub, err, errlen);
	if (r == -2)
		return HDL_ENOMEM;
	if (r < 0)
		return HDL_EJSON;
	if (r == 1) {
		char why[128];
		if (tpl_pattern_check(pat, lim->max_pattern, why, sizeof(why)) != HDL_EOK) {
			fail(err, errlen, "%spattern: %s", sub, why);
			free(pat);
			return HDL_EJSON;
		}
		it->pattern = pat;
		if (item_compile(it, why, sizeof(why)) != HDL_EOK) {
			fail(err, errlen, "%spattern: %s", sub, why);
			return HDL_EJSON;
		}
	}
	return HDL_EOK;
}

static int parse_item(const json_t *o, const tpl_limits_t *lim, int mode, tpl_item_t *it,
                      const char *path, char *err, size_t errlen)
{
	memset(it, 0, sizeof(*it));
	it->required = mode == TPL_PARSE_UPDATE ? -1 : 0;
	it->state = mode == TPL_PARSE_UPDATE ? -1 : 1;
	if (!json_is_object(o)) {
		fail(err, errlen, "%s: expected an object", path);
		return HDL_EJSON;
	}
	char p2[40];
	snprintf(p2, sizeof(p2), "%.30s.", path);
	int r = get_text(o, "name", TPL_NAME_MAX, true, &it->name, p2, err, errlen);
	if (r == -2)
		return HDL_ENOMEM;
	if (r <= 0) {
		if (r == 0)
			fail(err, errlen, "%sname: required", p2);
		return HDL_EJSON;
	}
	r = get_text(o, "idType", TPL_NAME_MAX, true, &it->id_type, p2, err, errlen);
	if (r == -2)
		return HDL_ENOMEM;
	if (r <= 0 || it->id_type[0] == '\0') {
		if (r >= 0)
			fail(err, errlen, "%sidType: required", p2);
		return HDL_EJSON;
	}
	uint64_t idx = 0;
	r = get_uint(o, "idIndex", INT32_MAX, &idx);
	if (r < 0 || (r == 1 && idx < TPL_INDEX_MIN)) {
		fail(err, errlen, "%sidIndex: an integer %u..%d (1000-1999 are reserved)", p2,
		     TPL_INDEX_MIN, INT32_MAX);
		return HDL_EJSON;
	}
	if (r == 0 && mode == TPL_PARSE_STORED) {
		fail(err, errlen, "%sidIndex: required", p2);
		return HDL_EJSON;
	}
	it->index = (uint32_t)idx;
	if (get_flag(o, "required", &it->required) < 0) {
		fail(err, errlen, "%srequired: true or false", p2);
		return HDL_EJSON;
	}
	if (get_flag(o, "state", &it->state) < 0) {
		fail(err, errlen, "%sstate: 0 (disabled) or 1 (enabled)", p2);
		return HDL_EJSON;
	}
	return parse_metadata(json_object_get(o, "metadata"), lim, it, p2, err, errlen);
}

static int cmp_item(const void *a, const void *b)
{
	const tpl_item_t *x = a, *y = b;
	return x->index < y->index ? -1 : x->index > y->index;
}

static bool same_type(const char *a, const char *b)
{
	return hdl_slice_eq_nocase(hdl_slice_str(a), hdl_slice_str(b));
}

int tpl_parse(const json_t *j, const tpl_limits_t *limp, int mode, tpl_t **out, char *err,
              size_t errlen)
{
	tpl_limits_t lim = tpl_limits_or_default(limp);
	*out = NULL;
	if (!json_is_object(j)) {
		fail(err, errlen, "a template is a JSON object");
		return HDL_EJSON;
	}
	tpl_t *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return HDL_ENOMEM;
	t->dflt = -1;
	int ret = HDL_EJSON;
	int r = get_text(j, "prefix", TPL_PREFIX_MAX, true, &t->prefix, "", err, errlen);
	if (r == -2)
		goto nomem;
	if (r <= 0 || !tpl_prefix_ok(hdl_slice_str(t->prefix))) {
		fail(err, errlen, "prefix: required, 1..%u bytes, no '/' or spaces",
		     TPL_PREFIX_MAX);
		goto out;
	}
	r = get_text(j, "version", TPL_VERSION_MAX, true, &t->version, "", err, errlen);
	if (r == -2)
		goto nomem;
	if (r <= 0 || !tpl_version_ok(hdl_slice_str(t->version))) {
		fail(err, errlen, "version: required, 1..%u bytes of text", TPL_VERSION_MAX);
		goto out;
	}
	if ((r = get_text(j, "name", TPL_NAME_MAX, true, &t->name, "", err, errlen)) < 0)
		goto bad;
	if ((r = get_text(j, "description", TPL_TEXT_MAX, false, &t->description, "", err,
	                  errlen)) < 0)
		goto bad;
	for (int k = 0; k < 4; k++) {
		if ((r = get_text(j, INDUSTRY_KEYS[k], TPL_CODE_MAX, true, &t->industry[k], "", err,
		                  errlen)) < 0)
			goto bad;
	}
	uint64_t ty = 0;
	r = get_uint(j, "type", 2, &ty);
	if (r < 0 || (r == 1 && ty == 0)) {
		fail(err, errlen, "type: 1 (active carrier) or 2 (other)");
		goto out;
	}
	t->type = (int)ty;
	if (get_flag(j, "default", &t->dflt) < 0) {
		fail(err, errlen, "default: true or false");
		goto out;
	}
	const json_t *items = json_object_get(j, "items");
	if (!json_is_array(items) || (json_array_size(items) == 0 && mode != TPL_PARSE_UPDATE)) {
		fail(err, errlen, "items: a non-empty array");
		goto out;
	}
	size_t n = json_array_size(items);
	if (n > lim.max_items) {
		fail(err, errlen, "items: at most %u", lim.max_items);
		goto out;
	}
	t->items = calloc(n ? n : 1, sizeof(*t->items));
	if (t->items == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		char path[24];
		snprintf(path, sizeof(path), "items[%u]", (unsigned)i);
		ret = parse_item(json_array_get(items, i), &lim, mode, &t->items[i], path, err,
		                 errlen);
		t->n_items = (uint32_t)i + 1;
		if (ret != HDL_EOK)
			goto out;
		for (size_t k = 0; k < i; k++) {
			const tpl_item_t *a = &t->items[k], *b = &t->items[i];
			if (a->index && a->index == b->index) {
				fail(err, errlen, "%s.idIndex: %u given twice", path, b->index);
				ret = HDL_EJSON;
				goto out;
			}
			if (same_type(a->id_type, b->id_type)) {
				fail(err, errlen, "%s.idType: '%.*s' given twice", path,
				     quote_len(b->id_type, strlen(b->id_type), MSG_NAME_MAX),
				     b->id_type);
				ret = HDL_EJSON;
				goto out;
			}
		}
	}
	if (mode == TPL_PARSE_STORED)
		qsort(t->items, t->n_items, sizeof(*t->items), cmp_item);
	*out = t;
	return HDL_EOK;
bad:
	if (r == -2)
		goto nomem;
	ret = HDL_EJSON;
	goto out;
nomem:
	ret = HDL_ENOMEM;
out:
	tpl_free(t);
	return ret;
}

int tpl_parse_raw(hdl_slice_t raw, const tpl_limits_t *lim, tpl_t **out, char *err, size_t errlen)
{
	json_error_t je;
	*out = NULL;
	json_t *j = json_loadb((const char *)raw.p, raw.len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		fail(err, errlen, "not JSON: %s", je.text);
		return HDL_EJSON;
	}
	int ret = tpl_parse(j, lim, TPL_PARSE_STORED, out, err, errlen);
	json_decref(j);
	return ret;
}

/* ---- templates: JSON out ----------------------------------------------------------------- */

static int set_str(json_t *o, const char *key, const char *s)
{
	return s ? json_object_set_new(o, key, json_string(s)) : 0;
}

json_t *tpl_to_json(const tpl_t *t)
{
	json_t *o = json_object(), *items = json_array();
	if (o == NULL || items == NULL)
		goto fail;
	int bad = set_str(o, "prefix", t->prefix) | set_str(o, "version", t->version) |
	          set_str(o, "name", t->name) | set_str(o, "description", t->description);
	for (int k = 0; k < 4; k++)
		bad |= set_str(o, INDUSTRY_KEYS[k], t->industry[k]);
	if (t->type)
		bad |= json_object_set_new(o, "type", json_integer(t->type));
	for (uint32_t i = 0; i < t->n_items; i++) {
		const tpl_item_t *it = &t->items[i];
		json_t *jo = json_object(), *m = json_object();
		if (jo == NULL || m == NULL || json_array_append_new(items, jo) != 0) {
			json_decref(jo);
			json_decref(m);
			goto fail;
		}
		bad |= set_str(jo, "name", it->name) | set_str(jo, "idType", it->id_type);
		bad |= json_object_set_new(jo, "idIndex", json_integer(it->index));
		bad |= json_object_set_new(jo, "required", json_boolean(it->required == 1));
		bad |= json_object_set_new(jo, "state", json_integer(it->state == 0 ? 0 : 1));
		static const char *const kinds[] = {"string", "number", "date"};
		bad |= json_object_set_new(m, "type", json_string(kinds[it->kind]));
		bad |= json_object_set_new(m, "minLength", json_integer(it->min_len));
		if (it->max_len)
			bad |= json_object_set_new(m, "maxLength", json_integer(it->max_len));
		bad |= set_str(m, "pattern", it->pattern);
		if (it->has_min)
			bad |= json_object_set_new(m, "minimum", json_real(it->minimum));
		if (it->has_max)
			bad |= json_object_set_new(m, "maximum", json_real(it->maximum));
		bad |= json_object_set_new(jo, "metadata", m);
	}
	bad |= json_object_set_new(o, "items", items);
	items = NULL;
	if (bad)
		goto fail;
	return o;
fail:
	json_decref(items);
	json_decref(o);
	return NULL;
}

/* ---- merge --------------------------------------------------------------------------------- */

static int set_text(char **dst, const char *src)
{
	if (src == NULL)
		return HDL_EOK;
	char *s = strdup(src);
	if (s == NULL)
		return HDL_ENOMEM;
	free(*dst);
	*dst = s;
	return HDL_EOK;
}

/** Give \p dst the metadata and given fields of \p src (an update's item). */
static int item_update(tpl_item_t *dst, const tpl_item_t *src)
{
	tpl_item_t tmp;
	int ret = item_copy(&tmp, src);
	if (ret != HDL_EOK)
		return ret;
	tmp.index = dst->index;
	if (tmp.required < 0)
		tmp.required = dst->required;
	if (tmp.state < 0)
		tmp.state = dst->state;
	item_clear(dst);
	*dst = tmp;
	return HDL_EOK;
}

int tpl_merge(const tpl_t *old, const tpl_t *upd, const tpl_limits_t *limp, tpl_t **out, char *err,
              size_t errlen)
{
	tpl_limits_t lim = tpl_limits_or_default(limp);
	*out = NULL;
	uint32_t cap = (old ? old->n_items : 0) + upd->n_items;
	tpl_t *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return HDL_ENOMEM;
	t->dflt = upd->dflt;
	int ret = HDL_ENOMEM;
	t->items = calloc(cap ? cap : 1, sizeof(*t->items));
	if (t->items == NULL)
		goto out;
	if (old) {
		if (set_text(&t->name, old->name) || set_text(&t->description, old->description))
			goto out;
		for (int k = 0; k < 4; k++) {
			if (set_text(&t->industry[k], old->industry[k]))
				goto out;
		}
		t->type = old->type;
		for (uint32_t i = 0; i < old->n_items; i++) {
			if ((ret = item_copy(&t->items[i], &old->items[i])) != HDL_EOK)
				goto out;
			t->n_items = i + 1;
		}
	}
	ret = HDL_ENOMEM;
	if (set_text(&t->prefix, upd->prefix) || set_text(&t->version, upd->version) ||
	    set_text(&t->name, upd->name) || set_text(&t->description, upd->description))
		goto out;
	for (int k = 0; k < 4; k++) {
		if (set_text(&t->industry[k], upd->industry[k]))
			goto out;
	}
	if (upd->type)
		t->type = upd->type;
	uint32_t next = TPL_INDEX_MIN;
	for (uint32_t i = 0; i < t->n_items; i++) {
		if (t->items[i].index >= next)
			next = t->items[i].index + 1;
	}
	for (uint32_t i = 0; i < upd->n_items; i++) {
		if (upd->items[i].index >= next)
			next = upd->items[i].index + 1; /* the indexes given keep their places */
	}
	for (uint32_t k = 0; k < upd->n_items; k++) {
		const tpl_item_t *u = &upd->items[k];
		tpl_item_t *by_index = NULL, *by_type = NULL;
		for (uint32_t i = 0; i < t->n_items; i++) {
			if (u->index && t->items[i].index == u->index)
				by_index = &t->items[i];
			if (same_type(t->items[i].id_type, u->id_type))
				by_type = &t->items[i];
		}
		if (by_index) {
			if (by_type != by_index) {
				fail(err, errlen, "items[%u]: idIndex %u is '%.*s' in the template",
				     k, u->index,
				     quote_len(by_index->id_type, strlen(by_index->id_type),
				               MSG_NAME_MAX),
				     by_index->id_type);
				ret = HDL_EJSON;
				goto out;
			}
			if ((ret = item_update(by_index, u)) != HDL_EOK)
				goto out;
			continue;
		}
		if (by_type) {
			fail(err, errlen, "items[%u]: idType '%.*s' is index %u in the template", k,
			     quote_len(u->id_type, strlen(u->id_type), MSG_NAME_MAX), u->id_type,
			     by_type->index);
			ret = HDL_EJSON;
			goto out;
		}
		if (t->n_items >= lim.max_items) {
			fail(err, errlen, "items: at most %u", lim.max_items);
			ret = HDL_EJSON;
			goto out;
		}
		if (!u->index && next > INT32_MAX) {
			fail(err, errlen, "items[%u]: no free index", k);
			ret = HDL_EJSON;
			goto out;
		}
		tpl_item_t *dst = &t->items[t->n_items];
		if ((ret = item_copy(dst, u)) != HDL_EOK)
			goto out;
		t->n_items++;
		if (!dst->index)
			dst->index = next++;
		if (dst->required < 0)
			dst->required = 0;
		if (dst->state < 0)
			dst->state = 1;
	}
	if (t->n_items == 0) {
		fail(err, errlen, "items: a non-empty array");
		ret = HDL_EJSON;
		goto out;
	}
	qsort(t->items, t->n_items, sizeof(*t->items), cmp_item);
	*out = t;
	return HDL_EOK;
out:
	if (ret == HDL_EJSON && err && errlen && err[0] == '\0')
		fail(err, errlen, "invalid pattern");
	tpl_free(t);
	return ret;
}

/* ---- the check of a record --------------------------------------------------------------- */

static int refusal(const tpl_t *t, char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refusal(const tpl_t *t, char *msg, size_t cap, const char *fmt, ...)
{
	int n = snprintf(
	    msg, cap, "Template %.*s:%.*s: ", quote_len(t->prefix, strlen(t->prefix), MSG_NAME_MAX),
	    t->prefix, quote_len(t->version, strlen(t->version), MSG_NAME_MAX), t->version);
	if (n > 0 && (size_t)n < cap) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg + n, cap - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return TPL_REFUSED;
}

/** Code points of valid UTF-8. */
static uint32_t utf8_chars(const uint8_t *p, size_t n)
{
	uint32_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += (p[i] & 0xC0) != 0x80;
	return c;
}

static bool is_number(const char *s)
{
	size_t i = 0;
	if (s[i] == '-' || s[i] == '+')
		i++;
	size_t d = 0;
	while (s[i] >= '0' && s[i] <= '9')
		i++, d++;
	if (s[i] == '.') {
		i++;
		size_t f = 0;
		while (s[i] >= '0' && s[i] <= '9')
			i++, f++;
		if (f == 0)
			return false;
	}
	if (d == 0)
		return false;
	if (s[i] == 'e' || s[i] == 'E') {
		i++;
		if (s[i] == '-' || s[i] == '+')
			i++;
		size_t e = 0;
		while (s[i] >= '0' && s[i] <= '9')
			i++, e++;
		if (e == 0)
			return false;
	}
	return s[i] == '\0';
}

static bool is_date(const uint8_t *p, size_t n)
{
	if (n != 10 || p[4] != '-' || p[7] != '-')
		return false;
	int v[3] = {0, 0, 0}, at[3][2] = {{0, 4}, {5, 2}, {8, 2}};
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < at[k][1]; i++) {
			uint8_t c = p[at[k][0] + i];
			if (c < '0' || c > '9')
				return false;
			v[k] = v[k] * 10 + (c - '0');
		}
	}
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (v[0] < 1 || v[1] < 1 || v[1] > 12 || v[2] < 1)
		return false;
	int dim = mdays[v[1] - 1];
	if (v[1] == 2 && ((v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0))
		dim = 29;
	return v[2] <= dim;
}

/** The content rules of one item on a value's data. */
static int check_data(const tpl_t *t, const tpl_limits_t *lim, const tpl_item_t *it,
                      const hdl_value_t *v, char *msg, size_t cap)
{
	int tl = quote_len(it->id_type, strlen(it->id_type), MSG_NAME_MAX);
	const uint8_t *d = v->data.p;
	size_t n = v->data.len;
	if (!hdl_utf8_valid(d, n) || (n && memchr(d, 0, n) != NULL))
		return refusal(t, msg, cap, "index %u (%.*s) is not UTF-8 text", it->index, tl,
		               it->id_type);
	uint32_t max = it->max_len ? it->max_len : lim->max_value;
	if (n > lim->max_value || utf8_chars(d, n) > max)
		return refusal(t, msg, cap, "index %u (%.*s) is longer than %u characters",
		               it->index, tl, it->id_type, max);
	if (utf8_chars(d, n) < it->min_len)
		return refusal(t, msg, cap, "index %u (%.*s) is shorter than %u characters",
		               it->index, tl, it->id_type, it->min_len);
	if (it->kind == TPL_K_DATE && !is_date(d, n))
		return refusal(t, msg, cap, "index %u (%.*s) is not a date (YYYY-MM-DD)", it->index,
		               tl, it->id_type);
	if (it->kind != TPL_K_NUMBER && it->pattern == NULL)
		return HDL_EOK;
	char *s = malloc(n + 1);
	if (s == NULL)
		return HDL_ENOMEM;
	if (n)
		memcpy(s, d, n);
	s[n] = '\0';
	int ret = HDL_EOK;
	if (it->kind == TPL_K_NUMBER) {
		if (!is_number(s)) {
			ret = refusal(t, msg, cap, "index %u (%.*s) is not a number", it->index, tl,
			              it->id_type);
		} else {
			double x = strtod(s, NULL);
			if (it->has_min && x < it->minimum)
				ret =
				    refusal(t, msg, cap, "index %u (%.*s) is below the minimum %g",
				            it->index, tl, it->id_type, it->minimum);
			else if (it->has_max && x > it->maximum)
				ret =
				    refusal(t, msg, cap, "index %u (%.*s) is above the maximum %g",
				            it->index, tl, it->id_type, it->maximum);
		}
	}
	if (ret == HDL_EOK && it->pattern && regexec(&it->re, s, 0, NULL, 0) != 0)
		ret = refusal(t, msg, cap, "index %u (%.*s) does not match the pattern", it->index,
		              tl, it->id_type);
	free(s);
	return ret;
}

/** The value that names a handle's template: index 1001, type TEMPLATE. */
static bool is_ref(const hdl_value_t *v)
{
	return v->index == TPL_INDEX_REF && hdl_slice_eq_nocase(v->type, hdl_slice_str("TEMPLATE"));
}

static int cmp_vptr(const void *a, const void *b)
{
	const hdl_value_t *x = *(const hdl_value_t *const *)a, *y = *(const hdl_value_t *const *)b;
	return x->index < y->index ? -1 : x->index > y->index;
}

int tpl_validate(const tpl_t *t, const tpl_limits_t *limp, const hdl_value_t *v, uint32_t n,
                 char *msg, size_t cap)
{
	tpl_limits_t lim = tpl_limits_or_default(limp);
	/* the governed values (index >= 1000 but the reference) in index order, so the first
	 * refusal is the same whatever order a path gives the values in */
	const hdl_value_t **g = malloc(sizeof(*g) * (n ? n : 1));
	if (g == NULL)
		return HDL_ENOMEM;
	uint32_t m = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].index >= TPL_RESERVED_MIN && !is_ref(&v[i]))
			g[m++] = &v[i];
	}
	qsort(g, m, sizeof(*g), cmp_vptr);
	int ret = HDL_EOK;
	uint32_t i = 0, k = 0;
	while (ret == HDL_EOK && (i < t->n_items || k < m)) {
		const tpl_item_t *it = i < t->n_items ? &t->items[i] : NULL;
		const hdl_value_t *val = k < m ? g[k] : NULL;
		if (val && (it == NULL || val->index < it->index)) {
			ret = refusal(t, msg, cap, "index %u is not in the template", val->index);
			break;
		}
		int tl = quote_len(it->id_type, strlen(it->id_type), MSG_NAME_MAX);
		if (val == NULL || it->index < val->index) {
			if (it->state == 1 && it->required == 1)
				ret = refusal(t, msg, cap, "index %u (%.*s) is required", it->index,
				              tl, it->id_type);
			i++;
			continue;
		}
		if (it->state != 1)
			ret = refusal(t, msg, cap, "index %u (%.*s) is disabled", it->index, tl,
			              it->id_type);
		else if (!hdl_slice_eq_nocase(val->type, hdl_slice_str(it->id_type)))
			ret = refusal(t, msg, cap, "index %u must have type %.*s", it->index, tl,
			              it->id_type);
		else
			ret = check_data(t, &lim, it, val, msg, cap);
		i++;
		k++;
	}
	free(g);
	return ret;
}

/* ---- records ------------------------------------------------------------------------------ */

/** "<what>/<PREFIX>" (+ "/<version>"), the prefix ASCII upper-cased. */
static size_t meta_name(char *out, size_t cap, const char *what, hdl_slice_t prefix,
                        const hdl_slice_t *version)
{
	if (!tpl_prefix_ok(prefix) || (version && !tpl_version_ok(*version)))
		return 0;
	size_t wl = strlen(what);
	size_t need = wl + 1 + prefix.len + (version ? 1 + version->len : 0) + 1;
	if (need > cap)
		return 0;
	size_t o = 0;
	memcpy(out, what, wl);
	o += wl;
	out[o++] = '/';
	for (uint32_t i = 0; i < prefix.len; i++) {
		uint8_t c = prefix.p[i];
		out[o++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
	}
	if (version) {
		out[o++] = '/';
		memcpy(out + o, version->p, version->len);
		o += version->len;
	}
	out[o] = '\0';
	return o;
}

size_t tpl_key(char *out, size_t cap, hdl_slice_t prefix, hdl_slice_t version)
{
	return meta_name(out, cap, "tpl", prefix, &version);
}

#define NAME_CAP (8 + TPL_PREFIX_MAX + TPL_VERSION_MAX + 4)

int tpl_fetch_batch(void *ctx, const char *name, hdl_slice_t *raw)
{
	return store_batch_meta_get(ctx, name, raw);
}

int tpl_fetch_reader(void *ctx, const char *name, hdl_slice_t *raw)
{
	return store_meta_get(ctx, name, raw);
}

/* ---- the cache ------------------------------------------------------------------------------ */

typedef struct tpl_entry {
	char name[NAME_CAP]; /**< meta record name; empty = free */
	uint8_t *raw;        /**< the record's bytes the template was parsed from */
	size_t raw_len;
	tpl_t *t;
	uint64_t used; /**< LRU clock */
} tpl_entry_t;

struct tpl_cache {
	tpl_limits_t lim;
	unsigned max;
	uint64_t clock;
	tpl_entry_t *e;
};

int tpl_cache_new(const tpl_limits_t *lim, unsigned max, tpl_cache_t **out)
{
	*out = NULL;
	tpl_cache_t *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return HDL_ENOMEM;
	c->lim = tpl_limits_or_default(lim);
	c->max = max ? max : 1;
	c->e = calloc(c->max, sizeof(*c->e));
	if (c->e == NULL) {
		free(c);
		return HDL_ENOMEM;
	}
	*out = c;
	return HDL_EOK;
}

static void entry_clear(tpl_entry_t *e)
{
	free(e->raw);
	tpl_free(e->t);
	memset(e, 0, sizeof(*e));
}

void tpl_cache_free(tpl_cache_t *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->max; i++)
		entry_clear(&c->e[i]);
	free(c->e);
	free(c);
}

/**
 * The compiled template of record \p name whose bytes are \p raw.
 * \retval HDL_EOK (*t), HDL_ESTORE (the record does not parse), HDL_ENOMEM
 */
static int cache_get(tpl_cache_t *c, const char *name, hdl_slice_t raw, const tpl_t **t)
{
	tpl_entry_t *slot = NULL;
	for (unsigned i = 0; i < c->max; i++) {
		tpl_entry_t *e = &c->e[i];
		if (e->name[0] && strcmp(e->name, name) == 0) {
			if (e->raw_len == raw.len && memcmp(e->raw, raw.p, raw.len) == 0) {
				e->used = ++c->clock;
				*t = e->t;
				return HDL_EOK;
			}
			slot = e; /* changed: parse it again in place */
			break;
		}
	}
	if (slot == NULL) {
		for (unsigned i = 0; i < c->max; i++) {
			if (slot == NULL || c->e[i].used < slot->used)
				slot = &c->e[i];
			if (c->e[i].name[0] == '\0') {
				slot = &c->e[i];
				break;
			}
		}
	}
	entry_clear(slot);
	tpl_t *nt = NULL;
	char err[160];
	int ret = tpl_parse_raw(raw, &c->lim, &nt, err, sizeof(err));
	if (ret != HDL_EOK)
		return ret == HDL_ENOMEM ? ret : HDL_ESTORE;
	slot->raw = malloc(raw.len ? raw.len : 1);
	if (slot->raw == NULL) {
		tpl_free(nt);
		return HDL_ENOMEM;
	}
	memcpy(slot->raw, raw.p, raw.len);
	slot->raw_len = raw.len;
	slot->t = nt;
	snprintf(slot->name, sizeof(slot->name), "%s", name);
	slot->used = ++c->clock;
	*t = nt;
	return HDL_EOK;
}

int tpl_check(tpl_cache_t *c, tpl_fetch_fn fetch, void *ctx, hdl_slice_t handle,
              const hdl_value_t *v, uint32_t n, char *msg, size_t cap)
{
	hdl_slice_t prefix, suffix;
	hdl_name_split(handle, &prefix, &suffix);
	if (hdl_slice_eq_nocase(prefix, hdl_slice_str("0.NA")) || !tpl_prefix_ok(prefix))
		return HDL_EOK; /* prefix handles; names no template could be stored for */
	const hdl_value_t *ref = NULL;
	for (uint32_t i = 0; i < n && ref == NULL; i++) {
		if (is_ref(&v[i]))
			ref = &v[i];
	}
	uint8_t vbuf[TPL_VERSION_MAX];
	hdl_slice_t version;
	char name[NAME_CAP];
	hdl_slice_t raw;
	int ret;
	int pl = quote_len((const char *)prefix.p, prefix.len, MSG_NAME_MAX);
	if (ref) {
		if (!tpl_version_ok(ref->data)) {
			snprintf(msg, cap,
			         "The TEMPLATE value (index %u) is not a template version",
			         TPL_INDEX_REF);
			return TPL_REFUSED;
		}
		version = ref->data;
	} else {
		if (meta_name(name, sizeof(name), "tpldef", prefix, NULL) == 0)
			return HDL_EOK;
		ret = fetch(ctx, name, &raw);
		if (ret == HDL_ENOENT)
			return HDL_EOK; /* neither a reference nor a default: nothing to check */
		if (ret != HDL_EOK)
			return ret;
		if (!tpl_version_ok(raw))
			return HDL_ESTORE;
		memcpy(vbuf, raw.p, raw.len);
		version = (hdl_slice_t){vbuf, raw.len};
	}
	if (tpl_key(name, sizeof(name), prefix, version) == 0)
		return HDL_ESTORE;
	ret = fetch(ctx, name, &raw);
	if (ret == HDL_ENOENT) {
		snprintf(msg, cap, "Template %.*s:%.*s not found", pl, (const char *)prefix.p,
		         quote_len((const char *)version.p, version.len, MSG_NAME_MAX),
		         (const char *)version.p);
		return TPL_REFUSED;
	}
	if (ret != HDL_EOK)
		return ret;
	const tpl_t *t = NULL;
	if ((ret = cache_get(c, name, raw, &t)) != HDL_EOK)
		return ret;
	return tpl_validate(t, &c->lim, v, n, msg, cap);
}

/* ---- changes in a batch ------------------------------------------------------------------- */

/** The version list of \p prefix (a new JSON array; empty when none). */
static int set_read(store_batch_t *b, hdl_slice_t prefix, char *name, size_t cap, json_t **out)
{
	*out = NULL;
	if (meta_name(name, cap, "tplset", prefix, NULL) == 0)
		return HDL_EINVAL;
	hdl_slice_t raw;
	int ret = store_batch_meta_get(b, name, &raw);
	if (ret == HDL_ENOENT) {
		*out = json_array();
		return *out ? HDL_EOK : HDL_ENOMEM;
	}
	if (ret != HDL_EOK)
		return ret;
	*out = json_loadb((const char *)raw.p, raw.len, 0, NULL);
	if (!json_is_array(*out)) {
		json_decref(*out);
		*out = NULL;
		return HDL_ESTORE;
	}
	return HDL_EOK;
}

static int set_write(store_batch_t *b, const char *name, json_t *set)
{
	if (json_array_size(set) == 0) {
		int ret = store_batch_meta_del(b, name);
		return ret == HDL_ENOENT ? HDL_EOK : ret;
	}
	char *s = json_dumps(set, JSON_COMPACT);
	if (s == NULL)
		return HDL_ENOMEM;
	int ret = store_batch_meta_put(b, name, hdl_slice_str(s));
	free(s);
	return ret;
}

static int refuse_rc(tpl_change_t *chg, uint32_t rc, char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse_rc(tpl_change_t *chg, uint32_t rc, char *msg, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, cap, fmt, ap);
	va_end(ap);
	chg->rcode = rc;
	return TPL_REFUSED;
}

/** Set or clear the prefix's default for \p version as \p dflt asks (-1: leave it). */
static int default_apply(store_batch_t *b, hdl_slice_t prefix, hdl_slice_t version, int dflt)
{
	char name[NAME_CAP];
	if (dflt < 0)
		return HDL_EOK;
	if (meta_name(name, sizeof(name), "tpldef", prefix, NULL) == 0)
		return HDL_EINVAL;
	if (dflt == 1)
		return store_batch_meta_put(b, name, version);
	hdl_slice_t raw;
	int ret = store_batch_meta_get(b, name, &raw);
	if (ret == HDL_ENOENT)
		return HDL_EOK;
	if (ret != HDL_EOK)
		return ret;
	if (!hdl_slice_eq(raw, version))
		return HDL_EOK;
	ret = store_batch_meta_del(b, name);
	return ret == HDL_ENOENT ? HDL_EOK : ret;
}

void tpl_change_clear(tpl_change_t *chg)
{
	free((void *)chg->before.p);
	free(chg->after);
	memset(chg, 0, sizeof(*chg));
}

int tpl_store_put(store_batch_t *b, const tpl_t *upd, unsigned flags, const tpl_limits_t *limp,
                  tpl_change_t *chg, char *msg, size_t cap)
{
	tpl_limits_t lim = tpl_limits_or_default(limp);
	memset(chg, 0, sizeof(*chg));
	hdl_slice_t prefix = hdl_slice_str(upd->prefix), version = hdl_slice_str(upd->version);
	char key[NAME_CAP], setname[NAME_CAP];
	int pl = quote_len(upd->prefix, prefix.len, MSG_NAME_MAX);
	int vl = quote_len(upd->version, version.len, MSG_NAME_MAX);
	if (tpl_key(key, sizeof(key), prefix, version) == 0)
		return refuse_rc(chg, HDL_RC_INVALID_VALUE, msg, cap, "Invalid prefix or version");
	hdl_slice_t raw;
	tpl_t *old = NULL, *merged = NULL;
	json_t *set = NULL;
	char err[TPL_MSG_MAX];
	err[0] = '\0';
	int ret = store_batch_meta_get(b, key, &raw);
	if (ret == HDL_EOK) {
		if (!(flags & TPL_PUT_UPDATE))
			return refuse_rc(chg, HDL_RC_HANDLE_ALREADY_EXISTS, msg, cap,
			                 "Template %.*s:%.*s already exists", pl, upd->prefix, vl,
			                 upd->version);
		uint8_t *copy = malloc(raw.len ? raw.len : 1);
		if (copy == NULL)
			return HDL_ENOMEM;
		memcpy(copy, raw.p, raw.len);
		chg->had_before = true;
		chg->before = (hdl_slice_t){copy, raw.len};
		ret = tpl_parse_raw(chg->before, &lim, &old, err, sizeof(err));
		if (ret != HDL_EOK)
			return ret == HDL_ENOMEM ? ret : HDL_ESTORE;
	} else if (ret == HDL_ENOENT) {
		if (!(flags & TPL_PUT_CREATE))
			return refuse_rc(chg, HDL_RC_HANDLE_NOT_FOUND, msg, cap,
			                 "Template %.*s:%.*s not found", pl, upd->prefix, vl,
			                 upd->version);
	} else {
		return ret;
	}
	ret = tpl_merge(old, upd, &lim, &merged, err, sizeof(err));
	if (ret == HDL_EJSON) {
		ret = refuse_rc(chg, HDL_RC_INVALID_VALUE, msg, cap, "%s", err);
		goto out;
	}
	if (ret != HDL_EOK)
		goto out;
	if (!chg->had_before) {
		if ((ret = set_read(b, prefix, setname, sizeof(setname), &set)) != HDL_EOK)
			goto out;
		if (json_array_size(set) >= lim.max_per_prefix) {
			ret = refuse_rc(chg, HDL_RC_INVALID_VALUE, msg, cap,
			                "Prefix %.*s has %u templates, the most allowed", pl,
			                upd->prefix, lim.max_per_prefix);
			goto out;
		}
		json_t *vs = json_string(upd->version);
		if (vs == NULL || json_array_append_new(set, vs) != 0) {
			ret = HDL_ENOMEM;
			goto out;
		}
		if ((ret = set_write(b, setname, set)) != HDL_EOK)
			goto out;
	}
	json_t *j = tpl_to_json(merged);
	chg->after = j ? (uint8_t *)json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (chg->after == NULL) {
		ret = HDL_ENOMEM;
		goto out;
	}
	chg->after_len = strlen((const char *)chg->after);
	ret = store_batch_meta_put(b, key, (hdl_slice_t){chg->after, (uint32_t)chg->after_len});
	if (ret == HDL_EOK)
		ret = default_apply(b, prefix, version, upd->dflt);
out:
	json_decref(set);
	tpl_free(old);
	tpl_free(merged);
	return ret;
}

int tpl_store_del(store_batch_t *b, hdl_slice_t prefix, hdl_slice_t version, tpl_change_t *chg,
                  char *msg, size_t cap)
{
	memset(chg, 0, sizeof(*chg));
	char key[NAME_CAP], setname[NAME_CAP];
	int pl = quote_len((const char *)prefix.p, prefix.len, MSG_NAME_MAX);
	int vl = quote_len((const char *)version.p, version.len, MSG_NAME_MAX);
	if (tpl_key(key, sizeof(key), prefix, version) == 0)
		return refuse_rc(chg, HDL_RC_INVALID_VALUE, msg, cap, "Invalid prefix or version");
	hdl_slice_t raw;
	int ret = store_batch_meta_get(b, key, &raw);
	if (ret == HDL_ENOENT)
		return refuse_rc(chg, HDL_RC_HANDLE_NOT_FOUND, msg, cap,
		                 "Template %.*s:%.*s not found", pl, (const char *)prefix.p, vl,
		                 (const char *)version.p);
	if (ret != HDL_EOK)
		return ret;
	uint8_t *copy = malloc(raw.len ? raw.len : 1);
	if (copy == NULL)
		return HDL_ENOMEM;
	memcpy(copy, raw.p, raw.len);
	chg->had_before = true;
	chg->before = (hdl_slice_t){copy, raw.len};
	if ((ret = store_batch_meta_del(b, key)) != HDL_EOK)
		return ret;
	json_t *set = NULL;
	if ((ret = set_read(b, prefix, setname, sizeof(setname), &set)) != HDL_EOK)
		return ret;
	size_t idx;
	json_t *it;
	json_array_foreach(set, idx, it)
	{
		if (json_is_string(it) && json_string_length(it) == version.len &&
		    memcmp(json_string_value(it), version.p, version.len) == 0) {
			json_array_remove(set, idx);
			break;
		}
	}
	ret = set_write(b, setname, set);
	json_decref(set);
	if (ret == HDL_EOK)
		ret = default_apply(b, prefix, version, 0);
	return ret;
}

int tpl_list(tpl_fetch_fn fetch, void *ctx, hdl_slice_t prefix, json_t **versions, char **dflt)
{
	char name[NAME_CAP];
	hdl_slice_t raw;
	*versions = NULL;
	*dflt = NULL;
	if (meta_name(name, sizeof(name), "tpldef", prefix, NULL) == 0)
		return HDL_EINVAL;
	int ret = fetch(ctx, name, &raw);
	if (ret == HDL_EOK) {
		*dflt = strndup((const char *)raw.p, raw.len);
		if (*dflt == NULL)
			return HDL_ENOMEM;
	} else if (ret != HDL_ENOENT) {
		return ret;
	}
	(void)meta_name(name, sizeof(name), "tplset", prefix, NULL);
	ret = fetch(ctx, name, &raw);
	if (ret == HDL_ENOENT)
		*versions = json_array();
	else if (ret == HDL_EOK)
		*versions = json_loadb((const char *)raw.p, raw.len, 0, NULL);
	else
		goto fail;
	if (!json_is_array(*versions)) {
		ret = *versions ? HDL_ESTORE : HDL_ENOMEM;
		goto fail;
	}
	return HDL_EOK;
fail:
	json_decref(*versions);
	*versions = NULL;
	free(*dflt);
	*dflt = NULL;
	return ret;
}

int tpl_get(tpl_fetch_fn fetch, void *ctx, hdl_slice_t prefix, hdl_slice_t version,
            const tpl_limits_t *lim, tpl_t **out, bool *is_default)
{
	char name[NAME_CAP];
	hdl_slice_t raw;
	*out = NULL;
	*is_default = false;
	if (tpl_key(name, sizeof(name), prefix, version) == 0)
		return HDL_ENOENT;
	int ret = fetch(ctx, name, &raw);
	if (ret != HDL_EOK)
		return ret;
	char err[160];
	ret = tpl_parse_raw(raw, lim, out, err, sizeof(err));
	if (ret != HDL_EOK)
		return ret == HDL_ENOMEM ? ret : HDL_ESTORE;
	(void)meta_name(name, sizeof(name), "tpldef", prefix, NULL);
	if (fetch(ctx, name, &raw) == HDL_EOK)
		*is_default = hdl_slice_eq(raw, version);
	return HDL_EOK;
}
