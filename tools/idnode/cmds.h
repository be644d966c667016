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
int cmd_prefixes(int argc, char **argv); /* tools/idnode/prefixes.c */
int cmd_audit(int argc, char **argv);   /* tools/idnode/audit.c */
int cmd_stats(int argc, char **argv);   /* tools/idnode/stats.c */

/* Authenticated administration over the network (tools/idnode/admin.c) and keys (keygen.c). */
int cmd_create(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_modify(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_home_net(int argc, char **argv);   /**< `home` without --db: OC 300 HOME_NA */
int cmd_unhome_net(int argc, char **argv); /**< `unhome` without --db: OC 301 UNHOME_NA */
int cmd_home_db(int argc, char **argv);    /**< `home --db DIR`: the offline form (prefixes.c) */
int cmd_unhome_db(int argc, char **argv);  /**< `unhome --db DIR`: the offline form (prefixes.c) */
int cmd_keygen(int argc, char **argv);
int cmd_cache(int argc, char **argv);   /* tools/idnode/cache.c */
int cmd_status(int argc, char **argv);  /* tools/idnode/cache.c */
int cmd_template(int argc, char **argv); /* tools/idnode/template.c */
int cmd_passwd(int argc, char **argv);   /* tools/idnode/template.c */
int cmd_reload(int argc, char **argv);  /* tools/idnode/cache.c */

/* Human rendering of handle values, shared by resolve and decode (tools/idnode/resolve.c). */
struct hdl_value;
/** \brief Print `index  type  ttl  perms  data [refs]` and a newline to stdout. */
void idnode_print_value(const struct hdl_value *v);
/** \brief Print \p n values as idnode_print_value() does, with the columns aligned. */
void idnode_print_values(const struct hdl_value *v, uint32_t n);
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

/* ---- shared by import and the prefix commands (tools/idnode/prefixes.c, seen.c) ---- */

struct store;

/**
 * \brief Warn on stderr when the store holds the marker of an unfinished import (its source
 *        file, start time, importer pid and the records it committed).
 * \param copy when not NULL, receives a malloc'ed copy of the marker record (NULL when none)
 * \return 1 a marker was found, 0 none, -1 the store could not be read
 */
int idnode_mark_report(struct store *s, const char *prog, const char *db, uint8_t **copy,
                       size_t *copy_len);

/** \brief Warn on stderr when no prefix is homed in the store (the node would answer RC 301). */
void idnode_warn_unhomed(struct store *s, const char *prog, const char *db);

/** A bounded set of key fingerprints (tools/idnode/seen.c). */
typedef struct idnode_seen {
	uint64_t *slots; /**< open addressing; 0 = empty */
	size_t cap;      /**< slots, a power of two (0 before the first key) */
	size_t n;        /**< keys remembered */
	size_t max;      /**< remember at most this many */
	bool full;       /**< stopped remembering (max reached or out of memory) */
} idnode_seen_t;

/** \brief An empty set that remembers at most \p max keys (0: none). */
void idnode_seen_init(idnode_seen_t *s, size_t max);
/** \brief Release the memory of \p s. */
void idnode_seen_free(idnode_seen_t *s);
/**
 * \brief Remember \p key.
 * \return 1 it was remembered before, 0 it is new (now remembered), -1 it is not remembered
 *         (the set is full)
 */
int idnode_seen_add(idnode_seen_t *s, const uint8_t *key, size_t len);

#endif
