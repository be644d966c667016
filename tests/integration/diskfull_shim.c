/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief LD_PRELOAD library for tests: a disk that fills up. With IDNODE_DISKFULL_BYTES=N in the
 *        environment, writes to files named data.mdb (the LMDB data file) get N bytes in all;
 *        the write that crosses the limit is cut short (as on a real full disk) and the ones
 *        after it fail with ENOSPC, and from then on statvfs()/fstatvfs() report no free
 *        blocks. Other files, and processes without the variable, are untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_llong left = -2; /* -2: not read yet, -1: no limit */

static long long budget(void)
{
	long long v = atomic_load(&left);
	if (v == -2) {
		const char *e = getenv("IDNODE_DISKFULL_BYTES");
		long long want = e && *e ? atoll(e) : -1;
		long long expect = -2;
		atomic_compare_exchange_strong(&left, &expect, want < 0 ? -1 : want);
		v = atomic_load(&left);
	}
	return v;
}

static bool is_data_file(int fd)
{
	char link[64], path[4096];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n < 9)
		return false;
	path[n] = '\0';
	return strcmp(path + n - 9, "/data.mdb") == 0;
}

/** Bytes of a \p want-byte write to let through: all, fewer (the disk fills), or -1 (full). */
static long long take(int fd, size_t want)
{
	if (budget() < 0 || !is_data_file(fd))
		return (long long)want;
	for (;;) {
		long long v = atomic_load(&left);
		if (v <= 0)
			return -1;
		long long give = (long long)want < v ? (long long)want : v;
		if (atomic_compare_exchange_weak(&left, &v, v - give))
			return give;
	}
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);
	if (!real)
		real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
	long long give = take(fd, n);
	if (give < 0) {
		errno = ENOSPC;
		return -1;
	}
	return real(fd, buf, (size_t)give, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	if (!real)
		real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	long long give = take(fd, n);
	if (give < 0) {
		errno = ENOSPC;
		return -1;
	}
	return real(fd, buf, (size_t)give);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	static ssize_t (*real)(int, const struct iovec *, int);
	size_t total = 0;
	if (!real)
		real = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
	for (int i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	long long give = take(fd, total);
	if (give < 0) {
		errno = ENOSPC;
		return -1;
	}
	if ((size_t)give == total)
		return real(fd, iov, cnt);
	/* a short write: part of the first buffer */
	struct iovec one = {iov[0].iov_base,
	                    (size_t)give < iov[0].iov_len ? (size_t)give : iov[0].iov_len};
	return real(fd, &one, 1);
}

static void report_full(struct statvfs *st)
{
	if (budget() >= 0 && atomic_load(&left) <= 0) {
		st->f_bfree = 0;
		st->f_bavail = 0;
	}
}

int statvfs(const char *path, struct statvfs *st)
{
	static int (*real)(const char *, struct statvfs *);
	if (!real)
		real = (int (*)(const char *, struct statvfs *))dlsym(RTLD_NEXT, "statvfs");
	int rc = real(path, st);
	if (rc == 0)
		report_full(st);
	return rc;
}

int fstatvfs(int fd, struct statvfs *st)
{
	static int (*real)(int, struct statvfs *);
	if (!real)
		real = (int (*)(int, struct statvfs *))dlsym(RTLD_NEXT, "fstatvfs");
	int rc = real(fd, st);
	if (rc == 0)
		report_full(st);
	return rc;
}
