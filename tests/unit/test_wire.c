/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Unit tests for proto/wire.h: big-endian reader/writer, sticky errors, bounded
 *        sub-readers, length-prefixed fields with limits, mark/rollback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/wire.h"

/* Reads of every width are big-endian and advance pos by their size. */
static void test_rd_integers(void **state)
{
	(void)state;
	static const uint8_t buf[] = {
		0x7f,                   /* U8 */
		0xbe, 0xef,             /* U16 0xbeef */
		0xde, 0xad, 0xbe, 0xef, /* U32 0xdeadbeef */
		0x00, 0x00, 0x00, 0x01, /* U32 1 */
	};
	wire_rd_t rd = wire_rd_init(buf, sizeof(buf));
	assert_int_equal(wire_rd_left(&rd), 11);
	assert_int_equal(wire_rd_u8(&rd), 0x7f);
	assert_int_equal(wire_rd_u16(&rd), 0xbeef);
	assert_int_equal(wire_rd_u32(&rd), 0xdeadbeefu);
	assert_ptr_equal(wire_rd_ptr(&rd), buf + 7);
	assert_int_equal(wire_rd_u32(&rd), 1);
	assert_int_equal(rd.err, HDL_EOK);
	assert_int_equal(wire_rd_left(&rd), 0);
	assert_int_equal(rd.pos, sizeof(buf));
}

/* The first failure sticks: later reads return 0 / empty and leave pos alone. */
static void test_rd_sticky(void **state)
{
	(void)state;
	static const uint8_t buf[] = {0x01, 0x02, 0x03};
	wire_rd_t rd = wire_rd_init(buf, sizeof(buf));
	assert_int_equal(wire_rd_u16(&rd), 0x0102);
	/* 1 byte left: a U32 fails with ETRUNC and reads nothing */
	assert_int_equal(wire_rd_u32(&rd), 0);
	assert_int_equal(rd.err, HDL_ETRUNC);
	assert_int_equal(rd.pos, 2);
	/* even a read that would fit now returns 0 */
	assert_int_equal(wire_rd_u8(&rd), 0);
	assert_int_equal(wire_rd_u16(&rd), 0);
	hdl_slice_t s = wire_rd_bytes(&rd, 1);
	assert_null(s.p);
	assert_int_equal(s.len, 0);
	assert_int_equal(wire_rd_left(&rd), 0);
	assert_int_equal(rd.pos, 2);
	/* a later failure does not overwrite the first error */
	wire_rd_fail(&rd, HDL_EMALF);
	assert_int_equal(rd.err, HDL_ETRUNC);

	/* wire_rd_fail on a healthy reader sets the error */
	wire_rd_t rd2 = wire_rd_init(buf, sizeof(buf));
	wire_rd_fail(&rd2, HDL_EMALF);
	assert_int_equal(rd2.err, HDL_EMALF);
	assert_int_equal(wire_rd_u8(&rd2), 0);
}

/* Each width fails on exactly one byte too few. */
static void test_rd_truncation_each_width(void **state)
{
	(void)state;
	static const uint8_t buf[4] = {1, 2, 3, 4};
	for (size_t len = 0; len < 4; len++) {
		wire_rd_t rd = wire_rd_init(buf, len);
		(void)wire_rd_u32(&rd);
		assert_int_equal(rd.err, HDL_ETRUNC);
	}
	for (size_t len = 0; len < 2; len++) {
		wire_rd_t rd = wire_rd_init(buf, len);
		(void)wire_rd_u16(&rd);
		assert_int_equal(rd.err, HDL_ETRUNC);
	}
	wire_rd_t rd = wire_rd_init(NULL, 0);
	assert_int_equal(wire_rd_u8(&rd), 0);
	assert_int_equal(rd.err, HDL_ETRUNC);
	/* zero-length reads always succeed on a healthy reader, even at the end */
	wire_rd_t rd0 = wire_rd_init(buf, 0);
	hdl_slice_t s = wire_rd_bytes(&rd0, 0);
	assert_int_equal(rd0.err, HDL_EOK);
	assert_int_equal(s.len, 0);
}

