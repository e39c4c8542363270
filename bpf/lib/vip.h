/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Is a packet ours: the endpoint filter, then the VIP (vip_index, else the vips map).
 */
#ifndef FL_LIB_VIP_H
#define FL_LIB_VIP_H

#include "maps.h"
#include "parse.h"

static __always_inline int filter_hit(__u32 h)
{
	__u32 word = h >> 6;
	__u64 *w = bpf_map_lookup_elem(&filter, &word);
	return w && (*w & (1ULL << (h & 63)));
}

/* The key of the packet's endpoint `addr`:`port` in `vips` / `nat_endpoints`. */
static __always_inline void endpoint_key(struct fl_vip_key *k, const struct pkt *p, const __u8 *addr, __be16 port)
{
	__builtin_memcpy(k->addr, addr, 16);
	k->port = port;
	k->proto = p->proto;
	k->family = p->family;
}

/* The VIP the packet is addressed to (h = its fl_endpoint_hash): vip_index when the copy there is
 * this VIP's, else the `vips` map. Fills *meta; -1 when it is not a VIP. */
static __always_inline int vip_lookup(struct pkt *p, __u32 h, struct fl_vip_meta *meta)
{
	struct fl_vip_key vk;
	struct fl_vip_slot *s = bpf_map_lookup_elem(&vip_index, &h);
	struct fl_vip_meta *m;

	if (s) {
		/* fl_vip_key: the address, then port, proto, family in one little-endian u32. */
		const __u64 *have = (const __u64 *)&s->key, *dst = (const __u64 *)p->flow.dst;
		__u32 rest = (__u32)(*(const __u64 *)&p->flow.sport >> 16); /* dport, proto, family */
		if (have[0] == dst[0] && have[1] == dst[1] && *(const __u32 *)&have[2] == rest) {
			*meta = s->meta;
			return 0;
		}
	}
	endpoint_key(&vk, p, p->flow.dst, p->dport);
	m = bpf_map_lookup_elem(&vips, &vk);
	if (!m)
		return -1;
	*meta = *m;
	return 0;
}

#endif
