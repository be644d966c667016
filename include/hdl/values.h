/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Structured handle value data: HS_SITE, HS_ADMIN, HS_VLIST, HS_PUBKEY, HS_SECKEY,
 *        HS_SERV / HS_ALIAS / HS_NA_DELEGATE, in Handle.Net 9 binary form.
 *
 * Decoders borrow slices from the input and allocate arrays from the arena.
 */
#ifndef HDL_VALUES_H
#define HDL_VALUES_H

#include "hdl/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* HS_SITE primary mask */
#define HDL_SITE_PRIMARY       0x80u
#define HDL_SITE_MULTI_PRIMARY 0x40u
/* hash options */
#define HDL_HASH_BY_NA     0u
#define HDL_HASH_BY_LOCAL  1u
#define HDL_HASH_BY_HANDLE 2u
/* interface service type bits and protocols */
#define HDL_IF_ADMIN 0x01u
#define HDL_IF_QUERY 0x02u
#define HDL_IF_UDP   0u
#define HDL_IF_TCP   1u
#define HDL_IF_HTTP  2u
#define HDL_IF_HTTPS 3u

/* HS_ADMIN permission bits */
#define HDL_ADM_ADD_HANDLE    0x0001u
#define HDL_ADM_DELETE_HANDLE 0x0002u
#define HDL_ADM_ADD_NA        0x0004u
#define HDL_ADM_DELETE_NA     0x0008u
#define HDL_ADM_MODIFY_VALUE  0x0010u
#define HDL_ADM_REMOVE_VALUE  0x0020u
#define HDL_ADM_ADD_VALUE     0x0040u
#define HDL_ADM_MODIFY_ADMIN  0x0080u
#define HDL_ADM_REMOVE_ADMIN  0x0100u
#define HDL_ADM_ADD_ADMIN     0x0200u
#define HDL_ADM_READ_VALUE    0x0400u
#define HDL_ADM_LIST_HANDLES  0x0800u
#define HDL_ADM_ALL           0x0FFFu

typedef struct hdl_interface {
	uint8_t type;  /**< HDL_IF_ADMIN | HDL_IF_QUERY */
	uint8_t proto; /**< HDL_IF_UDP .. HDL_IF_HTTPS */
	uint32_t port;
} hdl_interface_t;

typedef struct hdl_attr {
	hdl_slice_t name;
	hdl_slice_t value;
} hdl_attr_t;

typedef struct hdl_server {
	uint32_t id;
	uint8_t addr[16]; /**< IPv6; IPv4 = 12 zero bytes + 4 address bytes */
	hdl_slice_t pubkey;
	uint32_t n_ifaces;
	hdl_interface_t *ifaces;
} hdl_server_t;

typedef struct hdl_site {
	uint16_t data_version; /**< Handle.Net writes 1 (RFC: 0) */
	uint8_t proto_major;
	uint8_t proto_minor;
	uint16_t serial;
	uint8_t primary_mask; /**< HDL_SITE_PRIMARY | HDL_SITE_MULTI_PRIMARY */
	uint8_t hash_option;
	hdl_slice_t hash_filter;
	uint32_t n_attrs;
	hdl_attr_t *attrs;
	uint32_t n_servers;
	hdl_server_t *servers;
} hdl_site_t;

/**
 * \brief Decode an HS_SITE record. Trailing bytes are an error (as in Handle.Net).
 * \retval HDL_EOK, HDL_ETRUNC, HDL_ELIMIT, HDL_ETRAILING, HDL_ENOMEM
 */
int hdl_site_decode(const uint8_t *p, size_t len, hdl_arena_t *a, hdl_site_t *out);
/** \retval HDL_EOK, HDL_ESPACE */
int hdl_site_encode(const hdl_site_t *s, uint8_t *out, size_t cap, size_t *outlen);
/** \brief True when the address is IPv4 (first 12 bytes zero). */
bool hdl_server_is_ipv4(const hdl_server_t *s);
/**
 * \brief Server index for \p handle in a site of \p n servers, bit-exact with Handle.Net
 *        (MD5 of the ASCII-upper-cased part, last 4 bytes as signed int32, Java abs and %).
 */
