// SPDX-License-Identifier: GPL-2.0
/* Bench front end for BPF_PROG_TEST_RUN: with repeat > 1 the kernel re-runs a program on the same
 * buffer without restoring it, so a rewriting program would see its own output from the second run
 * on. This program puts the original packet back (moving the head first if the length changed),
 * optionally makes it a new flow (source port, plus two bytes of the source address, from a per-CPU
 * counter, checksums fixed), then tail-calls the program under test in bench_next[0]. Its own cost is measured by
 * tail-calling the bare program (bench_bare.bpf.c) and subtracted (scripts/bench/xdp-lib.ts). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bench_restore.h"

/* The packet to restore (slot 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_packet);
} bench_pkt SEC(".maps");

/* Per-CPU flow counter for new_flow (runs are pinned to one CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_flow SEC(".maps");

/* The program under test (slot 0). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_next SEC(".maps");

/* RFC 1624 eqn. 3 for one 16-bit field: HC' = ~(~HC + ~m + m'). */
static __always_inline __u16 csum_replace2(__u16 sum, __u16 from, __u16 to)
{
	__u32 c = (__u16)~sum;
	c += (__u16)~from;
	c += to;
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return ~(__u16)c;
}

SEC("xdp")
int bench_restore(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct bench_packet *p = bpf_map_lookup_elem(&bench_pkt, &zero);
	if (!p)
		return XDP_ABORTED;
	__u32 len = p->len;
	if (len < 14 || len > BENCH_PKT_MAX)
		return XDP_ABORTED;
	int cur = (int)(ctx->data_end - ctx->data);
	if (cur != (int)len && bpf_xdp_adjust_head(ctx, cur - (int)len))
		return XDP_ABORTED;
	if (bpf_xdp_store_bytes(ctx, 0, p->pkt, len))
		return XDP_ABORTED;
	if (p->new_flow) {
		__u32 *n = bpf_map_lookup_elem(&bench_flow, &zero);
		if (!n)
			return XDP_ABORTED;
		__u32 flow = ++*n;
		__u16 port = (__u16)flow;
		__u16 addr = (__u16)(flow >> 16);
		/* Checksums stay valid: L4 covers port and address (pseudo-header), IPv4 header the address.
		 * Direct packet access (the load/store helpers would cost more than some programs under
		 * test); offsets are masked below 512 and each pointer is checked right before use. */
		void *data = (void *)(long)ctx->data;
		void *end = (void *)(long)ctx->data_end;
		__u16 *sport = data + (p->sport_off & 0x1ff);
		if ((void *)(sport + 1) > end)
			return XDP_ABORTED;
		__u16 old_port = *sport;
		*sport = port;
		__u16 old_addr = 0;
		if (p->saddr_off) {
			__u16 *saddr = data + (p->saddr_off & 0x1ff);
			if ((void *)(saddr + 1) > end)
				return XDP_ABORTED;
			old_addr = *saddr;
			*saddr = addr;
			if (p->ipcsum_off) {
				__u16 *ipsum = data + (p->ipcsum_off & 0x1ff);
				if ((void *)(ipsum + 1) > end)
					return XDP_ABORTED;
				*ipsum = csum_replace2(*ipsum, old_addr, addr);
			}
		}
		if (p->l4csum_off) {
			__u16 *l4sum = data + (p->l4csum_off & 0x1ff);
			if ((void *)(l4sum + 1) > end)
				return XDP_ABORTED;
			__u16 sum = csum_replace2(*l4sum, old_port, port);
			if (p->saddr_off)
				sum = csum_replace2(sum, old_addr, addr);
			*l4sum = sum;
		}
	}
	bpf_tail_call(ctx, &bench_next, 0);
	return XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
