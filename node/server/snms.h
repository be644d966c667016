/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The SNMS-compatible API on the HTTP listener (docs/snms-api.md): POST /identity/token,
 *        POST/PUT/DELETE /identityv2/data, GET /identityv2/data/detail,
 *        /identityv2/data/batchCreate|batchUpdate|batchDelete, GET/POST/PUT/DELETE
 *        /snms/api/v5/template. Answers are JSON {"status", "message", "data"} with the SNMS
 *        status codes (1 success, -1 not logged in, -2 refused: see message, -3 no permission,
 *        -4 internal error).
 *
 * A request is authenticated by its bearer token (snms_auth.h) and acts as the HS_ADMIN
 * identity its user maps to: writes are writer jobs (writer.h) with that identity, so
 * authorization, template checks and the audit trail are those of the binary path. A request
 * that writes waits (preq.h) until every job of it is durable; a batch is submitted as one
 * group (writer_submit_many()) and answered with one result per item.
 *
 * http.c routes to snms_request() (one hook); everything else of the SNMS API is here.
 */
#ifndef HDL_NODE_SERVER_SNMS_H
#define HDL_NODE_SERVER_SNMS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/server/snms_auth.h"

struct conf;
struct conn;
struct reload;
struct http_req;

/** SNMS status codes (the "status" of every answer). */
enum snms_status {
	SNMS_OK = 1,        /**< success */
	SNMS_NO_LOGIN = -1, /**< not logged in (no, unknown or expired token) */
	SNMS_REFUSED = -2,  /**< business failure: the message says why */
	SNMS_NO_PERM = -3,  /**< no permission */
	SNMS_INTERNAL = -4, /**< internal error (busy, store) */
};

/**
 * The configured users, immutable once built; a reload swaps the whole set
 * (snms_register_reload()) and the old one is retired (reload.h): a worker may use a set it
 * loaded for the length of one callback.
 */
typedef struct snms_users {
	snms_user_t *u;
	uint32_t *uid; /**< each user's id in the token table: a reload keeps it for a user whose
	                    name, password hash and identity did not change, else a new one */
	uint32_t n;
} snms_users_t;

/** Node-wide SNMS state (node_shared_t.snms). */
typedef struct snms {
	snms_users_t *_Atomic users;
	uint32_t next_uid;     /**< the last user id given (main thread) */
	struct reload *reload; /**< where replaced user sets are retired (snms_register_reload) */
	snms_tokens_t *tokens;
	snms_bucket_t login; /**< logins per second, node-wide */
	uint64_t token_ttl_ms;
	uint32_t batch_max; /**< items of one batch */
	uint64_t max_body;  /**< bytes of a body parsed */
	_Atomic uint64_t n_logins, n_login_failed, n_requests, n_items;
} snms_t;

/**
 * \brief Node-wide state from the configuration (the snms_* keys).
 * \param err why it failed
 * \retval HDL_EOK, HDL_ENOMEM, HDL_ECONF (a bad snms_user line)
 */
int snms_new(const struct conf *c, snms_t **out, char *err, size_t errlen);

/** \brief Free the state (logs its counters). NULL: nothing. */
void snms_free(snms_t *s);

/**
 * \brief Register the reload hook of the `snms_user` lines (main thread, at start): prepare
 *        parses the new list (a bad line refuses the whole reload), commit swaps it; the
 *        tokens of users removed or whose password hash or identity changed are revoked (their
 *        requests get "not logged in"), those of unchanged users stay valid.
 * \retval HDL_EOK (also for \p s NULL: nothing to register), reload_register()'s errors
 */
int snms_register_reload(snms_t *s, struct reload *r);

/** \brief The user with token id \p uid in \p set, or NULL (removed or changed by a reload). */
const snms_user_t *snms_user_by_uid(const snms_users_t *set, uint32_t uid);

/**
 * \brief The routing hook of http.c: answer \p req when its path is an SNMS path
 *        ("/identity/...", "/identityv2/...", "/snms/..."), possibly later (the connection is
 *        blocked until the answer, as for other requests that wait).
 * \return true when the request was taken (answered or waiting), false when it is not SNMS's
 */
bool snms_request(struct conn *c, const struct http_req *req);

/** \brief SNMS status of a Handle response code of a write (writer.h). */
int snms_status_of(uint32_t rcode);

/**
 * \brief The query parameter \p key of the query string \p q (\p qn bytes, without the '?'),
 *        percent-decoded ('+' is a space) into \p out with a NUL.
 * \return its length; -1 when absent; -2 when malformed (bad escape, NUL) or not shorter than
 *         \p cap
 */
long snms_query_param(const char *q, size_t qn, const char *key, char *out, size_t cap);

/**
 * \brief The token of an "Authorization: Bearer TOKEN" header of a parsed request (its header
 *        bytes are scanned: http_req_t keeps no Authorization field).
 * \return false when there is none
 */
bool snms_bearer(const struct http_req *req, const char **tok, size_t *len);

#endif /* HDL_NODE_SERVER_SNMS_H */
