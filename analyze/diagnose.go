package analyze

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/bufscope/bufscope/decode"
)

// ring keeps the most recent values of a measure, so a baseline follows
// the trace and costs constant memory.
type ring struct {
	v []int64
	i int
	n int // values ever added

	scratch []int64 // for kth
	kthN    int     // n when kthV was found at index kthK (n > 0)
	kthK    int
	kthV    int64
}

const ringSize = 512

func (r *ring) add(x int64) {
	r.n++
	if len(r.v) < ringSize {
		r.v = append(r.v, x)
		return
	}
	r.v[r.i] = x
	r.i = (r.i + 1) % ringSize
}

// kth returns the value at index k of the values sorted, without sorting
// them (diagnoses ask for many medians of 512 values).
func (r *ring) kth(k int) int64 {
	if r.kthN == r.n && r.kthK == k {
		return r.kthV // RLAs judged together ask the same rings
	}
	r.scratch = append(r.scratch[:0], r.v...)
	r.kthN, r.kthK, r.kthV = r.n, k, nth(r.scratch, k)
	return r.kthV
}

type elemKey struct {
	dir string
	id  BufferID
}

// class is the baseline of one RPC class: the same server endpoint and
// response size (power of two).
type class struct {
	lat    ring
	elems  map[elemKey]*ring
	recent []elemRing // elems of the last chain added (elemRing)
	n      int
	dirty  int
	// The baseline as last computed (baseline): over nv values (0: not
	// computed, or no values then), the median, the MAD and the value at
	// the BaselinePercentile.
	nv            int
	med, mad, pth int64
	scratch       []int64
}

func (a *Analyzer) class(k classKey) *class {
	c := a.classes[k]
	if c == nil {
		c = &class{elems: make(map[elemKey]*ring)}
		a.classes[k] = c
	}
	return c
}

func (c *class) add(r *RPC, chain []Element) {
	c.n++
	c.dirty++
	c.lat.add(r.Latency)
	for i, e := range chain {
		c.elemRing(i, elemKey{e.Dir, e.id}).add(e.Time)
	}
}

// elementMedian is the class median of the time an element holds,
// counting RPCs whose chain lacks the element (no report from that buffer)
// as zero.
func (c *class) elementMedian(k elemKey) int64 {
	rg := c.elems[k]
	if rg == nil || c.n == 0 {
		return 0
	}
	p := float64(rg.n) / float64(c.n)
	if p < 0.5 {
		return 0
	}
	i := int((0.5 - (1 - p)) / p * float64(len(rg.v)))
	return rg.kth(min(max(i, 0), len(rg.v)-1))
}

// baseline returns the class's median latency, its median absolute
// deviation and, for p in (0, 100), the latency at the p-th percentile
// (the value at index ⌈p/100·n⌉−1 of the n values sorted); n is how many
// values they come from. Recomputing on every RPC would select among 512
// values per RPC; the median of a stable class moves slowly.
func (c *class) baseline(p float64) (med, mad, pth int64, n int) {
	if c.nv == 0 || c.dirty >= 128 {
		c.computeBaseline(p)
		c.dirty = 0
	}
	return c.med, c.mad, c.pth, c.nv
}

// computeBaseline selects the order statistics baseline returns (nth:
// the same values a sort would put at those indexes, in linear time).
func (c *class) computeBaseline(p float64) {
	s := append(c.scratch[:0], c.lat.v...)
	c.scratch = s
	n := len(s)
	c.nv = n
	if n == 0 {
		c.med, c.mad, c.pth = 0, 0, 0
		return
	}
	c.med = nth(s, n/2)
	c.pth = 0
	if p > 0 && p < 100 {
		c.pth = nth(s, min(n-1, int(math.Ceil(p/100*float64(n)))-1))
	}
	for i, x := range s { // the same values, in another order
		if x -= c.med; x < 0 {
			x = -x
		}
		s[i] = x
	}
	c.mad = nth(s, n/2)
}

