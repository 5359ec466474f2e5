// Package tagger loads the eBPF request tagger: a cgroup sockops program that
// puts the bufscope request tag (docs/wire-format.md, section 1) on the first
// TCP segment of every RPC message sent by the sockets of one cgroup, and on
// retransmissions of that segment.
//
// The tagger does not know where messages start; the process that writes
// them does. It announces each message through the tags map, which the
// tagger pins under /sys/fs/bpf/bufscope so that processes that did not load
// the tagger can open it (package rpctag does both). See docs/tagger.md.
//
// The package is Linux-only. It imports cilium/ebpf and nothing of
// bufscope; rpctag, the user-space half, must not import it either, so an
// RPC framework links rpctag alone.
package tagger
