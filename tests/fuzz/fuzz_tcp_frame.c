/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the Handle-over-TCP framing and the close-after-answer rule
 *        (node/server/tcp.c, tcp.h) over arbitrary bytes consumed as a pipelined stream.
 *        Checks: results are within the enum; a whole frame lies inside the input, is the
 *        envelope plus MessageLength, and is within the limit; every cut of a whole frame is
 *        "need more"; a frame over the limit is known from its envelope alone; the result is
 *        deterministic; the close rule never says "close" in mode "no" and always keeps a
 *        challenge (RC 402) open.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/msg.h"
#include "node/server/node.h"
#include "node/server/tcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte picks the limit, so small limits get exercised too */
	if (size < 1)
		return 0;
	uint32_t max_len = data[0] & 1 ? 64u : HDL_MAX_MESSAGE_LEN;
	const uint8_t *p = data + 1;
	size_t len = size - 1, off = 0;
	for (int k = 0; k < 64 && off < len; k++) {
		tcp_frame_t f, f2;
		tcp_frame_rc_t rc = tcp_frame_check(p + off, len - off, max_len, &f);
		if (rc > TCP_FRAME_BAD)
			abort();
		if (tcp_frame_check(p + off, len - off, max_len, &f2) != rc ||
		    memcmp(&f, &f2, sizeof(f)) != 0)
			abort();
		if (rc == TCP_FRAME_BIG) {
			if (f.msg_len <= max_len || tcp_frame_check(p + off, HDL_ENVELOPE_LEN,
			                                            max_len, &f2) != TCP_FRAME_BIG)
				abort();
			break;
		}
		if (rc != TCP_FRAME_OK)
			break;
		if (f.len < HDL_ENVELOPE_LEN || f.len > len - off ||
		    f.len != HDL_ENVELOPE_LEN + (size_t)f.msg_len || f.msg_len > max_len)
			abort();
		size_t cut = f.len * 7 / 11;
		if (tcp_frame_check(p + off, cut, max_len, &f2) != TCP_FRAME_MORE)
			abort();
		/* the frame itself as the "answer": any bytes must be safe to look at */
		if (tcp_close_after(NODE_TCP_CLOSE_NO, &f, p + off, f.len))
			abort();
		bool yes = tcp_close_after(NODE_TCP_CLOSE_YES, &f, p + off, f.len);
		bool aut = tcp_close_after(NODE_TCP_CLOSE_AUTO, &f, p + off, f.len);
		if (aut && !yes)
			abort(); /* auto closes a subset of what "yes" closes */
		if (f.len >= HDL_ENVELOPE_LEN + HDL_HEADER_LEN &&
		    !(p[off + 2] & HDL_ENV_ENCRYPTED)) {
			const uint8_t *h = p + off + HDL_ENVELOPE_LEN;
			uint32_t rcode = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 |
			                 (uint32_t)h[6] << 8 | h[7];
			if (rcode == HDL_RC_AUTHENTICATION_NEEDED && yes)
				abort();
		}
		off += f.len;
	}
	return 0;
}
