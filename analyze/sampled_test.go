package analyze

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/decode"
)

// A thinned trace as the lab records it: the data plane is captured only
// where it enters the router (interface 0, before the router's queues), the
// hosts' qdiscs and the router report the message starts that the
// monitors' rule picks (every, 0: all; firstHop: the router reports none),
// and the router's queue towards the client reports queuing (Q) when a
// packet's residence first crosses 1 ms, then every 20 ms until it clears.
type thinSpec struct {
	every    uint32
	firstHop bool
	// The queue towards the client builds up over 20 ms to hold packets
	// for congested, from congestFrom for congestFor.
	congested               time.Duration
	congestFrom, congestFor int64
	// The queue towards the client stops sending from stallFrom for
	// stallFor.
	stallFrom, stallFor int64
}

const (
	portToClient = 3
	portToServer = 4
	thinRPCs     = 240
	thinStep     = int64(5 * time.Millisecond)
)

var (
	thinClient = flow("10.77.1.2", 40000, "10.77.3.2", 9000)
	thinBulk   = flow("10.77.2.2", 5001, "10.77.1.2", 6000) // another flow into the client's queue
)

func picked(id uint64, every uint32) bool { return every <= 1 || sampleHash(id)%every == 0 }

// thinIDs returns n RPC IDs of which every fourth is picked by the rule
// with N = 16 (so that the trace shows enough starts) and the rest not.
func thinIDs(n int) []uint64 {
	var yes, no []uint64
	for id := uint64(0x5100); len(yes) < n/4+1 || len(no) < n; id++ {
		if picked(id, 16) {
			yes = append(yes, id)
		} else {
			no = append(no, id)
		}
	}
	out := make([]uint64, n)
	for i := range out {
		if i%4 == 0 {
			out[i], yes = yes[0], yes[1:]
		} else {
			out[i], no = no[0], no[1:]
		}
	}
	return out
}

func (p thinSpec) queueAt(t int64) time.Duration {
	const quiet = 20 * time.Microsecond
	if p.stallFor > 0 && t >= p.stallFrom && t < p.stallFrom+p.stallFor {
		return time.Duration(p.stallFrom+p.stallFor-t) + quiet
	}
	if p.congestFor > 0 && t >= p.congestFrom && t < p.congestFrom+p.congestFor {
		// A queue fills as fast as the excess arrives: its residence grows
		// over 20 ms, it does not jump.
		return min(p.congested, quiet+time.Duration(t-p.congestFrom)/4)
	}
	return quiet
}

// build returns the Records of thinRPCs RPCs, one every thinStep from t0,
// with the server's time for RPC i from app(i).
func (p thinSpec) build(ids []uint64, app func(i int) time.Duration) *scenario {
	s := newScenario()
	cf, sf := thinClient, reverse(thinClient)
	cseq, sseq := uint32(1000), uint32(9000)
	hostStart := func(at int64, node uint32, f decode.Flow, seq uint32, tag *decode.RequestTag) {
		s.add(decode.Record{Time: at + int64(time.Millisecond), Kind: decode.RecordHostEvent, Source: decode.SourceReportV2,
			HasNode: true, Node: node, Buffer: decode.BufferQdisc, Event: decode.EventMessageStart, EgressPort: 3,
			HasFlow: true, Flow: f, TCPSeq: seq, PayloadLen: 32, HasTag: true, Tag: *tag, Latency: 5000,
			IngressTS: uint64(at - 5000), EgressTS: uint64(at)})
	}
	hop := func(enter int64, port uint32, f decode.Flow, seq, n uint32, tag *decode.RequestTag, res time.Duration, kind decode.RecordKind) {
		at := enter + int64(res)
		r := decode.Record{Time: at + int64(time.Millisecond), Kind: kind, Source: decode.SourceReportV2, HasNode: true, Node: nodeRouter,
			EgressPort: port, HasFlow: true, Flow: f, TCPSeq: seq, PayloadLen: n, Latency: uint32(res),
			IngressTS: uint64(enter), EgressTS: uint64(at), Occupancy: uint32(res / 1000 * 12)}
		if tag != nil {
			r.HasTag, r.Tag = true, *tag
		}
		s.add(r)
	}
	for i, id := range ids {
		t := t0 + int64(i)*thinStep
		report := picked(id, p.every)
		reqTag := &decode.RequestTag{Version: 1, Kind: decode.MessageRequest, RPCID: id, MessageLength: 300}
		if report {
			hostStart(t, nodeClient, cf, cseq, reqTag)
		}
		in := t + 50_000 // reaches the router
		s.add(s.seg(in, 0, cf, cseq, 300, reqTag))
		if report && !p.firstHop {
			hop(in, portToServer, cf, cseq, 300, reqTag, 20*time.Microsecond, decode.RecordHop)
		}
		cseq += 300
		ts := in + int64(100*time.Microsecond) + int64(app(i))
		respTag := &decode.RequestTag{Version: 1, Kind: decode.MessageResponse, RPCID: id, MessageLength: 4000}
		if report {
			hostStart(ts, nodeServer, sf, sseq, respTag)
		}
		for off := uint32(0); off < 4000; off += mss {
			var tag *decode.RequestTag
			if off == 0 {
				tag = respTag
			}
			n := min(mss, 4000-off)
			at := ts + 50_000 + int64(off/mss)*10_000
			s.add(s.seg(at, 0, sf, sseq+off, n, tag))
			if tag != nil && report && !p.firstHop {
				hop(at, portToClient, sf, sseq+off, n, tag, p.queueAt(at), decode.RecordHop)
			}
		}
		sseq += 4000
	}
	// The other flow into the client's queue, and the queue's own reports
	// while it is congested.
	bseq := uint32(100)
	var last int64 // the last Q report, 0 while the queue is below the threshold
	for t := t0; t < t0+int64(thinRPCs)*thinStep; t += int64(time.Millisecond) {
		s.add(s.seg(t, 0, thinBulk, bseq, mss, nil))
		switch q := p.queueAt(t); {
		case q > time.Millisecond && (last == 0 || t-last >= int64(20*time.Millisecond)):
			hop(t, portToClient, thinBulk, bseq, mss, nil, q, decode.RecordQueue)
			last = t
		case q < 500*time.Microsecond && last != 0:
			hop(t, portToClient, thinBulk, bseq, mss, nil, q, decode.RecordQueue) // cleared
			last = 0
		}
		bseq += mss
	}
	return s
}

