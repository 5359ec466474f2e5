package analyze

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"

	"github.com/bufscope/bufscope/decode"
)

// flowAtBuf is what a buffer knows of one flow: when it was last seen
// there and the bytes reports showed of it.
type flowAtBuf struct {
	flow  decode.Flow // its key in bufState.flows
	last  int64
	bytes byteSeries
}

// bufState is one buffer: the flows seen crossing it (the topology learned
// from reports) and its events.
type bufState struct {
	id     BufferID
	last   int64
	flows  map[decode.Flow]*flowAtBuf
	events []*Event // in start order; recent ones only
	drain  *drainState
	// fcache is a direct-mapped cache in front of flows (bufferFlow
	// notes a flow for every report), like Analyzer.hcache. Cleared when
	// flows are pruned.
	fcache [flowSlots]*flowAtBuf
}

// flowSlots is the size of bufState.fcache, a power of two.
const flowSlots = 16

func (b *bufState) prune(before int64, final bool) {
	clear(b.fcache[:])
	for f, fb := range b.flows {
		if fb.last < before {
			delete(b.flows, f)
			continue
		}
		fb.bytes.prune(before)
	}
	i := 0
	for i < len(b.events) && b.events[i].End < before && !final {
		i++
	}
	if final {
		i = len(b.events)
	}
	if i > 0 {
		n := copy(b.events, b.events[i:])
		clear(b.events[n:])
		b.events = b.events[:n]
	}
}

func (a *Analyzer) buffer(id BufferID) *bufState {
	if b := a.lastBuf; b != nil && b.id == id {
		return b
	}
	b := a.buffers[id]
	if b == nil {
		b = &bufState{id: id, flows: make(map[decode.Flow]*flowAtBuf)}
		a.buffers[id] = b
	}
	a.lastBuf = b
	return b
}

// lookupBuffer returns buffer id if it is known, like a.buffers[id].
func (a *Analyzer) lookupBuffer(id BufferID) *bufState {
	if b := a.lastBuf; b != nil && b.id == id {
		return b
	}
	return a.buffers[id]
}

// bufferFlow notes that flow *f crossed buffer id at time t, carrying n
// payload bytes.
func (a *Analyzer) bufferFlow(id BufferID, f *decode.Flow, t int64, n uint32) {
	b := a.buffer(id)
	b.last = max(b.last, t)
	s := &b.fcache[slotOf(f)&(flowSlots-1)]
	fb := *s
	if fb == nil || fb.flow != *f {
		fb = b.flows[*f]
		if fb == nil {
			fb = &flowAtBuf{flow: *f}
			b.flows[*f] = fb
		}
		*s = fb
	}
	fb.last = max(fb.last, t)
	if n > 0 {
		fb.bytes.add(t, uint64(n))
	}
}

// bufferOf names the buffer a report describes. A report with no
// bufscope host metadata comes from a switch or a router that speaks the
// standard baseline only: its buffer is an egress queue.
func bufferOf(r *decode.Record) BufferID {
	k := ElementKind(r.Buffer)
	if r.Buffer == 0 || !k.IsBuffer() {
		k = ElementKind(decode.BufferSwitchEgrQ)
	}
	port := r.EgressPort
	switch decode.BufferKind(k) {
	case decode.BufferSockSend, decode.BufferSockRecv, decode.BufferAppSend, decode.BufferAppRecv:
		port = 0 // socket buffers are per socket; the host's kind is what a chain names
	}
	return BufferID{Node: r.Node, Kind: k, Port: port, Queue: r.QueueID}
}