// judge applies the baseline rules to one RPC.
func (a *Analyzer) judge(r *RPC) {
	if r.Incomplete {
		return
	}
	c := a.baselineOf(r)
	if c == nil {
		return
	}
	med, mad, pth, nv := c.baseline(a.opts.BaselinePercentile)
	r.Baseline = med
	r.Excess = max(0, r.Latency-med)
	if a.opts.BaselineMADs > 0 {
		thr := med + int64(a.opts.BaselineMADs*1.4826*float64(mad))
		thr = max(thr, int64(a.opts.BaselineRatio*float64(med)))
		if r.Latency > thr {
			a.name(r)
			r.rules = append(r.rules, Rule{Name: "baseline-mad", RPC: r.ID, Threshold: thr,
				Detail: fmt.Sprintf("%s > median %s + %g×1.4826×MAD %s (class %s, n=%d)",
					dur(r.Latency), dur(med), a.opts.BaselineMADs, dur(mad), r.Class, c.n)})
		}
	}
	if p := a.opts.BaselinePercentile; p > 0 && p < 100 && nv > 0 {
		thr := pth
		if r.Latency > thr {
			a.name(r)
			r.rules = append(r.rules, Rule{Name: fmt.Sprintf("baseline-p%g", p), RPC: r.ID, Threshold: thr,
				Detail: fmt.Sprintf("%s > p%g %s (class %s, n=%d)", dur(r.Latency), p, dur(thr), r.Class, c.n)})
		}
	}
}

// baselineOf returns the class an RPC is judged against: its sized class
// once that has enough RPCs, else its server endpoint's, else nil.
func (a *Analyzer) baselineOf(r *RPC) *class {
	if c := a.classFor(r.cls, r.clsC); c != nil && c.n >= a.opts.BaselineMin {
		return c
	}
	if c := a.classFor(r.coarseK, r.coarseC); c != nil && c.n >= a.opts.BaselineMin {
		r.judgedCoarse = true
		return c
	}
	return nil
}

// classFor returns the class of k: c, the one an RPC remembers, if it
// has one (classes are never removed), else the map's.
func (a *Analyzer) classFor(k classKey, c *class) *class {
	if c != nil {
		return c
	}
	return a.classes[k]
}

func (a *Analyzer) ready(g *traceGroup) bool {
	for _, r := range g.rpcs {
		if r.Incomplete {
			continue
		}
		if c := a.classFor(r.coarseK, r.coarseC); c == nil || c.n < a.opts.BaselineMin {
			return false
		}
	}
	return true
}

// closeTrace judges an end-user request and, if it is an RLA, diagnoses
// the RPC on its critical path.
func (a *Analyzer) closeTrace(g *traceGroup) {
	// On the stack until it turns out to be an RLA: most requests are not.
	var q Request
	var first bool = true
	for _, r := range g.rpcs {
		a.judge(r)
		if first || r.Start < q.Start {
			q.Start = r.Start
		}
		if first || r.End > q.End {
			q.End = r.End
		}
		first = false
		q.Rules = append(q.Rules, r.rules...)
	}
	if len(g.rpcs) == 0 {
		return
	}
	// Stalls inferred from slow drains are decided a settle time late; a
	// trace closed before its idle time is up is closed because the input
	// ended, and then nothing more will arrive to wait for.
	final := g.last+int64(a.opts.TraceIdle) > a.now
	var pending []BufferID
	for _, b := range a.drained {
		if len(b.drain.pending) > 0 && a.buffers[b.id] == b {
			pending = append(pending, b.id)
		}
	}
	// In a fixed order: settling opens events, and event IDs are output.
	slices.SortFunc(pending, func(x, y BufferID) int {
		return cmp.Or(cmp.Compare(x.Node, y.Node), cmp.Compare(x.Kind, y.Kind), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Queue, y.Queue))
	})
	for _, id := range pending {
		a.settleDrains(a.buffers[id], final)
	}
	a.stats.Requests++
	q.Latency = q.End - q.Start
	if slo := int64(a.opts.SLO); slo > 0 && q.Latency > slo {
		q.Rules = append([]Rule{{Name: "slo", Threshold: slo,
			Detail: fmt.Sprintf("%s > SLO %s", dur(q.Latency), dur(slo))}}, q.Rules...)
	}
	if len(q.Rules) == 0 {
		return
	}
	if !a.opts.From.IsZero() && q.Start < a.opts.From.UnixNano() || !a.opts.To.IsZero() && q.Start >= a.opts.To.UnixNano() {
		return
	}
	for _, r := range g.rpcs {
		a.name(r)
	}
	sort.Slice(g.rpcs, func(i, j int) bool { return g.rpcs[i].Start < g.rpcs[j].Start })
	q.RPCs = g.rpcs
	r0 := g.rpcs[0]
	q.ID = r0.ID
	if r0.TraceID != "" {
		q.ID, q.TraceID = r0.TraceID, r0.TraceID
	}
	crit := criticalRPC(g.rpcs)
	q.Critical = crit.ID
	q.Excess = crit.Excess
	if q.Rules[0].Name == "slo" {
		q.Excess = max(q.Excess, q.Latency-q.Rules[0].Threshold)
	}
	q.Diagnosis = a.diagnose(crit)
	a.stats.RLAs++
	rla := new(Request)
	*rla = q
	a.rlas = append(a.rlas, rla)
}

