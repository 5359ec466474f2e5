// Package analyze turns a Record stream into requests, buffer chains,
// events, request latency anomalies and their diagnosis.
//
// analyze reads decode.Record values only; it must not import capture
// directly for packet bytes, nor hwprobe, nor anything terminal-related
// (the explorer lives in a sub-package).
package analyze
