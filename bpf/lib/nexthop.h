/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Sending a packet on: its next hop (the per-CPU cache of a backend, or bpf_fib_lookup), the
 * Ethernet rewrite, XDP_TX or redirect; dr sends to the backend's MAC.
 */
#ifndef FL_LIB_NEXTHOP_H
#define FL_LIB_NEXTHOP_H

#include "fulcrum_xdp.h"
#include "knobs.h"
#include "parse.h"

/*
 * The next hop towards dst: the cache in a backend's per-CPU state `c` (NULL: no caching) or the
 * FIB, whose result goes into `tmp` (and the cache). NULL when the kernel must help (no neighbour
 * yet, no route, forwarding off).
 */
static __always_inline struct fl_nexthop *next_hop(struct xdp_md *ctx, struct pkt *p, const __u8 *src, const __u8 *dst,
						   __be16 sport, __be16 dport, struct fl_backend_pcpu *c, __u32 gen, __u64 now,
						   struct fl_nexthop *tmp)
{
	if (c && c->nh.ifindex && c->nh.gen == gen && now < c->nh.expires)
		return &c->nh;
	{
		struct bpf_fib_lookup fib = {}; /* zeroed here, not on the cached path */

		fib.family = p->flow.family;
		fib.l4_protocol = p->flow.proto;
		fib.sport = sport;
		fib.dport = dport;
		fib.tot_len = p->l3_len;
		fib.ifindex = ctx->ingress_ifindex;
		if (p->flow.family == FL_FAMILY_INET) {
			fib.tos = p->tos;
			__builtin_memcpy(&fib.ipv4_src, src, 4);
			__builtin_memcpy(&fib.ipv4_dst, dst, 4);
		} else {
			__builtin_memcpy(fib.ipv6_src, src, 16);
			__builtin_memcpy(fib.ipv6_dst, dst, 16);
		}
		if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
			return NULL;
		__builtin_memcpy(tmp->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(tmp->smac, fib.smac, ETH_ALEN);
		tmp->ifindex = fib.ifindex;
	}
	tmp->gen = gen;
	tmp->pad = 0;
	tmp->expires = now + nexthop_ttl_jiffies;
	if (c)
		c->nh = *tmp;
	return tmp;
}

static __always_inline int send(struct xdp_md *ctx, const __u8 *dmac, const __u8 *smac, __u32 ifindex)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

/* Routes the (rewritten) packet and sends it out; XDP_PASS when the kernel must help. */
static __always_inline int forward(struct xdp_md *ctx, struct pkt *p, const __u8 *src, const __u8 *dst, __be16 sport,
				   __be16 dport, struct fl_backend_pcpu *bs, __u32 gen, __u64 now)
{
	struct fl_nexthop tmp, *nh;

	/* A tagged packet would need its VLAN device, which XDP cannot transmit on: the kernel routes it. */
	if (p->vlan)
		return XDP_PASS;
	nh = next_hop(ctx, p, src, dst, sport, dport, bs, gen, now, &tmp);
	if (!nh)
		return XDP_PASS;
	return send(ctx, nh->dmac, nh->smac, nh->ifindex);
}

static __always_inline int dr_send(struct xdp_md *ctx, struct pkt *p, const struct fl_backend *b, struct fl_backend_pcpu *bs,
				   __u64 now)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct fl_nexthop tmp, *nh = NULL;
	int have_mac = b->mac[0] | b->mac[1] | b->mac[2] | b->mac[3] | b->mac[4] | b->mac[5];

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (!p->vlan)
		nh = next_hop(ctx, p, p->flow.src, b->addr, p->flow.sport, p->flow.dport, bs, b->gen, now, &tmp);
	if (nh)
		return send(ctx, have_mac ? b->mac : nh->dmac, nh->smac, nh->ifindex);
	if (!have_mac)
		return XDP_PASS;
	/* Same segment (or tagged): back out of the ingress port, from the address it was sent to. */
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
	return XDP_TX;
}

#endif
