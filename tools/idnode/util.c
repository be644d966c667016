/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Small helpers shared by the `idnode` subcommands.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"

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
		case 'k':
		case 'K':
			shift = 10;
			end++;
			break;
		case 'm':
		case 'M':
			shift = 20;
			end++;
			break;
		case 'g':
		case 'G':
			shift = 30;
			end++;
			break;
		case 't':
		case 'T':
			shift = 40;
			end++;
			break;
		default: break;
		}
	}
	if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

int idnode_parse_server(const char *s, char *host, size_t hostcap, uint16_t *port)
{
	const char *hs = s, *he, *ps = NULL;

	if (s[0] == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		if (!he)
			return -1;
		if (he[1] == ':')
			ps = he + 2;
		else if (he[1] != '\0')
			return -1;
	} else {
		const char *c1 = strchr(s, ':');
		if (c1 && strchr(c1 + 1, ':')) {
			he = s + strlen(s); /* bare IPv6 address, no port */
		} else if (c1) {
			he = c1;
			ps = c1 + 1;
		} else {
			he = s + strlen(s);
		}
	}
	if (he == hs || (size_t)(he - hs) >= hostcap)
		return -1;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	if (ps) {
		char *end;
		unsigned long v;

		if (!*ps)
			return -1;
		errno = 0;
		v = strtoul(ps, &end, 10);
		if (errno || *end || v == 0 || v > 65535)
			return -1;
		*port = (uint16_t)v;
	}
	return 0;
}

int idnode_parse_indexes(const char *arg, uint32_t max, uint32_t **idx, uint32_t *n)
{
	const char *p = arg;

	while (*p) {
		char *end;
		unsigned long v;
		uint32_t *t;

		if (*p < '0' || *p > '9' || *n >= max)
			return -1;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || v > UINT32_MAX || (*end && *end != ','))
			return -1;
		t = realloc(*idx, (*n + 1) * sizeof(**idx));
		if (!t)
			return -1;
		*idx = t;
		t[(*n)++] = (uint32_t)v;
		p = *end ? end + 1 : end;
		if (*end == ',' && !*p)
			return -1;
	}
	return 0;
}

int idnode_exit_for_err(int err)
{
	switch (err) {
	case HDL_EINVAL:
	case HDL_ENAME:
	case HDL_EUTF8: return IDNODE_EXIT_USAGE;
	case HDL_EPROTO:
	case HDL_EDIGEST:
	case HDL_EMALF:
	case HDL_ETRUNC: return IDNODE_EXIT_DATA;
	default: return IDNODE_EXIT_IO;
	}
}
