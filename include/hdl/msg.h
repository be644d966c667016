/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle protocol (RFC 3652 as spoken by Handle.Net 9.x, protocol 2.0-2.11) messages:
 *        constants, decoded message structs, the whole-message codec, digests, UDP framing.
 *
 * Decoded slices borrow from the input buffer; arrays are allocated from an hdl_arena_t. Both are
 * valid until the input buffer is released or the arena is reset, whichever comes first.
 * All functions are reentrant; no global state.
 */
#ifndef HDL_MSG_H
#define HDL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- protocol constants ------------------------------------------------------------------ */

#define HDL_PROTO_MAJOR 2
#define HDL_PROTO_MINOR 11

#define HDL_ENVELOPE_LEN 20
#define HDL_HEADER_LEN   24

/* Limits (Handle.Net 9 Common.java and ours). Checked before any allocation or loop. */
#define HDL_MAX_MESSAGE_LEN 262144u  /**< bytes after the envelope */
#define HDL_MAX_ARRAY_LEN   1048576u /**< any length-prefixed byte string */
#define HDL_MAX_HANDLE_LEN  2048u    /**< bytes in a handle name */
#define HDL_MAX_VALUES      2048u    /**< values in one handle / message */
#define HDL_MAX_TYPE_LEN    1024u    /**< bytes in a value type */
#define HDL_MAX_FILTER      256u     /**< entries in a type or index filter list */
#define HDL_MAX_REFS        256u     /**< references of one value */
#define HDL_MAX_LIST        65536u   /**< handles in one list-handles message */
#define HDL_MAX_ATTRS       256u     /**< HS_SITE attributes */
#define HDL_MAX_SERVERS     256u     /**< servers in one HS_SITE */
#define HDL_MAX_IFACES      64u      /**< interfaces of one server */
#define HDL_NONCE_LEN       16u

#define HDL_UDP_MAX_DGRAM   512u
#define HDL_UDP_MAX_PAYLOAD 492u /**< message bytes per datagram after the envelope */
#define HDL_UDP_MAX_PACKETS ((HDL_MAX_MESSAGE_LEN + HDL_UDP_MAX_PAYLOAD - 1) / HDL_UDP_MAX_PAYLOAD)

/* Envelope flags (byte 2, high bits); the low 2 bits are the suggested major version. */
#define HDL_ENV_COMPRESSED      0x80u
#define HDL_ENV_ENCRYPTED       0x40u
#define HDL_ENV_TRUNCATED       0x20u
#define HDL_ENV_SUGG_MAJOR_MASK 0x03u

/* Opcodes */
enum hdl_opcode {
	HDL_OC_RESERVED = 0,
	HDL_OC_RESOLUTION = 1,
	HDL_OC_GET_SITEINFO = 2,
	HDL_OC_CREATE_HANDLE = 100,
	HDL_OC_DELETE_HANDLE = 101,
	HDL_OC_ADD_VALUE = 102,
	HDL_OC_REMOVE_VALUE = 103,
	HDL_OC_MODIFY_VALUE = 104,
	HDL_OC_LIST_HANDLES = 105,
	HDL_OC_LIST_NA = 106,
	HDL_OC_CHALLENGE_RESPONSE = 200,
	HDL_OC_VERIFY_RESPONSE = 201,
	HDL_OC_HOME_NA = 300,
	HDL_OC_UNHOME_NA = 301,
	HDL_OC_LIST_HOMED_NAS = 302,
	HDL_OC_SESSION_SETUP = 400,
	HDL_OC_SESSION_TERMINATE = 401,
	HDL_OC_SESSION_EXCHANGEKEY = 402,
	HDL_OC_LOGIN = 2000,
	HDL_OC_LOGIN_ID_SYSTEM = 2001,
};

