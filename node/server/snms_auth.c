/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief SNMS API users, password hashes (PBKDF2-HMAC-SHA256 via EVP_KDF), the node-wide
 *        token table and the login bucket (see snms_auth.h).
 */
#include "node/server/snms_auth.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "hdl/msg.h"

#define HASH_TAG "pbkdf2-sha256$"

/* ---- hashes ------------------------------------------------------------------------------- */

static int derive(const char *pw, size_t len, const uint8_t *salt, uint32_t iter,
                  uint8_t key[SNMS_KEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "PBKDF2", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	if (kctx == NULL)
		return HDL_EIO;
	unsigned int it = iter;
	char md[] = "SHA256";
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, len),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SNMS_SALT_LEN),
	    OSSL_PARAM_construct_uint(OSSL_KDF_PARAM_ITER, &it),
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, md, 0),
	    OSSL_PARAM_construct_end(),
	};
	int ok = EVP_KDF_derive(kctx, key, SNMS_KEY_LEN, params);
	EVP_KDF_CTX_free(kctx);
	return ok == 1 ? HDL_EOK : HDL_EIO;
}

/** \p n bytes as 2n hex digits and a NUL into \p out. */
static void hex(const uint8_t *p, size_t n, char *out)
{
	size_t len = 0;
	if (OPENSSL_buf2hexstr_ex(out, 2 * n + 1, &len, p, n, '\0') != 1)
		out[0] = '\0';
}

/** Exactly 2n hex digits in \p s[0..len) into \p out. */
static bool unhex(const char *s, size_t len, uint8_t *out, size_t n)
{
	char tmp[2 * SNMS_KEY_LEN + 1];
	size_t got = 0;
	if (len != 2 * n || len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return OPENSSL_hexstr2buf_ex(out, n, &got, tmp, '\0') == 1 && got == n;
}

int snms_hash_password(const char *pw, size_t len, uint32_t iterations, char *out, size_t cap)
{
	if (iterations < SNMS_ITER_MIN || iterations > SNMS_ITER_MAX || cap < SNMS_HASH_TEXT_MAX ||
	    len == 0 || len > SNMS_PASSWORD_MAX)
		return HDL_EINVAL;
	uint8_t salt[SNMS_SALT_LEN], key[SNMS_KEY_LEN];
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return HDL_EIO;
	int ret = derive(pw, len, salt, iterations, key);
	if (ret != HDL_EOK)
		return ret;
	char sh[2 * SNMS_SALT_LEN + 1], kh[2 * SNMS_KEY_LEN + 1];
	hex(salt, sizeof(salt), sh);
	hex(key, sizeof(key), kh);
	OPENSSL_cleanse(key, sizeof(key));
	snprintf(out, cap, HASH_TAG "%u$%s$%s", (unsigned)iterations, sh, kh);
	return HDL_EOK;
}

bool snms_password_ok(const snms_user_t *u, const char *pw, size_t len)
{
	uint8_t key[SNMS_KEY_LEN];
	if (len == 0 || len > SNMS_PASSWORD_MAX ||
	    derive(pw, len, u->salt, u->iterations, key) != HDL_EOK)
		return false;
	bool ok = CRYPTO_memcmp(key, u->key, sizeof(key)) == 0;
	OPENSSL_cleanse(key, sizeof(key));
	return ok;
}

/* ---- users -------------------------------------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
	return HDL_EINVAL;
}

int snms_user_parse(const char *line, snms_user_t *out, char *err, size_t errlen)
{
	const char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *name = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	size_t nl = (size_t)(p - name);
	if (nl == 0 || nl > SNMS_NAME_MAX)
		return bad(err, errlen,
		           "expected NAME PASSWORD-HASH INDEX:HANDLE (NAME 1..50 bytes)");
	for (size_t i = 0; i < nl; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '@' || c == '-'))
			return bad(err, errlen, "NAME: letters, digits and . _ @ - only");
	}
	while (*p == ' ' || *p == '\t')
		p++;
	const char *hash = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	size_t hl = (size_t)(p - hash);
	while (*p == ' ' || *p == '\t')
		p++;
	const char *id = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	size_t il = (size_t)(p - id);
	while (*p == ' ' || *p == '\t')
		p++;
	if (hl == 0 || il == 0 || *p != '\0')
		return bad(err, errlen, "expected NAME PASSWORD-HASH INDEX:HANDLE");
	/* the hash: pbkdf2-sha256$ITER$SALT$KEY */
	size_t tl = strlen(HASH_TAG);
	if (hl <= tl || strncmp(hash, HASH_TAG, tl) != 0)
		return bad(err, errlen,
		           "PASSWORD-HASH: not a pbkdf2-sha256$... hash (idnode passwd)");
	const char *it = hash + tl, *end = hash + hl;
	const char *d1 = memchr(it, '$', (size_t)(end - it));
	const char *d2 = d1 ? memchr(d1 + 1, '$', (size_t)(end - d1 - 1)) : NULL;
	if (d1 == NULL || d2 == NULL || d1 == it || d1 - it > 8)
		return bad(err, errlen, "PASSWORD-HASH: pbkdf2-sha256$ITERATIONS$SALT$KEY");
	unsigned long iter = 0;
	for (const char *q = it; q < d1; q++) {
		if (*q < '0' || *q > '9')
			return bad(err, errlen, "PASSWORD-HASH: bad iteration count");
		iter = iter * 10 + (unsigned long)(*q - '0');
	}
	if (iter < SNMS_ITER_MIN || iter > SNMS_ITER_MAX)
		return bad(err, errlen, "PASSWORD-HASH: iterations out of 1000..10000000");
	snms_user_t u;
	memset(&u, 0, sizeof(u));
	if (!unhex(d1 + 1, (size_t)(d2 - d1 - 1), u.salt, SNMS_SALT_LEN) ||
	    !unhex(d2 + 1, (size_t)(end - d2 - 1), u.key, SNMS_KEY_LEN))
		return bad(err, errlen, "PASSWORD-HASH: salt of 32 and key of 64 hex digits");
	/* the identity: INDEX:HANDLE */
	const char *colon = memchr(id, ':', il);
	if (colon == NULL || colon == id || colon - id > 10 || (size_t)(colon - id) + 1 >= il)
		return bad(err, errlen, "identity: INDEX:HANDLE (e.g. 300:88.100.1/ADMIN)");
	unsigned long long idx = 0;
	for (const char *q = id; q < colon; q++) {
		if (*q < '0' || *q > '9')
			return bad(err, errlen, "identity: INDEX:HANDLE (e.g. 300:88.100.1/ADMIN)");
		idx = idx * 10 + (unsigned long long)(*q - '0');
	}
	size_t hlen = il - (size_t)(colon - id) - 1;
	if (idx > UINT32_MAX || hdl_name_check((const uint8_t *)colon + 1, hlen) != HDL_EOK)
		return bad(err, errlen, "identity: INDEX:HANDLE with a valid handle");
	if (out == NULL)
		return HDL_EOK;
	memcpy(u.name, name, nl);
	u.name[nl] = '\0';
	u.iterations = (uint32_t)iter;
	u.id_index = (uint32_t)idx;
	u.id_handle = strndup(colon + 1, hlen);
	if (u.id_handle == NULL)
		return HDL_ENOMEM;
	*out = u;
	return HDL_EOK;
}

