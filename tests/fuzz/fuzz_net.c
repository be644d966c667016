/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: network lists of the configuration (conf_parse_net, conf_each_net in
 *        node/conf/conf.c; the udp_rrl_whitelist values) and the whitelist match built from them
 *        (node/server/rrl.c).
 *
 * Input: the text of one udp_rrl_whitelist value (NUL bytes end it). Invariants checked: a
 * network parses to AF_INET with a length <= 32 or AF_INET6 with <= 128, its host bits clear,
 * and its text form parses back to the same network; conf_each_net agrees with the count of
 * callbacks and refuses (-1) exactly when one token fails conf_parse_net; every parsed network
 * is accepted by rrl_whitelist_add and then matches its own address (and, when shorter than the
 * whole address, the address with its last bit flipped).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hdl/error.h"
#include "node/conf/conf.h"
#include "node/server/rrl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IN 4096

typedef struct seen {
	rrl_t *r;
	int n;
} seen_t;

static void sockaddr_of(int family, const uint8_t addr[16], struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, addr, 4);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, addr, 16);
	}
}

static void on_net(void *arg, int family, const uint8_t addr[16], unsigned len)
{
	seen_t *s = arg;
	unsigned max = family == AF_INET ? 32 : 128;
	if ((family != AF_INET && family != AF_INET6) || len > max)
		abort();
	for (unsigned bit = len; bit < max; bit++) {
		if (addr[bit / 8] & (0x80u >> (bit % 8)))
			abort(); /* host bits must be clear */
	}
	/* round trip through the text form */
	char txt[INET6_ADDRSTRLEN + 8], host[INET6_ADDRSTRLEN];
	if (!inet_ntop(family, addr, host, sizeof(host)))
		abort();
	snprintf(txt, sizeof(txt), "%s/%u", host, len);
	int f2;
	uint8_t a2[16];
	unsigned l2;
	if (conf_parse_net(txt, &f2, a2, &l2) != HDL_EOK || f2 != family || l2 != len ||
	    memcmp(a2, addr, family == AF_INET ? 4 : 16) != 0)
		abort();
	/* the whitelist holds it and matches inside it */
	if (rrl_whitelist_add(s->r, family, addr, len) != HDL_EOK)
		return; /* over the whitelist's size: refused, never stored */
	struct sockaddr_storage ss;
	sockaddr_of(family, addr, &ss);
	if (!rrl_whitelisted(s->r, (struct sockaddr *)&ss))
		abort();
	if (len < max) {
		uint8_t b[16];
		memcpy(b, addr, 16);
		b[(max - 1) / 8] ^= 1; /* the last bit: a host bit */
		sockaddr_of(family, b, &ss);
		if (!rrl_whitelisted(s->r, (struct sockaddr *)&ss))
			abort();
	}
	s->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[MAX_IN + 1];
	static rrl_t *r;
	if (size > MAX_IN)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (!r && rrl_new(64, 1, &r) != HDL_EOK)
		abort();
	rrl_free(r);
	if (rrl_new(64, 1, &r) != HDL_EOK)
		abort();

	seen_t s = {r, 0};
	int n = conf_each_net(text, on_net, &s);
	if (n >= 0 && n != s.n)
		abort();
	if (n < -1)
		abort();

	/* one token on its own: conf_parse_net never reads past the string, lengths in range */
	int fam;
	uint8_t a[16];
	unsigned len;
	if (conf_parse_net(text, &fam, a, &len) == HDL_EOK) {
		if ((fam == AF_INET && len > 32) || (fam == AF_INET6 && len > 128) ||
		    (fam != AF_INET && fam != AF_INET6))
			abort();
		if (conf_each_net(text, NULL, NULL) != 1 && strcasecmp(text, "none") != 0)
			abort(); /* one network, whole: the list of one agrees */
	}
	return 0;
}