// report handles one telemetry report: its event, the topology it shows,
// and the segment it carries.
func (a *Analyzer) report(r *decode.Record) {
	id := bufferOf(r)
	at, enter := r.Time, r.Time
	if plausible(r.EgressTS, r.Time) {
		at = int64(r.EgressTS)
	}
	enter = at
	if plausible(r.IngressTS, r.Time) && int64(r.IngressTS) <= at {
		enter = int64(r.IngressTS)
	} else if r.Latency != 0 {
		enter = at - int64(r.Latency)
	}
	ev := evidenceOf(r, at)
	a.noteReport(r, id, enter, at, ev) // sampled.go
	a.learnNode(r, id)
	if r.HasFlow {
		a.bufferFlow(id, &r.Flow, at, r.PayloadLen)
		if id.Kind == ElementKind(decode.BufferSwitchEgrQ) {
			a.pathNode(r.Flow, id, at, ev)
		}
	}
	residence := int64(r.Latency)
	slow := false
	if id.Kind == ElementKind(decode.BufferSwitchEgrQ) && (r.Kind == decode.RecordQueue || r.Kind == decode.RecordHop) && r.Latency != 0 {
		slow = a.drainedSlowly(a.buffer(id), r, enter, at, ev)
	}
	switch {
	case r.Kind == decode.RecordDrop, r.Kind == decode.RecordHostEvent && r.Event == decode.EventDrop:
		if isQueue(id.Kind) && r.Occupancy < lossOccupancy {
			// A queue that drops while (nearly) empty did not overflow:
			// something on the link discarded the packet (a policer, a
			// filter, a bad cable). That is loss on the link, not a
			// capacity event of the buffer.
			link := BufferID{Node: id.Node, Kind: ElemLink, Port: id.Port}
			if r.HasFlow {
				a.bufferFlow(link, &r.Flow, at, 0)
			}
			a.dropAs(link, EvLoss, at, ev)
			break
		}
		a.drop(id, at, ev)
	case r.Kind == decode.RecordHostEvent && r.Event == decode.EventQueuing && backPressure(r, id):
		// A send queue full because the path drains slowly is a
		// consequence of a buffer further on, not an event of its own.
	case r.Kind == decode.RecordHostEvent && r.Event == decode.EventQueuing:
		since := enter
		if r.Duration != 0 {
			since = min(since, at-int64(r.Duration))
		}
		if a.stalledAt(id, enter) {
			a.condition(id, EvStall, enter, at, residence, ev, 0)
		} else {
			a.condition(id, EvQueuing, since, at, max(residence, int64(r.Duration)), ev, r.EventFlags)
		}
		if id.Kind == ElementKind(decode.BufferSockSend) && r.HasFlow && sendBufferLimited(r) {
			a.sendBlocked(r, id, at, ev)
		}
	case r.Kind == decode.RecordHostEvent && r.Event == decode.EventStall:
		start := at
		if r.Duration != 0 {
			start = at - int64(r.Duration)
		}
		a.condition(id, EvStall, start, at, max(residence, int64(r.Duration)), ev, r.EventFlags)
	case r.Kind == decode.RecordQueue:
		// The baseline has no event field: a queue report with no residence
		// comes from a queue holding packets that do not leave (stall).
		// A packet that entered the queue while it was stalled waited for
		// the stall, so its residence extends the stall, not a new
		// queuing event.
		if r.Latency == 0 || slow || a.stalledAt(id, enter) {
			if slow {
				ev.Note = "queue drained far below its usual rate"
			}
			a.condition(id, EvStall, min(at, enter), at, residence, ev, 0)
		} else {
			a.condition(id, EvQueuing, enter, at, residence, ev, 0)
		}
	case residence > int64(a.opts.QueueResidence) && isQueue(id.Kind) && (slow || a.stalledAt(id, enter)):
		if slow {
			ev.Note = "queue drained far below its usual rate"
		}
		a.condition(id, EvStall, enter, at, residence, ev, 0)
	case residence > int64(a.opts.QueueResidence):
		// A message-start or flow report that waited long is queuing
		// evidence even when no threshold report came.
		a.condition(id, EvQueuing, enter, at, residence, ev, 0)
	}
	if r.HasFlow && r.Flow.Proto == 6 && (r.PayloadLen > 0 || r.HasTag) {
		if r.Kind == decode.RecordHostEvent && r.Event == decode.EventRetransmit {
			ev.Note = "retransmitted"
		}
		o := obs{point: pointOf(id), enter: enter, at: at, buf: id, isBuf: true, latency: r.Latency, ev: &ev}
		a.segment(r, &o)
	}
}

