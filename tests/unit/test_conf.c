/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Configuration parser: defaults, every key type, errors as file:line: key: reason,
 *        list semantics, command-line overrides, restart-key detection, and the sample file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "node/common/log.h"
#include "node/conf/conf.h"

#ifndef HDL_SOURCE_DIR
#define HDL_SOURCE_DIR "."
#endif

static int load(conf_t *c, const char *text, char *err, size_t errlen)
{
	assert_int_equal(conf_init(c), HDL_EOK);
	int ret = conf_load_buf(c, "t.conf", text, strlen(text), err, errlen);
	return ret;
}

static void test_defaults(void **state)
{
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_int_equal(c.n_listen, 1);
	assert_string_equal(c.listen[0], "127.0.0.1:2641");
	assert_int_equal(c.n_http, 1);
	assert_string_equal(c.http[0], "127.0.0.1:8000");
	assert_int_equal(c.n_home, 0);
	assert_int_equal(c.workers, 0);
	assert_false(c.case_sensitive);
	assert_int_equal(c.map_size, 1ull << 30);
	assert_int_equal(c.max_message_len, 262144);
	assert_int_equal(c.max_values, 2048);
	assert_int_equal(c.tcp_idle_timeout_ms, 5000);
	assert_int_equal(c.tcp_frame_timeout_ms, 10000);
	assert_int_equal(c.tcp_buffer_max, 1u << 20);
	assert_int_equal(c.log_level, LOG_LVL_INFO);
	assert_int_equal(c.site_serial, 1);
	assert_string_equal(c.pidfile, "");
	char err[256];
	assert_int_equal(conf_validate(&c, err, sizeof(err)), HDL_EOK);
	conf_free(&c);
}

static void test_parse(void **state)
{
	conf_t c;
	char err[256] = "";
	const char *text = "# comment\n"
	                   "  listen = 127.0.0.1:2641   # trailing comment\n"
	                   "listen=[::1]:2641\n"
	                   "\n"
	                   "http = 0.0.0.0:8080\r\n"
	                   "db = \"/tmp/x # not a comment\"\n"
	                   "workers = 4\n"
	                   "home = 88.100.1\n"
	                   "home = 88.100.2\n"
	                   "case_sensitive = yes\n"
	                   "map_size = 2G\n"
	                   "max_message_len = 4096\n"
	                   "max_values = 10\n"
	                   "max_connections = 7\n"
	                   "tcp_idle_timeout_ms = 250\n"
	                   "tcp_frame_timeout_ms = 900\n"
	                   "tcp_buffer_max = 64k\n"
	                   "http_max_body = 2m\n"
	                   "log_level = debug\n"
	                   "site_serial = 9\n"
	                   "pidfile = /run/idnoded.pid";
	assert_int_equal(load(&c, text, err, sizeof(err)), HDL_EOK);
	assert_int_equal(c.n_listen, 2);
	assert_string_equal(c.listen[1], "[::1]:2641");
	assert_int_equal(c.n_http, 1);
	assert_string_equal(c.http[0], "0.0.0.0:8080");
	assert_string_equal(c.db, "/tmp/x # not a comment");
	assert_int_equal(c.workers, 4);
	assert_int_equal(c.n_home, 2);
	assert_string_equal(c.home[1], "88.100.2");
	assert_true(c.case_sensitive);
	assert_int_equal(c.map_size, 2ull << 30);
	assert_int_equal(c.max_message_len, 4096);
	assert_int_equal(c.max_values, 10);
	assert_int_equal(c.max_connections, 7);
	assert_int_equal(c.tcp_idle_timeout_ms, 250);
	assert_int_equal(c.tcp_frame_timeout_ms, 900);
	assert_int_equal(c.tcp_buffer_max, 65536);
	assert_int_equal(c.http_max_body, 2u << 20);
	assert_int_equal(c.log_level, LOG_LVL_DEBUG);
	assert_int_equal(c.site_serial, 9);
	assert_string_equal(c.pidfile, "/run/idnoded.pid");
	conf_free(&c);
}

static void expect_err(const char *text, const char *want)
{
	conf_t c;
	char err[256] = "";
	assert_int_equal(load(&c, text, err, sizeof(err)), HDL_ECONF);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' lacks '%s'", err, want);
	conf_free(&c);
}