void snms_user_clear(snms_user_t *u)
{
	free(u->id_handle);
	OPENSSL_cleanse(u, sizeof(*u));
}

/* ---- tokens ------------------------------------------------------------------------------- */

typedef struct tok {
	uint8_t digest[32]; /**< SHA-256 of the token text */
	uint32_t user;
	uint32_t next; /**< hash chain / free list (index + 1; 0 = end) */
	uint64_t expires_ms;
	uint64_t serial; /**< issue order (the per-user bound retires the oldest) */
	bool used;
} tok_t;

struct snms_tokens {
	pthread_mutex_t mu;
	tok_t *e;
	uint32_t *heads; /**< n_heads chains (index + 1) */
	uint32_t n_heads;
	uint32_t max, per_user, count;
	uint32_t free_head; /**< free entries (index + 1) */
	uint64_t serial;
};

int snms_tokens_new(unsigned max, unsigned per_user, snms_tokens_t **out)
{
	*out = NULL;
	if (max == 0 || per_user == 0)
		return HDL_EINVAL;
	snms_tokens_t *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return HDL_ENOMEM;
	t->max = max;
	t->per_user = per_user;
	t->n_heads = 16;
	while (t->n_heads < max && t->n_heads < (1u << 30))
		t->n_heads <<= 1;
	t->e = calloc(max, sizeof(*t->e));
	t->heads = calloc(t->n_heads, sizeof(*t->heads));
	if (t->e == NULL || t->heads == NULL || pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t->e);
		free(t->heads);
		free(t);
		return HDL_ENOMEM;
	}
	for (uint32_t i = 0; i < max; i++)
		t->e[i].next = i + 1 < max ? i + 2 : 0;
	t->free_head = 1;
	*out = t;
	return HDL_EOK;
}

void snms_tokens_free(snms_tokens_t *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mu);
	OPENSSL_cleanse(t->e, sizeof(*t->e) * t->max);
	free(t->e);
	free(t->heads);
	free(t);
}

