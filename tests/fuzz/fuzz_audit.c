/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: audit trail records (node/store/audit.h) through audit_decode. The encoding
 *        has one form only and the decoder is strict, so what decodes must re-encode to the
 *        input byte for byte; the text helpers must cope with whatever decoded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/store/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t stack[2048];
	hdl_arena_t a;
	audit_rec_t r;
	uint8_t *out = NULL;
	size_t outlen = 0;
	char peer[64];

	hdl_arena_init(&a, stack, sizeof(stack), 1u << 20);
	if (audit_decode(data, size, &a, &r) != HDL_EOK)
		goto out;
	if (r.n_indexes > HDL_MAX_VALUES || (r.n_indexes && r.indexes == NULL))
		abort();
	if (audit_size(&r) != size)
		abort();
	out = malloc(size);
	if (out == NULL)
		goto out;
	if (audit_encode(&r, out, size, &outlen) != HDL_EOK || outlen != size ||
	    memcmp(out, data, size) != 0)
		abort();
	if (audit_encode(&r, out, size - 1, &outlen) != HDL_ESPACE)
		abort();
	(void)audit_peer_str(&r, peer, sizeof(peer));
	if (strlen(audit_op_name(r.op)) == 0 || strlen(audit_transport_name(r.transport)) == 0)
		abort();
out:
	free(out);
	hdl_arena_free(&a);
	return 0;
}
