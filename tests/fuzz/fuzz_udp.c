/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: UDP framing (proto/udp.c).
 *
 * 1. The input as a sequence of datagrams into hdl_udp_reasm_add: cut into 512-byte pieces, or,
 *    when the first byte is 0xff, records of U16 length + bytes. Only the documented results may
 *    come back; a completed message must be consistent with its envelope and is decoded.
 * 2. The input as a message payload behind a synthetic envelope, and (when the input decodes as a
 *    message) its re-encoding: fragmented with hdl_udp_packet (every datagram <= 512 bytes, right
 *    SequenceNumber / MessageLength / TC), fed back in a shuffled order with duplicates, must
 *    reassemble to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUF_CAP (HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN)

static uint8_t reasm_buf[BUF_CAP];
static uint8_t msg_buf[BUF_CAP];

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void check_complete(const hdl_udp_reasm_t *r)
{
	hdl_envelope_t env;
	if (hdl_envelope_decode(r->buf, HDL_ENVELOPE_LEN + (size_t)r->msg_len, &env) != HDL_EOK)
		abort();
	if (env.msg_len != r->msg_len || env.seq != 0 || env.request_id != r->request_id)
		abort();
	uint8_t stack[2048];
	hdl_arena_t a;
	hdl_msg_t m;
	hdl_arena_init(&a, stack, sizeof(stack), 4u << 20);
	(void)hdl_msg_decode(r->buf, HDL_ENVELOPE_LEN + (size_t)r->msg_len, &a, &m);
	hdl_arena_free(&a);
}

static void feed(hdl_udp_reasm_t *r, const uint8_t *dg, size_t len)
{
	int rc = hdl_udp_reasm_add(r, dg, len);
	switch (rc) {
	case 1:
		check_complete(r);
		hdl_udp_reasm_init(r, reasm_buf, sizeof(reasm_buf));
		break;
	case 0:
	case HDL_EMALF:
	case HDL_ETRUNC:
	case HDL_ELIMIT:
	case HDL_EINVAL:
	case HDL_EVERSION: /* from the envelope decoder; not in the header's list */
		break;
	default:
		abort();
	}
}

/* Part 1: arbitrary datagrams. */
static void datagrams(const uint8_t *data, size_t size)
{
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, reasm_buf, sizeof(reasm_buf));
	if (size && data[0] == 0xff) {
		size_t pos = 1;
		while (size - pos >= 2) {
			size_t n = (size_t)data[pos] << 8 | data[pos + 1];
			pos += 2;
			if (n > size - pos)
				n = size - pos;
			feed(&r, data + pos, n);
			pos += n;
		}
		return;
	}
	for (size_t pos = 0; pos < size; pos += HDL_UDP_MAX_DGRAM) {
		size_t n = size - pos < HDL_UDP_MAX_DGRAM ? size - pos : HDL_UDP_MAX_DGRAM;
		feed(&r, data + pos, n);
	}
}

