/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests of idnode-bench's write requests (tools/bench/write.c): the REST form
 *        (PUT / DELETE /api/handles/KEY with pyhandle's Basic credentials) and what counts as
 *        an acknowledged REST write. write.c has no main(); this test includes it directly (it
 *        cannot share a translation unit with proto.c, see test_bench_hist.c).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../tools/bench/hist.c"
#include "../../tools/bench/write.c"

/* ---- REST writes ---- */

static void test_write_rest(void **state)
{
	(void)state;
	char path[] = "/tmp/test_bench_secret.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "secret", 6), 6);
	close(fd);
	bk_tmpl_t t = {.proto = BK_REST, .host = "127.0.0.1:8000"};
	bk_conf_t c = {.proto = BK_REST, .tmpl = &t};
	bk_write_args_t a = {.op = "create", .auth = "300:0.NA/88.100.1", .seckey_file = path};
	bk_write_ctx_t *x = NULL;
	char err[200];
	assert_int_equal(bk_write_setup(&a, &c, &x, err, sizeof(err)), 0);
	unlink(path);
	assert_true(c.write->rest);
	assert_false(c.write->login);
	uint8_t out[4096];
	size_t n = bk_write_build(c.write, "88.100.1/k1", 11, 7, 0, out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	const char *s = (const char *)out;
	assert_non_null(strstr(s, "PUT /api/handles/88.100.1/k1?overwrite=false HTTP/1.1\r\n"));
	assert_non_null(strstr(s, "Host: 127.0.0.1:8000\r\n"));
	/* base64 of "300%3A0.NA%2F88.100.1:secret", the user percent-encoded as pyhandle does */
	assert_non_null(
	    strstr(s, "Authorization: Basic MzAwJTNBMC5OQSUyRjg4LjEwMC4xOnNlY3JldA==\r\n"));
	const char *body = strstr(s, "\r\n\r\n") + 4;
	assert_string_equal(body, "{\"values\":[{\"index\":1,\"type\":\"URL\",\"ttl\":86400,"
	                          "\"data\":\"https://example.org/88.100.1/k1\"}]}");
	char cl[40];
	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(body));
	assert_non_null(strstr(s, cl));
	/* the reply codes that count as acks: 200 and 201 */
	bk_result_t r = {.elapsed = 1.0};
	r.codes[201] = 3;
	r.codes[200] = 2;
	r.codes[1] = 9;
	assert_int_equal(acks_of(c.write, &r), 5);
	/* modify and delete, and a value padded to a size */
	bk_write_t w = *c.write;
	w.opcode = HDL_OC_MODIFY_VALUE;
	w.value_size = 64;
	n = bk_write_build(&w, "88.100.1/k1", 11, 7, 0, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_non_null(strstr(s, "PUT /api/handles/88.100.1/k1?index=1 HTTP/1.1\r\n"));
	assert_non_null(strstr(s, "k1#xxxxxxxx"));
	w.opcode = HDL_OC_DELETE_HANDLE;
	n = bk_write_build(&w, "88.100.1/k1", 11, 7, 0, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_non_null(strstr(s, "DELETE /api/handles/88.100.1/k1 HTTP/1.1\r\n"));
	assert_non_null(strstr(s, "Content-Length: 0\r\n\r\n"));
	/* too small a buffer: nothing */
	assert_int_equal(bk_write_build(c.write, "88.100.1/k1", 11, 7, 0, out, 40), 0);
	bk_write_free(x);
	/* REST writes take Basic credentials only */
	bk_write_args_t bad = {.op = "create", .auth = "300:0.NA/88.100.1", .privkey_file = "x"};
	assert_int_equal(bk_write_setup(&bad, &c, &x, err, sizeof(err)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_write_rest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