/* Raw bytes borrow from the buffer; skip advances. */
static void test_rd_bytes_skip(void **state)
{
	(void)state;
	static const uint8_t buf[] = {'a', 'b', 'c', 'd', 'e'};
	wire_rd_t rd = wire_rd_init(buf, sizeof(buf));
	hdl_slice_t s = wire_rd_bytes(&rd, 2);
	assert_ptr_equal(s.p, buf);
	assert_int_equal(s.len, 2);
	wire_rd_skip(&rd, 2);
	assert_int_equal(wire_rd_u8(&rd), 'e');
	wire_rd_skip(&rd, 1);
	assert_int_equal(rd.err, HDL_ETRUNC);
	/* a huge n never wraps around */
	wire_rd_t rd2 = wire_rd_init(buf, sizeof(buf));
	(void)wire_rd_u8(&rd2);
	s = wire_rd_bytes(&rd2, SIZE_MAX);
	assert_null(s.p);
	assert_int_equal(rd2.err, HDL_ETRUNC);
}

/* A sub-reader is bounded: it can never read past its own length into the parent. */
static void test_rd_sub(void **state)
{
	(void)state;
	static const uint8_t buf[] = {
		0x00, 0x00, 0x00, 0x03, /* U32 length 3 */
		0xaa, 0xbb, 0xcc,       /* the field */
		0x11, 0x22,             /* parent continues */
	};
	wire_rd_t rd = wire_rd_init(buf, sizeof(buf));
	uint32_t n = wire_rd_u32(&rd);
	wire_rd_t sub = wire_rd_sub(&rd, n);
	assert_int_equal(sub.err, HDL_EOK);
	assert_int_equal(wire_rd_left(&sub), 3);
	assert_int_equal(wire_rd_u16(&sub), 0xaabb);
	/* the field has one byte left: a U16 overruns the field, not the parent */
	assert_int_equal(wire_rd_u16(&sub), 0);
	assert_int_equal(sub.err, HDL_ETRUNC);
	/* the parent is past the field and unaffected */
	assert_int_equal(rd.err, HDL_EOK);
	assert_int_equal(wire_rd_u16(&rd), 0x1122);
	assert_int_equal(wire_rd_left(&rd), 0);

	/* a sub-reader longer than the parent fails the parent and comes back failed */
	wire_rd_t rd2 = wire_rd_init(buf, sizeof(buf));
	wire_rd_skip(&rd2, 4);
	wire_rd_t sub2 = wire_rd_sub(&rd2, 6);
	assert_int_equal(rd2.err, HDL_ETRUNC);
	assert_int_equal(sub2.err, HDL_ETRUNC);
	assert_int_equal(wire_rd_left(&sub2), 0);
	assert_int_equal(wire_rd_u8(&sub2), 0);

	/* a sub-reader of a failed parent is failed too */
	wire_rd_t rd3 = wire_rd_init(buf, 1);
	(void)wire_rd_u32(&rd3);
	wire_rd_t sub3 = wire_rd_sub(&rd3, 0);
	assert_int_equal(sub3.err, HDL_ETRUNC);

	/* nested sub-readers */
	wire_rd_t rd4 = wire_rd_init(buf, sizeof(buf));
	wire_rd_t outer = wire_rd_sub(&rd4, 7);
	wire_rd_skip(&outer, 4);
	wire_rd_t inner = wire_rd_sub(&outer, 3);
	assert_int_equal(wire_rd_u8(&inner), 0xaa);
	wire_rd_t inner2 = wire_rd_sub(&inner, 3); /* only 2 left */
	assert_int_equal(inner.err, HDL_ETRUNC);
	assert_int_equal(inner2.err, HDL_ETRUNC);
	assert_int_equal(outer.err, HDL_EOK);
	assert_int_equal(rd4.err, HDL_EOK);
}

