/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fast path for the import format: one JSON Lines record
 *        {"handle":"...","values":[REST value objects]} parsed without building a JSON tree.
 *
 * It accepts only the common, simple shape (what `idnode gen` and `idnode export` write): strings
 * without backslash escapes, non-negative integers, data as a bare string or as
 * {"format":"string"|"admin","value":...}, and the value keys index, type, data, ttl (seconds),
 * timestamp, permissions (a string). Anything else makes it answer HDL_EAGAIN without reporting an
 * error, and the caller parses the line with jansson + hdl_json_to_values(), which gives the same
 * values for what the fast path accepts (tested) and the error messages for bad input.
 */
#ifndef HDL_NODE_STORE_JSONL_H
#define HDL_NODE_STORE_JSONL_H

#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

/**
 * \brief Parse one record.
 * \param[out] handle the "handle" string (borrows from \p line)
 * \param[out] vals, n the values (array in \p a; slices borrow from \p line or live in \p a)
 * \retval HDL_EOK
 * \retval HDL_EAGAIN not handled here: use the general parser
 * \retval HDL_ENOMEM the arena is exhausted
 */
int store_jsonl_fast(const uint8_t *line, size_t len, hdl_arena_t *a, hdl_slice_t *handle,
                     hdl_value_t **vals, uint32_t *n);

#endif /* HDL_NODE_STORE_JSONL_H */
