/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Node configuration: an INI-like file of `key = value` lines (`#` comments, optional
 *        double quotes, list keys repeated once per element) checked against a static schema
 *        (type, range, default, reloadable flag). Errors read `file:line: key: reason`.
 */
#ifndef HDL_NODE_CONF_CONF_H
#define HDL_NODE_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONF_MAX_LIST 256 /**< elements of one list key */
#define CONF_MAX_KEYS 256 /**< rows of the schema at most */

/** Key types of the schema. */
typedef enum conf_type {
	CONF_STR,   /**< one string */
	CONF_UINT,  /**< unsigned integer in [min, max] */
	CONF_SIZE,  /**< byte size with optional k/m/g/t suffix (powers of 1024), in [min, max] */
	CONF_BOOL,  /**< yes/no, true/false, on/off, 1/0 */
	CONF_LEVEL, /**< log level name */
	CONF_ADDRS, /**< list of ADDR:PORT ([v6]:PORT for IPv6) */
	CONF_LIST,  /**< list of strings */
	CONF_NETS,  /**< list of networks ADDR/LEN (several per line, space/comma separated; none) */
} conf_type_t;

/** One schema row. */
typedef struct conf_key {
	const char *name;
	conf_type_t type;
	uint64_t min, max;    /**< CONF_UINT / CONF_SIZE range */
	const char *dflt;     /**< default as text (lists: one element or NULL) */
	bool reloadable;      /**< SIGHUP applies it live; otherwise a restart is needed */
	size_t offset;        /**< field in conf_t */
	size_t count_offset;  /**< list keys: the unsigned count field in conf_t */
	const char *help;     /**< one line for the sample file / -h */
	/** optional extra check of a value (a list key with one skips the prefix check);
	 *  \retval HDL_EOK, HDL_ECONF with the reason in \p err */
	int (*check)(const char *value, char *err, size_t errlen);
} conf_key_t;

