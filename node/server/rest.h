/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The HTTP API's building blocks (internal to node/server), for http.c's handlers and
 *        for other JSON APIs on the http ports: answering a request (http.c), who sent it (the
 *        REST credentials: rest_auth.c), and writes that wait for the writer's durable commit
 *        (rest_admin.c). The Handle.Net REST administration itself (PUT / DELETE
 *        /api/handles/{handle}, /api/sessions) is rest_admin.c; docs/registration.md, "REST".
 *
 * Credentials (handle-protocol.md §13.4):
 *  - `Authorization: Basic base64(pct-encoded "INDEX:HANDLE" ":" secret)`: the secret is
 *    checked against the identity's HS_SECKEY at INDEX (0: any) in this node's store;
 *  - `Authorization: Handle sessionId="...", id="INDEX:HANDLE", type="HS_PUBKEY"|"HS_SECKEY",
 *    cnonce="b64", alg="...", signature="b64"` (+ salt, iterations, length for PBKDF2):
 *    authenticates the session (POST /api/sessions made it and its nonce) with a signature over
 *    nonce || cnonce, checked as a challenge answer (admin_verify_identity()); later requests
 *    carry only `Authorization: Handle sessionId="..."`.
 * Credentials are refused over plain HTTP (403) unless http_auth_plain_loopback allows them
 * from a loopback peer. Sessions live in a node-wide table (any worker serves them), bounded in
 * number (rest_sessions_max) and per source (rest_sessions_per_source), expiring
 * (rest_session_unauth_ms before they authenticate, rest_session_idle_ms unused after).
 *
 * A write waits like the binary path's: the request becomes a preq_t whose job goes to the
 * writer; the connection reads no further request until it is answered (HTTP answers go out in
 * request order), and is exempt from the idle timeout meanwhile.
 */
#ifndef HDL_NODE_SERVER_REST_H
#define HDL_NODE_SERVER_REST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"
#include "node/server/conn.h"
#include "node/server/http.h"

struct worker;
struct preq;

/* ---- answering (http.c) ------------------------------------------------------------------- */

/** One HTTP request being answered: where the answer goes and how. */
typedef struct http_rq {
	conn_t *c;
	const http_req_t *req; /**< NULL once the request's bytes are gone (a later answer) */
	bool head;             /**< HEAD: no body */
	bool close;            /**< close once answered */
	bool pretty;           /**< indented JSON */
	uint8_t minor;         /**< HTTP/1.minor */
	int status;            /**< the status sent (0: none yet; the query log reads it) */
	char extra[4400];      /**< extra header lines ("Name: value\r\n"); Location up to 4096 */
	size_t extra_len;
} http_rq_t;

#define HTTP_MAX_PARAMS 64u /**< query parameters of one request */

/** One query parameter, percent-decoded. */
typedef struct http_param {
	char *key;
	char *value; /**< NULL when the parameter had no '=' */
} http_param_t;

/** The query parameters of one request, in order. */
typedef struct http_params {
	http_param_t p[HTTP_MAX_PARAMS];
	unsigned n;
} http_params_t;

/**
 * \brief Percent-decode the C string \p s in place ('+' is a space when \p plus).
 * \return the decoded length (a decoded NUL shortens strlen()), -1 on a bad escape
 */
long http_pct_decode(char *s, bool plus);

/** \brief The first parameter named \p key, or NULL. */
const http_param_t *http_param_get(const http_params_t *ps, const char *key);
/** \brief Handle.Net booleans: present without a value, "true", "yes" or "1"; else \p dflt. */
bool http_param_bool(const http_params_t *ps, const char *key, bool dflt);

/** \brief Add a header line to the answer (dropped when it does not fit). */
void http_add_header(http_rq_t *r, const char *name, const char *value);
/** \brief Status line, headers and (unless HEAD) \p len bytes of body into the output. */
void http_send_body(http_rq_t *r, int status, const char *ctype, const void *body, size_t len);
/** \brief A JSON answer (consumes the reference \p j; NULL: a 500 with responseCode 2). */
void http_send_json(http_rq_t *r, int status, json_t *j);
/**
 * \brief The REST error entity {"responseCode":rc,"message":msg?,"handle":handle?}
 *        (handle-protocol.md §13.3).
 */
void http_send_json_error(http_rq_t *r, int status, uint32_t rc, const char *msg,
                          const char *handle);