func findRequest(res *Result, id uint64) *Request {
	for _, q := range res.RLAs {
		for _, r := range q.RPCs {
			if r.ID == HexID(id) {
				return q
			}
		}
	}
	return nil
}

func estimatedAt(r *RPC, port uint32) *Element {
	for i := range r.Chain {
		if e := &r.Chain[i]; e.Estimate != nil && e.Port == port {
			return e
		}
	}
	return nil
}

// An RPC that was not sampled crosses the router's queue while it holds
// packets 5 ms; the queue's reports (a sampled message's residence, its Q
// reports) show it. Its response's time there is estimated, the RPC is an
// RLA, and the queue is blamed, marked as estimated, with the reports as
// evidence and a confidence below the share of excess it holds.
func TestUnsampledMessageBlamedOnCongestedQueue(t *testing.T) {
	ids := thinIDs(thinRPCs)
	for _, mode := range []thinSpec{{every: 16}, {every: 16, firstHop: true}, {firstHop: true}} {
		p := mode
		p.congested, p.congestFrom, p.congestFor = 5*time.Millisecond, t0+100*thinStep, 30*thinStep
		victim := 110 // not picked (i % 4 != 0), inside the congestion
		res := newScenarioFrom(p, ids).run(t, Options{})
		q := findRequest(res, ids[victim])
		if q == nil {
			t.Fatalf("%+v: the unsampled RPC in the congested queue is not an RLA (%d RLAs)", mode, len(res.RLAs))
		}
		d := q.Diagnosis
		if d == nil || d.Kind != "switch-egress-queue" || d.Port != portToClient || d.Event != "queuing" {
			t.Fatalf("%+v: diagnosis %+v, want the router's queue to the client, queuing", mode, d)
		}
		if !d.Estimated || d.Confidence <= 0.4 || d.Confidence >= 1 {
			t.Errorf("%+v: estimated %v confidence %.2f, want an estimated cause with confidence in (0.4, 1)", mode, d.Estimated, d.Confidence)
		}
		e := estimatedAt(q.RPCs[0], portToClient)
		if e == nil || e.Dir != "response" || e.Time < int64(4500*time.Microsecond) || e.Time > int64(5500*time.Microsecond) {
			t.Fatalf("%+v: estimated element %+v, want the response's ~5 ms at port %d", mode, e, portToClient)
		}
		if e.Estimate == nil || len(e.Estimate.From) == 0 || e.Estimate.From[0].Latency < uint32(4*time.Millisecond) {
			t.Errorf("%+v: estimated from %+v, want the queue's 5 ms reports", mode, e.Estimate)
		}
		if q.RPCs[0].Latency < int64(5*time.Millisecond) {
			t.Errorf("%+v: latency %s does not include the queue's estimated 5 ms", mode, dur(q.RPCs[0].Latency))
		}
	}
}