/** Parsed configuration. Strings and lists are heap-owned; release with conf_free(). */
typedef struct conf {
	char **listen;  /**< UDP+TCP addresses */
	unsigned n_listen;
	char **http;    /**< HTTP addresses */
	unsigned n_http;
	char **home;    /**< prefixes homed at start */
	unsigned n_home;
	char *db;       /**< LMDB directory */
	char *pidfile;  /**< empty = none */
	unsigned workers; /**< 0 = number of online CPUs */
	bool case_sensitive;
	uint64_t map_size;
	uint32_t max_message_len;
	uint32_t max_values;
	uint32_t max_connections;
	/* stream connections (node/server/conn.c) */
	uint32_t max_connections_per_source;
	uint32_t conn_source_prefix_v4;
	uint32_t conn_source_prefix_v6;
	uint32_t conn_buffer_budget;
	char *tcp_close_after_answer; /**< "auto", "yes" or "no" */
	uint32_t tcp_idle_timeout_ms;
	uint32_t tcp_frame_timeout_ms;
	uint32_t tcp_buffer_max;
	uint32_t http_max_body;
	uint32_t cache_size; /**< response cache bytes, shared out among the workers; 0 = off */
	/* UDP answers, reassembly and response-rate limiting (node/server/udp.c, rrl.c) */
	bool udp_gso;                      /**< UDP segmentation offload for multi-datagram answers */
	uint32_t udp_answer_max_datagrams; /**< datagrams of one UDP answer at most */
	uint32_t udp_answer_max_ratio;     /**< UDP answer bytes <= this x request bytes; 0 = off */
	uint32_t udp_reasm_slots;          /**< multi-packet UDP requests in reassembly per worker */
	uint32_t udp_rrl_rate;             /**< answers per second per source prefix; 0 = off */
	uint32_t udp_rrl_burst;            /**< token bucket depth; 0 = the rate */
	uint32_t udp_rrl_slip;             /**< every Nth limited request gets a TCP redirect */
	uint32_t udp_rrl_table_size;       /**< RRL buckets (shared by all workers) */
	char **udp_rrl_whitelist;          /**< networks never limited (ADDR/LEN, several a line) */
	unsigned n_udp_rrl_whitelist;
	/* resolver cache + in-flight table (node/resolver), control socket (node/server/control.c) */
	uint32_t resolver_cache_size;       /**< bytes of the shared cache of upstream answers */
	uint32_t resolver_min_ttl;          /**< floor of a cached answer's lifetime, seconds */
	uint32_t resolver_max_ttl;          /**< cap of a cached answer's lifetime, seconds */
	uint32_t resolver_negative_ttl;     /**< lifetime of not-found answers; 0 = not cached */
	uint32_t resolver_stale_max;        /**< serve-stale window past expiry, seconds */
	uint32_t resolver_prefetch_pct;     /**< prefetch in this last part of a TTL; 0 = off */
	uint32_t resolver_inflight_max;     /**< upstream queries in flight, node-wide */
	uint32_t resolver_inflight_waiters; /**< requests waiting on one in-flight query */
	/* the resolution path (node/resolver/resolve.h) */
	uint32_t resolver_stale_budget_ms;  /**< wait for upstream before a stale answer, ms */
	uint32_t resolver_stale_refresh_ms; /**< no refresh this long after a failed one, ms */
	uint32_t resolver_hold_slots;       /**< failed refreshes remembered, node-wide */
	uint32_t resolver_max_referrals;    /**< referrals followed per request */
	uint32_t resolver_max_recursion;    /**< RecursionCount refused with RC 6 */
	bool resolver_site_plaintext;       /**< HS_SITE servers without an upstream line asked */
	char *control_socket;               /**< Unix socket path; empty = no control socket */
	char *control_socket_mode;          /**< octal permissions of the socket file */
	uint32_t control_max_clients;       /**< control connections at once */
	uint32_t control_max_line;          /**< longest request line */
	uint32_t control_timeout_ms;        /**< a control connection's whole life */
	uint32_t control_dump_max;          /**< entries one `cache dump` lists at most */
	int log_level;
	uint32_t site_serial;
	/* logs (node/common/log.h, node/server/qlog.h) */
	char *log_target;            /**< "auto", "stderr" or "journal" */
	char *query_log;             /**< "off", "log" or an absolute file path */
	uint32_t query_log_sample;   /**< one request in N is logged */
	uint32_t query_log_rate;     /**< lines per second per worker at most */
	uint32_t query_log_max_size; /**< bytes of FILE before it becomes FILE.1 */
	/* write path (node/server/writer.h) */
	uint32_t write_queue_max;       /**< admin requests waiting for the writer */
	uint32_t write_batch_max;       /**< requests per group commit */
	uint32_t write_batch_wait_us;   /**< wait after a batch's first request */
	char *write_sync;               /**< "full" or "periodic" */
	uint32_t write_sync_interval_ms; /**< periodic: fsync period */
	uint32_t write_max_record;      /**< encoded values of one handle at most */
	char **server_admin;            /**< "INDEX:HANDLE" identities with full access */
	unsigned n_server_admin;
	uint32_t audit_retention_days;  /**< 0 = keep the audit trail forever */
	uint32_t audit_prune_step;      /**< audit entries removed per step */
	uint32_t authz_max_depth;       /**< HS_VLIST nesting followed */
	uint32_t authz_max_groups;      /**< group values looked up per authorization */
	/* administration: authentication and requests that wait (node/server/admin.c) */
	uint32_t auth_timeout_ms;
	uint32_t auth_pending_max;
	uint32_t auth_pending_bytes;
	uint32_t auth_pending_per_source;
	uint32_t pending_max;
	uint32_t pending_per_source;
	bool allow_list_handles;
	/* TLS (node/server/tls.h) and the REST admin API (node/server/rest.h) */
	char *tls_cert;      /**< PEM chain; empty = no TLS */
	char *tls_key;       /**< its private key */
	char *tls_client_ca; /**< client certificates on tls_listen; empty = none */
	char **tls_listen;   /**< TLS stream addresses */
	unsigned n_tls_listen;
	bool http_tls;         /**< port unification on the http listeners */
	char *tls_min_version; /**< "1.2" or "1.3" */
	char *tls_ciphers;     /**< TLS 1.2 suites */
	uint32_t tls_handshake_timeout_ms;
	uint32_t tls_session_cache; /**< sessions cached per context; 0 = none */
	uint32_t tls_session_lifetime_s;
	bool http_auth_plain_loopback; /**< credentials over plain HTTP from loopback */
	uint32_t rest_sessions_max;
	uint32_t rest_sessions_per_source;
	uint32_t rest_session_idle_ms;
	uint32_t rest_session_unauth_ms;
	/* upstream servers and forwarding (node/resolver/upconf.h, docs/delegation.md) */
	char **upstream;   /**< "NAME HOST:PORT [options]" lines */
	unsigned n_upstream;
	char **forward;    /**< "PREFIX NAME [NAME...]" lines */
	unsigned n_forward;
	char **dns_server; /**< resolvers for upstream host names; none = /etc/resolv.conf */
	unsigned n_dns_server;
	uint32_t upstream_timeout_ms;
	uint32_t upstream_try_timeout_ms;
	uint32_t upstream_connect_timeout_ms;
	uint32_t upstream_idle_timeout_ms;
	uint32_t upstream_max_conns_per_server;
	uint32_t upstream_max_conns;
	uint32_t upstream_max_queries;
	uint32_t upstream_max_servers;
	uint32_t upstream_max_reply;
	uint32_t upstream_fail_threshold;
	uint32_t upstream_backoff_max_ms;
	uint32_t upstream_udp_retry_ms;
	uint32_t dns_cache_size;
	/* metrics, status page and usage statistics (node/server/metrics.h, web.h, stats.h) */
	char *metrics_listen;             /**< Prometheus listener ADDR:PORT; empty = off */
	bool metrics_allow_remote;        /**< metrics_listen may be a non-loopback address */
	uint32_t metrics_max_connections; /**< scrape connections open at once */
	uint32_t metrics_timeout_ms;      /**< a scrape's request and answer must take no longer */
	bool web_status; /**< GET / (status page) and /status.json on the HTTP listener */
	bool stats;      /**< count usage statistics (per prefix and day) */
	uint32_t stats_flush_interval_s; /**< seconds between statistics flushes into the store */
	uint32_t stats_max_prefixes;   /**< prefixes tracked by name per worker buffer and flush */
	uint32_t stats_top_entries;    /**< identifiers in each top list */
	uint32_t stats_retention_days; /**< statistics records kept this long (0 = forever) */
	uint32_t stats_audit_batch;    /**< audit entries counted per flush at most */
	/* metadata templates and the SNMS API (node/store/template.h, node/server/snms.h) */
	uint32_t template_max_items;      /**< items of one template */
	uint32_t template_pattern_max;    /**< bytes of one pattern constraint */
	uint32_t template_value_max;      /**< bytes of a value checked against a template item */
	uint32_t template_max_per_prefix; /**< templates (versions) of one prefix */
	uint32_t template_cache_max;      /**< compiled templates the writer keeps */
	char **snms_user;                 /**< "NAME PASSWORD-HASH INDEX:HANDLE" lines */
	unsigned n_snms_user;
	uint32_t snms_token_ttl_s;        /**< lifetime of an SNMS bearer token */
	uint32_t snms_token_max;          /**< tokens node-wide */
	uint32_t snms_tokens_per_user;    /**< tokens of one user (the oldest goes) */
	uint32_t snms_batch_max;          /**< items of one SNMS batch request */
	uint32_t snms_max_body;           /**< bytes of an SNMS request body parsed */
	uint32_t snms_login_rate;         /**< logins per second node-wide (token bucket) */
	uint32_t snms_login_burst;        /**< the bucket's depth */
	/* bookkeeping: list keys set by the file (first occurrence replaces the default) */
	uint8_t set_[CONF_MAX_KEYS]; /**< 1 for the list keys set by the file (by schema row) */
} conf_t;

