/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The XDP program's maps (pinned by the control plane; src/xdp/abi.ts MAPS names them). Sizes here
 * are defaults: the control plane sets max_entries at load (src/xdp/kernel.ts).
 * Definitions, not declarations: only fulcrum_xdp.bpf.c includes this (through the lib headers).
 */
#ifndef FL_LIB_MAPS_H
#define FL_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "fulcrum_xdp.h"

/* VIP:port/protocol -> id, mode and live maglev slot. Absent = not ours, XDP_PASS. The authority;
 * vip_index below is a copy for the fast path. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FL_DEFAULT_MAX_VIPS);
	__type(key, struct fl_vip_key);
	__type(value, struct fl_vip_meta);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vips SEC(".maps");

/* fl_endpoint_hash(VIP) -> that VIP's key and meta, where exactly one VIP has the hash: one array
 * read instead of a hash lookup (about 30 ns here). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_VIP_INDEX_SIZE);
	__type(key, __u32);
	__type(value, struct fl_vip_slot);
} vip_index SEC(".maps");

/* Maglev lookup tables, two slots per VIP: entry e = (id*2 + slot) * maglev_stride + pos is
 * line e / 16, lane e % 16. mmapable: the control plane writes a table as one memory copy. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_VIPS * FL_MAGLEV_SLOTS * ((FL_DEFAULT_MAGLEV_SIZE + FL_MAGLEV_LINE - 1) / FL_MAGLEV_LINE));
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct fl_maglev_line);
} maglev SEC(".maps");

/* The sizes this instance was loaded with (control plane only). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_config);
} config SEC(".maps");

/* Backend slots (address, port, MAC, owning VIP, generation); shared by all VIPs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fl_backend);
} backends SEC(".maps");

/*
 * Client flow -> backend slot, so established flows keep their backend when the set changes.
 * A set-associative table in an array (FL_CT_WAYS entries per set, the oldest evicted), shared by
 * all CPUs, so a flow is found whichever CPU its packets (or its nat replies) arrive on. The kernel's
 * LRU hash costs about 33 ns per lookup and 400-600 ns per insert into a full table on this
 * machine; a set here costs one inlined array read and at most four key compares.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_DEFAULT_CONNTRACK_SIZE / FL_CT_WAYS);
	__type(key, __u32);
	__type(value, struct fl_ct_set);
} conntrack SEC(".maps");

/* nat backend endpoint (address, port, protocol) -> the VIP:port its replies get as their source,
 * and the backend slot a client flow must be on for that (checked in conntrack). One entry per
 * endpoint, written by the control plane: no per-flow insert for the reply path. When the endpoint
 * serves several VIPs (FL_RNAT_SHARED) the VIP fields name one of them, and per-flow reverse_nat
 * entries (below) say which VIP each flow used. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FL_DEFAULT_MAX_BACKENDS);
	__type(key, struct fl_vip_key);
	__type(value, struct fl_rnat);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} nat_endpoints SEC(".maps");

/* nat replies of shared endpoints: backend->client flow -> the VIP:port to put back as the source.
 * The hash table is shared, so a reply arriving on another CPU than the request finds its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FL_DEFAULT_CONNTRACK_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct fl_flow_key);
	__type(value, struct fl_rnat);
} reverse_nat SEC(".maps");

/* Per-CPU counters per VIP id, of the backends the VIP no longer has: the program counts per
 * backend slot only (one counter update per packet), and the control plane folds a removed slot's
 * counters in here. A VIP's totals are this plus its backends' counters. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct fl_counters);
} stats SEC(".maps");

/* Endpoint filter (see fl_endpoint_hash): a set bit = "maybe a VIP or a nat backend endpoint". */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} filter SEC(".maps");

/* Per-CPU state per backend slot: counters, and the next-hop cache that saves a bpf_fib_lookup
 * (about 100 ns) per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fl_backend_pcpu);
} backend_pcpu SEC(".maps");

/* Flows placed on a backend, for the peer LB nodes (lib/flowsync.h; written only when flow_export is
 * on). The control plane polls it; no wakeups. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FL_DEFAULT_FLOW_RING);
} flow_events SEC(".maps");

/* Per-CPU counts of the flow export: records written, records lost to a full ring. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fl_export_counters);
} flow_export_stats SEC(".maps");

#endif
