// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * Fulcrum XDP load balancer. Packets to a configured VIP:port/protocol get a backend by Maglev over
 * the 5-tuple, remembered in an LRU connection table; `nat` rewrites the destination (and the reply's
 * source back to the VIP), `dr` rewrites the destination MAC. Everything else, and anything the
 * parser does not fully understand (fragments, IPv6 extension headers, truncated headers), passes
 * to the kernel untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "fulcrum_xdp.h"

/* Load-time knobs: the control plane sets them to the sizes it gives the maps. */
const volatile __u32 maglev_size = FL_DEFAULT_MAGLEV_SIZE;
const volatile __u32 maglev_stride = (FL_DEFAULT_MAGLEV_SIZE + FL_MAGLEV_LINE - 1) / FL_MAGLEV_LINE * FL_MAGLEV_LINE;
const volatile __u32 max_vips = FL_DEFAULT_MAX_VIPS;
const volatile __u32 max_backends = FL_DEFAULT_MAX_BACKENDS;
const volatile __u32 ct_sets = FL_DEFAULT_CONNTRACK_SIZE / FL_CT_WAYS;
const volatile __u32 hash_seed = 0x9e3779b9;
const volatile __u64 nexthop_ttl_jiffies = 1000; /* how long a cached FIB result is used (1 s at HZ 1000) */

/* Never read: keeps every shared type and enum of fulcrum_xdp.h in the object's BTF. */
const volatile struct fl_abi fl_abi_anchor;

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

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

struct pkt {
	void *l3;
	void *l4;
	__be16 *l4_check;   /* NULL for IPv4 UDP without checksum */
	__u32 src_fold;     /* XOR of the address words (fl_endpoint_hash) */
	__u32 dst_fold;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 vlan;
	__u8 tos;
	__u16 l3_len;       /* IP total length (fib lookup) */
	struct fl_flow_key flow __attribute__((aligned(8))); /* filled by fill_flow() for our packets only */
};

/*
 * The flow's hash: its Maglev entry (maglev_pos), conntrack set (ct_set_of) and tag (low 16
 * bits). Every LB node computes the same value (hash_seed is a shared knob), so they all pick the
 * same backend. Multiply-xorshift rounds over the folded 5-tuple (murmur3's fmix64 constants):
 * even over Maglev entries and sets (test/unit/xdp-abi.test.ts), cheaper than jhash.
 */
static __always_inline __u32 flow_hash(__u32 src_fold, __u32 dst_fold, __be16 sport, __be16 dport, __u8 proto)
{
	__u64 a = ((__u64)src_fold << 32) | dst_fold;
	__u64 b = ((__u64)(((__u32)sport << 16) | dport) << 32) | (hash_seed ^ proto);
	__u64 h = a * 0x9e3779b97f4a7c15ULL;

	/* a is mixed down before b joins: a sum of a*K1 and b*K2 kept a linear trace of both, and
	 * flows whose address and port rise together crowded some conntrack sets. */
	h ^= h >> 32;
	h ^= b;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 32;
	return (__u32)h;
}

/* The flow's entry in a Maglev table: the hash scaled to [0, maglev_size) by a multiply (a
 * division costs about 10 ns), over the hash rotated so that it does not follow the conntrack set,
 * which scales the unrotated hash. */
static __always_inline __u32 maglev_pos(__u32 hash)
{
	__u32 r = (hash << 16) | (hash >> 16);
	return (__u32)(((__u64)r * maglev_size) >> 32);
}

/* XOR of the four address words (what fl_endpoint_hash and flow_hash take). */
static __always_inline __u32 addr_fold(const __u8 *addr)
{
	const __u32 *w = (const __u32 *)addr;
	return w[0] ^ w[1] ^ w[2] ^ w[3];
}

/* One's-complement checksum arithmetic on 16-bit words (RFC 1071; byte order does not matter). */
static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'); `delta` is the sum of ~m + m' over the changed words. */
static __always_inline __u16 csum_apply(__u16 check, __u32 delta)
{
	return ~csum_fold((__u16)~check + delta);
}

static __always_inline __u32 csum_delta16(__u32 acc, __u16 from, __u16 to)
{
	return acc + (__u16)~from + to;
}

