/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Internals of the client library shared between its modules (client.c: transports and
 *        results; admin.c: authenticated requests and IDIS sessions). Not installed.
 */
#ifndef HDL_CLIENT_INTERNAL_H
#define HDL_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/client.h"
#include "hdl/msg.h"

/** \brief Monotonic milliseconds. */
int64_t hdl_cli_now_ms(void);
/** \brief The transport the client was made for. */
hdl_transport_t hdl_cli_transport(const hdl_client_t *c);
/** \brief Now plus the client's whole-request timeout. */
int64_t hdl_cli_deadline(const hdl_client_t *c);
/** \brief A fresh random positive RequestId. */
uint32_t hdl_cli_request_id(void);
/**
 * \brief TCP connection to the client's server (non-blocking fd, TCP_NODELAY).
 * \return fd >= 0, or HDL_ETIMEDOUT / HDL_ECONNREFUSED / HDL_EIO / HDL_EDNS / HDL_ENOMEM
 */
int hdl_cli_connect(const hdl_client_t *c, int64_t deadline);
/** \brief Send all of \p p. \retval HDL_EOK, HDL_ETIMEDOUT, HDL_ECONNREFUSED, HDL_EIO */
int hdl_cli_send(int fd, const uint8_t *p, size_t len, int64_t deadline);
/**
 * \brief Read one framed message (envelope + MessageLength bytes, at most HDL_MAX_MESSAGE_LEN).
 * \retval HDL_EOK (\p *out malloc'd), HDL_EPROTO (EOF, bad envelope), HDL_ETIMEDOUT, HDL_EIO,
 *         HDL_ENOMEM
 */
int hdl_cli_read_frame(int fd, int64_t deadline, uint8_t **out, size_t *outlen);
/** \brief Encode \p m into a new buffer. \retval HDL_EOK, HDL_ELIMIT, HDL_ENOMEM, HDL_EINVAL */
int hdl_cli_encode(const hdl_msg_t *m, uint8_t **out, size_t *outlen);
/**
 * \brief Take \p raw (malloc'd frame), decode it and check it answers the request \p frame:
 *        RequestId, opcode (not checked for HDL_OC_CHALLENGE_RESPONSE), RD digest when \p digest.
 * \retval HDL_EOK (\p *out set), HDL_EPROTO, HDL_EDIGEST, HDL_ENOMEM; \p raw is consumed always
 */
int hdl_cli_result(uint8_t *raw, size_t len, const uint8_t *frame, size_t flen, uint32_t request_id,
                   uint32_t opcode, bool digest, hdl_result_t **out);
/** \brief Make \p r the message after \p prev in a streamed answer (\p prev owns it). */
void hdl_cli_result_link(hdl_result_t *prev, hdl_result_t *r);

#endif /* HDL_CLIENT_INTERNAL_H */
