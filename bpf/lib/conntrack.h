/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The connection table: set-associative (FL_CT_WAYS ways per set, the way idle longest evicted),
 * lock-free, each entry's value tagged with its flow hash so a torn write reads as a miss.
 */
#ifndef FL_LIB_CONNTRACK_H
#define FL_LIB_CONNTRACK_H

#include "fulcrum_xdp.h"
#include "knobs.h"
#include "maps.h"

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

#endif