/* Delta of replacing the 4 (IPv4) or 16 (IPv6) address bytes `from` by `to`. */
static __always_inline __u32 csum_delta_addr(__u32 acc, const __u8 *from, const __u8 *to, int v6)
{
	const __u16 *f = (const __u16 *)from, *t = (const __u16 *)to;
	acc = csum_delta16(acc, f[0], t[0]);
	acc = csum_delta16(acc, f[1], t[1]);
	if (v6) {
#pragma unroll
		for (int i = 2; i < 8; i++)
			acc = csum_delta16(acc, f[i], t[i]);
	}
	return acc;
}

/* Reads the headers up to the ports; -1 for anything the program does not balance. Cheap on
 * purpose: most packets are not ours and leave after this and one filter read. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *cur = eth + 1;
	__be16 proto;
	__be16 *ports;

	if (cur > end)
		return -1;
	proto = eth->h_proto;
	p->vlan = 0;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr_ *vh = cur;
		if ((void *)(vh + 1) > end)
			return -1;
		proto = vh->proto;
		cur = vh + 1;
		p->vlan = 1;
	}
	p->l3 = cur;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;
		if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->version != 4)
			return -1;
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return -1;
		p->l4 = cur + ip->ihl * 4;
		p->proto = ip->protocol;
		p->family = FL_FAMILY_INET;
		p->src_fold = ip->saddr;
		p->dst_fold = ip->daddr;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return -1;
		/* Extension headers (including fragments) are not parsed: such packets pass. */
		p->l4 = ip6 + 1;
		p->proto = ip6->nexthdr;
		p->family = FL_FAMILY_INET6;
		p->src_fold = addr_fold((const __u8 *)&ip6->saddr);
		p->dst_fold = addr_fold((const __u8 *)&ip6->daddr);
	} else {
		return -1;
	}
	ports = p->l4;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		if ((void *)(th + 1) > end || th->doff < 5)
			return -1;
	} else if (p->proto == IPPROTO_UDP) {
		if ((void *)((struct udphdr *)p->l4 + 1) > end)
			return -1;
	} else {
		return -1;
	}
	p->sport = ports[0];
	p->dport = ports[1];
	return 0;
}

/* The rest of what a packet to (or from) one of our endpoints needs: the flow key, checksum field,
 * length and TOS. */
static __always_inline int fill_flow(struct xdp_md *ctx, struct pkt *p)
{
	void *end = (void *)(long)ctx->data_end;
	__u64 *src = (__u64 *)p->flow.src, *dst = (__u64 *)p->flow.dst;

	if (p->family == FL_FAMILY_INET) {
		struct iphdr *ip = p->l3;
		if ((void *)(ip + 1) > end)
			return -1;
		src[0] = ip->saddr;
		src[1] = 0;
		dst[0] = ip->daddr;
		dst[1] = 0;
		p->l3_len = bpf_ntohs(ip->tot_len);
		p->tos = ip->tos;
	} else {
		struct ipv6hdr *ip6 = p->l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(p->flow.src, &ip6->saddr, 16);
		__builtin_memcpy(p->flow.dst, &ip6->daddr, 16);
		p->l3_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		p->tos = 0;
	}
	/* sport, dport, proto, family, pad: one store (little-endian field order). */
	*(__u64 *)&p->flow.sport = (__u64)p->sport | (__u64)p->dport << 16 | (__u64)p->proto << 32 | (__u64)p->family << 40;
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		if ((void *)(th + 1) > end)
			return -1;
		p->l4_check = &th->check;
	} else {
		struct udphdr *uh = p->l4;
		if ((void *)(uh + 1) > end)
			return -1;
		/* RFC 768: an IPv4 UDP checksum of 0 means "none" and must stay 0. */
		p->l4_check = (p->family == FL_FAMILY_INET && uh->check == 0) ? NULL : &uh->check;
	}
	return 0;
}

static __always_inline void add(struct fl_counters *c, __u32 bytes, int out, int new_flow)
{
	if (out) {
		c->pkts_out++;
		c->bytes_out += bytes;
	} else {
		c->pkts_in++;
		c->bytes_in += bytes;
	}
	if (new_flow)
		c->new_flows++;
}

/*
 * Rewrites the destination (dst=1) or source (dst=0) address and port of the parsed packet and
 * fixes the checksums incrementally; the TTL / hop limit is decremented (we route). -1, with the
 * packet untouched, when the TTL would expire: the kernel then sends the ICMP time exceeded.
 */
