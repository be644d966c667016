/* SPDX-License-Identifier: Apache-2.0 */
#include "node/conf/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdl/error.h"
#include "hdl/msg.h"
#include "node/common/log.h"
#include "node/resolver/upconf.h"
#include "node/store/stats.h"
#include "node/server/snms_auth.h"
#include "node/server/qlog.h"

#define OFF(f) offsetof(conf_t, f)
#define KIB 1024ull
#define MIB (1024ull * 1024ull)
#define GIB (1024ull * 1024ull * 1024ull)
#define TIB (1024ull * GIB)

static int admin_check(const char *v, char *err, size_t errlen);
static int addr_check(const char *v, char *err, size_t errlen);
static int snms_user_check(const char *v, char *err, size_t errlen);

static int log_target_check(const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "auto") == 0 || strcmp(v, "stderr") == 0 || strcmp(v, "journal") == 0)
		return HDL_EOK;
	snprintf(err, errlen, "'%s' is not auto, stderr or journal", v);
	return HDL_ECONF;
}

/* rows leave the optional check callback out */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
/* clang-format off */
static const conf_key_t schema[] = {
	{"listen", CONF_ADDRS, 0, 0, "127.0.0.1:2641", false, OFF(listen), OFF(n_listen),
	 "UDP+TCP address ADDR:PORT, [IPv6]:PORT for IPv6; repeat for several"},
	{"http", CONF_ADDRS, 0, 0, "127.0.0.1:8000", false, OFF(http), OFF(n_http),
	 "HTTP address (native tunnel, REST API, proxy); repeat for several"},
	{"db", CONF_STR, 0, 0, "/var/lib/idnode/db", false, OFF(db), 0,
	 "LMDB directory (created if missing)"},
	{"workers", CONF_UINT, 0, 1024, "0", false, OFF(workers), 0,
	 "worker threads; 0 = number of online CPUs"},
	{"home", CONF_LIST, 0, 0, NULL, true, OFF(home), OFF(n_home),
	 "prefix homed on this node (e.g. 88.100.1); repeat for several; one no longer listed "
	 "is unhomed at start or reload"},
	{"case_sensitive", CONF_BOOL, 0, 0, "no", false, OFF(case_sensitive), 0,
	 "handle suffixes compare case-sensitively (prefixes always fold)"},
	{"map_size", CONF_SIZE, 1 * MIB, 64 * TIB, "1g", false, OFF(map_size), 0,
	 "initial LMDB map size (k/m/g/t suffixes); grown on demand"},
	{"max_message_len", CONF_UINT, 1024, HDL_MAX_MESSAGE_LEN, "262144", true,
	 OFF(max_message_len), 0, "largest request accepted (bytes after the envelope)"},
	{"max_values", CONF_UINT, 1, HDL_MAX_VALUES, "2048", true, OFF(max_values), 0,
	 "most values a handle may have in an answer"},
	{"max_connections", CONF_UINT, 1, 1000000, "16384", true, OFF(max_connections), 0,
	 "open TCP and HTTP connections of the whole node (all workers and listeners)"},
	{"max_connections_per_source", CONF_UINT, 1, 1000000, "256", true,
	 OFF(max_connections_per_source), 0,
	 "open TCP and HTTP connections from one source address (or prefix) node-wide"},
	{"conn_source_prefix_v4", CONF_UINT, 1, 32, "32", true, OFF(conn_source_prefix_v4), 0,
	 "IPv4 prefix length that makes one source for max_connections_per_source"},
	{"conn_source_prefix_v6", CONF_UINT, 1, 128, "64", true, OFF(conn_source_prefix_v6), 0,
	 "IPv6 prefix length that makes one source for max_connections_per_source"},
	{"conn_buffer_budget", CONF_SIZE, 1 * MIB, 3 * GIB, "256m", true, OFF(conn_buffer_budget), 0,
	 "input + output buffers of all TCP and HTTP connections of the node"},
	{"tcp_close_after_answer", CONF_STR, 0, 0, "auto", true, OFF(tcp_close_after_answer), 0,
	 "auto, yes or no: close a TCP connection once its answer is written"},
	{"tcp_idle_timeout_ms", CONF_UINT, 100, 3600000, "5000", true, OFF(tcp_idle_timeout_ms), 0,
	 "close an idle TCP/HTTP connection after this many milliseconds"},
	{"tcp_frame_timeout_ms", CONF_UINT, 100, 3600000, "10000", true, OFF(tcp_frame_timeout_ms),
	 0, "close a TCP or HTTP connection whose request takes longer than this to arrive"},
	{"tcp_buffer_max", CONF_SIZE, 4 * KIB, 64 * MIB, "1m", true, OFF(tcp_buffer_max), 0,
	 "per-connection output buffer (TCP and HTTP); reading pauses while it is fuller"},
	{"http_max_body", CONF_SIZE, 1 * KIB, 16 * MIB, "1m", true, OFF(http_max_body), 0,
	 "largest HTTP request body"},
	{"cache_size", CONF_SIZE, 0, 3 * GIB, "64m", true, OFF(cache_size), 0,
	 "response cache for UDP/TCP resolutions, split among the workers (0 = off)"},
	{"udp_gso", CONF_BOOL, 0, 0, "yes", true, OFF(udp_gso), 0,
	 "send multi-datagram UDP answers with segmentation offload where the kernel has it"},
	{"udp_answer_max_datagrams", CONF_UINT, 1, HDL_UDP_MAX_PACKETS, "8", true,
	 OFF(udp_answer_max_datagrams), 0,
	 "most datagrams of one UDP answer; a larger answer is a redirect to TCP"},
	{"udp_answer_max_ratio", CONF_UINT, 0, 1000, "10", true, OFF(udp_answer_max_ratio), 0,
	 "a UDP answer's bytes at most this many times the request's (0 = no ratio cap)"},
	{"udp_reasm_slots", CONF_UINT, 1, 1024, "16", false, OFF(udp_reasm_slots), 0,
	 "multi-packet UDP requests being reassembled at once, per worker"},
	{"udp_rrl_rate", CONF_UINT, 0, 10000000, "1000", true, OFF(udp_rrl_rate), 0,
	 "UDP answers per second per source prefix (/24, /56); 0 = no rate limiting"},
	{"udp_rrl_burst", CONF_UINT, 0, 10000000, "2000", true, OFF(udp_rrl_burst), 0,
	 "answers a prefix may get at once above the rate (token bucket depth; 0 = the rate)"},
	{"udp_rrl_slip", CONF_UINT, 0, 100, "2", true, OFF(udp_rrl_slip), 0,
	 "every Nth rate-limited request gets a short redirect to TCP, the rest no answer"},
	{"udp_rrl_table_size", CONF_UINT, 1024, 16777216, "65536", false, OFF(udp_rrl_table_size),
	 0, "rate-limit buckets (source prefixes tracked at once), shared by the workers"},
	{"udp_rrl_whitelist", CONF_NETS, 0, 0, "127.0.0.0/8 ::1/128", false,
	 OFF(udp_rrl_whitelist), OFF(n_udp_rrl_whitelist),
	 "networks never rate-limited (ADDR/LEN, several per line; none = no network)"},
	{"resolver_cache_size", CONF_SIZE, 0, 3 * GIB, "64m", true, OFF(resolver_cache_size), 0,
	 "cache of answers resolved upstream, shared by all workers (0 = off)"},
	{"resolver_min_ttl", CONF_UINT, 0, 604800, "0", true, OFF(resolver_min_ttl), 0,
	 "shortest time an upstream answer is cached, seconds"},
	{"resolver_max_ttl", CONF_UINT, 1, 604800, "86400", true, OFF(resolver_max_ttl), 0,
	 "longest time an upstream answer is cached, seconds"},
	{"resolver_negative_ttl", CONF_UINT, 0, 86400, "60", true, OFF(resolver_negative_ttl), 0,
	 "time a not-found upstream answer is cached, seconds (0 = not cached)"},
	{"resolver_stale_max", CONF_UINT, 0, 604800, "86400", true, OFF(resolver_stale_max), 0,
	 "how long past its TTL an answer may be served when upstream fails, seconds"},
	{"resolver_prefetch_pct", CONF_UINT, 0, 50, "10", true, OFF(resolver_prefetch_pct), 0,
	 "refresh a cached answer hit in this last part of its TTL, percent (0 = off)"},
	{"resolver_inflight_max", CONF_UINT, 1, 1000000, "4096", true, OFF(resolver_inflight_max),
	 0, "distinct upstream queries in flight at once, node-wide"},
	{"resolver_inflight_waiters", CONF_UINT, 1, 1000000, "1024", true,
	 OFF(resolver_inflight_waiters), 0, "requests waiting on one in-flight upstream query"},
	/* the resolution path (node/resolver/resolve.h, docs/delegation.md) */
	{"resolver_stale_budget_ms", CONF_UINT, 0, 600000, "1800", true,
	 OFF(resolver_stale_budget_ms), 0,
	 "a request with a stale cached answer waits this long for upstream, then gets it"},
	{"resolver_stale_refresh_ms", CONF_UINT, 0, 3600000, "30000", true,
	 OFF(resolver_stale_refresh_ms), 0,
	 "after a failed refresh the stale answer is served without asking upstream this long"},
	{"resolver_hold_slots", CONF_UINT, 1024, 16777216, "65536", true, OFF(resolver_hold_slots),
	 0, "keys whose failed refresh is remembered (resolver_stale_refresh_ms), node-wide"},
	{"resolver_max_referrals", CONF_UINT, 1, 64, "8", true, OFF(resolver_max_referrals), 0,
	 "referrals (RC 302/303) followed for one request; more: RC 6"},
	{"resolver_max_recursion", CONF_UINT, 1, 255, "10", true, OFF(resolver_max_recursion), 0,
	 "a request whose RecursionCount is this high is refused with RC 6"},
	{"resolver_site_plaintext", CONF_BOOL, 0, 0, "yes", true, OFF(resolver_site_plaintext), 0,
	 "ask HS_SITE servers that match no upstream line over the TCP/UDP/HTTP they list"},
	{"control_socket", CONF_STR, 0, 0, "", false, OFF(control_socket), 0,
	 "Unix socket for `idnode cache ...` and `status` (empty = none)"},
	{"control_socket_mode", CONF_STR, 0, 0, "0660", false, OFF(control_socket_mode), 0,
	 "permissions of the control socket, octal"},
	{"control_max_clients", CONF_UINT, 1, 1024, "8", false, OFF(control_max_clients), 0,
	 "control connections at once"},
	{"control_max_line", CONF_UINT, 64, 65536, "1024", false, OFF(control_max_line), 0,
	 "longest control request line, bytes"},
	{"control_timeout_ms", CONF_UINT, 100, 3600000, "5000", false, OFF(control_timeout_ms), 0,
	 "a control connection is closed this long after it opened, milliseconds"},
	{"control_dump_max", CONF_UINT, 1, 1000000, "10000", false, OFF(control_dump_max), 0,
	 "entries one `cache dump` lists at most"},
	{"log_level", CONF_LEVEL, 0, 0, "info", true, OFF(log_level), 0,
	 "err, warn, notice, info or debug"},
	{"site_serial", CONF_UINT, 0, 65534, "1", false, OFF(site_serial), 0,
	 "serial number of this node's HS_SITE record"},
	{"pidfile", CONF_STR, 0, 0, "", false, OFF(pidfile), 0,
	 "write the process id here (empty = none)"},
	/* logs: systemd journal, query log (node/common/log.h, node/server/qlog.h) */
	{"log_target", CONF_STR, 0, 0, "auto", true, OFF(log_target), 0,
	 "auto (the journal when stderr is connected to it), stderr or journal", log_target_check},
	{"query_log", CONF_STR, 0, 0, "off", true, OFF(query_log), 0,
	 "off, log (through the node log, info level) or an absolute FILE path", qlog_check},
	{"query_log_sample", CONF_UINT, 1, 1000000, "1", true, OFF(query_log_sample), 0,
	 "log one request in this many (per worker)"},
	{"query_log_rate", CONF_UINT, 1, 1000000, "1000", true, OFF(query_log_rate), 0,
	 "query log lines per second per worker at most; the rest are counted"},
	{"query_log_max_size", CONF_SIZE, 64 * KIB, 3 * GIB, "64m", true, OFF(query_log_max_size),
	 0, "query log FILE is renamed FILE.1 at this size (one old file kept)"},
	/* write path: node/server/writer.h, docs/registration.md */
	{"write_queue_max", CONF_UINT, 1, 1000000, "10000", false, OFF(write_queue_max), 0,
	 "admin requests waiting for the writer at most; beyond it RC 3 (server busy)"},
	{"write_batch_max", CONF_UINT, 1, 100000, "512", false, OFF(write_batch_max), 0,
	 "admin requests committed together at most (one group commit)"},
	{"write_batch_wait_us", CONF_UINT, 0, 1000000, "0", false, OFF(write_batch_wait_us), 0,
	 "wait this long after a batch's first request for more (0 = take what is queued)"},
	{"write_sync", CONF_STR, 0, 0, "full", false, OFF(write_sync), 0,
	 "full: fsync before answering; periodic: fsync every write_sync_interval_ms"},
	{"write_sync_interval_ms", CONF_UINT, 10, 60000, "1000", false,
	 OFF(write_sync_interval_ms), 0, "periodic sync: the most time an answered change may be lost"},
	{"write_max_record", CONF_SIZE, 1 * KIB, HDL_MAX_MESSAGE_LEN - 4096, "252k", false,
	 OFF(write_max_record), 0, "largest handle record a change may produce (encoded values)"},
	{"server_admin", CONF_LIST, 0, 0, NULL, true, OFF(server_admin), OFF(n_server_admin),
	 "INDEX:HANDLE of a server admin (full access, home/unhome); repeat for several",
	 admin_check},
	{"audit_retention_days", CONF_UINT, 0, 36500, "183", false, OFF(audit_retention_days), 0,
	 "keep audit entries this long (0 = forever; 6 months is the legal minimum in China)"},
	{"audit_prune_step", CONF_UINT, 1, 100000, "1000", false, OFF(audit_prune_step), 0,
	 "audit entries removed per retention step (one step per second at most)"},
	{"authz_max_depth", CONF_UINT, 1, 64, "8", false, OFF(authz_max_depth), 0,
	 "HS_VLIST admin group nesting followed when authorizing"},
	{"authz_max_groups", CONF_UINT, 1, 4096, "64", false, OFF(authz_max_groups), 0,
	 "admin group values looked up per authorization at most"},
	/* administration: authentication and requests that wait (node/server/admin.c) */
	{"auth_timeout_ms", CONF_UINT, 1000, 600000, "20000", true, OFF(auth_timeout_ms), 0,
	 "a challenge waits this long for its answer"},
	{"auth_pending_max", CONF_UINT, 16, 1000000, "10000", false, OFF(auth_pending_max), 0,
	 "challenges waiting for their answer, node-wide"},
	{"auth_pending_bytes", CONF_SIZE, 64 * KIB, 3 * GIB, "64m", false, OFF(auth_pending_bytes),
	 0, "bytes of requests kept for their challenges' answers, node-wide"},
	{"auth_pending_per_source", CONF_UINT, 1, 1000000, "256", true,
	 OFF(auth_pending_per_source), 0, "challenges waiting per source address"},
	{"pending_max", CONF_UINT, 1, 1000000, "4096", true, OFF(pending_max), 0,
	 "requests waiting (writes, lists) per worker"},
	{"pending_per_source", CONF_UINT, 1, 1000000, "512", true, OFF(pending_per_source), 0,
	 "requests waiting per source address per worker"},
	{"allow_list_handles", CONF_BOOL, 0, 0, "yes", true, OFF(allow_list_handles), 0,
	 "answer LIST_HANDLES (to admins with the LIST_HANDLES permission)"},
	/* TLS (node/server/tls.c) and the REST admin API (node/server/rest_admin.c) */
	{"tls_cert", CONF_STR, 0, 0, "", true, OFF(tls_cert), 0,
	 "PEM certificate chain for HTTPS and the TLS stream (empty = no TLS); reloaded on SIGHUP"},
	{"tls_key", CONF_STR, 0, 0, "", true, OFF(tls_key), 0,
	 "PEM private key of tls_cert (unencrypted); reloaded on SIGHUP"},
	{"tls_client_ca", CONF_STR, 0, 0, "", true, OFF(tls_client_ca), 0,
	 "PEM CA file: tls_listen requires client certificates signed by it (empty = none asked)"},
	{"tls_listen", CONF_ADDRS, 0, 0, NULL, false, OFF(tls_listen), OFF(n_tls_listen),
	 "TLS stream address ADDR:PORT (Handle TCP framing over TLS, e.g. 2642); repeat for several"},
	{"http_tls", CONF_BOOL, 0, 0, "yes", false, OFF(http_tls), 0,
	 "the http ports also take TLS (a ClientHello is HTTPS, anything else plain HTTP)"},
	{"tls_min_version", CONF_STR, 0, 0, "1.2", true, OFF(tls_min_version), 0,
	 "oldest TLS version accepted: 1.2 or 1.3"},
	{"tls_ciphers", CONF_STR, 0, 0,
	 "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
	 "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
	 true, OFF(tls_ciphers), 0, "TLS 1.2 cipher suites (OpenSSL list; TLS 1.3 uses its defaults)"},
	{"tls_handshake_timeout_ms", CONF_UINT, 100, 600000, "5000", true,
	 OFF(tls_handshake_timeout_ms), 0, "close a connection whose TLS handshake takes longer"},
	{"tls_session_cache", CONF_UINT, 0, 1000000, "20480", true, OFF(tls_session_cache), 0,
	 "TLS sessions kept for resumption, per context (0 = none; tickets still resume)"},
	{"tls_session_lifetime_s", CONF_UINT, 1, 86400, "3600", true, OFF(tls_session_lifetime_s),
	 0, "how long a TLS session or ticket may be resumed, seconds"},
	{"http_auth_plain_loopback", CONF_BOOL, 0, 0, "no", true, OFF(http_auth_plain_loopback), 0,
	 "accept credentials over plain HTTP from loopback clients (otherwise HTTPS only)"},
	{"rest_sessions_max", CONF_UINT, 1, 1000000, "10000", false, OFF(rest_sessions_max), 0,
	 "REST API sessions (/api/sessions) kept, node-wide"},
	{"rest_sessions_per_source", CONF_UINT, 1, 1000000, "64", true,
	 OFF(rest_sessions_per_source), 0, "REST API sessions per source address"},
	{"rest_session_idle_ms", CONF_UINT, 1000, 86400000, "1800000", true,
	 OFF(rest_session_idle_ms), 0, "an authenticated REST session expires unused this long"},
	{"rest_session_unauth_ms", CONF_UINT, 1000, 3600000, "60000", true,
	 OFF(rest_session_unauth_ms), 0, "a REST session not authenticated expires after this long"},
	/* upstream servers (node/resolver/upconf.h, docs/delegation.md) */
	{"upstream", CONF_LIST, 0, 0, NULL, true, OFF(upstream), OFF(n_upstream),
	 "NAME HOST:PORT [transport=tls|https|http|tcp|udp] [sni=] [ca=] [cert= key=] [pin=] "
	 "[verify=] [pipeline=]; repeat for several", ups_conf_check_upstream},
	{"forward", CONF_LIST, 0, 0, NULL, true, OFF(forward), OFF(n_forward),
	 "PREFIX (or *) NAME [NAME...]: resolve that prefix at those upstreams", ups_conf_check_forward},
	{"dns_server", CONF_LIST, 0, 0, NULL, true, OFF(dns_server), OFF(n_dns_server),
	 "DNS server ADDR:PORT for upstream host names; none = /etc/resolv.conf",
	 ups_conf_check_dns_server},
	{"upstream_timeout_ms", CONF_UINT, 100, 600000, "5000", true, OFF(upstream_timeout_ms), 0,
	 "deadline of one upstream query, failovers included"},
	{"upstream_try_timeout_ms", CONF_UINT, 50, 600000, "2000", true,
	 OFF(upstream_try_timeout_ms), 0, "time one upstream gets before the next is tried"},
	{"upstream_connect_timeout_ms", CONF_UINT, 50, 600000, "3000", true,
	 OFF(upstream_connect_timeout_ms), 0, "TCP connect plus TLS handshake"},
	{"upstream_idle_timeout_ms", CONF_UINT, 100, 3600000, "30000", true,
	 OFF(upstream_idle_timeout_ms), 0, "close an upstream connection idle this long"},
	{"upstream_max_conns_per_server", CONF_UINT, 1, 1024, "4", true,
	 OFF(upstream_max_conns_per_server), 0, "connections to one upstream server, per worker"},
	{"upstream_max_conns", CONF_UINT, 1, 100000, "256", true, OFF(upstream_max_conns), 0,
	 "upstream connections in all, per worker"},
	{"upstream_max_queries", CONF_UINT, 1, 1000000, "4096", true, OFF(upstream_max_queries), 0,
	 "upstream queries running at once, per worker"},
	{"upstream_max_servers", CONF_UINT, 1, 65536, "1024", true, OFF(upstream_max_servers), 0,
	 "upstream servers remembered (RTT, health, TLS session), per worker"},
	{"upstream_max_reply", CONF_SIZE, 1 * KIB, HDL_MAX_MESSAGE_LEN, "256k", true,
	 OFF(upstream_max_reply), 0, "largest upstream reply accepted (bytes after the envelope)"},
	{"upstream_fail_threshold", CONF_UINT, 1, 1000, "3", true, OFF(upstream_fail_threshold), 0,
	 "consecutive failures that mark an upstream server down"},
	{"upstream_backoff_max_ms", CONF_UINT, 1000, 3600000, "60000", true,
	 OFF(upstream_backoff_max_ms), 0, "longest time a failing upstream server is left alone"},
	{"upstream_udp_retry_ms", CONF_UINT, 50, 60000, "500", true, OFF(upstream_udp_retry_ms), 0,
	 "first UDP retransmission to an upstream; then 2x, 3x ..."},
	{"dns_cache_size", CONF_UINT, 1, 1000000, "1024", true, OFF(dns_cache_size), 0,
	 "upstream host names cached (and being resolved), per worker"},
	/* metrics, status page, usage statistics (node/server/metrics.h, web.h, stats.h) */
	{"metrics_listen", CONF_STR, 0, 0, "", false, OFF(metrics_listen), 0,
	 "Prometheus metrics listener ADDR:PORT (GET /metrics); empty = off; loopback only unless "
	 "metrics_allow_remote", addr_check},
	{"metrics_allow_remote", CONF_BOOL, 0, 0, "no", false, OFF(metrics_allow_remote), 0,
	 "let metrics_listen be an address other than loopback"},
	{"metrics_max_connections", CONF_UINT, 1, 1024, "8", false, OFF(metrics_max_connections), 0,
	 "scrape connections open at once; more are closed at once"},
	{"metrics_timeout_ms", CONF_UINT, 100, 600000, "5000", false, OFF(metrics_timeout_ms), 0,
	 "a scrape connection must send its request and take its answer within this"},
	{"web_status", CONF_BOOL, 0, 0, "yes", false, OFF(web_status), 0,
	 "serve the status page (GET /) and /status.json on the HTTP listener"},
	{"stats", CONF_BOOL, 0, 0, "yes", false, OFF(stats), 0,
	 "count usage statistics per prefix and day (idnode stats)"},
	{"stats_flush_interval_s", CONF_UINT, 1, 86400, "60", false, OFF(stats_flush_interval_s), 0,
	 "seconds between statistics flushes into the store"},
	{"stats_max_prefixes", CONF_UINT, 1, 30000, "256", false, OFF(stats_max_prefixes), 0,
	 "prefixes counted by name per worker and per flush; more are counted under -"},
	{"stats_top_entries", CONF_UINT, 1, STATS_TOP_MAX, "64", false, OFF(stats_top_entries), 0,
	 "identifiers in each per-prefix, per-day top list"},
	{"stats_retention_days", CONF_UINT, 0, 36500, "400", false, OFF(stats_retention_days), 0,
	 "statistics records kept this many days (0 = forever)"},
	{"stats_audit_batch", CONF_UINT, 100, 10000000, "100000", false, OFF(stats_audit_batch), 0,
	 "audit entries counted as registrations per flush at most"},
	/* metadata templates and the SNMS API (node/store/template.h, docs/snms-api.md) */
	{"template_max_items", CONF_UINT, 1, 4096, "256", false, OFF(template_max_items), 0,
	 "items of one metadata template at most"},
	{"template_pattern_max", CONF_UINT, 8, 4096, "256", false, OFF(template_pattern_max), 0,
	 "bytes of one pattern constraint of a template item at most"},
	{"template_value_max", CONF_UINT, 16, 65536, "4096", false, OFF(template_value_max), 0,
	 "bytes of a value checked against a template item at most (longer ones are refused)"},
	{"template_max_per_prefix", CONF_UINT, 1, 100000, "64", false,
	 OFF(template_max_per_prefix), 0, "templates (versions) of one prefix at most"},
	{"template_cache_max", CONF_UINT, 1, 100000, "64", false, OFF(template_cache_max), 0,
	 "compiled templates the writer keeps in memory"},
	{"snms_user", CONF_LIST, 0, 0, NULL, true, OFF(snms_user), OFF(n_snms_user),
	 "NAME PASSWORD-HASH INDEX:HANDLE: an SNMS API user acting as that admin identity "
	 "(hash from `idnode passwd`); repeat for several", snms_user_check},
	{"snms_token_ttl_s", CONF_UINT, 1, 2592000, "86400", false, OFF(snms_token_ttl_s), 0,
	 "lifetime of an SNMS bearer token, seconds"},
	{"snms_token_max", CONF_UINT, 1, 1000000, "10000", false, OFF(snms_token_max), 0,
	 "SNMS tokens alive node-wide at most; a login beyond it is refused"},
	{"snms_tokens_per_user", CONF_UINT, 1, 10000, "16", false, OFF(snms_tokens_per_user), 0,
	 "SNMS tokens of one user at most; a new login retires that user's oldest"},
	{"snms_batch_max", CONF_UINT, 1, 100000, "2000", false, OFF(snms_batch_max), 0,
	 "items of one SNMS batchCreate/batchUpdate/batchDelete at most"},
	{"snms_max_body", CONF_SIZE, 1 * KIB, 64 * MIB, "4m", false, OFF(snms_max_body), 0,
	 "largest SNMS request body parsed (its JSON tree takes ~12x); also bounded by http_max_body"},
	{"snms_login_rate", CONF_UINT, 1, 100000, "20", false, OFF(snms_login_rate), 0,
	 "SNMS logins (password checks) per second node-wide"},
	{"snms_login_burst", CONF_UINT, 1, 100000, "40", false, OFF(snms_login_burst), 0,
	 "SNMS logins allowed at once above the rate"},
};
#pragma GCC diagnostic pop
/* clang-format on */

