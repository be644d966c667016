/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for proto/udp.c: fragmentation at 492 message bytes per datagram, datagram
 *        size <= 512, TC, reassembly in and out of order, duplicates, foreign RequestIds and
 *        datagrams inconsistent with the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hdl/error.h"
#include "hdl/msg.h"

#define REASM_CAP (HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN)

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

/* A message of msg_len bytes after a 2.11 envelope; payload byte i = i * 7 + 3. */
static uint8_t *make_msg(uint32_t msg_len, uint32_t request_id)
{
	uint8_t *m = malloc(HDL_ENVELOPE_LEN + (size_t)msg_len);
	assert_non_null(m);
	static const uint8_t env[8] = {
		0x02, 0x0b, /* version 2.11 */
		0x02, 0x0b, /* no flags, suggests 2.11 */
		0x00, 0x00, 0x00, 0x2a, /* SessionId 42 */
	};
	memcpy(m, env, sizeof(env));
	put_u32(m + 8, request_id); /* RequestId */
	put_u32(m + 12, 0);         /* SequenceNumber */
	put_u32(m + 16, msg_len);   /* MessageLength */
	for (uint32_t i = 0; i < msg_len; i++)
		m[HDL_ENVELOPE_LEN + i] = (uint8_t)(i * 7u + 3u);
	return m;
}

static void test_npackets(void **state)
{
	(void)state;
	assert_int_equal(hdl_udp_npackets(0), 1);
	assert_int_equal(hdl_udp_npackets(1), 1);
	assert_int_equal(hdl_udp_npackets(492), 1);
	assert_int_equal(hdl_udp_npackets(493), 2);
	assert_int_equal(hdl_udp_npackets(984), 2);
	assert_int_equal(hdl_udp_npackets(985), 3);
	assert_int_equal(hdl_udp_npackets(HDL_MAX_MESSAGE_LEN), HDL_UDP_MAX_PACKETS);
	assert_int_equal(HDL_UDP_MAX_PAYLOAD + HDL_ENVELOPE_LEN, HDL_UDP_MAX_DGRAM);
}

/* One datagram: the message as it is, TC never set. */
static void test_single_packet(void **state)
{
	(void)state;
	uint8_t *m = make_msg(492, 7);
	uint8_t dg[HDL_UDP_MAX_DGRAM];
	assert_int_equal(hdl_udp_packet(m, 20 + 492, 0, true, dg), 512);
	assert_memory_equal(dg, m, 512);
	assert_int_equal(dg[2] & HDL_ENV_TRUNCATED, 0);
	assert_int_equal(hdl_udp_packet(m, 20 + 492, 1, true, dg), 0);
	/* shorter than an envelope: nothing */
	assert_int_equal(hdl_udp_packet(m, 19, 0, false, dg), 0);
	free(m);
}

/* Fragmentation of a 3-packet message at 492 bytes: envelope per datagram, k*492 offsets. */
static void test_fragment(void **state)
{
	(void)state;
	const uint32_t msg_len = 1200; /* 492 + 492 + 216 */
	uint8_t *m = make_msg(msg_len, 0x01020304);
	static const size_t want_len[3] = {512, 512, 20 + 216};
	for (int tc = 0; tc < 2; tc++) {
		for (uint32_t k = 0; k < 3; k++) {
			uint8_t dg[HDL_UDP_MAX_DGRAM + 8];
			memset(dg, 0xee, sizeof(dg));
			size_t n = hdl_udp_packet(m, 20 + msg_len, k, tc, dg);
			assert_int_equal(n, want_len[k]);
			assert_true(n <= HDL_UDP_MAX_DGRAM);
			assert_int_equal(dg[HDL_UDP_MAX_DGRAM], 0xee); /* nothing past 512 */
			assert_memory_equal(dg, m, 2);                 /* version */
			assert_int_equal(dg[2], tc ? (0x02 | HDL_ENV_TRUNCATED) : 0x02);
			assert_int_equal(dg[3], 0x0b);
			assert_int_equal(get_u32(dg + 4), 42);         /* SessionId */
			assert_int_equal(get_u32(dg + 8), 0x01020304); /* RequestId */
			assert_int_equal(get_u32(dg + 12), k);         /* SequenceNumber */
			assert_int_equal(get_u32(dg + 16), msg_len);   /* whole MessageLength */
			assert_memory_equal(dg + 20, m + 20 + k * 492, n - 20);
		}
		uint8_t dg[HDL_UDP_MAX_DGRAM];
		assert_int_equal(hdl_udp_packet(m, 20 + msg_len, 3, tc, dg), 0);
	}
	free(m);
}