static __always_inline int rewrite(struct pkt *p, void *end, int dst, const __u8 *addr, __be16 port)
{
	int v6 = p->flow.family == FL_FAMILY_INET6;
	__u32 l4d = 0;

	if (!v6) {
		struct iphdr *ip = p->l3;
		__u32 ipd;
		__be32 *field;

		if ((void *)(ip + 1) > end || ip->ttl <= 1)
			return -1;
		field = dst ? &ip->daddr : &ip->saddr;
		ipd = csum_delta_addr(0, (const __u8 *)field, addr, 0);
		l4d = ipd;
		/* TTL - 1: the 16-bit word {ttl, protocol} drops by one unit of its TTL byte, which in
		 * one's-complement is adding ~1 (0xfffe) in the byte order it is loaded in. */
		ip->ttl--;
		ipd += 0xfffe;
		ip->check = csum_apply(ip->check, ipd);
		__builtin_memcpy(field, addr, 4);
	} else {
		struct ipv6hdr *ip6 = p->l3;
		struct in6_addr *field;

		if ((void *)(ip6 + 1) > end || ip6->hop_limit <= 1)
			return -1;
		field = dst ? &ip6->daddr : &ip6->saddr;
		l4d = csum_delta_addr(0, (const __u8 *)field, addr, 1);
		ip6->hop_limit--;
		__builtin_memcpy(field, addr, 16);
	}

	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		__be16 *pf;
		if ((void *)(th + 1) > end)
			return -1; /* for the verifier: parse() checked it */
		pf = dst ? &th->dest : &th->source;
		l4d = csum_delta16(l4d, *pf, port);
		*pf = port;
		th->check = csum_apply(th->check, l4d);
	} else {
		struct udphdr *uh = p->l4;
		__be16 *pf;
		if ((void *)(uh + 1) > end)
			return -1; /* for the verifier: parse() checked it */
		pf = dst ? &uh->dest : &uh->source;
		l4d = csum_delta16(l4d, *pf, port);
		*pf = port;
		if (p->l4_check) {
			__u16 c = csum_apply(uh->check, l4d);
			uh->check = c ? c : 0xffff; /* RFC 768: a computed 0 is sent as all ones */
		}
	}
	return 0;
}

static __always_inline int filter_hit(__u32 h)
{
	__u32 word = h >> 6;
	__u64 *w = bpf_map_lookup_elem(&filter, &word);
	return w && (*w & (1ULL << (h & 63)));
}

/* The key of the packet's endpoint `addr`:`port` in `vips` / `nat_endpoints`. */
static __always_inline void endpoint_key(struct fl_vip_key *k, const struct pkt *p, const __u8 *addr, __be16 port)
{
	__builtin_memcpy(k->addr, addr, 16);
	k->port = port;
	k->proto = p->proto;
	k->family = p->family;
}

/* The VIP the packet is addressed to (h = its fl_endpoint_hash): vip_index when the copy there is
 * this VIP's, else the `vips` map. Fills *meta; -1 when it is not a VIP. */
static __always_inline int vip_lookup(struct pkt *p, __u32 h, struct fl_vip_meta *meta)
{
	struct fl_vip_key vk;
	struct fl_vip_slot *s = bpf_map_lookup_elem(&vip_index, &h);
	struct fl_vip_meta *m;

	if (s) {
		/* fl_vip_key: the address, then port, proto, family in one little-endian u32. */
		const __u64 *have = (const __u64 *)&s->key, *dst = (const __u64 *)p->flow.dst;
		__u32 rest = (__u32)(*(const __u64 *)&p->flow.sport >> 16); /* dport, proto, family */
		if (have[0] == dst[0] && have[1] == dst[1] && *(const __u32 *)&have[2] == rest) {
			*meta = s->meta;
			return 0;
		}
	}
	endpoint_key(&vk, p, p->flow.dst, p->dport);
	m = bpf_map_lookup_elem(&vips, &vk);
	if (!m)
		return -1;
	*meta = *m;
	return 0;
}

static __always_inline struct fl_ct_set *ct_set_of(__u32 hash)
{
	__u32 i = (__u32)(((__u64)hash * ct_sets) >> 32);
	return bpf_map_lookup_elem(&conntrack, &i);
}

