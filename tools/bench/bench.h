/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief idnode-bench internals: log-bucket latency histogram, Zipf sampler, key sets, the
 *        loopback guard, request builders / reply parsers and the load engine.
 *
 * The testable pieces (hist.c, zipf.c, keys.c, addr.c, proto.c) hold no main(); the unit test
 * tests/unit/test_bench_hist.c includes those .c files directly.
 */
#ifndef HDL_TOOLS_BENCH_BENCH_H
#define HDL_TOOLS_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* ---- histogram (hist.c) ------------------------------------------------------------------ */

/** Sub-bucket bits: values below 2^8 are exact, above that each power of two is split into 128
 *  buckets, so any recorded value is known to within 1/128 (< 0.8 %, 2+ significant digits). */
#define BH_SUB_BITS 8u
#define BH_HALF (1u << (BH_SUB_BITS - 1u))
#define BH_NBUCKETS ((64u - BH_SUB_BITS + 2u) * BH_HALF)

/** Log-bucket histogram of unsigned values (we record nanoseconds). Not thread-safe. */
typedef struct bh_hist {
	uint64_t count; /**< values recorded */
	uint64_t min;   /**< exact minimum (UINT64_MAX when empty) */
	uint64_t max;   /**< exact maximum */
	double sum;     /**< sum of values, for the mean */
	double sumsq;   /**< sum of squares, for the standard deviation */
	uint64_t b[BH_NBUCKETS]; /**< per-bucket counts */
} bh_hist_t;

/** \brief Empty \p h. */
void bh_init(bh_hist_t *h);
/** \brief Bucket index of \p v. */
uint32_t bh_index(uint64_t v);
/** \brief Smallest value that falls in bucket \p idx. */
uint64_t bh_lowest(uint32_t idx);
/** \brief Largest value that falls in bucket \p idx. */
uint64_t bh_highest(uint32_t idx);
/** \brief Record one value. */
void bh_record(bh_hist_t *h, uint64_t v);
/** \brief Add all of \p src into \p dst. */
void bh_merge(bh_hist_t *dst, const bh_hist_t *src);
/**
 * \brief Value at percentile \p p (0..100): the highest value equivalent to the bucket holding
 *        the ceil(p/100 * count)-th smallest value, clamped to [min, max]. 0 when empty.
 */
uint64_t bh_percentile(const bh_hist_t *h, double p);
/** \brief Exact mean of the recorded values (0 when empty). */
double bh_mean(const bh_hist_t *h);
/** \brief Exact population standard deviation of the recorded values. */
double bh_stddev(const bh_hist_t *h);

/* ---- random numbers and Zipf (zipf.c) ---------------------------------------------------- */

/** xoshiro256** state. */
typedef struct bk_rng {
	uint64_t s[4];
} bk_rng_t;

/** \brief Seed \p r from \p seed (splitmix64 expansion). */
void bk_rng_seed(bk_rng_t *r, uint64_t seed);
/** \brief Next 64 random bits. */
uint64_t bk_rng_next(bk_rng_t *r);
/** \brief Uniform integer in [0, n) (n > 0). */
uint64_t bk_rng_below(bk_rng_t *r, uint64_t n);
/** \brief Uniform double in [0, 1). */
double bk_rng_double(bk_rng_t *r);

/** Zipf(s) over ranks 1..n by rejection-inversion (Hörmann & Derflinger 1996); O(1), no table. */
typedef struct bk_zipf {
	uint64_t n;       /**< number of ranks */
	double s;         /**< exponent, > 0 */
	double h_x1;      /**< H(1.5) - 1 */
	double h_n;       /**< H(n + 0.5) */
	double threshold; /**< the quick-accept constant */
} bk_zipf_t;

/** \retval 0 ok, -1 bad parameters (n == 0, s <= 0 or not finite). */
int bk_zipf_init(bk_zipf_t *z, uint64_t n, double s);
/** \brief Draw a rank in [1, n]; rank 1 is the most popular. */
uint64_t bk_zipf_next(const bk_zipf_t *z, bk_rng_t *r);
/** \brief Map a rank to a key index in [0, n) by a fixed permutation, so hot keys are spread
 *         over the key space (mult is a number coprime to n, see bk_zipf_mult). */
