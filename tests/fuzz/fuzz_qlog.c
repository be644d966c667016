/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: the query log's reading of a request and its answer (node/server/qlog.c),
 *        which takes the opcode, the handle and the response code from raw bytes a client sent.
 *
 * Input: byte 0 picks the transport (bits 0-2), whether an answer is given (bit 3: the input
 * itself, as if echoed), whether the request waits (bit 4) and an IPv6 peer (bit 5); the rest is
 * the request. Lines go to /dev/null; what is checked is that any bytes give one bounded line
 * without reading past the input (ASan) and that the counters move.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/conf/conf.h"
#include "node/server/dispatch.h"
#include "node/server/qlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool started;
	if (!started) {
		conf_t c;
		char err[256];
		if (conf_init(&c) != 0 ||
		    conf_set(&c, "query_log", "/dev/null", err, sizeof(err)) ||
		    conf_set(&c, "query_log_rate", "1000000", err, sizeof(err)) ||
		    qlog_start(&c, err, sizeof(err)) != 0)
			abort();
		conf_free(&c);
		started = true;
	}
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	/* a copy of exactly the input's length, so ASan sees any read past it */
	uint8_t *req = malloc(size - 1 ? size - 1 : 1);
	if (!req)
		return 0;
	memcpy(req, data + 1, size - 1);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (flags & 0x20) ? AF_INET6 : AF_INET;
	dispatch_origin_t o = {.transport = flags & 7, .peer = &ss, .peer_len = sizeof(ss)};
	qlog_stats_t before, after;
	qlog_get_stats(&before);
	qlog_message((flags & 7) == 7 ? NULL : &o, req, size - 1, (flags & 8) ? req : NULL,
	             (flags & 8) ? size - 1 : 0, (flags & 0x10) != 0);
	qlog_get_stats(&after);
	if (after.lines + after.errors + after.dropped ==
	    before.lines + before.errors + before.dropped)
		abort(); /* every request is either logged, refused by the file, or counted dropped
		          */
	free(req);
	return 0;
}
