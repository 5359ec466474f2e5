package analyze

import (
	"cmp"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/bufscope/bufscope/decode"
)

type rpcKey struct {
	conn decode.Flow
	id   uint64
	seq  uint32 // distinguishes RPCs whose ID is not known yet
}

// rpc is an open request/response exchange.
type rpc struct {
	key       rpcKey
	id, trace uint64
	c         *conn
	req, resp *message
	active    int64
	doneAt    int64
	finalized bool
	born      uint64 // creation order, for a deterministic finalization order
	live      int    // index in Analyzer.live, -1 once out of it
}

// liveRPC is an RPC the sweep has to look at, with a lower bound of its
// last activity: activity only moves forward, so an entry whose bound
// is within the window cannot have expired and is passed over without
// loading the RPC (most are cold, thousands of them at each sweep).
type liveRPC struct {
	p      *rpc
	active int64
}

// track puts a new RPC, just stored in a.rpcs, on the sweep's list.
func (a *Analyzer) track(p *rpc) {
	p.live = len(a.live)
	a.live = append(a.live, liveRPC{p: p, active: p.active})
}

// untrack takes p off the sweep's list: the last entry takes its place.
func (a *Analyzer) untrack(p *rpc) {
	i := p.live
	if i < 0 {
		return
	}
	n := len(a.live) - 1
	if i != n {
		a.live[i] = a.live[n]
		a.live[i].p.live = i
	}
	a.live[n] = liveRPC{}
	a.live = a.live[:n]
	p.live = -1
}

// retire marks p finalized; the sweep removes it from a.rpcs.
func (a *Analyzer) retire(p *rpc) {
	p.finalized = true
	a.gone = append(a.gone, p)
}

// expire removes from a.rpcs the RPCs finalized since the last sweep and
// those idle for window (all open ones if final), and returns the latter
// in no particular order. It does what one pass over the map did, deleting
// every finalized entry and taking every expired one, without loading
// each open RPC at every sweep.
func (a *Analyzer) expire(final bool, window int64) []*rpc {
	expired := a.expired[:0]
	for i, p := range a.gone {
		if q, ok := a.rpcs[p.key]; ok && q == p {
			delete(a.rpcs, p.key)
		}
		a.untrack(p)
		a.gone[i] = nil
	}
	a.gone = a.gone[:0]
	// Descending, so that the entry untrack moves into i was seen already.
	for i := len(a.live) - 1; i >= 0; i-- {
		e := &a.live[i]
		if !final && e.active+window > a.now {
			continue
		}
		p := e.p
		e.active = p.active
		if !final && p.active+window > a.now {
			continue
		}
		// An RPC no longer in the map (another took its key) was never
		// swept by the map pass either.
		if q, ok := a.rpcs[p.key]; ok && q == p {
			expired = append(expired, p)
			delete(a.rpcs, p.key)
		}
		a.untrack(p)
	}
	return expired
}

// settlingRPC is an RPC waiting for its settle time, with the time its
// response completed: the check at every maintenance reads the list, not
// thousands of cold RPCs.
type settlingRPC struct {
	p      *rpc
	doneAt int64
}

// done marks the response complete; the RPC is finalized once later
// observations of it have had time to arrive.
func (p *rpc) done(a *Analyzer, at int64) {
	if p.doneAt != 0 {
		return
	}
	p.doneAt = at
	if len(a.settling) == 0 || at < a.earliest {
		a.earliest = at
	}
	a.settling = append(a.settling, settlingRPC{p: p, doneAt: at})
}

func (a *Analyzer) detachOpen(p *rpc) {
	if i := slices.Index(p.c.open, p); i >= 0 {
		p.c.open = deleteAt(p.c.open, i)
		p.c.ids = deleteAt(p.c.ids, i)
	}
}

func (a *Analyzer) detach(p *rpc) {
	a.detachOpen(p)
	for _, m := range []*message{p.req, p.resp} {
		if m != nil {
			m.hc.remove(m)
		}
	}
}

