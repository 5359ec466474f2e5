// Package hwprobe owns what runs against a live host: the capability
// probe, the eBPF request tagger and buffer monitors with their loaders,
// the Telemetry Report exporter, and the network-namespace lab.
//
// hwprobe may import decode (to serialize the reports it exports) and
// capture (to record); it must not import analyze.
package hwprobe
