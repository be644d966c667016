/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief The server admin set of the configuration (srvadmin.h).
 */
#include "node/server/srvadmin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdl/error.h"
#include "node/server/authz.h"

int srvadmin_set_new(const char *const *list, unsigned n, srvadmin_set_t **out, char *err,
                     size_t errlen)
{
	*out = NULL;
	srvadmin_set_t *s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->refs = calloc(n ? n : 1, sizeof(*s->refs));
	s->text = calloc(n ? n : 1, sizeof(*s->text));
	if (!s->refs || !s->text)
		goto nomem;
	for (unsigned i = 0; i < n; i++) {
		if (!(s->text[i] = strdup(list[i])))
			goto nomem;
		s->n = i + 1;
		if (authz_parse_admin(s->text[i], &s->refs[i]) != HDL_EOK) {
			snprintf(err, errlen, "server_admin '%s' is not INDEX:HANDLE", list[i]);
			srvadmin_set_free(s);
			return HDL_EINVAL;
		}
	}
	*out = s;
	return HDL_EOK;
nomem:
	snprintf(err, errlen, "out of memory");
	srvadmin_set_free(s);
	return HDL_ENOMEM;
}

void srvadmin_set_free(void *set)
{
	srvadmin_set_t *s = set;
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n; i++)
		free(s->text[i]);
	free(s->text);
	free(s->refs);
	free(s);
}