#define N_SCHEMA (sizeof(schema) / sizeof(schema[0]))
_Static_assert(N_SCHEMA <= CONF_MAX_KEYS, "raise CONF_MAX_KEYS");

const conf_key_t *conf_schema(size_t *n)
{
	*n = N_SCHEMA;
	return schema;
}

const conf_key_t *conf_key_find(const char *name)
{
	for (size_t i = 0; i < N_SCHEMA; i++) {
		if (strcmp(schema[i].name, name) == 0)
			return &schema[i];
	}
	return NULL;
}

static size_t key_no(const conf_key_t *k)
{
	return (size_t)(k - schema);
}

static void list_clear(char ***list, unsigned *n)
{
	for (unsigned i = 0; i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

void conf_clear_list(conf_t *c, const char *key)
{
	const conf_key_t *k = conf_key_find(key);
	if (!k || (k->type != CONF_ADDRS && k->type != CONF_LIST && k->type != CONF_NETS))
		return;
	list_clear((char ***)((char *)c + k->offset), (unsigned *)((char *)c + k->count_offset));
	c->set_[key_no(k)] = 1;
}

int conf_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port;
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
			return HDL_EINVAL;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host) ||
		    memchr(s, ':', (size_t)(colon - s)))
			return HDL_EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port = colon + 1;
	}
	if (!isdigit((unsigned char)port[0]))
		return HDL_EINVAL;
	char *endp;
	errno = 0;
	unsigned long p = strtoul(port, &endp, 10);
	if (errno || *endp || p == 0 || p > 65535)
		return HDL_EINVAL;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (s[0] != '[' && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)p);
		*len = sizeof(*a4);
		return HDL_EOK;
	}
	if (s[0] == '[' && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*a6);
		return HDL_EOK;
	}
	return HDL_EINVAL;
}

