/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hdl/error.h"
#include "node/conf/conf.h"
#include "node/server/node.h"
#include "proto/wire.h"

void node_limits_apply(node_limits_t *l, const conf_t *c)
{
	atomic_store_explicit(&l->max_message_len, c->max_message_len, memory_order_relaxed);
	atomic_store_explicit(&l->max_values, c->max_values, memory_order_relaxed);
	atomic_store_explicit(&l->max_connections, c->max_connections, memory_order_relaxed);
	atomic_store_explicit(&l->tcp_idle_timeout_ms, c->tcp_idle_timeout_ms, memory_order_relaxed);
	atomic_store_explicit(&l->tcp_frame_timeout_ms, c->tcp_frame_timeout_ms, memory_order_relaxed);
	atomic_store_explicit(&l->tcp_buffer_max, c->tcp_buffer_max, memory_order_relaxed);
	atomic_store_explicit(&l->http_max_body, c->http_max_body, memory_order_relaxed);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t workers = c->workers ? c->workers : (cpus > 0 ? (uint32_t)cpus : 1u);
	atomic_store_explicit(&l->cache_bytes, c->cache_size / workers, memory_order_relaxed);
	atomic_store_explicit(&l->udp_gso, c->udp_gso ? 1u : 0u, memory_order_relaxed);
	atomic_store_explicit(&l->udp_answer_max_datagrams, c->udp_answer_max_datagrams,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->udp_answer_max_ratio, c->udp_answer_max_ratio,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->udp_reasm_slots, c->udp_reasm_slots, memory_order_relaxed);
	atomic_store_explicit(&l->udp_rrl_rate, c->udp_rrl_rate, memory_order_relaxed);
	atomic_store_explicit(&l->udp_rrl_burst, c->udp_rrl_burst, memory_order_relaxed);
	atomic_store_explicit(&l->udp_rrl_slip, c->udp_rrl_slip, memory_order_relaxed);
	atomic_store_explicit(&l->max_conn_per_source, c->max_connections_per_source,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->src_v4_bits, c->conn_source_prefix_v4, memory_order_relaxed);
	atomic_store_explicit(&l->src_v6_bits, c->conn_source_prefix_v6, memory_order_relaxed);
	atomic_store_explicit(&l->conn_buffer_budget, c->conn_buffer_budget, memory_order_relaxed);
	const char *tc = c->tcp_close_after_answer ? c->tcp_close_after_answer : "auto";
	atomic_store_explicit(&l->tcp_close,
	                      strcmp(tc, "yes") == 0  ? NODE_TCP_CLOSE_YES
	                      : strcmp(tc, "no") == 0 ? NODE_TCP_CLOSE_NO
	                                              : NODE_TCP_CLOSE_AUTO,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->auth_timeout_ms, c->auth_timeout_ms, memory_order_relaxed);
	atomic_store_explicit(&l->auth_pending_per_source, c->auth_pending_per_source,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->pending_max, c->pending_max, memory_order_relaxed);
	atomic_store_explicit(&l->pending_per_source, c->pending_per_source, memory_order_relaxed);
	atomic_store_explicit(&l->allow_list_handles, c->allow_list_handles ? 1u : 0u,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->tls_handshake_timeout_ms, c->tls_handshake_timeout_ms,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->http_auth_plain_loopback, c->http_auth_plain_loopback ? 1u : 0u,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->rest_sessions_per_source, c->rest_sessions_per_source,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->rest_session_idle_ms, c->rest_session_idle_ms,
	                      memory_order_relaxed);
	atomic_store_explicit(&l->rest_session_unauth_ms, c->rest_session_unauth_ms,
	                      memory_order_relaxed);
	atomic_fetch_add_explicit(&l->gen, 1, memory_order_release);
}

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const char site_desc[] = "idnode secondary node";

const char *node_site_listen(const conf_t *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	/* the first IPv4 listen address, else the first one: Handle.Net clients read an address
	 * whose first 12 bytes are zero as IPv4, so ::1 would be taken for 0.0.0.1 */
	for (unsigned i = 0; i < c->n_listen; i++) {
		if (conf_parse_addr(c->listen[i], &ss, &sl) == HDL_EOK && ss.ss_family == AF_INET)
			return c->listen[i];
	}
	return c->n_listen ? c->listen[0] : NULL;
}

