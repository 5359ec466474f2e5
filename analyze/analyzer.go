package analyze

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/bufscope/bufscope/decode"
)

// Stats counts what an Analyzer has seen.
type Stats struct {
	Records      int64 `json:"records"`
	Packets      int64 `json:"data_segments"`
	Reports      int64 `json:"reports"`
	Opaque       int64 `json:"opaque"`
	Unattributed int64 `json:"unattributed_segments"`
	Inferred     int64 `json:"inferred_messages"`
	RPCs         int64 `json:"rpcs"`
	Incomplete   int64 `json:"incomplete_rpcs"`
	Requests     int64 `json:"requests"`
	RLAs         int64 `json:"rlas"`
	Events       int64 `json:"events"`
}

// Analyzer turns a time-ordered stream of Records into requests, chains,
// events and diagnosed RLAs in one pass. Memory is bounded by what is in
// flight within Options.Window: finalized RPCs, idle connections, old
// events and byte counts are evicted as trace time advances; only the
// diagnosed RLAs are kept until Finish.
//
// An Analyzer is not safe for concurrent use: feed it from one goroutine.
type Analyzer struct {
	opts Options
	now  int64
	tick int

	halves map[decode.Flow]*halfConn
	// hcache is a direct-mapped cache in front of halves (slotOf): the
	// directions of a few hundred connections are found without hashing
	// a 38-byte key. Cleared when halves are evicted.
	hcache  [halfSlots]*halfConn
	rpcs    map[rpcKey]*rpc
	buffers map[BufferID]*bufState
	lastBuf *bufState // cache in front of buffers; cleared when buffers are evicted
	classes map[classKey]*class
	traces  traceTable
	traceQ  []*traceGroup // the open traces in opening order (closeTraces)

	settling []settlingRPC
	earliest int64       // the earliest doneAt in settling, if any
	live     []liveRPC   // the RPCs put in rpcs, unordered (expire)
	gone     []*rpc      // RPCs finalized since the last sweep
	drained  []*bufState // the buffers in buffers that have a drainState (closeTrace)
	expired  []*rpc      // scratch for maintain
	chainBuf []Element   // scratch for finalize
	bl       *baseliner  // feeds the class baselines off this goroutine (baselines.go), or nil
	blBatch  []*RPC      // finalized RPCs not yet handed to bl
	warmed   int64       // what run.go's warm loaded, kept so it loads
	born     uint64      // RPCs created so far: rpc.born
	swept    int64       // trace time of the last full sweep
	nodes    map[netip.Addr]uint32
	learned  [4]netip.Addr // the addresses learnNode found in nodes last
	names    map[uint32]string
	nextEv   int

	rlas  []*Request
	stats Stats
	smp   sampling // thinned message starts (sampled.go)
	free  freeLists
}

// New returns an Analyzer with opts.
func New(opts Options) *Analyzer {
	a := &Analyzer{
		opts:    opts.withDefaults(),
		halves:  make(map[decode.Flow]*halfConn),
		rpcs:    make(map[rpcKey]*rpc),
		buffers: make(map[BufferID]*bufState),
		classes: make(map[classKey]*class),
		nodes:   make(map[netip.Addr]uint32),
		names:   make(map[uint32]string),
	}
	for _, t := range a.opts.Topology {
		a.loadTopology(t)
	}
	return a
}

// Stats returns the counters so far.
func (a *Analyzer) Stats() Stats { return a.stats }

// plausible reports whether a reported timestamp (ns since the epoch) is
// within an hour of the capture time, i.e. from a synchronized clock and
// not a 32-bit counter of an older report format.
func plausible(ts uint64, capture int64) bool {
	d := int64(ts) - capture
	return ts != 0 && d < 3600e9 && d > -3600e9
}

// Feed adds one Record. Records must come in capture-time order (as
// capture.Merge delivers them); reports may describe earlier moments, which
// the Analyzer takes from their timestamps. r is not retained.
func (a *Analyzer) Feed(r *decode.Record) {
	a.stats.Records++
	if r.Time > a.now {
		a.now = r.Time
	}
	switch r.Kind {
	case decode.RecordPacket:
		a.packet(r)
	case decode.RecordHop, decode.RecordQueue, decode.RecordDrop, decode.RecordHostEvent:
		a.stats.Reports++
		a.report(r)
	default:
		a.stats.Opaque++
	}
	a.tick++
	if a.tick&1023 == 0 {
		a.maintain(false)
	}
}

