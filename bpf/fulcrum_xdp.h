/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Fulcrum XDP load balancer: the structs, map names and constants shared by the BPF program and
 * the TypeScript control plane. This header is the ONE definition: the control plane keeps a table
 * of these layouts (src/xdp/abi.ts) and a test compares it with the BTF of the compiled object.
 * Every struct is explicitly padded so no field depends on compiler alignment; multi-byte fields
 * marked "be" are in network byte order, all others in host byte order.
 */
#ifndef FULCRUM_XDP_H
#define FULCRUM_XDP_H

#include <linux/types.h>

/* Compile-time defaults; the control plane overrides map sizes and the matching knobs at load. */
enum fl_limits {
	FL_DEFAULT_MAX_VIPS = 256,
	FL_DEFAULT_MAX_BACKENDS = 16384,
	FL_DEFAULT_MAGLEV_SIZE = 65537,   /* prime, as the Maglev paper requires */
	FL_DEFAULT_CONNTRACK_SIZE = 262144,
	FL_MAGLEV_SLOTS = 2,              /* double buffer: the VIP meta says which slot is live */
	FL_FILTER_WORDS = 1024,           /* endpoint filter: 65536 bits in u64 words */
	FL_FILTER_MULT = 0x9e3779b1,      /* endpoint hash multiplier (see fl_endpoint_hash) */
	FL_NO_BACKEND = 0xffffffff,       /* maglev entry of a VIP without usable backends */
	FL_CT_WAYS = 4,                   /* connection table: entries per set (one 256-byte map value) */
	FL_CT_SEEN_SHIFT = 3,             /* fl_ct_entry.seen is jiffies >> this */
	FL_VIP_INDEX_SIZE = 65536,        /* vip_index entries: one per fl_endpoint_hash value */
	FL_MAGLEV_LINE = 16,              /* Maglev entries per maglev map value (one 64-byte line) */
	FL_DEFAULT_FLOW_RING = 262144,    /* bytes of the flow export ring (a power of 2, whole pages) */
};

/* Address family of keys and backends (the values of AF_INET / AF_INET6). */
enum fl_family {
	FL_FAMILY_INET = 2,
	FL_FAMILY_INET6 = 10,
};

/* Forwarding mode of a VIP. */
enum fl_mode {
	FL_MODE_NAT = 0,
	FL_MODE_DR = 1,
};

/* fl_backend.flags */
enum fl_backend_flag {
	FL_BACKEND_ACTIVE = 1,            /* slot in use; a conntrack entry to an inactive slot is ignored */
	FL_BACKEND_SHARED_NAT = 2,        /* its endpoint serves several nat VIPs: keep per-flow reply entries */
};

/* fl_rnat.flags (in nat_endpoints) */
enum fl_rnat_flag {
	FL_RNAT_SHARED = 1,               /* several VIPs: look the flow up in reverse_nat first */
};

/* A VIP: destination address (IPv4 in the first 4 bytes, rest zero), port (be), IP protocol. */
struct fl_vip_key {
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 family;
};

struct fl_vip_meta {
	__u32 id;           /* index of the VIP's maglev tables and counters, < max_vips */
	__u32 table_hash;   /* control plane only: fingerprint of the live table's inputs */
	__u8 mode;          /* enum fl_mode */
	__u8 slot;          /* live maglev slot, 0 or 1: swapped after the other slot is fully written */
	__u8 pad[2];
};

struct fl_backend {
	__u8 addr[16];
	__be16 port;        /* nat: the destination port to rewrite to; dr: the VIP port */
	__u8 mac[6];        /* dr: the backend's MAC; all zero = use the neighbour from the FIB */
	__u8 family;
	__u8 flags;         /* enum fl_backend_flag */
	__u16 weight;       /* control plane only: the Maglev weight this slot was given */
	__u32 vip_id;       /* the VIP this slot belongs to */
	__u32 gen;          /* bumped whenever the slot is reused, so old conntrack entries miss */
};

