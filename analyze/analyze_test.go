package analyze

import (
	"testing"
	"time"

	"github.com/bufscope/bufscope/decode"
)

func onlyRLA(t *testing.T, res *Result) *Request {
	t.Helper()
	if len(res.RLAs) != 1 {
		for _, q := range res.RLAs {
			t.Logf("RLA %s latency %s rules %v diag %+v", q.ID, dur(q.Latency), ruleNames(q.Rules), q.Diagnosis)
		}
		t.Fatalf("%d RLAs, want 1", len(res.RLAs))
	}
	return res.RLAs[0]
}

func TestTimingOfOneRPC(t *testing.T) {
	s := newScenario()
	end := s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xa1, trace: 0xb1, at: t0, reqLen: 3000, respLen: 5000, server: 2 * time.Millisecond})
	res := s.run(t, Options{SLO: time.Microsecond})
	q := onlyRLA(t, res)
	r := q.RPCs[0]
	// Request: 3 segments 10 µs apart, each 100 µs one way; the server
	// answers 2 ms after the last byte arrives.
	wantStart, lastIn := t0, t0+20_000+int64(oneWay)
	if r.Start != wantStart || r.End != end {
		t.Errorf("rpc spans %d..%d, want %d..%d", r.Start-t0, r.End-t0, wantStart-t0, end-t0)
	}
	if r.Latency != end-t0 {
		t.Errorf("latency %d, want %d", r.Latency, end-t0)
	}
	wantServer := r.Response.Start - lastIn
	if r.ServerTime != wantServer || wantServer < int64(2*time.Millisecond) {
		t.Errorf("server time %d, want %d (≥2ms)", r.ServerTime, wantServer)
	}
	if r.Request.Bytes != 3000 || r.Response.Bytes != 5000 || r.Incomplete {
		t.Errorf("request %+v response %+v incomplete %v", r.Request, r.Response, r.Incomplete)
	}
	if r.ID != "0x00000000000000a1" || q.TraceID != "0x00000000000000b1" || r.Client != "10.77.1.2:40000" || r.Server != "10.77.3.2:9000" {
		t.Errorf("ids %s %s %s %s", r.ID, q.TraceID, r.Client, r.Server)
	}
	// The chain: the router queue for both directions, the wire, the app.
	var kinds []string
	for _, e := range r.Chain {
		kinds = append(kinds, e.Dir+":"+e.Kind)
	}
	want := []string{"request:switch-egress-queue", "request:wire", "server:application", "response:switch-egress-queue", "response:wire"}
	if len(kinds) != len(want) {
		t.Fatalf("chain %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("chain %v, want %v", kinds, want)
		}
	}
	if r.Chain[0].NodeID != nodeRouter || r.Chain[0].Buffer != "r1/switch-egress-queue:4" || r.Chain[0].Time != 20_000 {
		t.Errorf("router element %+v", r.Chain[0])
	}
	if r.Chain[2].Buffer != "s1/application" {
		t.Errorf("application element %+v (the server's node comes from the topology)", r.Chain[2])
	}
}

func TestSlowServerIsNotBlamedOnTheNetwork(t *testing.T) {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1, reqLen: 300, respLen: 4000, server: 30 * time.Millisecond})
	s.baseline(t1+int64(40*time.Millisecond), 10, 100)
	res := s.run(t, Options{SLO: 20 * time.Millisecond})
	q := onlyRLA(t, res)
	if q.ID != HexID(0xbeef) || q.Diagnosis == nil {
		t.Fatalf("RLA %s diag %v", q.ID, q.Diagnosis)
	}
	d := q.Diagnosis
	if d.Kind != "application" || d.Event != "slow-app" || d.NodeID != nodeServer {
		t.Errorf("root cause %s %s node %d, want application slow-app on s1", d.Buffer, d.Event, d.NodeID)
	}
	if d.Confidence < 0.9 {
		t.Errorf("confidence %.2f: the application holds nearly all the excess", d.Confidence)
	}
	names := ruleNames(q.Rules)
	if names != "slo,baseline-mad" {
		t.Errorf("rules %q, want both slo and baseline-mad", names)
	}
}

