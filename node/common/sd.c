/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief systemd notifications and journal records through libsystemd (sd.h).
 */
#define _GNU_SOURCE
#include "node/common/sd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
/* records name idnoded's own fields; CODE_FILE= would always say sd.c */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <time.h>

#define SD_FIELDS_MAX 16u
#define SD_STATUS_MAX 256u

bool sdn_enabled(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	return s && s[0];
}

/* "STATUS=" + one line of \p status, control characters replaced */
static void status_line(char *out, size_t cap, const char *status)
{
	int n = snprintf(out, cap, "STATUS=%s", status ? status : "");
	size_t len = n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
	for (size_t i = 7; i < len; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c < 0x20 || c == 0x7f)
			out[i] = '?';
	}
}

static int notify(const char *text)
{
	if (!sdn_enabled())
		return 0;
	return sd_notify(0, text);
}

int sdn_ready(const char *status)
{
	char st[SD_STATUS_MAX + 8], msg[SD_STATUS_MAX + 32];
	status_line(st, sizeof(st), status);
	snprintf(msg, sizeof(msg), "READY=1\n%s", st);
	return notify(msg);
}

int sdn_reloading(void)
{
	struct timespec ts;
	char msg[96];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
	         (unsigned long long)ts.tv_sec * 1000000ull +
	             (unsigned long long)ts.tv_nsec / 1000u);
	return notify(msg);
}

int sdn_stopping(const char *status)
{
	char st[SD_STATUS_MAX + 8], msg[SD_STATUS_MAX + 32];
	status_line(st, sizeof(st), status);
	snprintf(msg, sizeof(msg), "STOPPING=1\n%s", st);
	return notify(msg);
}

int sdn_status(const char *status)
{
	char st[SD_STATUS_MAX + 8];
	status_line(st, sizeof(st), status);
	return notify(st);
}

uint64_t sdn_watchdog_usec(void)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}

int sdn_watchdog(void)
{
	return notify("WATCHDOG=1");
}

bool sdn_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int sdn_journal(int level, const char *thread, const char *msg, const char *const *fields)
{
	struct iovec iov[SD_FIELDS_MAX + 4];
	char pri[16], thr[32], *m = NULL;
	int n = 0;
	if (asprintf(&m, "MESSAGE=%s", msg) < 0)
		return -ENOMEM;
	snprintf(pri, sizeof(pri), "PRIORITY=%d", level < 0 || level > 7 ? 3 : level);
	snprintf(thr, sizeof(thr), "IDNODE_THREAD=%s", thread ? thread : "main");
	iov[n++] = (struct iovec){m, strlen(m)};
	iov[n++] = (struct iovec){pri, strlen(pri)};
	iov[n++] = (struct iovec){(char *)"SYSLOG_IDENTIFIER=idnoded", 25};
	iov[n++] = (struct iovec){thr, strlen(thr)};
	for (unsigned i = 0; fields && fields[i] && i < SD_FIELDS_MAX; i++)
		iov[n++] = (struct iovec){(char *)fields[i], strlen(fields[i])};
	int ret = sd_journal_sendv(iov, n);
	free(m);
	return ret;
}
