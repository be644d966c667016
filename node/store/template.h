/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Metadata templates (标识元数据模板): what values an identifier under a prefix must and
 *        may carry, per (prefix, version), in the SNMS template shape (docs/snms-api.md,
 *        "Templates"); their records in the store's "meta" database; and the check of a
 *        handle's record against its template that every write path runs (the writer thread,
 *        `idnode import`).
 *
 * Which template a handle follows: the value at index 1001 of type TEMPLATE (data = the
 * version, as the SNMS API writes it) names a version of its own prefix's templates; without
 * one, the prefix's default template (if one is set) applies; without either, nothing is
 * checked. Under a template, indexes 1000-1999 are reserved (only the TEMPLATE value at 1001 may
 * be there), template items have indexes from 2000, and values below 1000 (URL, HS_ADMIN, ...)
 * are not governed.
 *
 * Records (meta names, the prefix ASCII upper-cased):
 *  - "tpl/<PREFIX>/<version>": the template as canonical JSON (tpl_to_json());
 *  - "tplset/<PREFIX>": JSON array of the prefix's versions (for listing and the per-prefix
 *    bound);
 *  - "tpldef/<PREFIX>": the version of the prefix's default template (raw bytes).
 *
 * Pattern constraints are POSIX extended regular expressions (regcomp REG_EXTENDED|REG_NOSUB,
 * C locale: they match bytes), compiled once when a template is parsed. glibc's matcher runs
 * without backtracking for patterns without back-references (classic ReDoS shapes such as
 * "^(a+)+$" run in linear time), but back-references make it exponential, and a counted
 * repetition is expanded into copies at compile time: nested ones explode regcomp in time and
 * memory ("(((a{0,255}){0,255}){0,255})" crashes it, "((){130}){7,}" takes seconds), and the
 * matcher's work grows with the number of states times the input length. So a pattern is
 * refused when it is longer than tpl_limits_t.max_pattern, holds a back-reference, nests
 * counted repetitions, or its estimated automaton size (a repetition multiplies what it
 * repeats) is over TPL_RE_SIZE_MAX; and the input is bounded too (a value over the item's
 * maxLength, at most tpl_limits_t.max_value bytes, is refused before matching). Measured on
 * glibc 2.36: the worst accepted shapes compile in under 0.1 s and match 4 KiB in about 10 ms.
 *
 * Thread model: a tpl_t is immutable after tpl_parse(); a tpl_cache_t belongs to one thread.
 */
#ifndef HDL_NODE_STORE_TEMPLATE_H
#define HDL_NODE_STORE_TEMPLATE_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdl/msg.h"

struct store_batch;
struct store_reader;

#define TPL_INDEX_REF    1001u /**< the value naming a handle's template (type TEMPLATE) */
#define TPL_RESERVED_MIN 1000u /**< 1000..1999 are reserved */
#define TPL_INDEX_MIN    2000u /**< first index of template items */
#define TPL_PREFIX_MAX   64u   /**< bytes of a template's prefix */
#define TPL_VERSION_MAX  128u  /**< bytes of a version */
#define TPL_NAME_MAX     128u  /**< bytes of an item's name or idType, of a template's name */
#define TPL_TEXT_MAX     1024u /**< bytes of a description */
#define TPL_CODE_MAX     16u   /**< bytes of an industry code */
#define TPL_RE_SIZE_MAX  256u  /**< estimated automaton size of a pattern at most */
#define TPL_MSG_MAX      160u  /**< refusal texts fit this (the writer's job message) */
#define TPL_REFUSED      1     /**< result: refused, the reason is in the message */

/** Bounds on templates (the template_* configuration keys). */
typedef struct tpl_limits {
	uint32_t max_items;      /**< items of one template (0 = 256) */
	uint32_t max_pattern;    /**< bytes of one pattern (0 = 256) */
	uint32_t max_value;      /**< bytes of a value checked against an item (0 = 4096) */
	uint32_t max_per_prefix; /**< templates (versions) of one prefix (0 = 64) */
} tpl_limits_t;

/** Data types of an item (metadata.type). */
typedef enum tpl_kind {
	TPL_K_STRING = 0, /**< "string": text */
	TPL_K_NUMBER,     /**< "number": a decimal number, optionally within minimum..maximum */
	TPL_K_DATE,       /**< "date": YYYY-MM-DD, a real calendar date */
} tpl_kind_t;