// sendBufferLimited says whether a full send queue is the sender's own
// limit: its capacity is below what the network would let the socket have
// in flight (the congestion window and the peer's receive window). A send
// queue that fills while the congestion window is the smaller is
// back-pressure from a slow path, a consequence of a buffer further on;
// without the windows in the report there is no telling, and the queue is
// not charged.
func sendBufferLimited(r *decode.Record) bool {
	return r.Capacity != 0 && r.SndCwnd != 0 && r.RcvWnd != 0 && r.Capacity < min(r.SndCwnd, r.RcvWnd)
}

// backPressure says whether a report shows a socket send queue that is
// full although it is larger than what the network lets the socket send
// (see sendBufferLimited).
func backPressure(r *decode.Record, id BufferID) bool {
	return id.Kind == ElementKind(decode.BufferSockSend) && r.Capacity != 0 && r.SndCwnd != 0 && r.RcvWnd != 0 && !sendBufferLimited(r)
}

// sendBlocked charges a full socket send queue to the message the socket
// was sending. While the queue is full the application cannot hand over
// the rest of its message: those bytes wait at the sender, which no
// segment and no residence shows (a send-queue report carries no
// payload). The report's sequence number is the socket's snd_nxt, the
// next byte to go out, so the message holding it (or, once everything
// written was sent, the one holding the byte before) is the one held. Only
// a cleared condition carries its whole duration; the time before the
// message's first byte left belongs to the previous message.
func (a *Analyzer) sendBlocked(r *decode.Record, id BufferID, at int64, ev Evidence) {
	h := a.lookupHalf(&r.Flow)
	if h == nil {
		return
	}
	m, _ := h.find(r.TCPSeq)
	if m == nil || m.seen && m.firstOut > at {
		// snd_nxt is the first byte of a message that had not left when
		// the queue cleared: the one being held is the message before.
		m, _ = h.find(r.TCPSeq - 1)
	}
	if m == nil || !m.seen {
		return
	}
	var held int64
	if r.EventFlags&decode.HostFlagCleared != 0 {
		held = at - max(at-int64(r.Duration), m.firstOut)
	}
	ev.Note = "send queue full"
	for i := range m.bufs {
		b := &m.bufs[i]
		if b.id == id {
			// Episodes add up: the message waited through each of them.
			b.n++
			b.last = max(b.last, at)
			b.maxRes = uint32(min(int64(b.maxRes)+max(held, 0), 1<<32-1))
			return
		}
	}
	m.bufs = append(m.bufs, bufObs{id: id, first: max(at-int64(r.Duration), m.firstOut), last: at, maxRes: uint32(max(held, 0)), n: 1, ev: ev})
}

// drainState is what a switch queue's baseline reports (which have no
// event field) tell of how it drains: its recent departures with the
// backlog left behind each, its usual drain rate, and the checks that wait
// for the capture to catch up.
type drainState struct {
	deps    [16]departure // ring, in report order
	nd      int
	rates   [32]float64 // bytes per ns of reports that queued, ring
	resid   [32]int64   // their residences
	nr      int
	pending []drainCheck
}

type departure struct {
	at  int64
	occ uint32
}

// drainCheck is a report whose verdict needs the bytes that arrived before
// its victim: capture points are merged loosely (a trace's packets can be
// some milliseconds out of order between interfaces), so it is decided
// once the trace has moved a settle time past it.
type drainCheck struct {
	enter, at int64
	prev      departure
	mu        float64
	usual     int64
	occ       uint32
	own       uint32
	ev        Evidence
}

// minDrainSamples is how many congested reports a queue needs before its
// usual drain rate is trusted: fewer is a guess from one burst.
const minDrainSamples = 5

