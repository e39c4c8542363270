/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Address and port rewrite of a parsed packet (nat), with the TTL and the checksums.
 */
#ifndef FL_LIB_REWRITE_H
#define FL_LIB_REWRITE_H

#include "parse.h"
#include "csum.h"

/*
 * Rewrites the destination (dst=1) or source (dst=0) address and port of the parsed packet and
 * fixes the checksums incrementally; the TTL / hop limit is decremented (we route). -1, with the
 * packet untouched, when the TTL would expire: the kernel then sends the ICMP time exceeded.
 */
static __always_inline int rewrite(struct pkt *p, void *end, int dst, const __u8 *addr, __be16 port)
{
	int v6 = p->flow.family == FL_FAMILY_INET6;
	__u32 l4d = 0;

	if (!v6) {
		struct iphdr *ip = p->l3;
		__u32 ipd;
		__be32 *field;

		if ((void *)(ip + 1) > end || ip->ttl <= 1)
			return -1;
		field = dst ? &ip->daddr : &ip->saddr;
		ipd = csum_delta_addr(0, (const __u8 *)field, addr, 0);
		l4d = ipd;
		/* TTL - 1: the 16-bit word {ttl, protocol} drops by one unit of its TTL byte, which in
		 * one's-complement is adding ~1 (0xfffe) in the byte order it is loaded in. */
		ip->ttl--;
		ipd += 0xfffe;
		ip->check = csum_apply(ip->check, ipd);
		__builtin_memcpy(field, addr, 4);
	} else {
		struct ipv6hdr *ip6 = p->l3;
		struct in6_addr *field;

		if ((void *)(ip6 + 1) > end || ip6->hop_limit <= 1)
			return -1;
		field = dst ? &ip6->daddr : &ip6->saddr;
		l4d = csum_delta_addr(0, (const __u8 *)field, addr, 1);
		ip6->hop_limit--;
		__builtin_memcpy(field, addr, 16);
	}

	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		__be16 *pf;
		if ((void *)(th + 1) > end)
			return -1; /* for the verifier: parse() checked it */
		pf = dst ? &th->dest : &th->source;
		l4d = csum_delta16(l4d, *pf, port);
		*pf = port;
		th->check = csum_apply(th->check, l4d);
	} else {
		struct udphdr *uh = p->l4;
		__be16 *pf;
		if ((void *)(uh + 1) > end)
			return -1; /* for the verifier: parse() checked it */
		pf = dst ? &uh->dest : &uh->source;
		l4d = csum_delta16(l4d, *pf, port);
		*pf = port;
		if (p->l4_check) {
			__u16 c = csum_apply(uh->check, l4d);
			uh->check = c ? c : 0xffff; /* RFC 768: a computed 0 is sent as all ones */
		}
	}
	return 0;
}

#endif