/* STR / BYTES: U32 length + bytes, with a limit checked before the bytes. */
static void test_rd_lbytes(void **state)
{
	(void)state;
	static const uint8_t ok[] = {
		0x00, 0x00, 0x00, 0x04, /* length 4 */
		'U',  'R',  'L',  '.',  /* bytes */
		0x00, 0x00, 0x00, 0x00, /* empty STR */
	};
	wire_rd_t rd = wire_rd_init(ok, sizeof(ok));
	hdl_slice_t s = wire_rd_lbytes(&rd, 4);
	assert_int_equal(rd.err, HDL_EOK);
	assert_int_equal(s.len, 4);
	assert_ptr_equal(s.p, ok + 4);
	s = wire_rd_lbytes(&rd, 0);
	assert_int_equal(rd.err, HDL_EOK);
	assert_int_equal(s.len, 0);
	assert_int_equal(wire_rd_left(&rd), 0);

	/* length over the limit: ELIMIT, even though the bytes are there */
	rd = wire_rd_init(ok, sizeof(ok));
	s = wire_rd_lbytes(&rd, 3);
	assert_int_equal(rd.err, HDL_ELIMIT);
	assert_null(s.p);
	assert_int_equal(s.len, 0);

	/* length within the limit but past the buffer: ETRUNC */
	static const uint8_t over[] = {
		0x00, 0x00, 0x00, 0x05, /* length 5 */
		'a',  'b',              /* only 2 bytes */
	};
	rd = wire_rd_init(over, sizeof(over));
	s = wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
	assert_int_equal(rd.err, HDL_ETRUNC);
	assert_int_equal(s.len, 0);

	/* 0xffffffff is over any limit; checked before any arithmetic */
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'x'};
	rd = wire_rd_init(huge, sizeof(huge));
	(void)wire_rd_lbytes(&rd, HDL_MAX_ARRAY_LEN);
	assert_int_equal(rd.err, HDL_ELIMIT);
	rd = wire_rd_init(huge, sizeof(huge));
	(void)wire_rd_lbytes(&rd, UINT32_MAX);
	assert_int_equal(rd.err, HDL_ETRUNC);

	/* truncated length prefix */
	rd = wire_rd_init(ok, 3);
	(void)wire_rd_lbytes(&rd, 10);
	assert_int_equal(rd.err, HDL_ETRUNC);
}

/* mark/rollback: an incomplete frame resets cleanly, error included. */
static void test_rd_rollback(void **state)
{
	(void)state;
	static const uint8_t buf[] = {0x00, 0x00, 0x00, 0x08, 0x01, 0x02};
	wire_rd_t rd = wire_rd_init(buf, sizeof(buf));
	size_t mark = wire_rd_mark(&rd);
	assert_int_equal(mark, 0);
	uint32_t n = wire_rd_u32(&rd);
	(void)wire_rd_bytes(&rd, n); /* frame says 8, only 2 here */
	assert_int_equal(rd.err, HDL_ETRUNC);
	wire_rd_rollback(&rd, mark);
	assert_int_equal(rd.err, HDL_EOK);
	assert_int_equal(rd.pos, 0);
	assert_int_equal(wire_rd_u32(&rd), 8);
	size_t mark2 = wire_rd_mark(&rd);
	assert_int_equal(mark2, 4);
	assert_int_equal(wire_rd_u16(&rd), 0x0102);
	wire_rd_rollback(&rd, mark2);
	assert_int_equal(wire_rd_u8(&rd), 0x01);
}

/* Writer: big-endian, exact positions, sticky ESPACE without partial writes. */
static void test_wr_basic(void **state)
{
	(void)state;
	uint8_t buf[16];
	memset(buf, 0xee, sizeof(buf));
	wire_wr_t wr = wire_wr_init(buf, sizeof(buf));
	wire_wr_u8(&wr, 0x01);
	wire_wr_u16(&wr, 0x0203);
	wire_wr_u32(&wr, 0x04050607);
	wire_wr_bytes(&wr, "ab", 2);
	wire_wr_bytes(&wr, NULL, 0);
	assert_int_equal(wr.err, HDL_EOK);
	assert_int_equal(wr.pos, 9);
	static const uint8_t want[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 'a', 'b'};
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(buf[9], 0xee);
}

