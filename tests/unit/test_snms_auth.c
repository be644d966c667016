/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief cmocka tests of the SNMS API's authentication (node/server/snms_auth): password hashes
 *        (round trip, wrong passwords, the hash text checked field by field), `snms_user` lines
 *        and their refusals, the token table attacked at its bounds (node-wide full of live
 *        tokens, per user, expiry, malformed and guessed tokens), the login bucket, and the
 *        SNMS status of each Handle response code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/server/snms.h"
#include "node/server/snms_auth.h"

static void test_hash(void **state)
{
	(void)state;
	char hash[SNMS_HASH_TEXT_MAX], line[400], err[128];
	assert_int_equal(snms_hash_password("s3cret", 6, 1000, hash, sizeof(hash)), HDL_EOK);
	assert_int_equal(strncmp(hash, "pbkdf2-sha256$1000$", 19), 0);
	snprintf(line, sizeof(line), "acme %s 300:0.NA/88.100.1", hash);
	snms_user_t u;
	assert_int_equal(snms_user_parse(line, &u, err, sizeof(err)), HDL_EOK);
	assert_string_equal(u.name, "acme");
	assert_int_equal(u.iterations, 1000);
	assert_int_equal(u.id_index, 300);
	assert_string_equal(u.id_handle, "0.NA/88.100.1");
	assert_true(snms_password_ok(&u, "s3cret", 6));
	assert_false(snms_password_ok(&u, "s3cret ", 7));
	assert_false(snms_password_ok(&u, "S3cret", 6));
	assert_false(snms_password_ok(&u, "", 0));
	snms_user_clear(&u);
	/* two hashes of one password differ (salted) */
	char hash2[SNMS_HASH_TEXT_MAX];
	assert_int_equal(snms_hash_password("s3cret", 6, 1000, hash2, sizeof(hash2)), HDL_EOK);
	assert_string_not_equal(hash, hash2);
	/* bounds of the hasher */
	assert_int_equal(snms_hash_password("x", 1, 999, hash2, sizeof(hash2)), HDL_EINVAL);
	assert_int_equal(snms_hash_password("x", 1, 1000, hash2, 10), HDL_EINVAL);
	assert_int_equal(snms_hash_password("x", 0, 1000, hash2, sizeof(hash2)), HDL_EINVAL);
}

static void bad_line(const char *line, const char *want)
{
	char err[128] = "";
	snms_user_t u;
	assert_int_equal(snms_user_parse(line, &u, err, sizeof(err)), HDL_EINVAL);
	if (strstr(err, want) == NULL)
		fail_msg("'%s': '%s' lacks '%s'", line, err, want);
	assert_int_equal(snms_user_parse(line, NULL, err, sizeof(err)), HDL_EINVAL);
}

static void test_user_lines(void **state)
{
	(void)state;
	const char *salt = "00112233445566778899aabbccddeeff";
	const char *key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char line[512];
	snprintf(line, sizeof(line), "  a.b_c@d-e\tpbkdf2-sha256$1000$%s$%s  300:88.100.1/ADMIN ",
	         salt, key);
	char err[128];
	assert_int_equal(snms_user_parse(line, NULL, err, sizeof(err)), HDL_EOK);
	bad_line("", "NAME");
	bad_line("acme", "expected");
	snprintf(line, sizeof(line), "ac/me pbkdf2-sha256$1000$%s$%s 300:a/b", salt, key);
	bad_line(line, "letters");
	snprintf(line, sizeof(line), "acme sha1$1000$%s$%s 300:a/b", salt, key);
	bad_line(line, "pbkdf2-sha256");
	snprintf(line, sizeof(line), "acme pbkdf2-sha256$10$%s$%s 300:a/b", salt, key);
	bad_line(line, "iterations");
	snprintf(line, sizeof(line), "acme pbkdf2-sha256$1000$00$%s 300:a/b", key);
	bad_line(line, "salt");
	snprintf(line, sizeof(line), "acme pbkdf2-sha256$1000$%s$%szz 300:a/b", salt, key);
	bad_line(line, "salt of 32");
	snprintf(line, sizeof(line), "acme pbkdf2-sha256$1000$%s$%s a/b", salt, key);
	bad_line(line, "INDEX:HANDLE");
	snprintf(line, sizeof(line), "acme pbkdf2-sha256$1000$%s$%s 99999999999:a/b", salt, key);
	bad_line(line, "INDEX:HANDLE");
	snprintf(line, sizeof(line), "acme pbkdf2-sha256$1000$%s$%s 300:a/b extra", salt, key);
	bad_line(line, "expected");
	char longname[80];
	memset(longname, 'n', 51);
	longname[51] = '\0';
	snprintf(line, sizeof(line), "%s pbkdf2-sha256$1000$%s$%s 300:a/b", longname, salt, key);
	bad_line(line, "NAME");
}