uint64_t bk_zipf_spread(uint64_t rank, uint64_t n, uint64_t mult);
/** \brief A multiplier coprime to \p n for bk_zipf_spread. */
uint64_t bk_zipf_mult(uint64_t n);

/* ---- key sets (keys.c) ------------------------------------------------------------------- */

#define BK_KEY_MAX 1024u /**< longest key we send */

/** The keys a run draws from: a loaded list, or PRE + decimal number + POST over [lo, hi]. */
typedef struct bk_keys {
	bool is_list;   /**< list (blob/off) or pattern */
	char *blob;     /**< list: all keys, back to back, no terminators */
	uint64_t *off;  /**< list: n + 1 offsets into blob */
	uint64_t n;     /**< number of keys */
	uint64_t blob_cap;
	char pre[BK_KEY_MAX];  /**< pattern: text before %s */
	char post[BK_KEY_MAX]; /**< pattern: text after %s */
	size_t pre_len, post_len;
	uint64_t lo; /**< pattern: first number */
	uint64_t hi; /**< pattern: last number (inclusive) */
	unsigned width; /**< pattern: zero-pad the number to this many digits (%06d), 0 = none */
} bk_keys_t;

/**
 * \brief Keys PRE<number>POST for every number in RANGE ("A-B", inclusive, A <= B).
 * \param pattern text with exactly one "%s" (or "%d" / "%u", optionally zero-padded as "%06d");
 *        "%%" is a literal '%'
 * \retval 0 ok, -1 bad pattern or range (message in \p err)
 */
int bk_keys_pattern(bk_keys_t *k, const char *pattern, const char *range, char *err, size_t errlen);
/**
 * \brief Load keys from \p path ("-" = stdin): one handle per line, or JSON Lines objects whose
 *        top-level "handle" member is the key (what `idnode gen` writes). Blank lines and lines
 *        starting with '#' are skipped.
 * \retval 0 ok, -1 I/O error, a malformed line or no keys (message in \p err)
 */
int bk_keys_load(bk_keys_t *k, const char *path, char *err, size_t errlen);
/** \brief Load keys from a memory buffer (same formats as bk_keys_load). */
int bk_keys_load_mem(bk_keys_t *k, const char *buf, size_t len, char *err, size_t errlen);
/** \brief Key \p i (< k->n) into \p out; \return its length (0 if it does not fit). */
size_t bk_key_get(const bk_keys_t *k, uint64_t i, char *out, size_t cap);
/** \brief Release a key set (a pattern set owns nothing). */
void bk_keys_free(bk_keys_t *k);
/**
 * \brief Extract the top-level "handle" string of one JSON object line.
 * \retval length written to \p out, -1 when absent or malformed or longer than \p cap
 */
int bk_json_handle(const char *line, size_t len, char *out, size_t cap);

/* ---- target address and the loopback guard (addr.c) ------------------------------------- */

/**
 * \brief Parse "HOST:PORT", "[V6]:PORT" or "V6" + default port; HOST may be a name (resolved).
 * \retval 0 ok, -1 parse or resolve error (message in \p err)
 */
int bk_addr_parse(const char *hostport, uint16_t def_port, struct sockaddr_storage *ss,
                  socklen_t *sslen, char *err, size_t errlen);
/** \brief True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool bk_addr_is_loopback(const struct sockaddr *sa);
/** \brief Parse \p hostport and require loopback; \retval 0 ok, -1 bad, -2 not loopback. */
int bk_addr_check(const char *hostport, char *err, size_t errlen);

/* ---- protocols (proto.c) ----------------------------------------------------------------- */

typedef enum bk_proto {
	BK_UDP = 0, /**< Handle over UDP */
	BK_TCP,     /**< Handle over TCP */
	BK_HTTP,    /**< Handle native tunnel over HTTP/1.1 POST */
	BK_REST,    /**< REST GET /api/handles/<h> */
	BK_DNS,     /**< DNS TXT query over UDP (peer comparison) */
	BK_DNSTCP,  /**< DNS TXT query over TCP */
} bk_proto_t;

