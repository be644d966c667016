/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The query log (qlog.h): sampling, a per-worker line rate, a file re-opened on reload
 *        and rotated at a size, or structured lines through the node log.
 *
 * The file is written through one descriptor number that stays the same for the life of the
 * process: a reload or a rotation opens the new file and dup2()s it over that number, so a
 * worker writing at that moment writes to the old file or the new one, never to a closed or
 * reused descriptor.
 */
#define _GNU_SOURCE
#include "node/server/qlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/server/dispatch.h"
#include "node/server/reload.h"
#include "node/server/writer.h"

#define QLOG_HANDLE_SHOWN 255u /**< handle bytes shown at most */
#define QLOG_LINE_MAX     1536u

_Atomic int qlog_mode_ = QLOG_OFF;

static _Atomic uint32_t g_sample = 1;
static _Atomic uint32_t g_rate = 1000;
static _Atomic uint64_t g_max_size = 64u << 20;
static _Atomic uint64_t g_bytes; /**< bytes in the current file */
static _Atomic int g_fd = -1;    /**< the stable descriptor number (-1: never opened) */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /**< g_path, rotation, commits */
static char g_path[PATH_MAX];
static _Atomic uint64_t g_lines, g_dropped, g_rotations, g_errors;

static _Thread_local uint64_t t_seen;    /**< requests seen (sampling) */
static _Thread_local time_t t_sec;       /**< second of t_lines */
static _Thread_local uint32_t t_lines;   /**< lines this second */
static _Thread_local uint64_t t_dropped; /**< lines over the rate not reported yet */

/** What a configuration asks for; prepared by the reload hook. */
typedef struct qlog_cfg {
	int mode;
	uint32_t sample, rate;
	uint64_t max_size;
	int fd; /**< the opened file (QLOG_FILE), -1 otherwise */
	char path[PATH_MAX];
} qlog_cfg_t;

int qlog_check(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "off") == 0 || strcmp(v, "log") == 0)
		return HDL_EOK;
	if (v[0] == '/' && strlen(v) + 3 < PATH_MAX)
		return HDL_EOK;
	snprintf(err, errlen, "'%s' is not off, log or an absolute file path", v);
	return HDL_ECONF;
}

static int open_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		snprintf(err, errlen, "query_log %s: cannot open: %s", path, strerror(errno));
	return fd;
}

static int cfg_prepare(const conf_t *c, qlog_cfg_t *q, char *err, size_t errlen)
{
	memset(q, 0, sizeof(*q));
	q->fd = -1;
	q->sample = c->query_log_sample ? c->query_log_sample : 1;
	q->rate = c->query_log_rate;
	q->max_size = c->query_log_max_size;
	const char *v = c->query_log ? c->query_log : "off";
	if (strcmp(v, "off") == 0) {
		q->mode = QLOG_OFF;
	} else if (strcmp(v, "log") == 0) {
		q->mode = QLOG_LOG;
	} else {
		q->mode = QLOG_FILE;
		snprintf(q->path, sizeof(q->path), "%s", v);
		if ((q->fd = open_file(v, err, errlen)) < 0)
			return HDL_EIO;
	}
	return HDL_EOK;
}

/* Main thread (start, reload): the settings of q take effect; q->fd is consumed. */
static void cfg_commit(qlog_cfg_t *q)
{
	pthread_mutex_lock(&g_mu);
	atomic_store_explicit(&g_sample, q->sample, memory_order_relaxed);
	atomic_store_explicit(&g_rate, q->rate, memory_order_relaxed);
	atomic_store_explicit(&g_max_size, q->max_size, memory_order_relaxed);
	if (q->mode == QLOG_FILE) {
		int fd = atomic_load_explicit(&g_fd, memory_order_relaxed);
		if (fd < 0) {
			atomic_store_explicit(&g_fd, q->fd, memory_order_release);
		} else {
			/* the same number writes to the new file now (a racing write: either one)
			 */
			if (dup2(q->fd, fd) < 0)
				log_err("query log: dup2: %s", strerror(errno));
			close(q->fd);
		}
		q->fd = -1;
		struct stat st;
		fd = atomic_load_explicit(&g_fd, memory_order_relaxed);
		atomic_store_explicit(&g_bytes, fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0,
		                      memory_order_relaxed);
		memcpy(g_path, q->path, sizeof(g_path));
	}
	pthread_mutex_unlock(&g_mu);
	int was = atomic_exchange_explicit(&qlog_mode_, q->mode, memory_order_release);
	if (was != q->mode || q->mode != QLOG_OFF)
		log_notice("query log: %s%s (one in %u, at most %u lines/s per worker)",
		           q->mode == QLOG_OFF   ? "off"
		           : q->mode == QLOG_LOG ? "to the log"
		                                 : "to ",
		           q->mode == QLOG_FILE ? q->path : "", q->sample, q->rate);
}

