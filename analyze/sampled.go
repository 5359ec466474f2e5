package analyze

import (
	"slices"
	"sort"

	"github.com/bufscope/bufscope/decode"
)

// Thinned message-start reports (docs/monitors.md, "Fewer message-start
// reports"): with --message-start-every N only the messages whose RPC ID
// is picked are reported at the queues they cross, and with
// --message-start-first-hop a router reports none at all. A message that
// was not reported at a switch queue it crossed has no time there, and a
// congested router queue then shows up as a slow server or as wire time.
//
// A FIFO's delay is a property of the queue at a moment, not of the
// message: packets that enter it at about the same time wait about as
// long. So the residence an unreported message met at a switch queue is
// estimated from what the same queue reported around the moment the
// message entered it (the residences of sampled messages, its queuing
// reports), and the queues a half-connection crosses are learned from the
// reports that named it or another flow towards the same destination. The estimate joins the message's chain marked as
// such, with the reports it came from as evidence; a diagnosis resting on
// it says so and lowers its confidence by how far the nearest report was.
//
// None of this applies to a trace whose monitors report every message at
// every hop: estimation starts only once the trace is known to be thinned
// (thinned), so such traces are analysed exactly as before. In a thinned
// trace two more things change: a message's transfer time is attributed
// along the learned path (onThinnedPath), and switch stalls are inferred
// with the monitor's threshold (headStalled) and a cautious drain rate
// (usualDrain), because the departures the full inference bounds a
// queue's drain with are 1 in N of the reports.

// sampleGap is how far from a report of a queue its residence is still
// taken as the queue's state: a queue that keeps queuing is reported at
// least every repeat interval (100 ms by default), and the event gap
// (250 ms) is what the analyzer already treats as one condition.
const sampleGap = int64(250e6)

// minStarts is how many message starts the trace must have shown before
// its sampling is trusted. The RPC IDs of 8 starts all picked by chance by
// a rule with N > 1 when every message is reported happens about once in
// 250 traces, and only until the next start: a trace that reports every
// message starts several per RPC, so it is past that long before its
// first RPC is finalized (the settle time after its response).
const minStarts = 8

// sampleHash is the picking rule of --message-start-every (docs/monitors.md):
// a message is reported when sampleHash(id) % N == 0.
func sampleHash(id uint64) uint32 { return uint32((id * 0x9E3779B97F4A7C15) >> 32) }

// residSample is one report of a switch queue: when its victim entered,
// how long it stayed, and the record as evidence.
type residSample struct {
	enter, res int64
	ev         Evidence
}

// queueSamples is what the analyzer keeps of one switch queue for
// estimation: its recent residences in entry order and the destinations
// of the flows it was seen to carry.
type queueSamples struct {
	s    []residSample
	dsts map[[16]byte]int64 // destination address -> last seen
}

// sampling is the analyzer's view of how the trace's message starts were
// thinned, and the per-queue samples estimation reads.
type sampling struct {
	gcd        uint32 // of sampleHash over every message start's RPC ID
	starts     int    // message starts seen (host and switch)
	hostStarts int
	// switchStarts counts tagged hop reports (a switch's message starts)
	// per node; a switch node with reports but none of these reports no
	// message starts at all (--message-start-first-hop). silent counts
	// the nodes at zero.
	switchStarts map[uint32]int
	silent       int
	queues       map[BufferID]*queueSamples
}

// full says whether the trace is known to report every message at every
// hop, so that nothing here is needed: estimation keeps no samples and
// costs a few comparisons per report.
func (s *sampling) full() bool {
	return s.starts >= minStarts && s.gcd == 1 && s.silent == 0
}

// any says whether some switch queue of the trace may be thinned.
func (s *sampling) any() bool {
	return s.starts >= minStarts && s.gcd > 1 || s.silent > 0 && s.hostStarts >= minStarts
}

// noteReport takes from one report what estimation needs: the RPC ID of a
// message start (for the sampling rule) and a switch queue's residence.
// Called for every report; it keeps a few hundred bytes per switch queue
// and window.
func (a *Analyzer) noteReport(r *decode.Record, id BufferID, enter, at int64, ev Evidence) {
	s := &a.smp
	// A host report that names no buffer kind is not a switch's, though
	// bufferOf files it with them.
	isSwitch := id.Kind == ElementKind(decode.BufferSwitchEgrQ) && r.Kind != decode.RecordHostEvent
	start := r.HasTag && (r.Kind == decode.RecordHostEvent && r.Event == decode.EventMessageStart ||
		isSwitch && r.Kind == decode.RecordHop)
	if start {
		s.starts++
		s.gcd = gcd32(s.gcd, sampleHash(r.Tag.RPCID))
		if r.Kind == decode.RecordHostEvent {
			s.hostStarts++
		}
	}
	if !isSwitch {
		return
	}
	if s.switchStarts == nil {
		s.switchStarts = make(map[uint32]int)
		s.queues = make(map[BufferID]*queueSamples)
	}
	n, ok := s.switchStarts[id.Node]
	switch {
	case start:
		s.switchStarts[id.Node] = n + 1
		if ok && n == 0 {
			s.silent--
		}
	case !ok:
		s.switchStarts[id.Node] = 0
		s.silent++
	}
	if s.full() {
		return
	}
	q := s.queues[id]
	if q == nil {
		q = &queueSamples{dsts: make(map[[16]byte]int64)}
		s.queues[id] = q
	}
	if r.HasFlow {
		q.dsts[r.Flow.Dst] = max(q.dsts[r.Flow.Dst], at)
	}
	// A queue report with no residence is a stall's start (report); it
	// says nothing of how long packets stay.
	if (r.Kind != decode.RecordHop && r.Kind != decode.RecordQueue) || r.Latency == 0 {
		return
	}
	q.add(residSample{enter: enter, res: at - enter, ev: ev}, at-int64(a.opts.Window))
}

