/* SPDX-License-Identifier: Apache-2.0 */
/**
 * \file
 * \brief Keyed hashing for the resolver's tables (dcache, dflight), whose keys are handles that
 *        clients choose: SipHash-1-3 (Aumasson and Bernstein) under a per-table random key, so a
 *        client cannot aim many names at one bucket.
 */
#ifndef HDL_NODE_RESOLVER_RHASH_H
#define HDL_NODE_RESOLVER_RHASH_H

#include <stddef.h>
#include <stdint.h>

/** \brief SipHash-1-3 of \p len bytes at \p in under the 128-bit key \p k. */
uint64_t rhash_sip13(const uint8_t *in, size_t len, const uint64_t k[2]);

/**
 * \brief A fresh random key (getrandom()); when no entropy can be had, a fixed one (the hash
 *        still spreads keys well, it only loses its resistance to chosen names).
 */
void rhash_new_key(uint64_t k[2]);

#endif /* HDL_NODE_RESOLVER_RHASH_H */