// criticalRPC walks the critical path back from the RPC that finished
// last (each step: the RPC that finished last before the current one
// started) and returns the one on it with the most excess latency, or the
// slowest if none has excess.
func criticalRPC(rpcs []*RPC) *RPC {
	cur := rpcs[0]
	for _, r := range rpcs {
		if r.End > cur.End {
			cur = r
		}
	}
	best := cur
	for {
		var prev *RPC
		for _, r := range rpcs {
			// r.Start < cur.Start: an RPC that ends where it starts (or
			// before) would otherwise be its own predecessor, for ever.
			if r.End <= cur.Start && r.Start < cur.Start && (prev == nil || r.End > prev.End) {
				prev = r
			}
		}
		if prev == nil {
			break
		}
		cur = prev
		if cur.Excess > best.Excess || cur.Excess == best.Excess && cur.Latency > best.Latency {
			best = cur
		}
	}
	return best
}

// evCongestion asks eventOnPath for queuing or stall events.
const evCongestion EventClass = 255

type causeKey struct {
	buf   BufferID
	class EventClass
	ev    int
}

type cause struct {
	key      causeKey
	excess   int64
	event    *Event
	evidence []Evidence
	est      []*Element // its elements whose time was estimated (sampled.go)
}

// diagnose decomposes an RPC's latency along its chain against the class
// baseline of every element and names the element holding most of the
// excess, with its event.
func (a *Analyzer) diagnose(r *RPC) *Diagnosis {
	c := a.baselineOf(r)
	// When the class itself is slow (a fault that lasts the whole trace
	// makes the baseline the faulty state) the excess over the baseline
	// says little; against the SLO, the time each element holds is what
	// there is to explain. So too without a baseline.
	byTime := c == nil
	if slo := int64(a.opts.SLO); slo > 0 && r.Latency > slo && 2*r.Excess < r.Latency-slo {
		byTime = true
	}
	var total int64
	for i := range r.Chain {
		e := &r.Chain[i]
		if c != nil {
			e.Baseline = c.elementMedian(elemKey{e.Dir, e.id})
			if q := int64(a.opts.QueueResidence); isQueue(e.id.Kind) && e.Baseline > q {
				// A queue whose usual residence is above the queuing
				// threshold is chronically congested (a fault as long as
				// the trace): that is not a normal to measure excess
				// against. Its normal is at most the threshold that
				// defines queuing.
				e.Baseline = q
			}
			e.Excess = max(0, e.Time-e.Baseline)
		}
		total += e.Excess
	}
	// The elements' baselines come from recent RPCs of the class, the
	// request's from its whole history: when the class has been slow for
	// a while (a slow server throughout the recent past) every element is
	// near its recent normal and their excesses explain little of the
	// request's. A decomposition that accounts for less than half of the
	// excess has nothing to say; the time each element holds does.
	if !byTime && 2*total < r.Excess {
		byTime = true
	}
	if byTime {
		total = 0
		for i := range r.Chain {
			e := &r.Chain[i]
			e.Excess = e.Time
			total += e.Excess
		}
	}
	causes := map[causeKey]*cause{}
	var order []causeKey
	for i := range r.Chain {
		e := &r.Chain[i]
		if e.Excess <= 0 {
			continue
		}
		k, ev, evid := a.attribute(r, e)
		cs := causes[k]
		if cs == nil {
			cs = &cause{key: k, event: ev}
			causes[k] = cs
			order = append(order, k)
		}
		cs.excess += e.Excess
		cs.evidence = append(cs.evidence, evid...)
		if e.Estimate != nil {
			// evid holds the first report the time came from.
			cs.est = append(cs.est, e)
			cs.evidence = append(cs.evidence, e.Estimate.From[1:]...)
		}
	}
	var best *cause
	for _, k := range order {
		if cs := causes[k]; best == nil || cs.excess > best.excess {
			best = cs
		}
	}
	if best == nil {
		return nil
	}
	denom := max(r.Excess, total)
	if byTime || denom <= 0 {
		denom = max(r.Latency, total, 1)
	}
	d := &Diagnosis{
		Buffer: a.bufferName(best.key.buf), Kind: best.key.buf.Kind.String(), NodeID: best.key.buf.Node,
		Port: best.key.buf.Port, Queue: best.key.buf.Queue, Event: best.key.class.String(),
		Explained: best.excess, Confidence: math.Min(1, float64(best.excess)/float64(denom)),
	}
	if len(best.est) > 0 {
		// An estimated residence is the queue's state near the message's
		// moment, not the message's own: the further the reports it came
		// from, the less it is worth.
		d.Estimated = true
		d.Confidence *= estimatedQuality(best.est)
	}
	switch best.key.buf.Kind {
	case ElemWire, ElemRetransmit, ElemLink:
		d.Buffer = best.key.buf.Kind.String()
	}
	if len(best.evidence) > maxEvidence {
		best.evidence = best.evidence[:maxEvidence]
	}
	d.Evidence = best.evidence
	if ev := best.event; ev != nil {
		d.EventID, d.Start, d.End, d.Magnitude = ev.ID, ev.Start, ev.End, ev.Magnitude
		for _, x := range ev.Evidence {
			dup := false
			for i := range d.Evidence {
				y := &d.Evidence[i]
				if y.Time == x.Time && y.Seq == x.Seq && y.Kind == x.Kind {
					dup = true
					if y.Note == "" {
						y.Note = x.Note // what the event read in it (an inferred stall)
					}
				}
			}
			if !dup {
				d.Evidence = append(d.Evidence, x)
			}
		}
		if len(d.Evidence) > 2*maxEvidence {
			d.Evidence = d.Evidence[:2*maxEvidence]
		}
		d.Culprits, d.Pattern = a.culprits(ev, r)
		for i := range r.Effects {
			r.Effects[i].CausedBy = ev.ID
		}
	}
	return d
}

