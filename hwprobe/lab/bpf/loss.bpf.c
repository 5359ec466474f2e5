// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// A lossy link for the lab: a tcx program that drops a configurable share
// of the packets crossing one interface, chosen at random. netem is not
// available on the lab's kernels, and a drop here models loss on a wire
// (bit errors, a bad optic), not a buffer overflowing: no queue fills.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Drop a packet when a uniform 32-bit random number falls below this
// threshold: probability = drop_threshold / 2^32. Set before loading.
volatile const __u32 drop_threshold = 0;
// Only TCP is dropped, so ARP and the lab's other chatter keep working
// and the loss hits exactly the traffic under study.
volatile const __u8 tcp_only = 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps"); // 0: packets seen, 1: packets dropped

#define TCX_NEXT -1
#define TCX_DROP 2
#define ETH_P_IP 0x0008 // htons(0x0800) on a little-endian host

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tcx/ingress")
int lossy_link(struct __sk_buff *skb)
{
	if (tcp_only) {
		if (skb->protocol != ETH_P_IP)
			return TCX_NEXT;
		void *data = (void *)(long)skb->data;
		void *end = (void *)(long)skb->data_end;
		struct iphdr *ip = data + sizeof(struct ethhdr);
		if ((void *)(ip + 1) > end || ip->protocol != 6)
			return TCX_NEXT;
	}
	count(0);
	if (bpf_get_prandom_u32() < drop_threshold) {
		count(1);
		return TCX_DROP;
	}
	return TCX_NEXT;
}
