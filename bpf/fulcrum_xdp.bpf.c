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
const volatile __u32 max_vips = FL_DEFAULT_MAX_VIPS;
const volatile __u32 max_backends = FL_DEFAULT_MAX_BACKENDS;
const volatile __u32 hash_seed = 0x9e3779b9;
const volatile __u64 nexthop_ttl_ns = 1000000000; /* how long a cached FIB result is used */

/* Never read: keeps every shared type and enum of fulcrum_xdp.h in the object's BTF. */
const volatile struct fl_abi fl_abi_anchor;

/* VIP:port/protocol -> id, mode and live maglev slot. Absent = not ours, XDP_PASS. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FL_DEFAULT_MAX_VIPS);
	__type(key, struct fl_vip_key);
	__type(value, struct fl_vip_meta);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} vips SEC(".maps");

/* Maglev lookup tables, two slots per VIP: entry ((id*2 + slot) * maglev_size + h) -> backend slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_VIPS * FL_MAGLEV_SLOTS * FL_DEFAULT_MAGLEV_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} maglev SEC(".maps");

/* Backend slots (address, port, MAC, owning VIP, generation); shared by all VIPs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fl_backend);
} backends SEC(".maps");

/* Client flow -> backend slot, so established flows keep their backend when the set changes.
 * One hash table for all CPUs, LRU lists per CPU (BPF_F_NO_COMMON_LRU, as Katran): an insert never
 * takes a global lock; each CPU evicts among max_entries / ncpus of its own entries. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FL_DEFAULT_CONNTRACK_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct fl_flow_key);
	__type(value, struct fl_conn);
} conntrack SEC(".maps");

/* nat replies: backend->client flow -> the VIP:port to put back as the source. The hash table is
 * shared, so a reply that arrives on another CPU (and interface) than the request finds its entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FL_DEFAULT_CONNTRACK_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct fl_flow_key);
	__type(value, struct fl_rnat);
} reverse_nat SEC(".maps");

/* Per-CPU counters: [0, max_vips) per VIP, then [max_vips, max_vips + max_backends) per backend. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_VIPS + FL_DEFAULT_MAX_BACKENDS);
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

/* Per-CPU next-hop cache per backend slot: saves a bpf_fib_lookup (about 100 ns) per packet. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FL_DEFAULT_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fl_nexthop);
} nexthop SEC(".maps");

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define VLAN_HLEN 4

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

struct pkt {
	void *l3;
	void *l4;
	__be16 *l4_check;   /* NULL for IPv4 UDP without checksum */
	struct fl_flow_key flow;
	__u16 l3_len;       /* IP total length (fib lookup) */
	__u8 tos;
	__u8 vlan;
	__u8 is_udp;
};

/* Bob Jenkins' lookup3 final mix (as the kernel's jhash_3words). */
#define rol32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))
static __always_inline __u32 jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	a += 0xdeadbeef + initval;
	b += 0xdeadbeef + initval;
	c += 0xdeadbeef + initval;
	c ^= b; c -= rol32(b, 14);
	a ^= c; a -= rol32(c, 11);
	b ^= a; b -= rol32(a, 25);
	c ^= b; c -= rol32(b, 16);
	a ^= c; a -= rol32(c, 4);
	b ^= a; b -= rol32(a, 14);
	c ^= b; c -= rol32(b, 24);
	return c;
}

static __always_inline __u32 flow_hash(const struct fl_flow_key *f)
{
	const __u32 *s = (const __u32 *)f->src, *d = (const __u32 *)f->dst;
	__u32 a = s[0] ^ s[1] ^ s[2] ^ s[3];
	__u32 b = d[0] ^ d[1] ^ d[2] ^ d[3];
	__u32 c = ((__u32)f->sport << 16) | f->dport;
	return jhash_3words(a, b, c, hash_seed ^ f->proto);
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

static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *cur = eth + 1;
	__be16 proto;

	if (cur > end)
		return -1;
	proto = eth->h_proto;
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
		p->flow.proto = ip->protocol;
		p->flow.family = FL_FAMILY_INET;
		__builtin_memcpy(p->flow.src, &ip->saddr, 4);
		__builtin_memcpy(p->flow.dst, &ip->daddr, 4);
		p->l3_len = bpf_ntohs(ip->tot_len);
		p->tos = ip->tos;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return -1;
		/* Extension headers (including fragments) are not parsed: such packets pass. */
		p->l4 = ip6 + 1;
		p->flow.proto = ip6->nexthdr;
		p->flow.family = FL_FAMILY_INET6;
		__builtin_memcpy(p->flow.src, &ip6->saddr, 16);
		__builtin_memcpy(p->flow.dst, &ip6->daddr, 16);
		p->l3_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		p->tos = 0;
	} else {
		return -1;
	}
	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		if ((void *)(th + 1) > end || th->doff < 5)
			return -1;
		p->flow.sport = th->source;
		p->flow.dport = th->dest;
		p->l4_check = &th->check;
	} else if (p->flow.proto == IPPROTO_UDP) {
		struct udphdr *uh = p->l4;
		if ((void *)(uh + 1) > end)
			return -1;
		p->flow.sport = uh->source;
		p->flow.dport = uh->dest;
		p->is_udp = 1;
		/* RFC 768: an IPv4 UDP checksum of 0 means "none" and must stay 0. */
		p->l4_check = (p->flow.family == FL_FAMILY_INET && uh->check == 0) ? NULL : &uh->check;
	} else {
		return -1;
	}
	return 0;
}

