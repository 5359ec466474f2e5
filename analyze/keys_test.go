package analyze

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// keysInSync reports the first open message whose mirrored key (or
// segment end) differs from the message itself, an open RPC whose
// mirrored ID differs from its own, the first RPC the sweep would miss,
// or a cache entry (directions, buffers, a buffer's flows, a direction's
// classes) that is not what its map holds.
func (a *Analyzer) keysInSync() error {
	for i, h := range a.hcache {
		if h != nil && (a.halves[h.flow] != h || slotOf(&h.flow) != i) {
			return fmt.Errorf("direction %v: cached in slot %d but not so in the map", h.flow, i)
		}
	}
	if b := a.lastBuf; b != nil && a.buffers[b.id] != b {
		return fmt.Errorf("buffer %+v: cached but not in the map", b.id)
	}
	for id, b := range a.buffers {
		for i, fb := range b.fcache {
			if fb != nil && (b.flows[fb.flow] != fb || slotOf(&fb.flow)&(flowSlots-1) != i) {
				return fmt.Errorf("buffer %+v, flow %v: cached in slot %d but not so in the map", id, fb.flow, i)
			}
		}
	}
	for f, h := range a.halves {
		if len(h.keys) != len(h.msgs) {
			return fmt.Errorf("direction %v: %d keys for %d messages", f, len(h.keys), len(h.msgs))
		}
		if len(h.c.ids) != len(h.c.open) {
			return fmt.Errorf("direction %v: %d IDs for %d open RPCs", f, len(h.c.ids), len(h.c.open))
		}
		for i, p := range h.c.open {
			if h.c.ids[i] != p.id {
				return fmt.Errorf("direction %v, open RPC %d: ID %d mirrored as %d", f, i, p.id, h.c.ids[i])
			}
			// identify searches the IDs from the newest: that a non-zero
			// ID is there once makes the direction not matter.
			if p.id != 0 && slices.Index(h.c.ids, p.id) != i {
				return fmt.Errorf("direction %v: ID %d is open twice", f, p.id)
			}
		}
		inferred := 0
		for _, k := range h.keys {
			if k.inferred {
				inferred++
			}
		}
		if inferred != h.inferredKeys {
			return fmt.Errorf("direction %v: %d inferred keys counted as %d", f, inferred, h.inferredKeys)
		}
		for i, m := range h.msgs {
			if got, want := h.keys[i], keyOf(m); got != want {
				return fmt.Errorf("direction %v, message %d: key %+v, message says %+v", f, i, got, want)
			}
			var end uint32
			for _, s := range m.segs {
				end = max(end, s.off+s.n)
			}
			for j := 0; j < len(m.segs) && !m.segsUnordered; j++ {
				if !m.inOrder(j, m.segs[j]) {
					return fmt.Errorf("direction %v, message %d: segment %d out of order or wrapping, not so marked", f, i, j)
				}
			}
			if m.segEnd != end {
				return fmt.Errorf("direction %v, message %d: segment end %d, segments say %d", f, i, m.segEnd, end)
			}
		}
		if h.coarse != nil && a.classes[classKey{server: netip.AddrPortFrom(f.DstAddr(), f.DstPort), bucket: -1}] != h.coarse {
			return fmt.Errorf("direction %v: cached server class is not the map's", f)
		}
		if h.sized != nil && a.classes[h.sizedKey] != h.sized {
			return fmt.Errorf("direction %v: cached class %v is not the map's", f, h.sizedKey)
		}
	}
	// The sweep finds expired RPCs through a.live instead of the map:
	// every RPC in the map must be on it, under a lower bound of its
	// activity.
	for k, p := range a.rpcs {
		if p.live < 0 || p.live >= len(a.live) || a.live[p.live].p != p {
			return fmt.Errorf("RPC %+v in the map is not on the sweep's list", k)
		}
		if a.live[p.live].active > p.active {
			return fmt.Errorf("RPC %+v: the sweep's bound %d is after its activity %d", k, a.live[p.live].active, p.active)
		}
	}
	return nil
}

// TestMessageKeysStayInSync feeds every fixture Record by Record and
// checks after each one that the keys the lookups scan still mirror the
// open messages: a message whose identity or range changed without a
// sync would be found (or missed) by stale values. The small window and
// TraceIdle make messages be finalized, recycled and reused meanwhile.
func TestMessageKeysStayInSync(t *testing.T) {
	files := labFixtures(t)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			recs, _ := traceRecords(t, f)
			inferred := int64(0)
			for _, opts := range []Options{
				{SLO: 20 * time.Millisecond},
				{SLO: 20 * time.Millisecond, Window: 2 * time.Second, TraceIdle: 100 * time.Millisecond},
			} {
				a := New(opts)
				for i := range recs {
					a.Feed(&recs[i])
					// The check walks every open message and cache: after
					// each of the first Records, then after every 8th (a
					// mirror that drifts stays wrong until its message
					// goes), so that the largest fixtures stay in seconds
					// under the race detector. FuzzFeed checks after every
					// Record of its inputs.
					if i >= 4096 && i%8 != 0 {
						continue
					}
					if err := a.keysInSync(); err != nil {
						t.Fatalf("after Record %d: %v", i, err)
					}
				}
				inferred += a.Stats().Inferred
				a.Finish()
			}
			t.Logf("%d Records, %d inferred messages", len(recs), inferred)
		})
	}
}