// drainedSlowly says whether a switch queue report shows a queue that held
// its victim while draining at less than half its usual rate: a stall
// (DESIGN.md: occupancy while nothing leaves) rather than queuing. A
// router's baseline-only reports cannot say "stall" (docs/wire-format.md
// §2, last paragraph), so it is inferred from a FIFO's arithmetic:
//
//   - a packet's residence is the bytes ahead of it over the drain rate;
//   - a report's occupancy is the backlog left when its victim departed;
//   - so if an earlier report departed while the victim was queued, at
//     most that report's occupancy left before the victim did; if the
//     last earlier departure came before the victim entered, at most that
//     departure's backlog plus what arrived since (from the capture
//     points) was ahead of it.
//
// That is an upper bound on the bytes that left. If even those bytes need
// less than half the time at the queue's usual rate, the queue spent most
// of the time not draining (see undrained, and usual for the rate).
// Without a capture point (arrivals unknown) or before the queue has
// queued minDrainSamples times, nothing is inferred. A check that needs the arrivals is decided
// later (drainCheck); the report counts as queuing until then.
func (a *Analyzer) drainedSlowly(b *bufState, r *decode.Record, enter, at int64, ev Evidence) bool {
	d := b.drain
	if d == nil {
		d = &drainState{}
		b.drain = d
		a.drained = append(a.drained, b)
	}
	a.settleDrains(b, false)
	res := at - enter
	queued := res > int64(a.opts.QueueResidence)
	slow, sample := false, queued && r.Occupancy > 0
	// Most reports did not queue: only their departure is noted.
	if queued {
		if a.headStalled(b, enter, at) { // sampled.go
			slow, sample = true, false
		} else if mu, usual := a.usualDrain(b); mu > 0 {
			if p, ok := d.before(at); ok && p.at >= enter {
				slow = undrained(float64(p.occ), at-p.at, mu, usual)
				sample = !slow
			} else if ok && a.stats.Packets > 0 {
				d.pending = append(d.pending, drainCheck{enter: enter, at: at, prev: p, mu: mu, usual: usual, occ: r.Occupancy, own: r.PayloadLen, ev: ev})
				sample = false
			}
		}
	}
	d.deps[d.nd%len(d.deps)] = departure{at: at, occ: r.Occupancy}
	d.nd++
	if sample {
		d.sample(r.Occupancy, res)
	}
	return slow
}

// settleDrains decides the pending checks of b that the trace has moved a
// settle time past (all of them when all is set: the input has ended). A
// queue that drained slowly gets a stall event over the victim's stay.
func (a *Analyzer) settleDrains(b *bufState, all bool) {
	d := b.drain
	if d == nil || len(d.pending) == 0 {
		return
	}
	keep := d.pending[:0]
	for _, c := range d.pending {
		if !all && c.at+int64(a.opts.Settle) > a.now {
			keep = append(keep, c)
			continue
		}
		res := c.at - c.enter
		bytes := float64(c.prev.occ) + float64(a.arrivals(b, c.prev.at, c.enter)) + float64(c.own)
		if undrained(bytes, res, c.mu, c.usual) {
			c.ev.Note = "queue drained far below its usual rate"
			a.condition(b.id, EvStall, c.enter, c.at, res, c.ev, 0)
		} else {
			d.sample(c.occ, res)
		}
	}
	clear(d.pending[len(keep):])
	d.pending = keep
}

func (d *drainState) sample(occ uint32, res int64) {
	d.rates[d.nr%len(d.rates)] = float64(occ) / float64(res)
	d.resid[d.nr%len(d.resid)] = res
	d.nr++
}

// undrained says whether a queue that could have sent at most bytes in
// span spent most of span not draining at rate mu (bytes per ns), for
// longer than usual, its usual residence when it queues: a shaper holds a
// packet for tokens, and a busy host delays a dequeue, as a matter of
// course; that is not a stall.
func undrained(bytes float64, span int64, mu float64, usual int64) bool {
	need := bytes / mu
	return 2*need < float64(span) && float64(span)-need > float64(usual)
}

// before returns the latest departure strictly before t.
func (d *drainState) before(t int64) (departure, bool) {
	var best departure
	ok := false
	for i := range min(d.nd, len(d.deps)) {
		if p := d.deps[i]; p.at < t && (!ok || p.at > best.at) {
			best, ok = p, true
		}
	}
	return best, ok
}

// usual returns the queue's usual drain rate in bytes per ns (0 before it
// has queued minDrainSamples times) and its median residence when it
// queues. Each report that queued (residence above the queuing threshold)
// and did not stall gives occupancy over residence: in a standing queue as
// much arrives behind a packet during its stay as left ahead of it, so
// that is the drain rate. It errs both ways — a growing queue leaves more behind than went ahead (incast: more
// than twice the link's rate), the tail of a burst less — so the lower
// quartile is taken, not the median: a stall is then called only when
// even a rate at the low end of the queue's record would have needed less
// than half the time.
func (d *drainState) usual() (float64, int64) {
	n := min(d.nr, len(d.rates))
	if n < minDrainSamples {
		return 0, 0
	}
	var s [32]float64
	copy(s[:], d.rates[:n])
	slices.Sort(s[:n])
	var r [32]int64
	copy(r[:], d.resid[:n])
	slices.Sort(r[:n])
	return s[n/4], r[n/2]
}

