/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Library error codes (hdl_err_t), separate from Handle protocol response codes.
 *
 * Negative errno mirrors first, then domain codes from -1000 down. The list is an X-macro so the
 * enum, hdl_strerror() and hdl_errname() come from one source.
 */
#ifndef HDL_ERROR_H
#define HDL_ERROR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HDL_ERRORS(X)                                                       \
	X(HDL_EOK, 0, "success")                                            \
	X(HDL_ENOMEM, -ENOMEM, "out of memory")                             \
	X(HDL_EINVAL, -EINVAL, "invalid argument")                          \
	X(HDL_ENOENT, -ENOENT, "not found")                                 \
	X(HDL_EEXIST, -EEXIST, "already exists")                            \
	X(HDL_EIO, -EIO, "I/O error")                                       \
	X(HDL_ETIMEDOUT, -ETIMEDOUT, "timed out")                           \
	X(HDL_ECONNREFUSED, -ECONNREFUSED, "connection refused")            \
	X(HDL_EAGAIN, -EAGAIN, "try again")                                 \
	X(HDL_EMALF, -1000, "malformed message")                            \
	X(HDL_ETRUNC, -1001, "truncated input")                             \
	X(HDL_ESPACE, -1002, "not enough space")                            \
	X(HDL_ELIMIT, -1003, "limit exceeded")                              \
	X(HDL_EVERSION, -1004, "unsupported protocol version")              \
	X(HDL_EOPCODE, -1005, "unknown opcode")                             \
	X(HDL_ENAME, -1006, "invalid handle name")                          \
	X(HDL_EUTF8, -1007, "invalid UTF-8")                                \
	X(HDL_ETRAILING, -1008, "unexpected trailing bytes")                \
	X(HDL_EJSON, -1009, "invalid JSON value")                           \
	X(HDL_ETLS, -1010, "TLS error")                                     \
	X(HDL_EDNS, -1011, "DNS error")                                     \
	X(HDL_ESTORE, -1012, "storage error")                               \
	X(HDL_EPROTO, -1013, "protocol error in reply")                     \
	X(HDL_ERCODE, -1014, "server answered with an error response code") \
	X(HDL_ECONF, -1015, "configuration error")                          \
	X(HDL_EDIGEST, -1016, "digest mismatch")                            \
	X(HDL_EAUTH, -1017, "authentication failed")

typedef enum hdl_err {
#define HDL_ERR_ENUM_(name, val, str) name = (val),
	HDL_ERRORS(HDL_ERR_ENUM_)
#undef HDL_ERR_ENUM_
} hdl_err_t;

/** \brief Human-readable text for \p err ("unknown error" for codes outside the list). */
const char *hdl_strerror(int err);

/** \brief Symbolic name of \p err, e.g. "HDL_ETRUNC" (for logs and tests). */
const char *hdl_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* HDL_ERROR_H */