static uint32_t chain_of(const snms_tokens_t *t, const uint8_t digest[32])
{
	uint32_t h = (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 |
	             (uint32_t)digest[2] << 8 | digest[3];
	return h & (t->n_heads - 1);
}

/** Remove entry \p i (locked). */
static void tok_remove(snms_tokens_t *t, uint32_t i)
{
	uint32_t *pp = &t->heads[chain_of(t, t->e[i].digest)];
	while (*pp && *pp != i + 1)
		pp = &t->e[*pp - 1].next;
	if (*pp)
		*pp = t->e[i].next;
	memset(&t->e[i], 0, sizeof(t->e[i]));
	t->e[i].next = t->free_head;
	t->free_head = i + 1;
	t->count--;
}

static void sha256(const char *p, size_t n, uint8_t out[32])
{
	unsigned int len = 0;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

int snms_token_issue(snms_tokens_t *t, uint32_t user, uint64_t now_ms, uint64_t ttl_ms,
                     char out[SNMS_TOKEN_LEN + 1])
{
	uint8_t raw[SNMS_TOKEN_LEN / 2];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return HDL_EIO;
	hex(raw, sizeof(raw), out);
	OPENSSL_cleanse(raw, sizeof(raw));
	uint8_t digest[32];
	sha256(out, SNMS_TOKEN_LEN, digest);
	pthread_mutex_lock(&t->mu);
	/* the user's own bound: retire its oldest */
	uint32_t mine = 0, oldest = UINT32_MAX;
	for (uint32_t i = 0; i < t->max; i++) {
		if (!t->e[i].used || t->e[i].user != user)
			continue;
		mine++;
		if (oldest == UINT32_MAX || t->e[i].serial < t->e[oldest].serial)
			oldest = i;
	}
	if (mine >= t->per_user && oldest != UINT32_MAX)
		tok_remove(t, oldest);
	if (t->free_head == 0) {
		for (uint32_t i = 0; i < t->max; i++) {
			if (t->e[i].used && t->e[i].expires_ms <= now_ms)
				tok_remove(t, i);
		}
	}
	if (t->free_head == 0) {
		pthread_mutex_unlock(&t->mu);
		return HDL_ELIMIT;
	}
	uint32_t i = t->free_head - 1;
	t->free_head = t->e[i].next;
	tok_t *e = &t->e[i];
	memcpy(e->digest, digest, sizeof(digest));
	e->user = user;
	e->expires_ms = now_ms + ttl_ms;
	e->serial = ++t->serial;
	e->used = true;
	uint32_t *head = &t->heads[chain_of(t, digest)];
	e->next = *head;
	*head = i + 1;
	t->count++;
	pthread_mutex_unlock(&t->mu);
	return HDL_EOK;
}

int snms_token_check(snms_tokens_t *t, const char *tok, size_t len, uint64_t now_ms, uint32_t *user)
{
	if (len != SNMS_TOKEN_LEN)
		return HDL_ENOENT;
	uint8_t digest[32];
	sha256(tok, len, digest);
	int ret = HDL_ENOENT;
	pthread_mutex_lock(&t->mu);
	for (uint32_t k = t->heads[chain_of(t, digest)]; k; k = t->e[k - 1].next) {
		tok_t *e = &t->e[k - 1];
		if (CRYPTO_memcmp(e->digest, digest, sizeof(digest)) != 0)
			continue;
		if (e->expires_ms <= now_ms) {
			tok_remove(t, k - 1);
		} else {
			*user = e->user;
			ret = HDL_EOK;
		}
		break;
	}
	pthread_mutex_unlock(&t->mu);
	return ret;
}

unsigned snms_tokens_revoke(snms_tokens_t *t, bool (*keep)(void *arg, uint32_t user), void *arg)
{
	unsigned n = 0;
	pthread_mutex_lock(&t->mu);
	for (uint32_t i = 0; i < t->max; i++) {
		if (t->e[i].used && !keep(arg, t->e[i].user)) {
			tok_remove(t, i);
			n++;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}

unsigned snms_tokens_count(snms_tokens_t *t)
{
	pthread_mutex_lock(&t->mu);
	unsigned n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

/* ---- the login bucket --------------------------------------------------------------------- */

void snms_bucket_init(snms_bucket_t *b, uint32_t rate, uint32_t burst, uint64_t now_ms)
{
	pthread_mutex_init(&b->mu, NULL);
	b->rate = rate ? rate : 1;
	b->burst = burst ? burst : b->rate;
	b->level = b->burst;
	b->last_ms = now_ms;
}

bool snms_bucket_take(snms_bucket_t *b, uint64_t now_ms)
{
	pthread_mutex_lock(&b->mu);
	if (now_ms > b->last_ms) {
		b->level += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
		if (b->level > b->burst)
			b->level = b->burst;
		b->last_ms = now_ms;
	}
	bool ok = b->level >= 1.0;
	if (ok)
		b->level -= 1.0;
	pthread_mutex_unlock(&b->mu);
	return ok;
}

void snms_bucket_destroy(snms_bucket_t *b)
{
	pthread_mutex_destroy(&b->mu);
}