// attribute maps a chain element with excess to the buffer and event that
// explain it. Retransmission waits go to the buffer that dropped the
// segments (or a lossy link); unexplained transfer time goes to the
// busiest event on a buffer the flow crosses; the application is its own
// cause.
func (a *Analyzer) attribute(r *RPC, e *Element) (causeKey, *Event, []Evidence) {
	flow := r.reqFlow
	from, to := e.Start, e.End
	if e.Dir == "response" {
		flow = reverse(flow)
	}
	switch e.id.Kind {
	case ElemApplication:
		return causeKey{buf: e.id, class: EvSlowApp}, nil, nil
	case ElemRetransmit:
		// A reported drop explains the retransmission; failing that, a
		// queue on the path that was congested at the time most likely
		// overflowed unreported (drop reports are rate-limited); only
		// with neither is it loss on the link.
		for _, c := range []EventClass{EvDrop, EvLoss, evCongestion} {
			if ev := a.eventOnPath(flow, from, to, c); ev != nil {
				return causeKey{buf: ev.Buffer, class: ev.Class, ev: ev.ID}, ev, nil
			}
		}
		return causeKey{buf: BufferID{Kind: ElemLink}, class: EvLoss}, nil, nil
	case ElemWire:
		// A message that lost segments was slowed by the loss (timeouts,
		// halved congestion windows): its transfer time belongs to the
		// drop. Otherwise drops of other flows do not explain it; the
		// queue they filled does.
		lost := r.Request.lost()
		if e.Dir == "response" {
			lost = r.Response.lost()
		}
		if lost {
			for _, c := range []EventClass{EvDrop, EvLoss, evCongestion} {
				if ev := a.eventOnPath(flow, from, to, c); ev != nil {
					return causeKey{buf: ev.Buffer, class: ev.Class, ev: ev.ID}, ev, nil
				}
			}
		}
		if ev := a.eventOnPath(flow, from, to, evCongestion); ev != nil {
			ev = a.overflowing(ev, from, to)
			return causeKey{buf: ev.Buffer, class: ev.Class, ev: ev.ID}, ev, nil
		}
		if ev := a.eventOnPath(flow, from, to, EvNone); ev != nil {
			return causeKey{buf: ev.Buffer, class: ev.Class, ev: ev.ID}, ev, nil
		}
		if r.Request.lost() || r.Response.lost() {
			return causeKey{buf: BufferID{Kind: ElemLink}, class: EvLoss}, nil, nil
		}
		return causeKey{buf: e.id, class: EvNone}, nil, nil
	}
	var evid []Evidence
	if e.ev != nil {
		evid = []Evidence{*e.ev}
	}
	ev := a.eventAt(e.id, from, to)
	if ev != nil {
		ev = a.overflowing(ev, from, to)
		return causeKey{buf: e.id, class: ev.Class, ev: ev.ID}, ev, evid
	}
	if e.Dir == "server" && e.id.Kind == ElementKind(decode.BufferSockSend) {
		// Head-of-line: the response waited behind the previous one,
		// which was held on the way to the client.
		if ev := a.eventOnPath(reverse(r.reqFlow), from, to, EvNone); ev != nil {
			return causeKey{buf: ev.Buffer, class: ev.Class, ev: ev.ID}, ev, nil
		}
	}
	return causeKey{buf: e.id, class: EvQueuing}, nil, evid
}