static void test_errors(void **state)
{
	expect_err("workers = 2\nbogus = 1\n", "t.conf:2: bogus: unknown key");
	expect_err("\n\nmax_values = 0\n", "t.conf:3: max_values: value 0 out of range 1..2048");
	expect_err("max_values = 3000\n", "t.conf:1: max_values: value 3000 out of range");
	expect_err("max_values = 12x\n", "t.conf:1: max_values: '12x' is not a number");
	expect_err("max_values = -1\n", "max_values: '-1' is not a number");
	expect_err("max_message_len = 99999999999999999999999\n", "max_message_len: ");
	expect_err("listen = 127.0.0.1\n", "t.conf:1: listen: '127.0.0.1' is not ADDR:PORT");
	expect_err("listen = ::1:2641\n", "listen: '::1:2641' is not ADDR:PORT");
	expect_err("listen = 127.0.0.1:0\n", "listen: ");
	expect_err("listen = 127.0.0.1:65536\n", "listen: ");
	expect_err("listen = host.example:2641\n", "listen: ");
	expect_err("http = [::1:8000\n", "http: ");
	expect_err("case_sensitive = maybe\n", "t.conf:1: case_sensitive: 'maybe' is not a boolean");
	expect_err("log_level = loud\n", "log_level: 'loud' is not a log level");
	expect_err("map_size = 12q\n", "map_size: '12q' is not a size");
	expect_err("map_size = 1k\n", "map_size: value 1k out of range");
	expect_err("home = 88.100/x\n", "home: '88.100/x' is not a prefix");
	expect_err("just words\n", "t.conf:1: expected 'key = value'");
	expect_err(" = 3\n", "t.conf:1: missing key");
	expect_err("db = \"unterminated\n", "t.conf:1: db: unterminated quote");
	expect_err("workers =\n", "t.conf:1: workers: empty value");
}