uint32_t hdl_site_server_for(const hdl_site_t *s, hdl_slice_t handle);

typedef struct hdl_admin {
	uint16_t perms; /**< HDL_ADM_* */
	hdl_slice_t handle;
	uint32_t index;
	bool legacy; /**< decoded from a value with 2 extra trailing zero bytes */
} hdl_admin_t;

/** \retval HDL_EOK, HDL_ETRUNC, HDL_ETRAILING */
int hdl_admin_decode(const uint8_t *p, size_t len, hdl_admin_t *out);
int hdl_admin_encode(const hdl_admin_t *a, uint8_t *out, size_t cap, size_t *outlen);

/** HS_VLIST: list of (handle, index). */
int hdl_vlist_decode(const uint8_t *p, size_t len, hdl_arena_t *a, hdl_ref_t **out, uint32_t *n);
int hdl_vlist_encode(const hdl_ref_t *refs, uint32_t n, uint8_t *out, size_t cap, size_t *outlen);

typedef enum hdl_key_kind {
	HDL_KEY_UNKNOWN = 0,
	HDL_KEY_RSA, /**< RSA_PUB_KEY: e, n */
	HDL_KEY_DSA, /**< DSA_PUB_KEY: q, p, g, y */
	HDL_KEY_DH,  /**< DH_PUB_KEY: y, p, g */
	HDL_KEY_PEM, /**< IDIS: PEM text stored directly as the value data */
	HDL_KEY_SM2, /**< IDIS SM2_PUB_KEY: BYTES PEM-or-DER */
} hdl_key_kind_t;

typedef struct hdl_pubkey {
	hdl_key_kind_t kind;
	hdl_slice_t key_type; /**< "RSA_PUB_KEY" etc.; empty for PEM */
	uint16_t flags;
	/* big integers: two's-complement as Java writes them (may carry a leading 0x00) */
	hdl_slice_t e, n;       /**< RSA */
	hdl_slice_t q, p, g, y; /**< DSA (DH uses y, p, g) */
	hdl_slice_t pem;        /**< PEM / SM2 key bytes */
} hdl_pubkey_t;

/** \retval HDL_EOK, HDL_ETRUNC, HDL_ELIMIT, HDL_EMALF */
int hdl_pubkey_decode(const uint8_t *p, size_t len, hdl_pubkey_t *out);
int hdl_pubkey_encode(const hdl_pubkey_t *k, uint8_t *out, size_t cap, size_t *outlen);

/* HS_SECKEY, HS_SERV, HS_ALIAS, HS_NA_DELEGATE-as-service-handle data are raw bytes: the secret,
 * or a UTF-8 handle. hdl_handle_data_check() validates the handle forms. */
int hdl_handle_data_check(const uint8_t *p, size_t len);

/** Well-known value types. */
typedef enum hdl_vtype {
	HDL_VT_OTHER = 0,
	HDL_VT_SITE,   /**< HS_SITE, HS_SITE.6, HS_SITE.PREFIX, HS_NA_DELEGATE */
	HDL_VT_ADMIN,  /**< HS_ADMIN */
	HDL_VT_VLIST,  /**< HS_VLIST */
	HDL_VT_PUBKEY, /**< HS_PUBKEY */
	HDL_VT_SECKEY, /**< HS_SECKEY */
	HDL_VT_SERV,   /**< HS_SERV, HS_SERV.PREFIX */
	HDL_VT_ALIAS,  /**< HS_ALIAS */
} hdl_vtype_t;

/** \brief Classify a value type name (ASCII case-insensitive). */
hdl_vtype_t hdl_vtype_of(hdl_slice_t type);

/**
 * \brief Type filter match as Handle.Net does it: case-insensitive; a filter ending in '.'
 *        matches the type itself (without the dot) and all its subtypes.
 */
bool hdl_type_matches(hdl_slice_t type, hdl_slice_t filter);

#ifdef __cplusplus
}
#endif
#endif /* HDL_VALUES_H */