/* Every datagram of the largest message is <= 512 bytes and they tile the message. */
static void test_fragment_max(void **state)
{
	(void)state;
	uint8_t *m = make_msg(HDL_MAX_MESSAGE_LEN, 9);
	size_t total = 0;
	uint32_t np = hdl_udp_npackets(HDL_MAX_MESSAGE_LEN);
	for (uint32_t k = 0; k < np; k++) {
		uint8_t dg[HDL_UDP_MAX_DGRAM];
		size_t n = hdl_udp_packet(m, 20 + (size_t)HDL_MAX_MESSAGE_LEN, k, true, dg);
		assert_true(n > 20 && n <= HDL_UDP_MAX_DGRAM);
		total += n - 20;
	}
	assert_int_equal(total, HDL_MAX_MESSAGE_LEN);
	/* over the message limit: refused */
	uint8_t dg[HDL_UDP_MAX_DGRAM];
	assert_int_equal(hdl_udp_packet(m, 20 + (size_t)HDL_MAX_MESSAGE_LEN + 1, 0, true, dg), 0);
	free(m);
}

struct frags {
	uint8_t dg[8][HDL_UDP_MAX_DGRAM];
	size_t len[8];
	uint32_t n;
};

static void fragment(const uint8_t *m, uint32_t msg_len, bool tc, struct frags *f)
{
	f->n = hdl_udp_npackets(msg_len);
	assert_true(f->n <= 8);
	for (uint32_t k = 0; k < f->n; k++)
		f->len[k] = hdl_udp_packet(m, 20 + (size_t)msg_len, k, tc, f->dg[k]);
}

static void assert_reassembled(const hdl_udp_reasm_t *r, const uint8_t *m, uint32_t msg_len)
{
	assert_int_equal(r->msg_len, msg_len);
	assert_int_equal(r->request_id, get_u32(m + 8));
	/* envelope as sent, TC cleared and SequenceNumber 0; the payload byte for byte */
	assert_memory_equal(r->buf, m, 20 + (size_t)msg_len);
}

static void test_reasm_in_order(void **state)
{
	(void)state;
	uint8_t *buf = malloc(REASM_CAP);
	uint8_t *m = make_msg(1200, 77);
	struct frags f;
	fragment(m, 1200, true, &f);
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, buf, REASM_CAP);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[0], f.len[0]), 0);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[1], f.len[1]), 0);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[2], f.len[2]), 1);
	assert_reassembled(&r, m, 1200);
	free(m);
	free(buf);
}

/* Out of order, with duplicates (UDP retries), without TC (Handle.Net servers omit it). */
static void test_reasm_out_of_order_dups(void **state)
{
	(void)state;
	uint8_t *buf = malloc(REASM_CAP);
	uint8_t *m = make_msg(2000, 78); /* 5 packets */
	struct frags f;
	fragment(m, 2000, false, &f);
	assert_int_equal(f.n, 5);
	static const uint32_t order[] = {4, 2, 2, 0, 4, 3, 0, 1};
	static const int want[] = {0, 0, 0, 0, 0, 0, 0, 1};
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, buf, REASM_CAP);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		assert_int_equal(hdl_udp_reasm_add(&r, f.dg[order[i]], f.len[order[i]]), want[i]);
	assert_int_equal(r.received, 5);
	assert_reassembled(&r, m, 2000);
	free(m);
	free(buf);
}

/* A single-datagram message completes at once (the common resolution answer). */
static void test_reasm_single(void **state)
{
	(void)state;
	uint8_t *buf = malloc(REASM_CAP);
	uint8_t *m = make_msg(53, 79);
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, buf, REASM_CAP);
	assert_int_equal(hdl_udp_reasm_add(&r, m, 20 + 53), 1);
	assert_reassembled(&r, m, 53);
	free(m);
	free(buf);
}

