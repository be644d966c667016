/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Challenge-response authentication (RFC 3652 §3.5, as Handle.Net 9 and the IDIS SDKs
 *        speak it): HS_SECKEY MACs, HS_PUBKEY signatures, the signedResponse field of the OC 200
 *        answer, and the key encodings (HS_PUBKEY value data, PEM, the CNRI private key file).
 *
 * A server challenges a request with RC 402: the body holds the digest of the request's header +
 * body and a 16-byte nonce. The client answers with OC 200 (STR authType, STR identity handle,
 * U32 identity index, BYTES signedResponse); signedResponse proves knowledge of the identity's
 * secret or private key over D = nonce || digest (the raw digest bytes, without the algorithm
 * byte of the RD block).
 *
 * HS_SECKEY signedResponse, K = the secret (RFC 3652 §3.5 has 0x01/0x02; Handle.Net 9 adds the
 * rest):
 *
 *   +------+------------------------------------------------------------------+
 *   | 0x01 | MD5(K || D || K)                                                 |
 *   | 0x02 | SHA1(K || D || K)               (hdllib at protocol 2.1 - 2.6)   |
 *   | 0x03 | SHA256(K || D || K)                                              |
 *   | 0x12 | HMAC-SHA1(K, D)                                                  |
 *   | 0x13 | HMAC-SHA256(K, D)                                                |
 *   | 0x22 | BYTES salt | U32 iterations | U32 keyLenBits | BYTES mac         |
 *   |      |   mac = HMAC-SHA1(PBKDF2-HMAC-SHA1(K, salt, iterations), D)      |
 *   |      |   (hdllib >= 2.7: 16-byte salt, 10000 iterations, 160 bits)      |
 *   +------+------------------------------------------------------------------+
 *   protocol < 2.1: the bare 16-byte MD5(K || D || K), no algorithm byte.
 *
 * HS_PUBKEY signedResponse: BYTES hash name ("SHA-256", "SHA256", "SHA1", "SHA-1") | BYTES
 * signature over D (RSA PKCS#1 v1.5, or DSA as DER SEQUENCE{r, s}).
 *
 * Java quirk kept for interop: PBKDF2 passwords go through Java's char[] (one char per byte) and
 * come out UTF-8 encoded, so a secret byte >= 0x80 enters PBKDF2 as two bytes (C2/C3 xx). Plain
 * ASCII secrets are unaffected.
 *
 * All functions are pure (no I/O, no global state) and reentrant. OpenSSL 3 EVP only.
 */
#ifndef HDL_AUTH_H
#define HDL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "hdl/msg.h"
#include "hdl/values.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HDL_AUTH_TYPE_SECKEY "HS_SECKEY"
#define HDL_AUTH_TYPE_PUBKEY "HS_PUBKEY"

/* HS_SECKEY answer algorithm codes (first byte of signedResponse). */
#define HDL_MAC_OLD_MD5     0x00u /**< protocol < 2.1: bare MD5, no algorithm byte */
#define HDL_MAC_MD5         0x01u
#define HDL_MAC_SHA1        0x02u
#define HDL_MAC_SHA256      0x03u
#define HDL_MAC_HMAC_SHA1   0x12u
#define HDL_MAC_HMAC_SHA256 0x13u
#define HDL_MAC_PBKDF2_SHA1 0x22u
#define HDL_MAC_AUTO        0xFFu /**< hdl_auth_t: pick by protocol version as hdllib does */

/* PBKDF2 parameters: what hdllib sends, and the verifier's caps. */
#define HDL_PBKDF2_ITERATIONS 10000u /**< hdllib's iteration count */
#define HDL_PBKDF2_SALT_LEN   16u    /**< hdllib's salt length */
#define HDL_PBKDF2_KEY_BITS   160u   /**< hdllib's derived key length */
/**
 * Most iterations a verifier computes. A client choosing more gets HDL_ELIMIT without any PBKDF2
 * work, so one answer cannot make a server burn more than ~10x hdllib's cost.
 */
#define HDL_PBKDF2_MAX_ITERATIONS 100000u
#define HDL_PBKDF2_MAX_KEY_BITS   512u /**< longest derived key accepted (bits, multiple of 8) */
#define HDL_PBKDF2_MAX_SALT       256u /**< longest salt accepted (bytes) */

#define HDL_MAC_MAX_LEN       32u /**< longest MAC (SHA-256) */
#define HDL_SECKEY_RESP_MAX   (1u + 4u + HDL_PBKDF2_MAX_SALT + 4u + 4u + 4u + HDL_MAC_MAX_LEN)
#define HDL_SIG_HASH_NAME_MAX 32u   /**< longest hash name accepted in an HS_PUBKEY answer */
#define HDL_SIG_MAX_LEN       2048u /**< longest signature accepted (RSA 16384 bits) */
#define HDL_PUBKEY_RESP_MAX   (4u + HDL_SIG_HASH_NAME_MAX + 4u + HDL_SIG_MAX_LEN)
#define HDL_KEY_MAX_BITS      16384u /**< largest RSA / DSA modulus we build keys from */

/* ---- HS_SECKEY --------------------------------------------------------------------------- */

/** A decoded HS_SECKEY signedResponse. Slices borrow from the input. */
typedef struct hdl_seckey_resp {
	uint8_t alg;         /**< HDL_MAC_* */
	hdl_slice_t mac;     /**< the MAC bytes */
	hdl_slice_t salt;    /**< PBKDF2 only */
	uint32_t iterations; /**< PBKDF2 only */
	uint32_t key_bits;   /**< PBKDF2 only: derived key length in bits */
} hdl_seckey_resp_t;

/**
 * \brief Decode an HS_SECKEY signedResponse.
 * \param old_format the challenge was protocol < 2.1: the whole field is a bare 16-byte MD5
 * \retval HDL_EOK
 * \retval HDL_ETRUNC    a field is cut short
 * \retval HDL_EMALF     unknown algorithm, wrong MAC length for it, bytes after the fields,
 *                       key_bits not a positive multiple of 8
 * \retval HDL_ELIMIT    salt over HDL_PBKDF2_MAX_SALT, key_bits over HDL_PBKDF2_MAX_KEY_BITS,
 *                       iterations 0 or over HDL_PBKDF2_MAX_ITERATIONS
 * \note No cryptography is done here: a hostile field costs nothing to reject.
 */
int hdl_seckey_resp_decode(const uint8_t *p, size_t len, bool old_format, hdl_seckey_resp_t *out);

/**
 * \brief Encode \p r (alg OLD_MD5 writes only the MAC).
 * \retval HDL_EOK, HDL_ESPACE, HDL_EINVAL (unknown algorithm)
 */
int hdl_seckey_resp_encode(const hdl_seckey_resp_t *r, uint8_t *out, size_t cap, size_t *outlen);

/**
 * \brief Compute the MAC of algorithm \p alg over nonce || digest with \p secret.
 * \param pbkdf2 for HDL_MAC_PBKDF2_SHA1: salt, iterations, key_bits (others ignore it)
 * \param out    at least HDL_MAC_MAX_LEN bytes
 * \retval HDL_EOK, HDL_EINVAL (unknown alg, missing PBKDF2 parameters), HDL_ELIMIT (PBKDF2
 *         parameters over the caps), HDL_ENOMEM (OpenSSL failure)
 */
int hdl_seckey_mac(uint8_t alg, hdl_slice_t secret, hdl_slice_t nonce, hdl_slice_t digest,
                   const hdl_seckey_resp_t *pbkdf2, uint8_t out[HDL_MAC_MAX_LEN], size_t *outlen);

/**
 * \brief Client side: build the signedResponse with algorithm \p alg (PBKDF2: a fresh random
 *        16-byte salt, 10000 iterations, 160 bits, as hdllib).
 * \retval HDL_EOK, HDL_ESPACE, HDL_EINVAL, HDL_ENOMEM (also: no randomness)
 */
int hdl_seckey_answer(uint8_t alg, hdl_slice_t secret, hdl_slice_t nonce, hdl_slice_t digest,
                      uint8_t *out, size_t cap, size_t *outlen);

/**
 * \brief Server side: check an HS_SECKEY signedResponse against the stored \p secret.
 * \retval HDL_EOK      the answer is right
 * \retval HDL_EAUTH    well formed but wrong (compared with CRYPTO_memcmp)
 * \retval HDL_ETRUNC / HDL_EMALF / HDL_ELIMIT  as hdl_seckey_resp_decode (nothing computed)
 * \retval HDL_ENOMEM   OpenSSL failure
 */
int hdl_seckey_verify(hdl_slice_t secret, hdl_slice_t nonce, hdl_slice_t digest,
                      hdl_slice_t signed_response, bool old_format);

/**
 * \brief The algorithm hdllib answers a challenge of version \p major.\p minor with: < 2.1
 *        HDL_MAC_OLD_MD5, 2.1 - 2.6 HDL_MAC_SHA1, >= 2.7 HDL_MAC_PBKDF2_SHA1.
 */
uint8_t hdl_seckey_alg_for(uint8_t major, uint8_t minor);

/* ---- HS_PUBKEY --------------------------------------------------------------------------- */

/** A decoded HS_PUBKEY signedResponse. Slices borrow from the input. */
typedef struct hdl_pubkey_resp {
	hdl_slice_t hash_name; /**< "SHA-256", "SHA256", "SHA1", "SHA-1" (others: unsupported) */
	hdl_slice_t signature; /**< RSA PKCS#1 v1.5 or DSA DER SEQUENCE{r, s} */
} hdl_pubkey_resp_t;

/**
 * \brief Decode an HS_PUBKEY signedResponse (BYTES hash name | BYTES signature).
 * \retval HDL_EOK, HDL_ETRUNC, HDL_ELIMIT (name over HDL_SIG_HASH_NAME_MAX, signature over
 *         HDL_SIG_MAX_LEN), HDL_EMALF (bytes after the signature)
 */
int hdl_pubkey_resp_decode(const uint8_t *p, size_t len, hdl_pubkey_resp_t *out);

/** \retval HDL_EOK, HDL_ESPACE */
int hdl_pubkey_resp_encode(const hdl_pubkey_resp_t *r, uint8_t *out, size_t cap, size_t *outlen);

/**
 * \brief Digest code of a signature hash name: "SHA1"/"SHA-1" -> HDL_DIGEST_SHA1,
 *        "SHA256"/"SHA-256" -> HDL_DIGEST_SHA256 (ASCII case-insensitive).
 * \return the code, or -1 for anything else (MD5 and SM3 included: not accepted)
 */
int hdl_sig_hash_from_name(hdl_slice_t name);

/**
 * \brief The hash hdllib signs a challenge of version \p major.\p minor with, for key \p key:
 *        SHA-256 from 2.7 (DSA only from 2.11), else SHA-1.
 * \return HDL_DIGEST_SHA256 or HDL_DIGEST_SHA1
 */
uint8_t hdl_pubkey_hash_for(const EVP_PKEY *key, uint8_t major, uint8_t minor);

/**
 * \brief Client side: sign nonce || digest with \p key (RSA or DSA) and hash \p hash
 *        (HDL_DIGEST_SHA1 / HDL_DIGEST_SHA256); writes the whole signedResponse, the hash named
 *        "SHA-256" or "SHA1" as hdllib names them.
 * \retval HDL_EOK, HDL_ESPACE, HDL_EINVAL (not RSA/DSA, no private part, unknown hash),
 *         HDL_ENOMEM (OpenSSL failure)
 */
int hdl_pubkey_answer(EVP_PKEY *key, uint8_t hash, hdl_slice_t nonce, hdl_slice_t digest,
                      uint8_t *out, size_t cap, size_t *outlen);

/**
 * \brief Server side: check an HS_PUBKEY signedResponse with public key \p key.
 * \retval HDL_EOK       the signature verifies
 * \retval HDL_EAUTH     well formed but does not verify (wrong key, data or signature)
 * \retval HDL_EINVAL    unsupported hash name, or a key that is not RSA / DSA
 * \retval HDL_ETRUNC / HDL_ELIMIT / HDL_EMALF  as hdl_pubkey_resp_decode
 * \retval HDL_ENOMEM    OpenSSL failure
 */
int hdl_pubkey_verify(EVP_PKEY *key, hdl_slice_t nonce, hdl_slice_t digest,
                      hdl_slice_t signed_response);

/* ---- keys -------------------------------------------------------------------------------- */

/**
 * \brief EVP_PKEY of a decoded HS_PUBKEY value: RSA_PUB_KEY, DSA_PUB_KEY, or IDIS PEM text
 *        (SubjectPublicKeyInfo or PKCS#1 "RSA PUBLIC KEY").
 * \retval HDL_EOK (\p *out owned by the caller: EVP_PKEY_free)
 * \retval HDL_EINVAL   a key kind we do not verify with (DH, SM2, unknown)
 * \retval HDL_EMALF    numbers or PEM that do not make a key, a PEM key that is not RSA/DSA
 * \retval HDL_ELIMIT   a modulus over HDL_KEY_MAX_BITS
 * \retval HDL_ENOMEM
 */
int hdl_pkey_from_pubkey(const hdl_pubkey_t *k, EVP_PKEY **out);

/**
 * \brief hdl_pubkey_decode() + hdl_pkey_from_pubkey() on HS_PUBKEY value data.
 * \retval as both
 */
int hdl_pkey_from_value(const uint8_t *data, size_t len, EVP_PKEY **out);

/**
 * \brief HS_PUBKEY value data (Handle binary form, RSA_PUB_KEY / DSA_PUB_KEY, numbers as Java
 *        writes them) of the public part of \p key.
 * \retval HDL_EOK, HDL_ESPACE, HDL_EINVAL (not RSA / DSA), HDL_ENOMEM
 */
int hdl_pubkey_value_from_pkey(const EVP_PKEY *key, uint8_t *out, size_t cap, size_t *outlen);

/**
 * \brief A private key from file bytes: PEM (PKCS#8, encrypted PKCS#8, or traditional RSA / DSA,
 *        possibly encrypted) or the CNRI private key file format (admpriv.bin: U32 encryption
 *        type | key bytes, see proto/auth.c).
 * \param passphrase for encrypted files; empty when there is none
 * \retval HDL_EOK (\p *out owned by the caller)
 * \retval HDL_EAUTH    encrypted and the passphrase is missing or wrong
 * \retval HDL_EMALF    neither format, or a key that is not RSA / DSA
 * \retval HDL_EINVAL   a CNRI encryption type we do not support (DES types without OpenSSL's
 *                      legacy provider), or an RSA_PRIV_KEY without CRT parts (no public exponent)
 * \retval HDL_ELIMIT   over HDL_MAX_ARRAY_LEN or a modulus over HDL_KEY_MAX_BITS
 * \retval HDL_ENOMEM
 */
int hdl_privkey_decode(const uint8_t *p, size_t len, hdl_slice_t passphrase, EVP_PKEY **out);

/** CNRI private key file encryption types (the leading U32). */
#define HDL_PRIVKEY_ENC_DES_ECB     0u /**< DES/ECB, key MD5(passphrase) (read only) */
#define HDL_PRIVKEY_ENC_NONE        1u
#define HDL_PRIVKEY_ENC_DES_CBC     2u /**< DES/CBC, key MD5(passphrase) (read only) */
#define HDL_PRIVKEY_ENC_PBKDF2_3DES 3u /**< DESede/CBC, PBKDF2-HMAC-SHA1 192-bit key */
#define HDL_PRIVKEY_ENC_PBKDF2_AES  4u /**< AES-128/CBC, PBKDF2-HMAC-SHA1 128-bit key (hdllib) */

/**
 * \brief Write \p key (RSA with CRT parts, or DSA) in the CNRI private key file format,
 *        unencrypted (empty \p passphrase) or HDL_PRIVKEY_ENC_PBKDF2_AES as hdllib writes it.
 * \param out NULL to learn the size in \p *outlen
 * \retval HDL_EOK, HDL_ESPACE, HDL_EINVAL (not RSA / DSA, no private part), HDL_ENOMEM
 */
int hdl_privkey_encode_cnri(EVP_PKEY *key, hdl_slice_t passphrase, uint8_t *out, size_t cap,
                            size_t *outlen);

/* ---- credentials ------------------------------------------------------------------------- */

/** Who answers challenges, and with what. */
typedef struct hdl_auth {
	hdl_slice_t id_handle; /**< identity handle, e.g. "0.NA/88.100" */
	uint32_t id_index;     /**< index of its HS_SECKEY / HS_PUBKEY value, e.g. 300 */
	hdl_slice_t secret;    /**< HS_SECKEY secret (used when \c key is NULL) */
	EVP_PKEY *key;         /**< HS_PUBKEY private key (borrowed), or NULL */
	uint8_t seckey_alg;    /**< HDL_MAC_* to force one; HDL_MAC_AUTO by version */
} hdl_auth_t;

/**
 * \brief The auth type \p a answers with ("HS_PUBKEY" when it has a key, else "HS_SECKEY").
 */
hdl_slice_t hdl_auth_type(const hdl_auth_t *a);

/**
 * \brief Build the signedResponse for a challenge of version \p major.\p minor (its envelope
 *        version; for HS_SECKEY the lower of it and the suggested version when one is given, as
 *        hdllib does) over \p nonce and the raw \p digest.
 * \retval as hdl_seckey_answer / hdl_pubkey_answer
 */
int hdl_auth_answer(const hdl_auth_t *a, const hdl_envelope_t *challenge_env, hdl_slice_t nonce,
                    hdl_slice_t digest, uint8_t *out, size_t cap, size_t *outlen);

#ifdef __cplusplus
}
#endif
#endif /* HDL_AUTH_H */