static void test_tokens(void **state)
{
	(void)state;
	snms_tokens_t *t = NULL;
	assert_int_equal(snms_tokens_new(0, 1, &t), HDL_EINVAL);
	assert_int_equal(snms_tokens_new(4, 2, &t), HDL_EOK);
	char a[SNMS_TOKEN_LEN + 1], b[SNMS_TOKEN_LEN + 1], c[SNMS_TOKEN_LEN + 1];
	char d[SNMS_TOKEN_LEN + 1], e[SNMS_TOKEN_LEN + 1];
	uint32_t user = 99;
	assert_int_equal(snms_token_issue(t, 0, 1000, 5000, a), HDL_EOK);
	assert_int_equal(strlen(a), SNMS_TOKEN_LEN);
	assert_int_equal(snms_token_check(t, a, SNMS_TOKEN_LEN, 1001, &user), HDL_EOK);
	assert_int_equal(user, 0);
	/* a guessed, a cut and a changed token */
	char g[SNMS_TOKEN_LEN + 1];
	memcpy(g, a, sizeof(g));
	g[10] = g[10] == 'A' ? 'B' : 'A';
	assert_int_equal(snms_token_check(t, g, SNMS_TOKEN_LEN, 1001, &user), HDL_ENOENT);
	assert_int_equal(snms_token_check(t, a, SNMS_TOKEN_LEN - 1, 1001, &user), HDL_ENOENT);
	assert_int_equal(snms_token_check(t, "", 0, 1001, &user), HDL_ENOENT);
	/* per user: a third login of user 0 retires its oldest (a) */
	assert_int_equal(snms_token_issue(t, 0, 1100, 5000, b), HDL_EOK);
	assert_int_equal(snms_token_issue(t, 0, 1200, 5000, c), HDL_EOK);
	assert_int_equal(snms_token_check(t, a, SNMS_TOKEN_LEN, 1300, &user), HDL_ENOENT);
	assert_int_equal(snms_token_check(t, b, SNMS_TOKEN_LEN, 1300, &user), HDL_EOK);
	assert_int_equal(snms_token_check(t, c, SNMS_TOKEN_LEN, 1300, &user), HDL_EOK);
	assert_int_equal(snms_tokens_count(t), 2);
	/* node-wide: two more users fill the table (4); a fifth live token is refused */
	assert_int_equal(snms_token_issue(t, 1, 1300, 5000, d), HDL_EOK);
	assert_int_equal(snms_token_issue(t, 2, 1300, 5000, e), HDL_EOK);
	assert_int_equal(snms_tokens_count(t), 4);
	char f[SNMS_TOKEN_LEN + 1];
	assert_int_equal(snms_token_issue(t, 3, 1400, 5000, f), HDL_ELIMIT);
	/* expiry: b expired at 6100; a check drops it; a full table drops expired tokens first */
	assert_int_equal(snms_token_check(t, b, SNMS_TOKEN_LEN, 6100, &user), HDL_ENOENT);
	assert_int_equal(snms_tokens_count(t), 3);
	assert_int_equal(snms_token_issue(t, 3, 6150, 5000, f), HDL_EOK);
	assert_int_equal(snms_token_issue(t, 4, 6300, 5000, a), HDL_EOK); /* c, d, e expired */
	assert_int_equal(snms_tokens_count(t), 2);
	assert_int_equal(snms_token_check(t, f, SNMS_TOKEN_LEN, 6300, &user), HDL_EOK);
	assert_int_equal(user, 3);
	assert_int_equal(snms_token_check(t, c, SNMS_TOKEN_LEN, 6300, &user), HDL_ENOENT);
	snms_tokens_free(t);
}

/* keep(): users 1 and 3 stay */
static bool keep_odd(void *arg, uint32_t user)
{
	unsigned *calls = arg;
	(*calls)++;
	return user == 1 || user == 3;
}

