// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// Request tagger: a cgroup sockops program that writes the bufscope request
// tag (docs/wire-format.md section 1) into the TCP header of the segment that
// starts each RPC message, and of every retransmission starting there.
//
// User space (package rpctag) announces each message by inserting
// (socket cookie, stream offset) -> tag payload into the tags map before it
// writes the message's first byte. Here the segment's sequence number is
// turned back into a stream offset with the ISN+1 remembered per socket, so
// a retransmission of the same bytes finds the same entry.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#define TAG_KIND 253
#define TAG_LEN 28
// Bytes of the tag after kind, length and ExID; owned by user space.
#define TAG_BODY_LEN 24
#define FLAG_RETRANSMIT 0x80

#define TCPHDR_SYN 0x02

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Set by the loader before the program is loaded (RFC 6994 experiment ID).
volatile const __u16 tag_exid = 0xBF5C;

struct tag_key {
	__u64 cookie;
	// Stream offset of the message's first byte, modulo 2^32: the BPF side
	// only knows 32-bit sequence numbers. User space removes old entries
	// long before the offset can wrap onto a live one.
	__u32 offset;
	__u32 pad;
};

struct tag_val {
	// Wire bytes 4..27 of the option: Ver|MKind, Flags, RPC ID, Trace ID,
	// message length, reserved. Already in network byte order.
	__u8 body[TAG_BODY_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tag_key);
	__type(value, struct tag_val);
} tags SEC(".maps");

struct sock_state {
	__u32 isn1; // initial send sequence number + 1: stream offset 0
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_state);
} sock_states SEC(".maps");

// Counters; index order must match tagger.Stats in Go.
enum {
	STAT_SOCKETS = 0,       // established sockets that got header callbacks
	STAT_MSS_RESERVED,      // LEN callbacks without skb (MSS computation)
	STAT_RESERVED,          // segments that reserved space for a tag
	STAT_TAGGED,            // tags written
	STAT_RETRANSMIT_TAGGED, // tags written on retransmissions
	STAT_LOST,              // unused: Go derives it as reserved - tagged
	STAT_NO_SPACE,          // message start found but no option space left
	STAT_ERRORS,            // helper failures
	STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

extern void *bpf_cast_to_kern_ctx(void *) __ksym;

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct sock_state *state_of(struct bpf_sock_ops *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return 0;
	return bpf_sk_storage_get(&sock_states, sk, 0, 0);
}

static __always_inline void on_established(struct bpf_sock_ops *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return;
	struct sock_state *st = bpf_sk_storage_get(&sock_states, sk, 0,
						   BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(STAT_ERRORS);
		return;
	}
	// Nothing has been sent yet on a fresh connection, so snd_una is the
	// sequence number of stream byte 0.
	st->isn1 = ctx->snd_una;
	if (bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags |
					       BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)) {
		count(STAT_ERRORS);
		return;
	}
	count(STAT_SOCKETS);
}

// seq_of_len_skb reads the sequence number of the segment being sized. The
// LEN callback does not expose the TCP header (it is not built yet), so the
// control block of the kernel skb is read directly.
static __always_inline int seq_of_len_skb(struct bpf_sock_ops *ctx, __u32 *seq)
{
	struct bpf_sock_ops_kern *kctx = bpf_cast_to_kern_ctx(ctx);
	struct sk_buff *skb = kctx->skb;
	if (!skb)
		return -1;
	struct tcp_skb_cb *cb = (struct tcp_skb_cb *)&skb->cb[0];
	return bpf_probe_read_kernel(seq, sizeof(*seq), &cb->seq);
}

static __always_inline struct tag_val *lookup(struct bpf_sock_ops *ctx,
					      struct sock_state *st, __u32 seq)
{
	struct tag_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.offset = seq - st->isn1,
	};
	return bpf_map_lookup_elem(&tags, &key);
}

static __always_inline void on_hdr_opt_len(struct bpf_sock_ops *ctx)
{
	// No skb (flags 0): the kernel is computing the MSS. Reserving here
	// too keeps a tagged full-size segment within the MTU; the reservation
	// is only materialised on segments that do reserve below.
	if (ctx->skb_tcp_flags == 0) {
		if (bpf_reserve_hdr_opt(ctx, TAG_LEN, 0) == 0)
			count(STAT_MSS_RESERVED);
		return;
	}
	if (ctx->skb_len == 0 || (ctx->skb_tcp_flags & TCPHDR_SYN))
		return; // pure ACKs and handshakes never start a message
	struct sock_state *st = state_of(ctx);
	if (!st)
		return;
	__u32 seq;
	if (seq_of_len_skb(ctx, &seq)) {
		count(STAT_ERRORS);
		return;
	}
	if (!lookup(ctx, st, seq))
		return;
	if (bpf_reserve_hdr_opt(ctx, TAG_LEN, 0)) {
		// SACK blocks or other options took the space.
		count(STAT_NO_SPACE);
		return;
	}
	count(STAT_RESERVED);
}

static __always_inline void on_write_hdr_opt(struct bpf_sock_ops *ctx)
{
	if (ctx->skb_len == 0 || (ctx->skb_tcp_flags & TCPHDR_SYN))
		return;
	struct sock_state *st = state_of(ctx);
	if (!st)
		return;
	// Here skb_data..skb_data_end is the TCP header already written.
	struct tcphdr *th = ctx->skb_data;
	if ((void *)(th + 1) > ctx->skb_data_end)
		return;
	__u32 seq = bpf_ntohl(th->seq);
	struct tag_val *val = lookup(ctx, st, seq);
	if (!val)
		return;

	__u8 opt[TAG_LEN];
	opt[0] = TAG_KIND;
	opt[1] = TAG_LEN;
	opt[2] = tag_exid >> 8;
	opt[3] = tag_exid & 0xff;
	__builtin_memcpy(&opt[4], val->body, TAG_BODY_LEN);
	// New data is transmitted before snd_nxt moves past it, so a segment
	// below snd_nxt is being sent again.
	int retrans = (__s32)(seq - ctx->snd_nxt) < 0;
	if (retrans)
		opt[5] |= FLAG_RETRANSMIT;

	long err = bpf_store_hdr_opt(ctx, opt, TAG_LEN, 0);
	if (err == -28 /* ENOSPC: LEN did not reserve, entry added meanwhile */) {
		count(STAT_NO_SPACE);
		return;
	}
	if (err) {
		count(STAT_ERRORS);
		return;
	}
	count(STAT_TAGGED);
	if (retrans)
		count(STAT_RETRANSMIT_TAGGED);
}

SEC("sockops")
int bufscope_tagger(struct bpf_sock_ops *ctx)
{
	switch (ctx->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(ctx);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		on_hdr_opt_len(ctx);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		on_write_hdr_opt(ctx);
		break;
	}
	return 1;
}
