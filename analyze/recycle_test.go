package analyze

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"
)

// TestRecyclingKeepsResults feeds the same Records to an Analyzer that
// recycles the RPCs, chains and messages of requests that are not RLAs
// and to one that does not, and requires the same JSON. A recycled
// object still referenced by a kept RLA (an evidence pointer into a
// message reused by a later one) would change the RLA's chain or
// diagnosis. The fixtures are short, so a small window and a short
// TraceIdle make many requests close, be recycled and be reused while
// RLAs are kept.
func TestRecyclingKeepsResults(t *testing.T) {
	files := labFixtures(t)
	reusedAll := 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			recs, topo := traceRecords(t, f)
			run := func(recycle bool) ([]byte, int) {
				a := New(Options{SLO: 20 * time.Millisecond, Window: 2 * time.Second, TraceIdle: 100 * time.Millisecond, Topology: topo})
				a.free.off = !recycle
				for i := range recs {
					a.Feed(&recs[i])
				}
				reused := a.free.reused
				b, err := json.Marshal(a.Finish())
				if err != nil {
					t.Fatal(err)
				}
				return b, reused
			}
			with, reused := run(true)
			without, _ := run(false)
			if !bytes.Equal(with, without) {
				t.Fatalf("recycling changed the result: %d vs %d bytes of JSON", len(with), len(without))
			}
			reusedAll += reused
			t.Logf("%d Records, %d bytes of JSON, %d objects reused", len(recs), len(with), reused)
		})
	}
	if reusedAll < 1000 {
		t.Errorf("only %d objects were reused over all fixtures: the comparison proves little", reusedAll)
	}
}
