/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode create|delete|add|modify|remove|list|home|unhome` over the network: one
 *        authenticated administrative request (challenge-response, HS_SECKEY or HS_PUBKEY),
 *        optionally inside an IDIS login session. `home`/`unhome` here are the network form
 *        (OC 300/301); main.c sends `--db DIR` invocations to the offline form instead.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "hdl/auth.h"
#include "hdl/client.h"
#include "hdl/error.h"
#include "hdl/msg.h"
#include "hdl/values.h"
#include "proto/json.h"
#include "tools/idnode/cmds.h"

#define ADMIN_DEFAULT_PORT 2641u
#define ADMIN_TTL          86400u
#define ADMIN_PASS_ENV     "IDNODE_PASSPHRASE"
#define ADMIN_ARENA_LIMIT  (64u << 20)

/** What each command takes. */
typedef struct admin_cmd {
	const char *name;
	uint32_t opcode;
	const char *args;    /**< synopsis of the operands */
	const char *summary; /**< one line */
	const char *text;    /**< DESCRIPTION paragraph(s) */
	bool values;         /**< takes VALUE operands */
	bool overwrite;      /**< --overwrite allowed */
	bool mint;           /**< --mint allowed */
} admin_cmd_t;

static const admin_cmd_t admin_cmds[] = {
    {"create", HDL_OC_CREATE_HANDLE, "HANDLE [VALUE...]", "create a handle with its values",
     "Creates HANDLE with the VALUEs (OC 100 CREATE_HANDLE). With --overwrite an existing handle\n"
     "is replaced; with --mint the server appends a new unique suffix to HANDLE (a prefix and a\n"
     "slash) and the handle it made is printed. On success the handle is printed.\n"
     "Without an HS_ADMIN among the VALUEs, one naming the --auth identity with all\n"
     "permissions is added (index 100, or the next free one), as the Handle.Net admin tool\n"
     "proposes: the prefix's admins are not admins of the handles under it, so without it\n"
     "nobody but a server admin could modify or delete the handle. --no-admin leaves it out.\n",
     true, true, true},
    {"delete", HDL_OC_DELETE_HANDLE, "HANDLE", "delete a handle",
     "Deletes HANDLE and all of its values (OC 101 DELETE_HANDLE).\n", false, false, false},
    {"add", HDL_OC_ADD_VALUE, "HANDLE VALUE...", "add values to a handle",
     "Adds the VALUEs to HANDLE (OC 102 ADD_VALUE). With --overwrite values at the same indexes\n"
     "are replaced. Automatic indexes also skip the indexes of the handle's values that an\n"
     "unauthenticated resolution shows; values nobody may read are not seen, and a clash is\n"
     "answered with RC_VALUE_ALREADY_EXISTS (201): give the index then.\n",
     true, true, false},
    {"modify", HDL_OC_MODIFY_VALUE, "HANDLE VALUE...", "replace values of a handle by index",
     "Replaces the values of HANDLE that have the VALUEs' indexes (OC 104 MODIFY_VALUE). Every\n"
     "VALUE must give its index.\n",
     true, false, false},
    {"remove", HDL_OC_REMOVE_VALUE, "HANDLE INDEX[,INDEX...]...", "remove values by index",
     "Removes the values of HANDLE at the INDEXes (OC 103 REMOVE_VALUE).\n", false, false, false},
    {"list", HDL_OC_LIST_HANDLES, "PREFIX", "list the handles under a prefix",
     "Lists the handles under PREFIX (\"88.100\" or \"0.NA/88.100\"), one per line (OC 105\n"
     "LIST_HANDLES; the server streams the answer in several messages, all are read).\n",
     false, false, false},
    {"home", HDL_OC_HOME_NA, "PREFIX", "home a prefix on the server (network form)",
     "Asks the server to serve PREFIX (\"88.100\" or \"0.NA/88.100\"): OC 300 HOME_NA. With\n"
     "--db DIR the offline form of this command edits a node database instead.\n",
     false, false, false},
    {"unhome", HDL_OC_UNHOME_NA, "PREFIX", "stop serving a prefix (network form)",
     "Asks the server to stop serving PREFIX: OC 301 UNHOME_NA. With --db DIR the offline form\n"
     "of this command edits a node database instead.\n",
     false, false, false},
};

static void admin_usage(FILE *f, const admin_cmd_t *cmd, bool full)
{
	fprintf(f,
	        "usage: idnode %s [-s HOST:PORT] --auth INDEX:HANDLE\n"
	        "              (--seckey-file FILE | --privkey FILE [--passphrase-file FILE])\n"
	        "              [--session | --same-conn] [--timeout MS]%s%s%s %s\n",
	        cmd->name, cmd->overwrite ? " [--overwrite]" : "", cmd->mint ? " [--mint]" : "",
	        cmd->opcode == HDL_OC_CREATE_HANDLE ? " [--no-admin]" : "", cmd->args);
	if (!full) {
		fprintf(f, "Run `idnode %s --help` for the whole description.\n", cmd->name);
		return;
	}
	fprintf(f, "\nNAME\n  idnode %s - %s\n\nDESCRIPTION\n", cmd->name, cmd->summary);
	fputs(cmd->text, f);
	fputs(
	    "\nThe request goes over TCP. The server challenges it (RC 402 with a nonce and the\n"
	    "digest of the request); idnode checks that the digest is of the request it sent,\n"
	    "signs nonce || digest with the credential and answers with OC 200 on a new\n"
	    "connection, as the CNRI client does (--same-conn: on the same connection; --session:\n"
	    "log in first with the IDIS OC 2001 and send the request on that connection).\n",
	    f);
	fputs(
	    "\nOPTIONS\n"
	    "  -s, --server HOST:PORT   server (default 127.0.0.1:2641; IPv6 as [::1]:2641)\n"
	    "  --auth INDEX:HANDLE      the identity, e.g. 300:0.NA/88.100: the handle and the\n"
	    "                           index of its HS_SECKEY or HS_PUBKEY value\n"
	    "  --seckey-file FILE       HS_SECKEY: the secret is the file's bytes (one trailing\n"
	    "                           newline removed); answers are PBKDF2-HMAC-SHA1 at "
	    "protocol\n"
	    "                           2.7+ as hdllib sends them\n"
	    "  --privkey FILE           HS_PUBKEY: an RSA or DSA private key, PEM (PKCS#8 or\n"
	    "                           traditional, maybe encrypted) or the CNRI key file format\n"
	    "                           (admpriv.bin, maybe encrypted)\n"
	    "  --passphrase-file FILE   the key's passphrase: the first line of FILE. Without it\n"
	    "                           the environment variable " ADMIN_PASS_ENV " is used.\n"
	    "                           A passphrase is never taken from the command line.\n"
	    "  --session                IDIS login (OC 2001) on one connection, then the request\n"
	    "  --same-conn              answer the challenge on the same connection\n"
	    "  --timeout MS             whole-exchange timeout (default 5000)\n",
	    f);
	if (cmd->overwrite)
		fputs("  --overwrite              replace what exists (OVRW flag)\n", f);
	if (cmd->mint)
		fputs("  --mint                   let the server mint the suffix (MINT flag)\n", f);
	if (cmd->opcode == HDL_OC_CREATE_HANDLE)
		fputs("  --no-admin               do not add an HS_ADMIN for the --auth identity\n",
		      f);
	fputs("  -h, --help               this text\n", f);
	if (cmd->values)
		fputs("\nVALUES\n"
		      "  [INDEX:]TYPE=DATA        a value; DATA is UTF-8 text, or @FILE for the "
		      "bytes of\n"
		      "                           FILE. Special types: HS_ADMIN=INDEX:HANDLE (an "
		      "admin\n"
		      "                           reference with all 12 permissions), HS_VLIST=\n"
		      "                           INDEX:HANDLE[,INDEX:HANDLE...]. HS_SECKEY values "
		      "get\n"
		      "                           permissions 1100 (admin read/write only), others "
		      "1110.\n"
		      "                           TTL 86400 s.\n"
		      "  JSON                     an argument starting with { or [ is Handle.Net "
		      "REST JSON:\n"
		      "                           one value object, an array of them, or "
		      "{\"values\":[...]}\n"
		      "                           (the /api/handles form, e.g. "
		      "{\"index\":1,\"type\":\"URL\",\n"
		      "                           "
		      "\"data\":{\"format\":\"string\",\"value\":\"http://x/\"}}).\n"
		      "  Without INDEX (or with index 0) an index is chosen: the smallest from 1 "
		      "that no\n"
		      "  other VALUE of the command uses" /* add: see DESCRIPTION */ ".\n",
		      f);
	fputs(
	    "\nEXIT STATUS\n"
	    "  0 success, 1 the server answered with an error (printed with its response code),\n"
	    "  2 usage, 3 network or I/O failure (also an unreadable key file), 4 malformed data\n"
	    "  (a key file that does not decode, a wrong passphrase, a garbled answer, a "
	    "challenge\n"
	    "  for another request)\n",
	    f);
	fprintf(
	    f,
	    "\nEXAMPLES\n"
	    "  idnode %s -s 127.0.0.1:2641 --auth 300:0.NA/88.100 --seckey-file secret.txt %s\n",
	    cmd->name,
	    cmd->values ? "88.100.1/pump-1 'URL=https://example.org/p1' '2:EMAIL=ops@example.org'"
	    : cmd->opcode == HDL_OC_REMOVE_VALUE  ? "88.100.1/pump-1 2,3"
	    : cmd->opcode == HDL_OC_DELETE_HANDLE ? "88.100.1/pump-1"
	                                          : "88.100");
}

/** Parsed options and loaded credentials. */
typedef struct admin_cli {
	const admin_cmd_t *cmd;
	char host[256];
	uint16_t port;
	unsigned timeout_ms;
	bool overwrite, mint, session, same_conn, no_admin;
	const char *auth, *seckey_file, *privkey_file, *pass_file;
	char *id_handle; /**< from --auth */
	uint8_t *secret;
	size_t secret_len;
	hdl_auth_t cred;
	hdl_arena_t arena; /**< values and their data */
} admin_cli_t;

static void cli_free(admin_cli_t *o)
{
	hdl_secret_free(o->secret, o->secret_len);
	EVP_PKEY_free(o->cred.key);
	free(o->id_handle);
	hdl_arena_free(&o->arena);
}

/** \brief --auth INDEX:HANDLE. \retval 0 ok, -1 bad */
static int parse_auth(admin_cli_t *o)
{
	if (hdl_identity_parse(o->auth, &o->cred.id_index, &o->id_handle) != HDL_EOK)
		return -1;
	o->cred.id_handle = hdl_slice_str(o->id_handle);
	o->cred.seckey_alg = HDL_MAC_AUTO;
	return 0;
}

/** \brief Load the credential named by the options. \return exit status (0 ok) */
static int load_cred(admin_cli_t *o)
{
	int err;

	if (o->seckey_file) {
		err = hdl_secret_load(o->seckey_file, &o->secret, &o->secret_len);
		if (err != HDL_EOK) {
			fprintf(stderr, "idnode %s: %s: %s\n", o->cmd->name, o->seckey_file,
			        hdl_strerror(err));
			return IDNODE_EXIT_IO;
		}
		o->cred.secret.p = o->secret;
		o->cred.secret.len = (uint32_t)o->secret_len;
		return IDNODE_EXIT_OK;
	}
	err = hdl_privkey_load(o->privkey_file, o->pass_file, ADMIN_PASS_ENV, &o->cred.key);
	if (err != HDL_EOK) {
		fprintf(stderr, "idnode %s: %s: %s%s\n", o->cmd->name, o->privkey_file,
		        hdl_strerror(err),
		        err == HDL_EAUTH ? " (passphrase missing or wrong: --passphrase-file or "
		                           "$" ADMIN_PASS_ENV ")"
		                         : "");
		return err == HDL_ENOENT || err == HDL_EIO ? IDNODE_EXIT_IO : IDNODE_EXIT_DATA;
	}
	return IDNODE_EXIT_OK;
}

/* ---- values -------------------------------------------------------------------------------- */

/** \brief Bytes of \p path into the arena. \retval HDL_EOK, HDL_EIO, HDL_ELIMIT, HDL_ENOMEM */
static int file_data(hdl_arena_t *a, const char *path, hdl_slice_t *out)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t n;

	if (!f)
		return HDL_EIO;
	buf = malloc(HDL_MAX_ARRAY_LEN + 1u);
	n = buf ? fread(buf, 1, HDL_MAX_ARRAY_LEN + 1u, f) : 0;
	fclose(f);
	if (!buf)
		return HDL_ENOMEM;
	if (n > HDL_MAX_ARRAY_LEN) {
		free(buf);
		return HDL_ELIMIT;
	}
	*out = hdl_arena_dup(a, buf, n);
	free(buf);
	return n == 0 || out->p ? HDL_EOK : HDL_ENOMEM;
}

/** \brief "INDEX:HANDLE" into \p r (handle copied into the arena). \retval 0 ok, -1 bad */
static int parse_ref(hdl_arena_t *a, const char *s, size_t n, hdl_ref_t *r)
{
	const char *colon = memchr(s, ':', n);
	char num[16];
	uint64_t v;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(num) || colon + 1 == s + n)
		return -1;
	memcpy(num, s, (size_t)(colon - s));
	num[colon - s] = '\0';
	if (!idnode_parse_u64(num, false, &v) || v > UINT32_MAX)
		return -1;
	r->index = (uint32_t)v;
	r->handle = hdl_arena_dup(a, colon + 1, (size_t)(s + n - colon - 1));
	if (!r->handle.p || hdl_name_check(r->handle.p, r->handle.len) != HDL_EOK)
		return -1;
	return 0;
}

/** \brief Encode the data of a special type from its text form. \retval 0 ok, -1 bad */
static int special_data(hdl_arena_t *a, hdl_vtype_t vt, const char *text, hdl_slice_t *out)
{
	uint8_t buf[HDL_MAX_HANDLE_LEN * 2u + 64u];
	size_t n = 0;

	if (vt == HDL_VT_ADMIN) {
		hdl_admin_t ad = {.perms = HDL_ADM_ALL};
		hdl_ref_t r;
		if (parse_ref(a, text, strlen(text), &r) != 0)
			return -1;
		ad.handle = r.handle;
		ad.index = r.index;
		if (hdl_admin_encode(&ad, buf, sizeof(buf), &n) != HDL_EOK)
			return -1;
		*out = hdl_arena_dup(a, buf, n);
		return out->p ? 0 : -1;
	}
	/* HS_VLIST: INDEX:HANDLE[,INDEX:HANDLE...] */
	{
		hdl_ref_t *refs;
		uint32_t nr = 1, k = 0;
		size_t cap;
		uint8_t *enc;
		const char *p = text;

		for (const char *q = text; *q; q++)
			nr += *q == ',';
		refs = hdl_arena_alloc(a, nr * sizeof(*refs));
		if (!refs)
			return -1;
		for (;;) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			if (parse_ref(a, p, len, &refs[k++]) != 0)
				return -1;
			if (!comma)
				break;
			p = comma + 1;
		}
		cap = 4u + (size_t)nr * (8u + HDL_MAX_HANDLE_LEN);
		enc = hdl_arena_alloc(a, cap);
		if (!enc || hdl_vlist_encode(refs, nr, enc, cap, &n) != HDL_EOK)
			return -1;
		out->p = enc;
		out->len = (uint32_t)n;
		return 0;
	}
}

/**
 * \brief One `[INDEX:]TYPE=DATA` operand.
 * \return exit status (0 ok); a message is printed
 */
static int parse_short(admin_cli_t *o, const char *arg, hdl_value_t *v)
{
	const char *eq = strchr(arg, '='), *tstart = arg, *colon;
	hdl_arena_t *a = &o->arena;
	hdl_vtype_t vt;

	memset(v, 0, sizeof(*v));
	v->ttl = ADMIN_TTL;
	v->perms = HDL_PERM_DEFAULT;
	if (!eq || eq == arg)
		goto bad;
	colon = memchr(arg, ':', (size_t)(eq - arg));
	if (colon) {
		char num[16];
		uint64_t idx;
		if ((size_t)(colon - arg) >= sizeof(num))
			goto bad;
		memcpy(num, arg, (size_t)(colon - arg));
		num[colon - arg] = '\0';
		if (!idnode_parse_u64(num, false, &idx) || idx > UINT32_MAX)
			goto bad;
		v->index = (uint32_t)idx;
		tstart = colon + 1;
	}
	if (tstart == eq || (size_t)(eq - tstart) > HDL_MAX_TYPE_LEN)
		goto bad;
	v->type = hdl_arena_dup(a, tstart, (size_t)(eq - tstart));
	if (!v->type.p || !hdl_utf8_valid(v->type.p, v->type.len))
		goto bad;
	vt = hdl_vtype_of(v->type);
	if (vt == HDL_VT_SECKEY)
		v->perms = HDL_PERM_ADMIN_READ | HDL_PERM_ADMIN_WRITE;
	if (eq[1] == '@') {
		int err = file_data(a, eq + 2, &v->data);
		if (err != HDL_EOK) {
			fprintf(stderr, "idnode %s: %s: %s\n", o->cmd->name, eq + 2,
			        hdl_strerror(err));
			return IDNODE_EXIT_IO;
		}
	} else if (vt == HDL_VT_ADMIN || vt == HDL_VT_VLIST) {
		if (special_data(a, vt, eq + 1, &v->data) != 0) {
			fprintf(stderr, "idnode %s: bad %.*s data '%s' (INDEX:HANDLE%s)\n",
			        o->cmd->name, (int)v->type.len, (const char *)v->type.p, eq + 1,
			        vt == HDL_VT_VLIST ? "[,INDEX:HANDLE...]" : "");
			return IDNODE_EXIT_USAGE;
		}
	} else {
		v->data = hdl_arena_dup(a, eq + 1, strlen(eq + 1));
		if (!v->data.p && eq[1])
			goto bad;
	}
	return IDNODE_EXIT_OK;
bad:
	fprintf(stderr, "idnode %s: bad value '%s' (expected [INDEX:]TYPE=DATA or JSON)\n",
	        o->cmd->name, arg);
	return IDNODE_EXIT_USAGE;
}

static bool index_used(const hdl_value_t *v, uint32_t n, const uint32_t *extra, uint32_t n_extra,
                       uint32_t idx)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i].index == idx)
			return true;
	for (uint32_t i = 0; i < n_extra; i++)
		if (extra[i] == idx)
			return true;
	return false;
}

/**
 * \brief Parse the VALUE operands, then give index-less ones the smallest free index from 1
 *        (skipping \p used too).
 * \return exit status (0 ok)
 */
static int parse_values(admin_cli_t *o, char **args, int nargs, const uint32_t *used,
                        uint32_t n_used, hdl_value_t **out, uint32_t *nout)
{
	hdl_value_t *vals = NULL;
	uint32_t n = 0, cap = 0;
	int ret;

	for (int i = 0; i < nargs; i++) {
		hdl_value_t *jv = NULL;
		uint32_t jn = 1;
		if (args[i][0] == '{' || args[i][0] == '[') {
			char err[160];
			json_error_t je;
			json_t *j = json_loads(args[i], 0, &je);
			if (!j) {
				fprintf(stderr, "idnode %s: bad JSON value: %s\n", o->cmd->name,
				        je.text);
				return IDNODE_EXIT_USAGE;
			}
			ret = hdl_json_to_values(j, &o->arena, &jv, &jn, err, sizeof(err));
			json_decref(j);
			if (ret != HDL_EOK) {
				fprintf(stderr, "idnode %s: bad JSON value: %s\n", o->cmd->name,
				        err[0] ? err : hdl_strerror(ret));
				return IDNODE_EXIT_USAGE;
			}
		}
		if (n + jn > HDL_MAX_VALUES) {
			fprintf(stderr, "idnode %s: more than %u values\n", o->cmd->name,
			        HDL_MAX_VALUES);
			return IDNODE_EXIT_USAGE;
		}
		if (n + jn > cap) {
			hdl_value_t *bigger;
			uint32_t ncap = cap ? cap * 2 : 16;
			while (ncap < n + jn)
				ncap *= 2;
			bigger = hdl_arena_alloc(&o->arena, ncap * sizeof(*vals));
			if (!bigger)
				return IDNODE_EXIT_IO;
			if (n)
				memcpy(bigger, vals, n * sizeof(*vals));
			vals = bigger;
			cap = ncap;
		}
		if (jv) {
			memcpy(vals + n, jv, jn * sizeof(*jv));
			n += jn;
		} else if ((ret = parse_short(o, args[i], &vals[n++])) != IDNODE_EXIT_OK) {
			return ret;
		}
	}
	/* explicit indexes must be distinct */
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = i + 1; vals[i].index && k < n; k++)
			if (vals[k].index == vals[i].index) {
				fprintf(stderr, "idnode %s: index %" PRIu32 " given twice\n",
				        o->cmd->name, vals[i].index);
				return IDNODE_EXIT_USAGE;
			}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = 1;
		if (vals[i].index)
			continue;
		if (o->cmd->opcode == HDL_OC_MODIFY_VALUE) {
			fprintf(stderr,
			        "idnode modify: every value needs its index (INDEX:TYPE=DATA)\n");
			return IDNODE_EXIT_USAGE;
		}
		while (index_used(vals, n, used, n_used, idx))
			idx++;
		vals[i].index = idx;
	}
	*out = vals;
	*nout = n;
	return IDNODE_EXIT_OK;
}

/**
 * \brief The indexes an unauthenticated, authoritative resolution of \p handle shows (for
 *        `add`). Best effort: nothing on any failure.
 */
static void known_indexes(hdl_client_t *c, const char *handle, uint32_t **idx, uint32_t *n)
{
	hdl_resolve_req_t rq = {.handle = handle, .authoritative = true};
	hdl_result_t *r = NULL;
	const hdl_value_t *v;
	uint32_t nv = 0;

	*idx = NULL;
	*n = 0;
	if (hdl_resolve(c, &rq, &r) != HDL_EOK)
		return;
	v = hdl_result_values(r, &nv);
	if (nv && (*idx = calloc(nv, sizeof(**idx))) != NULL) {
		for (uint32_t i = 0; i < nv; i++)
			(*idx)[i] = v[i].index;
		*n = nv;
	}
	hdl_result_free(r);
}

/* ---- running ------------------------------------------------------------------------------- */

/** \brief "88.100" -> "0.NA/88.100"; a name already under 0.NA/ is kept. NULL on OOM. */
static char *prefix_handle(const char *p)
{
	size_t n = strlen(p);
	char *h;
	if (n >= 5 && strncasecmp(p, "0.NA/", 5) == 0)
		return strdup(p);
	h = malloc(n + 6);
	if (h)
		snprintf(h, n + 6, "0.NA/%s", p);
	return h;
}

static int print_part(const hdl_msg_t *m, void *ctx)
{
	(void)ctx;
	if (m->kind != HDL_BODY_LIST)
		return HDL_EPROTO;
	for (uint32_t i = 0; i < m->u.list.n_handles; i++)
		printf("%.*s\n", (int)m->u.list.handles[i].len,
		       (const char *)m->u.list.handles[i].p);
	return 0;
}

/** \brief Report the final answer \p r. \return exit status */
static int report(const admin_cli_t *o, const char *handle, const hdl_result_t *r)
{
	const hdl_msg_t *m = hdl_result_msg(r);
	uint32_t rc = m->hdr.rcode;

	if (rc != HDL_RC_SUCCESS) {
		fprintf(stderr, "idnode %s: %s: error: %s (%" PRIu32 ")", o->cmd->name, handle,
		        hdl_rcode_name(rc), rc);
		if (m->kind == HDL_BODY_ERROR && m->u.error.message.len > 0)
			fprintf(stderr, ": %.*s", (int)m->u.error.message.len,
			        (const char *)m->u.error.message.p);
		fputc('\n', stderr);
		return IDNODE_EXIT_NOTFOUND;
	}
	if (o->cmd->opcode == HDL_OC_LIST_HANDLES) {
		for (; r; r = hdl_result_next(r))
			if (print_part(hdl_result_msg(r), NULL) != 0) {
				fprintf(stderr, "idnode list: an answer without a handle list\n");
				return IDNODE_EXIT_DATA;
			}
	} else if (o->cmd->opcode == HDL_OC_CREATE_HANDLE) {
		if (m->kind == HDL_BODY_HANDLE)
			printf("%.*s\n", (int)m->u.handle.len, (const char *)m->u.handle.p);
		else
			printf("%s\n", handle);
	}
	return IDNODE_EXIT_OK;
}

/**
 * \brief create: add an HS_ADMIN value naming the --auth identity (all permissions) when none of
 *        the values is one, at index 100 or the next free index.
 * \return exit status (0 ok)
 */
static int add_default_admin(admin_cli_t *o, hdl_value_t **vals, uint32_t *n)
{
	static const hdl_slice_t admin_types = {(const uint8_t *)"HS_ADMIN.", 9};
	hdl_admin_t ad = {
	    .perms = HDL_ADM_ALL, .handle = o->cred.id_handle, .index = o->cred.id_index};
	uint8_t buf[HDL_MAX_HANDLE_LEN + 64u];
	size_t len = 0;
	uint32_t idx = 100;
	hdl_value_t *bigger;

	for (uint32_t i = 0; i < *n; i++)
		if (hdl_type_matches((*vals)[i].type, admin_types))
			return IDNODE_EXIT_OK;
	if (*n >= HDL_MAX_VALUES) {
		fprintf(stderr, "idnode create: more than %u values with the HS_ADMIN\n",
		        HDL_MAX_VALUES);
		return IDNODE_EXIT_USAGE;
	}
	while (index_used(*vals, *n, NULL, 0, idx))
		idx++;
	bigger = hdl_arena_alloc(&o->arena, (*n + 1u) * sizeof(**vals));
	if (!bigger || hdl_admin_encode(&ad, buf, sizeof(buf), &len) != HDL_EOK)
		return IDNODE_EXIT_IO;
	if (*n)
		memcpy(bigger, *vals, *n * sizeof(**vals));
	memset(&bigger[*n], 0, sizeof(bigger[*n]));
	bigger[*n].index = idx;
	bigger[*n].type = hdl_slice_str("HS_ADMIN");
	bigger[*n].data = hdl_arena_dup(&o->arena, buf, len);
	bigger[*n].ttl = ADMIN_TTL;
	bigger[*n].perms = HDL_PERM_DEFAULT;
	if (!bigger[*n].data.p)
		return IDNODE_EXIT_IO;
	*vals = bigger;
	(*n)++;
	return IDNODE_EXIT_OK;
}

/** \brief Build the request for the operands in \p args. \return exit status */
static int build_request(admin_cli_t *o, hdl_client_t *c, char **args, int nargs, hdl_msg_t *m,
                         char **handle)
{
	uint32_t op = o->cmd->opcode;
	int ret = IDNODE_EXIT_OK;

	hdl_admin_request_init(m, op);
	if (o->overwrite)
		m->hdr.opflags |= HDL_OF_OVRW;
	if (o->mint)
		m->hdr.opflags |= HDL_OF_MINT;
	if (op == HDL_OC_LIST_HANDLES || op == HDL_OC_HOME_NA || op == HDL_OC_UNHOME_NA)
		*handle = prefix_handle(args[0]);
	else
		*handle = strdup(args[0]);
	if (!*handle)
		return IDNODE_EXIT_IO;
	if (hdl_name_check((const uint8_t *)*handle, strlen(*handle)) != HDL_EOK) {
		fprintf(stderr, "idnode %s: invalid handle '%s'\n", o->cmd->name, args[0]);
		return IDNODE_EXIT_USAGE;
	}
	if (o->cmd->values) {
		uint32_t *used = NULL, n_used = 0;
		if (op == HDL_OC_ADD_VALUE)
			known_indexes(c, *handle, &used, &n_used);
		m->kind = HDL_BODY_VALUES;
		m->u.values.handle = hdl_slice_str(*handle);
		ret = parse_values(o, args + 1, nargs - 1, used, n_used, &m->u.values.values,
		                   &m->u.values.n_values);
		free(used);
		if (ret == IDNODE_EXIT_OK && op == HDL_OC_CREATE_HANDLE && !o->no_admin)
			ret = add_default_admin(o, &m->u.values.values, &m->u.values.n_values);
	} else if (op == HDL_OC_REMOVE_VALUE) {
		uint32_t *idx = NULL, n = 0;
		for (int i = 1; i < nargs; i++)
			if (idnode_parse_indexes(args[i], HDL_MAX_VALUES, &idx, &n) != 0) {
				fprintf(stderr, "idnode remove: bad index list '%s'\n", args[i]);
				free(idx);
				return IDNODE_EXIT_USAGE;
			}
		m->kind = HDL_BODY_INDEXES;
		m->u.indexes.handle = hdl_slice_str(*handle);
		m->u.indexes.indexes = hdl_arena_alloc(&o->arena, n * sizeof(*idx) + 1);
		if (!m->u.indexes.indexes) {
			free(idx);
			return IDNODE_EXIT_IO;
		}
		if (n)
			memcpy(m->u.indexes.indexes, idx, n * sizeof(*idx));
		m->u.indexes.n_indexes = n;
		free(idx);
	} else {
		m->kind = HDL_BODY_HANDLE;
		m->u.handle = hdl_slice_str(*handle);
	}
	return ret;
}

static int run(admin_cli_t *o, char **args, int nargs)
{
	hdl_client_opts_t co = {.host = o->host,
	                        .port = o->port,
	                        .transport = HDL_TRANSPORT_TCP,
	                        .timeout_ms = o->timeout_ms};
	hdl_admin_opts_t ao = {.auth = &o->cred,
	                       .answer_via =
	                           o->same_conn ? HDL_ANSWER_SAME_CONN : HDL_ANSWER_NEW_CONN};
	hdl_client_t *c = NULL;
	hdl_session_t *s = NULL;
	hdl_result_t *r = NULL;
	char *handle = NULL;
	hdl_msg_t m;
	int ret, err;

	if (o->cmd->opcode == HDL_OC_LIST_HANDLES)
		ao.on_part = print_part; /* print parts as they come */
	err = hdl_client_new(&co, &c);
	if (err != HDL_EOK) {
		fprintf(stderr, "idnode %s: %s\n", o->cmd->name, hdl_strerror(err));
		ret = idnode_exit_for_err(err);
		goto out;
	}
	ret = build_request(o, c, args, nargs, &m, &handle);
	if (ret != IDNODE_EXIT_OK)
		goto out;
	if (o->session) {
		err = hdl_session_open(c, &o->cred, &s, &r);
		if (err == HDL_ERCODE) {
			fprintf(stderr, "idnode %s: login refused\n", o->cmd->name);
			ret = report(o, o->id_handle, r);
			goto out;
		}
		hdl_result_free(r);
		r = NULL;
		if (err == HDL_EOK)
			err = hdl_session_request(s, &m, &ao, &r);
	} else {
		err = hdl_client_admin(c, &m, &ao, &r);
	}
	if (err != HDL_EOK) {
		fprintf(stderr, "idnode %s: %s: %s (%s)%s\n", o->cmd->name, handle,
		        hdl_strerror(err), hdl_errname(err),
		        err == HDL_EDIGEST ? ": the challenge was not for our request" : "");
		ret = err == HDL_EAUTH ? IDNODE_EXIT_DATA : idnode_exit_for_err(err);
		goto out;
	}
	ret = report(o, handle, r);
out:
	fflush(stdout);
	hdl_result_free(r);
	hdl_session_close(s);
	hdl_client_free(c);
	free(handle);
	return ret;
}

/** \brief Parse the options of \p cmd and run it. */
static int admin_main(const admin_cmd_t *cmd, int argc, char **argv)
{
	enum {
		O_AUTH = 256,
		O_SECKEY,
		O_PRIVKEY,
		O_PASSFILE,
		O_OVERWRITE,
		O_MINT,
		O_SESSION,
		O_SAME,
		O_TIMEOUT,
		O_NOADMIN,
	};
	static const struct option longopts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"auth", required_argument, NULL, O_AUTH},
	    {"seckey-file", required_argument, NULL, O_SECKEY},
	    {"privkey", required_argument, NULL, O_PRIVKEY},
	    {"passphrase-file", required_argument, NULL, O_PASSFILE},
	    {"overwrite", no_argument, NULL, O_OVERWRITE},
	    {"mint", no_argument, NULL, O_MINT},
	    {"session", no_argument, NULL, O_SESSION},
	    {"same-conn", no_argument, NULL, O_SAME},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"no-admin", no_argument, NULL, O_NOADMIN},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	admin_cli_t o;
	const char *server = NULL;
	int opt, ret = IDNODE_EXIT_USAGE;
	uint64_t v;
	int need;

	memset(&o, 0, sizeof(o));
	o.cmd = cmd;
	o.port = ADMIN_DEFAULT_PORT;
	snprintf(o.host, sizeof(o.host), "127.0.0.1");
	hdl_arena_init(&o.arena, NULL, 0, ADMIN_ARENA_LIMIT);
	optind = 1;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "s:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 's': server = optarg; break;
		case O_AUTH: o.auth = optarg; break;
		case O_SECKEY: o.seckey_file = optarg; break;
		case O_PRIVKEY: o.privkey_file = optarg; break;
		case O_PASSFILE: o.pass_file = optarg; break;
		case O_OVERWRITE: o.overwrite = true; break;
		case O_MINT: o.mint = true; break;
		case O_SESSION: o.session = true; break;
		case O_SAME: o.same_conn = true; break;
		case O_NOADMIN: o.no_admin = true; break;
		case O_TIMEOUT:
			if (!idnode_parse_u64(optarg, false, &v) || v == 0 || v > 3600000) {
				fprintf(stderr, "idnode %s: bad timeout '%s'\n", cmd->name, optarg);
				goto out;
			}
			o.timeout_ms = (unsigned)v;
			break;
		case 'h':
			admin_usage(stdout, cmd, true);
			ret = IDNODE_EXIT_OK;
			goto out;
		default: admin_usage(stderr, cmd, false); goto out;
		}
	}
	bool creates = cmd->opcode == HDL_OC_CREATE_HANDLE;
	if ((o.overwrite && !cmd->overwrite) || (o.mint && !cmd->mint) ||
	    (o.no_admin && !creates)) {
		fprintf(stderr, "idnode %s: --%s does not apply to %s\n", cmd->name,
		        o.mint && !cmd->mint     ? "mint"
		        : o.no_admin && !creates ? "no-admin"
		                                 : "overwrite",
		        cmd->name);
		goto out;
	}
	if (o.session && o.same_conn) {
		fprintf(stderr, "idnode %s: --session already answers on its connection\n",
		        cmd->name);
		goto out;
	}
	if (!o.auth || parse_auth(&o) != 0) {
		fprintf(stderr, "idnode %s: %s --auth INDEX:HANDLE (e.g. 300:0.NA/88.100)\n",
		        cmd->name, o.auth ? "bad" : "needs");
		goto out;
	}
	if (!o.seckey_file == !o.privkey_file) {
		fprintf(stderr, "idnode %s: give one of --seckey-file FILE or --privkey FILE\n",
		        cmd->name);
		goto out;
	}
	if (o.pass_file && !o.privkey_file) {
		fprintf(stderr, "idnode %s: --passphrase-file goes with --privkey\n", cmd->name);
		goto out;
	}
	need = cmd->values && cmd->opcode != HDL_OC_CREATE_HANDLE ? 2
	       : cmd->opcode == HDL_OC_REMOVE_VALUE               ? 2
	                                                          : 1;
	if (argc - optind < need ||
	    (!cmd->values && cmd->opcode != HDL_OC_REMOVE_VALUE && argc - optind > need)) {
		admin_usage(stderr, cmd, false);
		goto out;
	}
	if (server && idnode_parse_server(server, o.host, sizeof(o.host), &o.port) != 0) {
		fprintf(stderr, "idnode %s: bad server '%s' (HOST:PORT or [V6]:PORT)\n", cmd->name,
		        server);
		goto out;
	}
	ret = load_cred(&o);
	if (ret == IDNODE_EXIT_OK)
		ret = run(&o, argv + optind, argc - optind);
out:
	cli_free(&o);
	return ret;
}

static const admin_cmd_t *admin_find(uint32_t opcode)
{
	for (size_t i = 0; i < sizeof(admin_cmds) / sizeof(admin_cmds[0]); i++)
		if (admin_cmds[i].opcode == opcode)
			return &admin_cmds[i];
	return NULL;
}

int cmd_create(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_CREATE_HANDLE), argc, argv);
}

int cmd_delete(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_DELETE_HANDLE), argc, argv);
}

int cmd_add(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_ADD_VALUE), argc, argv);
}

int cmd_modify(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_MODIFY_VALUE), argc, argv);
}

int cmd_remove(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_REMOVE_VALUE), argc, argv);
}

int cmd_list(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_LIST_HANDLES), argc, argv);
}

int cmd_home_net(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_HOME_NA), argc, argv);
}

int cmd_unhome_net(int argc, char **argv)
{
	return admin_main(admin_find(HDL_OC_UNHOME_NA), argc, argv);
}