func evidenceOf(r *decode.Record, at int64) Evidence {
	e := Evidence{
		Time: at, Kind: r.Kind, Source: r.Source, Buffer: r.Buffer, Event: r.Event,
		Flow: r.Flow, Seq: r.TCPSeq, Latency: r.Latency, Occupancy: r.Occupancy,
		Capacity: r.Capacity, Flags: r.EventFlags,
	}
	if r.HasDropReason {
		e.Drop = r.DropName()
		if e.Drop == "" {
			e.Drop = "code " + itoa(int64(r.DropReason))
		}
	}
	return e
}

// halfSlots is the size of Analyzer.hcache, a power of two.
const halfSlots = 256

// slotOf picks f's slot in Analyzer.hcache from its ports and the low
// bytes of its addresses: cheap, and different for the connections of
// one host pair.
func slotOf(f *decode.Flow) int {
	x := uint64(f.SrcPort) | uint64(f.DstPort)<<16 |
		uint64(f.Src[3]^f.Src[15])<<32 | uint64(f.Dst[3]^f.Dst[15])<<40 | uint64(f.Proto)<<48
	return int((x * 0x9e3779b97f4a7c15) >> (64 - 8))
}

// half returns direction *f, created if new. f is a pointer so that a
// Record's flow is compared where it lies, not copied first.
func (a *Analyzer) half(f *decode.Flow, t int64) *halfConn {
	s := &a.hcache[slotOf(f)]
	if c := *s; c != nil && c.flow == *f {
		c.last = t
		return c
	}
	h := a.halves[*f]
	if h == nil {
		h = &halfConn{flow: *f}
		if rv := a.halves[reverse(*f)]; rv != nil {
			h.c = rv.c
		} else {
			h.c = &conn{}
		}
		a.halves[*f] = h
	}
	*s = h
	h.last = t
	return h
}

// lookupHalf returns direction *f if it is known, like a.halves[*f],
// through the cache in front of it.
func (a *Analyzer) lookupHalf(f *decode.Flow) *halfConn {
	s := &a.hcache[slotOf(f)]
	if c := *s; c != nil && c.flow == *f {
		return c
	}
	h := a.halves[*f]
	if h != nil {
		*s = h
	}
	return h
}

// packet handles a data packet seen at a capture point.
func (a *Analyzer) packet(r *decode.Record) {
	if !r.HasFlow || r.Flow.Proto != 6 {
		return
	}
	if r.HasDSACK {
		a.duplicate(r)
	}
	if r.PayloadLen == 0 && !r.HasTag {
		a.ack(r)
		return
	}
	a.stats.Packets++
	// The evidence of a captured segment is built only if it turns out to
	// be a retransmission (message.segment): most segments never are.
	o := obs{point: uint64(r.Interface) | capturePoint, enter: r.Time, at: r.Time, rec: r}
	a.segment(r, &o)
}

// ack tracks duplicate ACKs and zero windows: consequences the receiver
// shows of a loss or of an application that does not read.
func (a *Analyzer) ack(r *decode.Record) {
	if r.TCPFlags&(decode.TCPFlagSYN|decode.TCPFlagRST|decode.TCPFlagFIN) != 0 || r.TCPFlags&decode.TCPFlagACK == 0 {
		return
	}
	rf := reverse(r.Flow)
	h := a.lookupHalf(&rf)
	if h == nil {
		return
	}
	if r.Window == 0 {
		if len(h.zeroWin) < maxEvidence {
			ev := evidenceOf(r, r.Time)
			ev.Note = "zero window"
			h.zeroWin = append(h.zeroWin, ev)
		}
		a.zeroWindow(r, h)
	}
	if r.TCPAck == h.lastAck {
		h.dupAcks++
		if h.dupAcks == 3 && len(h.dupAckEvs) < maxEvidence {
			ev := evidenceOf(r, r.Time)
			ev.Note = "3 duplicate ACKs"
			h.dupAckEvs = append(h.dupAckEvs, ev)
		}
		return
	}
	h.lastAck, h.dupAcks = r.TCPAck, 0
}

// duplicate takes a D-SACK (the receiver got bytes twice) as proof that a
// retransmission of them, in the other direction, was spurious.
func (a *Analyzer) duplicate(r *decode.Record) {
	rf := reverse(r.Flow)
	h := a.lookupHalf(&rf)
	if h == nil {
		return
	}
	if m, _ := h.find(r.DSACKLeft); m != nil && m.spurious < m.rtxSegs {
		m.spurious++
	}
}