func TestRouterQueueIncast(t *testing.T) {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	// Four other servers answer the same client at once, 60 KB each,
	// through the router queue towards it; the router reports the queue
	// with their packets as victims.
	others := []string{"10.77.3.3", "10.77.3.4", "10.77.3.5", "10.77.3.6"}
	for i, c := range others {
		f := flow(c, 9000, "10.77.1.2", 41000+uint16(i))
		for k := range uint32(40) {
			at := t1 + int64(k)*int64(500*time.Microsecond) + int64(i)*1000
			s.add(s.seg(at, 1, f, 7000+k*1500, 1500, nil))
			r := routerHop(at+int64(5*time.Millisecond), f, 7000+k*1500, 1500, nil, 5*time.Millisecond, decode.RecordQueue)
			s.add(r)
		}
	}
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1 + int64(2*time.Millisecond),
		reqLen: 300, respLen: 4000, server: time.Millisecond, respQueue: 25 * time.Millisecond})
	s.baseline(t1+int64(100*time.Millisecond), 10, 100)
	res := s.run(t, Options{SLO: 20 * time.Millisecond})
	q := onlyRLA(t, res)
	d := q.Diagnosis
	if d == nil || d.Kind != "switch-egress-queue" || d.Event != "queuing" || d.NodeID != nodeRouter || d.Port != 4 {
		t.Fatalf("root cause %+v, want r1 egress queue port 4, queuing", d)
	}
	if d.EventID == 0 || d.Magnitude < int64(25*time.Millisecond) {
		t.Errorf("event %d magnitude %d: want the queue event with the 25 ms residence", d.EventID, d.Magnitude)
	}
	if len(d.Culprits) < 4 {
		t.Fatalf("culprits %+v", d.Culprits)
	}
	top := map[string]bool{}
	for _, c := range d.Culprits[:3] {
		top[c.Flow] = true
		if c.Self {
			t.Errorf("the victim's own flow ranks in the top 3: %+v", d.Culprits)
		}
	}
	if len(top) != 3 || d.Pattern != "incast" {
		t.Errorf("culprits %+v pattern %q, want other flows first and incast", d.Culprits, d.Pattern)
	}
	if srcOf(d.Culprits[0].Flow) == "10.77.3.2" || d.Culprits[0].Bytes != 60000 {
		t.Errorf("top culprit %+v is not one of the four senders", d.Culprits[0])
	}
}

func TestDropIsRootCauseAndTimeoutItsConsequence(t *testing.T) {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1, reqLen: 300, respLen: 6000,
		server: time.Millisecond, dropResp: true, rto: 210 * time.Millisecond})
	s.baseline(t1+int64(300*time.Millisecond), 10, 100)
	res := s.run(t, Options{SLO: 20 * time.Millisecond})
	q := onlyRLA(t, res)
	d := q.Diagnosis
	if d == nil || d.Event != "drop" || d.NodeID != nodeRouter || d.Kind != "switch-egress-queue" {
		t.Fatalf("root cause %+v, want the router's drop", d)
	}
	r := q.RPCs[0]
	if r.Response.Retransmits != 1 || r.Response.RetransmitWait != int64(210*time.Millisecond) {
		t.Errorf("response %+v: want one retransmission after 210 ms", r.Response)
	}
	var rto *Consequence
	for i := range r.Effects {
		if r.Effects[i].Kind == "retransmission-timeout" {
			rto = &r.Effects[i]
		}
	}
	if rto == nil || rto.CausedBy != d.EventID {
		t.Errorf("consequences %+v: want a retransmission timeout caused by event %d", r.Effects, d.EventID)
	}
}

func TestLossWithoutDropReportIsTheLink(t *testing.T) {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1, reqLen: 300, respLen: 6000,
		server: time.Millisecond, lostResp: true, rto: 220 * time.Millisecond})
	s.baseline(t1+int64(300*time.Millisecond), 10, 100)
	q := onlyRLA(t, s.run(t, Options{SLO: 20 * time.Millisecond}))
	if d := q.Diagnosis; d == nil || d.Kind != "link" || d.Event != "loss" {
		t.Fatalf("root cause %+v, want link loss", d)
	}
}

