/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The reload hook list (node/server/reload.c): hooks run in order, prepare then commit;
 *        one failing prepare discards every prepared hook and commits none; what needs a
 *        restart (schema flags, keys claimed by hooks, listener changes); the limit on hooks;
 *        and the retirement of state workers may hold (freed only once every online worker
 *        has passed a quiescent point; offline workers never block; the bounded list).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "node/conf/conf.h"
#include "node/server/reload.h"

/* what the hooks did, in order: "p:a" prepare of a, "c:a" commit, "d:a" discard */
static char trace[512];

static void note(const char *what, const char *name)
{
	size_t n = strlen(trace);
	snprintf(trace + n, sizeof(trace) - n, "%s%s:%s", n ? " " : "", what, name);
}

typedef struct fake {
	const char *name;
	int fail;        /**< prepare returns this */
	int staged_seen; /**< commit/discard got the staged pointer prepare made */
	int token;
} fake_t;

static int f_prepare(void *arg, const conf_t *old, const conf_t *nc, void **staged, char *err,
                     size_t errlen)
{
	fake_t *f = arg;
	note("p", f->name);
	if (f->fail) {
		snprintf(err, errlen, "%s says no", f->name);
		return f->fail;
	}
	*staged = &f->token;
	return HDL_EOK;
}

static void f_commit(void *arg, const conf_t *nc, void *staged)
{
	fake_t *f = arg;
	note("c", f->name);
	if (staged == &f->token)
		f->staged_seen++;
}

static void f_discard(void *arg, void *staged)
{
	fake_t *f = arg;
	note("d", f->name);
	if (staged == &f->token)
		f->staged_seen++;
}

static reload_hook_t hook(fake_t *f, int order)
{
	return (reload_hook_t){.name = f->name,
	                       .order = order,
	                       .prepare = f_prepare,
	                       .commit = f_commit,
	                       .discard = f_discard,
	                       .arg = f};
}

static void confs(conf_t *a, conf_t *b)
{
	assert_int_equal(conf_init(a), HDL_EOK);
	assert_int_equal(conf_init(b), HDL_EOK);
}

static void test_order_and_commit(void **state)
{
	reload_t *r;
	fake_t a = {.name = "a"}, b = {.name = "b"}, c = {.name = "c"}, d = {.name = "d"};
	assert_int_equal(reload_new(2, &r), HDL_EOK);
	reload_hook_t hb = hook(&b, RELOAD_ORDER_LAST), ha = hook(&a, RELOAD_ORDER_DEFAULT),
	              hc = hook(&c, RELOAD_ORDER_FIRST), hd = hook(&d, RELOAD_ORDER_DEFAULT);
	assert_int_equal(reload_register(r, &hb), HDL_EOK);
	assert_int_equal(reload_register(r, &ha), HDL_EOK);
	assert_int_equal(reload_register(r, &hc), HDL_EOK);
	assert_int_equal(reload_register(r, &hd), HDL_EOK); /* ties: registration order */
	conf_t o, n;
	confs(&o, &n);
	reload_result_t res;
	trace[0] = '\0';
	assert_int_equal(reload_apply(r, &o, &o, &n, &res), HDL_EOK);
	assert_string_equal(trace, "p:c p:a p:d p:b c:c c:a c:d c:b");
	assert_string_equal(res.error, "");
	assert_string_equal(res.restart, "");
	assert_string_equal(res.listen, "");
	assert_int_equal(res.hooks, 4);
	assert_int_equal(a.staged_seen + b.staged_seen + c.staged_seen + d.staged_seen, 4);
	conf_free(&o);
	conf_free(&n);
	reload_free(r);
}

/* One refusal: the hooks prepared before it are discarded, the failing one too (it may have
 * staged nothing), the later ones never run, nothing commits. */