/** \brief The schema table. \param[out] n rows */
const conf_key_t *conf_schema(size_t *n);
/** \brief Schema row of \p name, or NULL. */
const conf_key_t *conf_key_find(const char *name);

/** \brief Fill \p c with the defaults. \retval HDL_EOK, HDL_ENOMEM */
int conf_init(conf_t *c);
void conf_free(conf_t *c);

/**
 * \brief Set one key from text. List keys append (the first set of a list key replaces its
 *        default). \param err reason without the key ("value 0 out of range 1..2048").
 * \retval HDL_EOK, HDL_ECONF (unknown key, bad value), HDL_ENOMEM
 */
int conf_set(conf_t *c, const char *key, const char *value, char *err, size_t errlen);
/** \brief Empty a list key (command-line overrides). */
void conf_clear_list(conf_t *c, const char *key);

/**
 * \brief Parse the file \p path onto \p c (already initialised with conf_init()).
 * \param err "path:line: key: reason" on failure
 * \retval HDL_EOK, HDL_ECONF, HDL_EIO (cannot read the file), HDL_ENOMEM
 */
int conf_load(conf_t *c, const char *path, char *err, size_t errlen);
/** \brief Parse a config from memory (tests); \p name is used in messages. */
int conf_load_buf(conf_t *c, const char *name, const char *text, size_t len, char *err,
                  size_t errlen);

