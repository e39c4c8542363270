/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Incremental Internet checksum updates (RFC 1071, RFC 1624).
 */
#ifndef FL_LIB_CSUM_H
#define FL_LIB_CSUM_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

/* One's-complement checksum arithmetic on 16-bit words (RFC 1071; byte order does not matter). */
static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'); `delta` is the sum of ~m + m' over the changed words. */
static __always_inline __u16 csum_apply(__u16 check, __u32 delta)
{
	return ~csum_fold((__u16)~check + delta);
}

static __always_inline __u32 csum_delta16(__u32 acc, __u16 from, __u16 to)
{
	return acc + (__u16)~from + to;
}

/* Delta of replacing the 4 (IPv4) or 16 (IPv6) address bytes `from` by `to`. */
static __always_inline __u32 csum_delta_addr(__u32 acc, const __u8 *from, const __u8 *to, int v6)
{
	const __u16 *f = (const __u16 *)from, *t = (const __u16 *)to;
	acc = csum_delta16(acc, f[0], t[0]);
	acc = csum_delta16(acc, f[1], t[1]);
	if (v6) {
#pragma unroll
		for (int i = 2; i < 8; i++)
			acc = csum_delta16(acc, f[i], t[i]);
	}
	return acc;
}

#endif
