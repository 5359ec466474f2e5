// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Buffer monitors: one BTF tracepoint program per buffer of the host's
// chain. Every program filters to the watched network namespaces first,
// keeps a little per-buffer state so that it reports threshold crossings
// rather than packets, and hands abnormal events (plus "message start
// observed" for tagged segments) to user space through one ring buffer.
//
// The layout of struct event is shared with the Go loader through bpf2go's
// -type flag; change both together.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#define HDR_MAX 128

// Buffer kinds and events, as in docs/wire-format.md §2.
#define BUF_SOCK_SEND 2
#define BUF_QDISC 3
#define BUF_SOCK_RECV 6
#define BUF_SWITCH 8

#define EV_DROP 1
#define EV_QUEUING 2
#define EV_STALL 3
#define EV_MSG_START 4
#define EV_RETRANS 5

#define FLAG_START 0x8000
#define FLAG_CLEARED 0x4000

// Where an event came from; user space uses it for per-source counters and
// to pick the buffer kind of drops.
#define SRC_QDISC_DEQ 1
#define SRC_QDISC_ENQ 2
#define SRC_KFREE_SKB 3
#define SRC_RETRANS 4
#define SRC_SEND_LEN 5
#define SRC_TCP_PROBE 6
#define SRC_RECV_LEN 7
#define SRC_RCVQ_FULL 8
#define SRC_EXCEED_BUF 9

// Tag option, docs/wire-format.md §1.
#define TAG_KIND 253

struct event {
	__u64 ts_ns;     // event time, CLOCK_MONOTONIC
	__u64 start_ns;  // the victim entered the buffer; 0 if unknown
	__u64 since_ns;  // the condition (congestion, stall, full queue) began; 0 if n/a
	__u32 netns;     // netns inode the event was attributed to
	__u32 ifindex;   // egress device, 0 for socket buffers
	__u32 iif;       // ingress device of the victim (router mode)
	__u32 drop_reason;
	__u32 occ_bytes;
	__u32 cap_bytes;
	__u32 occ_pkts;
	__u32 cap_pkts;
	__u32 rcv_wnd;
	__u32 snd_cwnd;
	__u32 seq;       // for synthesized headers (hdr_len == 0)
	__u32 ack;
	__u16 queue_id;
	__u16 flags;
	__u16 hdr_len;   // bytes of hdr copied from the victim skb
	__u16 sport;     // network order, for synthesized headers
	__u16 dport;
	__u16 family;    // AF_INET / AF_INET6 for synthesized headers
	__u8 buffer;
	__u8 event;
	__u8 source;
	__u8 router;
	__u8 saddr[16];
	__u8 daddr[16];
	char qdisc_kind[8];
	__u8 hdr[HDR_MAX];
};

// Thresholds and switches, rewritten by the loader before load.
volatile const __u8 cfg_filter_netns = 0;       // 1: only netns in netns_filter
volatile const __u64 cfg_qdisc_residence_ns = 1000000;
volatile const __u32 cfg_qdisc_backlog_bytes = 0; // 0: off
volatile const __u64 cfg_qdisc_stall_ns = 50000000;
volatile const __u64 cfg_repeat_ns = 100000000;   // re-report a lasting condition this often
volatile const __u32 cfg_sndq_pct = 90;
volatile const __u64 cfg_rcv_stall_ns = 100000000;
volatile const __u8 cfg_msg_start = 1;
volatile const __u32 cfg_msg_start_every = 1;   // report 1 message start in N, by RPC ID
volatile const __u8 cfg_msg_start_first_hop = 0; // only where the segment leaves its sender
volatile const __u16 cfg_tag_exid = 0xBF5C; // RFC 6994 ExID of the request tag
volatile const __u32 cfg_wakeup_every = 64;

// Value flags of netns_filter.
#define NS_WATCH 1
#define NS_ROUTER 2

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u8);
} netns_filter SEC(".maps");

// Drop reasons that are protocol bookkeeping rather than a buffer losing a
// packet (a duplicate segment, a packet for a closed port). Filled by the
// loader from names, since the values differ between kernels.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} drop_ignore SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