func TestMultiRPCRequestCriticalPath(t *testing.T) {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	// One end-user request: a fast RPC, then a slow one (slow server),
	// then a fast one, on two connections.
	e := s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0x51, trace: 0xcafe, at: t1, reqLen: 300, respLen: 4000, server: time.Millisecond})
	e = s.rpc(rpcSpec{client: "10.77.1.2", cport: 40001, rpc: 0x52, trace: 0xcafe, at: e + 1000, reqLen: 300, respLen: 4000, server: 25 * time.Millisecond})
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0x53, trace: 0xcafe, at: e + 1000, reqLen: 300, respLen: 4000, server: time.Millisecond})
	s.baseline(t1+int64(100*time.Millisecond), 10, 100)
	q := onlyRLA(t, s.run(t, Options{SLO: 20 * time.Millisecond}))
	if q.ID != HexID(0xcafe) || len(q.RPCs) != 3 {
		t.Fatalf("request %s with %d RPCs, want 0xcafe with 3", q.ID, len(q.RPCs))
	}
	if q.Critical != HexID(0x52) {
		t.Errorf("critical RPC %s, want 0x52", q.Critical)
	}
	if q.Diagnosis == nil || q.Diagnosis.Event != "slow-app" {
		t.Errorf("diagnosis %+v", q.Diagnosis)
	}
	if q.Latency <= int64(25*time.Millisecond) || q.Start != q.RPCs[0].Start || q.End != q.RPCs[2].End {
		t.Errorf("request spans %d..%d (%s)", q.Start, q.End, dur(q.Latency))
	}
}

func TestInferredMessageAndGSOTags(t *testing.T) {
	s := newScenario()
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xa1, trace: 0xb1, at: t0, reqLen: 3000, respLen: 3000, server: time.Millisecond, skipTagReq: true})
	// GSO: the tag is copied on every segment; the copy at the higher
	// sequence is captured first.
	cf := flow("10.77.1.2", 40002, "10.77.3.2", 9000)
	tag := decode.RequestTag{Version: 1, Kind: decode.MessageRequest, RPCID: 0xa2, TraceID: 0xb2, MessageLength: 2896}
	at := t0 + int64(50*time.Millisecond)
	s.add(s.seg(at, 0, cf, 101448, 1448, &tag))
	s.add(s.seg(at+1, 0, cf, 100000, 1448, &tag))
	rt := decode.RequestTag{Version: 1, Kind: decode.MessageResponse, RPCID: 0xa2, TraceID: 0xb2, MessageLength: 100}
	s.add(s.seg(at+int64(time.Millisecond), 0, reverse(cf), 9000, 100, &rt))
	res := s.run(t, Options{SLO: time.Microsecond})
	if len(res.RLAs) != 2 {
		t.Fatalf("%d requests, want 2", len(res.RLAs))
	}
	var inf, gso *RPC
	for _, q := range res.RLAs {
		switch q.RPCs[0].ID {
		case HexID(0xa1):
			inf = q.RPCs[0]
		case HexID(0xa2):
			gso = q.RPCs[0]
		}
	}
	if inf == nil || !inf.Request.Inferred || inf.Request.Bytes != 3000-mss || inf.Incomplete {
		t.Errorf("inferred request: %+v", inf)
	}
	if gso == nil || gso.Request.Bytes != 2896 || gso.Request.Start != at || gso.Incomplete {
		t.Errorf("GSO request: %+v", gso)
	}
	if res.Stats.Inferred != 1 {
		t.Errorf("inferred messages %d, want 1", res.Stats.Inferred)
	}
}

func TestFromToSelectRequests(t *testing.T) {
	s := newScenario()
	s.baseline(t0, 20, 1)
	res := s.run(t, Options{SLO: time.Microsecond, From: time.Unix(0, t0+int64(20*time.Millisecond)), To: time.Unix(0, t0+int64(40*time.Millisecond))})
	if len(res.RLAs) != 4 {
		t.Fatalf("%d RLAs, want the 4 starting in [20ms, 40ms)", len(res.RLAs))
	}
	for _, q := range res.RLAs {
		if q.Start < t0+int64(20*time.Millisecond) || q.Start >= t0+int64(40*time.Millisecond) {
			t.Errorf("request at %s outside the range", dur(q.Start-t0))
		}
	}
}