int qlog_start(const conf_t *c, char *err, size_t errlen)
{
	qlog_cfg_t q;
	int ret = cfg_prepare(c, &q, err, errlen);
	if (ret != HDL_EOK)
		return ret;
	if (q.mode != QLOG_OFF)
		cfg_commit(&q);
	else
		atomic_store_explicit(&qlog_mode_, QLOG_OFF, memory_order_release);
	return HDL_EOK;
}

void qlog_stop(void)
{
	atomic_store_explicit(&qlog_mode_, QLOG_OFF, memory_order_release);
	pthread_mutex_lock(&g_mu);
	int fd = atomic_exchange_explicit(&g_fd, -1, memory_order_acq_rel);
	if (fd >= 0)
		close(fd);
	g_path[0] = '\0';
	pthread_mutex_unlock(&g_mu);
}

/* ---- reload ------------------------------------------------------------------------------------
 */

static int hook_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged, char *err,
                        size_t errlen)
{
	qlog_cfg_t *q = malloc(sizeof(*q));
	if (!q)
		return HDL_ENOMEM;
	int ret = cfg_prepare(nc, q, err, errlen);
	if (ret != HDL_EOK) {
		free(q);
		return ret;
	}
	*staged = q;
	return HDL_EOK;
}

static void hook_commit(void *arg, const conf_t *nc, void *staged)
{
	cfg_commit(staged);
	free(staged);
}

static void hook_discard(void *arg, void *staged)
{
	qlog_cfg_t *q = staged;
	if (q->fd >= 0)
		close(q->fd);
	free(q);
}

int qlog_register_reload(reload_t *r)
{
	const reload_hook_t h = {
	    .name = "query log",
	    .order = RELOAD_ORDER_DEFAULT,
	    .prepare = hook_prepare,
	    .commit = hook_commit,
	    .discard = hook_discard,
	};
	return reload_register(r, &h);
}

/* ---- one request --------------------------------------------------------------------------------
 */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Opcodes whose request body starts with a handle (RFC 3652 section 3.5 onwards). */
static bool body_has_handle(uint32_t op)
{
	return op == HDL_OC_RESOLUTION || (op >= HDL_OC_CREATE_HANDLE && op <= HDL_OC_LIST_NA) ||
	       op == HDL_OC_HOME_NA || op == HDL_OC_UNHOME_NA;
}

/* The handle as a quoted, escaped string (or "-"). */
/* \p n bytes of \p p quoted, at most QLOG_HANDLE_SHOWN of them, escaped as the header says. */
static void quote_text(const uint8_t *p, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	if (n > QLOG_HANDLE_SHOWN)
		n = QLOG_HANDLE_SHOWN;
	out[o++] = '"';
	for (size_t i = 0; i < n && o + 6 < cap; i++) {
		unsigned char ch = p[i];
		if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o++] = '"';
	out[o] = '\0';
}

static void handle_text(const uint8_t *req, size_t len, uint32_t op, char *out, size_t cap)
{
	snprintf(out, cap, "-");
	if (!body_has_handle(op) || len < HDL_ENVELOPE_LEN + 24 + 4)
		return;
	const uint8_t *b = req + HDL_ENVELOPE_LEN + 24;
	uint32_t hl = be32(b);
	size_t avail = len - (HDL_ENVELOPE_LEN + 24 + 4);
	if (hl > avail)
		return;
	quote_text(b + 4, hl, out, cap);
}

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char a[INET6_ADDRSTRLEN];
	snprintf(out, cap, "-");
	if (!ss)
		return;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		if (inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a)))
			snprintf(out, cap, "%s:%u", a, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		if (inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a)))
			snprintf(out, cap, "[%s]:%u", a, ntohs(s6->sin6_port));
	}
}

