/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Bounds-checked big-endian reader and writer with a sticky error.
 *
 * After the first error every read returns 0 / an empty slice and every write is a no-op; callers
 * check `err` once at the end of a decoder. Length-prefixed fields are read through bounded
 * sub-readers (wire_rd_sub), so a field can never overrun its parent.
 */
#ifndef HDL_PROTO_WIRE_H
#define HDL_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"

/** Reader over a const buffer. */
typedef struct wire_rd {
	const uint8_t *base; /**< start of the readable region */
	size_t len;          /**< bytes in the region */
	size_t pos;          /**< next byte to read */
	int err;             /**< sticky hdl_err_t, HDL_EOK while healthy */
} wire_rd_t;

/** Writer into a caller-owned buffer. */
typedef struct wire_wr {
	uint8_t *base; /**< start of the buffer */
	size_t cap;    /**< capacity */
	size_t pos;    /**< bytes written */
	int err;       /**< sticky hdl_err_t; HDL_ESPACE when full */
} wire_wr_t;

static inline wire_rd_t wire_rd_init(const void *buf, size_t len)
{
	wire_rd_t rd = {(const uint8_t *)buf, len, 0, HDL_EOK};
	return rd;
}

static inline size_t wire_rd_left(const wire_rd_t *rd)
{
	return rd->err ? 0 : rd->len - rd->pos;
}

static inline const uint8_t *wire_rd_ptr(const wire_rd_t *rd)
{
	return rd->base + rd->pos;
}

static inline void wire_rd_fail(wire_rd_t *rd, int err)
{
	if (rd->err == HDL_EOK)
		rd->err = err;
}

static inline bool wire_rd_need(wire_rd_t *rd, size_t n)
{
	if (rd->err)
		return false;
	if (rd->len - rd->pos < n) {
		rd->err = HDL_ETRUNC;
		return false;
	}
	return true;
}

static inline uint8_t wire_rd_u8(wire_rd_t *rd)
{
	if (!wire_rd_need(rd, 1))
		return 0;
	return rd->base[rd->pos++];
}

