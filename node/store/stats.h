/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Usage statistics per prefix and per day, as kept in the store's "stats" database: the
 *        record of one (day, prefix) with its registrations, its resolutions by transport and
 *        response code, a HyperLogLog sketch of the identifiers resolved (unique count) and a
 *        space-saving summary of the most resolved identifiers; the sketches, their merge and
 *        the record's encoding (docs/statistics.md).
 *
 * Record encoding (version 1, big-endian like the Handle wire format), fields in this order:
 *
 *     U8  version (1)        U8  HLL precision (STATS_HLL_P)
 *     U64 created            U64 modified           U64 deleted
 *     U16 n, n x (U8 transport, U32 rcode, U64 count)            resolutions, sorted, count > 0
 *     U8  HLL form: 0 empty, 1 sparse (U16 n, n x (U16 register, U8 value), registers
 *         increasing), 2 dense (STATS_HLL_M register bytes)
 *     U16 n, n x (U16 length, name bytes, U64 count, U64 error)  top identifiers, count falling
 *
 * U64 is two U32, high first. The decoder is strict: a known version and precision, counts
 * within their limits, registers within range, no trailing bytes.
 *
 * Key of a record: U32 day (days since 1970-01-01 UTC) then the prefix as the store folds it
 * ("88.100.1"), or STATS_OTHER for resolutions that name no homed prefix.
 */
#ifndef HDL_NODE_STORE_STATS_H
#define HDL_NODE_STORE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

#define STATS_VERSION    1u
#define STATS_HLL_P      14u                 /**< HyperLogLog precision: 0.81 % standard error */
#define STATS_HLL_M      (1u << STATS_HLL_P) /**< registers */
#define STATS_HLL_MAXR   (64u - STATS_HLL_P + 1u) /**< largest register value */
#define STATS_PREFIX_MAX 128u  /**< longest prefix kept under its own name (longer: STATS_OTHER) */
#define STATS_NAME_MAX   128u  /**< longest identifier a top list keeps (longer: counted only) */
#define STATS_TOP_MAX    1024u /**< entries of a top list at most */
#define STATS_OTHER      "-"   /**< the prefix name of resolutions outside the homed prefixes */
#define STATS_KEY_MAX    (4u + STATS_PREFIX_MAX)

/** Transports, as statistics and metrics label them. */
typedef enum stats_transport {
	STATS_T_UDP = 0,
	STATS_T_TCP,
	STATS_T_HTTP,  /**< the HTTP native tunnel */
	STATS_T_HTTPS, /**< the native tunnel over TLS */
	STATS_T_TLS,   /**< Handle TCP framing over TLS */
	STATS_T_REST,  /**< the REST API and the HTTP proxy (GET /api/handles/..., GET /<handle>) */
	STATS_T_OTHER,
	STATS_T_N
} stats_transport_t;

/** \brief "udp", "tcp", "http", "https", "tls", "rest", "other". */
const char *stats_transport_name(unsigned t);
/** \brief Parse a transport name. \return the stats_transport_t, or -1 */
int stats_transport_parse(const char *s);

/** \brief 64-bit hash of \p n bytes (the sketches' hash; fixed, so sketches of several runs and
 *        workers merge). */
uint64_t stats_hash(const void *p, size_t n);

/* ---- HyperLogLog ----------------------------------------------------------------------------- */

/** \brief Add the item with hash \p h to the STATS_HLL_M registers \p reg. */
static inline void stats_hll_add(uint8_t *reg, uint64_t h)
{
	uint32_t idx = (uint32_t)(h >> (64u - STATS_HLL_P));
	uint64_t rest = (h << STATS_HLL_P) | (1ull << (STATS_HLL_P - 1u)); /* rank <= 64 - p + 1 */
	uint8_t rank = (uint8_t)(__builtin_clzll(rest) + 1);
	if (reg[idx] < rank)
		reg[idx] = rank;
}

/** \brief Register-wise maximum: \p dst becomes the sketch of both sets. */
void stats_hll_merge(uint8_t *dst, const uint8_t *src);

/**
 * \brief Estimated number of distinct items added to \p reg (Ertl's improved estimator for
 *        HyperLogLog, arXiv:1702.01284, section 4: no empirical bias tables, good over the whole
 *        range, small counts included).
 */
double stats_hll_estimate(const uint8_t *reg);

/* ---- top identifiers (space-saving) ---------------------------------------------------------- */

/** One monitored identifier. */
typedef struct stats_top {
	uint64_t hash;
	uint64_t count; /**< times counted (an overestimate by at most \p error) */
	uint64_t error; /**< count it inherited when it replaced another identifier */
	uint16_t len;
	uint8_t name[STATS_NAME_MAX];
} stats_top_t;

/**
 * A space-saving summary (Metwally, Agrawal, El Abbadi, "Efficient computation of frequent and
 * top-k elements in data streams", 2005) of at most \p cap identifiers: an identifier that is
 * not monitored replaces one with the smallest count and inherits that count as its error, so
 * every identifier counted more than N / cap times (N = all counted) is in the list.
 */