// Counters, one slot per STAT_*; per CPU so the hot path never contends.
#define STAT_EMITTED 0
#define STAT_LOST 1
#define STAT_DEQ_UNMATCHED 2
#define STAT_HDR_FAIL 3
#define STAT_DEQ_SEEN 4
#define STAT_MAX 8

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// skb pointer -> enqueue time, as a 4-way set-associative table indexed by
// the skb's address. Array lookups are inlined by the verifier and a set is
// one cache line, so the per-packet cost is a few loads and stores instead
// of a hash map update (measured ~340 ns for an LRU hash on the project's
// VMs, most of it TLB misses on scattered buckets). A set holds four
// packets; a fifth replaces the oldest, whose dequeue is then counted as
// unmatched. Packets freed inside the qdisc leave a stale entry that is
// the oldest of its set and goes first.
#define ENQ_SETS_LOG2 14
#define ENQ_SETS (1 << ENQ_SETS_LOG2)
#define ENQ_WAYS 4

struct enq_set {
	__u64 skb[ENQ_WAYS];
	__u64 ts[ENQ_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ENQ_SETS);
	__type(key, __u32);
	__type(value, struct enq_set);
} enqueued SEC(".maps");

// ptr_bits returns a kernel pointer's value as a plain number. The verifier
// forbids arithmetic on BTF pointers; copying the pointer's bytes through
// the stack yields a scalar it lets us hash.
static __always_inline __u64 ptr_bits(const void *p)
{
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), &p);
	return v;
}

static __always_inline __u32 enq_set_of(__u64 skb)
{
	// sk_buff heads are 256-byte slab objects: dropping the low 8 bits
	// numbers them, and neighbours in a slab page land in neighbouring
	// sets, so the table is touched in few pages (a scattered hash costs
	// a TLB miss per packet on a VM).
	return (__u32)(skb >> 8) & (ENQ_SETS - 1);
}

static __always_inline void enq_record(__u64 skb, __u64 now)
{
	__u32 idx = enq_set_of(skb);
	struct enq_set *set = bpf_map_lookup_elem(&enqueued, &idx);
	if (!set)
		return;
	int victim = 0;
	__u64 oldest = ~0ULL;
	for (int i = 0; i < ENQ_WAYS; i++) {
		if (set->skb[i] == 0 || set->skb[i] == skb) {
			victim = i;
			break;
		}
		if (set->ts[i] < oldest) {
			oldest = set->ts[i];
			victim = i;
		}
	}
	set->skb[victim & (ENQ_WAYS - 1)] = skb;
	set->ts[victim & (ENQ_WAYS - 1)] = now;
}

// enq_take returns the enqueue time of skb and frees its entry, or 0.
static __always_inline __u64 enq_take(__u64 skb)
{
	__u32 idx = enq_set_of(skb);
	struct enq_set *set = bpf_map_lookup_elem(&enqueued, &idx);
	if (!set)
		return 0;
	for (int i = 0; i < ENQ_WAYS; i++) {
		if (set->skb[i] == skb) {
			set->skb[i] = 0;
			return set->ts[i];
		}
	}
	return 0;
}

struct qstate {
	__u64 start_ns;      // congestion began
	__u64 last_emit_ns;
	__u64 last_deq_ns;   // last dequeue that returned a packet
	__u64 stall_start_ns;
	__u8 congested;
	__u8 stalled;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct qstate);
} qdiscs SEC(".maps");

struct skstate {
	__u64 snd_start_ns;
	__u64 snd_last_emit_ns;
	__u64 last_drain_ns;
	__u64 rcv_start_ns;
	__u32 last_copied;
	__u8 snd_full;
	__u8 rcv_stalled;
	__u8 rcv_seen;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct skstate);
} socks SEC(".maps");

// Scratch space: an event is built here and copied into the ring only when
// it is worth reporting, so the per-packet path never reserves ring space.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} wake_ctr SEC(".maps");

// later_by says whether now is more than limit after then. Timestamps of
// one socket or qdisc are written from several CPUs: a reader on another
// CPU can store a time a few hundred ns after the now this CPU read, and
// the unsigned difference would then be enormous, i.e. a stall that never
// happened.
static __always_inline int later_by(__u64 now, __u64 then, __u64 limit)
{
	return now > then && now - then > limit;
}

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		(*v)++;
}

static __always_inline struct event *scratch_event(void)
{
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e) - HDR_MAX);
	return e;
}