// zeroWindow turns an advertised zero window into stall evidence for the
// receiver's socket receive queue, which holds data its application does
// not read.
func (a *Analyzer) zeroWindow(r *decode.Record, h *halfConn) {
	node := a.nodes[r.Flow.SrcAddr()]
	id := BufferID{Node: node, Kind: ElementKind(decode.BufferSockRecv)}
	ev := evidenceOf(r, r.Time)
	ev.Note = "zero window advertised"
	a.condition(id, EvStall, r.Time, r.Time, 0, ev, 0)
	a.bufferFlow(id, &h.flow, r.Time, 0)
}

// segment attributes a data segment (captured or inside a report) to its
// message and records the observation.
func (a *Analyzer) segment(r *decode.Record, o *obs) {
	h := a.half(&r.Flow, o.at)
	seq, n := r.TCPSeq, r.PayloadLen
	if n > 0 {
		end := seq + n
		if !h.hasHi || seqAfter(end, h.hi) {
			added := n
			if h.hasHi && seqAfter(h.hi, seq) {
				added = end - h.hi
			}
			h.hi, h.hasHi = end, true
			h.bytes.add(o.at, uint64(added))
		}
	}
	var m *message
	if r.HasTag && (r.Tag.Kind == decode.MessageRequest || r.Tag.Kind == decode.MessageResponse) {
		m = a.tagged(h, &r.Tag, seq, o.at)
	} else {
		m, _ = h.find(seq)
		if m == nil {
			if n == 0 {
				return
			}
			m = a.infer(h, seq, o.at)
		}
	}
	if m == nil {
		a.stats.Unattributed++
		return
	}
	if r.Kind == decode.RecordDrop || (r.Kind == decode.RecordHostEvent && r.Event == decode.EventDrop) {
		if len(m.drops) < maxEvidence {
			m.drops = append(m.drops, o.evidence())
		}
	}
	if m.observe(o, seq, n) && m.owner != nil && m == m.owner.resp {
		m.owner.done(a, o.at)
	}
	if m.owner != nil && o.at > m.owner.active {
		m.owner.active = o.at
	}
}

// tagged finds or creates the message a tag announces. GSO copies the
// tag onto every segment of a super-packet: the lowest sequence number
// carrying the ID is the message start.
func (a *Analyzer) tagged(h *halfConn, t *decode.RequestTag, seq uint32, at int64) *message {
	h.role = t.Kind
	for i := len(h.keys) - 1; i >= 0; i-- {
		if k := &h.keys[i]; k.rpcID == t.RPCID && k.kind == t.Kind && !k.inferred {
			m := h.msgs[i]
			if seqAfter(m.start, seq) {
				m.rebase(seq, t.MessageLength)
				h.setKey(i, keyOf(m))
			}
			return m
		}
	}
	// A message inferred from its later segments gets its identity now.
	if h.inferredKeys > 0 {
		if m := a.identifyInferred(h, t, seq); m != nil {
			return m
		}
	}
	// A tag whose message was already finalized (a late retransmission or
	// report) is not reopened.
	if h.hasAnchor && seqAfter(h.anchor, seq) {
		return nil
	}
	m := a.newMessage(h, t.Kind, seq)
	m.rpcID, m.traceID, m.length = t.RPCID, t.TraceID, t.MessageLength
	// Segments of this message seen before its tag (reports are written
	// after the packets they describe, so they may come first) made an
	// inferred message inside its range: fold it in.
	for i := 0; h.inferredKeys > 0 && i < len(h.keys); i++ {
		if k := &h.keys[i]; k.inferred && m.contains(k.start) {
			x := h.msgs[i]
			m.absorb(x)
			if x.owner != nil {
				a.retire(x.owner)
				a.stats.RPCs--
				a.stats.Inferred--
				a.detachOpen(x.owner)
			}
			h.drop(i)
			i--
		}
	}
	h.insert(m)
	a.identify(m, t)
	return m
}

// identifyInferred gives a message inferred from its later segments its
// identity, if the tag names its first byte.
func (a *Analyzer) identifyInferred(h *halfConn, t *decode.RequestTag, seq uint32) *message {
	if m, i := h.find(seq); m != nil && m.inferred && m.start == seq {
		m.inferred = false
		m.length = t.MessageLength
		m.rpcID, m.traceID = t.RPCID, t.TraceID
		h.setKey(i, keyOf(m))
		a.stats.Inferred--
		if p := m.owner; p != nil && p.id == 0 {
			// The placeholder RPC waiting for an ID is replaced.
			a.retire(p)
			p.req, p.resp = nil, nil
			a.stats.RPCs--
			a.detachOpen(p)
			m.owner = nil
		}
		a.identify(m, t)
		return m
	}
	return nil
}

