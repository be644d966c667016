/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Direct writer of the REST JSON resolution answer: the same text as
 *        hdl_json_from_values() dumped by json_dumps(..., JSON_COMPACT), written straight into a
 *        growable byte buffer without a jansson tree.
 *
 * Values of the "string", "base64" and "admin" forms (and the envelope, ttl, timestamp,
 * permissions, references) are written directly; the rare structured forms (HS_VLIST, HS_SITE
 * family, HS_PUBKEY) are rendered through proto/json.c for that one value, so the output is
 * byte-for-byte the jansson output for every input. No I/O.
 */
#ifndef HDL_PROTO_JSON_WRITE_H
#define HDL_PROTO_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hdl/msg.h"

/** A growable byte buffer; once \p fail is set every later append is a no-op. */
typedef struct hdl_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t max;  /**< growth limit (0 = none) */
	bool fail;   /**< an append did not fit (allocation failure or over \p max) */
} hdl_buf_t;

/** \brief An empty buffer that may grow to \p max bytes (0 = no limit). Allocates nothing. */
void hdl_buf_init(hdl_buf_t *b, size_t max);
/** \brief Free the storage and reset to empty. */
void hdl_buf_free(hdl_buf_t *b);
/** \brief Make room for \p n more bytes. \return false (and set fail) when it cannot. */
bool hdl_buf_reserve(hdl_buf_t *b, size_t n);
/** \brief Append \p n bytes. \return false (and set fail) when they do not fit. */
static inline bool hdl_buf_put(hdl_buf_t *b, const void *p, size_t n)
{
	if ((b->cap - b->len < n || b->fail) && !hdl_buf_reserve(b, n))
		return false;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return true;
}

/** \brief Append a NUL-terminated string (without the NUL). */
static inline bool hdl_buf_puts(hdl_buf_t *b, const char *s)
{
	return hdl_buf_put(b, s, strlen(s));
}
/** \brief Append an unsigned decimal number. */
bool hdl_buf_putu(hdl_buf_t *b, uint64_t v);

/** \brief Append "YYYY-MM-DDTHH:MM:SSZ" (20 bytes, as hdl_json_time()) without printf. */
bool hdl_buf_put_time(hdl_buf_t *b, uint32_t t);

/**
 * \brief Append \p n bytes as a JSON string literal as jansson dumps it (quote, backslash and
 *        C0 escapes, \u00XX in upper-case hex, other bytes verbatim); invalid UTF-8 bytes
 *        become U+FFFD, as proto/json.c's string conversion does.
 */
bool hdl_jw_string(hdl_buf_t *b, const uint8_t *p, size_t n);

/** \brief Append one value as compact JSON, equal to json_dumps(hdl_json_from_value(v)). */
bool hdl_jw_value(hdl_buf_t *b, const hdl_value_t *v);

/** \brief Append the "values" array, equal to json_dumps(hdl_json_from_values(v, n)). */
bool hdl_jw_values(hdl_buf_t *b, const hdl_value_t *v, uint32_t n);

/**
 * \brief Append {"responseCode":rc,"handle":"...","values":[...]} as http.c's jansson path
 *        built it (compact). \p handle must be valid UTF-8 (the caller checks:
 *        hdl_utf8_valid()); \p v may be NULL when \p n is 0.
 */
bool hdl_jw_resolution(hdl_buf_t *b, uint32_t rc, const uint8_t *handle, size_t hlen,
                       const hdl_value_t *v, uint32_t n);

#endif /* HDL_PROTO_JSON_WRITE_H */