// emit copies e into the ring. Wakeups are batched: user space polls with a
// deadline, and only every cfg_wakeup_every-th event (per CPU) wakes it, which
// keeps the cost per event near the submit cost instead of a wakeup's.
static __always_inline void emit(struct event *e)
{
	__u32 zero = 0;
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u32 *n = bpf_map_lookup_elem(&wake_ctr, &zero);
	if (n) {
		*n += 1;
		if (cfg_wakeup_every && *n >= cfg_wakeup_every) {
			*n = 0;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	if (bpf_ringbuf_output(&events, e, sizeof(*e), flags))
		stat_inc(STAT_LOST);
	else
		stat_inc(STAT_EMITTED);
}

// watched returns the netns_filter flags for inum: NS_WATCH when the filter
// is off, 0 when the namespace is not watched.
static __always_inline __u8 watched(__u32 inum)
{
	if (!cfg_filter_netns)
		return NS_WATCH;
	__u8 *f = bpf_map_lookup_elem(&netns_filter, &inum);
	return f ? *f : 0;
}

// The netns lookups run on every packet, so they dereference the BTF
// pointers directly (tp_btf arguments allow it; the loads are CO-RE
// relocated and fault-safe) instead of paying a helper call per hop.
static __always_inline __u32 dev_netns(const struct net_device *dev)
{
	if (!dev)
		return 0;
	return dev->nd_net.net->ns.inum;
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	if (!sk)
		return 0;
	return sk->__sk_common.skc_net.net->ns.inum;
}

// copy_hdr copies the victim's IP and TCP/UDP headers (options included, so
// the request tag travels with the event) into e->hdr. Returns the IP
// protocol, or 0 when the skb has no usable IP header.
static __always_inline int copy_hdr(struct event *e, const struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	__u32 l3len, l4len = 0;
	__u8 l4proto;

	if (!head || nh == 0xffff)
		return 0;
	unsigned char *ip = head + nh;
	if (bpf_probe_read_kernel(e->hdr, 40, ip)) {
		stat_inc(STAT_HDR_FAIL);
		return 0;
	}
	__u8 ver = e->hdr[0] >> 4;
	if (proto == ETH_P_IP && ver == 4) {
		l3len = (e->hdr[0] & 0x0f) * 4;
		l4proto = e->hdr[9];
		if (l3len < 20)
			return 0;
	} else if (proto == ETH_P_IPV6 && ver == 6) {
		// Extension headers are not walked: bufscope traffic is plain TCP.
		l3len = 40;
		l4proto = e->hdr[6];
	} else {
		return 0;
	}
	if (l4proto == IPPROTO_TCP) {
		__u8 doff = 0;
		if (bpf_probe_read_kernel(&doff, 1, ip + l3len + 12))
			return 0;
		l4len = (doff >> 4) * 4;
		if (l4len < 20)
			l4len = 20;
	} else if (l4proto == IPPROTO_UDP) {
		l4len = 8;
	}
	__u32 total = l3len + l4len;
	if (total > HDR_MAX)
		total = HDR_MAX;
	total &= 0xff;
	if (total > HDR_MAX || total < 20)
		return 0;
	if (bpf_probe_read_kernel(e->hdr, total, ip)) {
		stat_inc(STAT_HDR_FAIL);
		return 0;
	}
	e->hdr_len = total;
	return l4proto;
}

struct optscan {
	struct event *e;
	__u32 off; // at the tag when found
	__u32 end;
	int found;
};

// optscan_step looks at the TCP option at c->off. It runs under bpf_loop so
// the verifier checks it once instead of once per option.
static long optscan_step(__u64 i, struct optscan *c)
{
	struct event *e = c->e;
	if (c->off + 4 > c->end)
		return 1;
	__u8 kind = e->hdr[c->off & (HDR_MAX - 1)];
	if (kind == 0)
		return 1;
	if (kind == 1) {
		c->off++;
		return 0;
	}
	__u8 len = e->hdr[(c->off + 1) & (HDR_MAX - 1)];
	if (len < 2)
		return 1;
	if (kind == TAG_KIND && len >= 4) {
		__u16 exid = ((__u16)e->hdr[(c->off + 2) & (HDR_MAX - 1)] << 8) |
			     e->hdr[(c->off + 3) & (HDR_MAX - 1)];
		if (exid == cfg_tag_exid) {
			c->found = 1;
			return 1;
		}
	}
	c->off += len;
	return 0;
}

// tag_offset returns the offset in e->hdr of the bufscope request tag of
// the TCP header copied there, or 0 when it carries none.
static __always_inline __u32 tag_offset(struct event *e)
{
	__u32 l3len;
	if ((e->hdr[0] >> 4) == 4)
		l3len = (e->hdr[0] & 0x0f) * 4;
	else
		l3len = 40;
	if (l3len > 60)
		return 0;
	__u32 doff = (e->hdr[(l3len + 12) & (HDR_MAX - 1)] >> 4) * 4;
	if (doff <= 20)
		return 0;
	struct optscan c = {.e = e, .off = l3len + 20, .end = l3len + doff};
	if (c.end > e->hdr_len)
		return 0;
	bpf_loop(40, optscan_step, &c, 0);
	return c.found ? c.off : 0;
}

// sampled decides whether the message whose tag starts at off in e->hdr is
// one of the 1 in cfg_msg_start_every whose start is reported. The RPC ID
// (tag bytes 6-13) is mixed first because callers may number RPCs in
// sequence, and a plain modulo would then pick by the caller's pattern.
static __always_inline int sampled(struct event *e, __u32 off)
{
	if (cfg_msg_start_every <= 1)
		return 1;
	__u64 id = 0;
	for (int i = 0; i < 8; i++)
		id = (id << 8) | e->hdr[(off + 6 + i) & (HDR_MAX - 1)];
	id *= 0x9E3779B97F4A7C15ULL;
	return ((id >> 32) % cfg_msg_start_every) == 0;
}

// maybe_tagged is the per-packet pre-check before copying a header: only
// a TCP header with at least 28 bytes of options can hold the tag, and
// most segments carry 12 (timestamps) or none. It runs for every dequeued
// packet, so it reads the skb fields directly (BTF pointer loads, no helper
// call) and, for the common IPv4 header without options, takes the TCP
// data offset from the same 33-byte read as the IP header.
static __always_inline int maybe_tagged(const struct sk_buff *skb)
{
	unsigned char *head = skb->head;
	__u16 nh = skb->network_header;
	__u8 ip[33];
	__u32 l3len;
	__u8 doff = 0;

	// A TCP/IPv4 header is at least 40 bytes, so the 33 bytes are inside
	// it; past a shorter packet they read the head buffer's tailroom or the
	// shared info behind it, never past the allocation (and the read is
	// fault-safe: a failure only means "not tagged").
	if (!head || nh == 0xffff || bpf_probe_read_kernel(ip, sizeof(ip), head + nh))
		return 0;
	if ((ip[0] >> 4) == 4) {
		if (ip[9] != IPPROTO_TCP)
			return 0;
		l3len = (ip[0] & 0x0f) * 4;
		if (l3len == 20)
			return (ip[32] >> 4) * 4 >= 20 + 28;
	} else if ((ip[0] >> 4) == 6) {
		if (ip[6] != IPPROTO_TCP)
			return 0;
		l3len = 40;
	} else {
		return 0;
	}
	if (bpf_probe_read_kernel(&doff, 1, head + nh + l3len + 12))
		return 0;
	return (doff >> 4) * 4 >= 20 + 28;
}

static __always_inline void fill_qdisc(struct event *e, struct Qdisc *q)
{
	e->occ_bytes = BPF_CORE_READ(q, qstats.backlog);
	e->occ_pkts = BPF_CORE_READ(q, q.qlen);
	// pfifo counts its limit in packets, bfifo in bytes; user space decides
	// from the qdisc kind which capacity field the limit belongs to.
	e->cap_pkts = BPF_CORE_READ(q, limit);
	const struct Qdisc_ops *ops = BPF_CORE_READ(q, ops);
	if (ops)
		bpf_probe_read_kernel_str(e->qdisc_kind, sizeof(e->qdisc_kind), &ops->id);
}

static __always_inline struct qstate *qstate_of(struct Qdisc *q)
{
	__u64 key = (__u64)q;
	struct qstate *st = bpf_map_lookup_elem(&qdiscs, &key);
	if (st)
		return st;
	struct qstate zero = {};
	bpf_map_update_elem(&qdiscs, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&qdiscs, &key);
}

static __always_inline void qdisc_event(struct Qdisc *q, const struct net_device *dev,
					__u32 inum, __u8 nsflags, __u8 ev, __u16 flags,
					__u64 now, __u64 start, __u64 since, const struct sk_buff *skb)
{
	struct event *e = scratch_event();
	if (!e)
		return;
	e->ts_ns = now;
	e->start_ns = start;
	e->since_ns = since;
	e->netns = inum;
	e->ifindex = BPF_CORE_READ(dev, ifindex);
	e->buffer = (nsflags & NS_ROUTER) ? BUF_SWITCH : BUF_QDISC;
	e->router = (nsflags & NS_ROUTER) ? 1 : 0;
	e->event = ev;
	e->flags = flags;
	e->source = SRC_QDISC_DEQ;
	fill_qdisc(e, q);
	if (skb) {
		e->iif = BPF_CORE_READ(skb, skb_iif);
		e->queue_id = BPF_CORE_READ(skb, queue_mapping);
		copy_hdr(e, skb);
	}
	emit(e);
}

SEC("tp_btf/qdisc_enqueue")
int BPF_PROG(qdisc_enqueue, struct Qdisc *q, const struct netdev_queue *txq, struct sk_buff *skb)
{
	const struct net_device *dev = txq->dev;
	__u32 inum = dev_netns(dev);
	__u8 nsf = watched(inum);
	if (!nsf)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	enq_record(ptr_bits(skb), now);

	// A shaper that holds packets and releases none for cfg_qdisc_stall_ns
	// is stalled; checked here too because a stalled qdisc may not be
	// dequeued at all. With at most this packet queued there is nothing to
	// check, which spares the state lookup on most packets.
	if (q->q.qlen <= 1)
		return 0;
	struct qstate *st = qstate_of(q);
	if (!st)
		return 0;
	if (st->last_deq_ns == 0)
		st->last_deq_ns = now;
	if (!st->stalled && q->q.qlen > 1 && later_by(now, st->last_deq_ns, cfg_qdisc_stall_ns)) {
		st->stalled = 1;
		st->stall_start_ns = st->last_deq_ns;
		qdisc_event(q, dev, inum, nsf, EV_STALL, FLAG_START, now, now, st->last_deq_ns, skb);
	}
	return 0;
}

static __always_inline int dequeue_one(struct Qdisc *q, const struct net_device *dev, __u32 inum,
				       __u8 nsf, struct qstate *st, struct sk_buff *skb, __u64 now)
{
	__u64 start = enq_take(ptr_bits(skb));
	stat_inc(STAT_DEQ_SEEN);
	if (start == 0 || start > now) {
		stat_inc(STAT_DEQ_UNMATCHED);
		return 0;
	}
	__u64 res = now - start;
	__u32 backlog = q->qstats.backlog;

	if (st->stalled) {
		st->stalled = 0;
		qdisc_event(q, dev, inum, nsf, EV_STALL, FLAG_CLEARED, now, start, st->stall_start_ns, skb);
	}
	st->last_deq_ns = now;

	int over = res > cfg_qdisc_residence_ns ||
		   (cfg_qdisc_backlog_bytes && backlog > cfg_qdisc_backlog_bytes);
	int under = res <= cfg_qdisc_residence_ns / 2 &&
		    (!cfg_qdisc_backlog_bytes || backlog <= cfg_qdisc_backlog_bytes / 2);
	if (over && !st->congested) {
		st->congested = 1;
		st->start_ns = now;
		st->last_emit_ns = now;
		qdisc_event(q, dev, inum, nsf, EV_QUEUING, FLAG_START, now, start, now, skb);
		return 0;
	}
	if (over && later_by(now, st->last_emit_ns, cfg_repeat_ns)) {
		st->last_emit_ns = now;
		qdisc_event(q, dev, inum, nsf, EV_QUEUING, 0, now, start, st->start_ns, skb);
		return 0;
	}
	if (under && st->congested) {
		st->congested = 0;
		st->last_emit_ns = now;
		qdisc_event(q, dev, inum, nsf, EV_QUEUING, FLAG_CLEARED, now, start, st->start_ns, skb);
		return 0;
	}
	if (!cfg_msg_start || !maybe_tagged(skb))
		return 0;
	// A forwarded segment arrived on an interface of this host; one that
	// its sender's stack built has none yet.
	if (cfg_msg_start_first_hop && skb->skb_iif)
		return 0;

	// Message start: only segments carrying the tag are reported, with
	// their residence time, so every request gets its timing at this
	// buffer without a report per packet.
	struct event *e = scratch_event();
	if (!e)
		return 0;
	if (copy_hdr(e, skb) != IPPROTO_TCP)
		return 0;
	__u32 toff = tag_offset(e);
	if (!toff || !sampled(e, toff))
		return 0;
	e->ts_ns = now;
	e->start_ns = start;
	e->netns = inum;
	e->ifindex = BPF_CORE_READ(dev, ifindex);
	e->iif = BPF_CORE_READ(skb, skb_iif);
	e->queue_id = BPF_CORE_READ(skb, queue_mapping);
	e->buffer = (nsf & NS_ROUTER) ? BUF_SWITCH : BUF_QDISC;
	e->router = (nsf & NS_ROUTER) ? 1 : 0;
	e->event = EV_MSG_START;
	e->source = SRC_QDISC_DEQ;
	fill_qdisc(e, q);
	emit(e);
	return 0;
}

SEC("tp_btf/qdisc_dequeue")
int BPF_PROG(qdisc_dequeue, struct Qdisc *q, const struct netdev_queue *txq, int packets,
	     struct sk_buff *skb)
{
	// An empty dequeue follows nearly every packet; with at most one
	// packet waiting it cannot be a stall, so leave before any lookup.
	if (!skb && q->q.qlen <= 1)
		return 0;
	const struct net_device *dev = txq->dev;
	__u32 inum = dev_netns(dev);
	__u8 nsf = watched(inum);
	if (!nsf)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	struct qstate *st = qstate_of(q);
	if (!st)
		return 0;
	if (!skb) {
		// Throttled shaper: packets waiting, nothing released.
		if (!st->stalled && st->last_deq_ns &&
		    later_by(now, st->last_deq_ns, cfg_qdisc_stall_ns)) {
			st->stalled = 1;
			st->stall_start_ns = st->last_deq_ns;
			qdisc_event(q, dev, inum, nsf, EV_STALL, FLAG_START, now, 0, st->last_deq_ns, 0);
		}
		return 0;
	}
	// Bulk dequeues hand over a list linked through skb->next.
	struct sk_buff *cur = skb;
	for (int i = 0; i < 8; i++) {
		if (!cur || i >= packets)
			break;
		dequeue_one(q, dev, inum, nsf, st, cur, now);
		cur = cur->next;
	}
	return 0;
}

static __always_inline void fill_sock(struct event *e, const struct sock *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = bpf_htons(BPF_CORE_READ(sk, __sk_common.skc_num));
	e->dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	if (e->family == AF_INET) {
		bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	e->snd_cwnd = BPF_CORE_READ(tp, snd_cwnd) * BPF_CORE_READ(tp, mss_cache);
}

// kfree_skb: every drop with a reason other than "not dropped" / "consumed".
// The buffer kind is decided in user space from the reason's name, which is
// read from the kernel's BTF there.
SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	if (reason <= SKB_CONSUMED)
		return 0;
	struct net_device *dev = skb->dev;
	struct sock *sk = skb->sk;
	__u32 inum = dev ? dev_netns(dev) : sk_netns(sk ? sk : rx_sk);
	__u8 nsf = watched(inum);
	if (!nsf)
		return 0;
	__u32 r = reason;
	if (bpf_map_lookup_elem(&drop_ignore, &r))
		return 0;
	struct event *e = scratch_event();
	if (!e)
		return 0;
	if (!copy_hdr(e, skb))
		return 0; // not an IP packet: nothing a request could have lost
	e->ts_ns = bpf_ktime_get_ns();
	e->netns = inum;
	e->event = EV_DROP;
	e->source = SRC_KFREE_SKB;
	e->drop_reason = reason;
	e->router = (nsf & NS_ROUTER) ? 1 : 0;
	e->iif = BPF_CORE_READ(skb, skb_iif);
	e->queue_id = BPF_CORE_READ(skb, queue_mapping);
	if (dev) {
		e->ifindex = BPF_CORE_READ(dev, ifindex);
		// A qdisc tail drop never entered the queue: report the state of
		// the device's root qdisc the packet was refused by.
		struct Qdisc *q = BPF_CORE_READ(dev, qdisc);
		if (q && reason == SKB_DROP_REASON_QDISC_DROP)
			fill_qdisc(e, q);
	}
	emit(e);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit_skb, const struct sock *sk, const struct sk_buff *skb, int err)
{
	__u32 inum = sk_netns(sk);
	__u8 nsf = watched(inum);
	if (!nsf)
		return 0;
	struct event *e = scratch_event();
	if (!e)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->netns = inum;
	e->buffer = BUF_SOCK_SEND;
	e->event = EV_RETRANS;
	e->source = SRC_RETRANS;
	fill_sock(e, sk);
	// The queued skb has no headers yet (they are built on the clone that
	// goes out), so the victim header is synthesized from the socket and
	// the segment's sequence number in the TCP control block.
	struct tcp_skb_cb *cb = (struct tcp_skb_cb *)&skb->cb[0];
	e->seq = BPF_CORE_READ(cb, seq);
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	e->ack = BPF_CORE_READ(tp, rcv_nxt);
	e->rcv_wnd = BPF_CORE_READ(tp, snd_wnd);
	e->occ_bytes = BPF_CORE_READ(sk, sk_wmem_queued);
	e->cap_bytes = BPF_CORE_READ(sk, sk_sndbuf);
	emit(e);
	return 0;
}

static __always_inline struct skstate *skstate_of(const struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct skstate *st = bpf_map_lookup_elem(&socks, &key);
	if (st)
		return st;
	struct skstate zero = {};
	bpf_map_update_elem(&socks, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&socks, &key);
}

static __always_inline void sock_event(const struct sock *sk, __u32 inum, __u8 buf, __u8 ev,
				       __u16 flags, __u8 src, __u64 now, __u64 since)
{
	struct event *e = scratch_event();
	if (!e)
		return;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	e->ts_ns = now;
	e->since_ns = since;
	e->netns = inum;
	e->buffer = buf;
	e->event = ev;
	e->flags = flags;
	e->source = src;
	fill_sock(e, sk);
	if (buf == BUF_SOCK_SEND) {
		e->seq = BPF_CORE_READ(tp, snd_nxt);
		e->ack = BPF_CORE_READ(tp, rcv_nxt);
		e->occ_bytes = BPF_CORE_READ(sk, sk_wmem_queued);
		e->cap_bytes = BPF_CORE_READ(sk, sk_sndbuf);
		e->rcv_wnd = BPF_CORE_READ(tp, snd_wnd);
	} else {
		// The receiver's view: the header is the flow as the peer sends
		// it, so the analyzer joins it with the peer's segments.
		__u8 tmp[16];
		__builtin_memcpy(tmp, e->saddr, 16);
		__builtin_memcpy(e->saddr, e->daddr, 16);
		__builtin_memcpy(e->daddr, tmp, 16);
		__u16 p = e->sport;
		e->sport = e->dport;
		e->dport = p;
		e->seq = BPF_CORE_READ(tp, copied_seq);
		e->ack = BPF_CORE_READ(tp, snd_nxt);
		e->occ_bytes = BPF_CORE_READ(tp, rcv_nxt) - BPF_CORE_READ(tp, copied_seq);
		e->cap_bytes = BPF_CORE_READ(sk, sk_rcvbuf);
		e->rcv_wnd = BPF_CORE_READ(tp, rcv_wnd);
	}
	emit(e);
}

static __always_inline int is_tcp(const struct sock *sk)
{
	return sk->sk_protocol == IPPROTO_TCP && sk->sk_type == 1 /* SOCK_STREAM */;
}

// check_sndq reports the send queue crossing cfg_sndq_pct of sk_sndbuf
// upward, re-reports it every cfg_repeat_ns while it lasts, and reports it
// cleared once it falls below half the threshold.
static __always_inline void check_sndq(const struct sock *sk, __u32 inum, __u8 src)
{
	struct skstate *st = skstate_of(sk);
	if (!st)
		return;
	__u64 queued = (__u32)sk->sk_wmem_queued;
	__u64 limit = (__u32)sk->sk_sndbuf;
	__u64 now = bpf_ktime_get_ns();
	if (queued * 100 >= limit * cfg_sndq_pct) {
		if (!st->snd_full) {
			st->snd_full = 1;
			st->snd_start_ns = now;
			st->snd_last_emit_ns = now;
			sock_event(sk, inum, BUF_SOCK_SEND, EV_QUEUING, FLAG_START, src, now, now);
		} else if (later_by(now, st->snd_last_emit_ns, cfg_repeat_ns)) {
			st->snd_last_emit_ns = now;
			sock_event(sk, inum, BUF_SOCK_SEND, EV_QUEUING, 0, src, now, st->snd_start_ns);
		}
	} else if (st->snd_full && queued * 200 < limit * cfg_sndq_pct) {
		st->snd_full = 0;
		sock_event(sk, inum, BUF_SOCK_SEND, EV_QUEUING, FLAG_CLEARED, src, now, st->snd_start_ns);
	}
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send_length, struct sock *sk, int ret, int flags)
{
	if (!is_tcp(sk))
		return 0;
	__u32 inum = sk_netns(sk);
	if (!watched(inum))
		return 0;
	check_sndq(sk, inum, SRC_SEND_LEN);
	return 0;
}

// tcp_probe runs for every segment an established socket receives: ACKs on
// the sending side (the send queue drains), data on the receiving side (the
// receive queue fills). It is where a receiver that stopped reading is
// noticed: unread bytes and no read for cfg_rcv_stall_ns. A zero window is
// not a stall by itself: a reader scheduled a millisecond late closes the
// window of a young connection, and that is neither rare nor worth an event
// (the analyzer sees every advertised zero window on the wire). A window
// that stays closed is a stall once the reader has been gone that long.
SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	__u32 inum = sk_netns(sk);
	if (!watched(inum))
		return 0;
	struct skstate *st = skstate_of(sk);
	if (!st)
		return 0;
	if (st->snd_full)
		check_sndq(sk, inum, SRC_TCP_PROBE);

	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 now = bpf_ktime_get_ns();
	__u32 copied = BPF_CORE_READ(tp, copied_seq);
	__u32 unread = BPF_CORE_READ(tp, rcv_nxt) - copied;
	if (!st->rcv_seen || copied != st->last_copied || unread == 0) {
		st->rcv_seen = 1;
		st->last_copied = copied;
		st->last_drain_ns = now;
	}
	if (st->rcv_stalled)
		return 0;
	if (unread > 0 && later_by(now, st->last_drain_ns, cfg_rcv_stall_ns)) {
		st->rcv_stalled = 1;
		st->rcv_start_ns = st->last_drain_ns;
		sock_event(sk, inum, BUF_SOCK_RECV, EV_STALL, FLAG_START, SRC_TCP_PROBE, now,
			   st->last_drain_ns);
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv_length, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || !is_tcp(sk))
		return 0;
	__u32 inum = sk_netns(sk);
	if (!watched(inum))
		return 0;
	__u64 key = (__u64)sk;
	struct skstate *st = bpf_map_lookup_elem(&socks, &key);
	if (!st)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	// A stall is normally noticed by tcp_probe when a segment arrives at a
	// queue nobody has read for the threshold. A sender whose window is
	// (nearly) closed sends nothing more, so the read that ends the wait
	// may be the first to see it: data has then sat unread since
	// last_drain_ns (the last read, or the arrival at an empty queue). It
	// is reported once, started and cleared, with its whole duration.
	if (!st->rcv_stalled && later_by(now, st->last_drain_ns, cfg_rcv_stall_ns))
		sock_event(sk, inum, BUF_SOCK_RECV, EV_STALL, FLAG_START | FLAG_CLEARED, SRC_RECV_LEN,
			   now, st->last_drain_ns);
	st->last_drain_ns = now;
	st->last_copied = BPF_CORE_READ((const struct tcp_sock *)sk, copied_seq);
	if (st->rcv_stalled) {
		st->rcv_stalled = 0;
		sock_event(sk, inum, BUF_SOCK_RECV, EV_STALL, FLAG_CLEARED, SRC_RECV_LEN, now,
			   st->rcv_start_ns);
	}
	return 0;
}

// sock_rcvqueue_full: a datagram socket's receive queue refused a packet.
SEC("tp_btf/sock_rcvqueue_full")
int BPF_PROG(sock_rcvqueue_full, struct sock *sk, struct sk_buff *skb)
{
	__u32 inum = sk_netns(sk);
	if (!watched(inum))
		return 0;
	struct event *e = scratch_event();
	if (!e)
		return 0;
	copy_hdr(e, skb);
	e->ts_ns = bpf_ktime_get_ns();
	e->netns = inum;
	e->buffer = BUF_SOCK_RECV;
	e->event = EV_DROP;
	e->source = SRC_RCVQ_FULL;
	e->occ_bytes = BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter);
	e->cap_bytes = BPF_CORE_READ(sk, sk_rcvbuf);
	emit(e);
	return 0;
}

// sock_exceed_buf_limit: the protocol's memory accounting refused to grow a
// socket buffer (memory pressure), kind 0 = send, 1 = receive.
SEC("tp_btf/sock_exceed_buf_limit")
int BPF_PROG(sock_exceed_buf_limit, struct sock *sk, struct proto *prot, long allocated, int kind)
{
	if (!is_tcp(sk))
		return 0;
	__u32 inum = sk_netns(sk);
	if (!watched(inum))
		return 0;
	__u64 now = bpf_ktime_get_ns();
	sock_event(sk, inum, kind ? BUF_SOCK_RECV : BUF_SOCK_SEND, EV_DROP, 0, SRC_EXCEED_BUF, now, 0);
	return 0;
}
