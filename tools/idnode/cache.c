/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief `idnode cache`, `idnode status` and `idnode reload`: clients of idnoded's control socket
 *        (node/server/control.h): one request line out, the status line and the answer back.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tools/idnode/cmds.h"

#define CONTROL_DEFAULT_SOCKET "/run/idnode/control.sock"
#define CONTROL_LINE_MAX       4096u

static void cache_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: idnode cache [--socket PATH] [--timeout MS] stats\n"
	    "       idnode cache [--socket PATH] [--timeout MS] dump [PREFIX]\n"
	    "       idnode cache [--socket PATH] [--timeout MS] flush [HANDLE]\n"
	    "       idnode status [--socket PATH] [--timeout MS]\n"
	    "       idnode reload [--socket PATH] [--timeout MS]\n"
	    "  stats          counters of the resolver cache and the queries in flight\n"
	    "  dump [PREFIX]  cached answers (all, or those of one prefix / handle)\n"
	    "  flush [HANDLE] drop every cached answer, or those of one handle\n"
	    "  reload         re-read the configuration file (as SIGHUP) and wait for the "
	    "outcome:\n"
	    "                 status 1 with the reason when the node keeps the old one\n"
	    "  --socket PATH  idnoded's control_socket (default $IDNODE_CONTROL_SOCKET, else\n"
	    "                 " CONTROL_DEFAULT_SOCKET ")\n"
	    "  --timeout MS   give up after this long (default 10000)\n"
	    "Exit status: 0 done, 1 the node refused (ERR), 2 usage, 3 cannot talk to the node.\n");
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait for \p events on \p fd until \p deadline. \return 1 ready, 0 timed out, -1 error */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			return 0;
		struct pollfd p = {fd, events, 0};
		int r = poll(&p, 1, (int)(deadline - now));
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/*
 * Send \p line to the control socket at \p path and copy the answer: its status line decides
 * the exit status, the lines after it go to stdout.
 */
static int control_call(const char *path, const char *line, unsigned timeout_ms)
{
	struct sockaddr_un sun;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "idnode: socket path too long: %s\n", path);
		return IDNODE_EXIT_USAGE;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		fprintf(stderr, "idnode: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return IDNODE_EXIT_IO;
	}
	uint64_t deadline = now_ms() + timeout_ms;
	int ret = IDNODE_EXIT_IO;
	size_t len = strlen(line), sent = 0;
	while (sent < len) {
		if (wait_fd(fd, POLLOUT, deadline) <= 0)
			goto timeout;
		ssize_t n = send(fd, line + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "idnode: send: %s\n", strerror(errno));
			goto out;
		}
		sent += n > 0 ? (size_t)n : 0;
	}
	char status[512];
	size_t sl = 0;
	bool have_status = false;
	for (;;) {
		char buf[65536];
		int w = wait_fd(fd, POLLIN, deadline);
		if (w == 0)
			goto timeout;
		ssize_t n = w < 0 ? -1 : recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			fprintf(stderr, "idnode: recv: %s\n", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		size_t at = 0;
		while (!have_status && at < (size_t)n) {
			char ch = buf[at++];
			if (ch == '\n') {
				have_status = true;
				status[sl] = '\0';
			} else if (sl + 1 < sizeof(status)) {
				status[sl++] = ch;
			}
		}
		if (have_status && at < (size_t)n)
			fwrite(buf + at, 1, (size_t)n - at, stdout);
	}
	if (!have_status) {
		fprintf(stderr, "idnode: the node closed without an answer\n");
		goto out;
	}
	if (strcmp(status, "OK") == 0) {
		ret = IDNODE_EXIT_OK;
	} else if (strncmp(status, "ERR", 3) == 0) {
		fprintf(stderr, "idnode: %s\n", status[3] ? status + 4 : "error");
		ret = IDNODE_EXIT_NOTFOUND;
	} else {
		fprintf(stderr, "idnode: unexpected answer: %s\n", status);
		ret = IDNODE_EXIT_DATA;
	}
	goto out;
timeout:
	fprintf(stderr, "idnode: no answer from %s within %u ms\n", path, timeout_ms);
out:
	fflush(stdout);
	close(fd);
	return ret;
}

