/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The packet parser: Ethernet (one VLAN tag), IPv4 or IPv6 without extension headers, TCP or UDP
 * ports; anything else is not balanced.
 */
#ifndef FL_LIB_PARSE_H
#define FL_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "fulcrum_xdp.h"

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

struct pkt {
	void *l3;
	void *l4;
	__be16 *l4_check;   /* NULL for IPv4 UDP without checksum */
	__u32 src_fold;     /* XOR of the address words (fl_endpoint_hash) */
	__u32 dst_fold;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 vlan;
	__u8 tos;
	__u16 l3_len;       /* IP total length (fib lookup) */
	struct fl_flow_key flow __attribute__((aligned(8))); /* filled by fill_flow() for our packets only */
};

/* XOR of the four address words (what fl_endpoint_hash and flow_hash take). */
static __always_inline __u32 addr_fold(const __u8 *addr)
{
	const __u32 *w = (const __u32 *)addr;
	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

/* Reads the headers up to the ports; -1 for anything the program does not balance. Cheap on
 * purpose: most packets are not ours and leave after this and one filter read. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *cur = eth + 1;
	__be16 proto;
	__be16 *ports;

	if (cur > end)
		return -1;
	proto = eth->h_proto;
	p->vlan = 0;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr_ *vh = cur;
		if ((void *)(vh + 1) > end)
			return -1;
		proto = vh->proto;
		cur = vh + 1;
		p->vlan = 1;
	}
	p->l3 = cur;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->version != 4)
			return -1;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return -1;
		p->l4 = cur + ip->ihl * 4;
		p->proto = ip->protocol;
		p->family = FL_FAMILY_INET;
		p->src_fold = ip->saddr;
		p->dst_fold = ip->daddr;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return -1;
		/* Extension headers (including fragments) are not parsed: such packets pass. */
		p->l4 = ip6 + 1;
		p->proto = ip6->nexthdr;
		p->family = FL_FAMILY_INET6;
		p->src_fold = addr_fold((const __u8 *)&ip6->saddr);
		p->dst_fold = addr_fold((const __u8 *)&ip6->daddr);
	} else {
		return -1;
	}
	ports = p->l4;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		if ((void *)(th + 1) > end || th->doff < 5)
			return -1;
	} else if (p->proto == IPPROTO_UDP) {
		if ((void *)((struct udphdr *)p->l4 + 1) > end)
			return -1;
	} else {
		return -1;
	}
	p->sport = ports[0];
	p->dport = ports[1];
	return 0;
}

/* The rest of what a packet to (or from) one of our endpoints needs: the flow key, checksum field,
 * length and TOS. */
static __always_inline int fill_flow(struct xdp_md *ctx, struct pkt *p)
{
	void *end = (void *)(long)ctx->data_end;
	__u64 *src = (__u64 *)p->flow.src, *dst = (__u64 *)p->flow.dst;

	if (p->family == FL_FAMILY_INET) {
		struct iphdr *ip = p->l3;
		if ((void *)(ip + 1) > end)
			return -1;
		src[0] = ip->saddr;
		src[1] = 0;
		dst[0] = ip->daddr;
		dst[1] = 0;
		p->l3_len = bpf_ntohs(ip->tot_len);
		p->tos = ip->tos;
	} else {
		struct ipv6hdr *ip6 = p->l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(p->flow.src, &ip6->saddr, 16);
		__builtin_memcpy(p->flow.dst, &ip6->daddr, 16);
		p->l3_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		p->tos = 0;
	}
	/* sport, dport, proto, family, pad: one store (little-endian field order). */
	*(__u64 *)&p->flow.sport = (__u64)p->sport | (__u64)p->dport << 16 | (__u64)p->proto << 32 | (__u64)p->family << 40;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		if ((void *)(th + 1) > end)
			return -1;
		p->l4_check = &th->check;
	} else {
		struct udphdr *uh = p->l4;
		if ((void *)(uh + 1) > end)
			return -1;
		/* RFC 768: an IPv4 UDP checksum of 0 means "none" and must stay 0. */
		p->l4_check = (p->family == FL_FAMILY_INET && uh->check == 0) ? NULL : &uh->check;
	}
	return 0;
}

#endif
