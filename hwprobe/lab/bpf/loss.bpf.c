// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// A lossy link for the lab: a tcx program that drops a configurable share
// of the packets crossing one interface, chosen at random. netem is not
// available on the lab's kernels, and a drop here models loss on a wire
// (bit errors, a bad optic), not a buffer overflowing: no queue fills.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Drop a packet when a uniform 32-bit random number falls below this
// threshold: probability = drop_threshold / 2^32. Set before loading.
volatile const __u32 drop_threshold = 0;
// Only TCP is dropped, so ARP and the lab's other chatter keep working
// and the loss hits exactly the traffic under study.
volatile const __u8 tcp_only = 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps"); // 0: packets seen, 1: packets dropped, 2: drops not logged

// Every drop is logged, so the lab's truth can name the requests whose
// packets the link lost instead of every slow request that crossed it.
// The lab reads the log while the run goes on.
struct drop {
	__u64 ts_ns; // CLOCK_MONOTONIC
	__u32 saddr, daddr; // network order
	__u16 sport, dport; // network order
	__u32 seq;          // host order
	__u32 payload;      // TCP payload bytes
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} drops SEC(".maps");

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
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	int is_tcp = skb->protocol == ETH_P_IP && (void *)(ip + 1) <= end && ip->protocol == 6;
	if (tcp_only && !is_tcp)
		return TCX_NEXT;
	count(0);
	if (bpf_get_prandom_u32() >= drop_threshold)
		return TCX_NEXT;
	count(1);
	struct drop *d = bpf_ringbuf_reserve(&drops, sizeof(*d), 0);
	if (!d) {
		count(2);
		return TCX_DROP;
	}
	__builtin_memset(d, 0, sizeof(*d));
	d->ts_ns = bpf_ktime_get_ns();
	if (is_tcp) {
		__u32 ihl = ip->ihl * 4;
		struct tcphdr *tcp = (void *)ip + ihl;
		d->saddr = ip->saddr;
		d->daddr = ip->daddr;
		if (ihl >= sizeof(*ip) && (void *)(tcp + 1) <= end) {
			d->sport = tcp->source;
			d->dport = tcp->dest;
			d->seq = bpf_ntohl(tcp->seq);
			__u32 hl = ihl + tcp->doff * 4;
			__u32 tot = bpf_ntohs(ip->tot_len);
			d->payload = tot > hl ? tot - hl : 0;
		}
	}
	bpf_ringbuf_submit(d, 0);
	return TCX_DROP;
}
