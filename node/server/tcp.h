/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle-over-TCP framing and the close-after-answer rule (pure functions of tcp.c, no
 *        I/O; fuzzed by tests/fuzz/fuzz_tcp_frame.c).
 *
 * A frame is the 20-byte envelope and MessageLength bytes (RFC 3652 §2.2.1, §3.2). Two kinds of
 * client share port 2641:
 * - Handle.Net's hdllib (and clients written after it) send one request per connection, read
 *   one answer and expect the server to close (HNET9's server closes after every answer unless
 *   it is a challenge, RC 402, whose answer comes on the same connection);
 * - the IDIS id-pointer SDK pools connections, pipelines requests on them and sends resolutions
 *   of "0" as heartbeats; it never sets KC (keep connection) and speaks protocol 2.9 or 2.10 in
 *   its envelopes (see the captures idpointer-sdk-*.hex), while hdllib 9 speaks 2.11
 *   (java-hdllib-*-tcp.hex).
 * So with tcp_close_after_answer = auto a connection closes after an answer when the request
 * spoke 2.11 or later without KC, the answer is not a challenge (RC 402) or a part of a stream
 * (CN), no further request bytes are buffered and no other request is waiting; a 2.10-or-older
 * or KC request keeps the connection open until the idle timeout. "yes" closes after every
 * answer but a challenge or a stream part (as HNET9); "no" never does.
 */
#ifndef HDL_NODE_SERVER_TCP_H
#define HDL_NODE_SERVER_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Outcome of tcp_frame_check(). */
typedef enum tcp_frame_rc {
	TCP_FRAME_OK = 0, /**< a whole frame of tcp_frame_t.len bytes starts the input */
	TCP_FRAME_MORE,   /**< a valid beginning: more bytes are needed */
	TCP_FRAME_BIG,    /**< the envelope announces more than the limit: refuse unread */
	TCP_FRAME_BAD,    /**< not a Handle envelope */
} tcp_frame_rc_t;

/** What the framing and the close rule need to know of one request frame. */
typedef struct tcp_frame {
	size_t len;       /**< envelope + MessageLength (TCP_FRAME_OK) */
	uint32_t msg_len; /**< MessageLength (TCP_FRAME_OK, TCP_FRAME_BIG) */
	uint8_t major, minor;
	bool encrypted;   /**< EC: the header is not readable */
	uint32_t opflags; /**< OpFlag of the header (0 when encrypted or short) */
} tcp_frame_t;

/**
 * \brief Look at the frame that starts \p p.
 * \param max_len the largest MessageLength accepted (max_message_len)
 * \return a tcp_frame_rc_t; \p f is filled for TCP_FRAME_OK and TCP_FRAME_BIG
 */
tcp_frame_rc_t tcp_frame_check(const uint8_t *p, size_t len, uint32_t max_len, tcp_frame_t *f);

/**
 * \brief Does the answer \p reply (envelope + message, \p rlen bytes) to request \p req end the
 *        connection under close mode \p mode (NODE_TCP_CLOSE_*)? The caller also requires that
 *        nothing else is buffered or waiting.
 */
bool tcp_close_after(unsigned mode, const tcp_frame_t *req, const uint8_t *reply, size_t rlen);

#endif /* HDL_NODE_SERVER_TCP_H */
