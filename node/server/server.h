/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The idnoded process: configuration, store, worker threads, signals.
 */
#ifndef HDL_NODE_SERVER_SERVER_H
#define HDL_NODE_SERVER_SERVER_H

#include <stddef.h>

#include "node/conf/conf.h"

typedef struct server_opts {
	const char *conf_path;     /**< config file, NULL = defaults only */
	const conf_override_t *ov; /**< command-line overrides, applied after the file */
	size_t n_ov;
} server_opts_t;

/**
 * \brief Check the configuration only (idnoded -t).
 * \param err the error line on failure
 * \return 0 valid, 1 invalid
 */
int server_check(const server_opts_t *o, char *err, size_t errlen);

/**
 * \brief Run the node until SIGTERM/SIGINT (drain, then exit); SIGHUP (and the control
 *        socket's `reload`) reload the configuration as a whole (reload.h); systemd is told
 *        READY=1, RELOADING=1, STOPPING=1 and WATCHDOG=1 (node/common/sd.h).
 * \return process exit status: 0 after a clean shutdown, 1 when start-up failed
 */
int server_run(const server_opts_t *o);

#endif /* HDL_NODE_SERVER_SERVER_H */