// arrivals is an upper bound of the bytes that entered buffer b in
// [from, to]: the bytes of every flow towards a destination seen behind
// it (an egress queue serves every flow to the hosts behind its port, not
// only those its reports named), counted where they were first seen,
// whole byte-count buckets at both ends. It walks every connection; it is
// asked only for reports that queued with no departure during their stay.
func (a *Analyzer) arrivals(b *bufState, from, to int64) uint64 {
	var dsts []decode.Flow
	for f := range b.flows {
		if !slices.ContainsFunc(dsts, func(d decode.Flow) bool { return d.Dst == f.Dst }) {
			dsts = append(dsts, f)
		}
	}
	var n uint64
	for f, h := range a.halves {
		if slices.ContainsFunc(dsts, func(d decode.Flow) bool { return d.Dst == f.Dst }) {
			n += h.bytes.sum(from-bucketWidth, to)
		}
	}
	return n
}

// lossOccupancy: a queue holding less than two full-size packets when it
// drops one was not full.
const lossOccupancy = 3000

func isQueue(k ElementKind) bool {
	switch decode.BufferKind(k) {
	case decode.BufferQdisc, decode.BufferSwitchEgrQ, decode.BufferNICTx, decode.BufferNICRx:
		return true
	}
	return false
}

// stalledAt reports whether buffer id had a stall event running at t.
func (a *Analyzer) stalledAt(id BufferID, t int64) bool {
	b := a.lookupBuffer(id)
	if b == nil {
		return false
	}
	const gap = int64(250e6)
	for i := len(b.events) - 1; i >= 0; i-- {
		e := b.events[i]
		if e.Class == EvStall && t >= e.Start-gap && t <= e.End+gap {
			return true
		}
	}
	return false
}

func pointOf(id BufferID) uint64 {
	return uint64(id.Node)<<32 | uint64(id.Kind)<<24 | uint64(id.Port&0xffff)<<8 | uint64(id.Queue)
}

// learnNode maps a host's addresses to its node ID from the buffers only
// the sending host has: its qdisc and socket send queue see packets it
// sends, so their source address is the host's.
func (a *Analyzer) learnNode(r *decode.Record, id BufferID) {
	if !r.HasNode || !r.HasFlow {
		return
	}
	switch decode.BufferKind(id.Kind) {
	case decode.BufferQdisc, decode.BufferSockSend, decode.BufferNICTx, decode.BufferAppSend:
		addr := r.Flow.SrcAddr()
		// The few senders' addresses are learned once; most reports
		// come from one of the last ones (a.learned, known to be in
		// a.nodes, which never drops an address).
		for _, l := range a.learned {
			if l == addr && l.IsValid() {
				return
			}
		}
		if _, ok := a.nodes[addr]; !ok {
			a.nodes[addr] = r.Node
		}
		copy(a.learned[1:], a.learned[:])
		a.learned[0] = addr
	}
}

// condition extends or opens the queuing/stall event of a buffer. flags
// are the host report's start/cleared flags, if any.
func (a *Analyzer) condition(id BufferID, class EventClass, start, at, magnitude int64, ev Evidence, flags uint16) {
	b := a.buffer(id)
	// Reports of one condition come at most a repeat interval apart
	// (100 ms by default); a longer silence starts a new event.
	const gap = int64(250e6)
	var e *Event
	for i := len(b.events) - 1; i >= 0; i-- {
		x := b.events[i]
		if x.Class == class && (x.open || at-x.End <= gap) && flags&decode.HostFlagStart == 0 {
			e = x
			break
		}
		if at-x.End > 10*gap {
			break
		}
	}
	if e == nil {
		a.nextEv++
		a.stats.Events++
		e = &Event{ID: a.nextEv, Buffer: id, Class: class, Start: start, End: at, open: true}
		b.events = append(b.events, e)
	}
	e.Start = min(e.Start, start)
	e.End = max(e.End, at)
	e.Magnitude = max(e.Magnitude, magnitude)
	e.Peak = max(e.Peak, ev.Occupancy)
	if flags&decode.HostFlagCleared != 0 {
		e.open = false
	}
	e.addEvidence(ev)
}

