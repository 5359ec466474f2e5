// Package rpctag is the API an RPC framework calls to have its messages
// tagged by the eBPF request tagger (package tagger).
//
// Before writing the first byte of a message, the framework calls
// BeginMessage with the message's kind, RPC (span) ID, trace ID and length.
// rpctag knows the message's stream offset because every byte of the
// connection is written through Conn, and inserts
// (socket cookie, stream offset) -> tag into the tagger's map; the kernel
// side writes the tag into the segment that starts at that offset.
//
// A process that did not load the tagger opens its pinned map with Open; the
// loading process can use NewTable(t.Tags()).
//
// The package is Linux-only and imports nothing of bufscope: an RPC
// framework links it alone. Its Key and Body types mirror the tags map of
// hwprobe/tagger/bpf/tagger.bpf.c; change both together.
package rpctag
