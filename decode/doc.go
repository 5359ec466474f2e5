// Package decode owns every header bufscope defines or consumes — the
// request tag TCP option, Telemetry Report v2.0 (and the v1.0 and v0.5
// layouts still sent by switches), INT v2.1, Broadcom IFA and the bufscope
// host-buffer extension — as gopacket layers, and the normalised Record
// stream that the analyzer reads.
//
// decode may import capture (to stream packets out of traces); it must not
// import analyze, hwprobe or anything that knows about terminals.
package decode