/** \brief Parse a protocol name; \retval 0 ok, -1 unknown. */
int bk_proto_parse(const char *s, bk_proto_t *p);
/** \brief Name of a protocol as the --proto option spells it. */
const char *bk_proto_name(bk_proto_t p);
/** \brief True for stream transports (TCP, HTTP, REST, DNS over TCP). */
bool bk_proto_stream(bk_proto_t p);

/** How requests are built: a Handle resolution request without the handle, split around it. */
typedef struct bk_tmpl {
	bk_proto_t proto;
	uint8_t head[64];   /**< envelope + header (44 bytes) */
	uint8_t tail[2048]; /**< after the handle STR: indexes, types, credential length */
	size_t tail_len;
	char host[300]; /**< Host header for HTTP */
	bool close;     /**< HTTP: ask the server to close after the answer (connect-per-request) */
} bk_tmpl_t;

/**
 * \brief Prepare the request template: Handle resolution requests (version 2.11, flags
 *        0x19000000, serial 0xFFFF, expiration now + 12 h) with the given type filters.
 * \retval 0 ok, -1 too many / too long types
 */
int bk_tmpl_init(bk_tmpl_t *t, bk_proto_t proto, const char *const *types, size_t ntypes,
                 const char *host);
/**
 * \brief Set KC (keep connection) in the requests' OpFlag: what a client that keeps its TCP
 *        connection for many requests sends (without it a 2.11 request is answered and the
 *        connection closed, as hdllib expects; see node/server/tcp.h).
 */
void bk_tmpl_keep(bk_tmpl_t *t);
/**
 * \brief Build the request for \p key with request id \p id into \p out.
 * \return bytes written, 0 when it does not fit \p cap
 */
size_t bk_build(const bk_tmpl_t *t, const char *key, size_t klen, uint32_t id, uint8_t *out,
                size_t cap);
/** \brief Offset of the request id inside a built request (for patching), or -1 (REST). */
int bk_id_offset(const bk_tmpl_t *t, size_t klen);

/** One parsed reply. */
typedef struct bk_reply {
	uint32_t id;        /**< request id (Handle, DNS), 0 for REST */
	uint32_t code;      /**< Handle rcode, HTTP status or DNS rcode */
	uint32_t seq;       /**< UDP sequence number (Handle) */
	uint32_t npackets;  /**< UDP datagrams of the whole message (Handle), else 1 */
	bool is_request;    /**< rcode 0 and a resolution opcode: an echoed request */
	bool has_id;        /**< id is meaningful */
	bool bad;           /**< a whole frame whose content is malformed */
	const uint8_t *msg; /**< the Handle message (envelope onwards) when whole, else NULL */
	size_t msg_len;
} bk_reply_t;

/**
 * \brief Parse one datagram (UDP protocols).
 * \retval 0 ok, -1 malformed
 */
int bk_parse_dgram(bk_proto_t p, const uint8_t *buf, size_t len, bk_reply_t *r);
/**
 * \brief Find one whole reply frame at the start of a stream buffer.
 * \retval >0 frame length consumed (reply in \p r), 0 need more bytes, -1 malformed stream
 */
long bk_parse_stream(bk_proto_t p, const uint8_t *buf, size_t len, bk_reply_t *r);
/** \brief Name of a reply code for printing ("SUCCESS", "HTTP_200", "NXDOMAIN"). */
const char *bk_code_name(bk_proto_t p, uint32_t code, bool echo, char *buf, size_t cap);

/* ---- write modes (write.c) --------------------------------------------------------------- */

struct hdl_auth;
struct hdl_arena;

/** What a write run sends: one admin request per key, authenticated as asked. */
typedef struct bk_write {
	uint32_t opcode;              /**< HDL_OC_CREATE_HANDLE, _MODIFY_VALUE or _DELETE_HANDLE */
	bool overwrite;               /**< create: OVRW (re-creating a handle succeeds) */
	bool login;                   /**< IDIS login (OC 2001) once per connection */
	bool per_request;             /**< answer the challenge of every request (no login) */
	const struct hdl_auth *auth;  /**< credentials, or NULL (an open server) */
	bool rest;                    /**< the REST API (PUT / DELETE /api/handles/KEY) */
	const char *host;             /**< REST: the Host header */
	const char *basic;            /**< REST: "Basic ..." from --auth and --seckey-file */
	size_t value_size;            /**< bytes of the URL value's data (at least the URL) */
	uint64_t *next_key;           /**< create / delete: each key once, in order (atomic) */
} bk_write_t;

