// SPDX-License-Identifier: GPL-2.0
/* Pinning test object for libbpf-ts: a map pinned by name under the pin root given at open (reused,
 * with its contents, when the object is loaded again) and a plain map pinned explicitly. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Survives reloads: LIBBPF_PIN_BY_NAME under OpenOptions.pinRoot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} persist SEC(".maps");

/* Pinned (or reused through reuseMaps) by the test explicitly. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} plain SEC(".maps");

/* Adds one to persist[0] and returns XDP_PASS. */
SEC("xdp")
int xdp_bump(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *p = bpf_map_lookup_elem(&persist, &zero);
	if (p)
		__sync_fetch_and_add(p, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