/* Response codes (only those Handle.Net 9 decoders know, plus the IDIS 601-605). */
enum hdl_rcode {
	HDL_RC_RESERVED = 0,
	HDL_RC_SUCCESS = 1,
	HDL_RC_ERROR = 2,
	HDL_RC_SERVER_TOO_BUSY = 3,
	HDL_RC_PROTOCOL_ERROR = 4,
	HDL_RC_OPERATION_NOT_SUPPORTED = 5,
	HDL_RC_RECURSION_COUNT_TOO_HIGH = 6,
	HDL_RC_SERVER_BACKUP = 7,
	HDL_RC_HANDLE_NOT_FOUND = 100,
	HDL_RC_HANDLE_ALREADY_EXISTS = 101,
	HDL_RC_INVALID_HANDLE = 102,
	HDL_RC_VALUES_NOT_FOUND = 200,
	HDL_RC_VALUE_ALREADY_EXISTS = 201,
	HDL_RC_INVALID_VALUE = 202,
	HDL_RC_OUT_OF_DATE_SITE_INFO = 300,
	HDL_RC_SERVER_NOT_RESP = 301,
	HDL_RC_SERVICE_REFERRAL = 302,
	HDL_RC_PREFIX_REFERRAL = 303,
	HDL_RC_INVALID_ADMIN = 400,
	HDL_RC_INSUFFICIENT_PERMISSIONS = 401,
	HDL_RC_AUTHENTICATION_NEEDED = 402,
	HDL_RC_AUTHENTICATION_FAILED = 403,
	HDL_RC_INVALID_CREDENTIAL = 404,
	HDL_RC_AUTHEN_TIMEOUT = 405,
	HDL_RC_AUTHEN_ERROR = 406,
	HDL_RC_SESSION_TIMEOUT = 500,
	HDL_RC_SESSION_FAILED = 501,
	HDL_RC_INVALID_SESSION_KEY = 502,
	HDL_RC_NEED_RSAKEY_FOR_SESSIONEXCHANGE = 503,
	HDL_RC_INVALID_SESSIONSETUP_REQUEST = 504,
	HDL_RC_SESSION_MESSAGE_REJECTED = 505,
};

/* OpFlag bits */
#define HDL_OF_AT   0x80000000u /**< authoritative */
#define HDL_OF_CT   0x40000000u /**< certify (sign) */
#define HDL_OF_ENC  0x20000000u /**< encrypt response */
#define HDL_OF_REC  0x10000000u /**< recursion allowed */
#define HDL_OF_CA   0x08000000u /**< cache authentication */
#define HDL_OF_CN   0x04000000u /**< continuous */
#define HDL_OF_KC   0x02000000u /**< keep connection */
#define HDL_OF_PO   0x01000000u /**< public only */
#define HDL_OF_RD   0x00800000u /**< request digest */
#define HDL_OF_OVRW 0x00400000u /**< overwrite */
#define HDL_OF_MINT 0x00200000u /**< mint new suffix */
#define HDL_OF_DNRF 0x00100000u /**< do not refer */

/* Value permissions */
#define HDL_PERM_ADMIN_READ   0x08u
#define HDL_PERM_ADMIN_WRITE  0x04u
#define HDL_PERM_PUBLIC_READ  0x02u
#define HDL_PERM_PUBLIC_WRITE 0x01u
#define HDL_PERM_DEFAULT      0x0Eu

#define HDL_TTL_RELATIVE 0u
#define HDL_TTL_ABSOLUTE 1u

/* Digest algorithm codes (RD block, verify, secret-key answers) */
#define HDL_DIGEST_OLD_MD5 0u
#define HDL_DIGEST_MD5     1u
#define HDL_DIGEST_SHA1    2u
#define HDL_DIGEST_SHA256  3u
#define HDL_DIGEST_MAX_LEN 32u

/* ---- basic types ------------------------------------------------------------------------- */

/** Byte slice; borrows from some buffer, never NUL-terminated. */
typedef struct hdl_slice {
	const uint8_t *p;
	uint32_t len;
} hdl_slice_t;

/** Slice over a C string (no copy). */
hdl_slice_t hdl_slice_str(const char *s);
/** True when both slices hold the same bytes. */
bool hdl_slice_eq(hdl_slice_t a, hdl_slice_t b);
/** True when the slices are equal under ASCII case folding. */
bool hdl_slice_eq_nocase(hdl_slice_t a, hdl_slice_t b);

struct hdl_arena_chunk;

/**
 * Bump allocator: a caller buffer first, then heap chunks up to \p limit bytes in all.
 * \note Not thread-safe; one per worker / request.
 */
