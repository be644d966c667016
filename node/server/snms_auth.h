/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Authentication of the SNMS-compatible API (docs/snms-api.md): users from the
 *        configuration (`snms_user = NAME PASSWORD-HASH INDEX:HANDLE`, each acting as one
 *        HS_ADMIN identity), salted password hashes (PBKDF2-HMAC-SHA256 through OpenSSL's
 *        EVP_KDF), the node-wide table of bearer tokens (bounded in all and per user, expiring)
 *        and the node-wide login rate limit.
 *
 * Hash text: "pbkdf2-sha256$ITERATIONS$SALT$KEY", salt 16 bytes and key 32 bytes in hex (written
 * upper-case, read in either case; `idnode passwd` makes one). Tokens are 32 random bytes in hex
 * (64 characters, compared exactly); the table
 * keeps only their SHA-256, so neither a core dump nor a timing side channel on the lookup gives
 * a usable token away.
 *
 * Thread model: users are immutable after parsing; the token table and the bucket take their
 * own mutex (any worker).
 */
#ifndef HDL_NODE_SERVER_SNMS_AUTH_H
#define HDL_NODE_SERVER_SNMS_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNMS_NAME_MAX      50u  /**< bytes of a user name (the SNMS API's limit) */
#define SNMS_PASSWORD_MAX  256u /**< bytes of a password accepted */
#define SNMS_SALT_LEN      16u
#define SNMS_KEY_LEN       32u
#define SNMS_ITER_DEFAULT  100000u /**< PBKDF2 iterations of `idnode passwd` */
#define SNMS_ITER_MIN      1000u
#define SNMS_ITER_MAX      10000000u
#define SNMS_HASH_TEXT_MAX 160u /**< bytes of a hash text with its NUL */
#define SNMS_TOKEN_LEN     64u  /**< hex characters of a token */

/** One configured user. */
typedef struct snms_user {
	char name[SNMS_NAME_MAX + 1];
	uint32_t iterations;
	uint8_t salt[SNMS_SALT_LEN];
	uint8_t key[SNMS_KEY_LEN];
	char *id_handle; /**< the HS_ADMIN identity it acts as (heap) */
	uint32_t id_index;
} snms_user_t;

/**
 * \brief Parse one `snms_user` line "NAME HASH INDEX:HANDLE" (NAME: letters, digits, "._@-").
 * \param out NULL: only check; else filled (free with snms_user_clear())
 * \retval HDL_EOK, HDL_EINVAL (\p err says why), HDL_ENOMEM
 */
int snms_user_parse(const char *line, snms_user_t *out, char *err, size_t errlen);
/** \brief Free what snms_user_parse() allocated. */
void snms_user_clear(snms_user_t *u);

/**
 * \brief The hash text of \p pw with a fresh random salt and \p iterations.
 * \retval HDL_EOK, HDL_EINVAL (iterations out of range, \p cap too small), HDL_EIO (no random
 *         bytes or the KDF failed)
 */
int snms_hash_password(const char *pw, size_t len, uint32_t iterations, char *out, size_t cap);

/**
 * \brief Does \p pw match the user's hash? Constant time in the key comparison.
 * \note Costs the user's PBKDF2 iterations (about 30-60 ms at the default).
 */
bool snms_password_ok(const snms_user_t *u, const char *pw, size_t len);

/** Node-wide bearer tokens. */
typedef struct snms_tokens snms_tokens_t;

/**
 * \brief New table of at most \p max tokens, \p per_user of one user.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (a bound 0)
 */
int snms_tokens_new(unsigned max, unsigned per_user, snms_tokens_t **out);
/** \brief Free the table. */
void snms_tokens_free(snms_tokens_t *t);

/**
 * \brief Issue a token for user \p user valid for \p ttl_ms: a user at its per-user bound loses
 *        its oldest token; a full table drops expired tokens first.
 * \param out 64 hex characters and a NUL
 * \retval HDL_EOK, HDL_ELIMIT (the table is full of live tokens), HDL_EIO (no random bytes)
 */
int snms_token_issue(snms_tokens_t *t, uint32_t user, uint64_t now_ms, uint64_t ttl_ms,
                     char out[SNMS_TOKEN_LEN + 1]);

/**
 * \brief The user of a live token (an expired one is dropped).
 * \retval HDL_EOK, HDL_ENOENT (unknown, malformed or expired)
 */
int snms_token_check(snms_tokens_t *t, const char *tok, size_t len, uint64_t now_ms,
                     uint32_t *user);

/**
 * \brief Drop every token whose user \p keep (called under the table's lock) refuses.
 * \return tokens dropped
 */
unsigned snms_tokens_revoke(snms_tokens_t *t, bool (*keep)(void *arg, uint32_t user), void *arg);

/** \brief Tokens in the table now (live or not yet dropped). */
unsigned snms_tokens_count(snms_tokens_t *t);

/** A token bucket shared by the workers (the login rate limit). */
typedef struct snms_bucket {
	pthread_mutex_t mu;
	double level;     /**< tokens available */
	uint64_t last_ms; /**< when \p level was computed */
	double rate;      /**< tokens per second */
	double burst;     /**< the most \p level holds */
} snms_bucket_t;

/** \brief Start a full bucket. */
void snms_bucket_init(snms_bucket_t *b, uint32_t rate, uint32_t burst, uint64_t now_ms);
/** \brief Take one token. \return false when none is left */
bool snms_bucket_take(snms_bucket_t *b, uint64_t now_ms);
/** \brief Free the bucket's mutex. */
void snms_bucket_destroy(snms_bucket_t *b);

#endif /* HDL_NODE_SERVER_SNMS_AUTH_H */