int conf_parse_net(const char *s, int *family, uint8_t addr[16], unsigned *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max;
	if (hl == 0 || hl >= sizeof(host))
		return HDL_EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, host, addr) == 1) {
		*family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, addr) == 1) {
		*family = AF_INET6;
		max = 128;
	} else {
		return HDL_EINVAL;
	}
	*len = max;
	if (slash) {
		const char *p = slash + 1;
		char *end;
		if (!isdigit((unsigned char)p[0]) || strlen(p) > 3)
			return HDL_EINVAL;
		unsigned long n = strtoul(p, &end, 10);
		if (*end || n > max)
			return HDL_EINVAL;
		*len = (unsigned)n;
	}
	/* clear the host bits */
	for (unsigned bit = *len; bit < max; bit++)
		addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	return HDL_EOK;
}

int conf_each_net(const char *s,
                  void (*fn)(void *arg, int family, const uint8_t addr[16], unsigned len),
                  void *arg)
{
	char tok[INET6_ADDRSTRLEN + 8];
	int n = 0;
	if (strcasecmp(s, "none") == 0)
		return 0;
	while (*s) {
		size_t skip = strspn(s, " \t,");
		s += skip;
		size_t tl = strcspn(s, " \t,");
		if (tl == 0)
			break;
		if (tl >= sizeof(tok))
			return -1;
		memcpy(tok, s, tl);
		tok[tl] = '\0';
		s += tl;
		int fam;
		uint8_t a[16];
		unsigned len;
		if (conf_parse_net(tok, &fam, a, &len) != HDL_EOK)
			return -1;
		if (fn)
			fn(arg, fam, a, len);
		n++;
	}
	return n;
}