/* The TLS and REST keys: defaults, ranges, and the cross-key checks of conf_validate(). */
static void test_tls_keys(void **state)
{
	conf_t c;
	char err[256] = "";
	assert_int_equal(load(&c, "", err, sizeof(err)), HDL_EOK);
	assert_string_equal(c.tls_cert, "");
	assert_true(c.http_tls);
	assert_string_equal(c.tls_min_version, "1.2");
	assert_int_equal(c.tls_handshake_timeout_ms, 5000);
	assert_int_equal(c.tls_session_cache, 20480);
	assert_false(c.http_auth_plain_loopback);
	assert_int_equal(c.rest_sessions_max, 10000);
	assert_int_equal(c.rest_sessions_per_source, 64);
	assert_int_equal(c.rest_session_idle_ms, 1800000);
	assert_int_equal(c.rest_session_unauth_ms, 60000);
	conf_free(&c);
	expect_err("tls_handshake_timeout_ms = 10\n",
	           "tls_handshake_timeout_ms: value 10 out of range");
	expect_err("rest_sessions_max = 0\n", "rest_sessions_max: value 0 out of range");
	expect_err("rest_session_idle_ms = 999\n", "rest_session_idle_ms: value 999 out of range");
	expect_err("tls_listen = 2642\n", "tls_listen: '2642' is not ADDR:PORT");
	static const struct {
		const char *text, *want;
	} bad[] = {
	    {"tls_min_version = 1.1\n", "tls_min_version: '1.1' is not 1.2 or 1.3"},
	    {"tls_cert = /c.pem\n", "tls_cert and tls_key: give both or neither"},
	    {"tls_key = /k.pem\n", "tls_cert and tls_key: give both or neither"},
	    {"tls_listen = 127.0.0.1:2642\n", "tls_listen: needs tls_cert and tls_key"},
	    {"tls_cert = /c\ntls_key = /k\ntls_listen = 127.0.0.1:8000\n",
	     "tls_listen: 127.0.0.1:8000 is also a listen or http address"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(load(&c, bad[i].text, err, sizeof(err)), HDL_EOK);
		assert_int_equal(conf_validate(&c, err, sizeof(err)), HDL_ECONF);
		if (!strstr(err, bad[i].want))
			fail_msg("'%s' gave '%s'", bad[i].text, err);
		conf_free(&c);
	}
	assert_int_equal(load(&c,
	                      "tls_cert = /c\ntls_key = /k\ntls_listen = 127.0.0.1:2642\n"
	                      "tls_listen = [::1]:2642\ntls_min_version = 1.3\n",
	                      err, sizeof(err)),
	                 HDL_EOK);
	assert_int_equal(conf_validate(&c, err, sizeof(err)), HDL_EOK);
	assert_int_equal(c.n_tls_listen, 2);
	conf_free(&c);
}

static void test_lists_and_overrides(void **state)
{
	char path[] = "/tmp/idnode-test-conf-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "listen = 127.0.0.1:1000\nlisten = 127.0.0.1:1001\nhome = 88.1\n"
	                   "db = /tmp/d\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);

	conf_t c;
	char err[256];
	/* the file's list replaces the default */
	assert_int_equal(conf_build(&c, path, NULL, 0, err, sizeof(err)), HDL_EOK);
	assert_int_equal(c.n_listen, 2);
	assert_string_equal(c.listen[0], "127.0.0.1:1000");
	conf_free(&c);

	/* --listen replaces the file's list; --home adds to it */
	conf_override_t ov[] = {
		{"listen", "[::1]:2000"}, {"listen", "127.0.0.1:2001"}, {"home", "88.2"},
		{"workers", "3"},
	};
	assert_int_equal(conf_build(&c, path, ov, 4, err, sizeof(err)), HDL_EOK);
	assert_int_equal(c.n_listen, 2);
	assert_string_equal(c.listen[0], "[::1]:2000");
	assert_string_equal(c.listen[1], "127.0.0.1:2001");
	assert_int_equal(c.n_home, 2);
	assert_string_equal(c.home[0], "88.1");
	assert_string_equal(c.home[1], "88.2");
	assert_int_equal(c.workers, 3);

	/* restart keys */
	conf_t d;
	conf_override_t ov2[] = {{"workers", "5"}, {"max_values", "9"}, {"log_level", "err"}};
	assert_int_equal(conf_build(&d, path, ov2, 3, err, sizeof(err)), HDL_EOK);
	char keys[256];
	conf_restart_keys(&c, &d, keys, sizeof(keys));
	assert_non_null(strstr(keys, "listen"));
	assert_non_null(strstr(keys, "workers"));
	assert_null(strstr(keys, "home")); /* homed prefixes follow the configuration on reload */
	assert_null(strstr(keys, "max_values"));
	assert_null(strstr(keys, "log_level"));
	conf_restart_keys(&d, &d, keys, sizeof(keys));
	assert_string_equal(keys, "");
	conf_free(&d);
	conf_free(&c);

	/* a bad override names the option */
	conf_override_t bad[] = {{"workers", "many"}};
	assert_int_equal(conf_build(&c, path, bad, 1, err, sizeof(err)), HDL_ECONF);
	assert_non_null(strstr(err, "--workers: 'many' is not a number"));
	/* validation: http equal to listen */
	conf_override_t same[] = {{"http", "127.0.0.1:1000"}};
	assert_int_equal(conf_build(&c, path, same, 1, err, sizeof(err)), HDL_ECONF);
	assert_non_null(strstr(err, "also a listen address"));
	/* a missing file */
	assert_int_equal(conf_build(&c, "/nonexistent/idnode.conf", NULL, 0, err, sizeof(err)),
	                 HDL_EIO);
	assert_non_null(strstr(err, "/nonexistent/idnode.conf: cannot open"));
	unlink(path);
}

static void test_addr(void **state)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	assert_int_equal(conf_parse_addr("127.0.0.1:2641", &ss, &sl), HDL_EOK);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(conf_parse_addr("[::1]:2641", &ss, &sl), HDL_EOK);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(conf_parse_addr("[::]:1", &ss, &sl), HDL_EOK);
	assert_int_equal(conf_parse_addr("[127.0.0.1]:1", &ss, &sl), HDL_EINVAL);
	assert_int_equal(conf_parse_addr("1.2.3.4:", &ss, &sl), HDL_EINVAL);
	assert_int_equal(conf_parse_addr(":80", &ss, &sl), HDL_EINVAL);
	assert_int_equal(conf_parse_addr("1.2.3.4:80x", &ss, &sl), HDL_EINVAL);
	assert_int_equal(conf_parse_addr("", &ss, &sl), HDL_EINVAL);
}

