/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief HTTP/1.1 request parser of the port-8000 listener: a pure function over the bytes
 *        received so far (no I/O, no allocation), called again as more bytes arrive.
 *
 * Accepted: a request line "METHOD SP target SP HTTP/1.x" and header lines, each ended by CRLF
 * (a bare LF is tolerated), then an empty line, then Content-Length bytes of body. Recognised
 * headers: Content-Length, Connection, Content-Type, Accept, Transfer-Encoding, Host,
 * Authorization. Chunked (or any Transfer-Encoding) request bodies are refused: the node needs
 * none.
 *
 * Request smuggling (RFC 9112 §6.1, §6.3, §5.2): a request with both Transfer-Encoding and
 * Content-Length, with Content-Length given twice (equal or not), with a folded header line
 * (obs-fold), with whitespace before a header's colon, or with two Authorization headers is
 * malformed (400, and the connection closes), so no proxy in front can read its end
 * differently.
 */
#ifndef HDL_NODE_SERVER_HTTP_H
#define HDL_NODE_SERVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADER_BYTES 16384u /**< request line + headers + the empty line */
#define HTTP_MAX_HEADERS 100u        /**< header lines per request */

/** Request methods the node tells apart. */
typedef enum http_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_OPTIONS,
} http_method_t;

/** Outcome of http_parse(). */
typedef enum http_parse_rc {
	HTTP_PARSE_OK = 0,       /**< a whole request (headers and body) is in the buffer */
	HTTP_PARSE_MORE,         /**< a valid prefix: more bytes are needed */
	HTTP_PARSE_BAD,          /**< malformed: answer 400 and close */
	HTTP_PARSE_HDR_LARGE,    /**< headers over the limits: answer 431 and close */
	HTTP_PARSE_BODY_LARGE,   /**< Content-Length over max_body: answer 413 and close */
	HTTP_PARSE_LEN_REQUIRED, /**< Transfer-Encoding body: answer 411 and close */
	HTTP_PARSE_VERSION,      /**< not HTTP/1.x: answer 505 and close */
} http_parse_rc_t;

/** A byte range of the input buffer (not NUL-terminated). */
typedef struct http_str {
	const char *p;
	size_t len;
} http_str_t;

/** One parsed request; every http_str_t points into the caller's buffer. */
typedef struct http_req {
	http_method_t method;
	http_str_t method_s;
	http_str_t target;       /**< request-target as sent (origin form expected) */
	unsigned minor;          /**< HTTP/1.minor */
	bool keep_alive;         /**< after version and Connection: may the connection stay open */
	bool has_length;         /**< Content-Length was given */
	uint64_t content_length; /**< 0 without Content-Length */
	http_str_t content_type; /**< empty when absent */
	http_str_t accept;
	http_str_t host;
	http_str_t authorization; /**< empty when absent */
	size_t header_len;       /**< bytes up to and including the empty line */
	size_t total_len;        /**< header_len + content_length: what this request consumes */
	const uint8_t *body;     /**< content_length bytes */
} http_req_t;

/**
 * \brief Parse the request at the start of \p p.
 * \param p, len      bytes received so far (pipelined requests may follow the first)
 * \param max_header  limit on header_len (HTTP_MAX_HEADER_BYTES or less)
 * \param max_body    limit on Content-Length
 * \param r           filled on HTTP_PARSE_OK; partly filled otherwise (keep_alive = false)
 * \return an http_parse_rc_t. A prefix of a valid request always gives HTTP_PARSE_MORE; a
 *         complete line that is malformed is refused at once (an unfinished one only when it
 *         holds a bare CR or passes \p max_header).
 */
http_parse_rc_t http_parse(const uint8_t *p, size_t len, size_t max_header, uint64_t max_body,
                           http_req_t *r);

/** \brief Case-insensitive: does the comma-separated header value \p v hold token \p tok? */
bool http_has_token(http_str_t v, const char *tok);

#endif /* HDL_NODE_SERVER_HTTP_H */