static __always_inline int flow_eq(const struct fl_flow_key *a, const struct fl_flow_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3] && x[4] == y[4];
}

/* backend | gen << 32 | tag << 48: the three fields of fl_ct_entry written and read as one u64. */
static __always_inline __u64 ct_value(__u32 backend, __u32 gen, __u32 hash)
{
	return (__u64)backend | ((__u64)(gen & 0xffff) << 32) | ((__u64)(hash & 0xffff) << 48);
}

/*
 * The entry holding `flow`'s key, with its value in *val; NULL when the flow is not there. The
 * caller checks ct_valid(): an entry can hold the key with a value that is not (yet) its own.
 */
static __always_inline struct fl_ct_entry *ct_find(struct fl_ct_set *set, const struct fl_flow_key *flow, __u64 *val)
{
#pragma unroll
	for (int w = 0; w < FL_CT_WAYS; w++) {
		struct fl_ct_entry *e = &set->way[w];
		if (flow_eq(&e->key, flow)) {
			*val = *(volatile __u64 *)&e->backend;
			return e;
		}
	}
	return NULL;
}

/* The value was written for this flow (its tag is the flow hash's), not torn by a racing writer. */
static __always_inline int ct_valid(__u64 val, __u32 hash)
{
	return (val >> 48) == (hash & 0xffff);
}

/*
 * Records `flow` in its set: over `stale` (the flow's own entry, when it has one that is torn or
 * names a backend that is gone, so that a key is never in two ways), else over an empty way, else
 * over the one idle longest.
 */
static __always_inline void ct_insert(struct fl_ct_set *set, struct fl_ct_entry *stale, const struct fl_flow_key *flow, __u64 val,
				      __u32 now)
{
	struct fl_ct_entry *victim = &set->way[0];
	__u32 idle = 0;

	if (stale) {
		victim = stale;
		goto write;
	}
#pragma unroll
	for (int w = 0; w < FL_CT_WAYS; w++) {
		struct fl_ct_entry *e = &set->way[w];
		__u32 age = now - e->seen;
		if (e->key.family == 0) {
			victim = e;
			break;
		}
		if (age > idle || w == 0) {
			idle = age;
			victim = e;
		}
	}
write:
	__builtin_memcpy(&victim->key, flow, sizeof(*flow));
	asm volatile("" ::: "memory"); /* key first, then the value (x86 keeps store order) */
	*(volatile __u64 *)&victim->backend = val;
	victim->seen = now;
}

/*
 * The next hop towards dst: the cache in a backend's per-CPU state `c` (NULL: no caching) or the
 * FIB, whose result goes into `tmp` (and the cache). NULL when the kernel must help (no neighbour
 * yet, no route, forwarding off).
 */
static __always_inline struct fl_nexthop *next_hop(struct xdp_md *ctx, struct pkt *p, const __u8 *src, const __u8 *dst,
						   __be16 sport, __be16 dport, struct fl_backend_pcpu *c, __u32 gen, __u64 now,
						   struct fl_nexthop *tmp)
{
	if (c && c->nh.ifindex && c->nh.gen == gen && now < c->nh.expires)
		return &c->nh;
	{
		struct bpf_fib_lookup fib = {}; /* zeroed here, not on the cached path */

		fib.family = p->flow.family;
		fib.l4_protocol = p->flow.proto;
		fib.sport = sport;
		fib.dport = dport;
		fib.tot_len = p->l3_len;
		fib.ifindex = ctx->ingress_ifindex;
		if (p->flow.family == FL_FAMILY_INET) {
			fib.tos = p->tos;
			__builtin_memcpy(&fib.ipv4_src, src, 4);
			__builtin_memcpy(&fib.ipv4_dst, dst, 4);
		} else {
			__builtin_memcpy(fib.ipv6_src, src, 16);
			__builtin_memcpy(fib.ipv6_dst, dst, 16);
		}
		if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
			return NULL;
		__builtin_memcpy(tmp->dmac, fib.dmac, ETH_ALEN);
		__builtin_memcpy(tmp->smac, fib.smac, ETH_ALEN);
		tmp->ifindex = fib.ifindex;
	}
	tmp->gen = gen;
	tmp->pad = 0;
	tmp->expires = now + nexthop_ttl_jiffies;
	if (c)
		c->nh = *tmp;
	return tmp;
}