static int parse_uint(const char *v, bool size, uint64_t *out)
{
	if (!isdigit((unsigned char)v[0]))
		return HDL_EINVAL;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno)
		return HDL_EINVAL;
	uint64_t mul = 1;
	if (size && *end) {
		switch (tolower((unsigned char)*end)) {
		case 'k': mul = KIB; break;
		case 'm': mul = MIB; break;
		case 'g': mul = GIB; break;
		case 't': mul = TIB; break;
		default: return HDL_EINVAL;
		}
		end++;
		if (tolower((unsigned char)*end) == 'b' || tolower((unsigned char)*end) == 'i')
			end++;
		if (tolower((unsigned char)*end) == 'b')
			end++;
	}
	if (*end)
		return HDL_EINVAL;
	if (n > UINT64_MAX / mul)
		return HDL_EINVAL;
	*out = n * mul;
	return HDL_EOK;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return HDL_EOK;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return HDL_EOK;
		}
	}
	return HDL_EINVAL;
}

static bool prefix_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch <= 0x20 || ch == 0x7f || ch == '/')
			return false;
	}
	return true;
}

/** "INDEX:HANDLE": decimal index, a colon, a handle without control characters. */
static bool admin_ok(const char *v)
{
	const char *colon = strchr(v, ':');
	if (colon == NULL || colon == v || colon - v > 10 || colon[1] == '\0' ||
	    strlen(colon + 1) > HDL_MAX_HANDLE_LEN)
		return false;
	errno = 0;
	char *end;
	unsigned long long idx = strtoull(v, &end, 10);
	if (errno || end != colon || !isdigit((unsigned char)v[0]) || idx > UINT32_MAX)
		return false;
	for (const char *p = colon + 1; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	}
	return hdl_utf8_valid((const uint8_t *)colon + 1, strlen(colon + 1));
}

