/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Test shim (LD_PRELOAD) for test_systemd.py: a journal the test can read. libsystemd
 *        sends journal records with sendmsg() to the fixed socket /run/systemd/journal/socket;
 *        this shim sends them to the socket named by HDL_TEST_JOURNAL_SOCKET instead (a Unix
 *        datagram socket the test reads). Every other sendmsg() goes to the real call.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define JOURNAL_SOCKET "/run/systemd/journal/socket"

ssize_t sendmsg(int fd, const struct msghdr *h, int flags);

ssize_t sendmsg(int fd, const struct msghdr *h, int flags)
{
	static ssize_t (*real)(int, const struct msghdr *, int);
	if (!real)
		real = (ssize_t(*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
	const struct sockaddr_un *sa = h ? h->msg_name : NULL;
	const char *to = getenv("HDL_TEST_JOURNAL_SOCKET");
	if (sa && to && h->msg_namelen > offsetof(struct sockaddr_un, sun_path) &&
	    sa->sun_family == AF_UNIX && strcmp(sa->sun_path, JOURNAL_SOCKET) == 0 &&
	    strlen(to) < sizeof(sa->sun_path)) {
		struct sockaddr_un alt;
		memset(&alt, 0, sizeof(alt));
		alt.sun_family = AF_UNIX;
		strcpy(alt.sun_path, to);
		struct msghdr m = *h;
		m.msg_name = &alt;
		m.msg_namelen = (socklen_t)sizeof(alt);
		return real(fd, &m, flags);
	}
	return real(fd, h, flags);
}
