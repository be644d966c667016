/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: a whole Handle message (envelope + header + body + credential) through
 *        hdl_msg_decode; when it decodes to a known body kind, encode -> decode -> encode must
 *        reproduce the same fields and the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "tests/fuzz/codec_cmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_CAP (HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out1[OUT_CAP], out2[OUT_CAP];
	uint8_t stack1[4096], stack2[4096];
	hdl_arena_t a1, a2;
	hdl_msg_t m1, m2;
	size_t n1 = 0, n2 = 0;

	hdl_arena_init(&a1, stack1, sizeof(stack1), 8u << 20);
	hdl_arena_init(&a2, stack2, sizeof(stack2), 8u << 20);
	if (hdl_msg_decode(data, size, &a1, &m1) != HDL_EOK || m1.kind == HDL_BODY_NONE)
		goto out;
	if (hdl_msg_encode(&m1, out1, sizeof(out1), &n1) != HDL_EOK)
		abort(); /* whatever decodes must encode */
	if (hdl_msg_decode(out1, n1, &a2, &m2) != HDL_EOK)
		abort(); /* whatever we encode must decode */
	if (!cmp_msg(&m1, &m2))
		abort();
	if (hdl_msg_encode(&m2, out2, sizeof(out2), &n2) != HDL_EOK || n1 != n2 ||
	    memcmp(out1, out2, n1) != 0)
		abort();
out:
	hdl_arena_free(&a1);
	hdl_arena_free(&a2);
	return 0;
}
