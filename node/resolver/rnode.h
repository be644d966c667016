/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The resolver's node-wide state in idnoded: the cache of upstream answers (dcache.h) and
 *        the table of queries in flight (dflight.h) made from the configuration, kept in
 *        node_shared_t, changed on reload, and the `cache` command of the control socket.
 *
 * Keys: the resolution path builds dcache and dflight keys with dcache_key() over the handle
 * normalized by store_key() (the node's case rule), the same form `cache flush HANDLE` uses.
 */
#ifndef HDL_NODE_RESOLVER_RNODE_H
#define HDL_NODE_RESOLVER_RNODE_H

struct conf;
struct control;
struct node_shared;
struct dcache_policy;

/** \brief The TTL rules of the configuration (resolver_* keys). */
void rnode_policy(const struct conf *c, struct dcache_policy *p);

/**
 * \brief Create n->dcache and n->dflight from \p c.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int rnode_setup(struct node_shared *n, const struct conf *c);

/** \brief Apply a reloaded configuration (cache size, TTL rules, in-flight limits). */
void rnode_apply(struct node_shared *n, const struct conf *c);

/** \brief Free what rnode_setup() made (after the workers stopped). */
void rnode_free(struct node_shared *n);

/**
 * \brief Register `cache stats | dump [PREFIX] | flush [HANDLE]` on \p ctl, over n->dcache and
 *        n->dflight; `cache dump` lists at most c->control_dump_max entries.
 * \retval HDL_EOK, HDL_ENOMEM, HDL_EEXIST
 */
int rnode_register_commands(struct control *ctl, struct node_shared *n, const struct conf *c);

#endif /* HDL_NODE_RESOLVER_RNODE_H */