// A router queue that stops sending for 40 ms shows it in the first report
// of the episode: a packet that entered just after a quiet report left
// waited 40 ms, which a queue that drains never shows as its first
// crossing of the threshold. An unsampled RPC whose response was held is
// blamed on the stall, estimated; RPCs through the queue that builds up
// and drains are queuing, not a stall.
func TestUnsampledMessageBlamedOnStall(t *testing.T) {
	ids := thinIDs(thinRPCs)
	victim := 105 // not picked; its response enters the queue at 525.2 ms
	p := thinSpec{every: 16, stallFrom: t0 + int64(522*time.Millisecond), stallFor: int64(40 * time.Millisecond),
		congested: 5 * time.Millisecond, congestFrom: t0 + 180*thinStep, congestFor: 20 * thinStep}
	res := newScenarioFrom(p, ids).run(t, Options{})
	q := findRequest(res, ids[victim])
	if q == nil {
		t.Fatalf("the unsampled RPC held by the stall is not an RLA (%d RLAs)", len(res.RLAs))
	}
	if d := q.Diagnosis; d == nil || d.Port != portToClient || d.Event != "stall" || !d.Estimated {
		t.Fatalf("diagnosis %+v, want an estimated stall of the router's queue to the client", d)
	}
	if e := estimatedAt(q.RPCs[0], portToClient); e == nil || e.Time < int64(30*time.Millisecond) {
		t.Errorf("estimated element %+v, want the ~37 ms the response waited", e)
	}
	congested := 0
	for _, q := range res.RLAs {
		if q.Start < p.congestFrom || q.Start >= p.congestFrom+p.congestFor {
			continue
		}
		congested++
		if d := q.Diagnosis; d == nil || d.Port != portToClient || d.Event != "queuing" {
			t.Errorf("%s in the congested queue: diagnosis %+v, want queuing", q.ID, d)
		}
	}
	if congested == 0 {
		t.Error("no RLA in the congested queue")
	}
}

func newScenarioFrom(p thinSpec, ids []uint64) *scenario {
	return p.build(ids, func(i int) time.Duration { return time.Duration(900+i%7*30) * time.Microsecond })
}

// A quiet queue is not blamed: a slow server during a quiet period is the
// application, and the queue's estimated time is its quiet residence.
func TestUnsampledMessageQuietQueueNotBlamed(t *testing.T) {
	ids := thinIDs(thinRPCs)
	victim := 101
	p := thinSpec{every: 16}
	res := p.build(ids, func(i int) time.Duration {
		if i == victim {
			return 4 * time.Millisecond
		}
		return time.Duration(900+i%7*30) * time.Microsecond
	}).run(t, Options{})
	q := findRequest(res, ids[victim])
	if q == nil {
		t.Fatalf("the slow server's RPC is not an RLA (%d RLAs)", len(res.RLAs))
	}
	if d := q.Diagnosis; d == nil || d.Kind != "application" || d.Estimated {
		t.Fatalf("diagnosis %+v, want the application", d)
	}
	e := estimatedAt(q.RPCs[0], portToClient)
	if e == nil || e.Time > int64(100*time.Microsecond) {
		t.Fatalf("estimated element %+v, want the quiet queue's ~20 µs", e)
	}
	for _, q := range res.RLAs {
		if d := q.Diagnosis; d != nil && d.Kind == "switch-egress-queue" {
			t.Errorf("%s: a quiet queue blamed (%s %s)", q.ID, d.Buffer, d.Event)
		}
	}
}

// A trace whose monitors report every message at every hop is analysed as
// before: nothing is estimated, and the congested queue's RLAs rest on the
// messages' own reports.
func TestFullReportsEstimateNothing(t *testing.T) {
	ids := thinIDs(thinRPCs)
	p := thinSpec{congested: 5 * time.Millisecond, congestFrom: t0 + 100*thinStep, congestFor: 30 * thinStep}
	s := newScenarioFrom(p, ids)
	sortRecords(s.recs)
	a := New(Options{Topology: [][]byte{topology}})
	for i := range s.recs {
		a.Feed(&s.recs[i])
	}
	// Once the trace shows it reports every message, nothing is kept for
	// estimation.
	if !a.smp.full() {
		t.Fatalf("a trace with every message start is not known as full: %+v", a.smp)
	}
	for id, q := range a.smp.queues {
		if len(q.s) > minStarts {
			t.Errorf("%+v: %d residences kept in a full trace", id, len(q.s))
		}
	}
	res := a.Finish()
	if len(res.RLAs) == 0 {
		t.Fatal("no RLA in the congested queue")
	}
	for _, q := range res.RLAs {
		for _, r := range q.RPCs {
			for _, e := range r.Chain {
				if e.Estimate != nil {
					t.Fatalf("%s: element %s estimated in a trace that reports every message", r.ID, e.Buffer)
				}
			}
		}
		if d := q.Diagnosis; d == nil || d.Estimated || d.Port != portToClient {
			t.Errorf("%s: diagnosis %+v, want the queue from the message's own report", q.ID, d)
		}
	}
}

