/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode prefixes`, `idnode home` and `idnode unhome`: the set of homed prefixes of a
 *        store, with where each came from (node/store/homing.h), and the warnings shared with
 *        `idnode import` (an unfinished import, no prefix homed).
 *
 * The store is LMDB: these commands work on a store a running node has open, and the node
 * reads homing from the store on every request, so a change applies at once.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hdl/error.h"
#include "node/store/homing.h"
#include "node/store/store.h"
#include "tools/idnode/cmds.h"

int idnode_mark_report(store_t *s, const char *prog, const char *db, uint8_t **copy,
                       size_t *copy_len)
{
	store_reader_t *r = NULL;
	hdl_slice_t v;
	store_import_mark_t m;
	char what[STORE_IMPORT_SOURCE_MAX + 160];
	int found = 0;
	if (copy) {
		*copy = NULL;
		*copy_len = 0;
	}
	if (store_reader_new(s, &r) != HDL_EOK || store_reader_begin(r) != HDL_EOK) {
		store_reader_free(r);
		return -1;
	}
	if (store_meta_get(r, STORE_META_IMPORT, &v) == HDL_EOK) {
		found = 1;
		if (store_import_mark_decode(v.p, v.len, &m) != HDL_EOK) {
			fprintf(
			    stderr,
			    "%s: warning: %s holds an unreadable marker of an unfinished import\n",
			    prog, db);
		} else {
			fprintf(stderr,
			        "%s: warning: %s holds an unfinished import: %s; its data may be "
			        "incomplete: run that import again\n",
			        prog, db, store_import_mark_str(&m, what, sizeof(what)));
		}
		if (copy && (*copy = malloc(v.len ? v.len : 1)) != NULL) {
			memcpy(*copy, v.p, v.len);
			*copy_len = v.len;
		}
	}
	store_reader_end(r);
	store_reader_free(r);
	return found;
}

void idnode_warn_unhomed(store_t *s, const char *prog, const char *db)
{
	if (store_homed_count(s) != 0)
		return;
	fprintf(stderr,
	        "%s: warning: no prefix homed in %s: the node will answer RC 301 (server not "
	        "responsible) for every handle; home one with `idnode home --db %s PREFIX`, "
	        "`idnode import --home PREFIX` or `home = PREFIX` in the node's configuration\n",
	        prog, db, db);
}

/** Is there a store at \p db (an LMDB data file)? Reports why not. */
static bool store_exists(const char *prog, const char *db)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof(p), "%s/data.mdb", db);
	if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
		return true;
	fprintf(stderr, "%s: no store at %s (%s); create one with `idnode import --db %s FILE`\n",
	        prog, db, strerror(errno ? errno : ENOENT), db);
	return false;
}

/* ---- idnode prefixes ------------------------------------------------------------------------ */

typedef struct list_ctx {
	unsigned n;
} list_ctx_t;

static int list_one(void *vctx, hdl_slice_t prefix, const store_home_rec_t *rec)
{
	list_ctx_t *x = vctx;
	char src[64], when[64];
	if (x->n++ == 0)
		printf("%-24s %-24s %s\n", "PREFIX", "SOURCES", "HOMED SINCE");
	printf("%-24.*s %-24s %s\n", (int)prefix.len, (const char *)prefix.p,
	       store_home_sources_str(rec->sources, src, sizeof(src)),
	       store_time_str(rec->since, when, sizeof(when)));
	return 0;
}

/** Parse `--db DIR` (and --help) for prefixes/home/unhome. \return db, NULL after usage/help */
static const char *db_arg(int argc, char **argv, void (*usage)(FILE *), int *rc)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'h':
			usage(stdout);
			*rc = IDNODE_EXIT_OK;
			return NULL;
		default:
			usage(stderr);
			*rc = IDNODE_EXIT_USAGE;
			return NULL;
		}
	}
	if (db == NULL) {
		usage(stderr);
		*rc = IDNODE_EXIT_USAGE;
	}
	return db;
}

static void prefixes_usage(FILE *f)
{
	fprintf(
	    f, "usage: idnode prefixes --db DIR\n"
	       "  Lists the prefixes homed in the store at DIR with who homed them (config: the\n"
	       "  node's configuration; cli: idnode home; admin: an administrator's request;\n"
	       "  import: idnode import; unknown: an earlier version) and since when. Warns about\n"
	       "  an unfinished import and when no prefix is homed.\n");
}

int cmd_prefixes(int argc, char **argv)
{
	int rc = IDNODE_EXIT_OK;
	const char *db = db_arg(argc, argv, prefixes_usage, &rc);
	store_t *s = NULL;
	store_reader_t *r = NULL;
	list_ctx_t x = {0};
	if (db == NULL)
		return rc;
	if (optind != argc) {
		prefixes_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	if (!store_exists("idnode prefixes", db))
		return IDNODE_EXIT_IO;
	store_opts_t so = {.path = db, .read_only = true};
	int ret = store_open(&so, &s);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode prefixes: cannot open store %s: %s\n", db,
		        store_strerror(NULL, ret));
		return IDNODE_EXIT_IO;
	}
	(void)idnode_mark_report(s, "idnode prefixes", db, NULL, NULL);
	if ((ret = store_reader_new(s, &r)) == HDL_EOK && (ret = store_reader_begin(r)) == HDL_EOK)
		ret = store_prefixes_foreach(r, list_one, &x);
	store_reader_end(r);
	store_reader_free(r);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode prefixes: %s\n", hdl_strerror(ret));
		rc = IDNODE_EXIT_IO;
	} else if (x.n == 0) {
		idnode_warn_unhomed(s, "idnode prefixes", db);
	}
	store_close(s);
	return rc;
}

/* ---- idnode home / unhome --------------------------------------------------------------- */

static void home_usage(FILE *f)
{
	fprintf(f,
	        "usage: idnode home --db DIR PREFIX...\n"
	        "       idnode unhome --db DIR PREFIX...\n"
	        "  home: the node at DIR answers for PREFIX/... and 0.NA/PREFIX (recorded with\n"
	        "  source cli). unhome: it stops, whoever homed PREFIX; a prefix the node's\n"
	        "  configuration lists is homed again at its next start or reload. Works while a\n"
	        "  node runs on DIR: it reads homing from the store. Exit status 1 when a prefix\n"
	        "  to unhome was not homed.\n");
}

typedef struct src_ctx {
	const uint8_t *want;
	size_t len;
	uint32_t sources; /**< of the prefix looked for; unchanged when not homed */
} src_ctx_t;

static int src_one(void *vctx, hdl_slice_t prefix, const store_home_rec_t *rec)
{
	src_ctx_t *x = vctx;
	if (prefix.len == x->len && memcmp(prefix.p, x->want, x->len) == 0) {
		x->sources = rec->sources;
		return 1;
	}
	return 0;
}

#define SRC_NOT_HOMED 0x80000000u /**< sources_now(): the prefix is not homed */
#define SRC_FAILED    0x40000000u /**< home_cmd(): the change was refused */

/** Sources of \p prefix as folded by the store (SRC_NOT_HOMED when not homed). */
static uint32_t sources_now(store_t *s, const char *prefix)
{
	store_reader_t *r = NULL;
	uint8_t key[512];
	size_t n = strlen(prefix);
	src_ctx_t x = {key, n, SRC_NOT_HOMED};
	if (n == 0 || n > sizeof(key))
		return x.sources;
	for (size_t i = 0; i < n; i++)
		key[i] = (prefix[i] >= 'a' && prefix[i] <= 'z') ? (uint8_t)(prefix[i] - 32)
		                                                : (uint8_t)prefix[i];
	if (store_reader_new(s, &r) == HDL_EOK && store_reader_begin(r) == HDL_EOK)
		(void)store_prefixes_foreach(r, src_one, &x);
	store_reader_end(r);
	store_reader_free(r);
	return x.sources;
}

static int home_cmd(int argc, char **argv, bool home)
{
	const char *prog = home ? "idnode home" : "idnode unhome";
	int rc = IDNODE_EXIT_OK;
	const char *db = db_arg(argc, argv, home_usage, &rc);
	store_t *s = NULL;
	store_batch_t *b = NULL;
	char src[64];
	if (db == NULL)
		return rc;
	if (optind == argc) {
		home_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	if (!store_exists(prog, db))
		return IDNODE_EXIT_IO;
	store_opts_t so = {.path = db, .txlog = true};
	int ret = store_open(&so, &s);
	if (ret != HDL_EOK) {
		fprintf(stderr, "%s: cannot open store %s: %s\n", prog, db,
		        store_strerror(NULL, ret));
		return IDNODE_EXIT_IO;
	}
	uint32_t *before = calloc((size_t)(argc - optind), sizeof(uint32_t));
	if (before == NULL || (ret = store_batch_begin(s, &b)) != HDL_EOK) {
		fprintf(stderr, "%s: %s\n", prog,
		        before ? store_strerror(s, ret) : "out of memory");
		rc = IDNODE_EXIT_IO;
		goto out;
	}
	for (int i = optind; i < argc; i++) {
		before[i - optind] = sources_now(s, argv[i]);
		ret = store_batch_home_src(b, hdl_slice_str(argv[i]), home,
		                           home ? STORE_HOME_CLI : STORE_HOME_ALL);
		if (ret != HDL_EOK)
			before[i - optind] = SRC_FAILED;
		if (ret == HDL_ENOENT) {
			fprintf(stderr, "%s: %s was not homed\n", prog, argv[i]);
			rc = IDNODE_EXIT_NOTFOUND;
		} else if (ret == HDL_ENAME) {
			fprintf(stderr,
			        "%s: '%s' is not a prefix (no '/', no control characters)\n", prog,
			        argv[i]);
			rc = IDNODE_EXIT_USAGE;
		} else if (ret != HDL_EOK) {
			fprintf(stderr, "%s: %s: %s\n", prog, argv[i], store_strerror(s, ret));
			store_batch_abort(b);
			rc = IDNODE_EXIT_IO;
			goto out;
		}
	}
	if ((ret = store_batch_commit(b)) != HDL_EOK) {
		fprintf(stderr, "%s: commit: %s\n", prog, store_strerror(s, ret));
		rc = IDNODE_EXIT_IO;
		goto out;
	}
	for (int i = optind; i < argc; i++) {
		uint32_t was = before[i - optind];
		bool homed_before = was != SRC_NOT_HOMED;
		if (was == SRC_FAILED)
			continue;
		if (home && !homed_before)
			printf("homed %s\n", argv[i]);
		else if (home)
			printf("%s was homed already (by: %s), now also by cli\n", argv[i],
			       store_home_sources_str(was, src, sizeof(src)));
		else if (homed_before)
			printf("unhomed %s (it was homed by: %s)%s\n", argv[i],
			       store_home_sources_str(was, src, sizeof(src)),
			       (was & STORE_HOME_CONFIG)
			           ? "; the node's configuration lists it: the node "
			             "homes it again at its next start or reload "
			             "unless the configuration stops listing it"
			           : "");
	}
	if (!home)
		idnode_warn_unhomed(s, prog, db);
out:
	free(before);
	store_close(s);
	return rc;
}

int cmd_home_db(int argc, char **argv)
{
	return home_cmd(argc, argv, true);
}

int cmd_unhome_db(int argc, char **argv)
{
	return home_cmd(argc, argv, false);
}
