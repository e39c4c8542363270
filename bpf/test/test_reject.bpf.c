// SPDX-License-Identifier: GPL-2.0
/* Compiles, but the verifier must reject it (packet read without a bounds check): the kernel tier
 * checks that the load error carries errno and the verifier's log. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_unchecked(struct xdp_md *ctx)
{
	return *(unsigned char *)(long)ctx->data;
}

char LICENSE[] SEC("license") = "GPL";