func TestMemoryIsBoundedByTheWindow(t *testing.T) {
	s := newScenario()
	s.baseline(t0, 3000, 1) // 15 s of RPCs
	sortRecords(s.recs)
	a := New(Options{Window: time.Second, TraceIdle: 100 * time.Millisecond})
	maxRPCs, maxHalves := 0, 0
	for i := range s.recs {
		a.Feed(&s.recs[i])
		maxRPCs = max(maxRPCs, len(a.rpcs))
		maxHalves = max(maxHalves, len(a.halves))
	}
	res := a.Finish()
	if res.Stats.RPCs != 3000 || res.Stats.Requests != 3000 {
		t.Errorf("stats %+v", res.Stats)
	}
	// One RPC every 5 ms, finalized 100 ms after it ends (about 20 open),
	// swept every 1024 records (about 85 RPCs): far from the 3000 fed.
	if maxRPCs > 200 || maxHalves > 4 {
		t.Errorf("held up to %d RPCs and %d half connections: state is not evicted", maxRPCs, maxHalves)
	}
}

func TestFeedDoesNotAllocateOnAcks(t *testing.T) {
	s := newScenario()
	s.baseline(t0, 30, 1)
	sortRecords(s.recs)
	a := New(Options{})
	for i := range s.recs {
		a.Feed(&s.recs[i])
	}
	ack := decode.Record{Time: s.recs[len(s.recs)-1].Time, Kind: decode.RecordPacket, HasFlow: true,
		Flow: flow("10.77.1.2", 40000, "10.77.3.2", 9000), TCPFlags: decode.TCPFlagACK, TCPAck: 77, Window: 100}
	udp := decode.Record{Time: ack.Time, Kind: decode.RecordPacket, HasFlow: true, Flow: decode.Flow{IPVersion: 4, Proto: 17}}
	if n := testing.AllocsPerRun(1000, func() {
		a.Feed(&ack)
		a.Feed(&udp)
	}); n != 0 {
		t.Errorf("Feed of an ACK and a UDP packet allocates %.1f times", n)
	}
}

func TestPathChangeEvent(t *testing.T) {
	s := newScenario()
	end := s.baseline(t0, 10, 1)
	// Later RPCs cross a second router as well (a reroute).
	cf := flow("10.77.1.2", 40000, "10.77.3.2", 9000)
	tag := decode.RequestTag{Version: 1, Kind: decode.MessageRequest, RPCID: 0x99, TraceID: 0x99, MessageLength: 300}
	hop := routerHop(end+int64(200*time.Millisecond), cf, s.seqs[cf], 300, &tag, 20*time.Microsecond, decode.RecordHop)
	hop.Node = 2002
	s.add(hop)
	sortRecords(s.recs)
	a := New(Options{})
	for i := range s.recs {
		a.Feed(&s.recs[i])
	}
	var got []*Event
	for id, b := range a.buffers {
		for _, e := range b.events {
			if e.Class == EvPathChange {
				got = append(got, e)
				if id.Node != 2002 {
					t.Errorf("path change at node %d, want the new router 2002", id.Node)
				}
			}
		}
	}
	if len(got) != 1 || got[0].Start != end+int64(200*time.Millisecond) || len(got[0].Evidence) != 1 {
		t.Fatalf("path-change events %+v, want one at the new router", got)
	}
}