/* the check of server_admin entries */
static int admin_check(const char *v, char *err, size_t errlen)
{
	if (admin_ok(v))
		return HDL_EOK;
	snprintf(err, errlen, "'%s' is not INDEX:HANDLE (e.g. 300:0.NA/88.100.1)", v);
	return HDL_ECONF;
}

/* An optional ADDR:PORT (metrics_listen): empty, or a numeric address and port. */
static int addr_check(const char *v, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (!v[0] || conf_parse_addr(v, &ss, &sl) == HDL_EOK)
		return HDL_EOK;
	snprintf(err, errlen, "'%s' is not ADDR:PORT ([IPv6]:PORT for IPv6)", v);
	return HDL_ECONF;
}

/* metrics_listen on loopback unless metrics_allow_remote (the metrics are not for the world). */
static int metrics_validate(const conf_t *c, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (!c->metrics_listen || !c->metrics_listen[0] || c->metrics_allow_remote ||
	    conf_parse_addr(c->metrics_listen, &ss, &sl) != HDL_EOK)
		return HDL_EOK;
	bool loop = false;
	if (ss.ss_family == AF_INET)
		loop = (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	else if (ss.ss_family == AF_INET6)
		loop = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
	if (loop)
		return HDL_EOK;
	snprintf(err, errlen,
	         "metrics_listen: %s is not a loopback address (set metrics_allow_remote = yes to "
	         "serve the metrics elsewhere)",
	         c->metrics_listen);
	return HDL_ECONF;
}

/* the check of snms_user entries (node/server/snms_auth.h) */
static int snms_user_check(const char *v, char *err, size_t errlen)
{
	return snms_user_parse(v, NULL, err, errlen) == HDL_EOK ? HDL_EOK : HDL_ECONF;
}

static int set_key(conf_t *c, const conf_key_t *k, const char *v, bool from_default, char *err,
                   size_t errlen)
{
	void *field = (char *)c + k->offset;
	uint64_t n = 0;
	int ret = HDL_EOK;

	if (k->check && k->check(v, err, errlen) != HDL_EOK)
		return HDL_ECONF;

	switch (k->type) {
	case CONF_STR: {
		char *dup = strdup(v);
		if (!dup)
			return HDL_ENOMEM;
		free(*(char **)field);
		*(char **)field = dup;
		break;
	}
	case CONF_UINT:
	case CONF_SIZE:
		if (parse_uint(v, k->type == CONF_SIZE, &n) != HDL_EOK) {
			snprintf(err, errlen, "'%s' is not %s", v,
			         k->type == CONF_SIZE ? "a size (e.g. 4096, 64k, 1g)" : "a number");
			return HDL_ECONF;
		}
		if (n < k->min || n > k->max) {
			snprintf(err, errlen, "value %s out of range %llu..%llu", v,
			         (unsigned long long)k->min, (unsigned long long)k->max);
			return HDL_ECONF;
		}
		if (k->offset == OFF(map_size))
			*(uint64_t *)field = n;
		else if (k->offset == OFF(workers))
			*(unsigned *)field = (unsigned)n;
		else
			*(uint32_t *)field = (uint32_t)n;
		break;
	case CONF_BOOL:
		if (parse_bool(v, (bool *)field) != HDL_EOK) {
			snprintf(err, errlen, "'%s' is not a boolean (yes/no)", v);
			return HDL_ECONF;
		}
		break;
	case CONF_LEVEL: {
		int lvl = log_level_parse(v);
		if (lvl < 0) {
			snprintf(err, errlen, "'%s' is not a log level (err, warn, notice, info, debug)",
			         v);
			return HDL_ECONF;
		}
		*(int *)field = lvl;
		break;
	}
	case CONF_ADDRS:
	case CONF_LIST:
	case CONF_NETS: {
		char ***list = (char ***)field;
		unsigned *cnt = (unsigned *)((char *)c + k->count_offset);
		if (k->type == CONF_NETS) {
			int nn = conf_each_net(v, NULL, NULL);
			if (nn < 0) {
				snprintf(err, errlen,
				         "'%s' is not a list of networks ADDR/LEN (or none)", v);
				return HDL_ECONF;
			}
			if (nn == 0) {
				/* "none": an empty list */
				list_clear(list, cnt);
				if (!from_default)
					c->set_[key_no(k)] = 1;
				break;
			}
		} else if (k->type == CONF_ADDRS) {
			struct sockaddr_storage ss;
			socklen_t sl;
			if (conf_parse_addr(v, &ss, &sl) != HDL_EOK) {
				snprintf(err, errlen,
				         "'%s' is not ADDR:PORT (numeric IPv4, or [IPv6]:PORT)", v);
				return HDL_ECONF;
			}
		} else if (!k->check && !prefix_ok(v)) {
			snprintf(err, errlen, "'%s' is not a prefix (no spaces or '/')", v);
			return HDL_ECONF;
		}
		if (!from_default && !c->set_[key_no(k)]) {
			list_clear(list, cnt);
			c->set_[key_no(k)] = 1;
		}
		if (*cnt >= CONF_MAX_LIST) {
			snprintf(err, errlen, "more than %u entries", CONF_MAX_LIST);
			return HDL_ECONF;
		}
		char **nl = realloc(*list, sizeof(char *) * (*cnt + 1));
		if (!nl)
			return HDL_ENOMEM;
		*list = nl;
		if (!(nl[*cnt] = strdup(v)))
			return HDL_ENOMEM;
		(*cnt)++;
		break;
	}
	}
	return ret;
}

int conf_init(conf_t *c)
{
	memset(c, 0, sizeof(*c));
	char err[128];
	for (size_t i = 0; i < N_SCHEMA; i++) {
		if (!schema[i].dflt)
			continue;
		int ret = set_key(c, &schema[i], schema[i].dflt, true, err, sizeof(err));
		if (ret != HDL_EOK) {
			conf_free(c);
			return ret;
		}
	}
	return HDL_EOK;
}

void conf_free(conf_t *c)
{
	if (!c)
		return;
	list_clear(&c->listen, &c->n_listen);
	list_clear(&c->http, &c->n_http);
	list_clear(&c->home, &c->n_home);
	list_clear(&c->udp_rrl_whitelist, &c->n_udp_rrl_whitelist);
	list_clear(&c->upstream, &c->n_upstream);
	list_clear(&c->forward, &c->n_forward);
	list_clear(&c->dns_server, &c->n_dns_server);
	free(c->db);
	free(c->pidfile);
	free(c->write_sync);
	list_clear(&c->server_admin, &c->n_server_admin);
	list_clear(&c->snms_user, &c->n_snms_user);
	free(c->tcp_close_after_answer);
	free(c->control_socket);
	free(c->control_socket_mode);
	free(c->metrics_listen);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_client_ca);
	list_clear(&c->tls_listen, &c->n_tls_listen);
	free(c->tls_min_version);
	free(c->tls_ciphers);
	free(c->log_target);
	free(c->query_log);
	memset(c, 0, sizeof(*c));
}

