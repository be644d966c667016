/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode resolve`: resolve a handle and print its values, as text or REST JSON.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "proto/json.h"
#include "tools/idnode/cmds.h"

#define RESOLVE_MAX_DATA_SHOW 4096u /**< bytes of value data printed before "..." */
#define RESOLVE_MAX_TYPE_COL  40u   /**< widest type column (longer types are not padded) */

static void resolve_usage(FILE *f)
{
	fprintf(f,
	        "usage: idnode resolve [-s HOST:PORT] [--udp|--tcp|--http] [-t TYPE]... [-i INDEX]...\n"
	        "                      [--auth] [--digest] [--timeout MS] [--no-fallback] [--json]\n"
	        "                      HANDLE\n"
	        "  -s, --server HOST:PORT  server (default 127.0.0.1:2641, :8000 with --http);\n"
	        "                          IPv6 as [::1]:2641\n"
	        "      --udp | --tcp | --http  transport (default UDP, falling back to TCP)\n"
	        "      --no-fallback       UDP only: no retry over TCP\n"
	        "  -t, --type TYPE         only values of this type (repeatable, or TYPE,TYPE)\n"
	        "  -i, --index N           only the value at this index (repeatable, or N,N)\n"
	        "      --auth              authoritative (AT flag)\n"
	        "      --digest            ask for the request digest (RD) and check it\n"
	        "      --timeout MS        whole-request timeout (default 5000)\n"
	        "      --json              print Handle.Net REST JSON\n"
	        "Exit status: 0 values found, 1 not found or error answer, 2 usage, 3 network,\n"
	        "4 malformed answer.\n");
}

static void print_escaped(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (ch == '\\')
			fputs("\\\\", stdout);
		else if (ch == '\n')
			fputs("\\n", stdout);
		else if (ch == '\r')
			fputs("\\r", stdout);
		else if (ch == '\t')
			fputs("\\t", stdout);
		else if (ch < 0x20 || ch == 0x7F)
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
}

static void print_hex(const uint8_t *p, size_t n)
{
	size_t show = n > RESOLVE_MAX_DATA_SHOW ? RESOLVE_MAX_DATA_SHOW : n;
	fputs("hex:", stdout);
	for (size_t i = 0; i < show; i++)
		printf("%02x", p[i]);
	if (show < n)
		printf("... (%zu bytes)", n);
}

static void print_site(const hdl_value_t *v)
{
	hdl_arena_t a;
	hdl_site_t s;

	hdl_arena_init(&a, NULL, 0, 1u << 20);
	if (hdl_site_decode(v->data.p, v->data.len, &a, &s) != HDL_EOK) {
		print_hex(v->data.p, v->data.len);
		goto out;
	}
	printf("site v%u.%u serial=%u%s%s servers=%" PRIu32, s.proto_major, s.proto_minor,
	       s.serial, (s.primary_mask & HDL_SITE_PRIMARY) ? " primary" : "",
	       (s.primary_mask & HDL_SITE_MULTI_PRIMARY) ? " multi-primary" : "", s.n_servers);
	for (uint32_t i = 0; i < s.n_servers; i++) {
		const hdl_server_t *sv = &s.servers[i];
		char addr[64];

		if (hdl_server_is_ipv4(sv))
			snprintf(addr, sizeof(addr), "%u.%u.%u.%u", sv->addr[12], sv->addr[13],
			         sv->addr[14], sv->addr[15]);
		else {
			size_t o = 0;
			for (int k = 0; k < 16; k += 2)
				o += (size_t)snprintf(addr + o, sizeof(addr) - o, "%s%x", k ? ":" : "",
				                      (unsigned)sv->addr[k] << 8 | sv->addr[k + 1]);
		}
		printf(" [%" PRIu32 " %s", sv->id, addr);
		for (uint32_t j = 0; j < sv->n_ifaces; j++) {
			static const char *const pn[] = {"udp", "tcp", "http", "https"};
			const hdl_interface_t *f = &sv->ifaces[j];
			printf(" %s/%" PRIu32, f->proto < 4 ? pn[f->proto] : "?", f->port);
		}
		putchar(']');
	}
	for (uint32_t i = 0; i < s.n_attrs; i++) {
		printf(" ");
		print_escaped(s.attrs[i].name.p, s.attrs[i].name.len);
		printf("=");
		print_escaped(s.attrs[i].value.p, s.attrs[i].value.len);
	}
out:
	hdl_arena_free(&a);
}

void idnode_print_data(const hdl_value_t *v)
{
	switch (hdl_vtype_of(v->type)) {
	case HDL_VT_ADMIN: {
		hdl_admin_t adm;
		if (hdl_admin_decode(v->data.p, v->data.len, &adm) == HDL_EOK) {
			print_escaped(adm.handle.p, adm.handle.len);
			printf(":%" PRIu32 " perms=0x%04x", adm.index, adm.perms);
			return;
		}
		break;
	}
	case HDL_VT_SITE:
		print_site(v);
		return;
	case HDL_VT_VLIST: {
		hdl_arena_t a;
		hdl_ref_t *refs;
		uint32_t n;
		bool ok;

		hdl_arena_init(&a, NULL, 0, 1u << 20);
		ok = hdl_vlist_decode(v->data.p, v->data.len, &a, &refs, &n) == HDL_EOK;
		if (ok) {
			printf("vlist:");
			for (uint32_t i = 0; i < n; i++) {
				printf("%s", i ? "," : " ");
				print_escaped(refs[i].handle.p, refs[i].handle.len);
				printf(":%" PRIu32, refs[i].index);
			}
		}
		hdl_arena_free(&a);
		if (ok)
			return;
		break;
	}
	case HDL_VT_PUBKEY: {
		hdl_pubkey_t k;
		if (hdl_pubkey_decode(v->data.p, v->data.len, &k) == HDL_EOK) {
			if (k.kind == HDL_KEY_PEM) {
				printf("PEM key (%zu bytes)", (size_t)k.pem.len);
				return;
			}
			print_escaped(k.key_type.p, k.key_type.len);
			if (k.kind == HDL_KEY_RSA) {
				size_t nb = k.n.len;
				const uint8_t *np = k.n.p;
				while (nb > 0 && *np == 0) {
					np++;
					nb--;
				}
				printf(" (%zu bits)", nb * 8);
			}
			return;
		}
		break;
	}
	default:
		break;
	}
	if (v->data.len <= RESOLVE_MAX_DATA_SHOW && hdl_utf8_valid(v->data.p, v->data.len)) {
		print_escaped(v->data.p, v->data.len);
		return;
	}
	print_hex(v->data.p, v->data.len);
}

/** Columns print_escaped() takes for \p p (a UTF-8 sequence counts one, an escape its length). */
static size_t escaped_width(const uint8_t *p, size_t n)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (ch == '\\' || ch == '\n' || ch == '\r' || ch == '\t')
			w += 2;
		else if (ch < 0x20 || ch == 0x7F)
			w += 4;
		else if ((ch & 0xC0) != 0x80)
			w++; /* not a continuation byte */
	}
	return w;
}

static void ttl_text(const hdl_value_t *v, char *ttl, size_t cap)
{
	if (v->ttl_type == HDL_TTL_ABSOLUTE)
		snprintf(ttl, cap, "@%" PRIu32, v->ttl);
	else
		snprintf(ttl, cap, "%" PRIu32, v->ttl);
}

/** One value with its index, type and TTL padded to \p wi, \p wt and \p wttl columns. */
static void print_value_cols(const hdl_value_t *v, int wi, size_t wt, int wttl)
{
	char ttl[24];

	ttl_text(v, ttl, sizeof(ttl));
	printf("%-*" PRIu32 " ", wi, v->index);
	print_escaped(v->type.p, v->type.len);
	for (size_t w = escaped_width(v->type.p, v->type.len); w < wt; w++)
		putchar(' ');
	printf("  %-*s  %c%c%c%c  ", wttl, ttl, (v->perms & HDL_PERM_ADMIN_READ) ? 'r' : '-',
	       (v->perms & HDL_PERM_ADMIN_WRITE) ? 'w' : '-',
	       (v->perms & HDL_PERM_PUBLIC_READ) ? 'r' : '-',
	       (v->perms & HDL_PERM_PUBLIC_WRITE) ? 'w' : '-');
	idnode_print_data(v);
	for (uint32_t i = 0; i < v->n_refs; i++) {
		printf("%s", i ? "," : "  refs=");
		print_escaped(v->refs[i].handle.p, v->refs[i].handle.len);
		printf(":%" PRIu32, v->refs[i].index);
	}
	putchar('\n');
}

void idnode_print_value(const hdl_value_t *v)
{
	print_value_cols(v, 6, 0, 0);
}

void idnode_print_values(const hdl_value_t *v, uint32_t n)
{
	int wi = 1, wttl = 1;
	size_t wt = 1;
	char buf[24];

	for (uint32_t i = 0; i < n; i++) {
		int l = snprintf(buf, sizeof(buf), "%" PRIu32, v[i].index);
		wi = l > wi ? l : wi;
		ttl_text(&v[i], buf, sizeof(buf));
		l = (int)strlen(buf);
		wttl = l > wttl ? l : wttl;
		size_t w = escaped_width(v[i].type.p, v[i].type.len);
		wt = w > wt ? w : wt;
	}
	if (wt > RESOLVE_MAX_TYPE_COL)
		wt = RESOLVE_MAX_TYPE_COL; /* a very long type shifts its own line only */
	for (uint32_t i = 0; i < n; i++)
		print_value_cols(&v[i], wi, wt, wttl);
}

static int print_json(const char *handle, const hdl_msg_t *m)
{
	json_t *root = json_object();
	int ret = IDNODE_EXIT_DATA;

	if (!root)
		goto out;
	json_object_set_new(root, "responseCode", json_integer(m->hdr.rcode));
	json_object_set_new(root, "handle", json_string(handle));
	if (m->hdr.rcode == HDL_RC_SUCCESS && m->kind == HDL_BODY_VALUES) {
		json_t *vals = hdl_json_from_values(m->u.values.values, m->u.values.n_values);
		if (!vals)
			goto out;
		json_object_set_new(root, "values", vals);
	} else if (m->kind == HDL_BODY_ERROR && m->u.error.message.len > 0) {
		json_object_set_new(root, "message",
		                    json_stringn((const char *)m->u.error.message.p,
		                                         m->u.error.message.len));
	}
	if (json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
		goto out;
	putchar('\n');
	ret = IDNODE_EXIT_OK;
out:
	json_decref(root);
	return ret;
}

/** \brief Append comma-separated items of \p arg to the type list. */
static int add_types(const char *arg, char ***types, uint32_t *n)
{
	const char *p = arg;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char **t;

		if (len == 0 || *n >= HDL_MAX_FILTER)
			return -1;
		t = realloc(*types, (*n + 1) * sizeof(**types));
		if (!t)
			return -1;
		*types = t;
		t[*n] = strndup(p, len);
		if (!t[*n])
			return -1;
		(*n)++;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

int cmd_resolve(int argc, char **argv)
{
	enum { OPT_UDP = 256, OPT_TCP, OPT_HTTP, OPT_AUTH, OPT_DIGEST, OPT_TIMEOUT, OPT_JSON,
	       OPT_NO_FALLBACK };
	static const struct option longopts[] = {
		{"server", required_argument, NULL, 's'},
		{"type", required_argument, NULL, 't'},
		{"index", required_argument, NULL, 'i'},
		{"udp", no_argument, NULL, OPT_UDP},
		{"tcp", no_argument, NULL, OPT_TCP},
		{"http", no_argument, NULL, OPT_HTTP},
		{"auth", no_argument, NULL, OPT_AUTH},
		{"digest", no_argument, NULL, OPT_DIGEST},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"json", no_argument, NULL, OPT_JSON},
		{"no-fallback", no_argument, NULL, OPT_NO_FALLBACK},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	hdl_client_opts_t opts;
	hdl_resolve_req_t rq;
	hdl_client_t *c = NULL;
	hdl_result_t *res = NULL;
	char host[256] = "127.0.0.1";
	const char *server = NULL;
	char **types = NULL;
	uint32_t n_types = 0, *indexes = NULL, n_indexes = 0;
	bool json = false;
	int ntransport = 0;
	int ret = IDNODE_EXIT_USAGE;
	int opt, err;

	memset(&opts, 0, sizeof(opts));
	memset(&rq, 0, sizeof(rq));
	opts.transport = HDL_TRANSPORT_UDP;
	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "s:t:i:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			server = optarg;
			break;
		case 't':
			if (add_types(optarg, &types, &n_types) != 0) {
				fprintf(stderr, "idnode resolve: bad type list '%s'\n", optarg);
				goto out;
			}
			break;
		case 'i':
			if (idnode_parse_indexes(optarg, HDL_MAX_FILTER, &indexes, &n_indexes) != 0) {
				fprintf(stderr, "idnode resolve: bad index list '%s'\n", optarg);
				goto out;
			}
			break;
		case OPT_UDP:
		case OPT_TCP:
		case OPT_HTTP:
			ntransport++;
			opts.transport = opt == OPT_UDP   ? HDL_TRANSPORT_UDP
			                 : opt == OPT_TCP ? HDL_TRANSPORT_TCP
			                                  : HDL_TRANSPORT_HTTP;
			break;
		case OPT_AUTH:
			rq.authoritative = true;
			break;
		case OPT_DIGEST:
			rq.digest = true;
			break;
		case OPT_TIMEOUT: {
			char *end;
			unsigned long v;
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 3600000 || optarg[0] == '-') {
				fprintf(stderr, "idnode resolve: bad timeout '%s'\n", optarg);
				goto out;
			}
			opts.timeout_ms = (unsigned)v;
			break;
		}
		case OPT_JSON:
			json = true;
			break;
		case OPT_NO_FALLBACK:
			opts.no_tcp_fallback = true;
			break;
		case 'h':
			resolve_usage(stdout);
			ret = IDNODE_EXIT_OK;
			goto out;
		default:
			resolve_usage(stderr);
			goto out;
		}
	}
	if (ntransport > 1) {
		fprintf(stderr, "idnode resolve: choose one of --udp, --tcp, --http\n");
		goto out;
	}
	if (optind != argc - 1) {
		resolve_usage(stderr);
		goto out;
	}
	if (server && idnode_parse_server(server, host, sizeof(host), &opts.port) != 0) {
		fprintf(stderr, "idnode resolve: bad server '%s' (HOST:PORT or [V6]:PORT)\n", server);
		goto out;
	}
	opts.host = host;
	rq.handle = argv[optind];
	rq.types = (const char *const *)types;
	rq.n_types = n_types;
	rq.indexes = indexes;
	rq.n_indexes = n_indexes;

	err = hdl_client_new(&opts, &c);
	if (err != HDL_EOK) {
		fprintf(stderr, "idnode resolve: %s\n", hdl_strerror(err));
		ret = idnode_exit_for_err(err);
		goto out;
	}
	err = hdl_resolve(c, &rq, &res);
	if (err != HDL_EOK) {
		const char *why = hdl_client_last_detail();
		fprintf(stderr, "idnode resolve: %s: %s (%s)%s%s\n", rq.handle, hdl_strerror(err),
		        hdl_errname(err), why[0] ? ": " : "", why);
		ret = idnode_exit_for_err(err);
		goto out;
	}
	{
		const hdl_msg_t *m = hdl_result_msg(res);
		uint32_t rc = m->hdr.rcode;

		/* Handle.Net clients refuse expired answers; we only report them. */
		if ((int64_t)m->hdr.expiration < (int64_t)time(NULL))
			fprintf(stderr, "warning: answer expired (expiration %" PRIu32 " is in the past)\n",
			        m->hdr.expiration);
		if (json) {
			ret = print_json(rq.handle, m);
			if (ret != IDNODE_EXIT_OK)
				goto out;
		}
		if (rc != HDL_RC_SUCCESS) {
			fprintf(stderr, "error: %s (%" PRIu32 ")", hdl_rcode_name(rc), rc);
			if (m->kind == HDL_BODY_ERROR && m->u.error.message.len > 0)
				fprintf(stderr, ": %.*s", (int)m->u.error.message.len,
				        (const char *)m->u.error.message.p);
			if (m->kind == HDL_BODY_REFERRAL)
				fprintf(stderr, " (referral to '%.*s', %" PRIu32 " values)",
				        (int)m->u.referral.handle.len, (const char *)m->u.referral.handle.p,
				        m->u.referral.n_values);
			fputc('\n', stderr);
			ret = IDNODE_EXIT_NOTFOUND;
			goto out;
		}
		if (m->kind != HDL_BODY_VALUES) {
			fprintf(stderr, "idnode resolve: answer has no values body\n");
			ret = IDNODE_EXIT_DATA;
			goto out;
		}
		if (!json)
			idnode_print_values(m->u.values.values, m->u.values.n_values);
		ret = IDNODE_EXIT_OK;
	}
out:
	fflush(stdout);
	hdl_result_free(res);
	hdl_client_free(c);
	for (uint32_t i = 0; i < n_types; i++)
		free(types[i]);
	free(types);
	free(indexes);
	return ret;
}
