/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Error strings, constant names, slice helpers.
 */
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"

const char *hdl_strerror(int err)
{
	switch (err) {
#define HDL_ERR_STR_(name, val, str) \
	case val: return str;
		HDL_ERRORS(HDL_ERR_STR_)
#undef HDL_ERR_STR_
	}
	return "unknown error";
}

const char *hdl_errname(int err)
{
	switch (err) {
#define HDL_ERR_NAME_(name, val, str) \
	case val: return #name;
		HDL_ERRORS(HDL_ERR_NAME_)
#undef HDL_ERR_NAME_
	}
	return "HDL_E?";
}

const char *hdl_opcode_name(uint32_t op)
{
	switch (op) {
	case HDL_OC_RESERVED: return "OC_RESERVED";
	case HDL_OC_RESOLUTION: return "OC_RESOLUTION";
	case HDL_OC_GET_SITEINFO: return "OC_GET_SITEINFO";
	case HDL_OC_CREATE_HANDLE: return "OC_CREATE_HANDLE";
	case HDL_OC_DELETE_HANDLE: return "OC_DELETE_HANDLE";
	case HDL_OC_ADD_VALUE: return "OC_ADD_VALUE";
	case HDL_OC_REMOVE_VALUE: return "OC_REMOVE_VALUE";
	case HDL_OC_MODIFY_VALUE: return "OC_MODIFY_VALUE";
	case HDL_OC_LIST_HANDLES: return "OC_LIST_HANDLES";
	case HDL_OC_LIST_NA: return "OC_LIST_NA";
	case HDL_OC_CHALLENGE_RESPONSE: return "OC_CHALLENGE_RESPONSE";
	case HDL_OC_VERIFY_RESPONSE: return "OC_VERIFY_RESPONSE";
	case HDL_OC_HOME_NA: return "OC_HOME_NA";
	case HDL_OC_UNHOME_NA: return "OC_UNHOME_NA";
	case HDL_OC_LIST_HOMED_NAS: return "OC_LIST_HOMED_NAS";
	case HDL_OC_SESSION_SETUP: return "OC_SESSION_SETUP";
	case HDL_OC_SESSION_TERMINATE: return "OC_SESSION_TERMINATE";
	case HDL_OC_SESSION_EXCHANGEKEY: return "OC_SESSION_EXCHANGEKEY";
	case HDL_OC_LOGIN: return "OC_LOGIN";
	case HDL_OC_LOGIN_ID_SYSTEM: return "OC_LOGIN_ID_SYSTEM";
	}
	return "OC_UNKNOWN";
}

const char *hdl_rcode_name(uint32_t rc)
{
	switch (rc) {
	case HDL_RC_RESERVED: return "RC_RESERVED";
	case HDL_RC_SUCCESS: return "SUCCESS";
	case HDL_RC_ERROR: return "ERROR";
	case HDL_RC_SERVER_TOO_BUSY: return "SERVER_TOO_BUSY";
	case HDL_RC_PROTOCOL_ERROR: return "PROTOCOL_ERROR";
	case HDL_RC_OPERATION_NOT_SUPPORTED: return "OPERATION_NOT_SUPPORTED";
	case HDL_RC_RECURSION_COUNT_TOO_HIGH: return "RECURSION_COUNT_TOO_HIGH";
	case HDL_RC_SERVER_BACKUP: return "SERVER_BACKUP";
	case HDL_RC_HANDLE_NOT_FOUND: return "HANDLE_NOT_FOUND";
	case HDL_RC_HANDLE_ALREADY_EXISTS: return "HANDLE_ALREADY_EXISTS";
	case HDL_RC_INVALID_HANDLE: return "INVALID_HANDLE";
	case HDL_RC_VALUES_NOT_FOUND: return "VALUES_NOT_FOUND";
	case HDL_RC_VALUE_ALREADY_EXISTS: return "VALUE_ALREADY_EXISTS";
	case HDL_RC_INVALID_VALUE: return "INVALID_VALUE";
	case HDL_RC_OUT_OF_DATE_SITE_INFO: return "OUT_OF_DATE_SITE_INFO";
	case HDL_RC_SERVER_NOT_RESP: return "SERVER_NOT_RESP";
	case HDL_RC_SERVICE_REFERRAL: return "SERVICE_REFERRAL";
	case HDL_RC_PREFIX_REFERRAL: return "PREFIX_REFERRAL";
	case HDL_RC_INVALID_ADMIN: return "INVALID_ADMIN";
	case HDL_RC_INSUFFICIENT_PERMISSIONS: return "INSUFFICIENT_PERMISSIONS";
	case HDL_RC_AUTHENTICATION_NEEDED: return "AUTHENTICATION_NEEDED";
	case HDL_RC_AUTHENTICATION_FAILED: return "AUTHENTICATION_FAILED";
	case HDL_RC_INVALID_CREDENTIAL: return "INVALID_CREDENTIAL";
	case HDL_RC_AUTHEN_TIMEOUT: return "AUTHEN_TIMEOUT";
	case HDL_RC_AUTHEN_ERROR: return "AUTHEN_ERROR";
	case HDL_RC_SESSION_TIMEOUT: return "SESSION_TIMEOUT";
	case HDL_RC_SESSION_FAILED: return "SESSION_FAILED";
	case HDL_RC_INVALID_SESSION_KEY: return "INVALID_SESSION_KEY";
	case HDL_RC_NEED_RSAKEY_FOR_SESSIONEXCHANGE: return "NEED_RSAKEY_FOR_SESSIONEXCHANGE";
	case HDL_RC_INVALID_SESSIONSETUP_REQUEST: return "INVALID_SESSIONSETUP_REQUEST";
	case HDL_RC_SESSION_MESSAGE_REJECTED: return "SESSION_MESSAGE_REJECTED";
	}
	return "RC_UNKNOWN";
}

hdl_slice_t hdl_slice_str(const char *s)
{
	hdl_slice_t r = {(const uint8_t *)s, s ? (uint32_t)strlen(s) : 0};
	return r;
}

bool hdl_slice_eq(hdl_slice_t a, hdl_slice_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool hdl_slice_eq_nocase(hdl_slice_t a, hdl_slice_t b)
{
	if (a.len != b.len)
		return false;
	for (uint32_t i = 0; i < a.len; i++) {
		uint8_t x = a.p[i], y = b.p[i];
		if (x >= 'a' && x <= 'z')
			x = (uint8_t)(x - 32);
		if (y >= 'a' && y <= 'z')
			y = (uint8_t)(y - 32);
		if (x != y)
			return false;
	}
	return true;
}