// finalize turns an RPC into its timing and chain and hands it to its
// end-user request.
func (a *Analyzer) finalize(p *rpc) {
	if p.finalized {
		return
	}
	a.retire(p)
	// The previous message in the response's direction: while it was
	// still in transit, the response queued behind it in the server's
	// send buffer (head-of-line), which is not the application's time.
	var prevTail int64
	if p.resp != nil {
		h := p.resp.hc
		prevTail = h.lastTail
		for i, m := range h.msgs {
			if m == p.resp && i > 0 {
				prevTail = max(prevTail, h.msgs[i-1].end())
			}
		}
	}
	a.detach(p)
	if p.req == nil || !p.req.seen {
		return // a response whose request was never seen has no latency
	}
	if p.id == 0 {
		// Data no tag ever named (a connection that carries no tagged
		// RPCs, e.g. bulk traffic): it counts as bytes, not as a request.
		a.stats.RPCs--
		return
	}
	req, resp := p.req, p.resp
	r := a.newRPC()
	r.Start, r.reqFlow, r.id, r.trace = req.firstOut, req.hc.flow, p.id, p.trace
	f := req.hc.flow
	r.serverNode = a.nodes[f.DstAddr()]
	a.estimateHops(req) // sampled.go: queues the trace did not report the messages at
	if resp != nil && resp.seen {
		a.estimateHops(resp)
	}
	r.Request = timing(req)
	r.Incomplete = resp == nil || !resp.complete
	if resp != nil && resp.seen {
		r.Response = timing(resp)
		r.End = resp.end()
		r.ServerTime = max(0, resp.firstOut-req.end())
		if hol := min(prevTail, resp.firstOut) - req.end(); hol > 0 {
			r.hol = hol
		}
	} else {
		r.End = req.end()
	}
	r.Latency = max(0, r.End-r.Start)
	size := r.Response.Bytes
	if size == 0 {
		size = r.Request.Bytes
	}
	server := netip.AddrPortFrom(f.DstAddr(), f.DstPort)
	r.cls = classKey{server: server, bucket: int8(bits.Len32(size))}
	r.coarseK = classKey{server: server, bucket: -1}
	// The chain feeds the class baselines (baselines.go); an RPC that is
	// reported lays it out again when it is named, from the same messages
	// (none of which changes once detached). Most never are: laying it out
	// aside keeps the writes off each RPC's cold storage.
	r.req, r.resp = req, resp
	r.Effects = consequences(req, resp)
	if r.Incomplete {
		a.stats.Incomplete++
	} else {
		r.clsC, r.coarseC = a.classesOf(req.hc, r.cls)
		a.baselines(r)
	}
	g := a.addToTrace(p, r)
	// The group owns the messages its chains point into (Element.ev) if
	// no other RPC ever held them.
	for _, m := range [2]*message{req, resp} {
		if m != nil && m.owner == p && !m.shared {
			g.msgs = append(g.msgs, m)
		}
	}
}

func timing(m *message) MessageTiming {
	n := m.length
	if n == 0 {
		n = m.hi
	}
	return MessageTiming{
		Bytes: n, Start: m.firstOut, End: m.end(), Inferred: m.inferred,
		Retransmits: m.retrans, SpuriousRetransmits: m.spurious, RetransmitWait: m.rtxWait, Drops: len(m.drops),
		lossless: m.lossless(),
	}
}

// chain lays out the elements of an RPC in order: the request's buffers
// and wire, the server's application, the response's buffers and wire.
func (a *Analyzer) chain(r *RPC, out []Element) []Element {
	req, resp := r.req, r.resp
	n := len(req.bufs) + 6
	if resp != nil {
		n += len(resp.bufs)
	}
	if cap(out) < n {
		out = make([]Element, 0, n)
	}
	out = a.direction(out, "request", req)
	// The request's wait in the server's receive queue is part of the
	// server time: it is moved from the request's path to the server, and
	// the application holds the rest.
	appTime := r.ServerTime - r.hol
	if r.hol > 0 {
		id := BufferID{Node: r.serverNode, Kind: ElementKind(decode.BufferSockSend)}
		out = append(out, Element{Dir: "server", Kind: id.Kind.String(), NodeID: id.Node,
			Start: req.end(), End: req.end() + r.hol, Time: r.hol, id: id})
	}
	for i := range out {
		if k := out[i].id.Kind; k == ElementKind(decode.BufferSockRecv) || k == ElementKind(decode.BufferAppRecv) {
			out[i].Dir = "server"
			appTime -= out[i].Time
		}
	}
	app := BufferID{Node: r.serverNode, Kind: ElemApplication}
	e := Element{Dir: "server", Kind: app.Kind.String(), NodeID: app.Node, Time: max(0, appTime), id: app}
	if resp != nil && resp.seen {
		e.Start, e.End = req.end(), resp.firstOut
	}
	out = append(out, e)
	if resp != nil && resp.seen {
		out = a.direction(out, "response", resp)
	}
	return out
}

