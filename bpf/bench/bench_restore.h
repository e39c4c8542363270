/* The packet the bench restore program writes back before every repetition (bench_restore.bpf.c);
 * scripts/bench/xdp-lib.ts fills it through the layout it reads from this object's BTF. */
#ifndef FULCRUM_BENCH_RESTORE_H
#define FULCRUM_BENCH_RESTORE_H

#include <linux/types.h>

#define BENCH_PKT_MAX 512

struct bench_packet {
	__u32 len;          /* bytes of pkt to restore */
	__u32 new_flow;     /* 1: vary the flow per repetition */
	__u32 sport_off;    /* offset of the L4 source port (new_flow) */
	__u32 saddr_off;    /* offset of the 2 low bytes of the source address to vary too (0: none) */
	__u32 ipcsum_off;   /* offset of the IPv4 header checksum (0: none, e.g. IPv6) */
	__u32 l4csum_off;   /* offset of the TCP/UDP checksum (0: leave it) */
	__u8 pkt[BENCH_PKT_MAX];
};

#endif