/** A command-line override: key and value as in the file. */
typedef struct conf_override {
	const char *key;
	const char *value;
} conf_override_t;

/**
 * \brief Defaults, then the file \p path (NULL = none), then \p ov in order; an address list given in
 *        \p ov replaces the file's list (home prefixes are added). Then conf_validate().
 *        On failure \p c is freed.
 * \param err "file:line: key: reason", "--key: reason" or the validation message
 * \retval HDL_EOK, HDL_ECONF, HDL_EIO, HDL_ENOMEM
 */
int conf_build(conf_t *c, const char *path, const conf_override_t *ov, size_t n_ov, char *err,
               size_t errlen);

/** \brief Cross-key checks (at least one listen address, db set). \retval HDL_EOK, HDL_ECONF */
int conf_validate(const conf_t *c, char *err, size_t errlen);

/** Bytes of a Unix socket path, with its terminating NUL (sun_path). */
#define CONF_UNIX_PATH_MAX 108u

/** \brief Permission bits of an octal mode string ("0660", "600"): 0..0777, -1 if malformed. */
int conf_socket_mode(const char *s);

/**
 * \brief Parse "ADDR:PORT" or "[IPv6]:PORT" (numeric addresses, port 1..65535).
 * \retval HDL_EOK, HDL_EINVAL
 */
int conf_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/**
 * \brief Parse one network "ADDR/LEN" (numeric IPv4 with LEN 0..32, or IPv6 with LEN 0..128) or
 *        a bare address (LEN = 32 or 128). \p addr receives the address with the bits past LEN
 *        cleared (4 or 16 bytes, network order) and \p family AF_INET or AF_INET6.
 * \retval HDL_EOK, HDL_EINVAL
 */
int conf_parse_net(const char *s, int *family, uint8_t addr[16], unsigned *len);

/**
 * \brief Call \p fn for each network of a CONF_NETS element (networks separated by spaces or
 *        commas; "none" holds none). Stops at the first unparsable one.
 * \return the number of networks, or -1 when one does not parse (\p fn not called for it)
 */
int conf_each_net(const char *s, void (*fn)(void *arg, int family, const uint8_t addr[16],
                                             unsigned len),
                  void *arg);

/** \brief True when key \p k has the same value in \p a and \p b (lists: same elements, order). */
bool conf_key_equal(const conf_t *a, const conf_t *b, const conf_key_t *k);

/**
 * \brief Names of keys that differ between \p a and \p b and are not reloadable, written
 *        comma-separated into \p out (empty when none).
 */
void conf_restart_keys(const conf_t *a, const conf_t *b, char *out, size_t cap);

#endif /* HDL_NODE_CONF_CONF_H */