// A router queue congested for the whole trace makes its residence the
// class's normal; a request that waited there longer and also met a
// slightly slow server is still the queue's RLA, because a residence
// above the queuing threshold is not a baseline to measure excess from.
func TestChronicQueueIsNotTheNormal(t *testing.T) {
	s := newScenario()
	at := t0
	for i := range 40 {
		s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: uint64(1 + i), trace: uint64(0x7700 + i), at: at,
			reqLen: 300, respLen: 4000, server: 900 * time.Microsecond, respQueue: time.Duration(12+i%3) * time.Millisecond})
		at += int64(20 * time.Millisecond)
	}
	// 19 ms in the queue (6 ms over its usual 13), 7 ms in the server
	// (6.1 ms over its usual 0.9): by excess over the class medians alone
	// the server would win.
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: at,
		reqLen: 300, respLen: 4000, server: 7 * time.Millisecond, respQueue: 19 * time.Millisecond})
	// A standing queue: the backlog each report leaves behind is what the
	// link (100 Mbit/s) sends in the residence, so it drains at its rate.
	// Requests leave the router by the server's port, not this one.
	for i := range s.recs {
		r := &s.recs[i]
		switch {
		case r.Kind == decode.RecordQueue:
			r.Occupancy = r.Latency / 80
		case r.Kind == decode.RecordHop && r.Flow.DstPort == 9000:
			r.EgressPort = 5
		}
	}
	res := s.run(t, Options{SLO: 15 * time.Millisecond})
	var q *Request
	for _, r := range res.RLAs {
		if r.ID == HexID(0xbeef) {
			q = r
		}
	}
	if q == nil {
		t.Fatalf("the slow request is not an RLA (%d RLAs)", len(res.RLAs))
	}
	d := q.Diagnosis
	if d == nil || d.Kind != "switch-egress-queue" || d.Event != "queuing" || d.NodeID != nodeRouter {
		t.Fatalf("root cause %+v, want r1's egress queue, queuing", d)
	}
	for _, e := range q.RPCs[0].Chain {
		if e.Kind == "switch-egress-queue" && e.Dir == "response" && e.Baseline != int64(time.Millisecond) {
			t.Errorf("queue element baseline %s, want the 1 ms queuing threshold", dur(e.Baseline))
		}
	}
}

// sendBufferScenario: a 30-segment request whose segments leave 2 ms
// apart because the client's send queue is full for 54 ms of the
// transfer; cwnd is what the network allows in flight.
func sendBufferScenario(t *testing.T, cwnd uint32) *Request {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	cf := flow("10.77.1.2", 40000, "10.77.3.2", 9000)
	seq := s.seqs[cf]
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1,
		reqLen: 30 * mss, respLen: 4000, server: time.Millisecond, reqGap: 2 * time.Millisecond})
	s.add(sendQueueReport(t1+int64(time.Millisecond), cf, seq+2*mss, decode.HostFlagStart, 0, 16384, cwnd, 65535))
	s.add(sendQueueReport(t1+int64(55*time.Millisecond), cf, seq+28*mss, decode.HostFlagCleared, 54*time.Millisecond, 16384, cwnd, 65535))
	s.baseline(t1+int64(100*time.Millisecond), 10, 100)
	return onlyRLA(t, s.run(t, Options{SLO: 20 * time.Millisecond}))
}

// A send buffer smaller than what the network lets the socket send holds
// the request at the client: the send queue's reports carry no payload,
// and the time goes to the message the socket was sending.
func TestSmallSendBufferHoldsTheRequest(t *testing.T) {
	q := sendBufferScenario(t, 60000)
	d := q.Diagnosis
	if d == nil || d.Kind != "sock-send" || d.Event != "queuing" || d.NodeID != nodeClient {
		t.Fatalf("root cause %+v, want c1's socket send queue, queuing", d)
	}
	held := requestSendQueueTime(q)
	if held != int64(54*time.Millisecond) {
		t.Errorf("send queue element holds %s, want the 54 ms the queue was full", dur(held))
	}
}

// requestSendQueueTime is the time the chain of q's critical RPC gives the
// request in its socket send queue.
func requestSendQueueTime(q *Request) int64 {
	var held int64
	for _, e := range q.RPCs[0].Chain {
		if e.Dir == "request" && e.Kind == "sock-send" {
			held = e.Time
		}
	}
	return held
}

