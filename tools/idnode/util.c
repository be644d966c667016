/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Small helpers shared by the `idnode` subcommands.
 */
#include <errno.h>
#include <stdlib.h>

#include "tools/idnode/cmds.h"

bool idnode_parse_u64(const char *s, bool size_suffix, uint64_t *out)
{
	char *end = NULL;
	if (s == NULL || *s == '\0' || *s == '-')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	unsigned shift = 0;
	if (size_suffix) {
		switch (*end) {
		case 'k': case 'K': shift = 10; end++; break;
		case 'm': case 'M': shift = 20; end++; break;
		case 'g': case 'G': shift = 30; end++; break;
		case 't': case 'T': shift = 40; end++; break;
		default: break;
		}
	}
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}
