/* Shared between test_maps.bpf.c and the libbpf-ts kernel tests (which read it back through BTF). */
#ifndef FULCRUM_TEST_MAPS_H
#define FULCRUM_TEST_MAPS_H

#include <linux/types.h>

struct test_backend {
	__be32 addr[4];   /* IPv4 in addr[0] or IPv6 */
	__be16 port;
	__u8 family;
	__u8 flags;
	__u32 weight;
	__u64 packets;
};

enum test_verdict_source {
	TEST_FROM_KNOB = 1,
	TEST_FROM_MAP = 2,
};

#endif
