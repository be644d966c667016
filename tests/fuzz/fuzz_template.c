/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Fuzz target: metadata templates (node/store/template.c). The input up to the first NUL
 *        is a template record (JSON); what follows the NUL is the data of a value given for every
 *        item of the template. Checks: a template that parses writes canonical JSON that parses
 *        again to the same text; a merge of it with itself keeps its items; the record check
 *        answers success or a refusal with a NUL-terminated message of at most TPL_MSG_MAX
 *        bytes, the same whatever the order of the values; the pattern guard on the input as a
 *        pattern either refuses it or lets regcomp take it.
 */
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/store/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const tpl_t *t, const uint8_t *d, size_t n)
{
	hdl_value_t v[32];
	uint32_t k = 0;
	for (uint32_t i = 0; i < t->n_items && k < 32; i++, k++) {
		memset(&v[k], 0, sizeof(v[k]));
		v[k].index = t->items[i].index;
		v[k].type = hdl_slice_str(t->items[i].id_type);
		v[k].data = (hdl_slice_t){d, (uint32_t)n};
	}
	char msg[TPL_MSG_MAX], msg2[TPL_MSG_MAX];
	memset(msg, 'z', sizeof(msg));
	int r = tpl_validate(t, NULL, v, k, msg, sizeof(msg));
	if (r != HDL_EOK && r != TPL_REFUSED)
		abort();
	if (r == TPL_REFUSED && memchr(msg, '\0', sizeof(msg)) == NULL)
		abort();
	/* reversed order: the same verdict and message */
	hdl_value_t w[32];
	for (uint32_t i = 0; i < k; i++)
		w[i] = v[k - 1 - i];
	int r2 = tpl_validate(t, NULL, w, k, msg2, sizeof(msg2));
	if (r2 != r || (r == TPL_REFUSED && strcmp(msg, msg2) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t jl = nul ? (size_t)(nul - data) : size;
	const uint8_t *rest = nul ? nul + 1 : data + size;
	size_t rl = nul ? size - jl - 1 : 0;

	char err[200];
	tpl_t *t = NULL;
	int r = tpl_parse_raw((hdl_slice_t){data, (uint32_t)jl}, NULL, &t, err, sizeof(err));
	if (r != HDL_EOK && r != HDL_EJSON && r != HDL_ENOMEM)
		abort();
	if (r == HDL_EOK) {
		json_t *j = tpl_to_json(t);
		char *a = j ? json_dumps(j, JSON_COMPACT) : NULL;
		tpl_t *u = NULL;
		if (a && tpl_parse_raw(hdl_slice_str(a), NULL, &u, err, sizeof(err)) != HDL_EOK)
			abort();
		json_t *j2 = u ? tpl_to_json(u) : NULL;
		char *b = j2 ? json_dumps(j2, JSON_COMPACT) : NULL;
		if (a && b && strcmp(a, b) != 0)
			abort();
		tpl_t *m = NULL;
		if (tpl_merge(t, t, NULL, &m, err, sizeof(err)) == HDL_EOK &&
		    m->n_items != t->n_items)
			abort();
		check_record(t, rest, rl);
		tpl_free(m);
		free(a);
		free(b);
		json_decref(j);
		json_decref(j2);
		tpl_free(u);
		tpl_free(t);
	}
	/* the input as a pattern */
	char pat[512];
	size_t pl = jl < sizeof(pat) - 1 ? jl : sizeof(pat) - 1;
	memcpy(pat, data, pl);
	pat[pl] = '\0';
	if (tpl_pattern_check(pat, 256, err, sizeof(err)) == HDL_EOK) {
		regex_t re;
		if (regcomp(&re, pat, REG_EXTENDED | REG_NOSUB) == 0) {
			char in[1025];
			size_t il = rl < 1024 ? rl : 1024;
			memcpy(in, rest, il);
			in[il] = '\0';
			(void)regexec(&re, in, 0, NULL, 0);
			regfree(&re);
		}
	}
	return 0;
}