static __always_inline void count(__u32 idx, __u32 bytes, int out, int new_flow)
{
	struct fl_counters *c = bpf_map_lookup_elem(&stats, &idx);
	if (!c)
		return;
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
 * fixes the checksums incrementally; IPv4 also gets its TTL decremented (we route).
 */
static __always_inline void rewrite(struct pkt *p, void *end, int dst, const __u8 *addr, __be16 port)
{
	int v6 = p->flow.family == FL_FAMILY_INET6;
	__u32 l4d = 0;

	if (!v6) {
		struct iphdr *ip = p->l3;
		__u32 ipd;
		__u16 old_ttl_word, new_ttl_word;
		__be32 *field;

		if ((void *)(ip + 1) > end)
			return;
		field = dst ? &ip->daddr : &ip->saddr;
		ipd = csum_delta_addr(0, (const __u8 *)field, addr, 0);
		l4d = ipd;
		old_ttl_word = *(__u16 *)&ip->ttl;
		ip->ttl--;
		new_ttl_word = *(__u16 *)&ip->ttl;
		ipd = csum_delta16(ipd, old_ttl_word, new_ttl_word);
		ip->check = csum_apply(ip->check, ipd);
		__builtin_memcpy(field, addr, 4);
	} else {
		struct ipv6hdr *ip6 = p->l3;
		struct in6_addr *field;

		if ((void *)(ip6 + 1) > end)
			return;
		field = dst ? &ip6->daddr : &ip6->saddr;
		l4d = csum_delta_addr(0, (const __u8 *)field, addr, 1);
		ip6->hop_limit--;
		__builtin_memcpy(field, addr, 16);
	}

	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;
		__be16 *pf;
		if ((void *)(th + 1) > end)
			return;
		pf = dst ? &th->dest : &th->source;
		l4d = csum_delta16(l4d, *pf, port);
		*pf = port;
		th->check = csum_apply(th->check, l4d);
	} else {
		struct udphdr *uh = p->l4;
		__be16 *pf;
		if ((void *)(uh + 1) > end)
			return;
		pf = dst ? &uh->dest : &uh->source;
		l4d = csum_delta16(l4d, *pf, port);
		*pf = port;
		if (p->l4_check) {
			__u16 c = csum_apply(uh->check, l4d);
			uh->check = c ? c : 0xffff; /* RFC 768: a computed 0 is sent as all ones */
		}
	}
}

static __always_inline int filter_hit(const __u8 *addr, __be16 port, __u8 proto)
{
	__u32 h = fl_endpoint_hash((const __u32 *)addr, port, proto);
	__u32 word = h >> 6;
	__u64 *w = bpf_map_lookup_elem(&filter, &word);
	return w && (*w & (1ULL << (h & 63)));
}

/*
 * The next hop towards dst: the per-CPU cache of backend `slot` (FL_NO_BACKEND: no caching) or the
 * FIB. 0 when `out` holds it; -1 when the kernel must help (no neighbour yet, no route, forwarding off).
 */
