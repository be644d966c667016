/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Node logging: syslog priorities, one line per message on stderr with a UTC timestamp,
 *        the level and the worker id ("w0".."wN", "main"), and a per-thread rate limiter for
 *        messages a peer can trigger. Under systemd (LOG_TARGET_JOURNAL) each message is a
 *        structured journal record instead (node/common/sd.h): MESSAGE, PRIORITY,
 *        IDNODE_THREAD, IDNODE_PEER_TRIGGERED=1 for log_peer() lines, and the fields a caller
 *        of log_fields() adds.
 */
#ifndef HDL_NODE_COMMON_LOG_H
#define HDL_NODE_COMMON_LOG_H

#include <stdbool.h>

#define LOG_LVL_ERR 3
#define LOG_LVL_WARN 4
#define LOG_LVL_NOTICE 5
#define LOG_LVL_INFO 6
#define LOG_LVL_DEBUG 7

#if defined(__GNUC__)
#define HDL_LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HDL_LOG_PRINTF(a, b)
#endif

/** \brief Set the most verbose level printed (LOG_LVL_*); safe from any thread. */
void log_set_level(int level);
/** \return the current level. */
int log_get_level(void);
/** \brief Parse "err", "warn", "notice", "info", "debug". \return level or -1. */
int log_level_parse(const char *s);
/** \brief Name the calling thread in log lines: worker \p id, or "main" when \p id < 0. */
void log_set_thread(int id);
/** \brief True when \p level would be printed. */
bool log_enabled(int level);

#define LOG_TARGET_STDERR  0 /**< plain lines on standard error */
#define LOG_TARGET_JOURNAL 1 /**< structured records to the journal (sd_journal_sendv) */

/** \brief Where lines go (LOG_TARGET_*); safe from any thread. */
void log_set_target(int target);
/** \return the current target. */
int log_get_target(void);

/** \brief Print one line (no trailing newline needed). */
void log_msg(int level, const char *fmt, ...) HDL_LOG_PRINTF(2, 3);

/**
 * \brief log_msg() with structured fields for the journal: \p fields is a NULL-terminated list
 *        of "KEY=value" strings (upper-case keys, see sdn_journal()), ignored on standard error
 *        (the message must say what matters by itself).
 */
void log_fields(int level, const char *const *fields, const char *fmt, ...) HDL_LOG_PRINTF(3, 4);

/**
 * \brief Print a line caused by a peer (malformed input, limits), at most \p LOG_PEER_BURST
 *        lines per second per thread; suppressed lines are counted and reported once the
 *        limiter lets a line through again.
 */
void log_peer(int level, const char *fmt, ...) HDL_LOG_PRINTF(2, 3);

#define LOG_PEER_BURST 10

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                   \
	do {                                                                             \
		if (log_enabled(LOG_LVL_DEBUG))                                          \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                             \
	} while (0)

#endif /* HDL_NODE_COMMON_LOG_H */