/** One item: a value the identifiers of this template carry. */
typedef struct tpl_item {
	char *name;      /**< display name (中文名称) */
	char *id_type;   /**< the value's type (idType) */
	uint32_t index;  /**< idIndex (>= 2000); 0 = not given (an update adds it) */
	int8_t required; /**< 1 required; -1 not given (an update keeps the old) */
	int8_t state;    /**< 1 enabled, 0 disabled; -1 not given (an update keeps the old) */
	tpl_kind_t kind;
	uint32_t min_len; /**< characters (code points) */
	uint32_t max_len; /**< characters; 0 = only the max_value bound */
	bool has_min, has_max;
	double minimum, maximum; /**< TPL_K_NUMBER bounds */
	char *pattern;           /**< NULL = none */
	regex_t re;              /**< compiled \p pattern */
} tpl_item_t;

/** A template. */
typedef struct tpl {
	char *prefix; /**< as given ("88.100.1") */
	char *version;
	char *name; /**< may be NULL */
	char *description;
	char *
	    industry[4]; /**< industryCategory, industrySpecific, industryTrade, industrySubclass */
	int type;        /**< 元数据对象类型: 1 active carrier, 2 other; 0 = not given */
	int8_t dflt;     /**< request field "default": 1 make it the prefix's default, 0 stop being
	                      it, -1 not given (not stored in the record) */
	tpl_item_t
	    *items; /**< by index, ascending (after tpl_parse on a stored record, or merge) */
	uint32_t n_items;
} tpl_t;

/** How tpl_parse() reads its input. */
enum tpl_parse_mode {
	TPL_PARSE_STORED = 0, /**< a stored record: everything given and valid */
	TPL_PARSE_CREATE,     /**< a new template: idIndex optional (assigned from 2000) */
	TPL_PARSE_UPDATE,     /**< an update: idIndex, required, state optional (merged) */
};

/**
 * \brief Parse and check a template from JSON (the SNMS shape; idIndex may be a numeric
 *        string), compiling its patterns.
 * \param err a reason naming the field ("items[2].metadata.pattern: back-references are not
 *        allowed")
 * \retval HDL_EOK, HDL_EJSON (invalid: \p err), HDL_ENOMEM
 */
int tpl_parse(const json_t *j, const tpl_limits_t *lim, int mode, tpl_t **out, char *err,
              size_t errlen);

/** \brief Parse a stored record (canonical JSON). \retval as tpl_parse() */
int tpl_parse_raw(hdl_slice_t raw, const tpl_limits_t *lim, tpl_t **out, char *err, size_t errlen);

/** \brief Free a template (NULL: nothing). */
void tpl_free(tpl_t *t);

/**
 * \brief The canonical JSON of a template (what is stored and what GET answers).
 * \return a new reference, NULL when out of memory
 */
json_t *tpl_to_json(const tpl_t *t);

/**
 * \brief Apply \p upd (parsed with TPL_PARSE_UPDATE or CREATE) to \p old: the template fields
 *        are replaced; an item given with an idIndex of \p old must keep its idType and gets the
 *        fields given (state, required only when given); an item with a new idIndex, or none
 *        (the next free index), is added when its idType is new. Items are never removed.
 * \retval HDL_EOK (*out set), HDL_EJSON (\p err), HDL_ENOMEM
 */
int tpl_merge(const tpl_t *old, const tpl_t *upd, const tpl_limits_t *lim, tpl_t **out, char *err,
              size_t errlen);

/**
 * \brief Check a pattern without compiling it: length, no back-reference, bracket and brace
 *        syntax, estimated automaton size.
 * \retval HDL_EOK, HDL_EJSON (\p err says why)
 */
int tpl_pattern_check(const char *pattern, size_t max_len, char *err, size_t errlen);

/**
 * \brief Check a handle's record \p v (\p n values, as it would be stored) against \p t.
 * \param msg the refusal ("Template 88.100.1:1.0: index 2003 (MODEL) is required")
 * \retval HDL_EOK, TPL_REFUSED, HDL_ENOMEM
 */
int tpl_validate(const tpl_t *t, const tpl_limits_t *lim, const hdl_value_t *v, uint32_t n,
                 char *msg, size_t cap);

/** \brief The meta record name of (\p prefix, \p version). \return length, 0 if invalid */
size_t tpl_key(char *out, size_t cap, hdl_slice_t prefix, hdl_slice_t version);

/**
 * Record lookup for the check: the meta record \p name, valid until the next store call.
 * \retval HDL_EOK, HDL_ENOENT, other errors
 */
typedef int (*tpl_fetch_fn)(void *ctx, const char *name, hdl_slice_t *raw);

