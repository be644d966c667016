/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Subcommands of the `idnode` CLI. Each takes argv starting at the subcommand name and
 *        returns the process exit status: 0 success, 1 the answer was an error / not found,
 *        2 usage error, 3 network or I/O failure, 4 malformed data.
 */
#ifndef HDL_TOOLS_IDNODE_CMDS_H
#define HDL_TOOLS_IDNODE_CMDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDNODE_EXIT_OK 0
#define IDNODE_EXIT_NOTFOUND 1
#define IDNODE_EXIT_USAGE 2
#define IDNODE_EXIT_IO 3
#define IDNODE_EXIT_DATA 4

int cmd_resolve(int argc, char **argv); /* tools/idnode/resolve.c */
int cmd_decode(int argc, char **argv);  /* tools/idnode/decode.c */
int cmd_import(int argc, char **argv);  /* tools/idnode/db.c */
int cmd_export(int argc, char **argv);  /* tools/idnode/db.c */
int cmd_gen(int argc, char **argv);     /* tools/idnode/gen.c */

/* Authenticated administration over the network (tools/idnode/admin.c) and keys (keygen.c). */
int cmd_create(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_modify(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_home_net(int argc, char **argv);   /**< `home` without --db: OC 300 HOME_NA */
int cmd_unhome_net(int argc, char **argv); /**< `unhome` without --db: OC 301 UNHOME_NA */
int cmd_home_db(int argc, char **argv);    /**< `home --db DIR`: the offline form */
int cmd_unhome_db(int argc, char **argv);  /**< `unhome --db DIR`: the offline form */
int cmd_keygen(int argc, char **argv);

/* Human rendering of handle values, shared by resolve and decode (tools/idnode/resolve.c). */
struct hdl_value;
/** \brief Print `index  type  ttl  perms  data [refs]` and a newline to stdout. */
void idnode_print_value(const struct hdl_value *v);
/** \brief Print only the data of \p v, rendered by type (text, HS_ADMIN, HS_SITE, hex...). */
void idnode_print_data(const struct hdl_value *v);

/**
 * \brief Parse a decimal unsigned number; with \p size_suffix also k/m/g/t (binary multiples).
 * \return false on anything else (sign, junk, overflow)
 */
bool idnode_parse_u64(const char *s, bool size_suffix, uint64_t *out); /* tools/idnode/util.c */
/**
 * \brief Split HOST[:PORT], [V6]:PORT, [V6] or a bare IPv6 address into \p host and \p port
 *        (\p port is left alone when none is given).
 * \retval 0 ok, -1 invalid
 */
int idnode_parse_server(const char *s, char *host, size_t hostcap, uint16_t *port);
/**
 * \brief Append the indexes of a list "N[,N...]" to \p *idx (realloc'd), at most \p max in all.
 * \retval 0 ok, -1 bad list, over \p max, or out of memory
 */
int idnode_parse_indexes(const char *arg, uint32_t max, uint32_t **idx, uint32_t *n);
/** \brief Exit status for a library error: 2 bad arguments, 4 malformed data, 3 the rest. */
int idnode_exit_for_err(int err);

#endif
