/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Configuration reload (SIGHUP and the control socket's `reload`): the new configuration
 *        is swapped in as a whole or not at all, through a list of hooks the modules register.
 *
 * A reload reads and checks the new configuration file, then runs every registered hook in two
 * phases, on the main thread:
 *
 *  1. prepare(), in hook order: build whatever the new configuration needs (an SSL_CTX from the
 *     new certificate and key, parsed admin lists, an opened query log file) without changing
 *     what the node runs with. A hook that fails says why; every hook prepared so far is then
 *     discarded and the node keeps the old configuration as a whole.
 *  2. commit(), in the same order: swap the prepared state in. Commits cannot fail.
 *
 * One hook may have an effect in its prepare() that is not undone: the last one
 * (RELOAD_ORDER_LAST: the homed prefixes, written to the store in one transaction), since no
 * prepare() runs after it.
 *
 * Keys. The schema marks each configuration key reloadable or not (node/conf/conf.c); a hook
 * can claim more keys (\ref reload_hook::keys): those apply live too. A non-reloadable key that
 * changed and that no hook claims keeps its running value until a restart: the reload says so
 * in its log line and in its summary. The listener addresses (listen, http, tls_listen) are
 * claimed by the hook of rebind.h, which re-binds them; without such a hook a change of listen
 * or http is reported in \ref reload_result::listen.
 *
 * Retiring. State that worker threads read (found through a pointer the commit swapped) must
 * not be freed while a worker may still hold the old pointer: hand it to reload_retire(), which
 * frees it once every worker has passed a quiescent point (reload_quiescent(), called by each
 * worker between event callbacks, once a second). A worker may therefore keep a pointer it read
 * for the length of one event callback, never across callbacks.
 *
 * \note Everything here but reload_quiescent() runs on the main thread.
 */
#ifndef HDL_NODE_SERVER_RELOAD_H
#define HDL_NODE_SERVER_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;

/** Hook order: lower runs first (prepare and commit). */
#define RELOAD_ORDER_FIRST   0
#define RELOAD_ORDER_DEFAULT 100
#define RELOAD_ORDER_LAST    1000 /**< the one hook whose prepare() writes (the store) */

#define RELOAD_HOOKS_MAX   32u  /**< hooks at most */
#define RELOAD_RETIRED_MAX 256u /**< objects waiting for the workers at most */

/** One module's part of a reload. */
typedef struct reload_hook {
	const char *name; /**< for log lines ("tls", "query log"); a static string */
	int order;        /**< RELOAD_ORDER_* (ties: registration order) */
	/** configuration keys this hook applies live (NULL-terminated; NULL: none) */
	const char *const *keys;
	/**
	 * Build the state for \p nc; \p old is the configuration the node runs with now.
	 * \param[out] staged what commit() or discard() gets (may stay NULL)
	 * \param err why not, one line
	 * \retval HDL_EOK, or any error: the reload is abandoned
	 */
	int (*prepare)(void *arg, const struct conf *old, const struct conf *nc, void **staged,
	               char *err, size_t errlen);
	/** Swap \p staged in (NULL: no prepare, or it staged nothing). Cannot fail. */
	void (*commit)(void *arg, const struct conf *nc, void *staged);
	/** Drop \p staged: another hook failed (NULL: nothing to drop). */
	void (*discard)(void *arg, void *staged);
	void *arg;
} reload_hook_t;

typedef struct reload reload_t;

/**
 * \brief A hook list with \p n_workers quiescence slots.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int reload_new(unsigned n_workers, reload_t **out);

/** \brief Run every discard of nothing; free whatever is still retired (workers stopped). */
void reload_free(reload_t *r);

/**
 * \brief Add a hook (copied; \p h->name and \p h->keys must outlive \p r).
 * \retval HDL_EOK, HDL_EINVAL (no prepare and no commit), HDL_ENOMEM (RELOAD_HOOKS_MAX)
 */
int reload_register(reload_t *r, const reload_hook_t *h);

/** \brief True when some registered hook claims configuration key \p key. */
bool reload_claims(const reload_t *r, const char *key);

/** Outcome of reload_apply(). */
typedef struct reload_result {
	char error[512];   /**< why the reload was refused ("" when it was applied) */
	char restart[512]; /**< changed keys that need a restart, comma-separated ("" when none) */
	/** listeners changed that no hook re-binds ("listen +ADDR -ADDR; http ..."), or "" */
	char listen[512];
	unsigned hooks;    /**< hooks run */
} reload_result_t;

/**
 * \brief Apply \p nc over \p old (two phases, see the file comment). \p boot is the
 *        configuration the node started with: what needs a restart is compared to it.
 * \retval HDL_EOK applied, or the failing hook's error (res->error says which hook and why;
 *         the node runs on with \p old)
 */
int reload_apply(reload_t *r, const struct conf *boot, const struct conf *old,
                 const struct conf *nc, reload_result_t *res);

/**
 * \brief Free \p p with \p fn once every worker has passed a quiescent point after this call.
 *        Frees at once when no worker runs; when RELOAD_RETIRED_MAX objects wait already, waits
 *        (bounded, 2 s) for the workers first and logs when it had to free early.
 */
void reload_retire(reload_t *r, void *p, void (*fn)(void *));

/**
 * \brief Worker \p slot holds no pointer to retired state now (call between event callbacks).
 *        Two atomic accesses; \p r NULL (a worker outside idnoded) does nothing.
 */
void reload_quiescent(reload_t *r, unsigned slot);

/** \brief Worker \p slot stopped or is not running: it never blocks reclamation. */
void reload_offline(reload_t *r, unsigned slot);

/** \brief Free the retired objects every worker is past. \return objects still waiting */
unsigned reload_reclaim(reload_t *r);

#endif /* HDL_NODE_SERVER_RELOAD_H */