typedef struct hdl_arena {
	uint8_t *buf;                   /**< first block (caller-owned, may be NULL) */
	size_t cap;                     /**< its size */
	size_t used;                    /**< bytes used in the current block */
	size_t limit;                   /**< most heap bytes this arena may take (0 = none) */
	size_t heap;                    /**< heap bytes taken */
	struct hdl_arena_chunk *chunks; /**< heap chunks, newest first */
} hdl_arena_t;

void hdl_arena_init(hdl_arena_t *a, void *buf, size_t cap, size_t heap_limit);
/** \return 8-aligned zeroed memory, or NULL when over the limit / out of memory. */
void *hdl_arena_alloc(hdl_arena_t *a, size_t n);
/** \brief Copy \p s into the arena. */
hdl_slice_t hdl_arena_dup(hdl_arena_t *a, const void *p, size_t n);
/** \brief Forget all allocations; keeps the first heap chunk for reuse. */
void hdl_arena_reset(hdl_arena_t *a);
void hdl_arena_free(hdl_arena_t *a);

/** Reference of a value: (handle, index). Also an HS_VLIST entry. */
typedef struct hdl_ref {
	hdl_slice_t handle;
	uint32_t index;
} hdl_ref_t;

/** One handle value (RFC 3652 §3.1). */
typedef struct hdl_value {
	uint32_t index;
	uint32_t timestamp; /**< Unix seconds */
	uint8_t ttl_type;   /**< HDL_TTL_RELATIVE / HDL_TTL_ABSOLUTE */
	uint32_t ttl;
	uint8_t perms; /**< HDL_PERM_* */
	hdl_slice_t type;
	hdl_slice_t data;
	uint32_t n_refs;
	hdl_ref_t *refs;
} hdl_value_t;

/* ---- message ----------------------------------------------------------------------------- */

/** Envelope, 20 bytes. */
typedef struct hdl_envelope {
	uint8_t major;
	uint8_t minor;
	uint8_t flags;      /**< HDL_ENV_* (high bits of byte 2) */
	uint8_t sugg_major; /**< low 2 bits of byte 2; 0 = same as major/minor */
	uint8_t sugg_minor;
	uint32_t session_id;
	uint32_t request_id;
	uint32_t seq;
	uint32_t msg_len; /**< bytes after the envelope (filled by the encoder) */
} hdl_envelope_t;

/** Header, 24 bytes. */
typedef struct hdl_header {
	uint32_t opcode;
	uint32_t rcode;
	uint32_t opflags;
	uint16_t site_serial;
	uint8_t recursion;
	uint32_t expiration;
	uint32_t body_len; /**< filled by the encoder */
} hdl_header_t;

/** Which member of hdl_msg_t.u is valid. */
typedef enum hdl_body_kind {
	HDL_BODY_NONE = 0, /**< not decoded (encrypted, unknown opcode) */
	HDL_BODY_EMPTY,    /**< no fields (delete/add/remove/modify/home success) */
	HDL_BODY_RESOLVE,  /**< u.resolve: resolution request */
	HDL_BODY_VALUES,   /**< u.values: resolution response; create/add/modify request */
	HDL_BODY_HANDLE,   /**< u.handle: one handle (delete, siteinfo, list, home, create resp) */
	HDL_BODY_INDEXES,  /**< u.indexes: remove value */
	HDL_BODY_LIST,     /**< u.list: list handles / homed prefixes response */
	HDL_BODY_CHAL_ANSWER,  /**< u.answer: OC 200 */
	HDL_BODY_VERIFY,       /**< u.verify: OC 201 request */
	HDL_BODY_VERIFY_RESP,  /**< u.verify_ok: OC 201 response */
	HDL_BODY_SESSION_REQ,  /**< u.session: OC 400 request */
	HDL_BODY_SESSION_RESP, /**< u.session_resp: OC 400 response */
	HDL_BODY_BYTES,        /**< u.bytes: OC 402 request */
	HDL_BODY_LOGIN,        /**< u.login: IDIS OC 2001 */
	HDL_BODY_SITEINFO,     /**< u.site: raw HS_SITE record (OC 2 response) */
	HDL_BODY_CHALLENGE,    /**< u.challenge: RC 402 */
	HDL_BODY_REFERRAL,     /**< u.referral: RC 302 / 303 */
	HDL_BODY_ERROR,        /**< u.error: other non-success codes */
} hdl_body_kind_t;

