/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief UDP framing: 512-byte datagrams, multi-packet messages and their reassembly.
 *
 * A message of MessageLength bytes is sent as ceil(len / 492) datagrams, each with a full
 * envelope carrying the same RequestId and MessageLength and SequenceNumber k; packet k holds
 * message bytes [k*492, k*492+492). Handle.Net's server omits TC on multi-packet responses and its
 * client ignores it; RFC 3652 wants it on every fragment: we set it when asked, never require it.
 */
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "proto/wire.h"

uint32_t hdl_udp_npackets(uint32_t msg_len)
{
	if (msg_len == 0)
		return 1;
	return (msg_len + HDL_UDP_MAX_PAYLOAD - 1) / HDL_UDP_MAX_PAYLOAD;
}

size_t hdl_udp_packet(const uint8_t *msg, size_t len, uint32_t k, bool set_tc,
                      uint8_t out[HDL_UDP_MAX_DGRAM])
{
	if (len < HDL_ENVELOPE_LEN || len - HDL_ENVELOPE_LEN > HDL_MAX_MESSAGE_LEN)
		return 0;
	uint32_t msg_len = (uint32_t)(len - HDL_ENVELOPE_LEN);
	uint32_t n = hdl_udp_npackets(msg_len);
	if (k >= n)
		return 0;
	size_t off = (size_t)k * HDL_UDP_MAX_PAYLOAD;
	size_t chunk = msg_len - off < HDL_UDP_MAX_PAYLOAD ? msg_len - off : HDL_UDP_MAX_PAYLOAD;

	memcpy(out, msg, HDL_ENVELOPE_LEN);
	if (n > 1 && set_tc)
		out[2] |= HDL_ENV_TRUNCATED;
	/* sequence number; MessageLength stays the whole message's */
	out[12] = (uint8_t)(k >> 24);
	out[13] = (uint8_t)(k >> 16);
	out[14] = (uint8_t)(k >> 8);
	out[15] = (uint8_t)k;
	memcpy(out + HDL_ENVELOPE_LEN, msg + HDL_ENVELOPE_LEN + off, chunk);
	return HDL_ENVELOPE_LEN + chunk;
}

void hdl_udp_reasm_init(hdl_udp_reasm_t *r, uint8_t *buf, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->buf = buf;
	r->cap = cap;
}

int hdl_udp_reasm_add(hdl_udp_reasm_t *r, const uint8_t *dgram, size_t len)
{
	hdl_envelope_t env;
	int ret = hdl_envelope_decode(dgram, len, &env);
	if (ret != HDL_EOK)
		return ret;
	if (len - HDL_ENVELOPE_LEN > HDL_UDP_MAX_PAYLOAD)
		return HDL_EMALF;
	if (r->started && env.request_id != r->request_id)
		return HDL_EINVAL;
	if (r->started && env.msg_len != r->msg_len)
		return HDL_EMALF;
	if ((size_t)HDL_ENVELOPE_LEN + env.msg_len > r->cap)
		return HDL_ELIMIT;

	uint32_t n = hdl_udp_npackets(env.msg_len);
	if (env.seq >= n)
		return HDL_EMALF;
	size_t off = (size_t)env.seq * HDL_UDP_MAX_PAYLOAD;
	size_t want =
	    env.msg_len - off < HDL_UDP_MAX_PAYLOAD ? env.msg_len - off : HDL_UDP_MAX_PAYLOAD;
	if (env.msg_len == 0)
		want = 0;
	if (len - HDL_ENVELOPE_LEN != want)
		return len - HDL_ENVELOPE_LEN < want ? HDL_ETRUNC : HDL_EMALF;

	if (!r->started) {
		r->started = true;
		r->request_id = env.request_id;
		r->msg_len = env.msg_len;
		r->npackets = n;
		r->received = 0;
		memset(r->seen, 0, sizeof(r->seen));
		memcpy(r->buf, dgram, HDL_ENVELOPE_LEN);
		/* the reassembled message reads as one unfragmented message */
		r->buf[2] &= (uint8_t)~HDL_ENV_TRUNCATED;
		memset(r->buf + 12, 0, 4);
	}
	uint8_t bit = (uint8_t)(1u << (env.seq & 7));
	if (r->seen[env.seq >> 3] & bit)
		return 0; /* duplicate */
	r->seen[env.seq >> 3] |= bit;
	memcpy(r->buf + HDL_ENVELOPE_LEN + off, dgram + HDL_ENVELOPE_LEN, want);
	r->received++;
	return r->received == r->npackets ? 1 : 0;
}
