/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode audit`: read a node database's audit trail (node/store/audit.h), oldest entry
 *        first, optionally only one handle's entries and only those since a time; as text lines
 *        or as JSON Lines.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/store/audit.h"
#include "node/store/store.h"
#include "tools/idnode/cmds.h"

typedef struct audit_q {
	store_t *s;
	hdl_slice_t handle; /**< --handle, or empty */
	uint8_t norm[HDL_MAX_HANDLE_LEN + 8];
	size_t norm_len;
	bool json;
	uint64_t limit; /**< 0 = all */
	uint64_t shown;
	uint64_t bad; /**< records that do not decode */
	hdl_arena_t arena;
} audit_q_t;

static void audit_usage(FILE *f)
{
	fprintf(f,
	        "usage: idnode audit --db DIR [--handle HANDLE] [--since TIME] [--limit N] "
	        "[--json]\n"
	        "  Print the audit trail of a node database: who changed what, when, from where,\n"
	        "  with what outcome; oldest first.\n"
	        "  --handle H  only the entries of handle H\n"
	        "  --since T   only entries at or after T: Unix seconds, YYYY-MM-DD,\n"
	        "              YYYY-MM-DDTHH:MM:SSZ (UTC), or Nd / Nh / Nm (that long ago)\n"
	        "  --limit N   print at most N entries\n"
	        "  --json      one JSON object per line\n"
	        "Exit status: 0 entries printed, 1 none matched, 2 usage, 3 I/O or store error,\n"
	        "4 a record that does not decode.\n");
}

/** Parse --since. \return false when \p s is none of the accepted forms */
static bool parse_since(const char *s, uint32_t *out)
{
	uint64_t n = 0;
	size_t len = strlen(s);
	if (len >= 2 && (s[len - 1] == 'd' || s[len - 1] == 'h' || s[len - 1] == 'm')) {
		char num[24];
		if (len - 1 >= sizeof(num))
			return false;
		memcpy(num, s, len - 1);
		num[len - 1] = '\0';
		if (!idnode_parse_u64(num, false, &n))
			return false;
		uint64_t mul = s[len - 1] == 'd' ? 86400u : s[len - 1] == 'h' ? 3600u : 60u;
		uint64_t now = (uint64_t)time(NULL);
		if (n > now / mul)
			n = now / mul;
		*out = (uint32_t)(now - n * mul);
		return true;
	}
	if (idnode_parse_u64(s, false, &n)) {
		if (n > UINT32_MAX)
			return false;
		*out = (uint32_t)n;
		return true;
	}
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%d", &tm);
	if (end == NULL)
		return false;
	if (*end == 'T' || *end == ' ') {
		end = strptime(end + 1, "%H:%M:%S", &tm);
		if (end == NULL)
			return false;
		if (*end == 'Z')
			end++;
	}
	if (*end != '\0')
		return false;
	time_t t = timegm(&tm);
	if (t < 0 || (uint64_t)t > UINT32_MAX)
		return false;
	*out = (uint32_t)t;
	return true;
}

static void iso_time(uint32_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void print_json(uint64_t id, const audit_rec_t *r)
{
	char when[32], peer[64], dig[2 * AUDIT_DIGEST_LEN + 1];
	iso_time(r->time, when, sizeof(when));
	json_t *o = json_object();
	json_t *idx = json_array();
	if (o == NULL || idx == NULL) {
		json_decref(o);
		json_decref(idx);
		return;
	}
	for (uint32_t i = 0; i < r->n_indexes; i++)
		json_array_append_new(idx, json_integer(r->indexes[i]));
	char ids[32];
	snprintf(ids, sizeof(ids), "%" PRIu32 ".%" PRIu32, (uint32_t)(id >> 32), (uint32_t)id);
	json_object_set_new(o, "id", json_string(ids));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "unix", json_integer((json_int_t)r->time));
	json_object_set_new(o, "op", json_string(audit_op_name(r->op)));
	json_object_set_new(o, "handle", json_stringn((const char *)r->handle.p, r->handle.len));
	json_object_set_new(o, "rcode", json_integer(r->rcode));
	json_object_set_new(o, "outcome", json_string(hdl_rcode_name(r->rcode)));
	json_object_set_new(o, "admin",
	                    json_stringn((const char *)r->id_handle.p, r->id_handle.len));
	json_object_set_new(o, "adminIndex", json_integer(r->id_index));
	json_object_set_new(o, "transport", json_string(audit_transport_name(r->transport)));
	json_object_set_new(o, "peer", json_string(audit_peer_str(r, peer, sizeof(peer))));
	json_object_set_new(o, "flags", json_integer(r->flags));
	json_object_set_new(o, "indexes", idx);
	if (r->has_before) {
		hex(r->before, AUDIT_DIGEST_LEN, dig);
		json_object_set_new(o, "before", json_string(dig));
	}
	if (r->has_after) {
		hex(r->after, AUDIT_DIGEST_LEN, dig);
		json_object_set_new(o, "after", json_string(dig));
	}
	json_object_set_new(o, "message", json_stringn((const char *)r->message.p, r->message.len));
	json_object_set_new(o, "count", json_integer((json_int_t)r->count));
	char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text) {
		puts(text);
		free(text);
	}
	json_decref(o);
}

static void print_text(uint64_t id, const audit_rec_t *r)
{
	char when[32], peer[64], before[17] = "-", after[17] = "-";
	iso_time(r->time, when, sizeof(when));
	if (r->has_before)
		hex(r->before, 8, before);
	if (r->has_after)
		hex(r->after, 8, after);
	printf("%s  %-13s %.*s  %" PRIu32 " %s  by ", when, audit_op_name(r->op),
	       r->handle.len ? (int)r->handle.len : 1,
	       r->handle.len ? (const char *)r->handle.p : "-", r->rcode, hdl_rcode_name(r->rcode));
	if (r->id_handle.len > 0)
		printf("%" PRIu32 ":%.*s", r->id_index, (int)r->id_handle.len,
		       (const char *)r->id_handle.p);
	else
		printf("-");
	printf("  via %s %s  before %s after %s", audit_transport_name(r->transport),
	       audit_peer_str(r, peer, sizeof(peer)), before, after);
	if (r->n_indexes > 0) {
		printf("  indexes");
		for (uint32_t i = 0; i < r->n_indexes; i++)
			printf("%c%" PRIu32, i ? ',' : ' ', r->indexes[i]);
	}
	if (r->op == AUDIT_OP_IMPORT)
		printf("  count %" PRIu64, r->count);
	if (r->message.len > 0)
		printf("  \"%.*s\"", (int)r->message.len, (const char *)r->message.p);
	printf("  #%" PRIu32 ".%" PRIu32 "\n", (uint32_t)(id >> 32), (uint32_t)id);
}

static int show(void *ctx, uint64_t id, hdl_slice_t rec)
{
	audit_q_t *q = ctx;
	audit_rec_t r;
	hdl_arena_reset(&q->arena);
	if (audit_decode(rec.p, rec.len, &q->arena, &r) != HDL_EOK) {
		q->bad++;
		fprintf(stderr, "idnode audit: entry #%" PRIu64 " does not decode\n", id);
		return 0;
	}
	if (q->handle.len > 0) {
		/* the index is by normalized name: compare the names themselves */
		uint8_t norm[HDL_MAX_HANDLE_LEN + 8];
		size_t n = store_key(q->s, r.handle, norm, sizeof(norm));
		if (n != q->norm_len || memcmp(norm, q->norm, n) != 0)
			return 0;
	}
	if (q->json)
		print_json(id, &r);
	else
		print_text(id, &r);
	q->shown++;
	return q->limit > 0 && q->shown >= q->limit;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"handle", required_argument, NULL, 'H'},
	    {"since", required_argument, NULL, 's'},
	    {"limit", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL;
	uint32_t since = 0;
	audit_q_t q;
	memset(&q, 0, sizeof(q));
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:H:s:n:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'H': q.handle = hdl_slice_str(optarg); break;
		case 's':
			if (!parse_since(optarg, &since)) {
				fprintf(stderr, "idnode audit: --since %s: not a time\n", optarg);
				return IDNODE_EXIT_USAGE;
			}
			break;
		case 'n':
			if (!idnode_parse_u64(optarg, false, &q.limit) || q.limit == 0)
				goto usage;
			break;
		case 'j': q.json = true; break;
		case 'h': audit_usage(stdout); return IDNODE_EXIT_OK;
		default: goto usage;
		}
	}
	if (db == NULL || optind != argc)
		goto usage;
	if (q.handle.len > 0 && hdl_name_check(q.handle.p, q.handle.len) != HDL_EOK) {
		fprintf(stderr, "idnode audit: --handle: not a valid handle name\n");
		return IDNODE_EXIT_USAGE;
	}
	store_opts_t so = {.path = db, .read_only = true};
	int ret = store_open(&so, &q.s);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode audit: cannot open store %s: %s\n", db, hdl_strerror(ret));
		return IDNODE_EXIT_IO;
	}
	if (q.handle.len > 0)
		q.norm_len = store_key(q.s, q.handle, q.norm, sizeof(q.norm));
	hdl_arena_init(&q.arena, NULL, 0, 1u << 20);
	store_reader_t *r = NULL;
	int rc = IDNODE_EXIT_OK;
	if ((ret = store_reader_new(q.s, &r)) != HDL_EOK ||
	    (ret = store_reader_begin(r)) != HDL_EOK) {
		fprintf(stderr, "idnode audit: %s\n", hdl_strerror(ret));
		rc = IDNODE_EXIT_IO;
		goto out;
	}
	ret = store_audit_foreach(r, since, q.handle, show, &q);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode audit: %s\n", hdl_strerror(ret));
		rc = IDNODE_EXIT_IO;
	} else if (q.bad > 0) {
		rc = IDNODE_EXIT_DATA;
	} else if (q.shown == 0) {
		rc = IDNODE_EXIT_NOTFOUND;
	}
out:
	store_reader_free(r);
	store_close(q.s);
	hdl_arena_free(&q.arena);
	fflush(stdout);
	return rc;
usage:
	audit_usage(stderr);
	return IDNODE_EXIT_USAGE;
}
