/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief udp_echo: a one-thread recvmmsg/sendmmsg UDP echo server, the socket-cost ceiling peer
 *        of the benchmark suite. Every datagram goes back to its sender verbatim.
 *
 * usage: udp_echo [-b BATCH] ADDR:PORT      (pin it with taskset; SIGTERM/SIGINT stop it)
 * Prints "ready <port>" on stdout once bound (port 0 picks a free one).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 64
#define DGRAM_MAX 65536

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int bind_addr(const char *spec)
{
	char host[256];
	const char *port;
	const char *c = strrchr(spec, ':');
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb[1] != ':')
			return -1;
		snprintf(host, sizeof(host), "%.*s", (int)(rb - spec - 1), spec + 1);
		port = rb + 2;
	} else {
		if (!c)
			return -1;
		snprintf(host, sizeof(host), "%.*s", (int)(c - spec), spec);
		port = c + 1;
	}
	struct addrinfo hints, *res;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	int fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int sz = 8 << 20;
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

int main(int argc, char **argv)
{
	int batch = 16, opt;
	while ((opt = getopt(argc, argv, "b:h")) != -1) {
		if (opt == 'b' && atoi(optarg) >= 1 && atoi(optarg) <= MAX_BATCH) {
			batch = atoi(optarg);
		} else {
			fprintf(stderr, "usage: udp_echo [-b BATCH(1-%d)] ADDR:PORT\n", MAX_BATCH);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: udp_echo [-b BATCH(1-%d)] ADDR:PORT\n", MAX_BATCH);
		return 2;
	}
	int fd = bind_addr(argv[optind]);
	if (fd < 0) {
		fprintf(stderr, "udp_echo: cannot bind %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	unsigned port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
	                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	printf("ready %u\n", port);
	fflush(stdout);

	static unsigned char bufs[MAX_BATCH][DGRAM_MAX];
	static struct sockaddr_storage peers[MAX_BATCH];
	struct mmsghdr mm[MAX_BATCH];
	struct iovec iov[MAX_BATCH];
	unsigned long long echoed = 0;
	while (!stop) {
		for (int i = 0; i < batch; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = DGRAM_MAX;
			memset(&mm[i].msg_hdr, 0, sizeof(mm[i].msg_hdr));
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
			mm[i].msg_hdr.msg_name = &peers[i];
			mm[i].msg_hdr.msg_namelen = sizeof(peers[i]);
		}
		int n = recvmmsg(fd, mm, (unsigned)batch, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				break;
			struct pollfd p = {fd, POLLIN, 0};
			poll(&p, 1, 200);
			continue;
		}
		for (int i = 0; i < n; i++)
			iov[i].iov_len = mm[i].msg_len; /* the reply is the datagram as received */
		int off = 0;
		while (off < n) {
			int s = sendmmsg(fd, mm + off, (unsigned)(n - off), 0);
			if (s <= 0) {
				if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
					struct pollfd p = {fd, POLLOUT, 0};
					poll(&p, 1, 10);
					if (stop)
						break;
					continue;
				}
				off++; /* drop one that cannot be sent */
				continue;
			}
			off += s;
		}
		echoed += (unsigned long long)n;
	}
	fprintf(stderr, "udp_echo: %llu datagrams echoed\n", echoed);
	close(fd);
	return 0;
}
