/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Small helpers shared by the cmocka tests that work on a store in a temporary directory.
 */
#ifndef HDL_TESTS_UNIT_TESTUTIL_H
#define HDL_TESTS_UNIT_TESTUTIL_H

#include <stdio.h>
#include <unistd.h>

/** \brief Remove an LMDB environment directory (data.mdb, lock.mdb and the directory). */
static inline void rm_env(const char *dir)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
}

#endif /* HDL_TESTS_UNIT_TESTUTIL_H */