typedef struct hdl_body_resolve {
	hdl_slice_t handle;
	uint32_t n_indexes;
	uint32_t *indexes;
	uint32_t n_types;
	hdl_slice_t *types;
} hdl_body_resolve_t;

typedef struct hdl_body_values {
	hdl_slice_t handle;
	uint32_t n_values;
	hdl_value_t *values;
} hdl_body_values_t;

typedef struct hdl_body_indexes {
	hdl_slice_t handle;
	uint32_t n_indexes;
	uint32_t *indexes;
} hdl_body_indexes_t;

typedef struct hdl_body_list {
	uint32_t n_handles;
	hdl_slice_t *handles;
} hdl_body_list_t;

typedef struct hdl_body_answer {
	hdl_slice_t auth_type; /**< "HS_PUBKEY" / "HS_SECKEY" */
	hdl_slice_t id_handle;
	uint32_t id_index;
	hdl_slice_t signed_response;
} hdl_body_answer_t;

typedef struct hdl_body_verify {
	hdl_slice_t id_handle;
	uint32_t id_index;
	hdl_slice_t nonce;
	uint8_t digest_alg; /**< HDL_DIGEST_*; OLD_MD5 when sent as BYTES */
	hdl_slice_t digest;
	hdl_slice_t signed_response;
} hdl_body_verify_t;

typedef struct hdl_body_session {
	uint16_t mode; /**< key exchange mode 0..4 */
	uint32_t timeout;
	hdl_slice_t id_handle;
	uint32_t id_index;
	hdl_slice_t pubkey;     /**< modes 1 and 4 */
	hdl_slice_t key_handle; /**< mode 3 */
	uint32_t key_index;     /**< mode 3 */
} hdl_body_session_t;

typedef struct hdl_body_session_resp {
	uint16_t mode;
	hdl_slice_t data;
} hdl_body_session_resp_t;

typedef struct hdl_body_login {
	hdl_slice_t id_handle;
	uint32_t id_index;
} hdl_body_login_t;

typedef struct hdl_body_challenge {
	hdl_slice_t nonce;
	hdl_slice_t old_digest; /**< protocol 2.0 only: MD5 digest after the nonce */
} hdl_body_challenge_t;

typedef struct hdl_body_referral {
	hdl_slice_t handle;
	uint32_t n_values;
	hdl_value_t *values;
} hdl_body_referral_t;

typedef struct hdl_body_error {
	hdl_slice_t message;
	uint32_t n_indexes; /**< DO-IRP 3.0 offending indexes, when present */
	uint32_t *indexes;
} hdl_body_error_t;

/** A whole message. Build one with hdl_msg_init(), fill, then hdl_msg_encode(). */
typedef struct hdl_msg {
	hdl_envelope_t env;
	hdl_header_t hdr;

	/* request digest block at the start of a response body (OpFlag RD) */
	uint8_t rd_alg; /**< HDL_DIGEST_*; for OLD_MD5 rd is the 16 bytes inside the BYTES */
	hdl_slice_t rd; /**< digest bytes; len 0 = none (the encoder writes none) */

	bool has_cred;    /**< decoder: a credential length field was present */
	hdl_slice_t cred; /**< credential bytes after CredentialLength */

	/* filled by the decoder */
	hdl_slice_t signed_part; /**< header + body as received: the digest / signature input */
	hdl_slice_t body;        /**< the whole body */
	hdl_slice_t trailing;    /**< body bytes after the decoded fields (tolerated) */

	hdl_body_kind_t kind;
	union {
		hdl_body_resolve_t resolve;
		hdl_body_values_t values;
		hdl_slice_t handle;
		hdl_body_indexes_t indexes;
		hdl_body_list_t list;
		hdl_body_answer_t answer;
		hdl_body_verify_t verify;
		uint8_t verify_ok;
		hdl_body_session_t session;
		hdl_body_session_resp_t session_resp;
		hdl_slice_t bytes;
		hdl_body_login_t login;
		hdl_slice_t site;
		hdl_body_challenge_t challenge;
		hdl_body_referral_t referral;
		hdl_body_error_t error;
	} u;
} hdl_msg_t;