/**
 * \brief HTTP status of a Handle response code (handle-protocol.md §13.3); \p resolution: RC 200
 *        (values not found) is 200 for a resolution, 400 otherwise.
 */
int http_status_for(uint32_t rc, bool resolution);

/* ---- credentials (rest_auth.c) ------------------------------------------------------------ */

#define REST_SID_LEN   32u   /**< session ids: 128 random bits as lower-case hex */
#define REST_NONCE_LEN 16u   /**< server nonce of a session */
#define REST_AUTH_MAX  4096u /**< longest Authorization header value looked at */

/** Schemes of an Authorization header. */
enum { REST_SCHEME_NONE = 0, REST_SCHEME_BASIC, REST_SCHEME_HANDLE, REST_SCHEME_OTHER };

/** A parsed Authorization header; every slice points into the header value. */
typedef struct rest_authz {
	int scheme;       /**< REST_SCHEME_* */
	http_str_t basic; /**< Basic: the base64 token */
	/* Handle (handle-protocol.md §13.4): empty slices when absent */
	http_str_t session_id, version, id, type, alg, cnonce, signature, salt, iterations, length;
} rest_authz_t;

/**
 * \brief Parse an Authorization header value (pure: fuzzed by tests/fuzz/fuzz_rest_auth.c).
 *        Handle parameters are `name=value` or `name="value"` (no escapes) separated by
 *        commas; unknown names are ignored, a repeated known one is malformed.
 * \retval HDL_EOK, HDL_EMALF (not a scheme and parameters), HDL_ELIMIT (over REST_AUTH_MAX)
 */
int rest_authz_parse(http_str_t v, rest_authz_t *out);

/**
 * \brief Decode a Basic token into the identity and the secret: base64 of "USER:SECRET", USER
 *        percent-decoded to "INDEX:HANDLE" (a bare HANDLE means index 0). \p buf (at least
 *        \p cap bytes) holds the decoded bytes \p handle and \p secret point into.
 * \retval HDL_EOK, HDL_EMALF (bad base64, no colon, bad escape, empty handle), HDL_ELIMIT
 */
int rest_basic_decode(http_str_t token, uint8_t *buf, size_t cap, hdl_slice_t *handle,
                      uint32_t *index, hdl_slice_t *secret);

/**
 * \brief Standard base64 (padding required, no whitespace) into \p out.
 * \retval decoded length, or -1 (bad input or does not fit \p cap)
 */
long rest_b64_decode(http_str_t in, uint8_t *out, size_t cap);

/** The identity an HTTP request was authenticated as. */
typedef struct rest_ident {
	bool ok;        /**< authenticated */
	uint32_t index; /**< the key's index (as verified) */
	uint32_t handle_len;
	uint8_t handle[HDL_MAX_HANDLE_LEN];
	char session[REST_SID_LEN + 1]; /**< the session it came through ("" for Basic) */
} rest_ident_t;

/** Outcome of rest_authenticate(). */
typedef enum rest_auth_rc {
	REST_AUTH_NONE = 0, /**< no credentials (or a session not authenticated yet) */
	REST_AUTH_OK,       /**< *id holds the identity */
	REST_AUTH_REFUSED,  /**< refused: the answer (401 / 403 / 400) was sent and logged */
} rest_auth_rc_t;

/**
 * \brief The identity of request \p r from its Authorization header (see the \file comment).
 *        Reads the store under its own snapshot; uses the worker's dispatch arena.
 */
rest_auth_rc_t rest_authenticate(struct worker *w, http_rq_t *r, rest_ident_t *id);

/**
 * \brief May credentials be used on this connection: TLS, or a loopback peer with
 *        http_auth_plain_loopback?
 */
bool rest_secure(const conn_t *c);

/**
 * \brief Answer "authentication needed": 401 with `WWW-Authenticate: Basic realm="handle"` on
 *        a secure connection, 403 over plain HTTP (credentials could not be sent here).
 */
void rest_send_auth_needed(http_rq_t *r, const char *handle);

/* ---- the node-wide session table (rest_auth.c) -------------------------------------------- */

typedef struct rest_sessions rest_sessions_t;

/** What a session holds. */
typedef struct rest_session {
	char id[REST_SID_LEN + 1];
	uint8_t nonce[REST_NONCE_LEN];
	bool authenticated;
	uint32_t index;
	uint32_t handle_len;
	uint8_t handle[HDL_MAX_HANDLE_LEN];
} rest_session_t;

