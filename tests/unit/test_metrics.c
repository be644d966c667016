/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of the observability code: the per-worker counters and their sums
 *        (node/server/obs.c: opcode and response code slots, latency buckets), the Prometheus
 *        exposition writer and the module registry (node/server/metrics.c: escaping, the
 *        registry's bound, collectors called and removed), and the exposition of a node view
 *        checked line by line against the text format's grammar.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/conf/conf.h"
#include "node/server/metrics.h"
#include "node/server/node.h"
#include "node/server/obs.h"

static void test_slots(void **state)
{
	(void)state;
	/* every known response code has a slot of its own that maps back to it */
	for (unsigned s = 0; s < OBS_RC_N - 1; s++) {
		assert_int_equal(obs_rc_slot(obs_rc_of_slot(s)), s);
		assert_string_not_equal(obs_rc_label(s), "other");
	}
	assert_int_equal(obs_rc_slot(HDL_RC_SUCCESS), 1);
	assert_string_equal(obs_rc_label(obs_rc_slot(HDL_RC_HANDLE_NOT_FOUND)), "handle_not_found");
	assert_string_equal(obs_rc_label(obs_rc_slot(HDL_RC_AUTHEN_ERROR)), "authen_error");
	assert_string_equal(obs_rc_label(obs_rc_slot(HDL_RC_SESSION_MESSAGE_REJECTED)),
	                    "session_message_rejected");
	assert_int_equal(obs_rc_slot(99), OBS_RC_N - 1);
	assert_int_equal(obs_rc_slot(0xffffffffu), OBS_RC_N - 1);
	assert_string_equal(obs_rc_label(OBS_RC_N - 1), "other");
	assert_int_equal(obs_rc_of_slot(OBS_RC_N - 1), 0);

	static const struct {
		uint32_t op;
		const char *label;
	} ops[] = {{HDL_OC_RESOLUTION, "resolution"},
	           {HDL_OC_GET_SITEINFO, "get_siteinfo"},
	           {HDL_OC_CREATE_HANDLE, "create_handle"},
	           {HDL_OC_LIST_HANDLES, "list_handles"},
	           {HDL_OC_CHALLENGE_RESPONSE, "challenge_response"},
	           {HDL_OC_HOME_NA, "home_na"},
	           {HDL_OC_SESSION_SETUP, "session_setup"},
	           {HDL_OC_LOGIN_ID_SYSTEM, "login_id_system"},
	           {12345, "other"}};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		assert_string_equal(obs_op_label(obs_op_slot(ops[i].op)), ops[i].label);
	/* slots are distinct */
	static const uint32_t all[] = {0,   1,   2,   100, 101, 102, 103, 104, 105,  106,
	                               200, 201, 300, 301, 302, 400, 401, 402, 2000, 2001};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		for (size_t j = i + 1; j < sizeof(all) / sizeof(all[0]); j++)
			assert_int_not_equal(obs_op_slot(all[i]), obs_op_slot(all[j]));
	}
	assert_int_equal(obs_transport(1), STATS_T_UDP);
	assert_int_equal(obs_transport(5), STATS_T_TLS);
	assert_int_equal(obs_transport(0), STATS_T_OTHER);
	assert_int_equal(obs_transport(6), STATS_T_OTHER);
}

static void test_latency_buckets(void **state)
{
	(void)state;
	assert_int_equal(obs_lat_bucket(0), 0);
	assert_int_equal(obs_lat_bucket(10000), 0); /* le = 10 us, inclusive */
	assert_int_equal(obs_lat_bucket(10001), 1);
	assert_int_equal(obs_lat_bucket(1000000), 6);
	assert_int_equal(obs_lat_bucket(20000000000ull), OBS_LAT_N - 1); /* +Inf */
	for (unsigned i = 1; i < OBS_LAT_N - 1; i++)
		assert_true(obs_lat_bounds_ns[i] > obs_lat_bounds_ns[i - 1]);
}