static void test_wr_sticky(void **state)
{
	(void)state;
	uint8_t buf[8];
	memset(buf, 0xee, sizeof(buf));
	wire_wr_t wr = wire_wr_init(buf, 5);
	wire_wr_u32(&wr, 0x11223344);
	wire_wr_u16(&wr, 0x5566); /* 1 byte left: fails, writes nothing */
	assert_int_equal(wr.err, HDL_ESPACE);
	assert_int_equal(wr.pos, 4);
	assert_int_equal(buf[4], 0xee);
	wire_wr_u8(&wr, 0x77); /* would fit, but the error is sticky */
	assert_int_equal(wr.pos, 4);
	assert_int_equal(buf[4], 0xee);
	wire_wr_bytes(&wr, "x", 1);
	wire_wr_lbytes(&wr, "", 0);
	assert_int_equal(wr.pos, 4);
	assert_int_equal(wr.err, HDL_ESPACE);

	/* each width fails on a buffer one byte too small */
	for (size_t cap = 0; cap < 4; cap++) {
		wire_wr_t w = wire_wr_init(buf, cap);
		wire_wr_u32(&w, 1);
		assert_int_equal(w.err, HDL_ESPACE);
		assert_int_equal(w.pos, 0);
	}
	wire_wr_t w0 = wire_wr_init(NULL, 0);
	wire_wr_u8(&w0, 1);
	assert_int_equal(w0.err, HDL_ESPACE);
}

static void test_wr_lbytes_and_patch(void **state)
{
	(void)state;
	uint8_t buf[32];
	wire_wr_t wr = wire_wr_init(buf, sizeof(buf));
	size_t at = wr.pos;
	wire_wr_u32(&wr, 0); /* length, patched below */
	wire_wr_lbytes(&wr, "URL", 3);
	hdl_slice_t s = hdl_slice_str("x");
	wire_wr_slice(&wr, s);
	wire_wr_put_u32_at(&wr, at, (uint32_t)(wr.pos - at - 4));
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x0c, /* patched: 12 bytes follow */
		0x00, 0x00, 0x00, 0x03, 'U', 'R', 'L', /* STR "URL" */
		0x00, 0x00, 0x00, 0x01, 'x',           /* STR "x" */
	};
	assert_int_equal(wr.err, HDL_EOK);
	assert_int_equal(wr.pos, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));

	/* patching outside the written region is refused */
	volatile size_t off = wr.pos - 3; /* volatile: keep gcc from folding a bogus bound */
	wire_wr_put_u32_at(&wr, off, 0xffffffffu);
	assert_memory_equal(buf, want, sizeof(want));

	/* lbytes whose payload does not fit: the length may be written, the error sticks */
	wire_wr_t w2 = wire_wr_init(buf, 6);
	wire_wr_lbytes(&w2, "abcdef", 6);
	assert_int_equal(w2.err, HDL_ESPACE);
}

/* What the writer writes, the reader reads back. */
static void test_wr_rd_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[64];
	wire_wr_t wr = wire_wr_init(buf, sizeof(buf));
	wire_wr_u8(&wr, 0xff);
	wire_wr_u16(&wr, 0xfffe);
	wire_wr_u32(&wr, 0x80000001u);
	wire_wr_lbytes(&wr, "handle", 6);
	assert_int_equal(wr.err, HDL_EOK);
	wire_rd_t rd = wire_rd_init(buf, wr.pos);
	assert_int_equal(wire_rd_u8(&rd), 0xff);
	assert_int_equal(wire_rd_u16(&rd), 0xfffe);
	assert_int_equal(wire_rd_u32(&rd), 0x80000001u);
	hdl_slice_t s = wire_rd_lbytes(&rd, 6);
	assert_int_equal(s.len, 6);
	assert_memory_equal(s.p, "handle", 6);
	assert_int_equal(wire_rd_left(&rd), 0);
	assert_int_equal(rd.err, HDL_EOK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rd_integers),
		cmocka_unit_test(test_rd_sticky),
		cmocka_unit_test(test_rd_truncation_each_width),
		cmocka_unit_test(test_rd_bytes_skip),
		cmocka_unit_test(test_rd_sub),
		cmocka_unit_test(test_rd_lbytes),
		cmocka_unit_test(test_rd_rollback),
		cmocka_unit_test(test_wr_basic),
		cmocka_unit_test(test_wr_sticky),
		cmocka_unit_test(test_wr_lbytes_and_patch),
		cmocka_unit_test(test_wr_rd_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
