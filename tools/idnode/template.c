/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode template` (metadata templates of a node database, offline: load, list, show,
 *        delete; each change with an audit entry, transport local) and `idnode passwd` (the
 *        password hash of an `snms_user` line). See docs/snms-api.md.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/server/snms_auth.h"
#include "node/store/audit.h"
#include "node/store/store.h"
#include "node/store/template.h"
#include "tools/idnode/cmds.h"

static void template_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: idnode template load --db DIR FILE...\n"
	    "       idnode template list --db DIR PREFIX\n"
	    "       idnode template show --db DIR PREFIX VERSION\n"
	    "       idnode template delete --db DIR PREFIX VERSION\n"
	    "  Metadata templates of the store at DIR (docs/snms-api.md, \"Templates\").\n"
	    "  load: each FILE holds one template (the SNMS JSON shape: prefix, version, items\n"
	    "  [{name, idType, idIndex >= 2000, required, state, metadata{type, minLength,\n"
	    "  maxLength, pattern, minimum, maximum}}], \"default\": true to make it the prefix's\n"
	    "  default); a new one is created, an existing one updated (items given by idIndex\n"
	    "  change, new ones are added, none is removed). Every change files an audit entry.\n"
	    "  list: the prefix's versions and its default. show: one template as JSON.\n");
}

/** The audit entry of a local template change. */
static int audit_change(store_batch_t *b, uint16_t op, hdl_slice_t prefix, hdl_slice_t version,
                        const tpl_change_t *chg, const char *source)
{
	char handle[8 + TPL_PREFIX_MAX], msg[AUDIT_MESSAGE_MAX];
	snprintf(handle, sizeof(handle), "0.NA/%.*s", (int)prefix.len, (const char *)prefix.p);
	snprintf(msg, sizeof(msg), "idnode template %s (uid %u): template %.*s", source,
	         (unsigned)getuid(), (int)version.len, (const char *)version.p);
	audit_rec_t ar;
	memset(&ar, 0, sizeof(ar));
	ar.time = (uint32_t)time(NULL);
	ar.op = op;
	ar.transport = AUDIT_T_LOCAL;
	ar.rcode = HDL_RC_SUCCESS;
	ar.handle = hdl_slice_str(handle);
	ar.count = 1;
	ar.message = hdl_slice_str(msg);
	if (chg->had_before) {
		audit_digest(chg->before, ar.before);
		ar.has_before = true;
	}
	if (chg->after) {
		audit_digest((hdl_slice_t){chg->after, (uint32_t)chg->after_len}, ar.after);
		ar.has_after = true;
	}
	return audit_write(b, &ar);
}

/** Read a whole (small) file. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1u << 16, n = 0;
	char *buf = malloc(cap + 1);
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
		if (n == cap) {
			if (cap >= (16u << 20)) { /* a template is far smaller */
				free(buf);
				buf = NULL;
				break;
			}
			char *nb = realloc(buf, cap * 2 + 1);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

/** Load one template file in \p b. \return an exit status */
static int load_one(store_batch_t *b, const char *path)
{
	size_t len = 0;
	char *text = slurp(path, &len);
	if (text == NULL) {
		fprintf(stderr, "idnode template: %s: %s\n", path,
		        errno ? strerror(errno) : "cannot read");
		return IDNODE_EXIT_IO;
	}
	json_error_t je;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(text);
	char err[TPL_MSG_MAX];
	tpl_t *t = NULL;
	int ret = j ? tpl_parse(j, NULL, TPL_PARSE_CREATE, &t, err, sizeof(err)) : HDL_EJSON;
	if (j == NULL)
		snprintf(err, sizeof(err), "not JSON: %.100s (line %d)", je.text, je.line);
	json_decref(j);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode template: %s: %s\n", path, err);
		return ret == HDL_ENOMEM ? IDNODE_EXIT_IO : IDNODE_EXIT_DATA;
	}
	tpl_change_t chg;
	ret = tpl_store_put(b, t, TPL_PUT_CREATE | TPL_PUT_UPDATE, NULL, &chg, err, sizeof(err));
	int rc = IDNODE_EXIT_OK;
	if (ret == TPL_REFUSED) {
		fprintf(stderr, "idnode template: %s: %s\n", path, err);
		rc = IDNODE_EXIT_DATA;
	} else if (ret == HDL_EOK) {
		ret = audit_change(b, AUDIT_OP_TEMPLATE_PUT, hdl_slice_str(t->prefix),
		                   hdl_slice_str(t->version), &chg, path);
		if (ret == HDL_EOK)
			printf("%s %s:%s (%s)\n", chg.had_before ? "updated" : "created", t->prefix,
			       t->version, path);
	}
	if (ret != HDL_EOK && ret != TPL_REFUSED) {
		fprintf(stderr, "idnode template: %s: %s\n", path, hdl_strerror(ret));
		rc = IDNODE_EXIT_IO;
	}
	tpl_change_clear(&chg);
	tpl_free(t);
	return rc;
}

static int show(store_t *s, const char *verb, int argc, char **argv)
{
	store_reader_t *r = NULL;
	int ret = store_reader_new(s, &r);
	if (ret == HDL_EOK)
		ret = store_reader_begin(r);
	if (ret != HDL_EOK) {
		store_reader_free(r);
		fprintf(stderr, "idnode template: %s\n", store_strerror(s, ret));
		return IDNODE_EXIT_IO;
	}
	int rc = IDNODE_EXIT_OK;
	json_t *out = NULL;
	if (strcmp(verb, "list") == 0) {
		json_t *vs = NULL;
		char *dflt = NULL;
		ret = tpl_list(tpl_fetch_reader, r, hdl_slice_str(argv[0]), &vs, &dflt);
		if (ret == HDL_EOK) {
			out = json_pack("{s:s, s:o, s:s?}", "prefix", argv[0], "versions", vs,
			                "default", dflt);
			if (json_array_size(vs) == 0)
				rc = IDNODE_EXIT_NOTFOUND;
		}
		free(dflt);
	} else if (argc == 2) {
		tpl_t *t = NULL;
		bool is_default = false;
		ret = tpl_get(tpl_fetch_reader, r, hdl_slice_str(argv[0]), hdl_slice_str(argv[1]),
		              NULL, &t, &is_default);
		if (ret == HDL_EOK && (out = tpl_to_json(t)) != NULL)
			json_object_set_new(out, "default", json_boolean(is_default));
		tpl_free(t);
	}
	store_reader_free(r);
	if (ret == HDL_ENOENT || ret == HDL_EINVAL) {
		fprintf(stderr, "idnode template: no such template\n");
		return IDNODE_EXIT_NOTFOUND;
	}
	if (ret != HDL_EOK || out == NULL) {
		fprintf(stderr, "idnode template: %s\n", hdl_strerror(ret ? ret : HDL_ENOMEM));
		return IDNODE_EXIT_IO;
	}
	char *txt = json_dumps(out, JSON_INDENT(2));
	json_decref(out);
	if (txt)
		printf("%s\n", txt);
	free(txt);
	return rc;
}

int cmd_template(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'h': template_usage(stdout); return IDNODE_EXIT_OK;
		default: template_usage(stderr); return IDNODE_EXIT_USAGE;
		}
	}
	/* the verb may come before or after --db */
	const char *verb = optind < argc ? argv[optind++] : NULL;
	while (optind < argc && db == NULL &&
	       (c = getopt_long(argc, argv, "+d:h", opts, NULL)) != -1) {
		if (c != 'd') {
			template_usage(stderr);
			return IDNODE_EXIT_USAGE;
		}
		db = optarg;
	}
	int nargs = argc - optind;
	char **args = argv + optind;
	bool ok = verb && db &&
	          ((strcmp(verb, "load") == 0 && nargs >= 1) ||
	           (strcmp(verb, "list") == 0 && nargs == 1) ||
	           ((strcmp(verb, "show") == 0 || strcmp(verb, "delete") == 0) && nargs == 2));
	if (!ok) {
		template_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	if (access(db, F_OK) != 0) {
		fprintf(stderr, "idnode template: %s: %s\n", db, strerror(errno));
		return IDNODE_EXIT_IO;
	}
	bool writes = strcmp(verb, "load") == 0 || strcmp(verb, "delete") == 0;
	store_opts_t so = {.path = db, .txlog = true, .read_only = !writes};
	store_t *s = NULL;
	int ret = store_open(&so, &s);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode template: cannot open store %s: %s\n", db,
		        store_strerror(NULL, ret));
		return IDNODE_EXIT_IO;
	}
	if (!writes) {
		int rc = show(s, verb, nargs, args);
		store_close(s);
		return rc;
	}
	store_batch_t *b = NULL;
	int rc = IDNODE_EXIT_OK;
	if ((ret = store_batch_begin(s, &b)) != HDL_EOK) {
		fprintf(stderr, "idnode template: %s\n", store_strerror(s, ret));
		store_close(s);
		return IDNODE_EXIT_IO;
	}
	if (strcmp(verb, "load") == 0) {
		for (int i = 0; i < nargs && rc != IDNODE_EXIT_IO; i++) {
			int r = load_one(b, args[i]);
			if (r != IDNODE_EXIT_OK)
				rc = r;
		}
	} else {
		tpl_change_t chg;
		char msg[TPL_MSG_MAX];
		hdl_slice_t p = hdl_slice_str(args[0]), v = hdl_slice_str(args[1]);
		ret = tpl_store_del(b, p, v, &chg, msg, sizeof(msg));
		if (ret == HDL_EOK)
			ret = audit_change(b, AUDIT_OP_TEMPLATE_DEL, p, v, &chg, "delete");
		if (ret == TPL_REFUSED) {
			fprintf(stderr, "idnode template: %s\n", msg);
			rc = IDNODE_EXIT_NOTFOUND;
		} else if (ret != HDL_EOK) {
			fprintf(stderr, "idnode template: %s\n", store_strerror(s, ret));
			rc = IDNODE_EXIT_IO;
		} else {
			printf("deleted %s:%s\n", args[0], args[1]);
		}
		tpl_change_clear(&chg);
	}
	/* all or nothing: a file that does not load leaves the store as it was */
	if (rc == IDNODE_EXIT_OK && (ret = store_batch_commit(b)) != HDL_EOK) {
		fprintf(stderr, "idnode template: commit: %s\n", store_strerror(s, ret));
		rc = IDNODE_EXIT_IO;
	} else if (rc != IDNODE_EXIT_OK) {
		store_batch_abort(b);
		fprintf(stderr, "idnode template: nothing changed\n");
	}
	store_close(s);
	return rc;
}

/* ---- passwd ------------------------------------------------------------------------------- */

static void passwd_usage(FILE *f)
{
	fprintf(f,
	        "usage: idnode passwd [--iterations N] [--user NAME --id INDEX:HANDLE]\n"
	        "  Reads a password (the first line of standard input; from a terminal without\n"
	        "  echo) and prints its PBKDF2-HMAC-SHA256 hash for the node's configuration (N\n"
	        "  iterations, default %u). With --user and --id it prints the whole line\n"
	        "  `snms_user = NAME HASH INDEX:HANDLE`.\n",
	        SNMS_ITER_DEFAULT);
}

int cmd_passwd(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"iterations", required_argument, NULL, 'i'},
	    {"user", required_argument, NULL, 'u'},
	    {"id", required_argument, NULL, 'I'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t iter = SNMS_ITER_DEFAULT;
	const char *user = NULL, *id = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:u:I:h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (!idnode_parse_u64(optarg, false, &iter) || iter < SNMS_ITER_MIN ||
			    iter > SNMS_ITER_MAX) {
				fprintf(stderr, "idnode passwd: --iterations %u..%u\n",
				        SNMS_ITER_MIN, SNMS_ITER_MAX);
				return IDNODE_EXIT_USAGE;
			}
			break;
		case 'u': user = optarg; break;
		case 'I': id = optarg; break;
		case 'h': passwd_usage(stdout); return IDNODE_EXIT_OK;
		default: passwd_usage(stderr); return IDNODE_EXIT_USAGE;
		}
	}
	if (optind != argc || (user == NULL) != (id == NULL)) {
		passwd_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	bool tty = isatty(0);
	struct termios old, quiet;
	if (tty && tcgetattr(0, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		(void)tcsetattr(0, TCSANOW, &quiet);
		fprintf(stderr, "password: ");
	}
	char pw[SNMS_PASSWORD_MAX + 2];
	bool got = fgets(pw, sizeof(pw), stdin) != NULL;
	if (tty) {
		(void)tcsetattr(0, TCSANOW, &old);
		fprintf(stderr, "\n");
	}
	size_t n = got ? strcspn(pw, "\r\n") : 0;
	if (n == 0 || n > SNMS_PASSWORD_MAX) {
		fprintf(stderr, "idnode passwd: a password of 1..%u bytes on one line\n",
		        SNMS_PASSWORD_MAX);
		return IDNODE_EXIT_USAGE;
	}
	char hash[SNMS_HASH_TEXT_MAX];
	int ret = snms_hash_password(pw, n, (uint32_t)iter, hash, sizeof(hash));
	memset(pw, 0, sizeof(pw));
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode passwd: %s\n", hdl_strerror(ret));
		return IDNODE_EXIT_IO;
	}
	if (user) {
		char line[SNMS_HASH_TEXT_MAX + 2 * 1024], err[128];
		snprintf(line, sizeof(line), "%s %s %s", user, hash, id);
		if (snms_user_parse(line, NULL, err, sizeof(err)) != HDL_EOK) {
			fprintf(stderr, "idnode passwd: %s\n", err);
			return IDNODE_EXIT_USAGE;
		}
		printf("snms_user = %s\n", line);
	} else {
		printf("%s\n", hash);
	}
	return IDNODE_EXIT_OK;
}
