/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The query log (node/server/qlog.c) into a file in a temporary directory: the line
 *        format (transport, peer, opcode, response code, the handle escaped, sizes), answers
 *        that are dropped or wait, requests too short to name a handle, sampling, the per-worker
 *        line rate, rotation at query_log_max_size (the disk it takes stays bounded), re-opening
 *        on reload after a rename, a reload to an unwritable file refused with the old file kept,
 *        switching off; and the server admin sets a reload swaps (srvadmin.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/conf/conf.h"
#include "node/server/dispatch.h"
#include "node/server/qlog.h"
#include "node/server/reload.h"
#include "node/server/srvadmin.h"
#include "node/server/writer.h"

static char dir[64];
static char path[128];

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A message: envelope, header (opcode, rcode), body = the handle as U32 + bytes. */
static size_t message(uint8_t *buf, uint32_t op, uint32_t rc, const char *handle, size_t hl)
{
	memset(buf, 0, HDL_ENVELOPE_LEN + 24);
	buf[0] = 2;
	buf[1] = 10;
	put32(buf + HDL_ENVELOPE_LEN, op);
	put32(buf + HDL_ENVELOPE_LEN + 4, rc);
	put32(buf + HDL_ENVELOPE_LEN + 20, (uint32_t)(4 + hl));
	put32(buf + HDL_ENVELOPE_LEN + 24, (uint32_t)hl);
	memcpy(buf + HDL_ENVELOPE_LEN + 28, handle, hl);
	size_t len = HDL_ENVELOPE_LEN + 28 + hl;
	put32(buf + 16, (uint32_t)(len - HDL_ENVELOPE_LEN));
	return len;
}

static size_t file_text(const char *p, char *out, size_t cap)
{
	FILE *f = fopen(p, "r");
	if (!f) {
		out[0] = '\0';
		return 0;
	}
	size_t n = fread(out, 1, cap - 1, f);
	fclose(f);
	out[n] = '\0';
	return n;
}

static unsigned lines_of(const char *p)
{
	static char buf[1 << 20];
	file_text(p, buf, sizeof(buf));
	unsigned n = 0;
	for (char *c = buf; *c; c++)
		n += *c == '\n';
	return n;
}

static off_t size_of(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

static struct sockaddr_storage peer;
static dispatch_origin_t origin;

static void one_query(const char *handle)
{
	uint8_t req[512], ans[512];
	size_t rl = message(req, HDL_OC_RESOLUTION, 0, handle, strlen(handle));
	size_t al = message(ans, HDL_OC_RESOLUTION, HDL_RC_SUCCESS, handle, strlen(handle));
	qlog_message(&origin, req, rl, ans, al, false);
}

/* conf with query_log = path (or \p mode), then the extra key/value pairs */
static void conf_with(conf_t *c, const char *mode, ...)
{
	char err[256];
	assert_int_equal(conf_init(c), HDL_EOK);
	assert_int_equal(conf_set(c, "query_log", mode, err, sizeof(err)), HDL_EOK);
	/* the rate is per second and per thread: the tests run in the same second */
	assert_int_equal(conf_set(c, "query_log_rate", "1000000", err, sizeof(err)), HDL_EOK);
	va_list ap;
	va_start(ap, mode);
	for (const char *k; (k = va_arg(ap, const char *)) != NULL;) {
		const char *v = va_arg(ap, const char *);
		if (conf_set(c, k, v, err, sizeof(err)) != HDL_EOK)
			fail_msg("%s = %s: %s", k, v, err);
	}
	va_end(ap);
}

/* The query log to path, and a reload list with its hook. */
static reload_t *start_with_reload(conf_t *c)
{
	reload_t *r;
	char err[256];
	assert_int_equal(reload_new(1, &r), HDL_EOK);
	assert_int_equal(qlog_register_reload(r), HDL_EOK);
	conf_with(c, path, NULL);
	assert_int_equal(qlog_start(c, err, sizeof(err)), HDL_EOK);
	return r;
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/idnode-qlog-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/q.log", dir);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&peer;
	memset(&peer, 0, sizeof(peer));
	s4->sin_family = AF_INET;
	s4->sin_port = htons(5555);
	s4->sin_addr.s_addr = htonl(0x7f000001);
	origin = (dispatch_origin_t){.transport = WR_T_UDP, .peer = &peer, .peer_len = sizeof(*s4)};
	return 0;
}

static int teardown(void **state)
{
	qlog_stop();
	char p[256];
	const char *names[] = {"q.log", "q.log.1", "q.moved"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

static void test_check(void **state)
{
	char err[128];
	assert_int_equal(qlog_check("off", err, sizeof(err)), HDL_EOK);
	assert_int_equal(qlog_check("log", err, sizeof(err)), HDL_EOK);
	assert_int_equal(qlog_check("/var/log/idnode/q.log", err, sizeof(err)), HDL_EOK);
	assert_int_equal(qlog_check("q.log", err, sizeof(err)), HDL_ECONF);
	assert_non_null(strstr(err, "absolute"));
	assert_int_equal(qlog_check("", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(qlog_check("on", err, sizeof(err)), HDL_ECONF);
	/* the schema runs it */
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_int_equal(conf_set(&c, "query_log", "relative.log", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "log_target", "syslog", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "log_target", "journal", err, sizeof(err)), HDL_EOK);
	assert_int_equal(conf_set(&c, "query_log_max_size", "1k", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_set(&c, "query_log_sample", "0", err, sizeof(err)), HDL_ECONF);
	conf_free(&c);
}

static void test_format(void **state)
{
	conf_t c;
	char err[256], text[4096];
	conf_with(&c, path, NULL);
	assert_false(qlog_on());
	assert_int_equal(qlog_start(&c, err, sizeof(err)), HDL_EOK);
	assert_true(qlog_on());

	one_query("88.100.1/PUMP-1");
	/* a quote, a backslash, a control byte and a non-ASCII byte are escaped */
	uint8_t req[512];
	static const char odd[] = "88.100.1/a\"b\\c\x01\xc3\xa9";
	size_t rl = message(req, HDL_OC_RESOLUTION, 0, odd, sizeof(odd) - 1);
	qlog_message(&origin, req, rl, NULL, 0, false); /* dropped: no answer */
	origin.transport = WR_T_TCP;
	rl = message(req, HDL_OC_CREATE_HANDLE, 0, "88.100.1/new", 12);
	qlog_message(&origin, req, rl, NULL, 0, true); /* waiting for the writer */
	/* too short for a header, and a body whose handle length runs past the end */
	qlog_message(NULL, (const uint8_t *)"\x02\x0a", 2, NULL, 0, false);
	rl = message(req, HDL_OC_RESOLUTION, 0, "88.100.1/x", 10);
	put32(req + HDL_ENVELOPE_LEN + 24, 100000);
	qlog_message(&origin, req, rl, NULL, 0, false);
	/* GET_SITEINFO has no handle */
	rl = message(req, HDL_OC_GET_SITEINFO, 0, "", 0);
	qlog_message(&origin, req, rl, NULL, 0, false);
	origin.transport = WR_T_UDP;
	/* an HTTP request (REST): method, status, the target quoted; 0 = waiting */
	static const char tgt[] = "/api/handles/88.100.1/X?type=URL";
	qlog_http(origin.peer, true, "GET", 3, tgt, sizeof(tgt) - 1, 200, 0, 512);
	qlog_http(NULL, false, "PUT", 3, "/api/handles/88.100.1/\"", 23, 0, 77, 0);

	file_text(path, text, sizeof(text));
	char *l1 = text, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
	char *l4 = strchr(l3, '\n') + 1, *l5 = strchr(l4, '\n') + 1, *l6 = strchr(l5, '\n') + 1;
	/* 2025-05-20T10:00:00.123Z udp 127.0.0.1:5555 op=1 rc=1 "88.100.1/PUMP-1" in=.. out=.. */
	assert_true(l1[4] == '-' && l1[10] == 'T' && l1[23] == 'Z');
	assert_true(strncmp(l1 + 24,
	                    " udp 127.0.0.1:5555 op=1 rc=1 \"88.100.1/PUMP-1\" in=63 out=63\n",
	                    60) == 0);
	assert_non_null(strstr(l2, " rc=drop \"88.100.1/a\\x22b\\x5cc\\x01\\xc3\\xa9\" "));
	assert_non_null(strstr(l3, " tcp 127.0.0.1:5555 op=100 rc=wait \"88.100.1/new\" "));
	assert_non_null(strstr(l4, " - - op=0 rc=drop - in=2 out=0\n"));
	assert_non_null(strstr(l5, " op=1 rc=drop - "));
	assert_non_null(strstr(l6, " op=2 rc=drop - "));
	char *l7 = strchr(l6, '\n') + 1, *l8 = strchr(l7, '\n') + 1;
	assert_non_null(strstr(l7, " https 127.0.0.1:5555 op=GET rc=200 "
	                           "\"/api/handles/88.100.1/X?type=URL\" in=0 out=512\n"));
	assert_non_null(strstr(l8, " http - op=PUT rc=wait \"/api/handles/88.100.1/\\x22\" in=77 "));
	assert_int_equal(lines_of(path), 8);
	qlog_stats_t st;
	qlog_get_stats(&st);
	assert_true(st.lines >= 6);
	conf_free(&c);
}

/* Sampling, then the rate, through the reload hook. */
static void test_sample_rate(void **state)
{
	conf_t c, n;
	reload_result_t res;
	reload_t *r = start_with_reload(&c);

	conf_with(&n, path, "query_log_sample", "3", NULL);
	assert_int_equal(reload_apply(r, &c, &c, &n, &res), HDL_EOK);
	unsigned before = lines_of(path);
	for (int i = 0; i < 30; i++)
		one_query("88.100.1/s");
	assert_int_equal(lines_of(path) - before, 10);
	conf_free(&n);

	qlog_stats_t st0, st1;
	qlog_get_stats(&st0);
	conf_with(&n, path, "query_log_rate", "5", NULL);
	assert_int_equal(reload_apply(r, &c, &c, &n, &res), HDL_EOK);
	before = lines_of(path);
	/* start on a fresh second (this thread logged lines in this one already) */
	for (time_t t0 = time(NULL); time(NULL) == t0;)
		usleep(1000);
	for (int i = 0; i < 40; i++)
		one_query("88.100.1/r");
	unsigned got = lines_of(path) - before;
	qlog_get_stats(&st1);
	/* 5 a second: the 40 calls may straddle a second boundary, never two */
	assert_true(got >= 5 && got <= 10);
	assert_int_equal(st1.dropped - st0.dropped, 40 - got);
	conf_free(&n);
	conf_free(&c);
	reload_free(r);
}

static void test_rotation(void **state)
{
	conf_t c;
	char err[256];
	conf_with(&c, path, "query_log_max_size", "64k", "query_log_rate", "1000000", NULL);
	assert_int_equal(qlog_start(&c, err, sizeof(err)), HDL_EOK);
	char p1[160];
	snprintf(p1, sizeof(p1), "%s.1", path);
	qlog_stats_t st0, st1;
	qlog_get_stats(&st0);
	char h[80];
	memset(h, 'x', sizeof(h) - 1);
	h[sizeof(h) - 1] = '\0';
	memcpy(h, "88.100.1/", 9);
	for (int i = 0; i < 3000; i++) /* ~170 bytes a line: ~500 KB in all */
		one_query(h);
	qlog_get_stats(&st1);
	assert_true(st1.rotations - st0.rotations >= 5);
	assert_true(size_of(p1) > 0);
	/* each file stays under the limit plus one line */
	assert_true(size_of(path) <= 64 * 1024 + 200);
	assert_true(size_of(p1) <= 64 * 1024 + 200);
	assert_int_equal(st1.errors, st0.errors);
	conf_free(&c);
}

/* A reload re-opens the file (rename + reload = rotation by logrotate); a reload to a file that
 * cannot be opened is refused and the old one kept; off stops logging. */
static void test_reopen(void **state)
{
	conf_t c, n;
	char moved[160], bad[160];
	reload_result_t res;
	reload_t *r = start_with_reload(&c);
	one_query("88.100.1/before");
	snprintf(moved, sizeof(moved), "%s/q.moved", dir);
	assert_int_equal(rename(path, moved), 0);
	one_query("88.100.1/still-old"); /* the open file was renamed: lines follow it */
	assert_int_equal(reload_apply(r, &c, &c, &c, &res), HDL_EOK);
	one_query("88.100.1/after");
	assert_int_equal(lines_of(moved), 2);
	assert_int_equal(lines_of(path), 1);

	snprintf(bad, sizeof(bad), "%s/no-such-dir/q.log", dir);
	conf_with(&n, bad, NULL);
	assert_int_equal(reload_apply(r, &c, &c, &n, &res), HDL_EIO);
	assert_non_null(strstr(res.error, "query log: query_log"));
	assert_non_null(strstr(res.error, "cannot open"));
	one_query("88.100.1/kept");
	assert_int_equal(lines_of(path), 2);
	conf_free(&n);

	conf_with(&n, "off", NULL);
	assert_int_equal(reload_apply(r, &c, &c, &n, &res), HDL_EOK);
	assert_false(qlog_on());
	one_query("88.100.1/off");
	assert_int_equal(lines_of(path), 2);
	conf_free(&n);
	conf_free(&c);
	reload_free(r);
}

static void test_srvadmin(void **state)
{
	srvadmin_set_t *s;
	char err[128];
	const char *ok[] = {"300:0.NA/88.100", "0:88.100.1/ADMINS"};
	assert_int_equal(srvadmin_set_new(ok, 2, &s, err, sizeof(err)), HDL_EOK);
	assert_int_equal(s->n, 2);
	assert_int_equal(s->refs[0].index, 300);
	assert_int_equal(s->refs[0].handle.len, 11);
	assert_memory_equal(s->refs[0].handle.p, "0.NA/88.100", 11);
	assert_int_equal(s->refs[1].index, 0);
	srvadmin_set_free(s);
	const char *bad[] = {"300:0.NA/88.100", "nocolon"};
	assert_int_equal(srvadmin_set_new(bad, 2, &s, err, sizeof(err)), HDL_EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "nocolon"));
	assert_int_equal(srvadmin_set_new(NULL, 0, &s, err, sizeof(err)), HDL_EOK);
	assert_int_equal(s->n, 0);
	srvadmin_set_free(s);
	srvadmin_set_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check),
	    cmocka_unit_test_setup_teardown(test_format, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sample_rate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
	    cmocka_unit_test(test_srvadmin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