// rebase moves a message's start back to a lower sequence number that
// carries the same tag (a GSO copy was seen first).
func (m *message) rebase(seq uint32, length uint32) {
	d := m.start - seq
	m.segEnd = 0
	for i := range m.segs {
		s := &m.segs[i]
		s.off += d
		m.segEnd = max(m.segEnd, s.off+s.n)
		if !m.inOrder(i, *s) {
			m.segsUnordered = true // the shift can carry an end past 2^32
		}
	}
	m.hi += d
	m.start, m.length = seq, length
}

// infer creates a message for data whose tagged first segment was not
// captured: it starts where the previous message ended (range
// continuity), or at this segment if nothing came before.
func (a *Analyzer) infer(h *halfConn, seq uint32, at int64) *message {
	start := seq
	if n := len(h.msgs); n > 0 {
		p := h.msgs[n-1]
		if p.length != 0 && !seqAfter(p.start+p.length, seq) {
			start = p.start + p.length
		}
	} else if h.hasAnchor && !seqAfter(h.anchor, seq) {
		start = h.anchor
	} else if h.hasAnchor {
		return nil // data of a message already finalized
	}
	a.stats.Inferred++
	kind := h.role
	if kind == 0 {
		// No tag seen in this direction yet: the opposite of the other
		// direction, or a request, since clients speak first.
		kind = decode.MessageRequest
		rf := reverse(h.flow)
		if rv := a.lookupHalf(&rf); rv != nil && rv.role == decode.MessageRequest {
			kind = decode.MessageResponse
		}
		h.role = kind
	}
	m := a.newMessage(h, kind, start)
	m.inferred = true
	h.insert(m)
	a.adopt(m, at)
	return m
}

// identify ties a tagged message to its RPC, creating the RPC or linking
// it to an inferred counterpart.
func (a *Analyzer) identify(m *message, t *decode.RequestTag) {
	// An open RPC of the connection with this ID is the one the map
	// holds under key (open RPCs are always in a.rpcs, under their ID):
	// a connection has few open RPCs, and a response finds its request's
	// RPC among them without hashing a 56-byte key.
	//
	// Non-zero IDs are unique among a connection's open RPCs (one is only
	// added when neither the connection nor the map knows its ID), so the
	// search may start from the newest, where a response finds its
	// request's RPC.
	var p *rpc
	if t.RPCID != 0 {
		ids := m.hc.c.ids
		for i := len(ids) - 1; i >= 0; i-- {
			if ids[i] == t.RPCID {
				p = m.hc.c.open[i]
				break
			}
		}
	}
	var key rpcKey // only needed, and made, when the connection has no such open RPC
	if p == nil {
		key = rpcKey{conn: canonical(m.hc.flow), id: t.RPCID}
		p = a.rpcs[key]
	}
	if p == nil {
		// An RPC whose request start was missed waits on the connection
		// with ID 0; the response's tag names it.
		if t.Kind == decode.MessageResponse {
			for i, q := range m.hc.c.open {
				if q.id == 0 && q.resp == nil && q.req != nil && q.req.hc != m.hc {
					p = q
					delete(a.rpcs, q.key)
					q.key, q.id, q.trace = key, t.RPCID, t.TraceID
					m.hc.c.ids[i] = q.id
					q.req.rpcID, q.req.traceID = t.RPCID, t.TraceID
					q.req.hc.sync(q.req)
					a.rpcs[key] = q
					break
				}
			}
		}
		if p == nil {
			a.born++
			p = &rpc{key: key, id: t.RPCID, trace: t.TraceID, c: m.hc.c, born: a.born}
			a.rpcs[key] = p
			a.track(p)
			m.hc.c.add(p)
			a.stats.RPCs++
		}
	}
	if m.owner != nil && m.owner != p {
		m.shared = true // the earlier owner may still point at it
	}
	m.owner = p
	m.traceID = t.TraceID
	switch t.Kind {
	case decode.MessageRequest:
		if p.req == nil || p.req.inferred {
			p.req = m
		}
	case decode.MessageResponse:
		if p.resp == nil || p.resp.inferred {
			p.resp = m
		}
	}
}