static __always_inline int send(struct xdp_md *ctx, const __u8 *dmac, const __u8 *smac, __u32 ifindex)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

/* Routes the (rewritten) packet and sends it out; XDP_PASS when the kernel must help. */
static __always_inline int forward(struct xdp_md *ctx, struct pkt *p, const __u8 *src, const __u8 *dst, __be16 sport,
				   __be16 dport, struct fl_backend_pcpu *bs, __u32 gen, __u64 now)
{
	struct fl_nexthop tmp, *nh;

	/* A tagged packet would need its VLAN device, which XDP cannot transmit on: the kernel routes it. */
	if (p->vlan)
		return XDP_PASS;
	nh = next_hop(ctx, p, src, dst, sport, dport, bs, gen, now, &tmp);
	if (!nh)
		return XDP_PASS;
	return send(ctx, nh->dmac, nh->smac, nh->ifindex);
}

/* A reply from a nat backend: put the VIP back as the source and route it to the client. */
static __always_inline int reply_path(struct xdp_md *ctx, struct pkt *p, __u32 bytes)
{
	void *end = (void *)(long)ctx->data_end;
	struct fl_vip_key ek;
	struct fl_rnat *e, *rn = NULL;
	struct fl_rnat r;

	if (fill_flow(ctx, p) < 0)
		return XDP_PASS;
	endpoint_key(&ek, p, p->flow.src, p->sport);
	e = bpf_map_lookup_elem(&nat_endpoints, &ek);
	if (!e)
		return XDP_PASS;
	if (e->flags & FL_RNAT_SHARED)
		rn = bpf_map_lookup_elem(&reverse_nat, &p->flow);
	if (rn) {
		r = *rn;
	} else {
		/* Ours only if the client's flow to the endpoint's VIP is on this backend: traffic
		 * from the backend that did not come through the LB passes to the kernel. */
		struct fl_flow_key fk __attribute__((aligned(8)));
		struct fl_ct_set *set;
		__u64 val;
		__u32 h;

		__builtin_memcpy(fk.src, p->flow.dst, 16);
		__builtin_memcpy(fk.dst, e->vip, 16);
		fk.sport = p->dport;
		fk.dport = e->vport;
		fk.proto = p->proto;
		fk.family = p->family;
		fk.pad[0] = 0;
		fk.pad[1] = 0;
		h = flow_hash(p->dst_fold, addr_fold(e->vip), fk.sport, fk.dport, fk.proto);
		set = ct_set_of(h);
		if (!set || !ct_find(set, &fk, &val) || !ct_valid(val, h) || (__u32)val != e->backend)
			return XDP_PASS;
		r = *e;
	}
	if (rewrite(p, end, 0, r.vip, r.vport) < 0)
		return XDP_PASS;
	{
		struct fl_backend_pcpu *bs = bpf_map_lookup_elem(&backend_pcpu, &r.backend);
		if (bs)
			add(&bs->counters, bytes, 1, 0);
	}
	/* Towards the client: no per-backend next-hop cache, the FIB decides. */
	return forward(ctx, p, r.vip, p->flow.dst, r.vport, p->flow.dport, NULL, 0, 0);
}

static __always_inline int dr_send(struct xdp_md *ctx, struct pkt *p, const struct fl_backend *b, struct fl_backend_pcpu *bs,
				   __u64 now)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct fl_nexthop tmp, *nh = NULL;
	int have_mac = b->mac[0] | b->mac[1] | b->mac[2] | b->mac[3] | b->mac[4] | b->mac[5];

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (!p->vlan)
		nh = next_hop(ctx, p, p->flow.src, b->addr, p->flow.sport, p->flow.dport, bs, b->gen, now, &tmp);
	if (nh)
		return send(ctx, have_mac ? b->mac : nh->dmac, nh->smac, nh->ifindex);
	if (!have_mac)
		return XDP_PASS;
	/* Same segment (or tagged): back out of the ingress port, from the address it was sent to. */
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, b->mac, ETH_ALEN);
	return XDP_TX;
}

