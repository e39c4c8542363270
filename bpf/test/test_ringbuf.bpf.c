// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/* Test object for libbpf-ts's RingBuffer (test/kernel/bpf-ringbuf.test.ts): each run writes one
 * record (the packet's first 8 bytes and its length) into a one-page ring, counting a full ring. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct rec {
	__u8 head[8];
	__u32 len;
	__u32 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

__u64 lost = 0;
__u32 seq = 0;

SEC("xdp")
int xdp_emit(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct rec *r;

	if (data + 8 > end)
		return XDP_ABORTED;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&lost, 1);
		return XDP_DROP;
	}
	__builtin_memcpy(r->head, data, 8);
	r->len = (__u32)(end - data);
	r->seq = __sync_fetch_and_add(&seq, 1);
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
