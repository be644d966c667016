/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Test shim (LD_PRELOAD) for test_udp_big.py: a kernel without UDP segmentation offload.
 *        sendmmsg() and sendmsg() fail with EIO on a message carrying a UDP_SEGMENT control
 *        message, as the kernel does where the device cannot segment, so that idnoded's
 *        fallback (every datagram sent on its own) is what the client sees. Everything else
 *        goes to the real calls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags);
ssize_t sendmsg(int fd, const struct msghdr *h, int flags);

static bool has_gso(const struct msghdr *h)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR((struct msghdr *)h); cm;
	     cm = CMSG_NXTHDR((struct msghdr *)h, cm)) {
		if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_SEGMENT)
			return true;
	}
	return false;
}

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags)
{
	static int (*real)(int, struct mmsghdr *, unsigned int, int);
	if (!real)
		real = (int (*)(int, struct mmsghdr *, unsigned int, int))dlsym(RTLD_NEXT, "sendmmsg");
	unsigned int ok = 0;
	while (ok < n && !has_gso(&v[ok].msg_hdr))
		ok++;
	if (ok == 0 && n > 0) {
		errno = EIO;
		return -1;
	}
	return real(fd, v, ok, flags); /* up to the first GSO message, as a partial send */
}

ssize_t sendmsg(int fd, const struct msghdr *h, int flags)
{
	static ssize_t (*real)(int, const struct msghdr *, int);
	if (!real)
		real = (ssize_t(*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
	if (has_gso(h)) {
		errno = EIO;
		return -1;
	}
	return real(fd, h, flags);
}
