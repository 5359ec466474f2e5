package analyze

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestNthMatchesSort checks quickselect against a sort on inputs that
// break naive pivots: sorted, reversed, all equal, few distinct values,
// random, and every length up to 70 plus the ring's 512.
func TestNthMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func(n int) []int64{
		"random": func(n int) []int64 {
			s := make([]int64, n)
			for i := range s {
				s[i] = rng.Int64N(1e9) - 5e8
			}
			return s
		},
		"sorted": func(n int) []int64 {
			s := make([]int64, n)
			for i := range s {
				s[i] = int64(i)
			}
			return s
		},
		"reversed": func(n int) []int64 {
			s := make([]int64, n)
			for i := range s {
				s[i] = int64(n - i)
			}
			return s
		},
		"equal": func(n int) []int64 { return slices.Repeat([]int64{42}, n) },
		"three-values": func(n int) []int64 {
			s := make([]int64, n)
			for i := range s {
				s[i] = int64(rng.IntN(3))
			}
			return s
		},
	}
	for name, gen := range gens {
		for _, n := range append(slices.Collect(func(yield func(int) bool) {
			for n := 1; n <= 70; n++ {
				if !yield(n) {
					return
				}
			}
		}), ringSize) {
			in := gen(n)
			want := slices.Sorted(slices.Values(in))
			for k := range n {
				if got := nth(slices.Clone(in), k); got != want[k] {
					t.Fatalf("%s n=%d: nth(%d) = %d, sorted has %d", name, n, k, got, want[k])
				}
			}
		}
	}
}