static const char *transport_name(int t)
{
	switch (t) {
	case WR_T_UDP: return "udp";
	case WR_T_TCP: return "tcp";
	case WR_T_HTTP: return "http";
	case WR_T_HTTPS: return "https";
	case WR_T_TLS: return "tls";
	default: return "-";
	}
}

/* Sampling and the per-worker rate: may this request be logged? */
static bool admit(void)
{
	uint32_t sample = atomic_load_explicit(&g_sample, memory_order_relaxed);
	if (sample > 1 && (t_seen++ % sample) != 0)
		return false;
	time_t now = time(NULL);
	if (now != t_sec) {
		if (t_dropped) {
			log_notice("query log: %llu lines over query_log_rate dropped",
			           (unsigned long long)t_dropped);
			t_dropped = 0;
		}
		t_sec = now;
		t_lines = 0;
	}
	if (t_lines >= atomic_load_explicit(&g_rate, memory_order_relaxed)) {
		t_dropped++;
		atomic_fetch_add_explicit(&g_dropped, 1, memory_order_relaxed);
		return false;
	}
	t_lines++;
	return true;
}

/* A worker found the file over query_log_max_size: FILE -> FILE.1, a new FILE. */
static void rotate(void)
{
	if (pthread_mutex_trylock(&g_mu) != 0)
		return; /* another thread rotates */
	int fd = atomic_load_explicit(&g_fd, memory_order_relaxed);
	uint64_t max = atomic_load_explicit(&g_max_size, memory_order_relaxed);
	if (fd >= 0 && g_path[0] && atomic_load_explicit(&g_bytes, memory_order_relaxed) >= max) {
		char old[PATH_MAX + 3], err[PATH_MAX + 64];
		snprintf(old, sizeof(old), "%s.1", g_path);
		int nfd = -1;
		if (rename(g_path, old) != 0 && errno != ENOENT)
			log_err("query log: cannot rename %s: %s", g_path, strerror(errno));
		else if ((nfd = open_file(g_path, err, sizeof(err))) < 0)
			log_err("%s", err);
		if (nfd >= 0) {
			if (dup2(nfd, fd) < 0)
				log_err("query log: dup2: %s", strerror(errno));
			close(nfd);
			atomic_fetch_add_explicit(&g_rotations, 1, memory_order_relaxed);
		}
		/* on failure the next try is another max_size bytes away (not on every line) */
		atomic_store_explicit(&g_bytes, 0, memory_order_relaxed);
	}
	pthread_mutex_unlock(&g_mu);
}

