/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Upstream configuration: the `upstream` and `forward` lines of the node configuration
 *        (syntax in deploy/idnode.conf.sample and docs/delegation.md), their checks, and the
 *        immutable upstream set built from them (named targets with their TLS contexts, and the
 *        forward rules mapping prefixes to upstreams).
 *
 *     upstream = NAME HOST:PORT [transport=tls|https|http|tcp|udp] [sni=NAME] [ca=FILE]
 *                [cert=FILE key=FILE] [pin=sha256:BASE64] [verify=yes|no] [pipeline=N]
 *     forward  = PREFIX|* NAME [NAME...]
 */
#ifndef HDL_NODE_RESOLVER_UPCONF_H
#define HDL_NODE_RESOLVER_UPCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/conf/conf.h"
#include "node/resolver/dns.h"
#include "node/resolver/upstream.h"

#define UPS_NAME_MAX      63u   /**< longest upstream name */
#define UPS_FORWARD_NAMES 8u    /**< upstreams one forward rule may list */
#define UPS_PATH_MAX      1024u /**< longest file name in an upstream line */
#define UPS_PREFIX_MAX    255u  /**< longest prefix in a forward rule */
#define UPS_DEFAULT_TLS_PORT \
	2642u /**< the TLS stream port idnode listens on (docs/delegation.md) */

/** One parsed `upstream` line. */
typedef struct ups_conf_upstream {
	char name[UPS_NAME_MAX + 1];
	ups_target_t target; /**< host, port, transport, sni (as target.name), pipeline; no tls */
	char ca[UPS_PATH_MAX + 1];   /**< "" = the system trust store */
	char cert[UPS_PATH_MAX + 1]; /**< "" = no client certificate */
	char key[UPS_PATH_MAX + 1];
	bool verify; /**< default yes */
	bool has_pin;
	uint8_t pin[UPS_PIN_LEN];
} ups_conf_upstream_t;

/** One parsed `forward` line. */
typedef struct ups_conf_forward {
	char prefix[UPS_PREFIX_MAX + 1]; /**< "*" = every prefix without a longer rule */
	unsigned n;
	char names[UPS_FORWARD_NAMES][UPS_NAME_MAX + 1];
} ups_conf_forward_t;

/**
 * \brief Parse an `upstream` value. Files named must be readable.
 * \param err reason ("pin: not sha256:BASE64 of 32 bytes")
 * \retval HDL_EOK, HDL_ECONF
 */
int ups_conf_parse_upstream(const char *v, ups_conf_upstream_t *out, char *err, size_t errlen);
/** \brief Parse a `forward` value. \retval HDL_EOK, HDL_ECONF */
int ups_conf_parse_forward(const char *v, ups_conf_forward_t *out, char *err, size_t errlen);

/** \brief conf_key_t check of `upstream` lines. \retval HDL_EOK, HDL_ECONF */
int ups_conf_check_upstream(const char *v, char *err, size_t errlen);
/** \brief conf_key_t check of `forward` lines. \retval HDL_EOK, HDL_ECONF */
int ups_conf_check_forward(const char *v, char *err, size_t errlen);
/** \brief conf_key_t check of `dns_server` lines (ADDR:PORT, numeric). \retval HDL_EOK, HDL_ECONF
 */
int ups_conf_check_dns_server(const char *v, char *err, size_t errlen);

/**
 * \brief Cross-line checks: upstream names unique, every name of a forward rule defined, one
 *        rule per prefix. \retval HDL_EOK, HDL_ECONF
 */
int ups_conf_validate(const conf_t *c, char *err, size_t errlen);

/** \brief The pool limits of a configuration (the rest from ups_limits_default()). */
void ups_conf_limits(const conf_t *c, ups_limits_t *l);
/** \brief The resolver settings of a configuration (\p d borrows c's strings). */
void ups_conf_dns(const conf_t *c, dns_conf_t *d);

/** Named upstreams and forward rules of one configuration; immutable once built. */
typedef struct ups_set ups_set_t;

/**
 * \brief Build the set of \p c: parse every line, make each TLS context (CA, client
 *        certificate; verify=no is logged as a warning).
 * \retval HDL_EOK, HDL_ECONF, HDL_ETLS (a file that does not load), HDL_ENOMEM
 * \note The set may be shared by the workers (read-only; TLS contexts are reference counted).
 */
int ups_set_build(const conf_t *c, ups_set_t **out, char *err, size_t errlen);
void ups_set_free(ups_set_t *s);

/** \brief The target of upstream \p name (its tls borrowed from the set), or NULL. */
const ups_target_t *ups_set_find(const ups_set_t *s, const char *name);

/**
 * \brief The targets a request for prefix \p prefix goes to: the longest forward rule equal to
 *        the prefix or to one of its dot-separated parents ("88.100" covers "88.100.1", not
 *        "88.1000"), else the "*" rule (ASCII case-insensitive).
 * \return targets copied to \p out (their tls borrowed from the set), 0 when no rule matches
 */
unsigned ups_set_route(const ups_set_t *s, hdl_slice_t prefix, ups_target_t *out, unsigned max);

/**
 * \brief The configured upstreams whose HOST is \p host (numeric addresses compare as addresses,
 *        names ASCII case-insensitively): how the resolution path reaches a server an HS_SITE
 *        names over the transport and certificates configured for it (docs/delegation.md).
 * \return targets copied to \p out (their tls borrowed from the set)
 */
unsigned ups_set_by_host(const ups_set_t *s, const char *host, ups_target_t *out, unsigned max);

#endif /* HDL_NODE_RESOLVER_UPCONF_H */