/** \brief A table of at most \p max sessions. \retval HDL_EOK, HDL_ENOMEM */
int rest_sessions_new(unsigned max, rest_sessions_t **out);
/** \brief Free the table and its sessions (NULL is ignored). */
void rest_sessions_free(rest_sessions_t *t);
/** \brief Drop the sessions past their expiry (any thread; worker 0's tick). */
void rest_sessions_expire(rest_sessions_t *t, uint64_t now_ms);
/** \brief Sessions held now. */
unsigned rest_sessions_count(rest_sessions_t *t);
/**
 * \brief A new session (fresh random id and nonce) from source \p src, expiring after
 *        \p unauth_ms unless it authenticates.
 * \retval HDL_EOK (\p out filled), HDL_EAGAIN (the table or the source is full), HDL_EIO (no
 *         randomness), HDL_ENOMEM
 */
int rest_session_create(rest_sessions_t *t, const conn_src_t *src, unsigned per_source,
                        uint64_t now_ms, uint32_t unauth_ms, rest_session_t *out);
/**
 * \brief Copy session \p id into \p out; an authenticated session's expiry moves to
 *        \p now_ms + \p idle_ms (it was used).
 * \retval HDL_EOK, HDL_ENOENT (unknown or expired)
 */
int rest_session_get(rest_sessions_t *t, http_str_t id, uint64_t now_ms, uint32_t idle_ms,
                     rest_session_t *out);
/**
 * \brief Session \p id is authenticated as (\p handle, \p index); it now expires \p idle_ms
 *        after its last use.
 * \retval HDL_EOK, HDL_ENOENT
 */
int rest_session_auth(rest_sessions_t *t, http_str_t id, hdl_slice_t handle, uint32_t index,
                      uint64_t now_ms, uint32_t idle_ms);
/** \brief End session \p id. \retval HDL_EOK, HDL_ENOENT */
int rest_session_delete(rest_sessions_t *t, http_str_t id);

/* ---- writes that wait (rest_admin.c) ------------------------------------------------------ */

/**
 * \brief Called on the worker once the job of \p p is durable or refused (p->job.rcode and
 *        .message say which): answer \p r with http_send_*(). \p p is freed afterwards.
 */
typedef void (*rest_answer_fn)(http_rq_t *r, struct preq *p, void *arg);

/**
 * \brief Suspend request \p r on \p p (http.c): the connection reads no further request (HTTP
 *        answers in order) and has no idle timeout until p->complete() runs, which calls
 *        \p answer(r', p, arg) with r' rebuilt from \p r, frees \p p and goes on.
 */
void http_wait(http_rq_t *r, struct preq *p, rest_answer_fn answer, void *arg);

/**
 * \brief A write for request \p r: a preq_t whose arena (p->arena) the caller builds the job's
 *        handle and values in, counted against pending_max / pending_per_source.
 * \return the request, or NULL when refused (answered 503 here)
 */
struct preq *rest_write_new(http_rq_t *r, size_t arena_first);

/**
 * \brief Submit p->job (op, flags, handle, values / indexes filled by the caller) for identity
 *        \p id: the identity, transport (HTTPS or HTTP), peer and time are set here, the
 *        connection waits, and \p answer(r', p, arg) runs on the worker once the writer is
 *        done (r' rebuilt from \p r). When the writer refuses the job at once (queue full) the
 *        request is answered 503 here and \p p freed.
 */
void rest_write_submit(http_rq_t *r, struct preq *p, const rest_ident_t *id, rest_answer_fn answer,
                       void *arg);

/* ---- the REST administration handlers (rest_admin.c), routed by http.c ------------------- */

/** \brief PUT /api/handles/{handle}: create or replace, or add values (?index=). */
void rest_put_handle(struct worker *w, http_rq_t *r, const char *handle, const http_params_t *ps);
/** \brief DELETE /api/handles/{handle}: delete the handle, or values (?index=). */
void rest_delete_handle(struct worker *w, http_rq_t *r, const char *handle,
                        const http_params_t *ps);
/** \brief /api/sessions and /api/sessions/this (\p rest: "" or "this" or anything else). */
void rest_sessions_api(struct worker *w, http_rq_t *r, const char *rest);

#endif /* HDL_NODE_SERVER_REST_H */