int conf_set(conf_t *c, const char *key, const char *value, char *err, size_t errlen)
{
	const conf_key_t *k = conf_key_find(key);
	if (!k) {
		snprintf(err, errlen, "unknown key");
		return HDL_ECONF;
	}
	return set_key(c, k, value, false, err, errlen);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

int conf_load_buf(conf_t *c, const char *name, const char *text, size_t len, char *err,
                  size_t errlen)
{
	char line[4096];
	size_t pos = 0;
	unsigned lineno = 0;
	char why[256];

	while (pos < len) {
		lineno++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (ll >= sizeof(line)) {
			snprintf(err, errlen, "%s:%u: line too long", name, lineno);
			return HDL_ECONF;
		}
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl ? 1 : 0);
		if (memchr(line, '\0', ll)) {
			snprintf(err, errlen, "%s:%u: NUL byte in line", name, lineno);
			return HDL_ECONF;
		}

		/* strip a comment: '#' outside double quotes */
		bool inq = false;
		for (char *p = line; *p; p++) {
			if (*p == '"')
				inq = !inq;
			else if (*p == '#' && !inq) {
				*p = '\0';
				break;
			}
		}
		char *s = trim(line);
		if (!*s)
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%u: expected 'key = value'", name, lineno);
			return HDL_ECONF;
		}
		*eq = '\0';
		char *key = trim(s);
		char *val = trim(eq + 1);
		if (!*key) {
			snprintf(err, errlen, "%s:%u: missing key before '='", name, lineno);
			return HDL_ECONF;
		}
		size_t vl = strlen(val);
		if (vl && val[0] == '"') {
			if (vl < 2 || val[vl - 1] != '"') {
				snprintf(err, errlen, "%s:%u: %s: unterminated quote", name, lineno, key);
				return HDL_ECONF;
			}
			val[vl - 1] = '\0';
			val++;
		}
		const conf_key_t *k = conf_key_find(key);
		if (!k) {
			snprintf(err, errlen, "%s:%u: %s: unknown key", name, lineno, key);
			return HDL_ECONF;
		}
		if (!*val && k->type != CONF_STR) {
			snprintf(err, errlen, "%s:%u: %s: empty value", name, lineno, key);
			return HDL_ECONF;
		}
		why[0] = '\0';
		int ret = set_key(c, k, val, false, why, sizeof(why));
		if (ret == HDL_ENOMEM)
			return ret;
		if (ret != HDL_EOK) {
			snprintf(err, errlen, "%s:%u: %s: %s", name, lineno, key, why);
			return HDL_ECONF;
		}
	}
	return HDL_EOK;
}