typedef struct stats_toplist {
	stats_top_t *e; /**< cap entries, n in use */
	uint32_t n, cap;
	uint16_t *index; /**< open-addressing index by hash: entry + 1, 0 = empty; 2 x cap slots */
	uint32_t index_mask;
	uint64_t min;    /**< a lower bound of the smallest count (for the replacement search) */
	uint32_t cursor; /**< where the replacement search goes on */
} stats_toplist_t;

/** \brief Allocate a summary of \p cap entries (1..STATS_TOP_MAX). \retval HDL_EOK, HDL_ENOMEM,
 *         HDL_EINVAL */
int stats_top_init(stats_toplist_t *t, uint32_t cap);
void stats_top_free(stats_toplist_t *t);
/** \brief Forget every entry (keeps the storage). */
void stats_top_clear(stats_toplist_t *t);
/**
 * \brief Count \p by occurrences of the identifier \p name (\p n bytes, hash \p h). Names longer
 *        than STATS_NAME_MAX are not monitored.
 */
void stats_top_add(stats_toplist_t *t, uint64_t h, const uint8_t *name, size_t n, uint64_t by);
/**
 * \brief Merge the summary \p src into \p dst (mergeable summaries): counts and errors of the
 *        same identifier add up; an identifier missing from a full summary gets that summary's
 *        smallest count added to its count and its error; the \p dst->cap largest are kept.
 * \retval HDL_EOK, HDL_ENOMEM
 */
int stats_top_merge(stats_toplist_t *dst, const stats_toplist_t *src);
/** \brief Sort the entries by count, largest first (ties by name), and rebuild the index. */
void stats_top_sort(stats_toplist_t *t);

/* ---- one (day, prefix) record ---------------------------------------------------------------- */

/** Resolutions of one transport and response code. */
typedef struct stats_res {
	uint8_t transport; /**< stats_transport_t */
	uint32_t rcode;
	uint64_t count;
} stats_res_t;

#define STATS_RES_MAX 512u /**< (transport, rcode) pairs in one record at most */

/** The statistics of one prefix on one day. */
typedef struct stats_day {
	uint32_t day;                     /**< days since 1970-01-01 UTC */
	uint8_t prefix[STATS_PREFIX_MAX]; /**< folded prefix, or STATS_OTHER */
	uint32_t prefix_len;
	uint64_t created, modified, deleted; /**< registrations applied (audit trail) */
	stats_res_t *res;                    /**< n_res, sorted by (transport, rcode) */
	uint32_t n_res, cap_res;
	uint8_t *hll;  /**< STATS_HLL_M registers */
	bool hll_used; /**< a register is set */
	stats_toplist_t top;
} stats_day_t;

/** \brief Empty record for \p prefix on \p day with a top list of \p top_cap entries.
 *  \retval HDL_EOK, HDL_ENOMEM, HDL_EINVAL (prefix too long or empty) */
int stats_day_init(stats_day_t *d, uint32_t day, hdl_slice_t prefix, uint32_t top_cap);
void stats_day_free(stats_day_t *d);

/** \brief Add \p count resolutions of (\p transport, \p rcode). \retval HDL_EOK, HDL_ENOMEM,
 *         HDL_ELIMIT (STATS_RES_MAX pairs already) */
int stats_day_add_res(stats_day_t *d, unsigned transport, uint32_t rcode, uint64_t count);
/** \brief Resolutions in all. */
uint64_t stats_day_resolutions(const stats_day_t *d);

/** \brief Merge \p src (same day and prefix) into \p dst: counts add, sketches merge.
 *  \retval HDL_EOK, HDL_ENOMEM, HDL_ELIMIT */
int stats_day_merge(stats_day_t *dst, const stats_day_t *src);

/** \brief Store key of (\p day, \p prefix) into \p out (STATS_KEY_MAX bytes). \return length, 0 if
 *         the prefix is empty or too long */
size_t stats_key(uint32_t day, hdl_slice_t prefix, uint8_t *out);
/** \brief Split a key. \retval HDL_EOK, HDL_EMALF */
int stats_key_parse(hdl_slice_t key, uint32_t *day, hdl_slice_t *prefix);

/** \brief Encoded size of \p d (an upper bound). */
size_t stats_day_size(const stats_day_t *d);
/** \brief Encode \p d. \retval HDL_EOK, HDL_ESPACE (\p cap too small) */
int stats_day_encode(const stats_day_t *d, uint8_t *out, size_t cap, size_t *outlen);
/**
 * \brief Decode a record into \p d, which must come from stats_day_init() (any day and prefix:
 *        the caller sets them from the key); its top list keeps at most its capacity of the
 *        record's entries (the largest).
 * \retval HDL_EOK, HDL_ETRUNC, HDL_ELIMIT, HDL_EMALF (bad form, register or order),
 *         HDL_EVERSION, HDL_ETRAILING, HDL_ENOMEM
 */
int stats_day_decode(const uint8_t *p, size_t len, stats_day_t *d);

/** \brief "2026-12-01" for \p day into \p out (11 bytes). \return \p out */
char *stats_day_str(uint32_t day, char out[11]);
/** \brief Parse "YYYY-MM-DD". \retval HDL_EOK, HDL_EINVAL */
int stats_day_parse(const char *s, uint32_t *day);

#endif /* HDL_NODE_STORE_STATS_H */
