// Package export turns buffer monitor events into Telemetry Report v2.0
// packets (docs/wire-format.md §2) and sends them over UDP to a collector.
//
// Events are batched: a packet leaves when the next event would not fit
// the payload budget, or FlushInterval after its first event, whichever
// comes first. Host buffers travel as bufscope host reports serialized by
// decode.AppendHostReport; a router's egress queue travels as standard
// INT baseline metadata only, serialized by decode.TelemetryReportV2, in
// packets of its own so a collector that knows only the P4.org
// specification can read them.
//
// export may import decode (the serializers) and hwprobe/monitor (the
// events); it must not import analyze, capture or anything that knows
// about terminals.
package export
