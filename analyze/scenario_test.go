package analyze

import (
	"cmp"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/bufscope/bufscope/decode"
)

// A scenario builds the Records a real run produces: a client and a server
// exchanging tagged RPCs over TCP through one router, packets captured at
// both hosts (interfaces 0 and 1), the router reporting message starts and
// queue events with the standard baseline only, hosts reporting their own
// buffers with the bufscope extension.
const (
	nodeClient = 1001
	nodeRouter = 2001
	nodeServer = 3001
	mss        = 1448
	oneWay     = 100 * time.Microsecond
)

var (
	t0       = time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC).UnixNano()
	srvAddr  = netip.MustParseAddr("10.77.3.2")
	topology = []byte(`{"nodes":[{"name":"c1","role":"client","node_id":1001,"addrs":["10.77.1.2"]},` +
		`{"name":"r1","role":"router","node_id":2001},{"name":"s1","role":"server","node_id":3001,"addrs":["10.77.3.2"]}]}`)
)

func flow(src string, sport uint16, dst string, dport uint16) decode.Flow {
	f := decode.Flow{IPVersion: 4, Proto: 6, SrcPort: sport, DstPort: dport}
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(f.Src[:], s[:])
	copy(f.Dst[:], d[:])
	return f
}

type scenario struct {
	recs []decode.Record
	seqs map[decode.Flow]uint32
}

func newScenario() *scenario { return &scenario{seqs: map[decode.Flow]uint32{}} }

func (s *scenario) add(r decode.Record) { s.recs = append(s.recs, r) }

// seg is a captured data segment.
func (s *scenario) seg(at int64, iface int, f decode.Flow, seq, n uint32, tag *decode.RequestTag) decode.Record {
	r := decode.Record{Time: at, Interface: iface, Kind: decode.RecordPacket, Source: decode.SourceCapture,
		HasFlow: true, Flow: f, TCPSeq: seq, PayloadLen: n, TCPFlags: decode.TCPFlagACK | decode.TCPFlagPSH, Window: 512}
	if tag != nil {
		r.HasTag, r.Tag = true, *tag
	}
	return r
}

// routerHop is the router's message-start (or flow) report for a segment
// that spent res in its egress queue.
func routerHop(at int64, f decode.Flow, seq, n uint32, tag *decode.RequestTag, res time.Duration, kind decode.RecordKind) decode.Record {
	r := decode.Record{Time: at + int64(time.Millisecond), Kind: kind, Source: decode.SourceReportV2, HasNode: true, Node: nodeRouter,
		EgressPort: 4, HasFlow: true, Flow: f, TCPSeq: seq, PayloadLen: n, Latency: uint32(res),
		IngressTS: uint64(at - int64(res)), EgressTS: uint64(at), Occupancy: uint32(res / 1000)}
	if tag != nil {
		r.HasTag, r.Tag = true, *tag
	}
	return r
}

type rpcSpec struct {
	client     string
	cport      uint16
	rpc, trace uint64
	at         int64
	reqLen     uint32
	respLen    uint32
	server     time.Duration // application time
	respQueue  time.Duration // residence of the response in the router queue
	dropResp   bool          // the router drops the response's second segment once
	lostResp   bool          // the second segment is lost with no report
	lateResp   bool          // the second segment arrives after its retransmission was sent
	dsack      bool          // with lateResp: the client's ACK reports the duplicate (D-SACK)
	rto        time.Duration
	skipTagReq bool          // the request's tagged first segment is not captured anywhere
	reqGap     time.Duration // between request segments (default 10 µs)
}

