/* SPDX-License-Identifier: Apache-2.0 */
#include "node/common/log.h"

#include "node/common/sd.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static atomic_int g_level = LOG_LVL_INFO;
static atomic_int g_target = LOG_TARGET_STDERR;
static _Thread_local int t_id = -1;
static _Thread_local time_t t_rl_sec;
static _Thread_local unsigned t_rl_count;
static _Thread_local unsigned long t_rl_dropped;

static const char *const level_names[] = {
	"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
};

void log_set_level(int level)
{
	if (level < LOG_LVL_ERR)
		level = LOG_LVL_ERR;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;
	atomic_store_explicit(&g_level, level, memory_order_relaxed);
}

int log_get_level(void)
{
	return atomic_load_explicit(&g_level, memory_order_relaxed);
}

int log_level_parse(const char *s)
{
	for (int i = LOG_LVL_ERR; i <= LOG_LVL_DEBUG; i++) {
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	}
	if (strcasecmp(s, "error") == 0)
		return LOG_LVL_ERR;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LVL_WARN;
	return -1;
}

void log_set_thread(int id)
{
	t_id = id;
}

bool log_enabled(int level)
{
	return level <= log_get_level();
}

void log_set_target(int target)
{
	atomic_store_explicit(&g_target, target, memory_order_relaxed);
}

int log_get_target(void)
{
	return atomic_load_explicit(&g_target, memory_order_relaxed);
}

HDL_LOG_PRINTF(3, 0)
static void vlog(int level, const char *const *fields, const char *fmt, va_list ap)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	char who[16];
	if (t_id < 0)
		snprintf(who, sizeof(who), "main");
	else
		snprintf(who, sizeof(who), "w%d", t_id);
	if (log_get_target() == LOG_TARGET_JOURNAL) {
		/* journald stamps the time and keeps the level and thread as fields */
		vsnprintf(line, sizeof(line), fmt, ap);
		size_t len = strnlen(line, sizeof(line) - 1);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)line[i];
			if (c < 0x20 || c == 0x7f)
				line[i] = '?';
		}
		if (sdn_journal(level, who, line, fields) >= 0)
			return;
		/* the journal is gone: say it on standard error */
		fprintf(stderr, "[%s] [%s] %s\n", level_names[level < 0 || level > 7 ? 3 : level],
		        who, line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] [%s] ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000L,
	                 level_names[level < 0 || level > 7 ? 3 : level], who);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	size_t len = strnlen(line, sizeof(line) - 2);
	/* one write per line so lines from threads do not interleave; strip control bytes */
	for (size_t i = (size_t)n; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f)
			line[i] = '?';
	}
	line[len++] = '\n';
	fwrite(line, 1, len, stderr);
}

void log_msg(int level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, NULL, fmt, ap);
	va_end(ap);
}

void log_fields(int level, const char *const *fields, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fields, fmt, ap);
	va_end(ap);
}

void log_peer(int level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	time_t now = time(NULL);
	if (now != t_rl_sec) {
		if (t_rl_dropped) {
			unsigned long d = t_rl_dropped;
			t_rl_dropped = 0;
			log_msg(LOG_LVL_NOTICE, "rate limit: %lu peer-triggered log lines suppressed", d);
		}
		t_rl_sec = now;
		t_rl_count = 0;
	}
	if (t_rl_count >= LOG_PEER_BURST) {
		t_rl_dropped++;
		return;
	}
	t_rl_count++;
	static const char *const peer_fields[] = {"IDNODE_PEER_TRIGGERED=1", NULL};
	va_list ap;
	va_start(ap, fmt);
	vlog(level, peer_fields, fmt, ap);
	va_end(ap);
}
