/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief systemd integration (through libsystemd): the service notification protocol of
 *        sd_notify(3) for a Type=notify unit (READY=1, RELOADING=1, STOPPING=1, STATUS=,
 *        WATCHDOG=1), and structured log records for the journal (sd_journal_sendv(3)).
 *
 * Outside systemd every call is a no-op that costs a getenv at most: NOTIFY_SOCKET unset means
 * nobody listens for notifications, and stderr is the journal only when JOURNAL_STREAM names
 * the device and inode of our standard error (systemd.exec(5), "$JOURNAL_STREAM").
 */
#ifndef HDL_NODE_COMMON_SD_H
#define HDL_NODE_COMMON_SD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** \brief True when the service manager listens for notifications (NOTIFY_SOCKET is set). */
bool sdn_enabled(void);

/**
 * \brief Start-up is done (listeners bound, store open): READY=1 with a STATUS= line.
 * \retval >0 sent, 0 nobody listens, <0 -errno
 */
int sdn_ready(const char *status);

/**
 * \brief A reload begins: RELOADING=1 and MONOTONIC_USEC= (CLOCK_MONOTONIC now, in
 *        microseconds); sdn_ready() ends it.
 * \retval >0 sent, 0 nobody listens, <0 -errno
 */
int sdn_reloading(void);

/** \brief Shutdown begins: STOPPING=1 with a STATUS= line. \retval as sdn_ready() */
int sdn_stopping(const char *status);

/** \brief STATUS= alone (one line; control characters become '?'). \retval as sdn_ready() */
int sdn_status(const char *status);

/**
 * \brief The watchdog interval the service manager asks for (WATCHDOG_USEC, for this process
 *        per WATCHDOG_PID), in microseconds; 0 when none.
 */
uint64_t sdn_watchdog_usec(void);

/** \brief WATCHDOG=1: the node is alive. \retval as sdn_ready() */
int sdn_watchdog(void);

/**
 * \brief True when standard error is connected to the journal (JOURNAL_STREAM matches the
 *        device and inode of file descriptor 2).
 */
bool sdn_stderr_is_journal(void);

/**
 * \brief One structured journal record: MESSAGE=\p msg, PRIORITY=\p level (syslog),
 *        SYSLOG_IDENTIFIER=idnoded, IDNODE_THREAD=\p thread, and \p fields ("KEY=value"
 *        strings, NULL-terminated list, may be NULL; KEY in upper case, letters, digits and
 *        '_', not starting with '_').
 * \retval 0 sent, <0 -errno (the caller falls back to standard error)
 */
int sdn_journal(int level, const char *thread, const char *msg, const char *const *fields);

#endif /* HDL_NODE_COMMON_SD_H */