static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* Part 2: fragment msg (a whole message, envelope included) and reassemble it. */
static void roundtrip(const uint8_t *msg, size_t len, uint32_t seed, bool set_tc)
{
	static uint8_t dgrams[HDL_UDP_MAX_PACKETS][HDL_UDP_MAX_DGRAM];
	static size_t dglen[HDL_UDP_MAX_PACKETS];
	static uint32_t order[HDL_UDP_MAX_PACKETS];
	uint32_t msg_len = (uint32_t)(len - HDL_ENVELOPE_LEN);
	uint32_t np = hdl_udp_npackets(msg_len);

	if (np != (msg_len + HDL_UDP_MAX_PAYLOAD - 1) / HDL_UDP_MAX_PAYLOAD)
		abort();
	if (np == 0 || np > HDL_UDP_MAX_PACKETS)
		abort();
	for (uint32_t k = 0; k < np; k++) {
		size_t n = hdl_udp_packet(msg, len, k, set_tc, dgrams[k]);
		if (n < HDL_ENVELOPE_LEN || n > HDL_UDP_MAX_DGRAM)
			abort();
		size_t want = HDL_ENVELOPE_LEN + (k + 1 < np ? HDL_UDP_MAX_PAYLOAD
		                                               : msg_len - k * HDL_UDP_MAX_PAYLOAD);
		if (n != want)
			abort();
		const uint8_t *d = dgrams[k];
		if (memcmp(d, msg, 2) != 0 || d[3] != msg[3] || memcmp(d + 4, msg + 4, 8) != 0 ||
		    get_u32(d + 12) != k || get_u32(d + 16) != msg_len)
			abort();
		if (np > 1 && set_tc && !(d[2] & HDL_ENV_TRUNCATED))
			abort();
		if ((d[2] & (uint8_t)~HDL_ENV_TRUNCATED) != (msg[2] & (uint8_t)~HDL_ENV_TRUNCATED))
			abort();
		if (memcmp(d + HDL_ENVELOPE_LEN, msg + HDL_ENVELOPE_LEN + (size_t)k * HDL_UDP_MAX_PAYLOAD,
		           n - HDL_ENVELOPE_LEN) != 0)
			abort();
		dglen[k] = n;
		order[k] = k;
	}
	uint8_t scratch[HDL_UDP_MAX_DGRAM];
	if (hdl_udp_packet(msg, len, np, set_tc, scratch) != 0)
		abort();
	for (uint32_t i = np; i > 1; i--) {
		uint32_t j = xorshift(&seed) % i;
		uint32_t t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, reasm_buf, sizeof(reasm_buf));
	for (uint32_t i = 0; i < np; i++) {
		uint32_t k = order[i];
		int rc = hdl_udp_reasm_add(&r, dgrams[k], dglen[k]);
		if (rc != (i + 1 == np ? 1 : 0))
			abort();
		if (i + 1 < np && (xorshift(&seed) & 3) == 0) {
			/* a duplicate of something already received is ignored */
			uint32_t dup = order[xorshift(&seed) % (i + 1)];
			if (hdl_udp_reasm_add(&r, dgrams[dup], dglen[dup]) != 0)
				abort();
		}
	}
	if (r.msg_len != msg_len || r.request_id != get_u32(msg + 8))
		abort();
	/* envelope: all but TC and the sequence number as sent; payload byte for byte */
	if (memcmp(r.buf, msg, 2) != 0 || r.buf[3] != msg[3] || memcmp(r.buf + 4, msg + 4, 8) != 0 ||
	    get_u32(r.buf + 12) != 0 || get_u32(r.buf + 16) != msg_len ||
	    (r.buf[2] & (uint8_t)~HDL_ENV_TRUNCATED) != (msg[2] & (uint8_t)~HDL_ENV_TRUNCATED) ||
	    memcmp(r.buf + HDL_ENVELOPE_LEN, msg + HDL_ENVELOPE_LEN, msg_len) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	datagrams(data, size);

	uint32_t seed = 2166136261u; /* FNV-1a of the input seeds the shuffle */
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	if (seed == 0)
		seed = 1;

	/* the raw input as the message payload behind a synthetic 2.11 envelope */
	if (size > 0 && size <= HDL_MAX_MESSAGE_LEN) {
		static const uint8_t env[12] = {2, 11, 2, 11, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78};
		memcpy(msg_buf, env, sizeof(env));
		put_u32(msg_buf + 12, 0);
		put_u32(msg_buf + 16, (uint32_t)size);
		if (size)
			memcpy(msg_buf + HDL_ENVELOPE_LEN, data, size);
		roundtrip(msg_buf, HDL_ENVELOPE_LEN + size, seed, size & 1);
	}

	/* a decodable message, re-encoded, fragmented and reassembled */
	uint8_t stack[4096];
	hdl_arena_t a;
	hdl_msg_t m;
	size_t n = 0;
	hdl_arena_init(&a, stack, sizeof(stack), 8u << 20);
	if (hdl_msg_decode(data, size, &a, &m) == HDL_EOK && m.kind != HDL_BODY_NONE &&
	    hdl_msg_encode(&m, msg_buf, sizeof(msg_buf), &n) == HDL_EOK)
		roundtrip(msg_buf, n, seed ^ 0x9e3779b9u, !(size & 1));
	hdl_arena_free(&a);
	return 0;
}
