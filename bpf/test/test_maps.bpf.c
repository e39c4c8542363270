// SPDX-License-Identifier: GPL-2.0
/* Test object for libbpf-ts (test/kernel/bpf-*.test.ts): one map of each kind the binding handles,
 * a .rodata knob, programs whose verdicts the tests check, and a tail-call dispatcher. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "test_maps.h"

/* const volatile knob: the verdict of xdp_knob (set from TypeScript before load). */
const volatile __u32 knob_verdict = XDP_PASS;
const volatile __u64 knob_wide = 0;

/* hash: backend by id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct test_backend);
} backends SEC(".maps");

/* array: index -> u64. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} arr SEC(".maps");

/* per-CPU array: packet counters, slot 0. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

/* per-CPU hash. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} pcpu_hash SEC(".maps");

/* LRU hash: evicts when full. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 128);
	__type(key, __u64);
	__type(value, __u64);
} lru SEC(".maps");

/* mmapable array: index -> u32 (each value at a stride of 8 bytes in the mapping). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
} mm SEC(".maps");

/* Tail-call targets (slot -> program). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jump SEC(".maps");

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("xdp")
int xdp_knob(struct xdp_md *ctx)
{
	return knob_verdict;
}

/* Counts packets in pcpu[0], then returns arr[0] as the verdict (PASS when unset). */
SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&pcpu, &zero);
	if (c)
		*c += 1;
	__u64 *v = bpf_map_lookup_elem(&arr, &zero);
	if (v && *v)
		return (int)*v;
	return XDP_PASS;
}

/* Returns mm[1] as the verdict (PASS when unset). */
SEC("xdp")
int xdp_mm(struct xdp_md *ctx)
{
	__u32 one = 1;
	__u32 *v = bpf_map_lookup_elem(&mm, &one);
	return v && *v ? (int)*v : XDP_PASS;
}

/* Swaps Ethernet source and destination, returns XDP_TX (output packet visible to the test). */
SEC("xdp")
int xdp_swap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	unsigned char *eth = data;
	if (data + 14 > end)
		return XDP_DROP;
	for (int i = 0; i < 6; i++) {
		unsigned char t = eth[i];
		eth[i] = eth[i + 6];
		eth[i + 6] = t;
	}
	return XDP_TX;
}

/* Grows the packet by 4 bytes at the head (what an encapsulating program does), returns XDP_TX. */
SEC("xdp")
int xdp_grow(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_head(ctx, -4))
		return XDP_ABORTED;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + 4 > end)
		return XDP_ABORTED;
	__builtin_memset(data, 0xee, 4);
	return XDP_TX;
}

/* Tail-calls jump[0]; XDP_ABORTED when the slot is empty. */
SEC("xdp")
int xdp_dispatch(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &jump, 0);
	return XDP_ABORTED;
}

/* Keeps struct test_backend and the enum in BTF even if unused elsewhere. */
struct test_backend test_backend_btf_anchor __attribute__((unused));
enum test_verdict_source test_enum_btf_anchor __attribute__((unused));

char LICENSE[] SEC("license") = "GPL";