// drop groups drop reports of one buffer into drop events: drops less
// than 250 ms apart belong to one overflow.
func (a *Analyzer) drop(id BufferID, at int64, ev Evidence) { a.dropAs(id, EvDrop, at, ev) }

func (a *Analyzer) dropAs(id BufferID, class EventClass, at int64, ev Evidence) {
	b := a.buffer(id)
	const gap = int64(250e6)
	var e *Event
	for i := len(b.events) - 1; i >= 0; i-- {
		if x := b.events[i]; x.Class == class && at-x.End <= gap && x.End-at <= gap {
			e = x
			break
		}
	}
	if e == nil {
		a.nextEv++
		a.stats.Events++
		e = &Event{ID: a.nextEv, Buffer: id, Class: class, Start: at, End: at}
		b.events = append(b.events, e)
	}
	e.Start, e.End = min(e.Start, at), max(e.End, at)
	e.Magnitude++
	e.Peak = max(e.Peak, ev.Occupancy)
	e.addEvidence(ev)
}

// pathNode records the switches a flow crosses; a switch that appears
// after the flow was established on others is a path change.
func (a *Analyzer) pathNode(f decode.Flow, id BufferID, at int64, ev Evidence) {
	h := a.lookupHalf(&f)
	if h == nil {
		return
	}
	for _, n := range h.switches {
		if n == id.Node {
			return
		}
	}
	if len(h.switches) > 0 && at-h.pathSince > int64(100e6) {
		ev.Note = "flow appears at a new switch"
		a.nextEv++
		a.stats.Events++
		e := &Event{ID: a.nextEv, Buffer: id, Class: EvPathChange, Start: at, End: at, Magnitude: 1}
		e.addEvidence(ev)
		b := a.buffer(id)
		b.events = append(b.events, e)
	}
	if len(h.switches) == 0 {
		h.pathSince = at
	}
	if len(h.switches) < 16 {
		h.switches = append(h.switches, id.Node)
	}
}

// topologyDoc accepts both topology shapes a trace may carry: the
// capture's (hostname and interfaces) and the lab's (nodes with IDs).
type topologyDoc struct {
	Hostname   string `json:"hostname"`
	Interfaces []struct {
		Point     string   `json:"point"`
		Addresses []string `json:"addresses"`
	} `json:"interfaces"`
	Nodes []struct {
		Name   string   `json:"name"`
		NodeID uint32   `json:"node_id"`
		Addrs  []string `json:"addrs"`
	} `json:"nodes"`
}

func (a *Analyzer) loadTopology(b []byte) {
	var t topologyDoc
	if len(b) == 0 || json.Unmarshal(b, &t) != nil {
		return
	}
	for _, n := range t.Nodes {
		if n.NodeID != 0 && n.Name != "" {
			a.names[n.NodeID] = n.Name
		}
		for _, s := range n.Addrs {
			if p, err := netip.ParsePrefix(s); err == nil {
				a.nodes[p.Addr()] = n.NodeID
			} else if ad, err := netip.ParseAddr(s); err == nil {
				a.nodes[ad] = n.NodeID
			}
		}
	}
}

// nodeName names a node from the topology, or "node N".
func (a *Analyzer) nodeName(n uint32) string {
	if s, ok := a.names[n]; ok {
		return s
	}
	if n == 0 {
		return "?"
	}
	return "node " + itoa(int64(n))
}

// bufferName renders a buffer as "node/kind[:port][/qN]".
func (a *Analyzer) bufferName(id BufferID) string {
	var s strings.Builder
	s.WriteString(a.nodeName(id.Node))
	s.WriteByte('/')
	s.WriteString(id.Kind.String())
	if id.Port != 0 {
		s.WriteString(":")
		s.WriteString(itoa(int64(id.Port)))
	}
	if id.Queue != 0 {
		s.WriteString("/q")
		s.WriteString(itoa(int64(id.Queue)))
	}
	return s.String()
}