static void test_counts_and_sums(void **state)
{
	(void)state;
	node_shared_t node;
	memset(&node, 0, sizeof(node));
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	c.stats = false;
	node_obs_t o;
	assert_int_equal(obs_init(&o, &node, NULL, 2, &c), HDL_EOK);
	assert_false(o.timing); /* metrics_listen is empty by default */
	obs_count(&o.ctr[0], STATS_T_UDP, HDL_OC_RESOLUTION, HDL_RC_SUCCESS, true, 0);
	obs_count(&o.ctr[0], STATS_T_UDP, HDL_OC_RESOLUTION, HDL_RC_SUCCESS, true, 0);
	obs_count(&o.ctr[1], STATS_T_UDP, HDL_OC_RESOLUTION, HDL_RC_SUCCESS, true, 0);
	obs_count(&o.ctr[1], STATS_T_TCP, HDL_OC_CREATE_HANDLE, HDL_RC_INVALID_ADMIN, true, 0);
	obs_count(&o.ctr[1], STATS_T_TCP, 0, 0, false, 0);
	obs_count(&o.ctr[0], 99, HDL_OC_RESOLUTION, 7777, true, 0); /* odd transport and code */
	/* with a start time, the latency goes into the histogram */
	obs_count(&o.ctr[0], STATS_T_REST, HDL_OC_RESOLUTION, HDL_RC_SUCCESS, true,
	          obs_now_ns() - 2000000);
	obs_sum_t *s = malloc(sizeof(*s));
	assert_non_null(s);
	obs_sum(&o, s);
	unsigned res = obs_op_slot(HDL_OC_RESOLUTION);
	assert_int_equal(s->req[STATS_T_UDP][res][obs_rc_slot(HDL_RC_SUCCESS)], 3);
	assert_int_equal(s->req[STATS_T_TCP][obs_op_slot(HDL_OC_CREATE_HANDLE)]
	                       [obs_rc_slot(HDL_RC_INVALID_ADMIN)],
	                 1);
	assert_int_equal(s->dropped[STATS_T_TCP], 1);
	assert_int_equal(s->req[STATS_T_OTHER][res][OBS_RC_N - 1], 1);
	uint64_t n = 0;
	for (unsigned b = 0; b < OBS_LAT_N; b++)
		n += s->lat[STATS_T_REST][b];
	assert_int_equal(n, 1);
	assert_true(s->lat_sum_ns[STATS_T_REST] >= 2000000);
	assert_int_equal(s->lat[STATS_T_REST][0], 0); /* 2 ms is not under 10 us */
	assert_int_equal(s->lat[STATS_T_UDP][0], 0);  /* no start time: not timed */
	free(s);
	obs_free(&o);
	conf_free(&c);
}

static void test_labels(void **state)
{
	(void)state;
	char out[128];
	const char *names[] = {"a", "b"};
	const char *vals[] = {"x\"y\\z\nw", "plain"};
	assert_string_equal(mx_labels(out, sizeof(out), 2, names, vals),
	                    "a=\"x\\\"y\\\\z\\nw\",b=\"plain\"");
	/* a pair that does not fit is left out whole */
	char small[20];
	assert_string_equal(mx_labels(small, sizeof(small), 2, names, vals),
	                    "a=\"x\\\"y\\\\z\\nw\"");
	assert_string_equal(mx_labels(small, 4, 2, names, vals), "");

	hdl_buf_t b;
	hdl_buf_init(&b, 0);
	mx_t m = {&b};
	mx_family(&m, "t_total", "counter", "line one\nback\\slash");
	mx_sample_u64(&m, "t_total", NULL, 18446744073709551615ull);
	mx_sample(&m, "t_total", "k=\"v\"", 0.5);
	assert_true(hdl_buf_puts(&b, "") && !b.fail);
	assert_int_equal(hdl_buf_put(&b, "", 1), true); /* NUL for the comparison */
	assert_string_equal((const char *)b.p, "# HELP t_total line one\\nback\\\\slash\n"
	                                       "# TYPE t_total counter\n"
	                                       "t_total 18446744073709551615\n"
	                                       "t_total{k=\"v\"} 0.5\n");
	hdl_buf_free(&b);
}