/* One line: through the log (mode QLOG_LOG) or appended to the file. */
static void emit(int mode, const char *tr, const char *peer, const char *op, const char *rc,
                 const char *handle, size_t in, size_t out)
{
	if (mode == QLOG_LOG) {
		char f_tr[32], f_peer[96], f_op[32], f_rc[48], f_h[QLOG_HANDLE_SHOWN * 4 + 32];
		snprintf(f_tr, sizeof(f_tr), "IDNODE_QUERY_TRANSPORT=%s", tr);
		snprintf(f_peer, sizeof(f_peer), "IDNODE_QUERY_PEER=%s", peer);
		snprintf(f_op, sizeof(f_op), "IDNODE_QUERY_OPCODE=%s", op);
		snprintf(f_rc, sizeof(f_rc), "IDNODE_QUERY_RCODE=%s", rc);
		snprintf(f_h, sizeof(f_h), "IDNODE_QUERY_HANDLE=%s", handle);
		const char *const fields[] = {f_tr, f_peer, f_op, f_rc, f_h, NULL};
		log_fields(LOG_LVL_INFO, fields, "query: %s %s op=%s rc=%s %s in=%zu out=%zu", tr,
		           peer, op, rc, handle, in, out);
		atomic_fetch_add_explicit(&g_lines, 1, memory_order_relaxed);
		return;
	}
	int fd = atomic_load_explicit(&g_fd, memory_order_acquire);
	if (fd < 0)
		return;
	char line[QLOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n =
	    snprintf(line, sizeof(line),
	             "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s op=%s rc=%s %s in=%zu out=%zu\n",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             ts.tv_nsec / 1000000L, tr, peer, op, rc, handle, in, out);
	if (n <= 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	line[len - 1] = '\n';
	ssize_t w = write(fd, line, len); /* O_APPEND: one line at a time, whole */
	if (w != (ssize_t)len) {
		atomic_fetch_add_explicit(&g_errors, 1, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&g_lines, 1, memory_order_relaxed);
	uint64_t total = atomic_fetch_add_explicit(&g_bytes, len, memory_order_relaxed) + len;
	if (total >= atomic_load_explicit(&g_max_size, memory_order_relaxed))
		rotate();
}

/* Is a line wanted now (mode on, the log level lets it through, sampling and rate)? */
static int wanted(void)
{
	int mode = atomic_load_explicit(&qlog_mode_, memory_order_acquire);
	if (mode == QLOG_OFF || (mode == QLOG_LOG && !log_enabled(LOG_LVL_INFO)) || !admit())
		return QLOG_OFF;
	return mode;
}

void qlog_message(const dispatch_origin_t *o, const uint8_t *req, size_t reqlen, const uint8_t *out,
                  size_t outlen, bool waiting)
{
	int mode = wanted();
	if (mode == QLOG_OFF)
		return;
	uint32_t op = reqlen >= HDL_ENVELOPE_LEN + 4 ? be32(req + HDL_ENVELOPE_LEN) : 0;
	char rc[16], ops[16], handle[QLOG_HANDLE_SHOWN * 4 + 3], peer[INET6_ADDRSTRLEN + 8];
	if (waiting)
		snprintf(rc, sizeof(rc), "wait");
	else if (outlen >= HDL_ENVELOPE_LEN + 8)
		snprintf(rc, sizeof(rc), "%u", be32(out + HDL_ENVELOPE_LEN + 4));
	else
		snprintf(rc, sizeof(rc), "drop");
	snprintf(ops, sizeof(ops), "%u", op);
	handle_text(req, reqlen, op, handle, sizeof(handle));
	peer_text(o ? o->peer : NULL, peer, sizeof(peer));
	emit(mode, transport_name(o ? o->transport : 0), peer, ops, rc, handle, reqlen, outlen);
}

void qlog_http(const struct sockaddr_storage *peer, bool tls, const char *method, size_t mlen,
               const char *target, size_t tlen, int status, size_t in, size_t out)
{
	int mode = wanted();
	if (mode == QLOG_OFF)
		return;
	char rc[16], ops[16], what[QLOG_HANDLE_SHOWN * 4 + 3], ptxt[INET6_ADDRSTRLEN + 8];
	if (status > 0)
		snprintf(rc, sizeof(rc), "%d", status);
	else
		snprintf(rc, sizeof(rc), "wait");
	if (method && mlen)
		snprintf(ops, sizeof(ops), "%.*s", (int)(mlen < 15 ? mlen : 15), method);
	else
		snprintf(ops, sizeof(ops), "-");
	quote_text((const uint8_t *)target, tlen, what, sizeof(what));
	peer_text(peer, ptxt, sizeof(ptxt));
	emit(mode, transport_name(tls ? WR_T_HTTPS : WR_T_HTTP), ptxt, ops, rc, what, in, out);
}

void qlog_get_stats(qlog_stats_t *st)
{
	st->lines = atomic_load_explicit(&g_lines, memory_order_relaxed);
	st->dropped = atomic_load_explicit(&g_dropped, memory_order_relaxed);
	st->rotations = atomic_load_explicit(&g_rotations, memory_order_relaxed);
	st->errors = atomic_load_explicit(&g_errors, memory_order_relaxed);
}
