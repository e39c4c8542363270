/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The flow hash, which picks a flow's Maglev entry and its conntrack set (src/xdp/abi.ts flowHash
 * computes the same).
 */
#ifndef FL_LIB_HASH_H
#define FL_LIB_HASH_H

#include <linux/types.h>
#include "knobs.h"

/*
 * The flow's hash: its Maglev entry (maglev_pos), conntrack set (ct_set_of) and tag (low 16
 * bits). Every LB node computes the same value (hash_seed is a shared knob), so they all pick the
 * same backend. Multiply-xorshift rounds over the folded 5-tuple (murmur3's fmix64 constants):
 * even over Maglev entries and sets (test/unit/xdp-abi.test.ts), cheaper than jhash.
 */
static __always_inline __u32 flow_hash(__u32 src_fold, __u32 dst_fold, __be16 sport, __be16 dport, __u8 proto)
{
	__u64 a = ((__u64)src_fold << 32) | dst_fold;
	__u64 b = ((__u64)(((__u32)sport << 16) | dport) << 32) | (hash_seed ^ proto);
	__u64 h = a * 0x9e3779b97f4a7c15ULL;

	/* a is mixed down before b joins: a sum of a*K1 and b*K2 kept a linear trace of both, and
	 * flows whose address and port rise together crowded some conntrack sets. */
	h ^= h >> 32;
	h ^= b;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 32;
	return (__u32)h;
}

/* The flow's entry in a Maglev table: the hash scaled to [0, maglev_size) by a multiply (a
 * division costs about 10 ns), over the hash rotated so that it does not follow the conntrack set,
 * which scales the unrotated hash. */
static __always_inline __u32 maglev_pos(__u32 hash)
{
	__u32 r = (hash << 16) | (hash >> 16);
	return (__u32)(((__u64)r * maglev_size) >> 32);
}

#endif
