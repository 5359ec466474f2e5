// Package monitor loads and attaches the eBPF buffer monitors: programs on
// BTF tracepoints that watch a host's socket send and receive queues, its
// root qdiscs, packet drops and TCP retransmissions, and report abnormal
// events (threshold crossings, drops, stalls) plus "message start observed"
// for segments carrying the bufscope request tag.
//
// Events come out of one BPF ring buffer as [Event] values; package export
// turns them into Telemetry Reports. The objects are built for little-endian
// x86-64 only (see gen.go).
//
// Ownership: the programs, maps and links belong to the Monitor that Load
// returned and live until its Close. monitor imports nothing of bufscope;
// it must not import decode, export or analyze (turning events into
// reports is package export's job).
package monitor
