/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Encoders and decoders of the homed-prefix records and of the partial-import marker
 *        (formats in homing.h). Pure functions over byte buffers.
 */
#include "node/store/homing.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hdl/error.h"
#include "proto/wire.h"

int store_home_rec_decode(const uint8_t *p, size_t len, store_home_rec_t *out)
{
	memset(out, 0, sizeof(*out));
	if (p == NULL || (len != 4 && len != STORE_HOME_REC_LEN))
		return HDL_EMALF;
	wire_rd_t rd = wire_rd_init(p, len);
	out->sources = wire_rd_u32(&rd);
	if (len == STORE_HOME_REC_LEN)
		out->since = wire_rd_u32(&rd);
	if (rd.err || (out->sources & ~STORE_HOME_ALL) != 0) {
		memset(out, 0, sizeof(*out));
		return HDL_EMALF;
	}
	/* the 4-byte form is only ever U32 0; the 8-byte form never has sources 0 */
	if ((len == 4) != (out->sources == 0)) {
		memset(out, 0, sizeof(*out));
		return HDL_EMALF;
	}
	return HDL_EOK;
}

size_t store_home_rec_encode(const store_home_rec_t *r, uint8_t out[STORE_HOME_REC_LEN])
{
	wire_wr_t wr = wire_wr_init(out, STORE_HOME_REC_LEN);
	wire_wr_u32(&wr, r->sources);
	wire_wr_u32(&wr, r->since);
	return wr.pos;
}

const char *store_home_sources_str(uint32_t sources, char *buf, size_t cap)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
	    {STORE_HOME_CONFIG, "config"},
	    {STORE_HOME_CLI, "cli"},
	    {STORE_HOME_ADMIN, "admin"},
	    {STORE_HOME_IMPORT, "import"},
	};
	size_t used = 0;
	if (cap == 0)
		return buf;
	buf[0] = '\0';
	if (sources == 0) {
		snprintf(buf, cap, "unknown");
		return buf;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(sources & names[i].bit))
			continue;
		int n = snprintf(buf + used, cap - used, "%s%s", used ? "," : "", names[i].name);
		if (n < 0 || (size_t)n >= cap - used) {
			buf[used] = '\0'; /* no half names */
			break;
		}
		used += (size_t)n;
	}
	return buf;
}

/** A source name for the marker: no C0 controls or DEL, valid UTF-8. */
static bool source_ok(hdl_slice_t s)
{
	if (s.len == 0)
		return false;
	for (uint32_t i = 0; i < s.len; i++) {
		if (s.p[i] < 0x20 || s.p[i] == 0x7f)
			return false;
	}
	return hdl_utf8_valid(s.p, s.len);
}

int store_import_mark_decode(const uint8_t *p, size_t len, store_import_mark_t *out)
{
	memset(out, 0, sizeof(*out));
	if (p == NULL)
		return HDL_EMALF;
	wire_rd_t rd = wire_rd_init(p, len);
	uint32_t version = wire_rd_u32(&rd);
	uint32_t started = wire_rd_u32(&rd);
	uint32_t pid = wire_rd_u32(&rd);
	uint64_t hi = wire_rd_u32(&rd);
	uint64_t lo = wire_rd_u32(&rd);
	hdl_slice_t source = wire_rd_lbytes(&rd, STORE_IMPORT_SOURCE_MAX);
	if (rd.err)
		return rd.err == HDL_ELIMIT ? HDL_ELIMIT : HDL_EMALF;
	if (wire_rd_left(&rd) != 0 || version != STORE_IMPORT_MARK_VERSION || !source_ok(source))
		return HDL_EMALF;
	out->started = started;
	out->pid = pid;
	out->records = hi << 32 | lo;
	out->source = source;
	return HDL_EOK;
}

int store_import_mark_encode(const store_import_mark_t *m, uint8_t *out, size_t cap, size_t *len)
{
	*len = 0;
	if (m->source.p == NULL || m->source.len == 0 || m->source.len > STORE_IMPORT_SOURCE_MAX)
		return HDL_EINVAL;
	wire_wr_t wr = wire_wr_init(out, cap);
	wire_wr_u32(&wr, STORE_IMPORT_MARK_VERSION);
	wire_wr_u32(&wr, m->started);
	wire_wr_u32(&wr, m->pid);
	wire_wr_u32(&wr, (uint32_t)(m->records >> 32));
	wire_wr_u32(&wr, (uint32_t)m->records);
	wire_wr_lbytes(&wr, m->source.p, m->source.len);
	if (wr.err)
		return HDL_ESPACE;
	*len = wr.pos;
	return HDL_EOK;
}

const char *store_time_str(uint32_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, cap, "unknown");
	return buf;
}

const char *store_import_mark_str(const store_import_mark_t *m, char *buf, size_t cap)
{
	char when[64];
	snprintf(buf, cap, "%.*s, started %s by pid %" PRIu32 ", stopped after %" PRIu64 " records",
	         (int)m->source.len, (const char *)m->source.p,
	         store_time_str(m->started, when, sizeof(when)), m->pid, m->records);
	return buf;
}