// eventAt returns the most severe event of buffer id overlapping [from, to].
func (a *Analyzer) eventAt(id BufferID, from, to int64) *Event {
	b := a.buffers[id]
	if b == nil {
		return nil
	}
	var best *Event
	for _, ev := range b.events {
		if ev.Class == EvPathChange || !ev.overlaps(from, to) {
			continue
		}
		if best == nil || severity(ev) > severity(best) {
			best = ev
		}
	}
	return best
}

// overflowing returns, for a queuing event, the overflow (drop event) of
// the same buffer during [from, to] if there was one: a queue that was
// dropping while the message crossed it was full, and its capacity is what
// went wrong (DESIGN.md's event library); the queuing is how it got there.
// Loss on a link is a different buffer and does not count.
func (a *Analyzer) overflowing(ev *Event, from, to int64) *Event {
	if ev.Class != EvQueuing {
		return ev
	}
	if b := a.buffers[ev.Buffer]; b != nil {
		for _, x := range b.events {
			if x.Class == EvDrop && x.overlaps(from, to) {
				return x
			}
		}
	}
	return ev
}

// severity orders the events of one buffer that overlap a residence: a
// stall explains the queue behind it, queuing explains residence, a drop
// (which explains retransmission waits, not residence) comes last.
func severity(e *Event) int64 {
	switch e.Class {
	case EvStall:
		return 3<<60 + min(e.Magnitude, 1<<59)
	case EvQueuing:
		return 2<<60 + min(e.Magnitude, 1<<59)
	}
	return 1<<60 + min(e.Magnitude, 1<<59)
}

// pathScore ranks events on a flow's path for unexplained transfer time:
// the event that covers most of the window, by class when equal.
func pathScore(e *Event, from, to int64) int64 {
	ov := min(e.End, to) - max(e.Start, from)
	if ov < 0 {
		ov = 0
	}
	return ov<<2 | severity(e)>>60
}

// eventOnPath finds the most severe event (of class want, or any) on the
// buffers flow crosses (in either direction: socket events name the
// socket's own orientation) overlapping [from, to].
func (a *Analyzer) eventOnPath(flow decode.Flow, from, to int64, want EventClass) *Event {
	rf := reverse(flow)
	var best, bestTop *Event
	for _, b := range a.buffers {
		if b.flows[flow] == nil && b.flows[rf] == nil && !a.onThinnedPath(b, flow) {
			continue
		}
		// top covers most of the window among b's events; a stall of b
		// that overlaps it names b's condition instead: one condition
		// seen as two events (the stall and the queuing it caused, opened
		// a few microseconds apart), of which the stall explains the
		// other (severity). Overlap alone would pick by those
		// microseconds.
		var top, pick *Event
		for _, ev := range b.events {
			if !wanted(ev, from, to, want) {
				continue
			}
			if top == nil || pathScore(ev, from, to) > pathScore(top, from, to) ||
				pathScore(ev, from, to) == pathScore(top, from, to) && ev.ID < top.ID {
				top = ev
			}
		}
		if top == nil {
			continue
		}
		pick = top
		if top.Class == EvQueuing {
			for _, ev := range b.events {
				if ev.Class == EvStall && wanted(ev, from, to, want) && ev.overlaps(top.Start, top.End) &&
					(pick.Class != EvStall || severity(ev) > severity(pick) || severity(ev) == severity(pick) && ev.ID < pick.ID) {
					pick = ev
				}
			}
		}
		// Equal scores go to the older event: buffers come in map order.
		if best == nil || pathScore(top, from, to) > pathScore(bestTop, from, to) ||
			pathScore(top, from, to) == pathScore(bestTop, from, to) && pick.ID < best.ID {
			best, bestTop = pick, top
		}
	}
	return best
}

