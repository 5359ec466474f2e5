package main

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/bufscope/bufscope/capture"
)

// benchmarkDecode decodes the shipped demo trace to io.Discard and reports
// packets per second through the whole command path: reader, merge,
// decode's Records and summary, formatting.
func benchmarkDecode(b *testing.B, o decodeOptions) {
	path := filepath.Join(moduleRoot(b), "fixtures", "demo.trace.zst")
	r, err := capture.Open(path, capture.ReaderOptions{})
	if err != nil {
		b.Skipf("demo trace: %v", err)
	}
	n := 0
	for ; ; n++ {
		if _, err := r.Next(); err != nil {
			break
		}
	}
	r.Close()
	o.IO = ioStreams{Out: io.Discard, ErrOut: io.Discard}
	o.Files = []string{path}
	b.ResetTimer()
	for range b.N {
		if err := runDecode(context.Background(), &o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "pkts/s")
}

func BenchmarkDecodeLines(b *testing.B) { benchmarkDecode(b, decodeOptions{}) }
func BenchmarkDecodeJSON(b *testing.B)  { benchmarkDecode(b, decodeOptions{JSON: true}) }
func BenchmarkDecodeTree(b *testing.B)  { benchmarkDecode(b, decodeOptions{Verbose: true}) }
