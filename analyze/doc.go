// Package analyze turns a Record stream into requests, buffer chains,
// events, request latency anomalies and their diagnosis (docs/analyze.md).
//
// The Analyzer reads decode.Record values only and never interprets packet
// bytes. Run opens traces with the capture package solely to hand packets
// to decoders: several in parallel on many CPUs, or one on the reading
// goroutine (decode.RecordReader is one goroutine); everything past
// decoding sees Records. The package must not import
// hwprobe, nor anything terminal-related (the explorer lives in a
// sub-package); its renderers write to an io.Writer.
//
// An Analyzer is used from one goroutine. A Result is immutable once
// Finish returns and may be shared.
package analyze
