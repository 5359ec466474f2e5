package analyze

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSegmentSearchMatchesScan feeds the same random sightings to two
// messages, one allowed the binary search over ordered segments and one
// held to the linear scan, and requires the same answers and the same
// bookkeeping after every sighting. The sightings include retransmitted
// and overlapping ranges, arrivals out of order, and offsets just below
// 2^32 (bytes before the message's start), whose ends wrap.
func TestSegmentSearchMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	points := []uint64{capturePoint | 1, capturePoint | 2, 42}
	for round := range 2000 {
		fast, slow := &message{}, &message{}
		slow.segsUnordered = true
		at := int64(1000)
		next := uint32(0)
		for i := range 1 + rng.IntN(40) {
			var off, n uint32
			switch rng.IntN(6) {
			case 0, 1, 2: // new data, in order
				off, n = next, uint32(1+rng.IntN(1500))
				next += n
			case 3: // a range seen before, or part of one
				if next > 0 {
					off = uint32(rng.IntN(int(next)))
				}
				n = uint32(1 + rng.IntN(3000))
			case 4: // ahead of the data seen so far (a gap)
				off, n = next+uint32(rng.IntN(5000)), uint32(1+rng.IntN(1500))
			default: // before the start, ending before or after it
				off, n = -uint32(1+rng.IntN(3000)), uint32(1+rng.IntN(4000))
			}
			at += int64(rng.IntN(3))
			o := obs{point: points[rng.IntN(len(points))], enter: at, at: at, ev: &Evidence{Time: at}}
			if got, want := fast.segment(&o, off, n), slow.segment(&o, off, n); got != want {
				t.Fatalf("round %d, sighting %d [%d+%d): first sighting %v by search, %v by scan", round, i, off, n, got, want)
			}
			fs, ss := fast.msgState, slow.msgState
			fs.segsUnordered, ss.segsUnordered = false, false
			fs.points, ss.points = nil, nil
			fs.segs, ss.segs = nil, nil
			if !reflect.DeepEqual(fs, ss) || !reflect.DeepEqual(fast.segs, slow.segs) || !reflect.DeepEqual(fast.points, slow.points) {
				t.Fatalf("round %d, sighting %d [%d+%d): state differs:\nsearch %+v %+v\nscan   %+v %+v", round, i, off, n, fs, fast.segs, ss, slow.segs)
			}
		}
	}
}
