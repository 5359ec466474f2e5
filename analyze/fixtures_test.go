package analyze

import (
	"path/filepath"
	"testing"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/decode"
)

// labFixtures lists the recorded lab traces in fixtures/, or skips the
// test when there are none.
func labFixtures(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "*.trace.zst"))
	if len(files) == 0 {
		t.Skip("no fixtures/*.trace.zst: record them with `bufscope lab run` (docs/lab.md)")
	}
	return files
}

// traceRecords decodes every packet of the trace at path into Records,
// in capture order, and returns them with the trace's stored topology
// (none if it has none), as Run would hand both to the Analyzer.
func traceRecords(tb testing.TB, path string) ([]decode.Record, [][]byte) {
	tb.Helper()
	rr, err := decode.OpenRecords(path, capture.ReaderOptions{}, decode.DecoderOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	recs, err := decode.ReadAll(rr)
	rr.Close()
	if err != nil {
		tb.Fatal(err)
	}
	var topo [][]byte
	if r, err := capture.Open(path, capture.ReaderOptions{}); err == nil {
		if tp := r.Topology(); len(tp) > 0 {
			topo = append(topo, tp)
		}
		r.Close()
	}
	return recs, topo
}
