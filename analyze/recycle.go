package analyze

import "github.com/bufscope/bufscope/decode"

// Most requests are not RLAs. Once closeTrace has judged one that is not,
// nothing refers to its RPC results, their chains, its messages or its
// group any more, and the next RPCs reuse them: they were most of the
// analyzer's garbage, and allocating and collecting them cost more than
// any single step of the analysis. Only what closeTrace did not keep is
// released, and a message only if no other RPC ever owned it (a chain's
// elements point into their message's buffer observations).

// maxFree bounds each free list: enough for the RPCs of the trace time
// between two sweeps, little memory when the traffic drops.
const maxFree = 4096

type freeLists struct {
	msgs   []*message
	rpcs   []*RPC
	groups []*traceGroup
	off    bool // tests compare results with and without recycling
	reused int  // objects handed out again (tests)
}

// newMessage returns a message of direction h, kind and start, all else
// zero. A recycled message keeps the segment array it grew beyond its
// inline one (messages of one workload have similar sizes), and its
// inline storage is not cleared.
func (a *Analyzer) newMessage(h *halfConn, kind decode.MessageKind, start uint32) *message {
	n := len(a.free.msgs)
	if n == 0 {
		m := new(message)
		m.hc, m.kind, m.start = h, kind, start
		return m
	}
	a.free.reused++
	m := a.free.msgs[n-1]
	a.free.msgs[n-1] = nil
	a.free.msgs = a.free.msgs[:n-1]
	var segs []segObs
	if cap(m.segs) > len(m.segs0) {
		segs = m.segs[:0]
	}
	m.msgState = msgState{}
	m.hc, m.kind, m.start, m.segs = h, kind, start, segs
	return m
}

// newRPC returns a zero RPC, keeping a recycled one's chain capacity.
func (a *Analyzer) newRPC() *RPC {
	if n := len(a.free.rpcs); n > 0 {
		a.free.reused++
		r := a.free.rpcs[n-1]
		a.free.rpcs[n-1] = nil
		a.free.rpcs = a.free.rpcs[:n-1]
		chain := r.Chain[:0]
		*r = RPC{Chain: chain}
		return r
	}
	return new(RPC)
}

// newGroup returns a trace group for the caller to overwrite entirely.
func (a *Analyzer) newGroup() *traceGroup {
	if n := len(a.free.groups); n > 0 {
		g := a.free.groups[n-1]
		a.free.groups[n-1] = nil
		a.free.groups = a.free.groups[:n-1]
		return g
	}
	return new(traceGroup)
}

// release recycles a closed group that closeTrace did not keep.
func (a *Analyzer) release(g *traceGroup) {
	if a.free.off {
		return
	}
	for _, m := range g.msgs {
		if len(a.free.msgs) < maxFree {
			a.free.msgs = append(a.free.msgs, m)
		}
	}
	for _, r := range g.rpcs {
		if len(a.free.rpcs) < maxFree {
			clear(r.Chain) // its evidence pointers lead into released messages
			r.req, r.resp = nil, nil
			a.free.rpcs = append(a.free.rpcs, r)
		}
	}
	if len(a.free.groups) < maxFree {
		a.free.groups = append(a.free.groups, g)
	}
}