static void test_reasm_wrong_request_id(void **state)
{
	(void)state;
	uint8_t *buf = malloc(REASM_CAP);
	uint8_t *m = make_msg(1000, 100);
	uint8_t *other = make_msg(1000, 101);
	struct frags f, g;
	fragment(m, 1000, true, &f);
	fragment(other, 1000, true, &g);
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, buf, REASM_CAP);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[1], f.len[1]), 0);
	/* another RequestId: the caller decides; the state is untouched */
	assert_int_equal(hdl_udp_reasm_add(&r, g.dg[0], g.len[0]), HDL_EINVAL);
	assert_int_equal(hdl_udp_reasm_add(&r, g.dg[2], g.len[2]), HDL_EINVAL);
	assert_int_equal(r.received, 1);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[0], f.len[0]), 0);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[2], f.len[2]), 1);
	assert_reassembled(&r, m, 1000);
	free(m);
	free(other);
	free(buf);
}

static void test_reasm_inconsistent(void **state)
{
	(void)state;
	uint8_t *buf = malloc(REASM_CAP);
	uint8_t *m = make_msg(1200, 200);
	struct frags f;
	fragment(m, 1200, true, &f);
	hdl_udp_reasm_t r;
	uint8_t dg[HDL_UDP_MAX_DGRAM + 4];

	hdl_udp_reasm_init(&r, buf, REASM_CAP);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[0], f.len[0]), 0);

	/* a MessageLength other than the first datagram's */
	memcpy(dg, f.dg[1], f.len[1]);
	put_u32(dg + 16, 1201);
	assert_int_equal(hdl_udp_reasm_add(&r, dg, f.len[1]), HDL_EMALF);

	/* a SequenceNumber past the last packet */
	memcpy(dg, f.dg[2], f.len[2]);
	put_u32(dg + 12, 3);
	assert_int_equal(hdl_udp_reasm_add(&r, dg, f.len[2]), HDL_EMALF);

	/* a middle packet shorter than 492 payload bytes */
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[1], f.len[1] - 1), HDL_ETRUNC);
	/* the last packet longer than the rest of the message */
	memcpy(dg, f.dg[2], f.len[2]);
	dg[f.len[2]] = 0;
	assert_int_equal(hdl_udp_reasm_add(&r, dg, f.len[2] + 1), HDL_EMALF);
	/* more than 492 payload bytes: over the datagram size */
	memcpy(dg, f.dg[1], f.len[1]);
	memset(dg + f.len[1], 0, 4);
	assert_int_equal(hdl_udp_reasm_add(&r, dg, f.len[1] + 1), HDL_EMALF);
	/* shorter than an envelope */
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[1], 19), HDL_ETRUNC);
	/* an unsupported major version */
	memcpy(dg, f.dg[1], f.len[1]);
	dg[0] = 9;
	assert_int_equal(hdl_udp_reasm_add(&r, dg, f.len[1]), HDL_EVERSION);

	/* none of that disturbed the reassembly */
	assert_int_equal(r.received, 1);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[2], f.len[2]), 0);
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[1], f.len[1]), 1);
	assert_reassembled(&r, m, 1200);
	free(m);
	free(buf);
}

/* A MessageLength over the limit, or over the caller's buffer, is refused before any copy. */
static void test_reasm_limits(void **state)
{
	(void)state;
	uint8_t small[HDL_ENVELOPE_LEN + 600];
	uint8_t *m = make_msg(1200, 300);
	struct frags f;
	fragment(m, 1200, true, &f);
	hdl_udp_reasm_t r;
	hdl_udp_reasm_init(&r, small, sizeof(small));
	assert_int_equal(hdl_udp_reasm_add(&r, f.dg[0], f.len[0]), HDL_ELIMIT);
	assert_false(r.started);

	uint8_t dg[HDL_UDP_MAX_DGRAM];
	memcpy(dg, f.dg[0], f.len[0]);
	put_u32(dg + 16, HDL_MAX_MESSAGE_LEN + 1);
	uint8_t *buf = malloc(REASM_CAP);
	hdl_udp_reasm_init(&r, buf, REASM_CAP);
	assert_int_equal(hdl_udp_reasm_add(&r, dg, f.len[0]), HDL_ELIMIT);
	assert_false(r.started);
	free(m);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_npackets),
		cmocka_unit_test(test_single_packet),
		cmocka_unit_test(test_fragment),
		cmocka_unit_test(test_fragment_max),
		cmocka_unit_test(test_reasm_in_order),
		cmocka_unit_test(test_reasm_out_of_order_dups),
		cmocka_unit_test(test_reasm_single),
		cmocka_unit_test(test_reasm_wrong_request_id),
		cmocka_unit_test(test_reasm_inconsistent),
		cmocka_unit_test(test_reasm_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
