/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Listeners re-bound by a reload (internal to node/server): the `listen` (UDP and
 *        Handle TCP), `http` (HTTP and HTTPS) and `tls_listen` (TLS stream) addresses follow
 *        the configuration without a restart and without disturbing the addresses that stay.
 *
 * A reload hook (reload.h) that claims those three keys:
 *
 *  - prepare() (main thread) compares the running lists with the new ones, address by address
 *    (parsed, so "127.0.0.1:2641" is one address however it is spelt in a list). Each added
 *    address is first probed as at start-up (startup_addr_probe(): another process that holds
 *    it, a permission or an address that cannot be bound refuses the whole reload, naming the
 *    address and the holder), then bound once per worker with SO_REUSEPORT, as at start-up
 *    (listen_open()). Nothing the node serves changes; a failure closes what was bound.
 *  - commit() hands each worker its part (close these addresses, serve these sockets) through
 *    the worker's inbox and a 'r' byte on its notify pipe, and waits (REBIND_WAIT_MS at most)
 *    until every worker has applied it, so that when `idnode reload` answers, the removed
 *    addresses refuse new connections and the new ones are served. A worker that has not
 *    applied it by then (stalled) does when its loop turns; until it has, a reload that changes
 *    listeners again is refused ("try again"), so an inbox holds one message at most.
 *  - each worker (rebind_worker_run(), on its own event loop) closes the listening sockets of
 *    the removed addresses and adds events for the new ones. Addresses that stay are not
 *    touched; connections already accepted from a removed address are served on and closed by
 *    the usual rules (idle timeout, close after answer, the peer); UDP requests from a removed
 *    address that wait (a write's commit, a delegated resolution) lose their answer (worker.h:
 *    udp_sock_close()), since nothing is left to send it from.
 *
 * What does not follow: the HS_SITE record (node/server/site.c) keeps the addresses the node
 * started with, since a changed site must come with a new site_serial (restart-only; clients
 * and the primary cache a site by its serial): when the addresses it names differ from the new
 * configuration's, the reload says so (rebind_site_note()). `metrics_listen` stays
 * restart-only. The homed prefixes and the upstreams have hooks of their own.
 *
 * \note rebind_worker_run() runs on worker threads, everything else on the main thread.
 */
#ifndef HDL_NODE_SERVER_REBIND_H
#define HDL_NODE_SERVER_REBIND_H

#include <stdbool.h>
#include <sys/socket.h>

struct conf;
struct reload;
struct worker;

#define REBIND_WAIT_MS 5000u /**< commit() waits this long at most for the workers to apply */
#define REBIND_NOTE    512u  /**< bytes of each summary line */

typedef struct rebind rebind_t;

/**
 * \brief The listener state of \p n_workers workers (their rebind field must point to it
 *        before they start). \p boot is the configuration the node started with (HS_SITE).
 * \retval HDL_EOK, HDL_ENOMEM
 */
int rebind_new(struct worker *workers, unsigned n_workers, const struct conf *boot, rebind_t **out);

/**
 * \brief Register the hook (claims `listen`, `http`, `tls_listen`) with \p r.
 * \retval HDL_EOK, or reload_register()'s error
 */
int rebind_register(rebind_t *rb, struct reload *r);

/** \brief Free \p rb (the workers are stopped): sockets still waiting in an inbox are closed. */
void rebind_free(rebind_t *rb);

/** \brief Worker thread ('r' on its notify pipe): apply what reloads handed it, in order. */
void rebind_worker_run(struct worker *w);

/** \brief Addresses the last reload bound ("listen ADDR; http ADDR"), or "" (none). */
const char *rebind_bound(const rebind_t *rb);
/** \brief Addresses the last reload closed (same form), or "". */
const char *rebind_closed(const rebind_t *rb);
/**
 * \brief When the HS_SITE record names other addresses than the running configuration's
 *        (it keeps the start-up ones until a restart): a line saying which; else "".
 */
const char *rebind_site_note(const rebind_t *rb);

/**
 * \brief True when socket \p fd is bound to \p addr (family, port, address; IPv6 scope).
 *        Used by the workers to find the sockets of a removed address.
 */
bool rebind_fd_bound_to(int fd, const struct sockaddr_storage *addr);

#endif /* HDL_NODE_SERVER_REBIND_H */
