/* Shared by bench_dnat.bpf.c and scripts/bench (read back through BTF). */
#ifndef FULCRUM_BENCH_DNAT_H
#define FULCRUM_BENCH_DNAT_H

#include <linux/types.h>

struct dnat_backend {
	__be32 addr;
	__be16 port;
	__u8 mac[6];
};

struct dnat_flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

#endif
