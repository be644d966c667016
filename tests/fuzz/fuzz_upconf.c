/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the `upstream` and `forward` configuration values
 *        (node/resolver/upconf.c). The input up to the first NUL or newline is parsed as both.
 *        Checks: an accepted upstream has a valid name, a host, a port, a known transport, TLS
 *        options only with a TLS transport and a pipeline in range; an accepted forward rule has
 *        1..UPS_FORWARD_NAMES names; the error text is always a terminated string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/resolver/upconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static ups_conf_upstream_t u;
	ups_conf_forward_t f;
	char line[6000], err[256];
	size_t n = 0;
	while (n < size && n < sizeof(line) - 1 && data[n] != '\0' && data[n] != '\n')
		n++;
	memcpy(line, data, n);
	line[n] = '\0';

	memset(err, 'z', sizeof(err));
	int r = ups_conf_parse_upstream(line, &u, err, sizeof(err));
	if (r != HDL_EOK && r != HDL_ECONF)
		abort();
	if (r == HDL_ECONF && !memchr(err, '\0', sizeof(err)))
		abort();
	if (r == HDL_EOK) {
		if (!u.name[0] || strlen(u.name) > UPS_NAME_MAX || !u.target.host[0] ||
		    u.target.port == 0 || (unsigned)u.target.transport >= UPS_TRANSPORT_COUNT ||
		    u.target.pipeline > UPS_MAX_PIPELINE)
			abort();
		if (!ups_transport_is_tls(u.target.transport) &&
		    (u.ca[0] || u.cert[0] || u.has_pin || !u.verify || u.target.name[0]))
			abort();
		if (!u.cert[0] != !u.key[0])
			abort();
	}
	r = ups_conf_parse_forward(line, &f, err, sizeof(err));
	if (r != HDL_EOK && r != HDL_ECONF)
		abort();
	if (r == HDL_EOK && (f.n < 1 || f.n > UPS_FORWARD_NAMES || !f.prefix[0]))
		abort();
	return 0;
}