/*
 * Common options, then the words of the request (joined by single spaces after \p first).
 * \return the exit status of the call, or of a usage error
 */
static int run(int argc, char **argv, const char *first, int min_words, int max_words)
{
	const char *path = getenv("IDNODE_CONTROL_SOCKET");
	unsigned timeout_ms = 10000;
	char line[CONTROL_LINE_MAX];
	size_t n = (size_t)snprintf(line, sizeof(line), "%s", first);
	int words = 0;
	if (!path || !*path)
		path = CONTROL_DEFAULT_SOCKET;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			cache_usage(stdout);
			return IDNODE_EXIT_OK;
		}
		if (strcmp(a, "--socket") == 0 && i + 1 < argc) {
			path = argv[++i];
			continue;
		}
		if (strcmp(a, "--timeout") == 0 && i + 1 < argc) {
			uint64_t v;
			if (!idnode_parse_u64(argv[++i], false, &v) || v == 0 || v > 3600000) {
				fprintf(stderr, "idnode: --timeout: 1..3600000 milliseconds\n");
				return IDNODE_EXIT_USAGE;
			}
			timeout_ms = (unsigned)v;
			continue;
		}
		if (a[0] == '-' && a[1] == '-') {
			fprintf(stderr, "idnode: unknown option %s\n", a);
			cache_usage(stderr);
			return IDNODE_EXIT_USAGE;
		}
		for (const char *p = a; *p; p++) {
			if ((unsigned char)*p < 0x20) {
				fprintf(stderr, "idnode: control characters in '%s'\n", a);
				return IDNODE_EXIT_USAGE;
			}
		}
		int l = snprintf(line + n, sizeof(line) - n, "%s%s", n ? " " : "", a);
		if (l < 0 || (size_t)l >= sizeof(line) - n) {
			fprintf(stderr, "idnode: request too long\n");
			return IDNODE_EXIT_USAGE;
		}
		n += (size_t)l;
		words++;
	}
	if (words < min_words || words > max_words) {
		cache_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	if (n + 1 >= sizeof(line)) {
		fprintf(stderr, "idnode: request too long\n");
		return IDNODE_EXIT_USAGE;
	}
	line[n++] = '\n';
	line[n] = '\0';
	return control_call(path, line, timeout_ms);
}

int cmd_cache(int argc, char **argv)
{
	/* the subcommand is the first word that is not an option or an option's value */
	const char *sub = NULL;
	for (int i = 1; i < argc && !sub; i++) {
		if (strcmp(argv[i], "--socket") == 0 || strcmp(argv[i], "--timeout") == 0)
			i++;
		else if (argv[i][0] != '-')
			sub = argv[i];
	}
	if (!sub) {
		for (int i = 1; i < argc; i++) {
			if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
				cache_usage(stdout);
				return IDNODE_EXIT_OK;
			}
		}
		cache_usage(stderr);
		return IDNODE_EXIT_USAGE;
	}
	if (strcmp(sub, "stats") == 0)
		return run(argc, argv, "cache", 1, 1);
	if (strcmp(sub, "dump") == 0 || strcmp(sub, "flush") == 0)
		return run(argc, argv, "cache", 1, 2);
	fprintf(stderr, "idnode cache: unknown subcommand '%s'\n", sub);
	cache_usage(stderr);
	return IDNODE_EXIT_USAGE;
}

int cmd_status(int argc, char **argv)
{
	return run(argc, argv, "status", 0, 0);
}

int cmd_reload(int argc, char **argv)
{
	return run(argc, argv, "reload", 0, 0);
}
