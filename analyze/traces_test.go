package analyze

import (
	"math/rand/v2"
	"testing"
)

// TestTraceTableAgreesWithMap runs random puts, gets and deletes on a
// traceTable and on a map side by side. Sequential keys (untraced RPCs)
// and few distinct keys make long probe runs and deletions inside them.
func TestTraceTableAgreesWithMap(t *testing.T) {
	for _, keys := range []uint64{50, 5000, 1 << 40} {
		rng := rand.New(rand.NewPCG(1, keys))
		var tt traceTable
		m := map[uint64]*traceGroup{}
		for op := range 200_000 {
			k := rng.Uint64N(keys)
			if keys == 5000 {
				k = 1000 + k // sequential IDs
			}
			switch rng.IntN(3) {
			case 0:
				if m[k] == nil {
					g := &traceGroup{key: k}
					m[k] = g
					tt.put(k, g)
				}
			case 1:
				delete(m, k)
				tt.delete(k)
			}
			if got, want := tt.get(k), m[k]; got != want {
				t.Fatalf("keys < %d, op %d: get(%d) = %p, the map has %p", keys, op, k, got, want)
			}
			if tt.n != len(m) {
				t.Fatalf("keys < %d, op %d: %d entries, the map has %d", keys, op, tt.n, len(m))
			}
		}
		for k, g := range m {
			if tt.get(k) != g {
				t.Fatalf("keys < %d: key %d lost", keys, k)
			}
		}
	}
}