static int collected;
static void my_collect(mx_t *m, void *arg)
{
	collected++;
	mx_family(m, "idnode_test_module_things", "gauge", "Things of the test module");
	mx_sample_u64(m, "idnode_test_module_things", NULL, *(uint64_t *)arg);
}

static void my_status(struct json_t *obj, void *arg)
{
	(void)obj;
	(void)arg;
}

static void test_registry(void **state)
{
	(void)state;
	uint64_t v = 42;
	assert_int_equal(metrics_register("", my_collect, NULL, &v), HDL_EINVAL);
	assert_int_equal(metrics_register("bad name", my_collect, NULL, &v), HDL_EINVAL);
	assert_int_equal(metrics_register("test_module", my_collect, my_status, &v), HDL_EOK);
	assert_int_equal(metrics_register("test_module", my_collect, NULL, &v), HDL_EEXIST);
	hdl_buf_t b;
	hdl_buf_init(&b, 0);
	collected = 0;
	assert_int_equal(metrics_collect(NULL, &b), HDL_EOK);
	assert_int_equal(collected, 1);
	hdl_buf_put(&b, "", 1);
	assert_non_null(strstr((const char *)b.p, "\nidnode_test_module_things 42\n"));
	assert_non_null(strstr((const char *)b.p, "# TYPE process_cpu_seconds_total counter\n"));
	hdl_buf_free(&b);

	/* the registry is bounded */
	static uint64_t args[METRICS_MAX_SOURCES + 1];
	unsigned ok = 0;
	for (unsigned i = 0; i < METRICS_MAX_SOURCES + 1; i++) {
		int r = metrics_register("filler", my_collect, NULL, &args[i]);
		assert_true(r == HDL_EOK || r == HDL_ELIMIT);
		ok += r == HDL_EOK;
	}
	assert_int_equal(ok, METRICS_MAX_SOURCES - 1);
	for (unsigned i = 0; i < METRICS_MAX_SOURCES + 1; i++)
		metrics_unregister("filler", &args[i]);

	metrics_unregister("test_module", &v);
	hdl_buf_init(&b, 0);
	collected = 0;
	assert_int_equal(metrics_collect(NULL, &b), HDL_EOK);
	assert_int_equal(collected, 0);
	hdl_buf_put(&b, "", 1);
	assert_null(strstr((const char *)b.p, "idnode_test_module_things"));
	hdl_buf_free(&b);
	/* a full buffer is an error, not a truncated exposition passed as whole */
	hdl_buf_init(&b, 64);
	assert_int_equal(metrics_collect(NULL, &b), HDL_ENOMEM);
	hdl_buf_free(&b);
}

/*
 * Check an exposition against the text format: comment lines are HELP or TYPE of a well-formed
 * name, samples are name{labels} value, every sample belongs to the family last declared (its name
 * or, for histograms, name_bucket/_sum/_count), no family is declared twice.
 */