int conf_load(conf_t *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return HDL_EIO;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int ret = HDL_EOK;
	for (;;) {
		if (cap - len < 4096) {
			if (cap > 16 * MIB) {
				snprintf(err, errlen, "%s: file too large", path);
				ret = HDL_ECONF;
				goto out;
			}
			char *nb = realloc(buf, cap ? cap * 2 : 8192);
			if (!nb) {
				ret = HDL_ENOMEM;
				goto out;
			}
			buf = nb;
			cap = cap ? cap * 2 : 8192;
		}
		size_t r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		ret = HDL_EIO;
		goto out;
	}
	ret = conf_load_buf(c, path, buf ? buf : "", len, err, errlen);
out:
	free(buf);
	fclose(f);
	return ret;
}

int conf_validate(const conf_t *c, char *err, size_t errlen)
{
	if (c->n_listen == 0) {
		snprintf(err, errlen, "listen: at least one address is needed");
		return HDL_ECONF;
	}
	if (!c->db || !c->db[0]) {
		snprintf(err, errlen, "db: a database directory is needed");
		return HDL_ECONF;
	}
	if (!c->write_sync ||
	    (strcmp(c->write_sync, "full") != 0 && strcmp(c->write_sync, "periodic") != 0)) {
		snprintf(err, errlen, "write_sync: '%s' is not full or periodic",
		         c->write_sync ? c->write_sync : "");
		return HDL_ECONF;
	}
	const char *tc = c->tcp_close_after_answer ? c->tcp_close_after_answer : "";
	if (strcmp(tc, "auto") != 0 && strcmp(tc, "yes") != 0 && strcmp(tc, "no") != 0) {
		snprintf(err, errlen, "tcp_close_after_answer: '%s' is not auto, yes or no", tc);
		return HDL_ECONF;
	}
	if (c->resolver_min_ttl > c->resolver_max_ttl) {
		snprintf(err, errlen, "resolver_min_ttl: %u is over resolver_max_ttl %u",
		         c->resolver_min_ttl, c->resolver_max_ttl);
		return HDL_ECONF;
	}
	if (conf_socket_mode(c->control_socket_mode) < 0) {
		snprintf(err, errlen, "control_socket_mode: '%s' is not an octal mode (e.g. 0660)",
		         c->control_socket_mode ? c->control_socket_mode : "");
		return HDL_ECONF;
	}
	if (c->control_socket && strlen(c->control_socket) >= CONF_UNIX_PATH_MAX) {
		snprintf(err, errlen, "control_socket: path longer than %u bytes",
		         CONF_UNIX_PATH_MAX - 1);
		return HDL_ECONF;
	}
	if (!c->tls_min_version ||
	    (strcmp(c->tls_min_version, "1.2") != 0 && strcmp(c->tls_min_version, "1.3") != 0)) {
		snprintf(err, errlen, "tls_min_version: '%s' is not 1.2 or 1.3",
		         c->tls_min_version ? c->tls_min_version : "");
		return HDL_ECONF;
	}
	if ((c->tls_cert && c->tls_cert[0]) != (c->tls_key && c->tls_key[0])) {
		snprintf(err, errlen, "tls_cert and tls_key: give both or neither");
		return HDL_ECONF;
	}
	if (c->n_tls_listen && !(c->tls_cert && c->tls_cert[0])) {
		snprintf(err, errlen, "tls_listen: needs tls_cert and tls_key");
		return HDL_ECONF;
	}
	for (unsigned i = 0; i < c->n_tls_listen; i++) {
		for (unsigned j = 0; j < c->n_listen + c->n_http; j++) {
			const char *o = j < c->n_listen ? c->listen[j] : c->http[j - c->n_listen];
			if (strcmp(c->tls_listen[i], o) == 0) {
				snprintf(err, errlen,
				         "tls_listen: %s is also a listen or http address", o);
				return HDL_ECONF;
			}
		}
	}
	for (unsigned i = 0; i < c->n_listen; i++) {
		for (unsigned j = 0; j < c->n_http; j++) {
			if (strcmp(c->listen[i], c->http[j]) == 0) {
				snprintf(err, errlen, "http: %s is also a listen address", c->http[j]);
				return HDL_ECONF;
			}
		}
	}
	if (metrics_validate(c, err, errlen) != HDL_EOK)
		return HDL_ECONF;
	return ups_conf_validate(c, err, errlen);
}

