/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief systemd integration (node/common/sd.c) against a test NOTIFY_SOCKET: nothing is sent
 *        without one; READY=1 / RELOADING=1 + MONOTONIC_USEC / STOPPING=1 / STATUS= / WATCHDOG=1
 *        as sd_notify(3) expects them (a STATUS line cannot carry a second line); the watchdog
 *        interval from WATCHDOG_USEC and WATCHDOG_PID; stderr recognised as the journal only when
 *        JOURNAL_STREAM names it; and the watchdog's stall test over the workers' stamps
 *        (worker_stalled()).
 */
#include <fcntl.h>
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

#include "node/common/sd.h"
#include "node/server/worker.h"

static char dir[64], sock_path[128];
static int sock = -1;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/idnode-sd-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock_path, sizeof(sock_path), "%s/notify", dir);
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(sock >= 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strcpy(sun.sun_path, sock_path);
	assert_int_equal(bind(sock, (struct sockaddr *)&sun, sizeof(sun)), 0);
	struct timeval tv = {2, 0};
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return 0;
}

static int teardown(void **state)
{
	close(sock);
	unlink(sock_path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
	return 0;
}

/* the next datagram, NUL-terminated ("" after 2 s) */
static const char *next(void)
{
	static char buf[1024];
	ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_notify(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_false(sdn_enabled());
	assert_int_equal(sdn_ready("x"), 0); /* nobody listens: nothing sent, no error */
	assert_int_equal(sdn_watchdog(), 0);

	setenv("NOTIFY_SOCKET", sock_path, 1);
	assert_true(sdn_enabled());
	assert_true(sdn_ready("serving: 3 handles") > 0);
	assert_string_equal(next(), "READY=1\nSTATUS=serving: 3 handles");
	/* a STATUS line cannot smuggle another assignment in */
	assert_true(sdn_status("bad\nREADY=1\x7f") > 0);
	assert_string_equal(next(), "STATUS=bad?READY=1?");

	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long before = (unsigned long long)ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
	assert_true(sdn_reloading() > 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long after = (unsigned long long)ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
	unsigned long long us = 0;
	assert_int_equal(sscanf(next(), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading", &us),
	                 1);
	assert_true(us >= before && us <= after);

	assert_true(sdn_stopping("draining") > 0);
	assert_string_equal(next(), "STOPPING=1\nSTATUS=draining");
	assert_true(sdn_watchdog() > 0);
	assert_string_equal(next(), "WATCHDOG=1");
	/* a status longer than a line is cut, not overflowed */
	char big[2000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_true(sdn_ready(big) > 0);
	const char *got = next();
	assert_true(strncmp(got, "READY=1\nSTATUS=aaaa", 19) == 0 && strlen(got) < 300);
}

static void test_watchdog_usec(void **state)
{
	char pid[32];
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sdn_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(sdn_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdn_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1); /* meant for another process */
	assert_int_equal(sdn_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "nonsense", 1);
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sdn_watchdog_usec(), 0);
	unsetenv("WATCHDOG_USEC");
}

static void test_journal_stream(void **state)
{
	char path[128], js[64];
	snprintf(path, sizeof(path), "%s/stderr", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	int saved = dup(2);
	assert_true(saved >= 0);
	dup2(fd, 2);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);

	unsetenv("JOURNAL_STREAM");
	assert_false(sdn_stderr_is_journal());
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	assert_true(sdn_stderr_is_journal());
	/* a child's stderr that went elsewhere keeps the variable but is not the journal */
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", js, 1);
	assert_false(sdn_stderr_is_journal());
	setenv("JOURNAL_STREAM", "garbage", 1);
	assert_false(sdn_stderr_is_journal());
	unsetenv("JOURNAL_STREAM");

	dup2(saved, 2);
	close(saved);
	close(fd);
	unlink(path);
}

static void test_stalled(void **state)
{
	worker_t w[3];
	memset(w, 0, sizeof(w));
	for (int i = 0; i < 3; i++)
		atomic_store(&w[i].alive_ms, 100000);
	assert_int_equal(worker_stalled(w, 3, 100500, 30000), -1);
	/* 31 s without a tick with a 30 s watchdog: worker 1 is stalled */
	atomic_store(&w[0].alive_ms, 131000);
	atomic_store(&w[2].alive_ms, 131000);
	assert_int_equal(worker_stalled(w, 3, 131000, 30000), 1);
	/* a short watchdog interval still waits for two missed ticks */
	assert_int_equal(worker_stalled(w, 3, 101500, 200), -1);
	assert_int_equal(worker_stalled(w, 3, 102001, 200), 1);
	/* a stamp from after now (clock read order) is not a stall */
	assert_int_equal(worker_stalled(w, 1, 99000, 200), -1);
	assert_int_equal(worker_stalled(w, 0, 999999, 200), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
	    cmocka_unit_test(test_watchdog_usec),
	    cmocka_unit_test_setup_teardown(test_journal_stream, setup, teardown),
	    cmocka_unit_test(test_stalled),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