/* A flow as seen on the wire (IPv4 addresses in the first 4 bytes, rest zero). */
struct fl_flow_key {
	__u8 src[16];
	__u8 dst[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

/* maglev map value: 16 consecutive Maglev entries (backend slots). Every table starts on a line
 * (maglev_stride entries apart), so that the control plane writes whole lines of one table only. */
struct fl_maglev_line {
	__u32 entry[FL_MAGLEV_LINE];
};

/* config: what this pinned instance was loaded with, for a restarted control plane. */
struct fl_config {
	__u32 maglev_size;
	__u32 maglev_stride;
	__u32 max_vips;
	__u32 max_backends;
};

/*
 * vip_index value: a copy of one VIP's key and meta at the index fl_endpoint_hash(VIP), so that a
 * packet finds its VIP with one array read instead of a hash lookup. The control plane fills an
 * index only when exactly one VIP hashes there; a packet whose key does not match (empty index,
 * collision, an entry being rewritten) looks the VIP up in `vips`, the authoritative map.
 */
struct fl_vip_slot {
	struct fl_vip_key key;
	struct fl_vip_meta meta;
};

/*
 * Connection table entry: a client flow and the backend slot it was given. Written by the program
 * only, without locks, so a reader can see a half-written entry: backend, gen and tag are written
 * together as one aligned 8-byte store after the key, and tag (the low 16 bits of the flow hash)
 * must match the reader's own flow hash, so a key of one flow with the value of another is a miss.
 * An empty entry has family 0.
 */
struct fl_ct_entry {
	struct fl_flow_key key;
	__u32 backend;      /* backend slot */
	__u16 gen;          /* low 16 bits of that slot's generation when the flow was placed */
	__u16 tag;
	__u32 seen;         /* (jiffies >> FL_CT_SEEN_SHIFT) of the flow's last packet: the oldest is evicted */
	__u32 pad[3];
};

/* One conntrack set: a flow lives in set (flow hash * sets) >> 32, in any of its ways. */
struct fl_ct_set {
	struct fl_ct_entry way[FL_CT_WAYS];
};

/* reverse_nat and nat_endpoints value: what a reply from a backend must look like to the client. */
struct fl_rnat {
	__u8 vip[16];
	__be16 vport;
	__u16 flags;        /* enum fl_rnat_flag (nat_endpoints only) */
	__u32 vip_id;
	__u32 backend;
};

/* Per-CPU counters of a backend slot (in its fl_backend_pcpu); stats[vip_id] holds those of the
 * slots a VIP had before (folded in by the control plane when it removes them). */
struct fl_counters {
	__u64 pkts_in;
	__u64 bytes_in;
	__u64 pkts_out;     /* nat replies rewritten back to the VIP */
	__u64 bytes_out;
	__u64 new_flows;
};

/* Per-CPU cache of a backend's next hop (the result of bpf_fib_lookup), valid until `expires`
 * (bpf_jiffies64) and only for the backend slot generation it was taken for. */
struct fl_nexthop {
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex;
	__u32 gen;
	__u32 pad;
	__u64 expires;
};

/* Per-CPU state of a backend slot, one lookup per packet: its counters and its cached next hop. */
struct fl_backend_pcpu {
	struct fl_counters counters;
	struct fl_nexthop nh;
};

/*
 * Endpoint filter: bit fl_endpoint_hash(addr, port, proto) of the `filter` map is set for every VIP
 * and every nat backend endpoint, so that foreign packets skip every lookup. A false positive
 * only costs a lookup. The control plane computes the same function (src/xdp/abi.ts endpointHash;
 * the packet fixtures prove they agree): the XOR of the four address words as loaded on this
 * little-endian host (`addr_fold`; IPv4 is the first word, the others are zero), the port as its
 * raw network-order u16. The same value indexes vip_index.
 */
static inline __u32 fl_endpoint_hash(__u32 addr_fold, __u16 port_raw, __u8 proto)
{
	__u32 x = addr_fold ^ ((__u32)port_raw << 8) ^ proto;
	return (__u32)(x * (__u32)FL_FILTER_MULT) >> 16;
}

/*
 * Flow export (flow_events ring buffer, when the flow_export knob is on): one record per flow the
 * program places on a backend (a new flow, or a re-pick after its backend went away), never for an
 * established flow's packets. The backend's identity (address, port) travels with the slot, so a
 * peer LB node can place the flow on the same backend whatever slot it has there.
 */
struct fl_flow_event {
	struct fl_flow_key key;
	__u8 backend_addr[16];
	__be16 backend_port;
	__u8 mode;          /* enum fl_mode of the VIP */
	__u8 pad;
	__u32 backend;      /* slot on this node */
	__u32 gen;          /* that slot's generation */
	__u32 pad2;
};

/* flow_export_stats value (per CPU): records written to the ring, and records lost (ring full). */
struct fl_export_counters {
	__u64 exported;
	__u64 dropped;
};

/* Everything above in one place so that BTF carries the enums as well (see fl_abi in the .c). */
struct fl_abi {
	enum fl_limits limits;
	enum fl_family family;
	enum fl_mode mode;
	enum fl_backend_flag backend_flag;
	enum fl_rnat_flag rnat_flag;
	struct fl_vip_key vip_key;
	struct fl_vip_meta vip_meta;
	struct fl_backend backend;
	struct fl_flow_key flow_key;
	struct fl_maglev_line maglev_line;
	struct fl_config config;
	struct fl_vip_slot vip_slot;
	struct fl_ct_entry ct_entry;
	struct fl_ct_set ct_set;
	struct fl_rnat rnat;
	struct fl_counters counters;
	struct fl_nexthop nexthop;
	struct fl_backend_pcpu backend_pcpu;
	struct fl_flow_event flow_event;
	struct fl_export_counters export_counters;
};

#endif
