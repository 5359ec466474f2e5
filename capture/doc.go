// Package capture owns the bufscope trace container: pcapng with
// nanosecond timestamps, compressed as independent zstd frames plus a
// standard zstd seek table, and the readers for that container and for
// plain pcap/pcapng/zstd files. It also owns live capture (AF_PACKET) and
// file rotation.
//
// capture knows packets and capture points, not protocols: it must not
// import decode, analyze or hwprobe.
package capture
