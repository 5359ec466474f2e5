// Package decode owns every header bufscope defines or consumes — the
// request tag TCP option, Telemetry Report v2.0 (and the v1.0 and v0.5
// layouts still sent by switches), INT v2.1 (and v1.0) over TCP/UDP,
// Broadcom IFA and the bufscope host-buffer extension — as gopacket layers,
// and the normalised Record stream that the analyzer reads.
//
// The pieces, and who owns what:
//
//   - Layers (TelemetryReportV2, TelemetryReportV1, TelemetryReportV05,
//     TelemetryReport, INT, IFA, Opaque) are gopacket DecodingLayers whose
//     types are registered in layertypes.go. Like gopacket's own layers they
//     slice the input instead of copying it and reuse their internal slices,
//     so a layer value is valid only while its input buffer is, and is not
//     safe for concurrent use.
//   - Encoders (AppendHostReport, RequestTag.AppendOption and the layers'
//     SerializeTo) write what bufscope emits; the Append functions allocate
//     only when dst lacks capacity and are safe for concurrent use.
//   - Decoder turns one captured packet into Records with no allocation per
//     packet. A Record is a plain value that owns no memory. One Decoder per
//     goroutine. On the Records path it reads the Ethernet, 802.1Q, IPv4,
//     IPv6, UDP and TCP headers itself, rule for rule as gopacket's layers
//     do (fuzz targets hold the two equal); the tree renderer and rare
//     headers (IPv6 hop-by-hop, MPTCP) still go through gopacket.
//   - RecordReader streams Records out of a trace opened with the capture
//     package.
//   - Summary, WriteTree and PacketJSON render packets for people and
//     scripts; they may allocate and are never on the Records path.
//
// The wire formats are specified in docs/wire-format.md, the JSON form in
// docs/decode-json.md.
//
// decode may import capture (to stream packets out of traces); it must not
// import analyze, hwprobe or anything that knows about terminals.
package decode