/** Where a connection's IDIS login stands. */
enum bk_login_state {
	BK_LOGIN_NONE = 0, /**< no login (resolution, or per-request auth) */
	BK_LOGIN_SENT,     /**< OC 2001 sent, waiting for the challenge */
	BK_LOGIN_ANSWERED, /**< OC 200 sent, waiting for the result */
	BK_LOGIN_READY,    /**< logged in: requests may go */
};

/**
 * \brief Parse "create", "modify" or "delete" into \p opcode.
 * \retval 0 ok, -1 unknown
 */
int bk_write_op_parse(const char *s, uint32_t *opcode);
/** \brief Name of a write opcode for the report ("create" ...). */
const char *bk_write_op_name(uint32_t opcode);
/**
 * \brief The admin request for \p key (RequestId \p id, SessionId \p session): create gives the
 *        handle one URL value at index 1, modify replaces index 1, delete deletes the handle.
 *        REST (w->rest): `PUT /api/handles/KEY` with the value as JSON (create:
 *        `?overwrite=false` unless --overwrite; modify: `?index=1`) or `DELETE`, with Basic
 *        credentials.
 * \return bytes written, 0 when it does not fit \p cap
 */
size_t bk_write_build(const bk_write_t *w, const char *key, size_t klen, uint32_t id,
                      uint32_t session, uint8_t *out, size_t cap);
/**
 * \brief The IDIS login (OC 2001: identity, client-chosen \p session, 2.10, REC | RD, no
 *        credential section).
 * \return bytes written, 0 when it does not fit
 */
size_t bk_login_build(const bk_write_t *w, uint32_t session, uint32_t id, uint8_t *out,
                      size_t cap);
/**
 * \brief Answer the RC 402 challenge in \p msg (a whole frame) with OC 200 under the same
 *        RequestId and the challenge's SessionId.
 * \return bytes written to \p out, 0 when \p msg is no usable challenge, there are no
 *         credentials, or it does not fit
 */
size_t bk_write_answer(const bk_write_t *w, struct hdl_arena *a, const uint8_t *msg, size_t len,
                       uint8_t *out, size_t cap);

/** Write-mode options as given on the command line (main.c fills it, write.c checks it). */
typedef struct bk_write_args {
	const char *op;           /**< --op: create / modify / delete, NULL = resolution */
	const char *auth;         /**< --auth INDEX:HANDLE */
	const char *seckey_file;  /**< --seckey-file */
	const char *privkey_file; /**< --privkey */
	const char *pass_file;    /**< --passphrase-file */
	const char *seckey_alg;   /**< --seckey-alg */
	bool per_request;         /**< --auth-per-request */
	bool overwrite;           /**< --overwrite */
	unsigned long long value_size; /**< --value-size */
} bk_write_args_t;

/** A write run's own state (credentials, the key counter); see bk_write_setup(). */
typedef struct bk_write_ctx bk_write_ctx_t;

struct bk_conf;
struct bk_result;

/**
 * \brief Check the write options against the run (TCP, no --new-conn), load the credentials and
 *        point c->write at the write description. Nothing happens without --op.
 * \retval 0 ok (\p *out NULL without --op), -1 usage error, -2 a credential file could not be
 *         read or decoded (message in \p err)
 */
int bk_write_setup(const bk_write_args_t *a, struct bk_conf *c, bk_write_ctx_t **out, char *err,
                   size_t errlen);
/** \brief Free what bk_write_setup() made (NULL is fine). */
void bk_write_free(bk_write_ctx_t *x);
/** \brief The write lines of the text report: durable acks/s and the authentication counters. */
void bk_write_print_text(FILE *f, const bk_write_t *w, const struct bk_result *r);
/** \brief The "write" member of the JSON report (with a leading comma). */
void bk_write_print_json(FILE *f, const bk_write_t *w, const struct bk_result *r);

/* ---- engine (engine.c) ------------------------------------------------------------------- */