static void count_net(void *arg, int family, const uint8_t addr[16], unsigned len)
{
	(void)family;
	(void)addr;
	(void)len;
	(*(int *)arg)++;
}

/* The UDP keys: defaults, ranges, the network list type (several per line, "none"). */
static void test_udp_keys(void **state)
{
	conf_t c;
	char err[256] = "";
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_true(c.udp_gso);
	assert_int_equal(c.udp_answer_max_datagrams, 8);
	assert_int_equal(c.udp_answer_max_ratio, 10);
	assert_int_equal(c.udp_reasm_slots, 16);
	assert_int_equal(c.udp_rrl_rate, 1000);
	assert_int_equal(c.udp_rrl_burst, 2000);
	assert_int_equal(c.udp_rrl_slip, 2);
	assert_int_equal(c.udp_rrl_table_size, 65536);
	assert_int_equal(c.n_udp_rrl_whitelist, 1);
	assert_string_equal(c.udp_rrl_whitelist[0], "127.0.0.0/8 ::1/128");
	conf_free(&c);

	const char *text =
	    "udp_gso = no\nudp_answer_max_datagrams = 533\nudp_answer_max_ratio = 0\n"
	    "udp_rrl_rate = 0\nudp_rrl_slip = 1\n"
	    "udp_rrl_whitelist = 192.0.2.0/24, 2001:db8::/32\n"
	    "udp_rrl_whitelist = 198.51.100.7\n";
	if (load(&c, text, err, sizeof(err)) != HDL_EOK)
		fail_msg("%s", err);
	assert_false(c.udp_gso);
	assert_int_equal(c.udp_answer_max_datagrams, 533);
	assert_int_equal(c.udp_answer_max_ratio, 0);
	assert_int_equal(c.udp_rrl_rate, 0);
	assert_int_equal(c.udp_rrl_slip, 1);
	/* the file's lines replace the default */
	assert_int_equal(c.n_udp_rrl_whitelist, 2);
	int n = 0;
	for (unsigned i = 0; i < c.n_udp_rrl_whitelist; i++)
		assert_true(conf_each_net(c.udp_rrl_whitelist[i], count_net, &n) > 0);
	assert_int_equal(n, 3);
	conf_free(&c);

	/* none: no network at all */
	if (load(&c, "udp_rrl_whitelist = none\n", err, sizeof(err)) != HDL_EOK)
		fail_msg("%s", err);
	assert_int_equal(c.n_udp_rrl_whitelist, 0);
	conf_free(&c);

	expect_err("udp_answer_max_datagrams = 0\n",
	           "udp_answer_max_datagrams: value 0 out of range");
	expect_err("udp_answer_max_datagrams = 534\n", "out of range 1..533");
	expect_err("udp_answer_max_ratio = 1001\n",
	           "udp_answer_max_ratio: value 1001 out of range");
	expect_err("udp_rrl_table_size = 10\n", "udp_rrl_table_size: value 10 out of range");
	expect_err("udp_reasm_slots = 0\n", "udp_reasm_slots: value 0 out of range");
	expect_err("udp_rrl_whitelist = 10.0.0.0/33\n",
	           "t.conf:1: udp_rrl_whitelist: '10.0.0.0/33'");
	expect_err("udp_rrl_whitelist = 10.0.0.0/8 bogus\n", "is not a list of networks");
	expect_err("udp_rrl_whitelist = ::1/129\n", "udp_rrl_whitelist: ");
	expect_err("udp_rrl_whitelist = 10.0.0.0/\n", "udp_rrl_whitelist: ");
	expect_err("udp_rrl_whitelist = 10.0.0.0/-1\n", "udp_rrl_whitelist: ");

	/* what is reloadable and what needs a restart */
	conf_t a, b;
	assert_int_equal(conf_init(&a), HDL_EOK);
	if (load(&b,
	         "udp_rrl_rate = 5\nudp_rrl_whitelist = none\nudp_rrl_table_size = 2048\n"
	         "udp_gso = no\n",
	         err, sizeof(err)) != HDL_EOK)
		fail_msg("%s", err);
	char keys[256];
	conf_restart_keys(&a, &b, keys, sizeof(keys));
	assert_non_null(strstr(keys, "udp_rrl_whitelist"));
	assert_non_null(strstr(keys, "udp_rrl_table_size"));
	assert_null(strstr(keys, "udp_rrl_rate"));
	assert_null(strstr(keys, "udp_gso"));
	conf_free(&a);
	conf_free(&b);
}

