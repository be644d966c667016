/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The server admins of the configuration (`server_admin = INDEX:HANDLE`), as one
 *        immutable set that a reload swaps whole: the workers find it through
 *        node_shared_t::admins (retired through reload_retire()), the writer thread gets its own
 *        with writer_set_admins().
 */
#ifndef HDL_NODE_SERVER_SRVADMIN_H
#define HDL_NODE_SERVER_SRVADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

/** Parsed admins; refs[i].handle points into text[i]. */
typedef struct srvadmin_set {
	uint32_t n;
	hdl_ref_t *refs;
	char **text;
} srvadmin_set_t;

/**
 * \brief Parse \p n "INDEX:HANDLE" entries (copied).
 * \param err names the entry that does not parse
 * \retval HDL_EOK (\p *out set, also for n = 0), HDL_EINVAL, HDL_ENOMEM
 */
int srvadmin_set_new(const char *const *list, unsigned n, srvadmin_set_t **out, char *err,
                     size_t errlen);

/** \brief Free a set (void * for reload_retire()); NULL is fine. */
void srvadmin_set_free(void *set);

#endif /* HDL_NODE_SERVER_SRVADMIN_H */