/** \brief Zero \p m and set version 2.11 (suggesting 2.11). */
void hdl_msg_init(hdl_msg_t *m);

/**
 * \brief Decode the 20-byte envelope at \p buf.
 * \retval HDL_EOK, HDL_ETRUNC (< 20 bytes), HDL_EVERSION (major not 2, 3 or 5),
 *         HDL_ELIMIT (MessageLength over HDL_MAX_MESSAGE_LEN).
 */
int hdl_envelope_decode(const uint8_t *buf, size_t len, hdl_envelope_t *env);
/** \brief Write the 20-byte envelope to \p out. */
void hdl_envelope_encode(const hdl_envelope_t *env, uint8_t out[HDL_ENVELOPE_LEN]);

/**
 * \brief Decode one whole message: envelope + \p len - 20 bytes of message.
 *
 * The body is decoded by opcode (requests: rcode 0) or by opcode and rcode (responses). Bytes left
 * in the body after its fields are tolerated and exposed as \p m->trailing. An encrypted message
 * is decoded up to the envelope and header only (kind HDL_BODY_NONE).
 *
 * \retval HDL_EOK
 * \retval HDL_ETRUNC   a field or the message is shorter than declared
 * \retval HDL_ELIMIT   a length or count is over its limit
 * \retval HDL_EMALF    inconsistent lengths or field values
 * \retval HDL_EVERSION unsupported major version
 * \retval HDL_EOPCODE  unknown opcode (envelope and header are decoded)
 * \retval HDL_ETRAILING bytes after MessageLength, or after the credential
 * \retval HDL_EUTF8    a handle or type is not valid UTF-8
 * \retval HDL_ENOMEM   the arena is exhausted
 * \note Slices borrow from \p buf; arrays live in \p a.
 */
int hdl_msg_decode(const uint8_t *buf, size_t len, hdl_arena_t *a, hdl_msg_t *m);

/** \brief Decode only the body of \p m (env and hdr set) from \p body. Used by hdl_msg_decode. */
int hdl_body_decode(hdl_msg_t *m, const uint8_t *body, size_t len, hdl_arena_t *a);

/**
 * \brief Encode \p m (envelope, header, [RD], body by m->kind, credential) into \p out.
 *
 * MessageLength and BodyLength are computed. CredentialLength is always written (0 when
 * m->cred is empty), except for HDL_OC_LOGIN_ID_SYSTEM requests when !m->has_cred.
 * \retval HDL_EOK, HDL_ESPACE (buffer too small), HDL_ELIMIT, HDL_EINVAL (kind/opcode mismatch)
 */
int hdl_msg_encode(const hdl_msg_t *m, uint8_t *out, size_t cap, size_t *outlen);

/** \brief Encode \p n values as U32 count + values (the resolution response tail). */
int hdl_values_encode(const hdl_value_t *v, uint32_t n, uint8_t *out, size_t cap, size_t *outlen);
/** \brief Encoded size of one value. */
size_t hdl_value_size(const hdl_value_t *v);
/** \brief Decode U32 count + values, requiring the buffer be consumed exactly. */
int hdl_values_decode(const uint8_t *buf, size_t len, hdl_arena_t *a, hdl_value_t **out,
                      uint32_t *n);

/**
 * \brief Protocol version to answer with: min(request suggestion, ours).
 * \param req request envelope
 * \param[out] major, minor
 */
void hdl_version_negotiate(const hdl_envelope_t *req, uint8_t *major, uint8_t *minor);

/** \brief RD digest algorithm for a response of version \p major.\p minor. */
uint8_t hdl_digest_alg_for(uint8_t major, uint8_t minor);
/** \brief Digest length for an algorithm code (OLD_MD5 and MD5: 16). 0 if unknown. */
size_t hdl_digest_len(uint8_t alg);
/**
 * \brief Compute a digest of \p in with algorithm \p alg (OLD_MD5/MD5/SHA1/SHA256) into \p out.
 * \retval HDL_EOK, HDL_EINVAL (unknown alg)
 */
