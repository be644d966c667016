/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode import` and `idnode export`: JSON Lines <-> the node's LMDB store.
 *
 * One line = one handle: {"handle":"88.100.1/X","values":[ REST value form, ... ]}.
 *
 * Import parses each line with jansson and proto/json.c into a per-record arena, encodes the
 * values in wire form (U32 count + values) into a batch buffer, and every --batch records sorts
 * the batch by storage key and writes it in one LMDB transaction (sorted inserts touch each page
 * once). Parsing and writing overlap: a writer thread stores one batch while the main thread fills
 * the other (double buffering). The environment is opened with MDB_NOSYNC and synced once at the
 * end. A handle that appears twice keeps its last line; such lines are counted and listed (the
 * handles of the input are remembered as 8-byte fingerprints, up to --dup-check of them). Values
 * with timestamp 0 get the import time. A UTF-8 byte order mark before the first line is skipped.
 *
 * A line {"home":"88.100.1"} homes that prefix (what `idnode export` writes first for each homed
 * prefix). Prefixes are homed, source "import", in the transaction that ends the import.
 *
 * An import marks the store before its first batch (meta record STORE_META_IMPORT: source file,
 * start time, pid, records committed so far, updated with every batch) and clears the mark with
 * its last transaction, so an import that was killed or failed is reported by the next import,
 * by `idnode prefixes` and by the node at start.
 *
 * Each batch also files one audit entry (node/store/audit.h, op IMPORT: the source, the count,
 * the first and last handle, a SHA-256 of what was written) in its own transaction.
 */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/store/audit.h"
#include "node/store/jsonl.h"
#include "node/store/store.h"
#include "node/store/template.h"
#include "proto/json.h"
#include "tools/idnode/cmds.h"

#define IMPORT_BATCH_DEFAULT 50000u
#define IMPORT_MAX_LINE (4u << 20)
#define IMPORT_READ_BUF (8u << 20)
#define IMPORT_REJECT_LIST 100u
#define IMPORT_MAX_PREFIXES 100000u
#define IMPORT_HOME_SLOTS 262144u /* power of two > 2 * IMPORT_MAX_PREFIXES */
#define IMPORT_MAX_HOME 256
#define IMPORT_DUP_CHECK_DEFAULT 12000000u /* handles: at most 128 MiB of fingerprints */

/* ---- small helpers ------------------------------------------------------------------------ */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/** Growable byte buffer. */
typedef struct buf {
	uint8_t *p;
	size_t len;
	size_t cap;
} buf_t;

static int buf_reserve(buf_t *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return HDL_EOK;
	size_t n = b->cap ? b->cap : (1u << 20);
	while (n - b->len < extra) {
		if (n > SIZE_MAX / 2)
			return HDL_ENOMEM;
		n *= 2;
	}
	uint8_t *p = realloc(b->p, n);
	if (p == NULL)
		return HDL_ENOMEM;
	b->p = p;
	b->cap = n;
	return HDL_EOK;
}

/* ---- line reader -------------------------------------------------------------------------- */

typedef struct reader {
	int fd;
	uint8_t *buf;
	size_t start; /**< first unconsumed byte */
	size_t end;   /**< bytes in buf */
	bool eof;
	bool err;
	uint64_t consumed; /**< bytes consumed (for the progress bar) */
} reader_t;

/**
 * Next line (without the newline). \retval 1 a line, 0 end of input, -1 read error,
 * 2 a line longer than IMPORT_MAX_LINE (skipped; counts as a line).
 */
static int next_line(reader_t *r, const uint8_t **line, size_t *len)
{
	bool skipping = false;
	for (;;) {
		uint8_t *nl = r->end > r->start ? memchr(r->buf + r->start, '\n', r->end - r->start) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - (r->buf + r->start));
			*line = r->buf + r->start;
			*len = n;
			r->start += n + 1;
			r->consumed += n + 1;
			if (skipping)
				return 2;
			return n > IMPORT_MAX_LINE ? 2 : 1;
		}
		if (r->eof) {
			if (r->end > r->start) {
				size_t n = r->end - r->start;
				*line = r->buf + r->start;
				*len = n;
				r->start = r->end;
				r->consumed += n;
				return skipping || n > IMPORT_MAX_LINE ? 2 : 1;
			}
			return skipping ? 2 : 0;
		}
		/* compact, then read more */
		if (r->start > 0) {
			memmove(r->buf, r->buf + r->start, r->end - r->start);
			r->end -= r->start;
			r->start = 0;
		}
		if (r->end == IMPORT_READ_BUF) {
			/* a line without newline fills the buffer: drop what we have, keep skipping */
			r->consumed += r->end;
			r->end = 0;
			skipping = true;
		}
		ssize_t got = read(r->fd, r->buf + r->end, IMPORT_READ_BUF - r->end);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r->err = true;
			return -1;
		}
		if (got == 0)
			r->eof = true;
		r->end += (size_t)got;
	}
}

/* ---- import ------------------------------------------------------------------------------- */

typedef struct irec {
	uint32_t key_off, key_len;   /**< normalized storage key (sort order) */
	uint32_t name_off, name_len; /**< handle as written */
	uint32_t val_off, val_len;   /**< U32 count + values */
	uint64_t line;
	uint64_t seq;                /**< input order, tie-break: last line wins */
	bool dup;                    /**< an earlier line of the input gave the same handle */
} irec_t;

/** One batch of parsed records. */
typedef struct ibatch {
	buf_t data;   /**< keys, names and values */
	irec_t *recs;
	size_t nrecs;
} ibatch_t;

typedef struct import {
	store_t *store;
	unsigned batch_max;
	bool overwrite;
	bool auto_home;
	bool slow_json;   /**< always use jansson (testing the fast path) */
	const char *source; /**< the input, for the audit trail */
	ibatch_t bufs[2];
	ibatch_t *cur;    /**< the batch the parser fills */
	uint64_t seq;
	uint64_t queued;  /**< records handed to the writer */
	uint64_t lines;
	/* shared with the writer thread, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t writer;
	bool writer_started;
	ibatch_t *pending; /**< handed to the writer; NULL when it is idle */
	bool stop;
	int werr;          /**< fatal store error seen by the writer */
	uint64_t imported;
	uint64_t rejected;
	uint64_t committed; /**< records written, repeated handles included (for the marker) */
	uint64_t replaced;  /**< records written over an earlier line of this input */
	store_import_mark_t mark; /**< this import's marker (records updated per batch) */
	/* parser thread only */
	tpl_cache_t *tpl;     /**< compiled metadata templates (node/store/template.h) */
	store_reader_t *tplr; /**< their records, a snapshot per check */
	idnode_seen_t seen;   /**< handles of the input so far (fingerprints) */
	uint64_t dups;        /**< lines that repeat a handle */
	bool seen_told;       /**< said that \p seen is full */
	char **prefixes;      /**< to home: --auto-home authorities and {"home":...} lines */
	uint32_t *home_slots; /**< hash set over prefixes (index + 1; IMPORT_HOME_SLOTS) */
	size_t nprefixes;
	size_t capprefixes;
	bool fatal;
	/* progress */
	bool tty;
	uint64_t total_bytes; /**< 0 when unknown (pipe) */
	double t0;
	double last_draw;
} import_t;

static reader_t *import_reader; /* for the progress bar */

static void reject(import_t *im, uint64_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Count and (for the first IMPORT_REJECT_LIST) report a rejected line; any thread. */
static void reject(import_t *im, uint64_t line, const char *fmt, ...)
{
	pthread_mutex_lock(&im->mu);
	im->rejected++;
	if (im->rejected <= IMPORT_REJECT_LIST) {
		char msg[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		if (im->tty)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "line %" PRIu64 ": %s\n", line, msg);
	}
	pthread_mutex_unlock(&im->mu);
}

/** Count and (for the first IMPORT_REJECT_LIST) report a line that repeats a handle. */
static void duplicate(import_t *im, uint64_t line, hdl_slice_t name)
{
	im->dups++;
	if (im->dups > IMPORT_REJECT_LIST)
		return;
	pthread_mutex_lock(&im->mu);
	if (im->tty)
		fputs("\r\033[K", stderr);
	fprintf(stderr,
	        "line %" PRIu64 ": handle %.*s was given before in this input; the last line "
	        "wins\n",
	        line, (int)(name.len > 300 ? 300 : name.len), (const char *)name.p);
	pthread_mutex_unlock(&im->mu);
}

static void progress(import_t *im, bool final)
{
	if (!im->tty)
		return;
	double t = now_s();
	if (!final && t - im->last_draw < 0.2)
		return;
	im->last_draw = t;
	double el = t - im->t0;
	uint64_t done = im->queued + im->cur->nrecs; /* parsed so far */
	double rate = el > 0 ? (double)done / el : 0;
	if (final) {
		fputs("\r\033[K", stderr);
		return;
	}
	if (im->total_bytes) {
		double frac = (double)import_reader->consumed / (double)im->total_bytes;
		if (frac > 1)
			frac = 1;
		char bar[31];
		int fill = (int)(frac * 30);
		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = 0;
		fprintf(stderr, "\rimport [%s] %3d%%  %" PRIu64 " records  %.0f/s ", bar,
		        (int)(frac * 100), done, rate);
	} else {
		fprintf(stderr, "\rimport  %" PRIu64 " records  %.0f/s  %.1f s ", done, rate, el);
	}
	fflush(stderr);
}

static int cmp_irec(const void *a, const void *b, void *ctx)
{
	const irec_t *x = a, *y = b;
	const uint8_t *base = ctx;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(base + x->key_off, base + y->key_off, n);
	if (c)
		return c;
	if (x->key_len != y->key_len)
		return x->key_len < y->key_len ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/** Put the import marker \p m into the batch. */
static int mark_put(store_batch_t *b, const store_import_mark_t *m)
{
	uint8_t buf[STORE_IMPORT_SOURCE_MAX + 64];
	size_t len = 0;
	int ret = store_import_mark_encode(m, buf, sizeof(buf), &len);
	if (ret != HDL_EOK)
		return ret;
	return store_batch_meta_put(b, STORE_META_IMPORT, (hdl_slice_t){buf, (uint32_t)len});
}

/** Mark the store before the first batch, in a transaction of its own, synced. */
static int mark_begin(import_t *im)
{
	store_batch_t *b = NULL;
	int ret = store_batch_begin(im->store, &b);
	if (ret != HDL_EOK)
		return ret;
	ret = mark_put(b, &im->mark);
	if (ret != HDL_EOK) {
		store_batch_abort(b);
		return ret;
	}
	ret = store_batch_commit(b);
	return ret == HDL_EOK ? store_sync(im->store) : ret;
}

/**
 * Clear this import's marker in the last transaction \p b. A marker an earlier, unfinished
 * import had left (\p prev) stays unless it was for this same file (read from standard input:
 * it stays), so a finished import of another file does not hide it.
 */
static int mark_end(import_t *im, store_batch_t *b, const uint8_t *prev, size_t prev_len)
{
	store_import_mark_t pm;
	if (prev != NULL && store_import_mark_decode(prev, prev_len, &pm) == HDL_EOK &&
	    !(pm.source.len == im->mark.source.len &&
	      memcmp(pm.source.p, im->mark.source.p, pm.source.len) == 0 &&
	      !(pm.source.len == 1 && pm.source.p[0] == '-')))
		return store_batch_meta_put(b, STORE_META_IMPORT,
		                            (hdl_slice_t){prev, (uint32_t)prev_len});
	int ret = store_batch_meta_del(b, STORE_META_IMPORT);
	return ret == HDL_ENOENT ? HDL_EOK : ret;
}

/**
 * The audit entry of one batch (node/store/audit.h): op IMPORT, the source, the records written,
 * the first and last handle, and a SHA-256 over what was written (STR name + record, in order).
 */
static int audit_batch(import_t *im, store_batch_t *b, uint64_t ok, hdl_slice_t first,
                       hdl_slice_t last, EVP_MD_CTX *md)
{
	char msg[AUDIT_MESSAGE_MAX];
	audit_rec_t ar;
	memset(&ar, 0, sizeof(ar));
	unsigned int dl = 0;
	if (EVP_DigestFinal_ex(md, ar.after, &dl) != 1 || dl != AUDIT_DIGEST_LEN)
		return HDL_ENOMEM;
	snprintf(msg, sizeof(msg), "idnode import %.300s (uid %u): %.*s .. %.*s", im->source,
	         (unsigned)getuid(), first.len > 300 ? 300 : (int)first.len, (const char *)first.p,
	         last.len > 300 ? 300 : (int)last.len, (const char *)last.p);
	ar.time = (uint32_t)time(NULL);
	ar.op = AUDIT_OP_IMPORT;
	ar.transport = AUDIT_T_LOCAL;
	ar.rcode = HDL_RC_SUCCESS;
	ar.flags = im->overwrite ? 1u : 0u; /* WR_F_OVERWRITE */
	ar.has_after = true;
	ar.message = hdl_slice_str(msg);
	ar.count = ok;
	return audit_write(b, &ar);
}

/** Feed one written record to the batch digest. */
static void digest_rec(EVP_MD_CTX *md, hdl_slice_t name, hdl_slice_t vals)
{
	uint8_t len[4] = {(uint8_t)(name.len >> 24), (uint8_t)(name.len >> 16),
	                  (uint8_t)(name.len >> 8), (uint8_t)name.len};
	EVP_DigestUpdate(md, len, 4);
	EVP_DigestUpdate(md, name.p, name.len);
	EVP_DigestUpdate(md, vals.p, vals.len);
}

/** Write one batch in key order (writer thread). \retval HDL_EOK or a fatal store error. */
static int write_batch(import_t *im, ibatch_t *ib)
{
	store_batch_t *b = NULL;
	if (ib->nrecs == 0)
		return HDL_EOK;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return HDL_ENOMEM;
	}
	hdl_slice_t first = {NULL, 0}, last = {NULL, 0};
	qsort_r(ib->recs, ib->nrecs, sizeof(irec_t), cmp_irec, ib->data.p);
	int ret = store_batch_begin(im->store, &b);
	if (ret != HDL_EOK) {
		EVP_MD_CTX_free(md);
		return ret;
	}
	uint64_t ok = 0, replaced = 0;
	for (size_t i = 0; i < ib->nrecs; i++) {
		const irec_t *r = &ib->recs[i];
		hdl_slice_t name = {ib->data.p + r->name_off, r->name_len};
		hdl_slice_t vals = {ib->data.p + r->val_off, r->val_len};
		ret = store_batch_put(b, name, vals, im->overwrite);
		if (ret == HDL_EOK) {
			ok++;
			replaced += r->dup;
			digest_rec(md, name, vals);
			if (first.p == NULL)
				first = name;
			last = name;
			continue;
		}
		if (ret == HDL_EEXIST) {
			reject(im, r->line, "handle %.*s already exists", (int)r->name_len,
			       (const char *)name.p);
			continue;
		}
		if (ret == HDL_ENAME || ret == HDL_EMALF) {
			reject(im, r->line, "%s", hdl_strerror(ret));
			continue;
		}
		fprintf(stderr, "idnode import: store: %s\n", store_strerror(im->store, ret));
		store_batch_abort(b);
		return ret;
	}
	/* the marker says how far the import got, in the same transaction */
	pthread_mutex_lock(&im->mu);
	store_import_mark_t mark = im->mark;
	mark.records = im->committed + ok;
	pthread_mutex_unlock(&im->mu);
	ret = mark_put(b, &mark);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode import: store: %s\n", store_strerror(im->store, ret));
		store_batch_abort(b);
		EVP_MD_CTX_free(md);
		return ret;
	}
	ret = ok > 0 ? audit_batch(im, b, ok, first, last, md) : HDL_EOK;
	EVP_MD_CTX_free(md);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode import: audit entry: %s\n", hdl_strerror(ret));
		store_batch_abort(b);
		return ret;
	}
	ret = store_batch_commit(b);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode import: commit: %s\n", store_strerror(im->store, ret));
		return ret;
	}
	pthread_mutex_lock(&im->mu);
	im->imported += ok - replaced;
	im->replaced += replaced;
	im->committed += ok;
	pthread_mutex_unlock(&im->mu);
	return HDL_EOK;
}

static void *writer_main(void *arg)
{
	import_t *im = arg;
	pthread_mutex_lock(&im->mu);
	for (;;) {
		while (im->pending == NULL && !im->stop)
			pthread_cond_wait(&im->cv, &im->mu);
		if (im->pending == NULL)
			break;
		ibatch_t *ib = im->pending;
		pthread_mutex_unlock(&im->mu);
		int ret = im->werr ? HDL_EOK : write_batch(im, ib);
		pthread_mutex_lock(&im->mu);
		if (ret != HDL_EOK && im->werr == HDL_EOK)
			im->werr = ret;
		ib->nrecs = 0;
		ib->data.len = 0;
		im->pending = NULL;
		pthread_cond_broadcast(&im->cv);
	}
	pthread_mutex_unlock(&im->mu);
	return NULL;
}

/** Hand the current batch to the writer (waiting for it to finish the previous one). */
static int flush_batch(import_t *im)
{
	if (im->cur->nrecs == 0)
		return HDL_EOK;
	pthread_mutex_lock(&im->mu);
	while (im->pending != NULL)
		pthread_cond_wait(&im->cv, &im->mu);
	int err = im->werr;
	if (err == HDL_EOK) {
		im->pending = im->cur;
		im->queued += im->cur->nrecs;
		pthread_cond_broadcast(&im->cv);
	}
	pthread_mutex_unlock(&im->mu);
	if (err != HDL_EOK)
		return err;
	im->cur = im->cur == &im->bufs[0] ? &im->bufs[1] : &im->bufs[0];
	return HDL_EOK;
}

/** Submit what is left, wait for the writer and stop it. \return its fatal error, if any. */
static int finish_writer(import_t *im)
{
	int ret = flush_batch(im);
	if (!im->writer_started)
		return ret;
	pthread_mutex_lock(&im->mu);
	while (im->pending != NULL)
		pthread_cond_wait(&im->cv, &im->mu);
	im->stop = true;
	pthread_cond_broadcast(&im->cv);
	pthread_mutex_unlock(&im->mu);
	pthread_join(im->writer, NULL);
	im->writer_started = false;
	return ret != HDL_EOK ? ret : im->werr;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/** Remember prefix \p auth to home at the end (once). \return false when the list is full */
static bool add_home(import_t *im, hdl_slice_t auth)
{
	/* an exact set: slots hold index + 1 into prefixes, hashed on the ASCII-folded prefix */
	if (im->home_slots == NULL) {
		im->home_slots = calloc(IMPORT_HOME_SLOTS, sizeof(uint32_t));
		if (im->home_slots == NULL)
			return false;
	}
	uint64_t h = 0xcbf29ce484222325ull;
	for (uint32_t i = 0; i < auth.len; i++) {
		uint8_t c = auth.p[i];
		h = (h ^ (c >= 'a' && c <= 'z' ? (uint8_t)(c - 32) : c)) * 0x100000001b3ull;
	}
	size_t slot = (size_t)(h ^ h >> 29) & (IMPORT_HOME_SLOTS - 1);
	for (; im->home_slots[slot]; slot = (slot + 1) & (IMPORT_HOME_SLOTS - 1)) {
		const char *have = im->prefixes[im->home_slots[slot] - 1];
		if (strlen(have) == auth.len && hdl_slice_eq_nocase(hdl_slice_str(have), auth))
			return true;
	}
	if (im->nprefixes >= IMPORT_MAX_PREFIXES)
		return false;
	if (im->nprefixes == im->capprefixes) {
		size_t n = im->capprefixes ? im->capprefixes * 2 : 16;
		char **p = realloc(im->prefixes, n * sizeof(*p));
		if (p == NULL)
			return false;
		im->prefixes = p;
		im->capprefixes = n;
	}
	char *s = strndup((const char *)auth.p, auth.len);
	if (s == NULL)
		return false;
	im->prefixes[im->nprefixes++] = s;
	im->home_slots[slot] = (uint32_t)im->nprefixes;
	return true;
}

static void note_prefix(import_t *im, hdl_slice_t name)
{
	hdl_slice_t auth = hdl_name_authority(name);
	if (auth.len > 0 && auth.len <= 255)
		(void)add_home(im, auth);
}

/** A {"home":"PREFIX"} line: remember PREFIX to home at the end. */
static void home_line(import_t *im, json_t *root, json_t *jhome, uint64_t lineno)
{
	const char *p = json_string_value(jhome);
	size_t n = json_string_length(jhome);
	bool ok = p != NULL && n > 0 && n <= 255 && json_object_size(root) == 1 &&
	          hdl_utf8_valid((const uint8_t *)p, n);
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)p[i] > 0x20 && p[i] != 0x7f && p[i] != '/';
	if (!ok)
		reject(im, lineno, "\"home\" must be the only key, a prefix such as \"88.100.1\"");
	else if (!add_home(im, (hdl_slice_t){(const uint8_t *)p, (uint32_t)n}))
		reject(im, lineno, "more than %u prefixes to home", IMPORT_MAX_PREFIXES);
}

/**
 * The record's check against its metadata template, as the node's writer checks it (the same
 * message), over a snapshot taken for the check only (never held across a batch hand-over).
 * \retval HDL_EOK, TPL_REFUSED (\p msg), errors
 */
static int template_check(import_t *im, hdl_slice_t name, const hdl_value_t *v, uint32_t n,
                          char *msg, size_t cap)
{
	int ret = store_reader_begin(im->tplr);
	if (ret != HDL_EOK)
		return ret;
	ret = tpl_check(im->tpl, tpl_fetch_reader, im->tplr, name, v, n, msg, cap);
	store_reader_end(im->tplr);
	return ret;
}

/** Parse one line into the batch. Rejections are reported; returns HDL_ENOMEM only when fatal. */
static int import_line(import_t *im, const uint8_t *line, size_t len, uint64_t lineno,
                       hdl_arena_t *a, uint32_t now)
{
	json_error_t jerr;
	char err[256];
	int ret = HDL_EOK;
	json_t *root = NULL;
	ibatch_t *ib = im->cur;
	hdl_slice_t name;
	hdl_value_t *v = NULL;
	uint32_t n = 0;

	int frc = im->slow_json ? HDL_EAGAIN : store_jsonl_fast(line, len, a, &name, &v, &n);
	if (frc == HDL_ENOMEM)
		return frc;
	if (frc != HDL_EOK) {
		/* the general parser: anything the fast path does not handle, with error messages */
		hdl_arena_reset(a);
		root = json_loadb((const char *)line, len, 0, &jerr);
		if (root == NULL) {
			reject(im, lineno, "invalid JSON: %s (column %d)", jerr.text, jerr.column);
			return HDL_EOK;
		}
		if (!json_is_object(root)) {
			reject(im, lineno, "not a JSON object");
			goto out;
		}
		json_t *jhome = json_object_get(root, "home");
		if (jhome != NULL && json_object_get(root, "handle") == NULL) {
			home_line(im, root, jhome, lineno);
			goto out;
		}
		json_t *jh = json_object_get(root, "handle");
		if (!json_is_string(jh)) {
			reject(im, lineno, "missing \"handle\" string");
			goto out;
		}
		json_t *jv = json_object_get(root, "values");
		if (jv == NULL) {
			reject(im, lineno, "missing \"values\"");
			goto out;
		}
		if (!json_is_array(jv)) {
			reject(im, lineno, "\"values\" is not an array");
			goto out;
		}
		if (json_string_length(jh) > HDL_MAX_HANDLE_LEN) {
			reject(im, lineno, "invalid handle name: %s", hdl_strerror(HDL_ENAME));
			goto out;
		}
		name.p = (const uint8_t *)json_string_value(jh);
		name.len = (uint32_t)json_string_length(jh);
		err[0] = '\0';
		int vrc = hdl_json_to_values(jv, a, &v, &n, err, sizeof(err));
		if (vrc == HDL_ENOMEM) {
			ret = HDL_ENOMEM;
			goto out;
		}
		if (vrc != HDL_EOK) {
			reject(im, lineno, "values: %s", err[0] ? err : hdl_strerror(vrc));
			goto out;
		}
	}
	int nrc = hdl_name_check(name.p, name.len);
	if (nrc != HDL_EOK) {
		reject(im, lineno, "invalid handle name: %s", hdl_strerror(nrc));
		goto out;
	}
	uint8_t key[HDL_MAX_HANDLE_LEN + 8]; /* normalized name (store_key) */
	size_t klen = store_key(im->store, name, key, sizeof(key));
	if (klen == 0) {
		reject(im, lineno, "handle name too long for the store (max %zu bytes)",
		       store_max_key(im->store));
		goto out;
	}
	size_t vsize = 4;
	if (n > 1) {
		uint32_t *idx = hdl_arena_alloc(a, (size_t)n * sizeof(uint32_t));
		if (idx == NULL) {
			ret = HDL_ENOMEM;
			goto out;
		}
		for (uint32_t i = 0; i < n; i++)
			idx[i] = v[i].index;
		qsort(idx, n, sizeof(uint32_t), cmp_u32);
		for (uint32_t i = 1; i < n; i++) {
			if (idx[i] == idx[i - 1]) {
				reject(im, lineno, "values: duplicate index %" PRIu32, idx[i]);
				goto out;
			}
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		if (v[i].timestamp == 0)
			v[i].timestamp = now;
		vsize += hdl_value_size(&v[i]);
	}
	if (vsize > HDL_MAX_MESSAGE_LEN) {
		reject(im, lineno, "values too large (%zu bytes encoded, max %u)", vsize,
		       HDL_MAX_MESSAGE_LEN);
		goto out;
	}
	char tmsg[TPL_MSG_MAX];
	int trc = template_check(im, name, v, n, tmsg, sizeof(tmsg));
	if (trc == HDL_ENOMEM) {
		ret = trc;
		goto out;
	}
	if (trc != HDL_EOK) {
		reject(im, lineno, "%s", trc == TPL_REFUSED ? tmsg : hdl_strerror(trc));
		goto out;
	}
	if (buf_reserve(&ib->data, klen + name.len + vsize) != HDL_EOK) {
		ret = HDL_ENOMEM;
		goto out;
	}
	irec_t *r = &ib->recs[ib->nrecs];
	r->key_off = (uint32_t)ib->data.len;
	r->key_len = (uint32_t)klen;
	memcpy(ib->data.p + ib->data.len, key, klen);
	ib->data.len += klen;
	r->name_off = (uint32_t)ib->data.len;
	r->name_len = name.len;
	memcpy(ib->data.p + ib->data.len, name.p, name.len);
	ib->data.len += name.len;
	size_t enc = 0;
	int erc = hdl_values_encode(v, n, ib->data.p + ib->data.len, vsize, &enc);
	if (erc != HDL_EOK) {
		ib->data.len = r->key_off;
		reject(im, lineno, "values: %s", hdl_strerror(erc));
		goto out;
	}
	r->val_off = (uint32_t)ib->data.len;
	r->val_len = (uint32_t)enc;
	ib->data.len += enc;
	r->line = lineno;
	r->seq = im->seq++;
	r->dup = false;
	ib->nrecs++;
	if (im->auto_home)
		note_prefix(im, name);
	if (im->overwrite) { /* (with --no-overwrite a repeated handle is refused as existing) */
		int sr = idnode_seen_add(&im->seen, key, klen);
		if (sr == 1) {
			r->dup = true;
			duplicate(im, lineno, name);
		} else if (sr < 0 && !im->seen_told) {
			im->seen_told = true;
			fprintf(stderr,
			        "idnode import: remembered %zu handles (--dup-check %zu): later "
			        "repeats (from line %" PRIu64 " on) are not counted\n",
			        im->seen.n, im->seen.max, lineno);
		}
	}
out:
	json_decref(root);
	return ret;
}

static bool blank(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static void import_usage(FILE *f)
{
	fprintf(f,
	        "usage: idnode import --db DIR [--home PREFIX]... [--auto-home] [--batch N]\n"
	        "                     [--no-overwrite] [--txlog] [--map-size BYTES] [--dup-check N]\n"
	        "                     [FILE|-]\n"
	        "  Loads JSON Lines {\"handle\":\"88.100.1/X\",\"values\":[...]} (Handle.Net REST value\n"
	        "  form) into the LMDB store at DIR (created if missing). Existing handles are replaced\n"
	        "  unless --no-overwrite. A handle given twice keeps its last line (such lines are\n"
	        "  listed and counted; --dup-check N: remember at most N handles for that, default\n"
	        "  %u, 8 bytes each, 0 = off). --home homes PREFIX (repeatable); --auto-home homes\n"
	        "  every prefix seen; a line {\"home\":\"PREFIX\"} (as idnode export writes) homes\n"
	        "  PREFIX. --txlog records each change in the txlog (off for bulk loads).\n"
	        "  A record whose prefix has metadata templates is checked against its template\n"
	        "  (index 1001 TEMPLATE, else the prefix's default) as the node checks it.\n"
	        "  Rejected lines are listed as 'line N: reason' on stderr; exit status 4 if any.\n"
	        "  An import that does not finish leaves a mark in the store, reported by the next\n"
	        "  import, `idnode prefixes` and the node.\n"
	        "  --slow-json parses every line with the general JSON parser (for testing).\n",
	        IMPORT_DUP_CHECK_DEFAULT);
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"home", required_argument, NULL, 'H'},
	    {"auto-home", no_argument, NULL, 'A'},
	    {"batch", required_argument, NULL, 'b'},
	    {"no-overwrite", no_argument, NULL, 'N'},
	    {"txlog", no_argument, NULL, 'T'},
	    {"map-size", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'},
	    {"slow-json", no_argument, NULL, 'S'},
	    {"dup-check", required_argument, NULL, 'D'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL;
	const char *homes[IMPORT_MAX_HOME];
	int nhomes = 0;
	uint64_t batch = IMPORT_BATCH_DEFAULT, map_size = 0, dup_check = IMPORT_DUP_CHECK_DEFAULT;
	uint8_t *prev_mark = NULL;
	size_t prev_mark_len = 0;
	char *source = NULL;
	bool txlog = false;
	int c;
	int rc = IDNODE_EXIT_OK;
	import_t im;
	memset(&im, 0, sizeof(im));
	im.overwrite = true;
	im.cur = &im.bufs[0];
	pthread_mutex_init(&im.mu, NULL);
	pthread_cond_init(&im.cv, NULL);
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:H:Ab:NTm:hSD:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'H':
			if (nhomes == IMPORT_MAX_HOME)
				goto usage;
			homes[nhomes++] = optarg;
			break;
		case 'A':
			im.auto_home = true;
			break;
		case 'b':
			if (!idnode_parse_u64(optarg, true, &batch) || batch == 0 || batch > 10000000)
				goto usage;
			break;
		case 'N':
			im.overwrite = false;
			break;
		case 'T':
			txlog = true;
			break;
		case 'S':
			im.slow_json = true;
			break;
		case 'm':
			if (!idnode_parse_u64(optarg, true, &map_size))
				goto usage;
			break;
		case 'D':
			if (!idnode_parse_u64(optarg, false, &dup_check) ||
			    dup_check > (1ull << 32))
				goto usage;
			break;
		case 'h':
			import_usage(stdout);
			return IDNODE_EXIT_OK;
		default:
			goto usage;
		}
	}
	if (db == NULL || argc - optind > 1)
		goto usage;
	const char *file = optind < argc ? argv[optind] : "-";
	im.source = strcmp(file, "-") == 0 ? "(stdin)" : file;

	int fd = 0;
	if (strcmp(file, "-") != 0) {
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "idnode import: %s: %s\n", file, strerror(errno));
			return IDNODE_EXIT_IO;
		}
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		im.total_bytes = (uint64_t)st.st_size;

	store_opts_t so = {.path = db, .map_size = map_size, .no_sync = true, .txlog = txlog};
	int ret = store_open(&so, &im.store);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode import: cannot open store %s: %s\n", db,
		        store_strerror(NULL, ret));
		if (fd > 0)
			close(fd);
		return IDNODE_EXIT_IO;
	}
	im.batch_max = (unsigned)batch;
	if (tpl_cache_new(NULL, 64, &im.tpl) != HDL_EOK ||
	    store_reader_new(im.store, &im.tplr) != HDL_EOK) {
		fprintf(stderr, "idnode import: out of memory\n");
		tpl_cache_free(im.tpl);
		store_close(im.store);
		if (fd > 0)
			close(fd);
		return IDNODE_EXIT_IO;
	}
	im.bufs[0].recs = malloc(sizeof(irec_t) * im.batch_max);
	im.bufs[1].recs = malloc(sizeof(irec_t) * im.batch_max);
	im.cur = &im.bufs[0];
	reader_t rd = {.fd = fd, .buf = malloc(IMPORT_READ_BUF)};
	import_reader = &rd;
	static uint8_t arena_buf[65536];
	hdl_arena_t arena;
	hdl_arena_init(&arena, arena_buf, sizeof(arena_buf), 64u << 20);
	if (im.bufs[0].recs == NULL || im.bufs[1].recs == NULL || rd.buf == NULL) {
		fprintf(stderr, "idnode import: out of memory\n");
		rc = IDNODE_EXIT_IO;
		goto done;
	}
	idnode_seen_init(&im.seen, (size_t)dup_check);
	/* an earlier import that did not finish is reported; this one marks the store until done */
	(void)idnode_mark_report(im.store, "idnode import", db, &prev_mark, &prev_mark_len);
	source = strcmp(file, "-") == 0 ? strdup("-") : realpath(file, NULL);
	if (source == NULL || strlen(source) > STORE_IMPORT_SOURCE_MAX) {
		free(source);
		source = strdup(strcmp(file, "-") == 0 ? "-" : "(a path too long to keep)");
	}
	im.mark = (store_import_mark_t){(uint32_t)time(NULL), (uint32_t)getpid(), 0,
	                                hdl_slice_str(source ? source : "-")};
	if ((ret = mark_begin(&im)) != HDL_EOK) {
		fprintf(stderr, "idnode import: cannot mark the store: %s\n",
		        store_strerror(im.store, ret));
		rc = IDNODE_EXIT_IO;
		goto done;
	}
	if (pthread_create(&im.writer, NULL, writer_main, &im) != 0) {
		fprintf(stderr, "idnode import: cannot start the writer thread\n");
		rc = IDNODE_EXIT_IO;
		goto done;
	}
	im.writer_started = true;
	im.tty = isatty(2);
	im.t0 = now_s();
	uint32_t now = (uint32_t)time(NULL);

	for (;;) {
		const uint8_t *line;
		size_t len;
		int lr = next_line(&rd, &line, &len);
		if (lr == 0)
			break;
		if (lr < 0) {
			fprintf(stderr, "idnode import: read %s: %s\n", file, strerror(errno));
			rc = IDNODE_EXIT_IO;
			goto done;
		}
		im.lines++;
		if (lr == 2) {
			reject(&im, im.lines, "line longer than %u bytes", IMPORT_MAX_LINE);
			continue;
		}
		if (im.lines == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
			line += 3; /* a UTF-8 byte order mark (editors on Windows write one) */
			len -= 3;
		}
		if (blank(line, len))
			continue;
		ret = import_line(&im, line, len, im.lines, &arena, now);
		hdl_arena_reset(&arena);
		if (ret != HDL_EOK) {
			fprintf(stderr, "idnode import: line %" PRIu64 ": %s\n", im.lines,
			        hdl_strerror(ret));
			rc = IDNODE_EXIT_IO;
			goto done;
		}
		if (im.cur->nrecs == im.batch_max || im.cur->data.len > (128u << 20)) {
			if (flush_batch(&im) != HDL_EOK) {
				rc = IDNODE_EXIT_IO;
				goto done;
			}
		}
		if ((im.lines & 1023) == 0)
			progress(&im, false);
	}
	if (finish_writer(&im) != HDL_EOK) {
		rc = IDNODE_EXIT_IO;
		goto done;
	}
	{
		/* the last transaction: homed prefixes, and the marker cleared */
		store_batch_t *b = NULL;
		ret = store_batch_begin(im.store, &b);
		for (int i = 0; ret == HDL_EOK && i < nhomes; i++) {
			ret = store_batch_home_src(b, hdl_slice_str(homes[i]), true,
			                           STORE_HOME_IMPORT);
			if (ret != HDL_EOK)
				fprintf(stderr, "idnode import: --home %s: %s\n", homes[i],
				        store_strerror(im.store, ret));
		}
		for (size_t i = 0; ret == HDL_EOK && i < im.nprefixes; i++)
			ret = store_batch_home_src(b, hdl_slice_str(im.prefixes[i]), true,
			                           STORE_HOME_IMPORT);
		if (ret == HDL_EOK)
			ret = mark_end(&im, b, prev_mark, prev_mark_len);
		if (ret == HDL_EOK)
			ret = store_batch_commit(b);
		else if (b)
			store_batch_abort(b);
		if (ret != HDL_EOK) {
			if (ret != HDL_ENAME)
				fprintf(stderr, "idnode import: %s\n",
				        store_strerror(im.store, ret));
			rc = ret == HDL_ENAME ? IDNODE_EXIT_USAGE : IDNODE_EXIT_IO;
			goto done;
		}
	}
	if ((ret = store_sync(im.store)) != HDL_EOK) {
		fprintf(stderr, "idnode import: sync: %s\n", store_strerror(im.store, ret));
		rc = IDNODE_EXIT_IO;
		goto done;
	}
	progress(&im, true);
	double el = now_s() - im.t0;
	if (im.rejected > IMPORT_REJECT_LIST)
		fprintf(stderr, "... %" PRIu64 " more rejected lines not listed\n",
		        im.rejected - IMPORT_REJECT_LIST);
	if (im.dups > IMPORT_REJECT_LIST)
		fprintf(stderr, "... %" PRIu64 " more repeated handles not listed\n",
		        im.dups - IMPORT_REJECT_LIST);
	fprintf(stderr,
	        "import: %" PRIu64 " records imported, %" PRIu64 " rejected, %" PRIu64
	        " duplicate%s (the last line wins), %.2f s, %.0f records/s\n",
	        im.imported, im.rejected, im.dups, im.dups == 1 ? "" : "s", el,
	        el > 0 ? (double)im.imported / el : 0.0);
	if (im.nprefixes + (size_t)nhomes > 0)
		fprintf(stderr, "import: %zu prefix(es) homed (source import)\n",
		        im.nprefixes + (size_t)nhomes);
	idnode_warn_unhomed(im.store, "idnode import", db);
	if (im.rejected)
		rc = IDNODE_EXIT_DATA;
done:
	if (im.writer_started) {
		/* error path: let the writer finish what it holds, then stop it */
		im.cur->nrecs = 0;
		(void)finish_writer(&im);
	}
	progress(&im, true);
	store_reader_free(im.tplr);
	tpl_cache_free(im.tpl);
	store_close(im.store);
	hdl_arena_free(&arena);
	for (int i = 0; i < 2; i++) {
		free(im.bufs[i].recs);
		free(im.bufs[i].data.p);
	}
	for (size_t i = 0; i < im.nprefixes; i++)
		free(im.prefixes[i]);
	free(im.prefixes);
	free(im.home_slots);
	idnode_seen_free(&im.seen);
	free(prev_mark);
	free(source);
	free(rd.buf);
	import_reader = NULL;
	pthread_cond_destroy(&im.cv);
	pthread_mutex_destroy(&im.mu);
	if (fd > 0)
		close(fd);
	return rc;
usage:
	import_usage(stderr);
	return IDNODE_EXIT_USAGE;
}

/* ---- export ------------------------------------------------------------------------------- */

typedef struct export_ctx {
	FILE *out;
	hdl_arena_t arena;
	uint64_t n;
	uint64_t bad;
	int err;
} export_ctx_t;

static int export_one(void *vctx, hdl_slice_t key, hdl_slice_t vals)
{
	export_ctx_t *x = vctx;
	hdl_value_t *v = NULL;
	uint32_t n = 0;
	int ret = hdl_values_decode(vals.p, vals.len, &x->arena, &v, &n);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode export: %.*s: stored values: %s\n", (int)key.len,
		        (const char *)key.p, hdl_strerror(ret));
		x->bad++;
		hdl_arena_reset(&x->arena);
		return 0;
	}
	json_t *o = json_object();
	json_t *arr = hdl_json_from_values(v, n);
	json_t *h = json_stringn((const char *)key.p, key.len);
	if (o == NULL || arr == NULL || h == NULL || json_object_set_new(o, "handle", h) != 0 ||
	    json_object_set_new(o, "values", arr) != 0) {
		json_decref(o);
		x->err = HDL_ENOMEM;
		hdl_arena_reset(&x->arena);
		return 1;
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	hdl_arena_reset(&x->arena);
	if (s == NULL) {
		x->err = HDL_ENOMEM;
		return 1;
	}
	if (fputs(s, x->out) == EOF || fputc('\n', x->out) == EOF) {
		free(s);
		x->err = HDL_EIO;
		return 1;
	}
	free(s);
	x->n++;
	return 0;
}

typedef struct export_home {
	export_ctx_t *x;
	hdl_slice_t only; /**< --prefix, or empty for all */
} export_home_t;

/** One {"home":"PREFIX"} line per homed prefix (under --prefix only that one). */
static int export_home(void *vctx, hdl_slice_t prefix, const store_home_rec_t *rec)
{
	export_home_t *h = vctx;
	if (h->only.len && !hdl_slice_eq_nocase(h->only, prefix))
		return 0;
	json_t *o = json_object();
	json_t *p = json_stringn((const char *)prefix.p, prefix.len);
	char *line = NULL;
	if (o == NULL || p == NULL || json_object_set_new(o, "home", p) != 0 ||
	    (line = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		h->x->err = HDL_ENOMEM;
		return 1;
	}
	json_decref(o);
	if (fputs(line, h->x->out) == EOF || fputc('\n', h->x->out) == EOF)
		h->x->err = HDL_EIO;
	free(line);
	return h->x->err != HDL_EOK;
}

static void export_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: idnode export --db DIR [--prefix PREFIX]\n"
	    "  Writes every handle of the store (or those under PREFIX/) to stdout as JSON Lines\n"
	    "  {\"handle\":...,\"values\":[...]}, in storage-key order. Handle names are the\n"
	    "  normalized storage keys (prefix upper-cased, suffix too unless case-sensitive).\n"
	    "  Each homed prefix (or PREFIX, when homed) comes first as {\"home\":\"PREFIX\"},\n"
	    "  which idnode import homes again.\n");
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, NULL, 'd'},
		{"prefix", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *db = NULL, *prefix = "";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:p:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'p':
			prefix = optarg;
			break;
		case 'h':
			export_usage(stdout);
			return IDNODE_EXIT_OK;
		default:
			export_usage(stderr);
			return IDNODE_EXIT_USAGE;
		}
	}
	if (db == NULL || optind != argc) {
		export_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	struct stat st;
	if (stat(db, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "idnode export: %s: no such store directory\n", db);
		return IDNODE_EXIT_IO;
	}
	store_t *s = NULL;
	store_reader_t *r = NULL;
	store_opts_t so = {.path = db, .read_only = true};
	int ret = store_open(&so, &s);
	if (ret != HDL_EOK) {
		fprintf(stderr, "idnode export: cannot open store %s: %s\n", db, hdl_strerror(ret));
		return IDNODE_EXIT_IO;
	}
	int rc = IDNODE_EXIT_OK;
	static uint8_t arena_buf[65536];
	export_ctx_t x = {.out = stdout};
	hdl_arena_init(&x.arena, arena_buf, sizeof(arena_buf), 64u << 20);
	if ((ret = store_reader_new(s, &r)) != HDL_EOK || (ret = store_reader_begin(r)) != HDL_EOK) {
		fprintf(stderr, "idnode export: %s\n", hdl_strerror(ret));
		rc = IDNODE_EXIT_IO;
		goto out;
	}
	export_home_t eh = {&x, hdl_slice_str(prefix)};
	ret = store_prefixes_foreach(r, export_home, &eh);
	if (ret == HDL_EOK && x.err == HDL_EOK)
		ret = store_foreach(r, hdl_slice_str(prefix), export_one, &x);
	store_reader_end(r);
	if (ret == HDL_ENAME) {
		fprintf(stderr, "idnode export: invalid prefix '%s'\n", prefix);
		rc = IDNODE_EXIT_USAGE;
	} else if (ret != HDL_EOK || x.err != HDL_EOK) {
		fprintf(stderr, "idnode export: %s\n", hdl_strerror(ret != HDL_EOK ? ret : x.err));
		rc = IDNODE_EXIT_IO;
	} else if (fflush(stdout) != 0) {
		fprintf(stderr, "idnode export: write error\n");
		rc = IDNODE_EXIT_IO;
	} else if (x.bad) {
		rc = IDNODE_EXIT_DATA;
	}
out:
	store_reader_free(r);
	store_close(s);
	hdl_arena_free(&x.arena);
	return rc;
}
