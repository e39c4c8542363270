/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Flow export for the peer LB nodes (src/xdp/flowsync): a record per flow placed on a backend, into
 * the flow_events ring; a full ring counts the loss in flow_export_stats. Called only where a flow
 * gets its backend, never on an established flow's packets.
 */
#ifndef FL_LIB_FLOWSYNC_H
#define FL_LIB_FLOWSYNC_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "fulcrum_xdp.h"
#include "maps.h"

static __always_inline void export_flow(const struct fl_flow_key *flow, const struct fl_backend *b, __u32 bidx, __u8 mode)
{
	__u32 zero = 0;
	struct fl_export_counters *c = bpf_map_lookup_elem(&flow_export_stats, &zero);
	struct fl_flow_event *ev = bpf_ringbuf_reserve(&flow_events, sizeof(*ev), 0);

	if (!ev) {
		if (c)
			c->dropped++;
		return;
	}
	__builtin_memcpy(&ev->key, flow, sizeof(*flow));
	__builtin_memcpy(ev->backend_addr, b->addr, 16);
	ev->backend_port = b->port;
	ev->mode = mode;
	ev->pad = 0;
	ev->backend = bidx;
	ev->gen = b->gen;
	ev->pad2 = 0;
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	if (c)
		c->exported++;
}

#endif