int hdl_digest(uint8_t alg, const uint8_t *in, size_t len, uint8_t out[HDL_DIGEST_MAX_LEN],
               size_t *outlen);

/* ---- names -------------------------------------------------------------------------------- */

/**
 * \brief Check a handle name: 1..HDL_MAX_HANDLE_LEN bytes of valid UTF-8 (no overlongs, no
 *        surrogates), no NUL or other C0 control characters.
 * \retval HDL_EOK, HDL_ENAME (empty, too long, control characters), HDL_EUTF8
 */
int hdl_name_check(const uint8_t *p, size_t len);
/** \brief Check only UTF-8 validity (value types, string data). */
bool hdl_utf8_valid(const uint8_t *p, size_t len);
/**
 * \brief Length of the strict UTF-8 sequence at \p p (no overlongs, no surrogates, at most
 *        U+10FFFF: the rule jansson applies), or 0 when it is invalid or cut short.
 */
size_t hdl_utf8_seq(const uint8_t *p, size_t n);
/**
 * \brief Split at the first '/'. Without a slash the prefix is "0.NA" and the suffix the name
 *        (Handle.Net's slash-less convention).
 */
void hdl_name_split(hdl_slice_t name, hdl_slice_t *prefix, hdl_slice_t *suffix);
/**
 * \brief Storage key of a handle: a slash-less name X becomes "0.NA/X"; the prefix is ASCII
 *        upper-cased; the suffix too unless \p case_sensitive (0.* handles always fold fully).
 * \return bytes written, or 0 when \p cap is too small.
 */
size_t hdl_name_normalize(hdl_slice_t name, bool case_sensitive, uint8_t *out, size_t cap);
/**
 * \brief The naming authority a handle belongs to for homing decisions: for "0.NA/88.100.1" it is
 *        "88.100.1" (the prefix handle of a homed prefix); for "88.100.1/x" it is "88.100.1".
 */
hdl_slice_t hdl_name_authority(hdl_slice_t name);

/* ---- UDP ---------------------------------------------------------------------------------- */

/** \brief Datagrams needed for a message of \p msg_len bytes after the envelope. */
uint32_t hdl_udp_npackets(uint32_t msg_len);
/**
 * \brief Build datagram \p k of a whole encoded message \p msg (envelope + msg_len bytes) into
 *        \p out (512 bytes). Multi-packet messages get TC set when \p set_tc.
 * \return datagram length, 0 when k is out of range
 */
size_t hdl_udp_packet(const uint8_t *msg, size_t len, uint32_t k, bool set_tc,
                      uint8_t out[HDL_UDP_MAX_DGRAM]);

/** UDP reassembly state for one (peer, RequestId). */
typedef struct hdl_udp_reasm {
	uint8_t *buf; /**< caller buffer, >= HDL_ENVELOPE_LEN + HDL_MAX_MESSAGE_LEN */
	size_t cap;
	uint32_t request_id;
	uint32_t msg_len;
	uint32_t npackets;
	uint32_t received;
	bool started;
	uint8_t seen[(HDL_UDP_MAX_PACKETS + 7) / 8];
} hdl_udp_reasm_t;

void hdl_udp_reasm_init(hdl_udp_reasm_t *r, uint8_t *buf, size_t cap);
/**
 * \brief Add one datagram.
 * \retval 1 the message is complete: envelope + msg_len bytes in r->buf (seq reset to 0)
 * \retval 0 more datagrams needed (duplicates are ignored)
 * \retval HDL_EMALF / HDL_ETRUNC / HDL_ELIMIT a datagram that doesn't fit the message
 * \retval HDL_EVERSION the datagram's envelope has an unsupported major version
 * \retval HDL_EINVAL another RequestId (caller decides whether to drop it)
 */
int hdl_udp_reasm_add(hdl_udp_reasm_t *r, const uint8_t *dgram, size_t len);

/* ---- names of constants (for printing) ----------------------------------------------------- */
const char *hdl_opcode_name(uint32_t opcode);
const char *hdl_rcode_name(uint32_t rcode);

#ifdef __cplusplus
}
#endif
#endif /* HDL_MSG_H */