// When the send queue clears as the request's last byte goes out, the
// socket's next byte to send (the report's sequence number) is already the
// first byte of the next request on the connection, which leaves later:
// the wait is still the request's.
func TestSendQueueClearedAtTheNextMessage(t *testing.T) {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	cf := flow("10.77.1.2", 40000, "10.77.3.2", 9000)
	seq := s.seqs[cf]
	end := s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1,
		reqLen: 30 * mss, respLen: 4000, server: time.Millisecond, reqGap: 2 * time.Millisecond})
	s.add(sendQueueReport(t1+int64(time.Millisecond), cf, seq+2*mss, decode.HostFlagStart, 0, 16384, 60000, 65535))
	s.add(sendQueueReport(t1+int64(59*time.Millisecond), cf, seq+30*mss, decode.HostFlagCleared, 58*time.Millisecond, 16384, 60000, 65535))
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xfeed, trace: 0xf00d, at: end + int64(time.Millisecond),
		reqLen: 300, respLen: 4000, server: time.Millisecond})
	s.baseline(end+int64(100*time.Millisecond), 10, 100)
	q := onlyRLA(t, s.run(t, Options{SLO: 20 * time.Millisecond}))
	if q.ID != HexID(0xbeef) {
		t.Fatalf("RLA %s, want the held request %s", q.ID, HexID(0xbeef))
	}
	if d := q.Diagnosis; d == nil || d.Kind != "sock-send" || d.Event != "queuing" {
		t.Fatalf("root cause %+v, want c1's socket send queue, queuing", d)
	}
	held := requestSendQueueTime(q)
	if held != int64(58*time.Millisecond) {
		t.Errorf("send queue element holds %s, want the 58 ms the queue was full", dur(held))
	}
}

// The same full send queue with a congestion window below its capacity is
// back-pressure from the path: not the request's root cause.
func TestBackPressureIsNotTheSendBuffer(t *testing.T) {
	q := sendBufferScenario(t, 8000)
	if d := q.Diagnosis; d == nil || d.Kind == "sock-send" {
		t.Fatalf("root cause %+v: a send queue full because the window is smaller is not the cause", d)
	}
	for _, e := range q.RPCs[0].Chain {
		if e.Kind == "sock-send" {
			t.Errorf("chain has a send-queue element %+v", e)
		}
	}
}

// stallScenario: the router queue towards the client queues now and then
// at its usual rate (2 ms residence for 25 kB: 100 Mbit/s), then holds a
// response for 50 ms. busy adds a report of another flow that leaves just
// after the response entered, with the backlog that explains the wait.
func stallScenario(t *testing.T, busy bool) *Request {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	other := flow("10.77.3.3", 9000, "10.77.1.2", 41000)
	for k := range uint32(8) {
		at := t0 + int64(k)*int64(10*time.Millisecond) + int64(3*time.Millisecond)
		s.add(s.seg(at-int64(2*time.Millisecond), 1, other, 7000+k*1500, 1500, nil))
		r := routerHop(at, other, 7000+k*1500, 1500, nil, 2*time.Millisecond, decode.RecordQueue)
		r.Occupancy = 25000
		s.add(r)
	}
	const server = time.Millisecond
	respAt := t1 + int64(10*time.Microsecond+oneWay+server)
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1,
		reqLen: 300, respLen: 4000, server: server, respQueue: 50 * time.Millisecond})
	if busy {
		r := routerHop(respAt+int64(oneWay)/2+5000, other, 9000, 1500, nil, 2*time.Millisecond, decode.RecordQueue)
		r.Occupancy = 700_000
		s.add(r)
	}
	s.baseline(t1+int64(100*time.Millisecond), 10, 100)
	return onlyRLA(t, s.run(t, Options{SLO: 20 * time.Millisecond}))
}

// A router reports its queue with the baseline only, which has no stall:
// a queue that was empty just before the response entered and then held
// it 50 ms, where its usual rate would have sent everything ahead in well
// under a millisecond, was not draining. That is a stall, not queuing.
func TestRouterStallInferredFromDrain(t *testing.T) {
	q := stallScenario(t, false)
	d := q.Diagnosis
	if d == nil || d.Kind != "switch-egress-queue" || d.Event != "stall" || d.NodeID != nodeRouter || d.Port != 4 {
		t.Fatalf("root cause %+v, want r1's egress queue, stall", d)
	}
	noted := false
	for _, e := range d.Evidence {
		noted = noted || e.Note == "queue drained far below its usual rate"
	}
	if !noted {
		t.Errorf("evidence %+v: want the report the stall was inferred from", d.Evidence)
	}
}