// The picking rule is the monitors' (docs/monitors.md): h = (id ×
// 0x9E3779B97F4A7C15 mod 2^64) >> 32.
func TestSampleHash(t *testing.T) {
	for _, c := range []struct {
		id   uint64
		want uint32
	}{{0, 0}, {1, 0x9E3779B9}, {2, 0x3C6EF372}, {1 << 32, 0x7F4A7C15}} {
		if got := sampleHash(c.id); got != c.want {
			t.Errorf("sampleHash(%#x) = %#x, want %#x", c.id, got, c.want)
		}
	}
}

// On a recorded trace that reports every message at every hop, the
// router's message starts are thinned to 1 in 16 as the monitors would,
// and the residence of every message left out is estimated from what
// remains and compared with the one its own report gave. The bounds are
// what the estimator does on these fixtures (docs/analyze.md), with some
// room: a change that makes estimates worse fails here.
func TestEstimateOnThinnedFixtures(t *testing.T) {
	for _, c := range []struct {
		name     string
		p50, p90 time.Duration // bounds of the absolute error for messages that queued
		covered  float64       // share of the left-out starts that get an estimate
	}{
		{"elephant", 1500 * time.Microsecond, 3 * time.Millisecond, 0.95},
		{"overflow", 1500 * time.Microsecond, 3 * time.Millisecond, 0.75},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join("..", "fixtures", c.name+".trace.zst")
			if _, err := os.Stat(path); err != nil {
				t.Skipf("fixture %s not present: %v", path, err)
			}
			r, err := capture.Open(path, capture.ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			a := New(Options{Topology: [][]byte{r.Topology()}})
			d := decode.NewDecoder(decode.DecoderOptions{})
			ifs := r.Interfaces()
			type left struct {
				id         BufferID
				enter, res int64
			}
			var out []left
			var recs []decode.Record
			for {
				p, err := r.Next()
				if err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				recs = d.Records(p.Timestamp.UnixNano(), p.Interface, ifs[p.Interface].LinkType, p.Data, recs[:0])
				for i := range recs {
					x := &recs[i]
					if x.HasTag && !picked(x.Tag.RPCID, 16) {
						switch {
						case x.Kind == decode.RecordHostEvent && x.Event == decode.EventMessageStart:
							continue
						case x.Kind == decode.RecordHop && bufferOf(x).Kind == ElementKind(decode.BufferSwitchEgrQ):
							out = append(out, left{bufferOf(x), int64(x.IngressTS), int64(x.Latency)})
							continue
						}
					}
					a.Feed(x)
				}
			}
			var errs, queued []int64
			n := 0
			for _, l := range out {
				if !a.thinned(l.id) {
					t.Fatalf("%s: the thinned trace is not recognised as thinned at %+v", c.name, l.id)
				}
				est, e := a.residenceAt(l.id, l.enter)
				if e == nil {
					continue
				}
				n++
				if l.res > int64(time.Millisecond) {
					errs = append(errs, abs64(est-l.res))
					queued = append(queued, l.res)
				}
			}
			if len(out) == 0 || float64(n) < c.covered*float64(len(out)) || len(errs) < 20 {
				t.Fatalf("%s: %d of %d left-out starts estimated, %d of them queued", c.name, n, len(out), len(errs))
			}
			slices.Sort(errs)
			slices.Sort(queued)
			p50, p90 := errs[len(errs)/2], errs[len(errs)*9/10]
			t.Logf("%s: %d left out, %d estimated; queued (%d, median residence %s): absolute error p50 %s p90 %s",
				c.name, len(out), n, len(errs), dur(queued[len(queued)/2]), dur(p50), dur(p90))
			if p50 > int64(c.p50) || p90 > int64(c.p90) || 2*p50 > queued[len(queued)/2] {
				t.Errorf("%s: absolute error p50 %s p90 %s (median residence %s), want at most %s and %s and half the residence",
					c.name, dur(p50), dur(p90), dur(queued[len(queued)/2]), c.p50, c.p90)
			}
		})
	}
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// The fuzz target's thinned seed reaches the estimation code: its trace
// is recognised as thinned and messages get estimated elements.
func TestThinnedFuzzSeed(t *testing.T) {
	recs := recordsFrom(thinnedSeed())
	a := New(Options{SLO: time.Millisecond, BaselineMin: 2, Window: time.Second, TraceIdle: 10 * time.Millisecond})
	for i := range recs {
		a.Feed(&recs[i])
	}
	if !a.smp.any() || a.smp.full() {
		t.Fatalf("the seed is not thinned: %+v", a.smp)
	}
	res := a.Finish()
	for _, q := range res.RLAs {
		for _, r := range q.RPCs {
			for _, e := range r.Chain {
				if e.Estimate != nil {
					return
				}
			}
		}
	}
	t.Fatalf("no estimated element in %d RLAs", len(res.RLAs))
}
