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
int cmd_cache(int argc, char **argv);   /* tools/idnode/cache.c */
int cmd_status(int argc, char **argv);  /* tools/idnode/cache.c */

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

#endif