// add inserts x in entry order (reports arrive nearly in order) and drops
// samples that entered before horizon.
func (q *queueSamples) add(x residSample, horizon int64) {
	i := len(q.s)
	for i > 0 && q.s[i-1].enter > x.enter {
		i--
	}
	q.s = slices.Insert(q.s, i, x)
	n := 0
	for n < len(q.s) && q.s[n].enter < horizon {
		n++
	}
	if n > 0 {
		q.s = slices.Delete(q.s, 0, n)
	}
}

func gcd32(a, b uint32) uint32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// thinned says whether the monitors of this trace leave some messages
// unreported at switch queue id: message starts are sampled (every one's
// RPC ID passes a rule with N > 1), or the queue's node reports none while
// the hosts do.
func (a *Analyzer) thinned(id BufferID) bool {
	s := &a.smp
	if s.starts >= minStarts && s.gcd > 1 {
		return true
	}
	n, ok := s.switchStarts[id.Node]
	return ok && n == 0 && s.hostStarts >= minStarts
}

// estimateNote marks the evidence an estimated residence came from.
const estimateNote = "residence estimated from this report of the queue"

// Estimate is how an element's time was estimated (docs/analyze-json.md):
// its quality, 1 when a report of the queue is at the message's moment,
// falling linearly to 0.5 at sampleGap, and the reports it came from.
// Part of a Result: read-only once Finish returns.
type Estimate struct {
	Quality float64    `json:"quality"`
	From    []Evidence `json:"from"`
}

// estimateHops adds to m, for every switch queue its half-connection
// crosses where m has no report, the residence the queue's reports show
// around the moment m entered it, as an estimated passage; the message's
// end moves to the end of that passage. It changes nothing unless the
// trace is thinned.
func (a *Analyzer) estimateHops(m *message) {
	if m == nil || !m.seen || len(a.smp.queues) == 0 || !a.smp.any() {
		return
	}
	f := m.hc.flow
	// When the first byte reached the queue: where it was first seen
	// (a capture point before the router, or the sender's qdisc as it
	// left), else when it entered the first buffer.
	t := m.firstAt
	if t == 0 {
		t = m.firstOut
	}
	ids := make([]BufferID, 0, 4)
	for id, q := range a.smp.queues {
		if _, ok := q.dsts[f.Dst]; ok && a.thinned(id) {
			ids = append(ids, id)
		}
	}
	// Map order is random; the chain and event IDs are output.
	sort.Slice(ids, func(i, j int) bool { return pointOf(ids[i]) < pointOf(ids[j]) })
	for _, id := range ids {
		if b := a.buffers[id]; b == nil || !a.crosses(b, f) {
			continue
		}
		if slices.ContainsFunc(m.bufs, func(o bufObs) bool { return o.id == id }) {
			continue // reported: its own residence is known
		}
		res, est := a.residenceAt(id, t)
		if est == nil {
			continue
		}
		ev := est.From[0]
		if m.bufs == nil {
			m.bufs = m.bufs0[:0]
		}
		m.bufs = append(m.bufs, bufObs{id: id, first: t, last: t + res, maxRes: uint32(min(res, 1<<32-1)), ev: ev, est: est})
		m.lastIn = max(m.lastIn, t+res)
	}
}

// crosses says whether half-connection f goes through switch queue b: a
// report there named f, or another flow to the same destination (an
// egress queue serves every flow to the hosts behind its port).
func (a *Analyzer) crosses(b *bufState, f decode.Flow) bool {
	if b.flows[f] != nil {
		return true
	}
	for g := range b.flows {
		if g.Dst == f.Dst && g.IPVersion == f.IPVersion {
			return true
		}
	}
	return false
}

