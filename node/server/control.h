/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The control socket: a Unix stream socket served on the main thread's event loop, where
 *        an operator (`idnode cache ...`, `idnode status`) sends one request line and gets one
 *        answer, after which the server closes the connection.
 *
 * Protocol. The request is one line (LF or CRLF; a line cut short by the client's EOF counts):
 * a command word, then its arguments. The answer is a status line, `OK` or `ERR <reason>`, then
 * the command's output lines (text, `name value` pairs or one entry per line), then EOF.
 * Commands are registered by the modules that own them (control_register()): `status` and
 * `help` here, `cache` by node/resolver/rnode.c.
 *
 * Limits. Connections at once (more get `ERR busy` and are closed), the length of the request
 * line (longer: `ERR line too long`, closed), and a deadline on each connection's whole life
 * (a client that does not send its line or does not read its answer is cut off). Answers are
 * built whole before they are sent, so every command bounds its own output (`cache dump` by
 * control_dump_max). Refusals are logged through log_peer().
 *
 * The socket file is created with the configured mode (bound under umask 0177, then chmod),
 * replaces a stale socket file nobody listens on, refuses to start over any other file or a live
 * socket, and is unlinked at close if it is still the one this process made.
 *
 * \note Main thread only (its event_base); command handlers run on that thread.
 */
#ifndef HDL_NODE_SERVER_CONTROL_H
#define HDL_NODE_SERVER_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "node/common/log.h"

struct event_base;
struct conf;
struct node_shared;

typedef struct control control_t;
typedef struct control_out control_out_t;

/**
 * A command: \p args is the rest of the line after the command word, spaces trimmed at both
 * ends ("" when none). Write output lines with control_printf().
 * \return 0 success (status line OK), or control_fail()'s result (status line ERR)
 */
typedef int (*control_fn)(void *arg, const char *args, control_out_t *out);

/** Socket and limits. */
typedef struct control_opts {
	const char *path;     /**< socket path (< CONF_UNIX_PATH_MAX bytes) */
	int mode;             /**< permission bits of the socket file */
	unsigned max_clients; /**< connections at once (>= 1) */
	uint32_t max_line;    /**< longest request line in bytes, without its line end */
	uint32_t timeout_ms;  /**< deadline of a connection, from accept to close */
} control_opts_t;

/** Counters. */
typedef struct control_stats {
	uint64_t accepted;  /**< connections served */
	uint64_t busy;      /**< connections refused over max_clients */
	uint64_t too_long;  /**< request lines over max_line */
	uint64_t timed_out; /**< connections cut at their deadline */
	uint64_t commands;  /**< requests answered OK */
	uint64_t errors;    /**< requests answered ERR */
	unsigned clients;   /**< connections now */
} control_stats_t;

/**
 * \brief Create the socket file and listen on \p base.
 * \param err the reason on failure ("control_socket /run/x.sock: ...")
 * \retval HDL_EOK, HDL_EINVAL (path too long, bad limits), HDL_EEXIST (a live socket or another
 *         file is at the path), HDL_EIO, HDL_ENOMEM
 */
int control_open(struct event_base *base, const control_opts_t *o, control_t **out, char *err,
                 size_t errlen);

/** \brief Close every connection and the listener; unlink the socket file if it is ours. */
void control_close(control_t *c);

/**
 * \brief Add a command.
 * \param name the command word (no spaces)
 * \param usage one line for `help` ("cache stats|dump [PREFIX]|flush [HANDLE]")
 * \retval HDL_EOK, HDL_EEXIST (name taken), HDL_ENOMEM
 */
int control_register(control_t *c, const char *name, const char *usage, control_fn fn, void *arg);

/** \brief Append formatted text to the answer (add the '\n' yourself). */
void control_printf(control_out_t *out, const char *fmt, ...) HDL_LOG_PRINTF(2, 3);

/** \brief Set the ERR reason (one line). \return -1, for `return control_fail(...)` */
int control_fail(control_out_t *out, const char *fmt, ...) HDL_LOG_PRINTF(2, 3);

/** \brief Counters. */
void control_get_stats(const control_t *c, control_stats_t *st);

/**
 * \brief idnoded's control socket: nothing when control_socket is empty (\p *out NULL);
 *        otherwise control_open() from the configuration with the commands `status` (this
 *        process) and `cache` (rnode_register_commands()).
 * \retval HDL_EOK, or control_open()'s errors (\p err says why)
 */
int control_node_start(struct event_base *base, const struct conf *c, struct node_shared *n,
                       unsigned n_workers, control_t **out, char *err, size_t errlen);

#endif /* HDL_NODE_SERVER_CONTROL_H */
