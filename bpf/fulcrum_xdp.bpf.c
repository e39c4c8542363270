// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * Fulcrum XDP load balancer. Packets to a configured VIP:port/protocol get a backend by Maglev over
 * the 5-tuple, remembered in a connection table; `nat` rewrites the destination (and the reply's
 * source back to the VIP), `dr` rewrites the destination MAC. Everything else, and anything the
 * parser does not fully understand (fragments, IPv6 extension headers, truncated headers), passes
 * to the kernel untouched.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "fulcrum_xdp.h"
#include "lib/knobs.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/hash.h"
#include "lib/csum.h"
#include "lib/rewrite.h"
#include "lib/vip.h"
#include "lib/conntrack.h"
#include "lib/nexthop.h"
#include "lib/flowsync.h"

/* Never read: keeps every shared type and enum of fulcrum_xdp.h in the object's BTF. */
const volatile struct fl_abi fl_abi_anchor;

/* A backend slot's counters: one packet in (to the backend) or out (a nat reply). */
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
		if (flow_export)
			export_flow(&p.flow, b, bidx, vm.mode);
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