static void test_net(void **state)
{
	int fam;
	uint8_t a[16];
	unsigned len;
	assert_int_equal(conf_parse_net("192.0.2.77/24", &fam, a, &len), HDL_EOK);
	assert_int_equal(fam, AF_INET);
	assert_int_equal(len, 24);
	static const uint8_t v4[4] = {192, 0, 2, 0}; /* host bits cleared */
	assert_memory_equal(a, v4, 4);
	assert_int_equal(conf_parse_net("10.1.2.3", &fam, a, &len), HDL_EOK);
	assert_int_equal(len, 32);
	assert_int_equal(conf_parse_net("2001:db8:ab:cdef::1/56", &fam, a, &len), HDL_EOK);
	assert_int_equal(fam, AF_INET6);
	assert_int_equal(len, 56);
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x00, 0xab, 0xcd};
	assert_memory_equal(a, v6, 16);
	assert_int_equal(conf_parse_net("0.0.0.0/0", &fam, a, &len), HDL_EOK);
	assert_int_equal(len, 0);
	assert_int_equal(conf_parse_net("::/0", &fam, a, &len), HDL_EOK);
	assert_int_equal(conf_parse_net("1.2.3.4/7", &fam, a, &len), HDL_EOK);
	assert_int_equal(a[0], 0);
	static const char *const bad[] = {"",           "/8",          "1.2.3/8",    "1.2.3.4/",
	                                  "1.2.3.4/33", "1.2.3.4/0x8", "1.2.3.4/+8", "::1/1290",
	                                  "x::1",       "1.2.3.4/8/8", "1.2.3.4 /8", "[::1]/8"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (conf_parse_net(bad[i], &fam, a, &len) != HDL_EINVAL)
			fail_msg("'%s' parsed", bad[i]);
	}
	assert_int_equal(conf_each_net("none", NULL, NULL), 0);
	assert_int_equal(conf_each_net("NONE", NULL, NULL), 0);
	assert_int_equal(conf_each_net(" 1.2.3.4,,::1 \t5.6.7.0/24 ", NULL, NULL), 3);
	assert_int_equal(conf_each_net("1.2.3.4 none", NULL, NULL), -1);
	char longtok[128];
	memset(longtok, '1', sizeof(longtok) - 1);
	longtok[sizeof(longtok) - 1] = '\0';
	assert_int_equal(conf_each_net(longtok, NULL, NULL), -1);
}

/* The shipped sample parses and documents every key of the schema. */
static void test_sample(void **state)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/deploy/idnode.conf.sample", HDL_SOURCE_DIR);
	conf_t c;
	char err[256];
	assert_int_equal(conf_init(&c), HDL_EOK);
	int ret = conf_load(&c, path, err, sizeof(err));
	if (ret != HDL_EOK)
		fail_msg("%s", err);
	conf_free(&c);

	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char text[65536];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	size_t nk;
	const conf_key_t *keys = conf_schema(&nk);
	for (size_t i = 0; i < nk; i++) {
		char pat[64];
		snprintf(pat, sizeof(pat), "\n%s = ", keys[i].name);
		char pat2[64];
		snprintf(pat2, sizeof(pat2), "\n# %s = ", keys[i].name);
		if (!strstr(text, pat) && !strstr(text, pat2))
			fail_msg("sample lacks key %s", keys[i].name);
		/* and a comment line right above it */
		const char *at = strstr(text, pat) ? strstr(text, pat) : strstr(text, pat2);
		const char *prev = at - 1;
		while (prev > text && *prev != '\n')
			prev--;
		assert_true(prev[prev == text ? 0 : 1] == '#');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults), cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_errors),   cmocka_unit_test(test_lists_and_overrides),
	    cmocka_unit_test(test_addr),     cmocka_unit_test(test_udp_keys),
	    cmocka_unit_test(test_net),      cmocka_unit_test(test_sample),
	    cmocka_unit_test(test_tls_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