// rpc adds one RPC's packets and reports and returns the time its
// response was complete at the client.
func (s *scenario) rpc(p rpcSpec) int64 {
	cf := flow(p.client, p.cport, "10.77.3.2", 9000)
	sf := reverse(cf)
	if _, ok := s.seqs[cf]; !ok {
		s.seqs[cf], s.seqs[sf] = 1000+uint32(p.cport)*7, 5000+uint32(p.cport)*13
	}
	t := p.at
	reqTag := &decode.RequestTag{Version: 1, Kind: decode.MessageRequest, RPCID: p.rpc, TraceID: p.trace, MessageLength: p.reqLen}
	seq := s.seqs[cf]
	for off := uint32(0); off < p.reqLen; off += mss {
		n := min(mss, p.reqLen-off)
		var tag *decode.RequestTag
		if off == 0 {
			tag = reqTag
		}
		if !(off == 0 && p.skipTagReq) {
			s.add(s.seg(t, 0, cf, seq+off, n, tag))
			s.add(routerHop(t+int64(oneWay)/2, cf, seq+off, n, tag, 20*time.Microsecond, decode.RecordHop))
			s.add(s.seg(t+int64(oneWay), 1, cf, seq+off, n, tag))
		}
		t += int64(cmp.Or(p.reqGap, 10*time.Microsecond))
	}
	s.seqs[cf] = seq + p.reqLen
	t += int64(oneWay) + int64(p.server)
	respTag := &decode.RequestTag{Version: 1, Kind: decode.MessageResponse, RPCID: p.rpc, TraceID: p.trace, MessageLength: p.respLen}
	seq = s.seqs[sf]
	var end int64
	for i, off := 0, uint32(0); off < p.respLen; i, off = i+1, off+mss {
		n := min(mss, p.respLen-off)
		var tag *decode.RequestTag
		if off == 0 {
			tag = respTag
		}
		s.add(s.seg(t, 1, sf, seq+off, n, tag))
		if i == 1 && (p.dropResp || p.lostResp) {
			if p.dropResp {
				d := routerHop(t+int64(oneWay)/2, sf, seq+off, n, nil, 0, decode.RecordDrop)
				d.HasDropReason, d.DropReason, d.Occupancy = true, 64, 60000
				s.add(d)
			}
			rt := t + int64(p.rto)
			s.add(s.seg(rt, 1, sf, seq+off, n, nil))
			s.add(s.seg(rt+int64(oneWay)+int64(p.respQueue), 0, sf, seq+off, n, nil))
			end = max(end, rt+int64(oneWay)+int64(p.respQueue))
			t += 10_000
			continue
		}
		if i == 1 && p.lateResp {
			// The original leaves, is held up on the way and reaches the
			// client just after the sender gave up on it; the copy
			// arrives too.
			rt := t + int64(p.rto)
			s.add(s.seg(rt, 1, sf, seq+off, n, nil))
			s.add(s.seg(rt+int64(oneWay)/2, 0, sf, seq+off, n, nil))
			s.add(s.seg(rt+int64(oneWay), 0, sf, seq+off, n, nil))
			if p.dsack {
				ack := decode.Record{Time: rt + int64(oneWay) + 10_000, Interface: 0, Kind: decode.RecordPacket, Source: decode.SourceCapture,
					HasFlow: true, Flow: cf, TCPSeq: s.seqs[cf], TCPAck: seq + off + n, TCPFlags: decode.TCPFlagACK, Window: 512,
					HasDSACK: true, DSACKLeft: seq + off}
				s.add(ack)
			}
			end = max(end, rt+int64(oneWay))
			t += 10_000
			continue
		}
		q := p.respQueue
		if tag != nil || q > time.Millisecond {
			kind := decode.RecordHop
			if q > time.Millisecond {
				kind = decode.RecordQueue
			}
			s.add(routerHop(t+int64(oneWay)/2+int64(q), sf, seq+off, n, tag, q+20*time.Microsecond, kind))
		}
		arr := t + int64(oneWay) + int64(q)
		s.add(s.seg(arr, 0, sf, seq+off, n, tag))
		end = max(end, arr)
		t += 10_000
	}
	s.seqs[sf] = seq + p.respLen
	return end
}

// baseline adds n normal RPCs from c1, one every 5 ms from start.
func (s *scenario) baseline(start int64, n int, firstID uint64) int64 {
	t := start
	for i := range n {
		s.rpc(rpcSpec{client: "10.77.1.2", cport: 40000, rpc: firstID + uint64(i), trace: 0x7700 + firstID + uint64(i), at: t,
			reqLen: 300, respLen: 4000, server: time.Duration(900+i%7*30) * time.Microsecond})
		t += int64(5 * time.Millisecond)
	}
	return t
}

func (s *scenario) run(t *testing.T, opts Options) *Result {
	t.Helper()
	sortRecords(s.recs)
	if opts.Topology == nil {
		opts.Topology = [][]byte{topology}
	}
	a := New(opts)
	for i := range s.recs {
		a.Feed(&s.recs[i])
	}
	return a.Finish()
}

func sortRecords(rs []decode.Record) {
	// Insertion order is per RPC; the analyzer needs capture-time order,
	// as capture.Merge delivers it. Stable, so equal times keep their order.
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Time < rs[j].Time })
}

// sendQueueReport is the client's socket send-queue queuing event (start
// or cleared, with the condition's duration so far) for flow f whose next
// byte to send is seq: capacity is the send buffer, cwnd and rwnd what the
// network would let the socket have in flight.
func sendQueueReport(at int64, f decode.Flow, seq uint32, flags uint16, held time.Duration, capacity, cwnd, rwnd uint32) decode.Record {
	return decode.Record{Time: at + int64(20*time.Millisecond), Kind: decode.RecordHostEvent, Source: decode.SourceReportV2,
		HasNode: true, Node: nodeClient, Buffer: decode.BufferSockSend, Event: decode.EventQueuing, EventFlags: flags,
		HasFlow: true, Flow: f, TCPSeq: seq, EgressTS: uint64(at), Occupancy: capacity, Capacity: capacity,
		SndCwnd: cwnd, RcvWnd: rwnd, Duration: uint32(held)}
}
