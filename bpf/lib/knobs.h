/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Load-time knobs of the XDP program: const volatile (.rodata), which the control plane sets to the
 * sizes it gives the maps before load (src/xdp/kernel.ts). Definitions, not declarations: only
 * fulcrum_xdp.bpf.c includes this (through the lib headers).
 */
#ifndef FL_LIB_KNOBS_H
#define FL_LIB_KNOBS_H

#include <linux/types.h>
#include "fulcrum_xdp.h"

const volatile __u32 maglev_size = FL_DEFAULT_MAGLEV_SIZE;
const volatile __u32 maglev_stride = (FL_DEFAULT_MAGLEV_SIZE + FL_MAGLEV_LINE - 1) / FL_MAGLEV_LINE * FL_MAGLEV_LINE;
const volatile __u32 max_vips = FL_DEFAULT_MAX_VIPS;
const volatile __u32 max_backends = FL_DEFAULT_MAX_BACKENDS;
const volatile __u32 ct_sets = FL_DEFAULT_CONNTRACK_SIZE / FL_CT_WAYS;
const volatile __u32 hash_seed = 0x9e3779b9;
const volatile __u64 nexthop_ttl_jiffies = 1000; /* how long a cached FIB result is used (1 s at HZ 1000) */

/* 1: every flow placed on a backend is written to the flow_events ring (lib/flowsync.h). */
const volatile __u32 flow_export = 0;

#endif
