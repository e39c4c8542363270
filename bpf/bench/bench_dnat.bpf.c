// SPDX-License-Identifier: GPL-2.0
/* A deliberately small DNAT load balancer, the demonstration subject of the XDP bench harness (not
 * Fulcrum's dataplane): IPv4 TCP/UDP to vip:vip_port is rewritten to a backend chosen by a hash of
 * the 5-tuple and remembered in an LRU flow table, checksums fixed incrementally (RFC 1624), and sent
 * back out (XDP_TX). Everything else passes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bench_dnat.h"

const volatile __be32 vip = 0;
const volatile __be16 vip_port = 0;
const volatile __u32 nbackends = 1;

/* Backends by index 0..nbackends-1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, struct dnat_backend);
} dnat_backends SEC(".maps");

/* Established flows -> backend index. Per-CPU LRU lists (BPF_F_NO_COMMON_LRU), as Katran does:
 * with the common list every insert into a full table takes a global lock to evict. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct dnat_flow);
	__type(value, __u32);
} dnat_flows SEC(".maps");

static __always_inline __u16 csum_fold(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 32-bit field. */
static __always_inline void csum_replace4(__u16 *sum, __be32 from, __be32 to)
{
	__u32 c = (__u16)~*sum;
	c += (__u16)~(from & 0xffff);
	c += (__u16)~(from >> 16);
	c += to & 0xffff;
	c += to >> 16;
	*sum = ~csum_fold(c);
}

static __always_inline void csum_replace2(__u16 *sum, __be16 from, __be16 to)
{
	__u32 c = (__u16)~*sum;
	c += (__u16)~from;
	c += to;
	*sum = ~csum_fold(c);
}

static __always_inline __u32 flow_hash(const struct dnat_flow *f)
{
	__u32 h = f->saddr * 0x9e3779b1u;
	h ^= ((__u32)f->sport << 16 | f->dport) * 0x85ebca6bu;
	h ^= f->daddr * 0xc2b2ae35u;
	h ^= h >> 15;
	return h;
}

SEC("xdp")
int bench_dnat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->daddr != vip)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS;
	__u16 *l4sum;
	__be16 *ports = (void *)(ip + 1);
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(ip + 1);
		if ((void *)(th + 1) > end)
			return XDP_PASS;
		l4sum = &th->check;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(ip + 1);
		if ((void *)(uh + 1) > end)
			return XDP_PASS;
		l4sum = &uh->check;
	} else {
		return XDP_PASS;
	}
	if (ports[1] != vip_port)
		return XDP_PASS;

	struct dnat_flow f = { .saddr = ip->saddr, .daddr = ip->daddr, .sport = ports[0], .dport = ports[1], .proto = ip->protocol };
	__u32 idx;
	__u32 *known = bpf_map_lookup_elem(&dnat_flows, &f);
	if (known) {
		idx = *known;
	} else {
		idx = nbackends ? flow_hash(&f) % nbackends : 0;
		bpf_map_update_elem(&dnat_flows, &f, &idx, BPF_ANY);
	}
	struct dnat_backend *be = bpf_map_lookup_elem(&dnat_backends, &idx);
	if (!be || !be->addr)
		return XDP_DROP;

	csum_replace4(&ip->check, ip->daddr, be->addr);
	/* UDP checksum 0 means "none" and stays 0. */
	if (ip->protocol == IPPROTO_TCP || *l4sum) {
		csum_replace4(l4sum, ip->daddr, be->addr);
		csum_replace2(l4sum, ports[1], be->port);
	}
	ip->daddr = be->addr;
	ports[1] = be->port;
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