static void test_failure_discards_all(void **state)
{
	reload_t *r;
	fake_t a = {.name = "a"}, b = {.name = "b", .fail = HDL_ETLS}, c = {.name = "c"};
	assert_int_equal(reload_new(1, &r), HDL_EOK);
	reload_hook_t ha = hook(&a, 1), hb = hook(&b, 2), hc = hook(&c, 3);
	assert_int_equal(reload_register(r, &ha), HDL_EOK);
	assert_int_equal(reload_register(r, &hb), HDL_EOK);
	assert_int_equal(reload_register(r, &hc), HDL_EOK);
	conf_t o, n;
	confs(&o, &n);
	reload_result_t res;
	trace[0] = '\0';
	assert_int_equal(reload_apply(r, &o, &o, &n, &res), HDL_ETLS);
	assert_string_equal(trace, "p:a p:b d:a");
	assert_string_equal(res.error, "b: b says no");
	assert_int_equal(a.staged_seen, 1);
	assert_int_equal(c.staged_seen, 0);
	/* the same list applies cleanly once the hook agrees */
	b.fail = 0;
	trace[0] = '\0';
	assert_int_equal(reload_apply(r, &o, &o, &n, &res), HDL_EOK);
	assert_string_equal(trace, "p:a p:b p:c c:a c:b c:c");
	conf_free(&o);
	conf_free(&n);
	reload_free(r);
}

static const char *const claimed[] = {"snms_token_ttl_s", "snms_batch_max", NULL};
static const char *const listener_keys[] = {"listen", "http", "tls_listen", NULL};

static void test_restart_keys(void **state)
{
	reload_t *r;
	char err[256];
	assert_int_equal(reload_new(1, &r), HDL_EOK);
	conf_t boot, n;
	confs(&boot, &n);
	/* reloadable (limits, upstreams), restart-only (workers, site_serial, snms_token_ttl_s),
	 * listeners */
	assert_int_equal(conf_set(&n, "max_message_len", "2048", err, sizeof(err)), HDL_EOK);
	assert_int_equal(conf_set(&n, "workers", "3", err, sizeof(err)), HDL_EOK);
	assert_int_equal(conf_set(&n, "site_serial", "7", err, sizeof(err)), HDL_EOK);
	conf_clear_list(&n, "listen");
	assert_int_equal(conf_set(&n, "listen", "127.0.0.1:2700", err, sizeof(err)), HDL_EOK);
	assert_int_equal(conf_set(&n, "http", "127.0.0.1:8001", err, sizeof(err)), HDL_EOK);
	assert_int_equal(
	    conf_set(&n, "upstream", "up1 127.0.0.1:2642 transport=tcp", err, sizeof(err)),
	    HDL_EOK);
	assert_int_equal(conf_set(&n, "snms_token_ttl_s", "60", err, sizeof(err)), HDL_EOK);
	reload_result_t res;
	assert_int_equal(reload_apply(r, &boot, &boot, &n, &res), HDL_EOK);
	assert_non_null(strstr(res.restart, "workers"));
	assert_non_null(strstr(res.restart, "site_serial"));
	assert_non_null(strstr(res.restart, "listen"));
	assert_non_null(strstr(res.restart, "snms_token_ttl_s"));
	assert_null(strstr(res.restart, "upstream")); /* the schema marks it reloadable */
	assert_null(strstr(res.restart, "max_message_len"));
	/* (the first set of a list key replaces its default) */
	assert_string_equal(res.listen, "listen +127.0.0.1:2700 -127.0.0.1:2641; http "
	                                "+127.0.0.1:8001 -127.0.0.1:8000");

	/* a hook that claims restart-only keys makes them live */
	fake_t u = {.name = "snms"};
	reload_hook_t hu = hook(&u, RELOAD_ORDER_DEFAULT);
	hu.keys = claimed;
	assert_int_equal(reload_register(r, &hu), HDL_EOK);
	assert_true(reload_claims(r, "snms_batch_max"));
	assert_false(reload_claims(r, "listen"));
	assert_int_equal(reload_apply(r, &boot, &boot, &n, &res), HDL_EOK);
	assert_null(strstr(res.restart, "snms_token_ttl_s"));
	assert_non_null(strstr(res.restart, "workers"));

	/* a hook that re-binds the listeners (rebind.h) takes them out of both lists */
	fake_t l = {.name = "listeners"};
	reload_hook_t hl = hook(&l, RELOAD_ORDER_DEFAULT);
	hl.keys = listener_keys;
	assert_int_equal(reload_register(r, &hl), HDL_EOK);
	assert_int_equal(reload_apply(r, &boot, &boot, &n, &res), HDL_EOK);
	assert_null(strstr(res.restart, "listen"));
	assert_null(strstr(res.restart, "http"));
	assert_string_equal(res.listen, "");
	assert_non_null(strstr(res.restart, "workers"));
	conf_free(&boot);
	conf_free(&n);
	reload_free(r);
}