static __always_inline int next_hop(struct xdp_md *ctx, struct pkt *p, const __u8 *src, const __u8 *dst, __be16 sport,
				    __be16 dport, __u32 slot, __u32 gen, struct fl_nexthop *out)
{
	struct bpf_fib_lookup fib = {};
	struct fl_nexthop *c = NULL;
	__u64 now = 0;

	if (slot != FL_NO_BACKEND) {
		c = bpf_map_lookup_elem(&nexthop, &slot);
		now = bpf_ktime_get_coarse_ns();
		if (c && c->ifindex && c->gen == gen && now < c->expires_ns) {
			*out = *c;
			return 0;
		}
	}
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
		return -1;
	__builtin_memcpy(out->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(out->smac, fib.smac, ETH_ALEN);
	out->ifindex = fib.ifindex;
	out->gen = gen;
	out->pad = 0;
	out->expires_ns = now + nexthop_ttl_ns;
	if (c)
		*c = *out;
	return 0;
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
				   __be16 dport, __u32 slot, __u32 gen)
{
	struct fl_nexthop nh;

	/* A tagged packet would need its VLAN device, which XDP cannot transmit on: the kernel routes it. */
	if (p->vlan)
		return XDP_PASS;
	if (next_hop(ctx, p, src, dst, sport, dport, slot, gen, &nh) < 0)
		return XDP_PASS;
	return send(ctx, nh.dmac, nh.smac, nh.ifindex);
}

static __always_inline int ttl_expiring(struct pkt *p, void *end)
{
	if (p->flow.family == FL_FAMILY_INET) {
		struct iphdr *ip = p->l3;
		return (void *)(ip + 1) > end || ip->ttl <= 1;
	}
	struct ipv6hdr *ip6 = p->l3;
	return (void *)(ip6 + 1) > end || ip6->hop_limit <= 1;
}

/* A reply from a nat backend: put the VIP back as the source and route it to the client. */
static __always_inline int reply_path(struct xdp_md *ctx, struct pkt *p, __u32 bytes)
{
	void *end = (void *)(long)ctx->data_end;
	struct fl_rnat *rn = bpf_map_lookup_elem(&reverse_nat, &p->flow);
	struct fl_rnat r;

	if (!rn)
		return XDP_PASS;
	if (ttl_expiring(p, end))
		return XDP_PASS; /* the kernel sends the ICMP time exceeded */
	r = *rn;
	count(r.vip_id, bytes, 1, 0);
	if (r.backend < max_backends)
		count(max_vips + r.backend, bytes, 1, 0);
	rewrite(p, end, 0, r.vip, r.vport);
	return forward(ctx, p, r.vip, p->flow.dst, r.vport, p->flow.dport, FL_NO_BACKEND, 0);
}

static __always_inline int dr_send(struct xdp_md *ctx, struct pkt *p, const struct fl_backend *b, __u32 slot)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct fl_nexthop nh;
	int have_mac = b->mac[0] | b->mac[1] | b->mac[2] | b->mac[3] | b->mac[4] | b->mac[5];

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (!p->vlan && next_hop(ctx, p, p->flow.src, b->addr, p->flow.sport, p->flow.dport, slot, b->gen, &nh) == 0)
		return send(ctx, have_mac ? b->mac : nh.dmac, nh.smac, nh.ifindex);
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
	struct pkt p = {};
	struct fl_vip_key vk = {};
	struct fl_vip_meta *vm;
	struct fl_backend *b = NULL;
	struct fl_conn *ct;
	__u32 bidx = FL_NO_BACKEND, mode, vid;
	int new_flow = 0;

	if (parse(ctx, &p) < 0)
		return XDP_PASS;
	if (!filter_hit(p.flow.dst, p.flow.dport, p.flow.proto)) {
		if (filter_hit(p.flow.src, p.flow.sport, p.flow.proto))
			return reply_path(ctx, &p, bytes);
		return XDP_PASS;
	}

	__builtin_memcpy(vk.addr, p.flow.dst, 16);
	vk.port = p.flow.dport;
	vk.proto = p.flow.proto;
	vk.family = p.flow.family;
	vm = bpf_map_lookup_elem(&vips, &vk);
	if (!vm) {
		if (filter_hit(p.flow.src, p.flow.sport, p.flow.proto))
			return reply_path(ctx, &p, bytes);
		return XDP_PASS;
	}
	vid = vm->id;
	mode = vm->mode;
	if (vid >= max_vips)
		return XDP_PASS;

	ct = bpf_map_lookup_elem(&conntrack, &p.flow);
	if (ct) {
		__u32 i = ct->backend;
		b = bpf_map_lookup_elem(&backends, &i);
		if (b && (b->flags & FL_BACKEND_ACTIVE) && b->gen == ct->gen && b->vip_id == vid)
			bidx = i;
		else
			b = NULL;
	}
	if (!b) {
		__u32 slot = ((vid * FL_MAGLEV_SLOTS) + (vm->slot & 1)) * maglev_size + flow_hash(&p.flow) % maglev_size;
		__u32 *e = bpf_map_lookup_elem(&maglev, &slot);
		struct fl_conn c;

		if (!e || *e == FL_NO_BACKEND)
			return XDP_PASS; /* a VIP without backends: the kernel answers (or drops) */
		bidx = *e;
		b = bpf_map_lookup_elem(&backends, &bidx);
		if (!b || !(b->flags & FL_BACKEND_ACTIVE))
			return XDP_PASS;
		c.backend = bidx;
		c.gen = b->gen;
		bpf_map_update_elem(&conntrack, &p.flow, &c, BPF_ANY);
		new_flow = 1;
	}

	count(vid, bytes, 0, new_flow);
	if (bidx < max_backends)
		count(max_vips + bidx, bytes, 0, new_flow);

	if (mode == FL_MODE_DR)
		return dr_send(ctx, &p, b, bidx);

	/* nat */
	{
		struct fl_backend be = *b;
		__u8 client[16];

		if (ttl_expiring(&p, end))
			return XDP_PASS;
		if (new_flow) {
			struct fl_flow_key rk = {};
			struct fl_rnat rv = {};
			__builtin_memcpy(rk.src, be.addr, 16);
			__builtin_memcpy(rk.dst, p.flow.src, 16);
			rk.sport = be.port;
			rk.dport = p.flow.sport;
			rk.proto = p.flow.proto;
			rk.family = p.flow.family;
			__builtin_memcpy(rv.vip, p.flow.dst, 16);
			rv.vport = p.flow.dport;
			rv.vip_id = vid;
			rv.backend = bidx;
			bpf_map_update_elem(&reverse_nat, &rk, &rv, BPF_ANY);
		}
		__builtin_memcpy(client, p.flow.src, 16);
		rewrite(&p, end, 1, be.addr, be.port);
		return forward(ctx, &p, client, be.addr, p.flow.sport, be.port, bidx, be.gen);
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
