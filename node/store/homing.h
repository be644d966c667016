/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Record formats of the homed-prefix table and of the partial-import marker, as pure
 *        encoders and decoders (no LMDB): store.c reads and writes them, the CLI prints them,
 *        and tests/fuzz/fuzz_homing.c feeds the decoders arbitrary bytes.
 *
 * "prefixes" value (key = the folded prefix, see store.h):
 *   U32 sources   STORE_HOME_* bits: who homed the prefix; never 0 in a record written now
 *   U32 since     Unix seconds when the prefix became homed
 * A 4-byte value (U32 0) is what earlier versions wrote: homed, source unknown (sources 0,
 * since 0).
 *
 * Meta record STORE_META_IMPORT (the marker of an import that has not finished):
 *   U32 version   1
 *   U32 started   Unix seconds when the import began
 *   U32 pid       process id of the importer
 *   U64 records   records committed so far (updated with every batch)
 *   STR source    the input file (absolute path) or "-" for standard input
 */
#ifndef HDL_NODE_STORE_HOMING_H
#define HDL_NODE_STORE_HOMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

#define STORE_HOME_CONFIG 0x1u /**< listed in the node's configuration (home = / --home) */
#define STORE_HOME_CLI    0x2u /**< `idnode home --db DIR PREFIX` */
#define STORE_HOME_ADMIN  0x4u /**< an administrator's request (Handle opcode 300 HOME_NA) */
#define STORE_HOME_IMPORT 0x8u /**< `idnode import`: --home, --auto-home, a {"home":...} line */
#define STORE_HOME_ALL    0xFu /**< every source (an unhome that removes a prefix for good) */

#define STORE_HOME_REC_LEN        8u               /**< encoded "prefixes" value */
#define STORE_META_IMPORT         "import_partial" /**< meta name of the partial-import marker */
#define STORE_IMPORT_MARK_VERSION 1u
#define STORE_IMPORT_SOURCE_MAX   4096u /**< longest source path kept in the marker */

/** A decoded "prefixes" value. */
typedef struct store_home_rec {
	uint32_t sources; /**< STORE_HOME_* bits; 0 = homed by an earlier version (unknown) */
	uint32_t since;   /**< Unix seconds; 0 = unknown */
} store_home_rec_t;

/** A decoded partial-import marker; \p source borrows from the decoded bytes. */
typedef struct store_import_mark {
	uint32_t started;   /**< Unix seconds */
	uint32_t pid;       /**< importer's process id */
	uint64_t records;   /**< records committed before it stopped */
	hdl_slice_t source; /**< input file or "-" */
} store_import_mark_t;

/**
 * \brief Decode a "prefixes" value (8 bytes, or the 4-byte form of earlier versions).
 * \retval HDL_EOK, HDL_EMALF (other length, or unknown source bits)
 */
int store_home_rec_decode(const uint8_t *p, size_t len, store_home_rec_t *out);

/** \brief Encode a "prefixes" value into \p out. \return STORE_HOME_REC_LEN */
size_t store_home_rec_encode(const store_home_rec_t *r, uint8_t out[STORE_HOME_REC_LEN]);

/**
 * \brief Names of the sources in \p sources, comma-separated ("config,import"; "unknown" for 0).
 * \return \p buf (always NUL-terminated; cut when \p cap is short)
 */
const char *store_home_sources_str(uint32_t sources, char *buf, size_t cap);

/**
 * \brief Decode a partial-import marker.
 * \retval HDL_EOK, HDL_EMALF (truncated, trailing bytes, wrong version, empty source, control
 *         characters or invalid UTF-8 in the source), HDL_ELIMIT (source longer than
 *         STORE_IMPORT_SOURCE_MAX)
 */
int store_import_mark_decode(const uint8_t *p, size_t len, store_import_mark_t *out);

/**
 * \brief Encode a partial-import marker into \p out (\p cap bytes).
 * \retval HDL_EOK (\p *len set), HDL_ESPACE (\p cap too small), HDL_EINVAL (source empty or over
 *         STORE_IMPORT_SOURCE_MAX)
 */
int store_import_mark_encode(const store_import_mark_t *m, uint8_t *out, size_t cap, size_t *len);

/** \brief "2024-05-01 12:00:00 UTC" for Unix time \p t ("unknown" for 0) into \p buf. */
const char *store_time_str(uint32_t t, char *buf, size_t cap);

/**
 * \brief The marker in words: "FILE, started TIME by pid N, stopped after M records".
 * \return \p buf (always NUL-terminated)
 */
const char *store_import_mark_str(const store_import_mark_t *m, char *buf, size_t cap);

#endif /* HDL_NODE_STORE_HOMING_H */
