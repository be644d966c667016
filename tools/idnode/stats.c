/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode stats`: the usage statistics of a node database (node/store/stats.h), per prefix
 *        and per UTC day, or merged over a range of days: as text, CSV, or the JSON export
 *        format of docs/statistics.md for upward reporting.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/store/stats.h"
#include "node/store/store.h"
#include "tools/idnode/cmds.h"

#define STATS_FORMAT         "idnode-stats"
#define STATS_FORMAT_VERSION 1

typedef enum out_fmt { OUT_TEXT, OUT_JSON, OUT_CSV } out_fmt_t;

typedef struct stats_q {
	store_t *s;
	uint8_t prefix[STATS_PREFIX_MAX];
	uint32_t prefix_len; /**< 0 = every prefix */
	uint32_t from, to;   /**< days, inclusive */
	bool merge;
	unsigned top;
	uint32_t top_cap; /**< top list entries kept per record */
	bool any;         /**< a record was selected */
	out_fmt_t fmt;
	stats_day_t *recs; /**< selected (merged: one per prefix) */
	uint32_t n, cap;
	uint32_t first_day, last_day; /**< of the records selected */
	uint64_t bad;
	int err;
} stats_q_t;

static void stats_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: idnode stats --db DIR [--prefix P] [--day D | --from D --to D] [--merge]\n"
	    "                    [--top N] [--json | --csv]\n"
	    "  Usage statistics of a node database, per prefix and per UTC day: registrations\n"
	    "  (created, modified, deleted), resolutions by transport and response code, unique\n"
	    "  identifiers resolved (HyperLogLog, about 0.8 %% standard error) and the most\n"
	    "  resolved identifiers. The node writes them every stats_flush_interval_s and when\n"
	    "  it stops.\n"
	    "  --prefix P   only prefix P (\"-\": resolutions outside the homed prefixes)\n"
	    "  --day D      only day D (YYYY-MM-DD, or today / yesterday)\n"
	    "  --from D, --to D  a range of days (inclusive)\n"
	    "  --merge      one record per prefix for the whole range (unique identifiers over\n"
	    "               the range, not the sum of the days)\n"
	    "  --top N      identifiers listed per record (default 10; 0 = none)\n"
	    "  --json       the export format of docs/statistics.md (idnode-stats version 1)\n"
	    "  --csv        one line per record\n"
	    "Exit status: 0 records printed, 1 none matched, 2 usage, 3 I/O or store error,\n"
	    "4 a record that does not decode.\n");
}

static bool parse_day(const char *s, uint32_t *day)
{
	uint32_t today = (uint32_t)(time(NULL) / 86400);
	if (strcmp(s, "today") == 0) {
		*day = today;
		return true;
	}
	if (strcmp(s, "yesterday") == 0) {
		*day = today - 1;
		return true;
	}
	return stats_day_parse(s, day) == HDL_EOK;
}

/* The record to add a stored one into: a new one, or (--merge) the prefix's. */
static stats_day_t *target(stats_q_t *q, uint32_t day, hdl_slice_t prefix)
{
	if (q->merge) {
		for (uint32_t i = 0; i < q->n; i++) {
			if (hdl_slice_eq((hdl_slice_t){q->recs[i].prefix, q->recs[i].prefix_len},
			                 prefix))
				return &q->recs[i];
		}
	}
	if (q->n == q->cap) {
		uint32_t nc = q->cap ? q->cap * 2 : 16;
		stats_day_t *nr = realloc(q->recs, sizeof(*nr) * nc);
		if (!nr)
			return NULL;
		q->recs = nr;
		q->cap = nc;
	}
	stats_day_t *d = &q->recs[q->n];
	if (stats_day_init(d, day, prefix, q->top_cap) != HDL_EOK)
		return NULL;
	q->n++;
	return d;
}

static int collect(void *ctx, hdl_slice_t key, hdl_slice_t val)
{
	stats_q_t *q = ctx;
	uint32_t day;
	hdl_slice_t prefix;
	if (stats_key_parse(key, &day, &prefix) != HDL_EOK) {
		q->bad++;
		return 0;
	}
	if (day > q->to)
		return 1; /* keys sort by day */
	if (day < q->from ||
	    (q->prefix_len && !hdl_slice_eq(prefix, (hdl_slice_t){q->prefix, q->prefix_len})))
		return 0;
	stats_day_t one;
	if (stats_day_init(&one, day, prefix, q->top_cap) != HDL_EOK) {
		q->err = HDL_ENOMEM;
		return 1;
	}
	int ret = stats_day_decode(val.p, val.len, &one);
	if (ret != HDL_EOK) {
		char ds[11];
		fprintf(stderr, "idnode stats: record %s %.*s does not decode: %s\n",
		        stats_day_str(day, ds), (int)prefix.len, (const char *)prefix.p,
		        hdl_strerror(ret));
		q->bad++;
		stats_day_free(&one);
		return 0;
	}
	stats_day_t *d = target(q, day, prefix);
	ret = d ? stats_day_merge(d, &one) : HDL_ENOMEM;
	stats_day_free(&one);
	if (ret != HDL_EOK) {
		q->err = ret;
		return 1;
	}
	if (!q->any)
		q->first_day = q->last_day = day;
	q->any = true;
	q->first_day = day < q->first_day ? day : q->first_day;
	q->last_day = day > q->last_day ? day : q->last_day;
	return 0;
}

static uint64_t unique_of(const stats_day_t *d)
{
	return d->hll_used ? (uint64_t)(stats_hll_estimate(d->hll) + 0.5) : 0;
}

static uint64_t by_transport(const stats_day_t *d, unsigned t)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < d->n_res; i++)
		n += d->res[i].transport == t ? d->res[i].count : 0;
	return n;
}

/* Resolutions per response code, summed over the transports (codes ascending). */
static uint32_t by_rcode(const stats_day_t *d, uint32_t *codes, uint64_t *counts)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < d->n_res; i++) {
		uint32_t k = 0;
		while (k < n && codes[k] != d->res[i].rcode)
			k++;
		if (k == n) {
			uint32_t at = n;
			while (at > 0 && codes[at - 1] > d->res[i].rcode) {
				codes[at] = codes[at - 1];
				counts[at] = counts[at - 1];
				at--;
			}
			codes[at] = d->res[i].rcode;
			counts[at] = 0;
			k = at;
			n++;
		}
		counts[k] += d->res[i].count;
	}
	return n;
}

static const char *rc_name(uint32_t rc)
{
	return rc == 0 ? "OTHER" : hdl_rcode_name(rc);
}

static void day_label(const stats_q_t *q, const stats_day_t *d, char *out, size_t cap)
{
	char a[11], b[11];
	if (!q->merge)
		snprintf(out, cap, "%s", stats_day_str(d->day, a));
	else
		snprintf(out, cap, "%s..%s", stats_day_str(q->first_day, a),
		         stats_day_str(q->last_day, b));
}

static void print_text(const stats_q_t *q, const stats_day_t *d)
{
	char label[32];
	uint32_t codes[STATS_RES_MAX];
	uint64_t counts[STATS_RES_MAX];
	day_label(q, d, label, sizeof(label));
	printf("%s  %.*s\n", label, (int)d->prefix_len, (const char *)d->prefix);
	printf("  registrations  created %" PRIu64 ", modified %" PRIu64 ", deleted %" PRIu64 "\n",
	       d->created, d->modified, d->deleted);
	printf("  resolutions    %" PRIu64, stats_day_resolutions(d));
	const char *sep = " (";
	for (unsigned t = 0; t < STATS_T_N; t++) {
		uint64_t n = by_transport(d, t);
		if (n) {
			printf("%s%s %" PRIu64, sep, stats_transport_name(t), n);
			sep = ", ";
		}
	}
	printf("%s\n", *sep == ',' ? ")" : "");
	uint32_t nc = by_rcode(d, codes, counts);
	if (nc) {
		printf("  by code       ");
		for (uint32_t i = 0; i < nc; i++)
			printf("%s %s %" PRIu64, i ? "," : "", rc_name(codes[i]), counts[i]);
		printf("\n");
	}
	printf("  unique         %" PRIu64 " identifiers\n", unique_of(d));
	for (uint32_t i = 0; i < d->top.n && i < q->top; i++) {
		const stats_top_t *e = &d->top.e[i];
		printf("  %s %.*s  %" PRIu64, i ? "              " : "top           ", (int)e->len,
		       (const char *)e->name, e->count);
		if (e->error)
			printf(" (at most %" PRIu64 " too many)", e->error);
		printf("\n");
	}
}

static void csv_field(const uint8_t *p, size_t n)
{
	bool quote = false;
	for (size_t i = 0; i < n; i++)
		quote |= p[i] == ',' || p[i] == '"' || p[i] == '\n' || p[i] == '\r';
	if (!quote) {
		fwrite(p, 1, n, stdout);
		return;
	}
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"')
			putchar('"');
		putchar(p[i]);
	}
	putchar('"');
}

static void print_csv_head(void)
{
	printf("day,prefix,created,modified,deleted,resolutions,unique_identifiers");
	for (unsigned t = 0; t < STATS_T_N; t++)
		printf(",resolutions_%s", stats_transport_name(t));
	printf(",resolutions_success,resolutions_not_found\n");
}

static void print_csv(const stats_q_t *q, const stats_day_t *d)
{
	char label[32];
	day_label(q, d, label, sizeof(label));
	printf("%s,", label);
	csv_field(d->prefix, d->prefix_len);
	printf(",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, d->created, d->modified,
	       d->deleted, stats_day_resolutions(d), unique_of(d));
	for (unsigned t = 0; t < STATS_T_N; t++)
		printf(",%" PRIu64, by_transport(d, t));
	uint64_t ok = 0, nf = 0;
	for (uint32_t i = 0; i < d->n_res; i++) {
		ok += d->res[i].rcode == HDL_RC_SUCCESS ? d->res[i].count : 0;
		nf += d->res[i].rcode == HDL_RC_HANDLE_NOT_FOUND ? d->res[i].count : 0;
	}
	printf(",%" PRIu64 ",%" PRIu64 "\n", ok, nf);
}

static json_t *jnum(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *record_json(const stats_q_t *q, const stats_day_t *d)
{
	char a[11];
	uint32_t codes[STATS_RES_MAX];
	uint64_t counts[STATS_RES_MAX];
	json_t *o = json_object();
	if (q->merge) {
		json_object_set_new(o, "from", json_string(stats_day_str(q->first_day, a)));
		json_object_set_new(o, "to", json_string(stats_day_str(q->last_day, a)));
	} else {
		json_object_set_new(o, "day", json_string(stats_day_str(d->day, a)));
	}
	json_object_set_new(o, "prefix", json_stringn((const char *)d->prefix, d->prefix_len));
	json_t *reg = json_object();
	json_object_set_new(reg, "created", jnum(d->created));
	json_object_set_new(reg, "modified", jnum(d->modified));
	json_object_set_new(reg, "deleted", jnum(d->deleted));
	json_object_set_new(o, "registrations", reg);
	json_t *res = json_object(), *bt = json_object(), *brc = json_array(), *det = json_array();
	json_object_set_new(res, "total", jnum(stats_day_resolutions(d)));
	for (unsigned t = 0; t < STATS_T_N; t++) {
		uint64_t n = by_transport(d, t);
		if (n)
			json_object_set_new(bt, stats_transport_name(t), jnum(n));
	}
	uint32_t nc = by_rcode(d, codes, counts);
	for (uint32_t i = 0; i < nc; i++) {
		json_t *e = json_object();
		json_object_set_new(e, "rcode", json_integer(codes[i]));
		json_object_set_new(e, "name", json_string(rc_name(codes[i])));
		json_object_set_new(e, "count", jnum(counts[i]));
		json_array_append_new(brc, e);
	}
	for (uint32_t i = 0; i < d->n_res; i++) {
		json_t *e = json_object();
		json_object_set_new(e, "transport",
		                    json_string(stats_transport_name(d->res[i].transport)));
		json_object_set_new(e, "rcode", json_integer(d->res[i].rcode));
		json_object_set_new(e, "count", jnum(d->res[i].count));
		json_array_append_new(det, e);
	}
	json_object_set_new(res, "by_transport", bt);
	json_object_set_new(res, "by_rcode", brc);
	json_object_set_new(res, "detail", det);
	json_object_set_new(o, "resolutions", res);
	json_object_set_new(o, "unique_identifiers", jnum(unique_of(d)));
	json_t *top = json_array();
	for (uint32_t i = 0; i < d->top.n && i < q->top; i++) {
		const stats_top_t *e = &d->top.e[i];
		json_t *t = json_object();
		json_t *h = json_stringn((const char *)e->name, e->len);
		json_object_set_new(t, "handle", h ? h : json_null());
		json_object_set_new(t, "count", jnum(e->count));
		json_object_set_new(t, "error", jnum(e->error));
		json_array_append_new(top, t);
	}
	json_object_set_new(o, "top", top);
	return o;
}

static void print_json(const stats_q_t *q)
{
	char now[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *root = json_object();
	json_object_set_new(root, "format", json_string(STATS_FORMAT));
	json_object_set_new(root, "version", json_integer(STATS_FORMAT_VERSION));
	json_object_set_new(root, "generated", json_string(now));
	json_object_set_new(root, "hll_precision", json_integer(STATS_HLL_P));
	json_t *recs = json_array();
	for (uint32_t i = 0; i < q->n; i++)
		json_array_append_new(recs, record_json(q, &q->recs[i]));
	json_object_set_new(root, "records", recs);
	char *text = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	if (text) {
		puts(text);
		free(text);
	}
	json_decref(root);
}

/* --prefix as the store folds it: the authority of "P/x" normalized. */
static bool fold_prefix(stats_q_t *q, const char *p)
{
	if (strcmp(p, STATS_OTHER) == 0) {
		memcpy(q->prefix, STATS_OTHER, strlen(STATS_OTHER));
		q->prefix_len = (uint32_t)strlen(STATS_OTHER);
		return true;
	}
	char name[STATS_PREFIX_MAX + 8];
	uint8_t norm[STATS_PREFIX_MAX + 16];
	int n = snprintf(name, sizeof(name), "%s/x", p);
	if (n <= 2 || (size_t)n >= sizeof(name) || strchr(p, '/'))
		return false;
	size_t kl = store_key(q->s, hdl_slice_str(name), norm, sizeof(norm));
	if (kl == 0)
		return false;
	hdl_slice_t a = hdl_name_authority((hdl_slice_t){norm, (uint32_t)kl});
	if (a.len == 0 || a.len > STATS_PREFIX_MAX)
		return false;
	memcpy(q->prefix, a.p, a.len);
	q->prefix_len = a.len;
	return true;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"prefix", required_argument, NULL, 'p'},
	    {"day", required_argument, NULL, 'D'},
	    {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},
	    {"merge", no_argument, NULL, 'm'},
	    {"top", required_argument, NULL, 'T'},
	    {"json", no_argument, NULL, 'j'},
	    {"csv", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *prefix = NULL;
	stats_q_t q;
	memset(&q, 0, sizeof(q));
	q.to = UINT32_MAX;
	q.top = 10;
	bool day_set = false, range_set = false;
	uint64_t top = 10;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:p:D:f:t:mT:jch", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'p': prefix = optarg; break;
		case 'D':
		case 'f':
		case 't': {
			uint32_t day;
			if (!parse_day(optarg, &day)) {
				fprintf(stderr, "idnode stats: %s: not a day (YYYY-MM-DD)\n",
				        optarg);
				return IDNODE_EXIT_USAGE;
			}
			if (c == 'D') {
				q.from = q.to = day;
				day_set = true;
			} else if (c == 'f') {
				q.from = day;
				range_set = true;
			} else {
				q.to = day;
				range_set = true;
			}
			break;
		}
		case 'm': q.merge = true; break;
		case 'T':
			if (!idnode_parse_u64(optarg, false, &top) || top > STATS_TOP_MAX)
				goto usage;
			q.top = (unsigned)top;
			break;
		case 'j': q.fmt = OUT_JSON; break;
		case 'c': q.fmt = OUT_CSV; break;
		case 'h': stats_usage(stdout); return IDNODE_EXIT_OK;
		default: goto usage;
		}
	}
	if (db == NULL || optind != argc || (day_set && range_set) || q.from > q.to)
		goto usage;
	/* merged records keep long lists (merging short ones loses identifiers) */
	q.top_cap = q.merge ? STATS_TOP_MAX : (q.top ? q.top : 1);
	store_opts_t so = {.path = db, .read_only = true};
	int ret = store_open(&so, &q.s);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode stats: cannot open store %s: %s\n", db, hdl_strerror(ret));
		return IDNODE_EXIT_IO;
	}
	int rc = IDNODE_EXIT_OK;
	store_reader_t *r = NULL;
	if (prefix && !fold_prefix(&q, prefix)) {
		fprintf(stderr, "idnode stats: --prefix %s: not a prefix\n", prefix);
		rc = IDNODE_EXIT_USAGE;
		goto out;
	}
	if ((ret = store_reader_new(q.s, &r)) != HDL_EOK ||
	    (ret = store_reader_begin(r)) != HDL_EOK) {
		fprintf(stderr, "idnode stats: %s\n", hdl_strerror(ret));
		rc = IDNODE_EXIT_IO;
		goto out;
	}
	uint8_t from[4] = {(uint8_t)(q.from >> 24), (uint8_t)(q.from >> 16), (uint8_t)(q.from >> 8),
	                   (uint8_t)q.from};
	ret = store_stats_foreach(r, (hdl_slice_t){from, 4}, collect, &q);
	store_reader_end(r);
	if (ret == HDL_EOK)
		ret = q.err;
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode stats: %s\n", hdl_strerror(ret));
		rc = IDNODE_EXIT_IO;
		goto out;
	}
	for (uint32_t i = 0; i < q.n; i++)
		stats_top_sort(&q.recs[i].top);
	if (q.fmt == OUT_JSON) {
		print_json(&q);
	} else if (q.fmt == OUT_CSV) {
		print_csv_head();
		for (uint32_t i = 0; i < q.n; i++)
			print_csv(&q, &q.recs[i]);
	} else {
		for (uint32_t i = 0; i < q.n; i++)
			print_text(&q, &q.recs[i]);
	}
	if (q.bad)
		rc = IDNODE_EXIT_DATA;
	else if (q.n == 0)
		rc = IDNODE_EXIT_NOTFOUND;
out:
	for (uint32_t i = 0; i < q.n; i++)
		stats_day_free(&q.recs[i]);
	free(q.recs);
	store_reader_free(r);
	store_close(q.s);
	fflush(stdout);
	return rc;
usage:
	stats_usage(stderr);
	return IDNODE_EXIT_USAGE;
}
