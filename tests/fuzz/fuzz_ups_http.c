/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the HTTP response head parser of the upstream native tunnel
 *        (ups_http_head_parse, node/resolver/ups_http.c). Checks: an accepted head has a status
 *        of three digits, a Content-Length below 10^15 only when one was given, and ends with
 *        its empty line; the parse is deterministic; no byte after the empty line is accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/resolver/ups_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ups_http_head_t h, h2;
	const char *p = (const char *)data;
	int r = ups_http_head_parse(p, size, &h);
	if (r != HDL_EOK && r != HDL_EPROTO)
		abort();
	if (ups_http_head_parse(p, size, &h2) != r)
		abort();
	if (r != HDL_EOK)
		return 0;
	if (memcmp(&h, &h2, sizeof(h)) != 0)
		abort();
	if (h.status < 100 || h.status > 999 || h.minor > 9)
		abort();
	if (!h.has_length && h.content_length != 0)
		abort();
	if (h.content_length >= 1000000000000000ull)
		abort();
	if (size < 2 || data[size - 1] != '\n')
		abort();
	/* one more byte after the empty line is refused */
	uint8_t *more = malloc(size + 1);
	if (!more)
		return 0;
	memcpy(more, data, size);
	more[size] = 'x';
	if (ups_http_head_parse((const char *)more, size + 1, &h2) == HDL_EOK)
		abort();
	free(more);
	return 0;
}