#define BK_MAX_CODES 1024u

/** Options of one run. */
typedef struct bk_conf {
	bk_proto_t proto;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const bk_keys_t *keys;
	const bk_tmpl_t *tmpl;
	double rate;      /**< requests/s over all threads; 0 = closed loop */
	double duration;  /**< seconds of measurement */
	double warmup;    /**< seconds before measurement */
	uint64_t max_count; /**< requests in the measured phase, 0 = no limit */
	unsigned threads;
	unsigned conns;    /**< sockets / connections over all threads */
	unsigned depth;    /**< pipelining depth per stream connection */
	unsigned inflight; /**< outstanding requests over all threads */
	bool new_conn;     /**< one stream connection per request (connect, request, answer, close):
	                        HTTP requests say "Connection: close"; the connection is closed
	                        after the answer, with a FIN when the server closed first (as a
	                        client that read to EOF), else with a RST (no TIME_WAIT here) */
	double zipf_s;     /**< 0 = uniform */
	double miss_pct;   /**< share of non-existent keys, percent */
	double timeout_ms;
	bool echo_ok;      /**< count echoed requests as replies */
	bool verify;       /**< fully decode Handle replies with hdl_msg_decode */
	uint64_t seed;
	int server_pid;    /**< 0 = none */
	const bk_write_t *write; /**< write mode (TCP or REST), NULL = resolution */
	struct ssl_ctx_st *tls;  /**< stream connections run over TLS with this client context
	                              (--proto https, --tls); NULL = plain. A reconnection offers the
	                              connection's last session (resumption). */
} bk_conf_t;

/** Results of one run. */
typedef struct bk_result {
	uint64_t sent;        /**< requests sent in the measured phase */
	uint64_t completed;   /**< replies received for them */
	uint64_t lost;        /**< timed out, or dropped with a broken connection */
	uint64_t late;        /**< replies that came after their timeout */
	uint64_t malformed;   /**< replies that did not parse or matched nothing */
	uint64_t conn_errors; /**< failed connects, resets, unexpected closes */
	uint64_t reconnects;  /**< stream connections (re)opened after the first */
	uint64_t unsent;      /**< open loop: requests due but never sent (backlog at the end) */
	uint64_t codes[BK_MAX_CODES]; /**< replies per code */
	uint64_t codes_other;         /**< replies with codes >= BK_MAX_CODES */
	uint64_t echoes;              /**< echoed requests counted as replies (--echo-ok) */
	bh_hist_t *hist;              /**< latency, ns, from the intended send time */
	double elapsed;               /**< seconds of the measured phase */
	double offered;               /**< requests/s offered (open loop), 0 closed loop */
	double srv_utime, srv_stime;  /**< server CPU seconds over the measured phase */
	long srv_rss_anon_kb;         /**< server RssAnon at the end, -1 unknown */
	long srv_rss_file_kb;         /**< server RssFile at the end, -1 unknown */
	double cli_cpu;               /**< this process's CPU seconds over the run */
	uint64_t req_bytes, rep_bytes; /**< bytes sent / received (measured phase) */
	uint64_t challenges;           /**< write modes: RC 402 challenges answered per request */
	uint64_t logins;               /**< write modes: IDIS logins that succeeded */
	uint64_t auth_failures;        /**< write modes: logins refused or unanswerable challenges */
	uint64_t tls_handshakes;       /**< TLS handshakes completed */
	uint64_t tls_resumed;          /**< of which resumed a session */
} bk_result_t;

/**
 * \brief Run one load test with \p c and fill \p res (res->hist must point to a histogram).
 * \retval 0 ran, -1 could not start (message in \p err)
 */
int bk_run(const bk_conf_t *c, bk_result_t *res, char *err, size_t errlen);
/** \brief Monotonic clock in nanoseconds. */
uint64_t bk_now_ns(void);
/** \brief utime + stime of \p pid in seconds (all threads); \retval 0 ok, -1 unreadable. */
int bk_proc_cpu(int pid, double *utime, double *stime);
/** \brief RssAnon / RssFile of \p pid in kB, -1 when unknown. */
void bk_proc_rss(int pid, long *anon_kb, long *file_kb);

#endif