static void test_register_limits(void **state)
{
	reload_t *r;
	fake_t f = {.name = "f"};
	assert_int_equal(reload_new(1, &r), HDL_EOK);
	reload_hook_t h = hook(&f, 0);
	reload_hook_t none = {.name = "none"};
	assert_int_equal(reload_register(r, &none), HDL_EINVAL);
	assert_int_equal(reload_register(r, NULL), HDL_EINVAL);
	for (unsigned i = 0; i < RELOAD_HOOKS_MAX; i++)
		assert_int_equal(reload_register(r, &h), HDL_EOK);
	assert_int_equal(reload_register(r, &h), HDL_ENOMEM);
	reload_free(r);
}

static int freed;
static void count_free(void *p)
{
	freed++;
	free(p);
}

static void test_retire(void **state)
{
	reload_t *r;
	assert_int_equal(reload_new(3, &r), HDL_EOK);
	freed = 0;
	/* no worker online: freed at once */
	reload_retire(r, malloc(8), count_free);
	assert_int_equal(freed, 1);

	/* workers 0 and 1 online (2 stays offline); neither has passed a quiescent point since */
	reload_quiescent(r, 0);
	reload_quiescent(r, 1);
	reload_retire(r, malloc(8), count_free);
	assert_int_equal(freed, 1);
	assert_int_equal(reload_reclaim(r), 1);
	reload_quiescent(r, 0);
	assert_int_equal(reload_reclaim(r), 1); /* worker 1 may still hold it */
	assert_int_equal(freed, 1);
	reload_quiescent(r, 1);
	assert_int_equal(reload_reclaim(r), 0);
	assert_int_equal(freed, 2);

	/* a second object retired after worker 0 passed: still needs worker 0 again */
	reload_retire(r, malloc(8), count_free);
	reload_quiescent(r, 1);
	assert_int_equal(reload_reclaim(r), 1);
	/* a worker that stops never blocks reclamation */
	reload_offline(r, 0);
	assert_int_equal(reload_reclaim(r), 0);
	assert_int_equal(freed, 3);

	/* NULL is not retired; out-of-range slots and a NULL list are ignored */
	reload_retire(r, NULL, count_free);
	reload_quiescent(r, 99);
	reload_quiescent(NULL, 0);
	reload_offline(NULL, 0);

	/* what is still retired at the end is freed by reload_free (the workers are stopped) */
	reload_quiescent(r, 1);
	reload_retire(r, malloc(8), count_free);
	assert_int_equal(freed, 3);
	reload_free(r);
	assert_int_equal(freed, 4);
}

/* The retired list is bounded: when full, a stalled worker cannot make it grow. */
static void test_retire_bounded(void **state)
{
	reload_t *r;
	assert_int_equal(reload_new(1, &r), HDL_EOK);
	freed = 0;
	reload_quiescent(r, 0); /* online, and then stalled: never passes again */
	for (unsigned i = 0; i < RELOAD_RETIRED_MAX; i++)
		reload_retire(r, malloc(8), count_free);
	assert_int_equal(freed, 0);
	assert_int_equal(reload_reclaim(r), RELOAD_RETIRED_MAX);
	reload_retire(r, malloc(8), count_free); /* waits (bounded), then frees the oldest */
	assert_int_equal(freed, 1);
	assert_int_equal(reload_reclaim(r), RELOAD_RETIRED_MAX);
	reload_free(r);
	assert_int_equal(freed, RELOAD_RETIRED_MAX + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_commit), cmocka_unit_test(test_failure_discards_all),
	    cmocka_unit_test(test_restart_keys),     cmocka_unit_test(test_register_limits),
	    cmocka_unit_test(test_retire),           cmocka_unit_test(test_retire_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