// residenceAt estimates the residence of a packet entering switch queue
// id at t: between the nearest reports before and after t (within
// sampleGap), the residence interpolated in time; with only one of them,
// its residence. A report that queued (above the queuing threshold) counts
// only while the queue had a queuing or stall event at t: a queue reports
// queuing from the moment it crosses the threshold and again every repeat
// interval until it clears, so outside its events it was not queuing, and
// the queuing reports of the episode after or before say nothing of t.
// (A stall event's end is no bound: the reports of the backlog behind a
// stall extend it.) nil when no report is near enough.
func (a *Analyzer) residenceAt(id BufferID, t int64) (int64, *Estimate) {
	q := a.smp.queues[id]
	b := a.buffers[id]
	if q == nil || b == nil {
		return 0, nil
	}
	busy := false
	for _, e := range b.events {
		if (e.Class == EvQueuing || e.Class == EvStall) && e.Start <= t && t <= e.End {
			busy = true
		}
	}
	usable := func(x *residSample) bool { return busy || x.res <= int64(a.opts.QueueResidence) }
	i := sort.Search(len(q.s), func(i int) bool { return q.s[i].enter >= t })
	var lo, hi *residSample
	for j := i - 1; j >= 0 && t-q.s[j].enter <= sampleGap; j-- {
		if usable(&q.s[j]) {
			lo = &q.s[j]
			break
		}
	}
	for j := i; j < len(q.s) && q.s[j].enter-t <= sampleGap; j++ {
		if usable(&q.s[j]) {
			hi = &q.s[j]
			break
		}
	}
	var res, near int64
	est := &Estimate{}
	switch {
	case lo != nil && hi != nil:
		span := hi.enter - lo.enter
		res = lo.res
		if span > 0 {
			res = lo.res + (hi.res-lo.res)*(t-lo.enter)/span
		}
		near = min(t-lo.enter, hi.enter-t)
		est.From = []Evidence{lo.ev, hi.ev}
	case lo != nil:
		res, near = lo.res, t-lo.enter
		est.From = []Evidence{lo.ev}
	case hi != nil:
		res, near = hi.res, hi.enter-t
		est.From = []Evidence{hi.ev}
	default:
		return 0, nil
	}
	for i := range est.From {
		est.From[i].Note = estimateNote
	}
	est.Quality = 1 - float64(near)/float64(2*sampleGap)
	return max(res, 0), est
}

// estimatedQuality is the lowest quality among the estimated elements
// that make up a cause (1 when none is estimated).
func estimatedQuality(es []*Element) float64 {
	q := 1.0
	for _, e := range es {
		if e.Estimate != nil {
			q = min(q, e.Estimate.Quality)
		}
	}
	return q
}

// onThinnedPath says whether, in a thinned trace, half-connection f (or
// its reverse) crosses switch queue b although no report there named it:
// the path of a message that was not reported (crosses).
func (a *Analyzer) onThinnedPath(b *bufState, f decode.Flow) bool {
	if b.id.Kind != ElementKind(decode.BufferSwitchEgrQ) || !a.thinned(b.id) {
		return false
	}
	return a.crosses(b, f) || a.crosses(b, reverse(f))
}

// usualDrain is drainState.usual, but in a thinned trace the lowest rate
// on record rather than the lower quartile.
func (a *Analyzer) usualDrain(b *bufState) (float64, int64) {
	mu, usual := b.drain.usual()
	if mu == 0 || !a.thinned(b.id) {
		return mu, usual
	}
	d := b.drain
	n := min(d.nr, len(d.rates))
	return slices.Min(d.rates[:n]), usual
}

// headStalled says whether, in a thinned trace, a report of switch queue
// b shows a stall from the monitor's own threshold: its victim entered
// after the queue's previous report left, and that one had not queued. A
// monitor reports the first packet whose residence crosses its threshold
// (and again every repeat interval until it clears), so no packet that
// left between the two reports stayed longer than the threshold: the
// packet ahead of the victim left within the threshold of the victim's
// entry, and the victim then waited at the head of a queue that did not
// send. A queue that drains slowly but steadily crosses the threshold with
// a residence near it; so the victim must have waited more than twice the
// threshold, and more than the threshold plus the queue's usual residence
// when it queues. Full traces infer stalls from departures alone
// (drainedSlowly); a thinned one has too few of them.
func (a *Analyzer) headStalled(b *bufState, enter, at int64) bool {
	thr := int64(a.opts.QueueResidence)
	res := at - enter
	q := a.smp.queues[b.id]
	if q == nil || res <= 2*thr || !a.thinned(b.id) {
		return false
	}
	if _, usual := b.drain.usual(); usual > 0 && res-thr <= usual {
		return false
	}
	var prev *residSample
	for i := len(q.s) - 1; i >= 0; i-- {
		s := &q.s[i]
		if s.enter < at-int64(a.opts.Window) {
			break
		}
		dep := s.enter + s.res
		if dep >= at || s.enter == enter && dep == at {
			continue
		}
		if prev == nil || dep > prev.enter+prev.res {
			prev = s
		}
	}
	return prev != nil && prev.enter+prev.res < enter && prev.res <= thr
}