static void check_format(const char *text)
{
	regex_t help, type, sample;
	assert_int_equal(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type,
	                         "^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$",
	                         REG_EXTENDED),
	                 0);
	assert_int_equal(
	    regcomp(&sample,
	            "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|"
	            "\\\\.)*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\")*\\})? "
	            "(-?[0-9.e+-]+|\\+Inf|NaN)$",
	            REG_EXTENDED),
	    0);
	char family[128] = "", seen[8192] = " ";
	const char *p = text;
	unsigned lines = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		char line[1024];
		size_t n = (size_t)(nl - p);
		assert_true(n < sizeof(line));
		memcpy(line, p, n);
		line[n] = '\0';
		regmatch_t m[2];
		if (strncmp(line, "# HELP", 6) == 0) {
			assert_int_equal(regexec(&help, line, 0, NULL, 0), 0);
		} else if (strncmp(line, "# TYPE", 6) == 0) {
			assert_int_equal(regexec(&type, line, 2, m, 0), 0);
			snprintf(family, sizeof(family), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
			         line + m[1].rm_so);
			char key[140];
			snprintf(key, sizeof(key), " %s ", family);
			if (strstr(seen, key))
				fail_msg("family %s declared twice", family);
			strncat(seen, key + 1, sizeof(seen) - strlen(seen) - 1);
		} else {
			if (regexec(&sample, line, 2, m, 0) != 0)
				fail_msg("not a sample line: %s", line);
			char name[128];
			snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
			         line + m[1].rm_so);
			size_t fl = strlen(family);
			bool ok =
			    strcmp(name, family) == 0 ||
			    (strncmp(name, family, fl) == 0 &&
			     (strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
			      strcmp(name + fl, "_count") == 0));
			if (!ok)
				fail_msg("sample %s outside its family %s", name, family);
		}
		lines++;
		p = nl + 1;
	}
	assert_true(lines > 10);
	regfree(&help);
	regfree(&type);
	regfree(&sample);
}

static void test_node_exposition(void **state)
{
	(void)state;
	node_shared_t node;
	memset(&node, 0, sizeof(node));
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	c.stats = false;
	free(c.metrics_listen);
	c.metrics_listen = strdup("127.0.0.1:9");
	node_obs_t o;
	assert_int_equal(obs_init(&o, &node, NULL, 3, &c), HDL_EOK);
	assert_true(o.timing);
	obs_count(&o.ctr[2], STATS_T_HTTP, HDL_OC_RESOLUTION, HDL_RC_HANDLE_NOT_FOUND, true,
	          obs_now_ns() - 30000);
	obs_count(&o.ctr[1], STATS_T_HTTP, HDL_OC_RESOLUTION, HDL_RC_HANDLE_NOT_FOUND, true,
	          obs_now_ns() - 30000);
	hdl_buf_t b;
	hdl_buf_init(&b, 0);
	assert_int_equal(metrics_collect(&o, &b), HDL_EOK);
	hdl_buf_put(&b, "", 1);
	const char *t = (const char *)b.p;
	check_format(t);
	assert_non_null(strstr(t, "\nidnode_workers 3\n"));
	assert_non_null(strstr(t,
	                       "\nidnode_requests_total{transport=\"http\",opcode=\"resolution\","
	                       "rcode=\"handle_not_found\"} 2\n"));
	/* cumulative buckets: 30 us is above 25 us, so le=0.00005 holds both, le=2.5e-05 none */
	assert_non_null(strstr(
	    t, "\nidnode_request_duration_seconds_bucket{transport=\"http\",le=\"2.5e-05\"} 0\n"));
	assert_non_null(strstr(
	    t, "\nidnode_request_duration_seconds_bucket{transport=\"http\",le=\"5e-05\"} 2\n"));
	assert_non_null(strstr(
	    t, "\nidnode_request_duration_seconds_bucket{transport=\"http\",le=\"+Inf\"} 2\n"));
	assert_non_null(
	    strstr(t, "\nidnode_request_duration_seconds_count{transport=\"http\"} 2\n"));
	assert_non_null(strstr(t, "idnode_build_info{version=\"" HDL_VERSION "\"} 1\n"));
	hdl_buf_free(&b);
	obs_free(&o);
	conf_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_slots),           cmocka_unit_test(test_latency_buckets),
	    cmocka_unit_test(test_counts_and_sums), cmocka_unit_test(test_labels),
	    cmocka_unit_test(test_registry),        cmocka_unit_test(test_node_exposition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
