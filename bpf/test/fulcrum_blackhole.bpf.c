// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * A dead link without taking it down (the BGP tests' blackholed node): drops every frame received
 * (XDP) and every frame sent (tc egress, direct action; this kernel has no tc gact action).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int fulcrum_blackhole_in(struct xdp_md *ctx)
{
	return XDP_DROP;
}

SEC("tc")
int fulcrum_blackhole_out(struct __sk_buff *skb)
{
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