/** \brief A tpl_fetch_fn over a write batch (\p ctx: store_batch_t). */
int tpl_fetch_batch(void *ctx, const char *name, hdl_slice_t *raw);
/** \brief A tpl_fetch_fn over a read snapshot (\p ctx: store_reader_t between begin and end). */
int tpl_fetch_reader(void *ctx, const char *name, hdl_slice_t *raw);

/** Compiled templates of one thread, bounded, each checked against its record per use. */
typedef struct tpl_cache tpl_cache_t;

/** \brief New cache of at most \p max templates. \retval HDL_EOK, HDL_ENOMEM */
int tpl_cache_new(const tpl_limits_t *lim, unsigned max, tpl_cache_t **out);
/** \brief Free the cache and its templates. */
void tpl_cache_free(tpl_cache_t *c);

/**
 * \brief Check the record \p v of \p handle against the template it follows (see the file
 *        comment), fetching records through \p fetch. A cached template is used while its
 *        record's bytes are unchanged; else the record is parsed (and its patterns compiled)
 *        again. Prefix handles (0.NA/...) are not checked.
 * \param msg the refusal, the same on every path
 * \retval HDL_EOK (valid, or no template applies), TPL_REFUSED, HDL_ENOMEM, a fetch error
 */
int tpl_check(tpl_cache_t *c, tpl_fetch_fn fetch, void *ctx, hdl_slice_t handle,
              const hdl_value_t *v, uint32_t n, char *msg, size_t cap);

/** Outcome of a template change in a batch (tpl_store_put(), tpl_store_del()). */
typedef struct tpl_change {
	uint32_t rcode;     /**< Handle response code of a refusal (101 exists, 100 not found,
	                         202 invalid, 2 internal) */
	bool had_before;    /**< the template existed */
	hdl_slice_t before; /**< its record before (heap copy) */
	uint8_t *after;     /**< the new record (heap); NULL after a delete */
	size_t after_len;
} tpl_change_t;

/** \brief Free what a tpl_change_t holds (after every tpl_store_put() / tpl_store_del()). */
void tpl_change_clear(tpl_change_t *chg);

#define TPL_PUT_CREATE 0x1u /**< may create a new template */
#define TPL_PUT_UPDATE 0x2u /**< may update an existing one (merge) */

/**
 * \brief Store a template in the batch: create it (TPL_PUT_CREATE; refused with RC 101 when it
 *        exists) or merge into the stored one (TPL_PUT_UPDATE; RC 100 when it does not exist),
 *        keep the prefix's version list (at most lim->max_per_prefix) and default.
 * \param upd parsed with TPL_PARSE_CREATE or TPL_PARSE_UPDATE
 * \param msg a refusal's text
 * \retval HDL_EOK, TPL_REFUSED (chg->rcode, \p msg), HDL_ENOMEM, store errors
 */
int tpl_store_put(struct store_batch *b, const tpl_t *upd, unsigned flags, const tpl_limits_t *lim,
                  tpl_change_t *chg, char *msg, size_t cap);

/**
 * \brief Delete (\p prefix, \p version) in the batch, with its place in the version list and
 *        the default when it was that.
 * \retval HDL_EOK, TPL_REFUSED (RC 100: no such template), store errors
 */
int tpl_store_del(struct store_batch *b, hdl_slice_t prefix, hdl_slice_t version, tpl_change_t *chg,
                  char *msg, size_t cap);

/**
 * \brief The versions of \p prefix's templates (a JSON array, new reference) and its default
 *        (\p *dflt, heap, NULL if none).
 * \retval HDL_EOK (an empty array when none), HDL_ENOMEM, a fetch error
 */
int tpl_list(tpl_fetch_fn fetch, void *ctx, hdl_slice_t prefix, json_t **versions, char **dflt);

/**
 * \brief Read (\p prefix, \p version): \p *out parsed (patterns compiled) and whether it is the
 *        prefix's default.
 * \retval HDL_EOK, HDL_ENOENT, HDL_ESTORE (the record does not parse), HDL_ENOMEM, fetch errors
 */
int tpl_get(tpl_fetch_fn fetch, void *ctx, hdl_slice_t prefix, hdl_slice_t version,
            const tpl_limits_t *lim, tpl_t **out, bool *is_default);

/** \brief Check a prefix as templates name it (1..64 bytes, no '/', no spaces or controls). */
bool tpl_prefix_ok(hdl_slice_t prefix);
/** \brief Check a version (1..128 bytes of UTF-8, no controls). */
bool tpl_version_ok(hdl_slice_t version);

/** \brief The limits with defaults filled in. */
tpl_limits_t tpl_limits_or_default(const tpl_limits_t *lim);

#endif /* HDL_NODE_STORE_TEMPLATE_H */