func (a *Analyzer) direction(out []Element, dir string, m *message) []Element {
	// The message is being finalized: its own slice can be reordered.
	bufs := m.bufs
	if len(bufs) <= 12 {
		// What slices.SortFunc does for up to 12 elements (the same
		// order, ties included), without copying two 150-byte values
		// into the comparison function at every step; on bufs already
		// in order (name lays out again what finalize did) it only
		// compares.
		for i := 1; i < len(bufs); i++ {
			for j := i; j > 0 && bufs[j].first < bufs[j-1].first; j-- {
				bufs[j], bufs[j-1] = bufs[j-1], bufs[j]
			}
		}
	} else if !firstsAscend(bufs) {
		slices.SortFunc(bufs, func(x, y bufObs) int { return cmp.Compare(x.first, y.first) })
	}
	var held int64
	for i := range bufs {
		b := &bufs[i]
		if k := b.id.Kind; dir == "request" && (k == ElementKind(decode.BufferSockRecv) || k == ElementKind(decode.BufferAppRecv)) {
			// After the message arrived (see chain): not transfer time.
			out = append(out, Element{
				Dir: dir, Kind: b.id.Kind.String(), NodeID: b.id.Node,
				Port: b.id.Port, Queue: b.id.Queue, Start: b.first, End: b.last,
				Time: int64(b.maxRes), Reports: b.n, id: b.id, ev: &b.ev,
			})
			continue
		}
		out = append(out, Element{
			Dir: dir, Kind: b.id.Kind.String(), NodeID: b.id.Node,
			Port: b.id.Port, Queue: b.id.Queue, Start: b.first, End: b.last,
			Time: int64(b.maxRes), Reports: b.n, id: b.id, ev: &b.ev, Estimate: b.est,
		})
		held += int64(b.maxRes)
	}
	transfer := m.end() - m.firstOut
	// The retransmission wait, bounded by the transfer (a spurious
	// retransmission did not delay the message); none at all when every
	// retransmission was spurious: nothing was lost, and the wait is the
	// late original's time on the wire.
	var rtx int64
	if m.rtxWait > 0 && !m.lossless() {
		rtx = min(m.rtxWait, transfer)
		id := BufferID{Kind: ElemRetransmit}
		out = append(out, Element{Dir: dir, Kind: id.Kind.String(), Buffer: "retransmit-wait", Time: rtx, Start: m.firstOut, End: m.lastIn, id: id})
	}
	wire := max(0, transfer-held-rtx)
	id := BufferID{Kind: ElemWire}
	return append(out, Element{Dir: dir, Kind: id.Kind.String(), Buffer: "wire", Time: wire, Start: m.firstOut, End: m.lastIn, id: id})
}

// firstsAscend says whether bufs are in the order direction lays them out.
func firstsAscend(bufs []bufObs) bool {
	for i := 1; i < len(bufs); i++ {
		if bufs[i].first < bufs[i-1].first {
			return false
		}
	}
	return true
}

func consequences(req, resp *message) []Consequence {
	var out []Consequence
	for i, m := range []*message{req, resp} {
		if m == nil {
			continue
		}
		dir := [2]string{"request", "response"}[i]
		if m.retrans > 0 {
			kind := "fast-retransmit"
			// Linux's minimum retransmission timeout is 200 ms; a wait
			// that long was a timeout, not a fast retransmit.
			if m.rtxWait >= 200e6 {
				kind = "retransmission-timeout"
			}
			if m.lossless() {
				kind = "spurious-retransmission"
			}
			out = append(out, Consequence{Kind: kind, Dir: dir, Count: m.retrans, Wait: m.rtxWait, Evidence: m.rtxEv})
		}
		if evs := within(m.hc.dupAckEvs, m.firstOut, m.lastIn); len(evs) > 0 {
			out = append(out, Consequence{Kind: "dup-acks", Dir: dir, Count: len(evs), Evidence: evs})
		}
		if evs := within(m.hc.zeroWin, m.firstOut, m.lastIn); len(evs) > 0 {
			out = append(out, Consequence{Kind: "window-shrink", Dir: dir, Count: len(evs), Evidence: evs})
		}
	}
	return out
}

func within(evs []Evidence, from, to int64) []Evidence {
	var out []Evidence
	for _, e := range evs {
		if e.Time >= from && e.Time <= to {
			out = append(out, e)
		}
	}
	return out
}

// traceGroup collects the RPCs of one end-user request.
type traceGroup struct {
	key  uint64
	rpcs []*RPC
	born int64 // trace time it was opened
	last int64
	one  [1]*RPC // first storage of rpcs: most requests are one RPC
	// msgs are the messages of its RPCs that only this group refers to,
	// recycled with it (release).
	msgs  []*message
	msgs0 [2]*message
}

// traceTable maps trace keys to their open groups: a hash table with
// open addressing and linear probing. Every RPC looks its trace up, and
// nearly every lookup misses (most requests are one RPC); with thousands
// of requests in flight, one probe into a flat array costs less than a
// map access. Keys are random IDs or RPC IDs, which may be sequential:
// the slot comes from a multiplicative hash.
type traceTable struct {
	slots []traceSlot // len a power of two, or 0
	n     int
}

