// Package capture owns the bufscope trace container: pcapng with
// nanosecond timestamps, compressed as independent zstd frames plus a
// standard zstd seek table, and the readers for that container and for
// plain pcap/pcapng/zstd files. It also owns live capture (AF_PACKET) and
// file rotation.
//
// The container (docs/trace-format.md): every zstd frame is a complete
// pcapng section (SHB and all IDBs, then packets), so any frame can be read
// on its own; a time index in a skippable frame lets Reader skip frames
// outside ReaderOptions.From/To without decompressing them; Reader
// decompresses frames on several workers and returns packets in file order;
// damage costs only the damaged frames, reported with their offsets in a
// *DamageError after every intact packet.
//
// Ownership: Writer copies packet data; Reader's Packet.Data (and the data
// NextData returns) belongs to the Reader until the next Next or NextData
// (Packet.Clone or ReaderOptions.CopyData keep it). Writer is safe for concurrent use; Reader and Merged are for one
// goroutine (Stats and Close excepted).
//
// capture knows packets and capture points, not protocols: it must not
// import decode, analyze or hwprobe.
package capture