// The same 50 ms wait behind 700 kB that left at the usual rate is
// queuing.
func TestRouterBacklogIsQueuingNotStall(t *testing.T) {
	q := stallScenario(t, true)
	if d := q.Diagnosis; d == nil || d.Kind != "switch-egress-queue" || d.Event != "queuing" {
		t.Fatalf("root cause %+v, want r1's egress queue, queuing", d)
	}
}

// A response that waited in a queue which was dropping other flows'
// packets meanwhile (the queue was full) names the overflow, though it
// lost nothing itself.
func TestWaitInAnOverflowingQueueIsTheOverflow(t *testing.T) {
	s := newScenario()
	t1 := s.baseline(t0, 40, 1)
	other := flow("10.77.3.3", 9000, "10.77.1.2", 41000)
	for k := range uint32(5) {
		d := routerHop(t1+int64(k)*int64(3*time.Millisecond), other, 7000+k*1500, 1500, nil, 0, decode.RecordDrop)
		d.HasDropReason, d.DropReason, d.Occupancy = true, 64, 60000
		s.add(d)
	}
	s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1,
		reqLen: 300, respLen: 4000, server: time.Millisecond, respQueue: 25 * time.Millisecond})
	s.baseline(t1+int64(100*time.Millisecond), 10, 100)
	q := onlyRLA(t, s.run(t, Options{SLO: 20 * time.Millisecond}))
	if d := q.Diagnosis; d == nil || d.Kind != "switch-egress-queue" || d.Event != "drop" || d.NodeID != nodeRouter {
		t.Fatalf("root cause %+v, want r1's egress queue, drop", d)
	}
	if r := q.RPCs[0]; r.Response.Retransmits != 0 {
		t.Errorf("response %+v: the victim itself lost nothing", r.Response)
	}
}

// A segment that arrives after the sender retransmitted it was late, not
// lost. The receiver says so with a D-SACK (RFC 2883), and then neither the
// link nor any buffer lost anything: the wait is the late original's time
// on the wire. Without the D-SACK the same trace reads as loss on the link.
func TestSpuriousRetransmissionIsNotLoss(t *testing.T) {
	run := func(dsack bool) *Request {
		s := newScenario()
		t1 := s.baseline(t0, 40, 1)
		s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: 0xdead, trace: 0xbeef, at: t1, reqLen: 300, respLen: 6000,
			server: time.Millisecond, lateResp: true, dsack: dsack, rto: 30 * time.Millisecond})
		s.baseline(t1+int64(300*time.Millisecond), 10, 100)
		return onlyRLA(t, s.run(t, Options{SLO: 20 * time.Millisecond}))
	}
	if d := run(false).Diagnosis; d == nil || d.Kind != "link" || d.Event != "loss" {
		t.Fatalf("without a D-SACK: root cause %+v, want link loss", d)
	}
	q := run(true)
	if d := q.Diagnosis; d == nil || d.Kind == "link" || d.Event == "loss" || d.Event == "drop" {
		t.Errorf("with a D-SACK: root cause %+v, want no loss", d)
	}
	resp := q.RPCs[0].Response
	if resp.Retransmits == 0 || resp.SpuriousRetransmits != 1 {
		t.Errorf("response retransmits %d, spurious %d; want the retransmitted segment reported spurious once", resp.Retransmits, resp.SpuriousRetransmits)
	}
	for _, e := range q.RPCs[0].Chain {
		if e.Buffer == "retransmit-wait" {
			t.Errorf("chain has a retransmit-wait of %s for a retransmission that lost nothing", dur(e.Time))
		}
	}
	kinds := ""
	for _, c := range q.RPCs[0].Effects {
		kinds += c.Kind + " "
	}
	if kinds != "spurious-retransmission " {
		t.Errorf("consequences %q, want one spurious-retransmission", kinds)
	}
}