int node_site_build(node_shared_t *n, const conf_t *c, uint32_t now)
{
	int ret = HDL_EOK;
	struct sockaddr_storage ss;
	socklen_t sl;
	hdl_site_t *s = &n->site_info;
	hdl_server_t *srv = NULL;
	hdl_interface_t *ifs = NULL;
	hdl_attr_t *attr = NULL;

	const char *listen = node_site_listen(c);
	if (!listen || conf_parse_addr(listen, &ss, &sl) != HDL_EOK)
		return HDL_ECONF;
	srv = calloc(1, sizeof(*srv));
	ifs = calloc(3, sizeof(*ifs));
	/* "desc", and "idnode.tls_port" with the text of the port after the array */
	attr = calloc(1, 2 * sizeof(*attr) + 8);
	if (!srv || !ifs || !attr) {
		ret = HDL_ENOMEM;
		goto fail;
	}
	srv->id = 1;
	if (ss.ss_family == AF_INET)
		memcpy(srv->addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	else
		memcpy(srv->addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
	uint16_t port = addr_port(&ss);
	uint32_t ni = 0;
	ifs[ni++] = (hdl_interface_t){HDL_IF_ADMIN | HDL_IF_QUERY, HDL_IF_TCP, port};
	ifs[ni++] = (hdl_interface_t){HDL_IF_QUERY, HDL_IF_UDP, port};
	if (c->n_http > 0 && conf_parse_addr(c->http[0], &ss, &sl) == HDL_EOK)
		ifs[ni++] = (hdl_interface_t){HDL_IF_ADMIN | HDL_IF_QUERY, HDL_IF_HTTP,
		                              addr_port(&ss)};
	srv->n_ifaces = ni;
	srv->ifaces = ifs;
	attr->name = hdl_slice_str("desc");
	attr->value = hdl_slice_str(site_desc);
	uint32_t n_attrs = 1;
	if (c->n_tls_listen > 0 && conf_parse_addr(c->tls_listen[0], &ss, &sl) == HDL_EOK) {
		/* the TLS stream (Handle framing over TLS): HS_SITE has no protocol code for it,
		 * so it is named by an attribute (docs/delegation.md) */
		char *port_text = (char *)(attr + 2);
		snprintf(port_text, 8, "%u", (unsigned)addr_port(&ss));
		attr[1].name = hdl_slice_str("idnode.tls_port");
		attr[1].value = hdl_slice_str(port_text);
		n_attrs = 2;
	}

	memset(s, 0, sizeof(*s));
	s->data_version = 1;
	s->proto_major = 2;
	s->proto_minor = 10;
	s->serial = (uint16_t)c->site_serial;
	s->primary_mask = HDL_SITE_PRIMARY;
	s->hash_option = HDL_HASH_BY_HANDLE;
	s->n_attrs = n_attrs;
	s->attrs = attr;
	s->n_servers = 1;
	s->servers = srv;
	srv = NULL;
	ifs = NULL;
	attr = NULL;
	n->site_serial = (uint16_t)c->site_serial;

	size_t cap = 1024, len = 0;
	n->site = malloc(cap);
	if (!n->site) {
		ret = HDL_ENOMEM;
		goto fail;
	}
	ret = hdl_site_encode(s, n->site, cap, &len);
	if (ret != HDL_EOK)
		goto fail;
	n->site_len = len;

	/* the synthetic 0.NA/<prefix> record: one HS_SITE value at index 1 */
	static const char type[] = "HS_SITE";
	size_t pcap = 4 + 14 + 4 + sizeof(type) - 1 + 4 + len + 4;
	n->prefix_vals = malloc(pcap);
	if (!n->prefix_vals) {
		ret = HDL_ENOMEM;
		goto fail;
	}
	wire_wr_t w = wire_wr_init(n->prefix_vals, pcap);
	wire_wr_u32(&w, 1);
	wire_wr_u32(&w, 1);   /* index */
	wire_wr_u32(&w, now); /* timestamp */
	wire_wr_u8(&w, HDL_TTL_RELATIVE);
	wire_wr_u32(&w, 86400);
	wire_wr_u8(&w, HDL_PERM_DEFAULT);
	wire_wr_lbytes(&w, type, sizeof(type) - 1);
	wire_wr_lbytes(&w, n->site, len);
	wire_wr_u32(&w, 0); /* references */
	if (w.err) {
		ret = w.err;
		goto fail;
	}
	n->prefix_vals_len = w.pos;
	return HDL_EOK;
fail:
	free(srv);
	free(ifs);
	free(attr);
	node_site_free(n);
	return ret;
}

void node_site_free(node_shared_t *n)
{
	if (n->site_info.n_servers) {
		free(n->site_info.servers[0].ifaces);
		free(n->site_info.servers);
	}
	free(n->site_info.attrs);
	memset(&n->site_info, 0, sizeof(n->site_info));
	free(n->site);
	free(n->prefix_vals);
	n->site = NULL;
	n->prefix_vals = NULL;
	n->site_len = n->prefix_vals_len = 0;
}
