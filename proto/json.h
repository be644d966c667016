/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Handle.Net REST JSON form of handle values, both ways (GsonUtility's format).
 *
 * Output formats: "admin" (HS_ADMIN), "vlist" (HS_VLIST), "site" (HS_SITE family), "key"
 * (HS_PUBKEY as JWK, RSA/DSA), "string" (valid UTF-8 without disallowed control characters),
 * else "base64". Input also accepts "hex" and a bare JSON string as data.
 *
 * No I/O; jansson is used for the JSON tree.
 */
#ifndef HDL_PROTO_JSON_H
#define HDL_PROTO_JSON_H

#include <jansson.h>

#include "hdl/msg.h"
#include "hdl/values.h"

/**
 * \brief One value as REST JSON: {"index","type","data":{"format","value"},"ttl",
 *        "timestamp"?, "permissions"?, "references"?}.
 * \return a new reference, or NULL on allocation failure.
 */
json_t *hdl_json_from_value(const hdl_value_t *v);

/** \brief The "values" array of a handle. */
json_t *hdl_json_from_values(const hdl_value_t *v, uint32_t n);

/**
 * \brief Parse one REST JSON value. Binary data is built in \p a; strings are copied into \p a,
 *        so the result does not borrow from \p j.
 * \param err   on failure a short reason ("data.format: unknown format 'xyz'")
 * \retval HDL_EOK, HDL_EJSON (shape or content invalid), HDL_ENOMEM, HDL_ELIMIT
 */
int hdl_json_to_value(const json_t *j, hdl_arena_t *a, hdl_value_t *out, char *err, size_t errlen);

/**
 * \brief Parse an array of values (or {"values":[...]}, or a single value object).
 * \retval as hdl_json_to_value; HDL_ELIMIT when over HDL_MAX_VALUES
 */
int hdl_json_to_values(const json_t *j, hdl_arena_t *a, hdl_value_t **out, uint32_t *n, char *err,
                       size_t errlen);

/** \brief HS_SITE as the JSON object of siteinfo.json / REST format "site". */
json_t *hdl_json_from_site(const hdl_site_t *s);
/** \retval HDL_EOK, HDL_EJSON, HDL_ENOMEM */
int hdl_json_to_site(const json_t *j, hdl_arena_t *a, hdl_site_t *out, char *err, size_t errlen);

/** \brief ISO-8601 UTC "YYYY-MM-DDTHH:MM:SSZ" into \p out (21 bytes). */
void hdl_json_time(uint32_t t, char out[21]);
/** \brief Parse ISO-8601 UTC (with optional millis / offset). \retval HDL_EOK, HDL_EJSON */
int hdl_json_parse_time(const char *s, uint32_t *out);

#endif /* HDL_PROTO_JSON_H */
