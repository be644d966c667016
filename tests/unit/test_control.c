/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The control socket (node/server/control.c) on its own event loop thread, with real
 *        Unix-socket clients: the protocol (status line, help, unknown and empty requests, CRLF,
 *        a request ended by EOF), the `cache` command over a real dcache (stats, dump with a
 *        prefix and the dump limit, flush of one handle and of all), the socket file (mode,
 *        stale file replaced, other files and live sockets refused, unlink at close), and the
 *        limits attacked: many clients, long lines, clients that send nothing, drip bytes or do
 *        not read their answer. Also the configuration checks of the control_* and resolver_*
 *        keys.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/common/log.h"
#include "node/conf/conf.h"
#include "node/resolver/dcache.h"
#include "node/resolver/dflight.h"
#include "node/resolver/rnode.h"
#include "node/server/control.h"
#include "node/server/node.h"

typedef struct fixture {
	char dir[64];
	char path[128];
	struct event_base *base;
	pthread_t loop;
	bool running;
	control_t *ctl;
	node_shared_t node;
} fixture_t;

static fixture_t F;

static void *loop_main(void *arg)
{
	event_base_loop(arg, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static int cmd_echo(void *arg, const char *args, control_out_t *out)
{
	if (strcmp(args, "fail") == 0)
		return control_fail(out, "asked to fail\nwith a second line");
	control_printf(out, "[%s]\n", args);
	return 0;
}

/* An answer of 4 MiB: more than a Unix socket buffers. */
static int cmd_big(void *arg, const char *args, control_out_t *out)
{
	static char line[1024];
	memset(line, 'b', sizeof(line) - 2);
	line[sizeof(line) - 2] = '\n';
	for (int i = 0; i < 4096; i++)
		control_printf(out, "%s", line);
	return 0;
}

/* Open the control socket with these limits and run its loop on a thread. */
static void start(unsigned max_clients, uint32_t max_line, uint32_t timeout_ms)
{
	control_opts_t o = {.path = F.path,
	                    .mode = 0600,
	                    .max_clients = max_clients,
	                    .max_line = max_line,
	                    .timeout_ms = timeout_ms};
	char err[256];
	int ret = control_open(F.base, &o, &F.ctl, err, sizeof(err));
	if (ret != HDL_EOK)
		fail_msg("control_open: %s", err);
	assert_int_equal(control_register(F.ctl, "echo", "echo WORDS", cmd_echo, NULL), HDL_EOK);
	assert_int_equal(control_register(F.ctl, "big", "big", cmd_big, NULL), HDL_EOK);
	assert_int_equal(control_register(F.ctl, "echo", "again", cmd_echo, NULL), HDL_EEXIST);
	assert_int_equal(control_register(F.ctl, "two words", "x", cmd_echo, NULL), HDL_EINVAL);
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	c.control_dump_max = 3;
	assert_int_equal(rnode_register_commands((struct control *)F.ctl, &F.node, &c), HDL_EOK);
	conf_free(&c);
	assert_int_equal(pthread_create(&F.loop, NULL, loop_main, F.base), 0);
	F.running = true;
}

/* Stop the loop thread (the control socket stays open but is no longer served). */
static control_stats_t stop(void)
{
	control_stats_t st = {0};
	if (F.running) {
		event_base_loopexit(F.base, NULL);
		pthread_join(F.loop, NULL);
		F.running = false;
	}
	if (F.ctl)
		control_get_stats(F.ctl, &st);
	return st;
}

static int setup(void **state)
{
	memset(&F, 0, sizeof(F));
	log_set_level(LOG_LVL_ERR);
	assert_int_equal(evthread_use_pthreads(), 0);
	F.base = event_base_new();
	assert_non_null(F.base);
	strcpy(F.dir, "/tmp/idnode-test-control-XXXXXX");
	assert_non_null(mkdtemp(F.dir));
	snprintf(F.path, sizeof(F.path), "%s/c.sock", F.dir);
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	c.resolver_cache_size = 1u << 20;
	assert_int_equal(rnode_setup(&F.node, &c), HDL_EOK);
	conf_free(&c);
	return 0;
}

static int teardown(void **state)
{
	stop();
	control_close(F.ctl);
	struct stat st;
	assert_int_not_equal(lstat(F.path, &st), 0); /* unlinked at close */
	rnode_free(&F.node);
	event_base_free(F.base);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* ---- client helpers ------------------------------------------------------------------------- */

static int client(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, F.path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Read until EOF (at most cap - 1 bytes kept, the rest drained); -1 on a receive timeout. */
static long read_all(int fd, char *out, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char buf[8192];
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET)
			break;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		size_t keep = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
		memcpy(out + n, buf, keep);
		n += keep;
	}
	out[n] = '\0';
	return (long)n;
}

/* One request (sent as given), the whole answer. */
static const char *ask_raw(const char *req, size_t len)
{
	static char out[65536];
	int fd = client();
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	assert_true(read_all(fd, out, sizeof(out)) >= 0);
	close(fd);
	return out;
}

static const char *ask(const char *line)
{
	static char req[4096];
	snprintf(req, sizeof(req), "%s\n", line);
	return ask_raw(req, strlen(req));
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- protocol ------------------------------------------------------------------------------- */

static void test_protocol(void **state)
{
	(void)state;
	start(4, 256, 5000);
	assert_string_equal(ask("echo  a  b "), "OK\n[a  b]\n");
	assert_string_equal(ask("echo"), "OK\n[]\n");
	assert_string_equal(ask("echo fail"), "ERR asked to fail with a second line\n");
	assert_string_equal(ask_raw("echo crlf\r\n", 11), "OK\n[crlf]\n");
	/* a request ended by the client's EOF instead of a newline */
	int fd = client();
	assert_int_equal(send(fd, "echo eof", 8, 0), 8);
	shutdown(fd, SHUT_WR);
	char out[256];
	assert_true(read_all(fd, out, sizeof(out)) > 0);
	assert_string_equal(out, "OK\n[eof]\n");
	close(fd);
	/* bytes after the line are ignored; only one request per connection */
	assert_string_equal(ask_raw("echo one\necho two\n", 18), "OK\n[one]\n");
	const char *help = ask("help");
	assert_non_null(strstr(help, "OK\nhelp\necho WORDS\nbig\ncache stats"));
	assert_string_equal(ask("nosuch"), "ERR unknown command (try: help)\n");
	assert_string_equal(ask(""), "ERR empty request (try: help)\n");
	assert_string_equal(ask_raw("echo \x01x\n", 8), "ERR control characters in the request\n");
	/* a client that connects and closes at once */
	close(client());
	control_stats_t st = stop();
	assert_int_equal(st.commands, 6);
	assert_int_equal(st.errors, 4);
}

static void put(const char *handle, uint32_t rcode)
{
	uint8_t k[256], vals[512];
	size_t vl = 0;
	hdl_value_t v = {.index = 1,
	                 .ttl_type = HDL_TTL_RELATIVE,
	                 .ttl = 300,
	                 .perms = HDL_PERM_DEFAULT,
	                 .type = hdl_slice_str("URL"),
	                 .data = hdl_slice_str("http://example.org/")};
	assert_int_equal(hdl_values_encode(&v, 1, vals, sizeof(vals), &vl), HDL_EOK);
	size_t kl = dcache_key(k, sizeof(k), hdl_slice_str(handle), NULL, 0, NULL, 0, true);
	assert_int_equal(dcache_put(F.node.dcache, k, kl, rcode, vals, vl), HDL_EOK);
}

/* Every " ttl=N" in \p s has lo <= N <= hi (the cache runs on the real clock here). */
static bool ttls_in(const char *s, int lo, int hi)
{
	int seen = 0;
	for (const char *p = strstr(s, " ttl="); p; p = strstr(p + 1, " ttl=")) {
		int v = atoi(p + 5);
		if (v < lo || v > hi)
			return false;
		seen++;
	}
	return seen > 0;
}

static void test_cache_commands(void **state)
{
	(void)state;
	start(4, 256, 5000);
	put("88.100.2/A", HDL_RC_SUCCESS);
	put("88.100.2/B", HDL_RC_SUCCESS);
	put("88.100.3/C", HDL_RC_HANDLE_NOT_FOUND);
	put("88.100.3/D", HDL_RC_SUCCESS);
	const char *s = ask("cache stats");
	assert_true(strncmp(s, "OK\n", 3) == 0);
	assert_non_null(strstr(s, "\nentries 4\n"));
	assert_non_null(strstr(s, "\ninserts 4\n"));
	assert_non_null(strstr(s, "\nmax_bytes 1048576\n"));
	assert_non_null(strstr(s, "\ninflight_keys 0\n"));

	/* one prefix (a naming authority, case-insensitive) */
	s = ask("cache dump 88.100.2");
	assert_true(strncmp(s, "OK\n", 3) == 0);
	assert_non_null(strstr(s, "88.100.2/A po rc=1 values=1 bytes="));
	assert_non_null(strstr(s, "88.100.2/B po rc=1 values=1 bytes="));
	assert_null(strstr(s, "88.100.3"));
	assert_true(ttls_in(s, 290, 300));
	assert_non_null(strstr(s, "\n# 2 entries\n"));
	s = ask("cache dump 88.100.3/c");
	assert_non_null(strstr(s, "88.100.3/C po rc=100 values=0 bytes=0 ttl="));
	assert_true(ttls_in(s, 50, 60));
	assert_non_null(strstr(s, "\n# 1 entries\n"));
	/* everything: control_dump_max (3) stops the list */
	s = ask("cache dump");
	assert_non_null(strstr(s, "\n# stopped after 3 entries (control_dump_max)\n"));
	assert_string_equal(ask("cache dump a b"), "ERR usage: cache dump [PREFIX]\n");

	/* flush one handle: spelled in any case, normalized as the cache keys it */
	assert_string_equal(ask("cache flush 88.100.2/a"), "OK\nflushed 1 entries of 88.100.2/A\n");
	assert_string_equal(ask("cache flush 88.100.2/a"), "OK\nflushed 0 entries of 88.100.2/A\n");
	assert_non_null(strstr(ask("cache stats"), "\nentries 3\n"));
	assert_string_equal(ask("cache flush \xff"), "ERR not a valid handle\n");
	assert_string_equal(ask("cache flush"), "OK\nflushed 3 entries\n");
	s = ask("cache stats");
	assert_non_null(strstr(s, "\nentries 0\n"));
	assert_non_null(strstr(s, "\nflushes 1\n"));
	assert_non_null(strstr(s, "\ninvalidations 1\n"));
	assert_true(strncmp(ask("cache"), "ERR usage: cache stats", 22) == 0);
	assert_true(strncmp(ask("cache stats now"), "ERR usage", 9) == 0);
	stop();
}

/* ---- the socket file ------------------------------------------------------------------------ */

static void test_socket_file(void **state)
{
	(void)state;
	char err[256];
	struct stat st;
	control_opts_t o = {
	    .path = F.path, .mode = 0600, .max_clients = 1, .max_line = 64, .timeout_ms = 1000};
	/* a stale socket file (bound, never unlinked, nobody listening) is replaced */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strcpy(sun.sun_path, F.path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(control_open(F.base, &o, &F.ctl, err, sizeof(err)), HDL_EOK);
	assert_int_equal(lstat(F.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a second instance finds a live socket there */
	control_t *two = NULL;
	assert_int_equal(control_open(F.base, &o, &two, err, sizeof(err)), HDL_EEXIST);
	assert_non_null(strstr(err, "another process is listening"));
	assert_null(two);
	control_close(F.ctl);
	F.ctl = NULL;
	assert_int_not_equal(lstat(F.path, &st), 0);

	/* another kind of file is never removed */
	FILE *f = fopen(F.path, "w");
	assert_non_null(f);
	fputs("keep me", f);
	fclose(f);
	assert_int_equal(control_open(F.base, &o, &two, err, sizeof(err)), HDL_EEXIST);
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(lstat(F.path, &st), 0);
	assert_int_equal(st.st_size, 7);
	unlink(F.path);

	/* mode as configured; a file put in its place later is not unlinked at close */
	o.mode = 0660;
	assert_int_equal(control_open(F.base, &o, &F.ctl, err, sizeof(err)), HDL_EOK);
	assert_int_equal(lstat(F.path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	char moved[160];
	snprintf(moved, sizeof(moved), "%s/moved", F.dir);
	assert_int_equal(rename(F.path, moved), 0);
	f = fopen(F.path, "w");
	assert_non_null(f);
	fclose(f);
	control_close(F.ctl);
	assert_int_equal(lstat(F.path, &st), 0);
	unlink(F.path);
	unlink(moved);

	/* refusals */
	char longp[CONF_UNIX_PATH_MAX + 8];
	memset(longp, 'x', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	o.path = longp;
	assert_int_equal(control_open(F.base, &o, &F.ctl, err, sizeof(err)), HDL_EINVAL);
	o.path = F.path;
	o.max_clients = 0;
	assert_int_equal(control_open(F.base, &o, &F.ctl, err, sizeof(err)), HDL_EINVAL);
	o.max_clients = 1;
	o.mode = 01777;
	assert_int_equal(control_open(F.base, &o, &F.ctl, err, sizeof(err)), HDL_EINVAL);
	/* the teardown checks the path is gone */
	F.ctl = NULL;
}

/* ---- limits attacked ------------------------------------------------------------------------ */

static void test_many_clients(void **state)
{
	(void)state;
	start(2, 64, 3000);
	int a = client(), b = client();
	/* both are accepted (answered later); the third is told busy and closed */
	char out[256];
	int c = client();
	assert_true(read_all(c, out, sizeof(out)) >= 0);
	assert_string_equal(out, "ERR busy\n");
	close(c);
	/* many more at once: all refused, the node keeps serving the two it has */
	for (int i = 0; i < 20; i++) {
		c = client();
		assert_true(read_all(c, out, sizeof(out)) >= 0);
		assert_string_equal(out, "ERR busy\n");
		close(c);
	}
	assert_int_equal(send(a, "echo a\n", 7, 0), 7);
	assert_true(read_all(a, out, sizeof(out)) >= 0);
	assert_string_equal(out, "OK\n[a]\n");
	close(a);
	/* once a slot is free a new client gets in (the server sees the close asynchronously) */
	bool served = false;
	uint64_t until = now_ms() + 5000;
	while (!served && now_ms() < until) {
		c = client();
		assert_int_equal(send(c, "echo c\n", 7, MSG_NOSIGNAL), 7);
		assert_true(read_all(c, out, sizeof(out)) >= 0);
		close(c);
		served = strcmp(out, "OK\n[c]\n") == 0;
		if (!served)
			usleep(20000);
	}
	assert_true(served);
	close(b);
	control_stats_t st = stop();
	assert_true(st.busy >= 21);
	assert_true(st.accepted >= 3);
}

static void test_long_lines(void **state)
{
	(void)state;
	start(4, 64, 3000);
	char line[128];
	/* exactly the limit: fine (5 + 59 bytes) */
	memset(line, 'x', sizeof(line));
	memcpy(line, "echo ", 5);
	line[64] = '\n';
	const char *s = ask_raw(line, 65);
	assert_true(strncmp(s, "OK\n[xxx", 7) == 0);
	/* one byte more, with its newline */
	line[64] = 'x';
	line[65] = '\n';
	assert_string_equal(ask_raw(line, 66), "ERR line too long\n");
	/* a flood without a newline is refused after the limit, not buffered */
	static char flood[1 << 20];
	memset(flood, 'y', sizeof(flood));
	int fd = client();
	size_t sent = 0;
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (sent < sizeof(flood)) {
		ssize_t n = send(fd, flood + sent, sizeof(flood) - sent, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the server closed, or stopped reading */
		sent += (size_t)n;
	}
	char out[256];
	assert_true(read_all(fd, out, sizeof(out)) >= 0);
	assert_string_equal(out, "ERR line too long\n");
	close(fd);
	control_stats_t st = stop();
	assert_int_equal(st.too_long, 2);
	assert_int_equal(st.commands, 1);
}

static void test_slow_clients(void **state)
{
	(void)state;
	start(4, 64, 600);
	char out[256];
	/* sends nothing: cut at the deadline */
	uint64_t t0 = now_ms();
	int idle = client();
	assert_true(read_all(idle, out, sizeof(out)) >= 0);
	assert_string_equal(out, "");
	assert_true(now_ms() - t0 >= 500);
	close(idle);
	/* drips a byte every 100 ms without ever finishing its line: cut at the deadline too */
	int drip = client();
	t0 = now_ms();
	bool cut = false;
	for (int i = 0; i < 100 && !cut; i++) {
		if (send(drip, "e", 1, MSG_NOSIGNAL) != 1)
			cut = true;
		struct pollfd p = {drip, POLLIN, 0};
		if (poll(&p, 1, 100) > 0)
			cut = true;
	}
	assert_true(cut);
	assert_true(now_ms() - t0 < 8000);
	close(drip);
	/* asks for 4 MiB and reads none of it: others are served meanwhile, it is cut later */
	int lazy = client();
	assert_int_equal(send(lazy, "big\n", 4, 0), 4);
	usleep(100000);
	assert_string_equal(ask("echo meanwhile"), "OK\n[meanwhile]\n");
	usleep(800000);
	long got = 0;
	char buf[65536];
	for (;;) {
		ssize_t r = recv(lazy, buf, sizeof(buf), 0);
		if (r <= 0)
			break;
		got += r;
	}
	assert_true(got < 4 * 1024 * 1024); /* never got it all: the connection was cut */
	close(lazy);
	control_stats_t st = stop();
	assert_int_equal(st.timed_out, 3);
	assert_int_equal(st.clients, 0);
}

/* ---- configuration -------------------------------------------------------------------------- */

static int conf_text(const char *text, char *err, size_t errlen)
{
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	int ret = conf_load_buf(&c, "t.conf", text, strlen(text), err, errlen);
	if (ret == HDL_EOK)
		ret = conf_validate(&c, err, errlen);
	conf_free(&c);
	return ret;
}

static void test_conf_keys(void **state)
{
	(void)state;
	char err[256];
	conf_t c;
	assert_int_equal(conf_init(&c), HDL_EOK);
	assert_int_equal(c.resolver_cache_size, 64u << 20);
	assert_int_equal(c.resolver_max_ttl, 86400);
	assert_int_equal(c.resolver_negative_ttl, 60);
	assert_int_equal(c.resolver_stale_max, 86400);
	assert_int_equal(c.resolver_prefetch_pct, 10);
	assert_string_equal(c.control_socket, "");
	assert_int_equal(conf_socket_mode(c.control_socket_mode), 0660);
	conf_free(&c);
	assert_int_equal(
	    conf_text("resolver_min_ttl = 60\nresolver_max_ttl = 30\n", err, sizeof(err)),
	    HDL_ECONF);
	assert_non_null(strstr(err, "resolver_min_ttl"));
	assert_int_equal(conf_text("control_socket_mode = 0980\n", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_text("control_socket_mode = 10000\n", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_text("control_socket_mode = 0600\n", err, sizeof(err)), HDL_EOK);
	assert_int_equal(conf_text("resolver_prefetch_pct = 51\n", err, sizeof(err)), HDL_ECONF);
	assert_int_equal(conf_text("control_max_line = 10\n", err, sizeof(err)), HDL_ECONF);
	char text[512];
	snprintf(text, sizeof(text), "control_socket = /%0*d\n", (int)CONF_UNIX_PATH_MAX, 0);
	assert_int_equal(conf_text(text, err, sizeof(err)), HDL_ECONF);
	assert_non_null(strstr(err, "control_socket: path longer"));
	assert_int_equal(conf_socket_mode("777"), 0777);
	assert_int_equal(conf_socket_mode(""), -1);
	assert_int_equal(conf_socket_mode(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_protocol, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cache_commands, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_socket_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_clients, setup, teardown),
	    cmocka_unit_test(test_conf_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
