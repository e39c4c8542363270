// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * XDP_PASS for the far end of a veth. A veth only accepts XDP_TX/redirected frames (native mode)
 * when its peer runs an XDP program; the test hosts (client, backends) attach this one.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int fulcrum_peer_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
