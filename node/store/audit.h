/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The audit trail's record: who changed what, when, from where, with what outcome. The
 *        writer (node/server/writer.c) files one per change request, in the transaction of the
 *        change, and `idnode import` one per batch; `idnode audit` reads them back.
 *
 * Encoding (version 1, big-endian like the Handle wire format), all fields in this order:
 *
 *     U8  version (1)          U32 time            U16 op (AUDIT_OP_*)   U8 transport (AUDIT_T_*)
 *     U32 rcode (outcome)      U32 flags (WR_F_*)  STR handle            STR id_handle
 *     U32 id_index             U8  peer family (0, 4, 6), then 4 or 16 address bytes + U16 port
 *     U32 n + n x U32 indexes  U8  digest mask (1 before, 2 after), then 32 bytes per digest
 *     STR message              U32 count high      U32 count low
 *
 * STR is U32 length + bytes. Digests are SHA-256 over a handle's stored record (U32 count +
 * values, RFC 3652 section 3.1 encoding) before and after the change. The decoder is strict:
 * lengths within their limits, no trailing bytes, a known version.
 */
#ifndef HDL_NODE_STORE_AUDIT_H
#define HDL_NODE_STORE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hdl/msg.h"
#include "node/store/store.h"

#define AUDIT_VERSION     1u
#define AUDIT_DIGEST_LEN  32u
#define AUDIT_MESSAGE_MAX 1024u /**< bytes of the message / source text */

/** Operations: the Handle opcodes of the requests, plus bulk import. */
enum audit_op {
	AUDIT_OP_IMPORT = 1, /**< one `idnode import` batch */
	AUDIT_OP_CREATE = HDL_OC_CREATE_HANDLE,
	AUDIT_OP_DELETE = HDL_OC_DELETE_HANDLE,
	AUDIT_OP_ADD = HDL_OC_ADD_VALUE,
	AUDIT_OP_REMOVE = HDL_OC_REMOVE_VALUE,
	AUDIT_OP_MODIFY = HDL_OC_MODIFY_VALUE,
	AUDIT_OP_HOME = HDL_OC_HOME_NA,
	AUDIT_OP_UNHOME = HDL_OC_UNHOME_NA,
	AUDIT_OP_TEMPLATE_PUT = 3000, /**< a metadata template stored (handle: 0.NA/<prefix>) */
	AUDIT_OP_TEMPLATE_DEL = 3001, /**< a metadata template deleted */
};

/** Transports (the same numbers as wr_transport_t in node/server/writer.h). */
enum audit_transport {
	AUDIT_T_NONE = 0,
	AUDIT_T_UDP = 1,
	AUDIT_T_TCP,
	AUDIT_T_HTTP,
	AUDIT_T_HTTPS,
	AUDIT_T_TLS,
	AUDIT_T_LOCAL,
};

/** One audit record. Decoded slices borrow from the input; \p indexes lives in the arena. */
typedef struct audit_rec {
	uint32_t time;         /**< Unix seconds of the change */
	uint16_t op;           /**< enum audit_op */
	uint8_t transport;     /**< enum audit_transport */
	uint32_t rcode;        /**< outcome: HDL_RC_SUCCESS or the code answered */
	uint32_t flags;        /**< WR_F_* as requested */
	hdl_slice_t handle;    /**< the handle changed (the minted name of a minted create) */
	hdl_slice_t id_handle; /**< who: the authenticated admin (empty: none / a local tool) */
	uint32_t id_index;
	uint8_t peer_family;   /**< 0 none, 4 IPv4, 6 IPv6 */
	uint8_t peer_addr[16]; /**< IPv4 in the first 4 bytes */
	uint16_t peer_port;
	uint32_t n_indexes; /**< value indexes the request named (at most HDL_MAX_VALUES) */
	const uint32_t *indexes;
	bool has_before; /**< the handle existed before: \p before is its record's digest */
	bool has_after;  /**< the handle exists after a change that was applied */
	uint8_t before[AUDIT_DIGEST_LEN];
	uint8_t after[AUDIT_DIGEST_LEN];
	hdl_slice_t message; /**< refusal text; import: the source */
	uint64_t count;      /**< import: records in the batch; 1 otherwise */
} audit_rec_t;

/**
 * \brief Encoded size of \p r.
 * \return bytes, or 0 when a field is over its limit
 */
size_t audit_size(const audit_rec_t *r);

/**
 * \brief Encode \p r into \p out.
 * \retval HDL_EOK, HDL_ELIMIT (a field over its limit), HDL_ESPACE (\p cap too small)
 */
int audit_encode(const audit_rec_t *r, uint8_t *out, size_t cap, size_t *outlen);

/**
 * \brief Decode one record (strict: see the file comment).
 * \retval HDL_EOK, HDL_ETRUNC, HDL_ELIMIT, HDL_EMALF (bad family or digest mask),
 *         HDL_EVERSION, HDL_ETRAILING, HDL_ENOMEM (arena)
 */
int audit_decode(const uint8_t *p, size_t len, hdl_arena_t *a, audit_rec_t *out);

/** \brief SHA-256 of a stored record (U32 count + values) into \p out. */
void audit_digest(hdl_slice_t vals, uint8_t out[AUDIT_DIGEST_LEN]);

/** \brief Set the peer fields from a socket address (AF_INET / AF_INET6; others: none). */
void audit_set_peer(audit_rec_t *r, const struct sockaddr_storage *ss, socklen_t len);

/**
 * \brief Write the peer as "192.0.2.1:2641" or "[2001:db8::1]:2641" ("-" for none).
 * \return \p buf
 */
char *audit_peer_str(const audit_rec_t *r, char *buf, size_t cap);

/** \brief "CREATE_HANDLE", ..., "IMPORT"; "UNKNOWN" for other numbers. */
const char *audit_op_name(uint16_t op);
/** \brief "udp", "tcp", "http", "https", "tls", "local"; "-" for none or unknown. */
const char *audit_transport_name(uint8_t t);

/**
 * \brief Encode \p r and append it to the batch (store_batch_audit), indexed by \p r->handle.
 * \retval as store_batch_audit(), plus HDL_ELIMIT from the encoder
 */
int audit_write(store_batch_t *b, const audit_rec_t *r);

#endif /* HDL_NODE_STORE_AUDIT_H */