// adopt links an inferred message to an RPC of its connection: a response
// to the open RPC waiting for one, a request to a new RPC whose ID the
// response will tell.
func (a *Analyzer) adopt(m *message, at int64) {
	switch m.kind {
	case decode.MessageResponse:
		for _, p := range m.hc.c.open {
			if p.resp == nil && p.req != nil && p.req.hc != m.hc {
				p.resp, m.owner = m, p
				m.rpcID, m.traceID = p.id, p.trace
				m.hc.sync(m)
				return
			}
		}
	case decode.MessageRequest:
		key := rpcKey{conn: canonical(m.hc.flow), id: 0, seq: m.start}
		a.born++
		p := &rpc{key: key, c: m.hc.c, req: m, active: at, born: a.born}
		a.rpcs[key] = p
		a.track(p)
		m.hc.c.add(p)
		m.owner = p
		a.stats.RPCs++
	}
}

// maintain finalizes settled RPCs, closes idle traces and evicts state
// older than the window. final finalizes everything (end of input).
func (a *Analyzer) maintain(final bool) {
	settle, window := int64(a.opts.Settle), int64(a.opts.Window)
	// The list is read only when its earliest completion has settled.
	if final || len(a.settling) > 0 && a.earliest+settle <= a.now {
		keep := a.settling[:0]
		first := int64(math.MaxInt64)
		for _, s := range a.settling {
			if final || s.doneAt+settle <= a.now {
				a.finalize(s.p)
			} else {
				keep = append(keep, s)
				first = min(first, s.doneAt)
			}
		}
		clear(a.settling[len(keep):])
		a.settling, a.earliest = keep, first
	}
	a.sendBaselines()
	// The sweeps below walk every open RPC, connection, trace and buffer:
	// done every 50 ms of trace time, they cost little per record and
	// still evict within a small fraction of the window.
	if !final && a.now-a.swept < int64(50*time.Millisecond) {
		return
	}
	a.swept = a.now
	// Finalizing is order-dependent (class baselines keep the latest
	// samples, a response's head-of-line wait reads what the previous RPC
	// on its connection left): expired RPCs go in the order they were
	// created, not in map order, so that every run gives the same result.
	expired := a.expire(final, window)
	slices.SortFunc(expired, func(x, y *rpc) int { return cmp.Compare(x.born, y.born) })
	for i, p := range expired {
		a.finalize(p)
		expired[i] = nil
	}
	a.expired = expired[:0]
	// Judging reads the baselines: they must hold every RPC finalized so
	// far, as they would had finalize fed them itself.
	a.waitBaselines()
	clear(a.hcache[:])
	for f, h := range a.halves {
		if final || (h.last+window <= a.now && len(h.msgs) == 0) {
			delete(a.halves, f)
			continue
		}
		h.bytes.prune(a.now - window)
	}
	a.closeTraces(final)
	a.lastBuf = nil
	for id, b := range a.buffers {
		b.prune(a.now-window, final)
		if len(b.flows) == 0 && len(b.events) == 0 && b.last+window <= a.now {
			delete(a.buffers, id)
		}
	}
	a.drained = slices.DeleteFunc(a.drained, func(b *bufState) bool { return a.buffers[b.id] != b })
}

// closeTraces closes the end-user requests that have been idle for
// TraceIdle and can be judged (or have waited a whole window). Only the
// traces opened more than TraceIdle ago can qualify (a trace's last
// activity is never before its opening), and a.traceQ holds them in
// opening order: the sweep looks at that old prefix only, not at the
// thousands of traces still in flight. Traces close in opening order.
func (a *Analyzer) closeTraces(final bool) {
	idle, window := int64(a.opts.TraceIdle), int64(a.opts.Window)
	q := a.traceQ
	keep, i := 0, 0
	for ; i < len(q); i++ {
		g := q[i]
		if !final && g.born+idle > a.now {
			break
		}
		if final || g.last+idle <= a.now && (a.ready(g) || g.last+window <= a.now) {
			rlas := len(a.rlas)
			a.closeTrace(g)
			a.traces.delete(g.key)
			if len(a.rlas) == rlas {
				a.release(g)
			}
			continue
		}
		q[keep] = g
		keep++
	}
	n := keep + copy(q[keep:], q[i:])
	clear(q[n:])
	a.traceQ = q[:n]
}

// Finish finalizes every open RPC and request and returns the result.
// The Analyzer must not be fed afterwards.
func (a *Analyzer) Finish() *Result {
	a.maintain(true)
	a.stopBaseliner()
	sort.SliceStable(a.rlas, func(i, j int) bool {
		if a.rlas[i].Excess != a.rlas[j].Excess {
			return a.rlas[i].Excess > a.rlas[j].Excess
		}
		return a.rlas[i].Start < a.rlas[j].Start
	})
	return &Result{Schema: SchemaVersion, Stats: a.stats, SLO: int64(a.opts.SLO), RLAs: a.rlas, Summary: summarize(a.rlas)}
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
