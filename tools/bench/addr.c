/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Target address parsing and the loopback guard of idnode-bench (no main()).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/bench.h"

int bk_addr_parse(const char *hostport, uint16_t def_port, struct sockaddr_storage *ss,
                  socklen_t *sslen, char *err, size_t errlen)
{
	char host[256];
	const char *port = NULL;
	char pbuf[8];
	size_t hl;
	if (!hostport || !*hostport) {
		snprintf(err, errlen, "empty server address");
		return -1;
	}
	if (hostport[0] == '[') {
		const char *rb = strchr(hostport, ']');
		if (!rb) {
			snprintf(err, errlen, "%s: missing ']'", hostport);
			return -1;
		}
		hl = (size_t)(rb - hostport - 1);
		if (hl >= sizeof(host))
			goto toolong;
		memcpy(host, hostport + 1, hl);
		host[hl] = '\0';
		if (rb[1] == ':')
			port = rb + 2;
		else if (rb[1] != '\0') {
			snprintf(err, errlen, "%s: junk after ']'", hostport);
			return -1;
		}
	} else {
		const char *c = strchr(hostport, ':');
		if (c && strchr(c + 1, ':')) { /* bare IPv6 address, no port */
			hl = strlen(hostport);
		} else {
			hl = c ? (size_t)(c - hostport) : strlen(hostport);
			if (c)
				port = c + 1;
		}
		if (hl >= sizeof(host))
			goto toolong;
		memcpy(host, hostport, hl);
		host[hl] = '\0';
	}
	if (!port || !*port) {
		snprintf(pbuf, sizeof(pbuf), "%u", def_port);
		port = pbuf;
	} else {
		char *e;
		long pv = strtol(port, &e, 10);
		if (*e || pv < 1 || pv > 65535) {
			snprintf(err, errlen, "%s: bad port", hostport);
			return -1;
		}
	}
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICSERV;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	/* Prefer a loopback address when a name resolves to several (localhost -> ::1, 127.0.0.1). */
	struct addrinfo *pick = res;
	for (struct addrinfo *a = res; a; a = a->ai_next)
		if (bk_addr_is_loopback(a->ai_addr)) {
			pick = a;
			break;
		}
	memcpy(ss, pick->ai_addr, pick->ai_addrlen);
	*sslen = (socklen_t)pick->ai_addrlen;
	freeaddrinfo(res);
	return 0;
toolong:
	snprintf(err, errlen, "host name too long");
	return -1;
}

bool bk_addr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127u;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		const uint8_t *b = in6->sin6_addr.s6_addr;
		static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return memcmp(b, v4mapped, 12) == 0 && b[12] == 127u;
	}
	return false;
}

int bk_addr_check(const char *hostport, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (bk_addr_parse(hostport, 2641, &ss, &len, err, errlen))
		return -1;
	if (!bk_addr_is_loopback((const struct sockaddr *)&ss)) {
		snprintf(err, errlen, "%s is not a loopback address (use --allow-remote)", hostport);
		return -2;
	}
	return 0;
}