// wanted says whether eventOnPath considers ev for [from, to] and class
// want.
func wanted(ev *Event, from, to int64, want EventClass) bool {
	switch {
	case !ev.overlaps(from, to):
		return false
	case want == evCongestion:
		return ev.Class == EvQueuing || ev.Class == EvStall
	case ev.Class == EvPathChange && want != EvPathChange, want != EvNone && ev.Class != want:
		return false
	}
	return true
}

// culprits ranks the flows present in the event's buffer during the
// event by bytes and names the pattern.
func (a *Analyzer) culprits(ev *Event, victim *RPC) ([]Culprit, string) {
	b := a.buffers[ev.Buffer]
	if b == nil {
		return nil, ""
	}
	switch decode.BufferKind(ev.Buffer.Kind) {
	case decode.BufferSockSend, decode.BufferSockRecv, decode.BufferAppSend, decode.BufferAppRecv:
		// A socket buffer belongs to one connection: nothing else competes
		// for it.
		return nil, ""
	}
	from, to := ev.Start, max(ev.End, ev.Start+bucketWidth)
	self := canonical(victim.reqFlow)
	var out []Culprit
	var total uint64
	for f, fb := range b.flows {
		n := fb.bytes.sum(from, to)
		if h := a.halves[f]; h != nil {
			n = max(n, h.bytes.sum(from, to))
		}
		if n == 0 {
			continue
		}
		total += n
		out = append(out, Culprit{Flow: FlowString(f), Bytes: n, Self: canonical(f) == self})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Flow < out[j].Flow
	})
	for i := range out {
		out[i].Share = float64(out[i].Bytes) / float64(total)
	}
	return out, pattern(out, ev, b)
}

// pattern names the contention: the victim's own traffic (self-inflicted),
// many senders converging (incast), one dominant other flow (elephant), or
// a short spike (microburst).
func pattern(cs []Culprit, ev *Event, b *bufState) string {
	if len(cs) == 0 {
		if ev.End-ev.Start < int64(5*time.Millisecond) && ev.Class == EvQueuing {
			return "microburst"
		}
		return ""
	}
	if cs[0].Self && cs[0].Share >= 0.5 {
		return "self-inflicted"
	}
	// Incast: several senders converging on one receiver, none dominant.
	srcs := map[string]map[string]bool{}
	share := map[string]float64{}
	for _, c := range cs {
		if c.Share >= 0.05 && !c.Self {
			d := dstOf(c.Flow)
			if srcs[d] == nil {
				srcs[d] = map[string]bool{}
			}
			srcs[d][srcOf(c.Flow)] = true
			share[d] += c.Share
		}
	}
	for d, s := range srcs {
		if len(s) >= 3 && share[d] >= 0.6 && cs[0].Share < 0.5 {
			return "incast"
		}
	}
	if !cs[0].Self && cs[0].Share >= 0.5 {
		return "elephant"
	}
	if ev.End-ev.Start < int64(5*time.Millisecond) {
		return "microburst"
	}
	return "contention"
}

func srcOf(flow string) string {
	for i := 0; i < len(flow); i++ {
		if flow[i] == '-' && i+1 < len(flow) && flow[i+1] == '>' {
			s := flow[:i]
			for j := len(s) - 1; j >= 0; j-- {
				if s[j] == ':' {
					return s[:j]
				}
			}
			return s
		}
	}
	return flow
}

func dstOf(flow string) string {
	for i := 0; i+1 < len(flow); i++ {
		if flow[i] == '-' && flow[i+1] == '>' {
			return srcOf(flow[i+2:] + "->")
		}
	}
	return flow
}

func dur(ns int64) string { return time.Duration(ns).Round(time.Microsecond).String() }
