/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the homed-prefix record and the partial-import marker decoders
 *        (node/store/homing.c), which read bytes from the store.
 *
 * Input: byte 0 selects the decoder (bit 0: 0 = "prefixes" value, 1 = import marker), the rest is
 * the record. Invariants: only the documented codes come back; a decoded record re-encodes to
 * the same bytes (the 4-byte form of earlier versions decodes to sources 0); the marker's source
 * lies inside the input; a failed decode leaves the output zeroed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/store/homing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[STORE_IMPORT_SOURCE_MAX + 64];
	char names[64];
	size_t len = 0;
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	if ((data[0] & 1) == 0) {
		store_home_rec_t hr;
		int rc = store_home_rec_decode(p, n, &hr);
		if (rc != HDL_EOK && rc != HDL_EMALF)
			abort();
		if (rc != HDL_EOK) {
			if (hr.sources || hr.since)
				abort();
			return 0;
		}
		if ((hr.sources & ~STORE_HOME_ALL) || (n == 4) != (hr.sources == 0))
			abort();
		store_home_sources_str(hr.sources, names, sizeof(names));
		if (names[0] == '\0' || strlen(names) >= sizeof(names))
			abort();
		if (n == STORE_HOME_REC_LEN &&
		    (store_home_rec_encode(&hr, out) != n || memcmp(out, p, n) != 0))
			abort();
		return 0;
	}
	store_import_mark_t m;
	int rc = store_import_mark_decode(p, n, &m);
	if (rc != HDL_EOK && rc != HDL_EMALF && rc != HDL_ELIMIT)
		abort();
	if (rc != HDL_EOK) {
		if (m.source.p || m.source.len || m.records || m.pid || m.started)
			abort();
		return 0;
	}
	if (m.source.len == 0 || m.source.p < p || m.source.p + m.source.len > p + n)
		abort();
	if (store_import_mark_encode(&m, out, sizeof(out), &len) != HDL_EOK || len != n ||
	    memcmp(out, p, n) != 0)
		abort();
	return 0;
}