static inline uint16_t wire_rd_u16(wire_rd_t *rd)
{
	if (!wire_rd_need(rd, 2))
		return 0;
	const uint8_t *p = rd->base + rd->pos;
	rd->pos += 2;
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t wire_rd_u32(wire_rd_t *rd)
{
	if (!wire_rd_need(rd, 4))
		return 0;
	const uint8_t *p = rd->base + rd->pos;
	rd->pos += 4;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/** \brief Borrow \p n raw bytes. The slice points into the reader's buffer. */
static inline hdl_slice_t wire_rd_bytes(wire_rd_t *rd, size_t n)
{
	hdl_slice_t s = {NULL, 0};
	if (!wire_rd_need(rd, n))
		return s;
	s.p = rd->base + rd->pos;
	s.len = (uint32_t)n;
	rd->pos += n;
	return s;
}

static inline void wire_rd_skip(wire_rd_t *rd, size_t n)
{
	(void)wire_rd_bytes(rd, n);
}

/** \brief Carve a bounded sub-reader of \p n bytes and advance the parent past it. */
static inline wire_rd_t wire_rd_sub(wire_rd_t *rd, size_t n)
{
	wire_rd_t sub = {NULL, 0, 0, HDL_EOK};
	if (!wire_rd_need(rd, n)) {
		sub.err = rd->err;
		return sub;
	}
	sub.base = rd->base + rd->pos;
	sub.len = n;
	rd->pos += n;
	return sub;
}

/**
 * \brief Read a U32 length + bytes (the STR / BYTES form), with \p max as an upper bound.
 * \retval slice borrowing from the reader; on error an empty slice and err set (HDL_ELIMIT when the
 *         declared length is over \p max, HDL_ETRUNC when it overruns the buffer).
 */
static inline hdl_slice_t wire_rd_lbytes(wire_rd_t *rd, uint32_t max)
{
	hdl_slice_t s = {NULL, 0};
	uint32_t n = wire_rd_u32(rd);
	if (rd->err)
		return s;
	if (n > max) {
		rd->err = HDL_ELIMIT;
		return s;
	}
	return wire_rd_bytes(rd, n);
}

/**
 * \brief Read a U32 element count and allocate that many elements from \p a.
 *
 * The count is checked against \p max (HDL_ELIMIT) and against the bytes left, each element taking
 * at least \p min_len bytes (HDL_ETRUNC), before anything is allocated (HDL_ENOMEM).
 * \return zeroed array, or NULL when the count is 0 or on error (then rd->err is set and *n = 0)
 */
static inline void *wire_rd_array(wire_rd_t *rd, hdl_arena_t *a, uint32_t max, size_t min_len,
                                  size_t elem_size, uint32_t *n)
{
	*n = 0;
	uint32_t cnt = wire_rd_u32(rd);
	if (rd->err)
		return NULL;
	if (cnt > max) {
		rd->err = HDL_ELIMIT;
		return NULL;
	}
	if ((uint64_t)cnt * min_len > wire_rd_left(rd)) {
		rd->err = HDL_ETRUNC;
		return NULL;
	}
	if (cnt == 0)
		return NULL;
	void *v = hdl_arena_alloc(a, (size_t)cnt * elem_size);
	if (v == NULL) {
		rd->err = HDL_ENOMEM;
		return NULL;
	}
	*n = cnt;
	return v;
}

/** \brief Mark the current position (for TCP framing: roll back when a frame is incomplete). */
static inline size_t wire_rd_mark(const wire_rd_t *rd)
{
	return rd->pos;
}

static inline void wire_rd_rollback(wire_rd_t *rd, size_t mark)
{
	rd->pos = mark;
	rd->err = HDL_EOK;
}

static inline wire_wr_t wire_wr_init(void *buf, size_t cap)
{
	wire_wr_t wr = {(uint8_t *)buf, cap, 0, HDL_EOK};
	return wr;
}

static inline bool wire_wr_need(wire_wr_t *wr, size_t n)
{
	if (wr->err)
		return false;
	if (wr->cap - wr->pos < n) {
		wr->err = HDL_ESPACE;
		return false;
	}
	return true;
}

static inline void wire_wr_u8(wire_wr_t *wr, uint8_t v)
{
	if (wire_wr_need(wr, 1))
		wr->base[wr->pos++] = v;
}

static inline void wire_wr_u16(wire_wr_t *wr, uint16_t v)
{
	if (!wire_wr_need(wr, 2))
		return;
	wr->base[wr->pos++] = (uint8_t)(v >> 8);
	wr->base[wr->pos++] = (uint8_t)v;
}

static inline void wire_wr_u32(wire_wr_t *wr, uint32_t v)
{
	if (!wire_wr_need(wr, 4))
		return;
	uint8_t *p = wr->base + wr->pos;
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	wr->pos += 4;
}

static inline void wire_wr_bytes(wire_wr_t *wr, const void *p, size_t n)
{
	if (!wire_wr_need(wr, n))
		return;
	if (n)
		memcpy(wr->base + wr->pos, p, n);
	wr->pos += n;
}

/** \brief Write U32 length + bytes (STR / BYTES). */
static inline void wire_wr_lbytes(wire_wr_t *wr, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		if (!wr->err)
			wr->err = HDL_ELIMIT;
		return;
	}
	wire_wr_u32(wr, (uint32_t)n);
	wire_wr_bytes(wr, p, n);
}

static inline void wire_wr_slice(wire_wr_t *wr, hdl_slice_t s)
{
	wire_wr_lbytes(wr, s.p, s.len);
}

/** \brief Overwrite a U32 at an earlier offset (length patching). */
static inline void wire_wr_put_u32_at(wire_wr_t *wr, size_t off, uint32_t v)
{
	if (wr->err || off + 4 > wr->pos)
		return;
	uint8_t *p = wr->base + off;
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif /* HDL_PROTO_WIRE_H */