int conf_socket_mode(const char *s)
{
	if (!s || !*s || strlen(s) > 4)
		return -1;
	int mode = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '7')
			return -1;
		mode = mode * 8 + (*p - '0');
	}
	return mode <= 0777 ? mode : -1;
}

static bool list_eq(char **a, unsigned na, char **b, unsigned nb)
{
	if (na != nb)
		return false;
	for (unsigned i = 0; i < na; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

bool conf_key_equal(const conf_t *a, const conf_t *b, const conf_key_t *k)
{
	const char *fa = (const char *)a + k->offset;
	const char *fb = (const char *)b + k->offset;
	switch (k->type) {
	case CONF_STR: {
		const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
		return strcmp(sa ? sa : "", sb ? sb : "") == 0;
	}
	case CONF_ADDRS:
	case CONF_LIST:
	case CONF_NETS:
		return list_eq(
		    *(char **const *)fa, *(const unsigned *)((const char *)a + k->count_offset),
		    *(char **const *)fb, *(const unsigned *)((const char *)b + k->count_offset));
	case CONF_UINT:
	case CONF_SIZE:
		if (k->offset == OFF(map_size))
			return *(const uint64_t *)fa == *(const uint64_t *)fb;
		if (k->offset == OFF(workers))
			return *(const unsigned *)fa == *(const unsigned *)fb;
		return *(const uint32_t *)fa == *(const uint32_t *)fb;
	case CONF_BOOL: return *(const bool *)fa == *(const bool *)fb;
	case CONF_LEVEL: return *(const int *)fa == *(const int *)fb;
	}
	return false;
}

void conf_restart_keys(const conf_t *a, const conf_t *b, char *out, size_t cap)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t i = 0; i < N_SCHEMA; i++) {
		const conf_key_t *k = &schema[i];
		if (k->reloadable || conf_key_equal(a, b, k))
			continue;
		int n = snprintf(out + used, cap - used, "%s%s", used ? ", " : "", k->name);
		if (n < 0 || (size_t)n >= cap - used)
			break;
		used += (size_t)n;
	}
}

int conf_build(conf_t *c, const char *path, const conf_override_t *ov, size_t n_ov, char *err,
               size_t errlen)
{
	char why[256];
	uint8_t cleared[CONF_MAX_KEYS] = {0};
	int ret = conf_init(c);
	if (ret != HDL_EOK) {
		snprintf(err, errlen, "out of memory");
		return ret;
	}
	if (path) {
		ret = conf_load(c, path, err, errlen);
		if (ret != HDL_EOK)
			goto fail;
	}
	for (size_t i = 0; i < n_ov; i++) {
		const conf_key_t *k = conf_key_find(ov[i].key);
		if (!k) {
			snprintf(err, errlen, "--%s: unknown option", ov[i].key);
			ret = HDL_ECONF;
			goto fail;
		}
		/* --listen / --http replace the file's list; --home adds to it */
		if (k->type == CONF_ADDRS && !cleared[key_no(k)]) {
			conf_clear_list(c, k->name);
			cleared[key_no(k)] = 1;
		}
		why[0] = '\0';
		ret = set_key(c, k, ov[i].value, false, why, sizeof(why));
		if (ret != HDL_EOK) {
			snprintf(err, errlen, "--%s: %s", k->name, ret == HDL_ENOMEM ? "out of memory" : why);
			goto fail;
		}
	}
	ret = conf_validate(c, err, errlen);
	if (ret != HDL_EOK)
		goto fail;
	return HDL_EOK;
fail:
	conf_free(c);
	return ret;
}
