/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Start-up checks of idnoded: the database directory must exist, one idnoded per
 *        database (a lock file), and no other process may already serve our addresses.
 *
 * Our workers bind every address with SO_REUSEPORT, so a second idnoded (or any program that
 * also sets it) could bind the same ports and silently take part of the traffic. Before binding,
 * each address is bound once without SO_REUSEPORT: that fails when anyone holds it. The holder
 * is then looked up in /proc/net/{tcp,tcp6,udp,udp6} (socket inode) and /proc/[pid]/fd (which
 * process has that socket), where readable, to name it in the message.
 */
#ifndef HDL_NODE_SERVER_STARTUP_H
#define HDL_NODE_SERVER_STARTUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "node/conf/conf.h"
#include "node/store/store.h"

#define STARTUP_LOCK_NAME "idnoded.lock" /**< lock file in the database directory */

/**
 * \brief The database directory \p db must exist (a mistyped path must not create an empty
 *        store); an existing directory without a store is fine (a new one is created there).
 * \param[out] fresh true when \p db holds no store yet
 * \param err on failure, what is wrong and how to create a store
 * \retval HDL_EOK, HDL_ENOENT (no such directory), HDL_EINVAL (not a directory), HDL_EIO
 */
int startup_db_check(const char *db, bool *fresh, char *err, size_t errlen);

/**
 * \brief Take the lock of database \p db: an exclusive flock() on db/STARTUP_LOCK_NAME, which
 *        then holds this process's id. The lock lasts while \p *fd stays open (until exit).
 * \param err on failure; names the process id of the holder when another idnoded has it
 * \retval HDL_EOK (\p *fd set), HDL_EEXIST (held by another process), HDL_EIO
 */
int startup_db_lock(const char *db, int *fd, char *err, size_t errlen);

/**
 * \brief Check that no other socket holds any UDP+TCP address of \p c->listen or TCP address of
 *        \p c->http (a probe bind without SO_REUSEPORT).
 * \param err on failure: "ADDR/proto: bind: address already in use by NAME (pid N) ..."
 * \retval HDL_EOK, HDL_EEXIST (an address is taken), HDL_EINVAL (a bad address), HDL_EIO
 */
int startup_ports_check(const conf_t *c, char *err, size_t errlen);

/**
 * \brief Check that no socket holds \p addr (\p type SOCK_DGRAM or SOCK_STREAM): bind it once
 *        without SO_REUSEPORT, as startup_ports_check() does for each address (also used by a
 *        reload that adds listeners, node/server/rebind.h).
 * \param err on failure: "ADDR/proto: bind: address already in use by NAME (pid N) ...", or
 *        the bind error ("ADDR/proto: bind: Permission denied")
 * \retval HDL_EOK, HDL_EEXIST (taken), HDL_EINVAL (not ADDR:PORT), HDL_EIO (another error)
 */
int startup_addr_probe(const char *addr, int type, char *err, size_t errlen);

/**
 * \brief Who holds the socket bound to \p ss (\p type SOCK_STREAM: a listener, SOCK_DGRAM: a
 *        bound UDP socket), from /proc: "idnoded (pid 1234)" into \p out.
 * \return the process id, 0 when it cannot be told (\p out then says why in words)
 */
long startup_socket_owner(const struct sockaddr_storage *ss, int type, char *out, size_t cap);

/**
 * \brief Make the prefixes homed by the configuration exactly \p c->home (source
 *        STORE_HOME_CONFIG, see store_batch_home_sync()): at start and on reload. Each change
 *        is logged ("homed 88.100.1", "unhomed 88.100.2: no longer in the configuration", ...).
 * \param why "start" or "reload", for the log lines
 * \param err the reason on failure
 * \retval HDL_EOK, HDL_ENAME, HDL_ESTORE, HDL_ESPACE (disk full), HDL_ENOMEM
 */
int startup_home_sync(store_t *st, const conf_t *c, const char *why, char *err, size_t errlen);

/**
 * \brief Log what the store holds that an operator must know at start: the homed prefixes and
 *        who homed them, a warning when none is (every answer would be RC 301), and a warning
 *        naming the file and time of an import that did not finish.
 * \return the number of homed prefixes
 */
unsigned long startup_report_store(store_t *st, const char *db);

#endif /* HDL_NODE_SERVER_STARTUP_H */