/* A reload revokes the tokens of users it removed or changed; the others stay valid. */
static void test_revoke(void **state)
{
	(void)state;
	snms_tokens_t *t = NULL;
	assert_int_equal(snms_tokens_new(8, 2, &t), HDL_EOK);
	char tok[4][SNMS_TOKEN_LEN + 1], extra[SNMS_TOKEN_LEN + 1];
	for (uint32_t u = 0; u < 4; u++)
		assert_int_equal(snms_token_issue(t, u, 1000, 5000, tok[u]), HDL_EOK);
	assert_int_equal(snms_token_issue(t, 2, 1000, 5000, extra), HDL_EOK);
	unsigned calls = 0;
	assert_int_equal(snms_tokens_revoke(t, keep_odd, &calls), 3); /* 0, 2 and 2's second */
	assert_int_equal(calls, 5);
	assert_int_equal(snms_tokens_count(t), 2);
	uint32_t user = 99;
	assert_int_equal(snms_token_check(t, tok[0], SNMS_TOKEN_LEN, 1001, &user), HDL_ENOENT);
	assert_int_equal(snms_token_check(t, tok[2], SNMS_TOKEN_LEN, 1001, &user), HDL_ENOENT);
	assert_int_equal(snms_token_check(t, extra, SNMS_TOKEN_LEN, 1001, &user), HDL_ENOENT);
	assert_int_equal(snms_token_check(t, tok[1], SNMS_TOKEN_LEN, 1001, &user), HDL_EOK);
	assert_int_equal(user, 1);
	assert_int_equal(snms_token_check(t, tok[3], SNMS_TOKEN_LEN, 1001, &user), HDL_EOK);
	assert_int_equal(user, 3);
	/* the freed entries are reused: the table takes 6 more live tokens (8 in all) */
	for (uint32_t u = 10; u < 16; u++)
		assert_int_equal(snms_token_issue(t, u, 1100, 5000, extra), HDL_EOK);
	assert_int_equal(snms_tokens_count(t), 8);
	calls = 0;
	assert_int_equal(snms_tokens_revoke(t, keep_odd, &calls), 6);
	assert_int_equal(snms_tokens_count(t), 2);
	snms_tokens_free(t);
}

static void test_bucket(void **state)
{
	(void)state;
	snms_bucket_t b;
	snms_bucket_init(&b, 10, 3, 1000);
	int got = 0;
	for (int i = 0; i < 10; i++)
		got += snms_bucket_take(&b, 1000);
	assert_int_equal(got, 3); /* the burst */
	assert_false(snms_bucket_take(&b, 1050));
	assert_true(snms_bucket_take(&b, 1100)); /* 10/s: one more after 100 ms */
	assert_false(snms_bucket_take(&b, 1100));
	got = 0;
	for (int i = 0; i < 10; i++)
		got += snms_bucket_take(&b, 100000);
	assert_int_equal(got, 3); /* never more than the burst */
	snms_bucket_destroy(&b);
}

static void test_status(void **state)
{
	(void)state;
	assert_int_equal(snms_status_of(HDL_RC_SUCCESS), SNMS_OK);
	assert_int_equal(snms_status_of(HDL_RC_ERROR), SNMS_INTERNAL);
	assert_int_equal(snms_status_of(HDL_RC_SERVER_TOO_BUSY), SNMS_INTERNAL);
	assert_int_equal(snms_status_of(HDL_RC_INVALID_ADMIN), SNMS_NO_PERM);
	assert_int_equal(snms_status_of(HDL_RC_INSUFFICIENT_PERMISSIONS), SNMS_NO_PERM);
	assert_int_equal(snms_status_of(HDL_RC_HANDLE_NOT_FOUND), SNMS_REFUSED);
	assert_int_equal(snms_status_of(HDL_RC_HANDLE_ALREADY_EXISTS), SNMS_REFUSED);
	assert_int_equal(snms_status_of(HDL_RC_INVALID_VALUE), SNMS_REFUSED);
	assert_int_equal(snms_status_of(HDL_RC_SERVER_NOT_RESP), SNMS_REFUSED);
	/* query parameters */
	char out[16];
	const char *q = "a=1&handle=88.100.1%2Fx+y&bad=%zz&nul=%00&long=0123456789abcdefg";
	assert_int_equal(snms_query_param(q, strlen(q), "handle", out, sizeof(out)), 12);
	assert_string_equal(out, "88.100.1/x y");
	assert_int_equal(snms_query_param(q, strlen(q), "missing", out, sizeof(out)), -1);
	assert_int_equal(snms_query_param(q, strlen(q), "bad", out, sizeof(out)), -2);
	assert_int_equal(snms_query_param(q, strlen(q), "nul", out, sizeof(out)), -2);
	assert_int_equal(snms_query_param(q, strlen(q), "long", out, sizeof(out)), -2);
	assert_int_equal(snms_query_param(q, strlen(q), "hand", out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hash),   cmocka_unit_test(test_user_lines),
	    cmocka_unit_test(test_tokens), cmocka_unit_test(test_revoke),
	    cmocka_unit_test(test_bucket), cmocka_unit_test(test_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
