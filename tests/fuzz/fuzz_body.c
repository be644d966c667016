/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: every body decoder through hdl_body_decode.
 *
 * Input: byte 0 picks the opcode, byte 1 the response code, byte 2 bit 0 the RD op flag (bit 1
 * CN), byte 3 the protocol version; the rest is the body. When a body decodes to a known kind,
 * the message is encoded, decoded again and must give the same fields, and encoding that again
 * must give the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "tests/fuzz/codec_cmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_CAP (HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN)

static const uint32_t opcodes[] = {
	HDL_OC_RESOLUTION,        HDL_OC_GET_SITEINFO,    HDL_OC_CREATE_HANDLE,
	HDL_OC_DELETE_HANDLE,     HDL_OC_ADD_VALUE,       HDL_OC_REMOVE_VALUE,
	HDL_OC_MODIFY_VALUE,      HDL_OC_LIST_HANDLES,    HDL_OC_LIST_NA,
	HDL_OC_CHALLENGE_RESPONSE, HDL_OC_VERIFY_RESPONSE, HDL_OC_HOME_NA,
	HDL_OC_UNHOME_NA,         HDL_OC_LIST_HOMED_NAS,  HDL_OC_SESSION_SETUP,
	HDL_OC_SESSION_TERMINATE, HDL_OC_SESSION_EXCHANGEKEY, HDL_OC_LOGIN,
	HDL_OC_LOGIN_ID_SYSTEM,   HDL_OC_RESERVED,
};

static const uint32_t rcodes[] = {
	HDL_RC_RESERVED, /* request */
	HDL_RC_SUCCESS,
	HDL_RC_ERROR,
	HDL_RC_HANDLE_NOT_FOUND,
	HDL_RC_VALUES_NOT_FOUND,
	HDL_RC_SERVICE_REFERRAL,
	HDL_RC_PREFIX_REFERRAL,
	HDL_RC_AUTHENTICATION_NEEDED,
	HDL_RC_SESSION_TIMEOUT,
	HDL_RC_SERVER_BACKUP,
	HDL_RC_INVALID_VALUE,
	603, /* IDIS */
};

static const uint8_t versions[][2] = {
	{2, 11}, {2, 10}, {2, 7}, {2, 6}, {2, 5}, {2, 1}, {2, 0}, {5, 0}, {3, 0},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out1[OUT_CAP], out2[OUT_CAP];
	uint8_t stack1[4096], stack2[4096];
	hdl_arena_t a1, a2;
	hdl_msg_t m1, m2;
	size_t n1 = 0, n2 = 0;

	if (size < 4)
		return 0;
	hdl_arena_init(&a1, stack1, sizeof(stack1), 8u << 20);
	hdl_arena_init(&a2, stack2, sizeof(stack2), 8u << 20);
	hdl_msg_init(&m1);
	m1.hdr.opcode = opcodes[data[0] % NELEM(opcodes)];
	m1.hdr.rcode = rcodes[data[1] % NELEM(rcodes)];
	m1.hdr.opflags = HDL_OF_REC | HDL_OF_CA | (data[2] & 1 ? HDL_OF_RD : 0) |
	                 (data[2] & 2 ? HDL_OF_CN : 0);
	m1.env.major = versions[data[3] % NELEM(versions)][0];
	m1.env.minor = versions[data[3] % NELEM(versions)][1];
	m1.env.sugg_major = HDL_PROTO_MAJOR;
	m1.env.sugg_minor = HDL_PROTO_MINOR;
	m1.env.request_id = 0x01020304;
	m1.hdr.expiration = 0x70000000;
	m1.hdr.site_serial = 1;

	const uint8_t *body = data + 4;
	size_t len = size - 4;
	if (hdl_body_decode(&m1, body, len, &a1) != HDL_EOK || m1.kind == HDL_BODY_NONE)
		goto out;
	/* the exposed trailing bytes are the tail of the body */
	if (m1.trailing.len > len ||
	    (m1.trailing.len && m1.trailing.p != body + len - m1.trailing.len))
		abort();
	if (hdl_msg_encode(&m1, out1, sizeof(out1), &n1) != HDL_EOK)
		abort();
	if (hdl_msg_decode(out1, n1, &a2, &m2) != HDL_EOK || !cmp_msg(&m1, &m2))
		abort();
	if (hdl_msg_encode(&m2, out2, sizeof(out2), &n2) != HDL_EOK || n1 != n2 ||
	    memcmp(out1, out2, n1) != 0)
		abort();
out:
	hdl_arena_free(&a1);
	hdl_arena_free(&a2);
	return 0;
}