SEC("xdp")
int fulcrum_xdp(struct xdp_md *ctx)
{
	void *end = (void *)(long)ctx->data_end;
	__u32 bytes = (__u32)(ctx->data_end - ctx->data);
	struct pkt p;
	struct fl_vip_meta vm;
	struct fl_backend *b = NULL;
	struct fl_ct_set *set;
	struct fl_ct_entry *ct;
	struct fl_backend_pcpu *bs;
	__u32 bidx = FL_NO_BACKEND, vid, h, hash, now;
	__u64 val, now64;
	int new_flow = 0;

	if (parse(ctx, &p) < 0)
		return XDP_PASS;
	h = fl_endpoint_hash(p.dst_fold, p.dport, p.proto);
	if (!filter_hit(h)) {
		if (filter_hit(fl_endpoint_hash(p.src_fold, p.sport, p.proto)))
			return reply_path(ctx, &p, bytes);
		return XDP_PASS;
	}
	if (fill_flow(ctx, &p) < 0)
		return XDP_PASS;
	if (vip_lookup(&p, h, &vm) < 0) {
		if (filter_hit(fl_endpoint_hash(p.src_fold, p.sport, p.proto)))
			return reply_path(ctx, &p, bytes);
		return XDP_PASS;
	}
	vid = vm.id;
	if (vid >= max_vips)
		return XDP_PASS;

	hash = flow_hash(p.src_fold, p.dst_fold, p.sport, p.dport, p.proto);
	set = ct_set_of(hash);
	if (!set)
		return XDP_PASS;
	now64 = bpf_jiffies64();
	now = (__u32)(now64 >> FL_CT_SEEN_SHIFT);
	ct = ct_find(set, &p.flow, &val);
	if (ct && ct_valid(val, hash)) {
		__u32 i = (__u32)val;
		b = bpf_map_lookup_elem(&backends, &i);
		if (b && (b->flags & FL_BACKEND_ACTIVE) && (b->gen & 0xffff) == ((val >> 32) & 0xffff) && b->vip_id == vid) {
			bidx = i;
			if (ct->seen != now)
				ct->seen = now;
		} else {
			b = NULL;
		}
	}
	if (!b) {
		__u32 entry = ((vid * FL_MAGLEV_SLOTS) + (vm.slot & 1)) * maglev_stride + maglev_pos(hash);
		__u32 line = entry / FL_MAGLEV_LINE;
		struct fl_maglev_line *ml = bpf_map_lookup_elem(&maglev, &line);

		if (!ml)
			return XDP_PASS;
		bidx = ml->entry[entry % FL_MAGLEV_LINE];
		if (bidx == FL_NO_BACKEND)
			return XDP_PASS; /* a VIP without backends: the kernel answers (or drops) */
		b = bpf_map_lookup_elem(&backends, &bidx);
		if (!b || !(b->flags & FL_BACKEND_ACTIVE) || b->vip_id != vid)
			return XDP_PASS;
		ct_insert(set, ct, &p.flow, ct_value(bidx, b->gen, hash), now);
		new_flow = 1;
	}

	bs = bpf_map_lookup_elem(&backend_pcpu, &bidx);
	if (bs)
		add(&bs->counters, bytes, 0, new_flow);

	if (vm.mode == FL_MODE_DR)
		return dr_send(ctx, &p, b, bs, now64);

	/* nat */
	{
		const struct fl_backend *be = b;

		if (new_flow && (be->flags & FL_BACKEND_SHARED_NAT)) {
			struct fl_flow_key rk = {};
			struct fl_rnat rv = {};
			__builtin_memcpy(rk.src, be->addr, 16);
			__builtin_memcpy(rk.dst, p.flow.src, 16);
			rk.sport = be->port;
			rk.dport = p.flow.sport;
			rk.proto = p.flow.proto;
			rk.family = p.flow.family;
			__builtin_memcpy(rv.vip, p.flow.dst, 16);
			rv.vport = p.flow.dport;
			rv.vip_id = vid;
			rv.backend = bidx;
			bpf_map_update_elem(&reverse_nat, &rk, &rv, BPF_ANY);
		}
		/* p.flow keeps the packet's original addresses: the FIB is asked for client -> backend. */
		if (rewrite(&p, end, 1, be->addr, be->port) < 0)
			return XDP_PASS;
		return forward(ctx, &p, p.flow.src, be->addr, p.flow.sport, be->port, bs, be->gen, now64);
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