type traceSlot struct {
	key uint64
	g   *traceGroup // nil: empty
}

func (t *traceTable) slot(key uint64) int {
	return int((key * 0x9e3779b97f4a7c15) >> (64 - bits.Len(uint(len(t.slots)-1))))
}

func (t *traceTable) get(key uint64) *traceGroup {
	if len(t.slots) == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := t.slot(key); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.g == nil {
			return nil
		}
		if s.key == key {
			return s.g
		}
	}
}

// put adds key, which must not be in t.
func (t *traceTable) put(key uint64, g *traceGroup) {
	if 2*(t.n+1) > len(t.slots) {
		old := t.slots
		t.slots = make([]traceSlot, max(64, 2*len(old)))
		for _, s := range old {
			if s.g != nil {
				t.insert(s.key, s.g)
			}
		}
	}
	t.insert(key, g)
	t.n++
}

func (t *traceTable) insert(key uint64, g *traceGroup) {
	mask := len(t.slots) - 1
	i := t.slot(key)
	for t.slots[i].g != nil {
		i = (i + 1) & mask
	}
	t.slots[i] = traceSlot{key, g}
}

// delete removes key if it is in t, moving back the entries after it
// that probed past its slot, so that no lookup stops short of them.
func (t *traceTable) delete(key uint64) {
	if len(t.slots) == 0 {
		return
	}
	mask := len(t.slots) - 1
	i := t.slot(key)
	for t.slots[i].key != key || t.slots[i].g == nil {
		if t.slots[i].g == nil {
			return
		}
		i = (i + 1) & mask
	}
	t.n--
	for j := (i + 1) & mask; t.slots[j].g != nil; j = (j + 1) & mask {
		// The entry at j may fill the hole at i if its home slot is not
		// in the cyclic range (i, j].
		if h := t.slot(t.slots[j].key); (j-h)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = traceSlot{}
}

func (a *Analyzer) addToTrace(p *rpc, r *RPC) *traceGroup {
	key := p.trace
	if key == 0 {
		// Untraced RPCs are requests of their own; their key cannot
		// collide with a trace ID in practice (top bit of a random 64-bit
		// ID mixed with the RPC ID).
		key = p.id ^ 0x9e3779b97f4a7c15
	}
	g := a.traces.get(key)
	if g == nil {
		g = a.newGroup()
		*g = traceGroup{key: key, born: a.now}
		g.rpcs, g.msgs = g.one[:0], g.msgs0[:0]
		a.traces.put(key, g)
		a.traceQ = append(a.traceQ, g)
	}
	g.rpcs = append(g.rpcs, r)
	g.last = max(g.last, r.End, a.now)
	return g
}

// classesOf returns the class of k and that of its server endpoint alone
// (the coarse class), creating them. The RPCs of one connection have one
// server, and mostly one response size: the direction that carries their
// requests remembers its classes, which saves hashing two class keys per
// RPC (classes are never removed).
func (a *Analyzer) classesOf(h *halfConn, k classKey) (sized, coarse *class) {
	if h.coarse == nil {
		h.coarse = a.class(classKey{server: k.server, bucket: -1})
	}
	if h.sized == nil || h.sizedKey != k {
		h.sized, h.sizedKey = a.class(k), k
	}
	return h.sized, h.coarse
}

// classKey names an RPC class: the server endpoint and the power of two
// of the response size (bucket -1: the endpoint alone).
type classKey struct {
	server netip.AddrPort
	bucket int8
}

func (k classKey) String() string {
	if k.bucket < 0 {
		return k.server.String()
	}
	return k.server.String() + " ~2^" + itoa(int64(k.bucket)) + "B"
}

// name fills an RPC's text fields. Only RPCs that are reported get names,
// which keeps string building off the per-RPC path.
func (a *Analyzer) name(r *RPC) {
	if r.ID != "" {
		return
	}
	r.ID = HexID(r.id)
	if r.trace != 0 {
		r.TraceID = HexID(r.trace)
	}
	f := r.reqFlow
	r.Client = netip.AddrPortFrom(f.SrcAddr(), f.SrcPort).String()
	r.Server = netip.AddrPortFrom(f.DstAddr(), f.DstPort).String()
	r.Class = r.cls.String()
	if r.judgedCoarse {
		r.Class = r.coarseK.String()
	}
	r.Chain = a.chain(r, r.Chain[:0])
	for i := range r.Chain {
		e := &r.Chain[i]
		switch e.id.Kind {
		case ElemWire:
			e.Buffer = "wire"
		case ElemRetransmit:
			e.Buffer = "retransmit-wait"
		default:
			e.Buffer = a.bufferName(e.id)
		}
	}
	for i := range r.rules {
		r.rules[i].RPC = r.ID
	}
}
