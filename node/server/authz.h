/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Authorization by HS_ADMIN values, as Handle.Net 9 decides it (HandleServer
 *        adminHasPermission / isAdminInGroup; docs/registration.md "Semantics").
 *
 * An identity (handle, index) may do an operation on a handle when one HS_ADMIN value of the
 * record consulted (the handle's own, or for a create the prefix handle 0.NA/<prefix>) carries
 * every permission bit the operation needs and names the identity, directly or through HS_VLIST
 * groups (followed breadth-first, each group value once, bounded in depth and in lookups), or
 * when the identity is a configured server admin (directly or through a group).
 *
 * A pure function over a record-lookup callback: the writer looks records up inside its write
 * transaction (store_batch_get), workers over a read snapshot (store_get), tests over a table.
 * No locks, no globals; one call uses only the caller's arena.
 */
#ifndef HDL_NODE_SERVER_AUTHZ_H
#define HDL_NODE_SERVER_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include "hdl/msg.h"

#define AUTHZ_DEFAULT_DEPTH  8u  /**< group nesting levels followed by default */
#define AUTHZ_DEFAULT_GROUPS 64u /**< group values looked up per check by default */

/**
 * Record lookup: \p *vals = the handle's stored values (U32 count + values), valid at least until
 * the authz call returns.
 * \retval HDL_EOK, HDL_ENOENT (no such handle), any other error (counted as a failed lookup)
 */
typedef int (*authz_lookup_fn)(void *ctx, hdl_slice_t handle, hdl_slice_t *vals);

/** Authorization context: how to find records, and the server-wide admins. */
typedef struct authz {
	authz_lookup_fn lookup;
	void *ctx;
	const hdl_ref_t *server_admins; /**< configured server admins (index 0: any index) */
	uint32_t n_server_admins;
	unsigned max_depth;  /**< group nesting levels followed (0 = AUTHZ_DEFAULT_DEPTH) */
	unsigned max_groups; /**< group values looked up per check (0 = AUTHZ_DEFAULT_GROUPS) */
} authz_t;

/** Results of authz_check() and authz_server_admin() (errors are negative hdl_err_t). */
enum authz_result {
	AUTHZ_DENIED = 0,
	AUTHZ_GRANTED = 1,
};

/**
 * \brief Does \p id hold all of \p need (HDL_ADM_* bits) on the record \p admin_vals?
 *
 * Granted when \p id is a server admin (an entry of az->server_admins matches it, or a group an
 * entry names contains it), or when one HS_ADMIN value (type HS_ADMIN or a subtype) of
 * \p admin_vals has every bit of \p need and its (handle, index) matches \p id or names an
 * HS_VLIST group that contains \p id. A reference with index 0 matches any index of its handle;
 * a group reference with index 0 is not followed (Handle.Net does the same). Names compare with
 * the prefix (the whole name for "0." handles) ASCII case-insensitively. Values that do not
 * decode are skipped.
 * \param admin_vals U32 count + values; empty = no record (only server admins pass)
 * \param scratch arena for group lists and the visited set (reset by the caller afterwards)
 * \retval AUTHZ_GRANTED, AUTHZ_DENIED
 * \retval HDL_ELIMIT  not found within the depth / lookup bounds, and a bound was reached
 * \retval HDL_ESTORE  not found, and a group lookup failed with an error other than not-found
 * \retval HDL_ENOMEM  the arena is exhausted
 */
int authz_check(const authz_t *az, hdl_ref_t id, hdl_slice_t admin_vals, uint16_t need,
                hdl_arena_t *scratch);

/**
 * \brief Is \p id a configured server admin (directly or through a group)? (HOME_NA/UNHOME_NA.)
 * \retval AUTHZ_GRANTED, AUTHZ_DENIED, or an error as for authz_check()
 */
int authz_server_admin(const authz_t *az, hdl_ref_t id, hdl_arena_t *scratch);

/**
 * \brief Handle.Net's ValueReference.isMatchedBy: same name (prefix case-insensitive) and
 *        \p entry's index 0 or equal to \p id's.
 */
bool authz_ref_matches(hdl_ref_t entry, hdl_ref_t id);

/**
 * \brief A ready lookup over a read snapshot: \p ctx is a store_reader_t (node/store/store.h)
 *        between store_reader_begin() and store_reader_end(), as a worker holds one for a
 *        request (LIST_HANDLES, reading non-public values). The records stay valid until
 *        store_reader_end().
 * \retval as store_get()
 */
int authz_lookup_reader(void *ctx, hdl_slice_t handle, hdl_slice_t *vals);

/**
 * \brief Parse a configured admin "INDEX:HANDLE" (e.g. "300:0.NA/88.100.1"); \p out->handle
 *        borrows from \p s.
 * \retval HDL_EOK, HDL_EINVAL
 */
int authz_parse_admin(const char *s, hdl_ref_t *out);

/** \brief True when \p type is \p base or a subtype of it ("HS_ADMIN", "HS_ADMIN.x"), any case. */
bool authz_type_is(hdl_slice_t type, const char *base);

#endif /* HDL_NODE_SERVER_AUTHZ_H */
