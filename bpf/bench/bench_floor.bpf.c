// SPDX-License-Identifier: GPL-2.0
/* The memory floor of a new flow, for scripts/bench/xdp-packet.ts: what any flow table of a given
 * size costs per new flow at least. It hashes the packet's source address and port (which the restore
 * harness changes per repetition), writes one 8-byte word into the 64-byte line that hash selects in
 * a table of `lines` lines (sized by the bench like Fulcrum's connection table), swaps the MACs and
 * sends the packet back, like the bare program. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 lines = 1;

struct line {
	__u64 w[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct line);
} floor_table SEC(".maps");

SEC("xdp")
int bench_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct tcphdr *th = (void *)(ip + 1);
	unsigned char tmp[ETH_ALEN];
	struct line *l;
	__u64 h;
	__u32 i;

	if ((void *)(th + 1) > end)
		return XDP_DROP;
	h = ((__u64)ip->saddr << 16 | th->source) * 0x9e3779b97f4a7c15ULL;
	i = (__u32)(((h >> 32) * lines) >> 32);
	l = bpf_map_lookup_elem(&floor_table, &i);
	if (!l)
		return XDP_DROP;
	l->w[0] = h;
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
