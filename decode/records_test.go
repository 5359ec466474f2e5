package decode

import (
	"net"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var benchTag = RequestTag{Version: 1, Kind: MessageRequest, RPCID: 0x1122334455667788, TraceID: 0x99aabbccddeeff00, MessageLength: 4096}

func mustSerialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ethIPv4(proto layers.IPProtocol, tos uint8) (*layers.Ethernet, *layers.IPv4) {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, TOS: tos, Protocol: proto, SrcIP: net.IP{10, 0, 0, 1}, DstIP: net.IP{10, 0, 0, 2}}
	return eth, ip
}

// taggedTCPFrame is a data segment as the Linux tagger sends it: timestamps
// (NOP NOP TS) plus the request tag, 100 bytes of payload.
func taggedTCPFrame(tb testing.TB) []byte {
	eth, ip := ethIPv4(layers.IPProtocolTCP, 0)
	opt := benchTag.AppendOption(nil)
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 8080, Seq: 1000, Ack: 2000, ACK: true, PSH: true, Window: 512,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
			{OptionType: TagOptionKind, OptionLength: TagOptionLen, OptionData: opt[2:]},
		}}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	return mustSerialize(tb, eth, ip, tcp, gopacket.Payload(make([]byte, 100)))
}

// intReportFrame is a Telemetry Report v2.0 from an INT-MD sink: the sink's
// own hop latency and queue in the main contents, and the truncated packet
// whose INT stack holds hops from the transit nodes.
func intReportFrame(tb testing.TB, hops int) []byte {
	md := &INT{Version: 2, Type: INTTypeMD, HopML: 4, RemainingHopCount: uint8(8 - hops), Instructions: 0xF000}
	for i := 0; i < hops; i++ {
		md.Hops = append(md.Hops, INTHop{NodeID: uint32(hops - i), L1IngressPort: 1, L1EgressPort: 2,
			HopLatency: uint32(1000 * (i + 1)), QueueID: 3, QueueOccupancy: uint32(100 * (i + 1))})
	}
	_, iip := ethIPv4(layers.IPProtocolUDP, 0x17<<2)
	iudp := &layers.UDP{SrcPort: 5000, DstPort: 6000}
	_ = iudp.SetNetworkLayerForChecksum(iip)
	inner := mustSerialize(tb, iip, iudp, md)
	rep := &TelemetryReportV2{Version: 2, HwID: 1, Seq: 77, NodeID: 9, Reports: []ReportV2{{
		RepType: ReportTypeINT, InType: InTypeIPv4, F: true,
		RepMdBits: RepMdHopLatency | RepMdQueueOcc,
		Baseline:  ReportBaseline{HopLatency: 5000, QueueID: 2, QueueOccupancy: 4000},
		Inner:     inner,
	}}}
	eth, ip := ethIPv4(layers.IPProtocolUDP, 0)
	udp := &layers.UDP{SrcPort: 1, DstPort: DefaultReportPort}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return mustSerialize(tb, eth, ip, udp, rep)
}

func hostReportFrame(tb testing.TB) []byte {
	eth, ip := ethIPv4(layers.IPProtocolUDP, 0)
	udp := &layers.UDP{SrcPort: 1, DstPort: DefaultReportPort}
	_ = udp.SetNetworkLayerForChecksum(ip)
	return mustSerialize(tb, eth, ip, udp, gopacket.Payload(hostReportVector))
}

func TestRecordsTaggedTCP(t *testing.T) {
	frame := taggedTCPFrame(t)
	recs := NewDecoder(DecoderOptions{}).Records(1e18, 3, layers.LinkTypeEthernet, frame, nil)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	var want Record
	want.Time, want.Interface, want.Kind, want.Source = 1e18, 3, RecordPacket, SourceCapture
	want.HasFlow = true
	want.Flow = Flow{IPVersion: 4, Proto: 6, SrcPort: 40000, DstPort: 8080}
	copy(want.Flow.Src[:], []byte{10, 0, 0, 1})
	copy(want.Flow.Dst[:], []byte{10, 0, 0, 2})
	want.TCPSeq, want.TCPAck, want.TCPFlags, want.Window = 1000, 2000, TCPFlagACK|TCPFlagPSH, 512
	want.PayloadLen = 100
	want.HasTag, want.Tag = true, benchTag
	if recs[0] != want {
		t.Fatalf("record\n%+v\nwant\n%+v", recs[0], want)
	}
	// A tag with another ExID is somebody else's experiment: no tag, no reason.
	other := NewDecoder(DecoderOptions{TagExID: 0x1234}).Records(0, 0, layers.LinkTypeEthernet, frame, nil)
	if other[0].HasTag || other[0].Reason != "" {
		t.Fatalf("foreign ExID: %+v", other[0])
	}
	// A broken tag with our ExID is flagged.
	bad := append([]byte(nil), frame...)
	bad[14+20+20+12+4] = 0x31 // tag version 3
	got := NewDecoder(DecoderOptions{}).Records(0, 0, layers.LinkTypeEthernet, bad, nil)
	if got[0].HasTag || got[0].Reason != reasonTagMalformed {
		t.Fatalf("bad tag: %+v", got[0])
	}
}

func TestRecordsINTReport(t *testing.T) {
	frame := intReportFrame(t, 3)
	recs := NewDecoder(DecoderOptions{}).Records(5, 0, layers.LinkTypeEthernet, frame, nil)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 1 report + 3 hops: %+v", len(recs), recs)
	}
	r := recs[0]
	if r.Kind != RecordHop || r.Source != SourceReportV2 || r.Node != 9 || r.HwID != 1 || r.Seq != 77 ||
		r.Latency != 5000 || r.QueueID != 2 || r.Occupancy != 4000 || r.Flow.DstPort != 6000 || r.DSCP != 0x17 {
		t.Fatalf("report record %+v", r)
	}
	for i, h := range recs[1:] {
		if h.Kind != RecordHop || h.Source != SourceINT || h.Node != uint32(3-i) || h.Latency != uint32(1000*(i+1)) ||
			h.Occupancy != uint32(100*(i+1)) || h.Hop != uint8(i) || h.Hops != 3 || h.Seq != 77 || h.Flow.DstPort != 6000 {
			t.Fatalf("hop %d record %+v", i, h)
		}
	}
}

func TestRecordsHostReport(t *testing.T) {
	recs := NewDecoder(DecoderOptions{}).Records(5, 0, layers.LinkTypeEthernet, hostReportFrame(t), nil)
	if len(recs) != 1 {
		t.Fatalf("records %+v", recs)
	}
	r := recs[0]
	if r.Kind != RecordHostEvent || r.Buffer != BufferQdisc || r.Event != EventDrop || r.EventFlags != HostFlagStart ||
		r.Node != 0x0a000001 || r.EgressPort != 2 || r.Occupancy != 1000 || r.Capacity != 1000 ||
		r.DropReason != 64 || r.DropName() != "QDISC_DROP" || r.EgressTS != 0x1800000000000001 ||
		r.Flow.SrcPort != 12345 || r.Flow.DstPort != 53 {
		t.Fatalf("record %+v", r)
	}
}

func TestRecordsNoAlloc(t *testing.T) {
	frames := map[string][]byte{
		"tagged tcp": taggedTCPFrame(t), "int report": intReportFrame(t, 3), "host report": hostReportFrame(t),
		"v1 report": append(append([]byte(nil), intReportFrame(t, 1)[:42]...), reportV1Vector...),
	}
	for name, f := range frames {
		d := NewDecoder(DecoderOptions{})
		dst := make([]Record, 0, 16)
		dst = d.Records(0, 0, layers.LinkTypeEthernet, f, dst[:0]) // grow internal slices
		if len(dst) == 0 {
			t.Fatalf("%s: no records", name)
		}
		n := testing.AllocsPerRun(200, func() { dst = d.Records(0, 0, layers.LinkTypeEthernet, f, dst[:0]) })
		if n != 0 {
			t.Errorf("%s: %v allocations per packet", name, n)
		}
	}
}

// threadCPU returns the CPU time the calling OS thread has used. Benchmarks
// lock their goroutine to a thread and report CPU time per operation next to
// wall time: on a machine shared with other work, wall time measures the
// neighbours as much as the code, CPU time measures the code.
func threadCPU(tb testing.TB) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		tb.Fatal(err)
	}
	return ts.Nano()
}

// cpuMeter reports cpu-ns/op and, when records are counted, records per
// CPU-second (the "per core" rate).
type cpuMeter struct {
	b     *testing.B
	start int64
}

func startCPU(b *testing.B) *cpuMeter {
	runtime.LockOSThread()
	return &cpuMeter{b: b, start: threadCPU(b)}
}

func (m *cpuMeter) stop(records int) {
	cpu := threadCPU(m.b) - m.start
	runtime.UnlockOSThread()
	if m.b.N > 0 && cpu > 0 {
		m.b.ReportMetric(float64(cpu)/float64(m.b.N), "cpu-ns/op")
		if records > 0 {
			m.b.ReportMetric(float64(records)/(float64(cpu)/1e9), "records/cpu-s")
		}
	}
}

// BenchmarkRecords measures the per-packet path; records/s is reported as
// a metric so numbers for different packet kinds compare directly.
func BenchmarkRecords(b *testing.B) {
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"TaggedTCP", taggedTCPFrame(b)},
		{"INTReport3Hops", intReportFrame(b, 3)},
		{"HostReport", hostReportFrame(b)},
	} {
		b.Run(c.name+"/decode.Records", func(b *testing.B) {
			d := NewDecoder(DecoderOptions{})
			dst := make([]Record, 0, 16)
			n := 0
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			m := startCPU(b)
			for b.Loop() {
				dst = d.Records(0, 0, layers.LinkTypeEthernet, c.frame, dst[:0])
				n += len(dst)
			}
			m.stop(n)
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
		b.Run(c.name+"/gopacket.NewPacket", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			m := startCPU(b)
			for b.Loop() {
				p := gopacket.NewPacket(c.frame, layers.LayerTypeEthernet, gopacket.Default)
				if p.ErrorLayer() != nil {
					b.Fatal(p.ErrorLayer().Error())
				}
			}
			m.stop(0)
		})
		b.Run(c.name+"/gopacket.NewPacket-NoCopy-Lazy", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.frame)))
			m := startCPU(b)
			for b.Loop() {
				p := gopacket.NewPacket(c.frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true, Lazy: true})
				_ = p.Layers()
			}
			m.stop(0)
		})
	}
}

// BenchmarkGopacketFloor decodes the same tagged TCP frame with only
// gopacket's Ethernet, IPv4 and TCP DecodeFromBytes: the part of
// decode.Records that is gopacket's, for comparison.
func BenchmarkGopacketFloor(b *testing.B) {
	frame := taggedTCPFrame(b)
	var (
		eth layers.Ethernet
		ip  layers.IPv4
		tcp layers.TCP
	)
	b.ReportAllocs()
	m := startCPU(b)
	for b.Loop() {
		_ = eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback)
		_ = ip.DecodeFromBytes(eth.Payload, gopacket.NilDecodeFeedback)
		_ = tcp.DecodeFromBytes(ip.Payload, gopacket.NilDecodeFeedback)
	}
	m.stop(0)
}

// A host event's inner packet is the victim truncated after its TCP header,
// options included, so the request tag and the sequence number reach the
// event's Record: that is how a buffer event is tied to a request.
func TestHostReportCarriesTag(t *testing.T) {
	seg := taggedTCPFrame(t)[14:] // IPv4 + TCP with options + 100 payload bytes
	inner := seg[:20+60]          // truncated after the TCP header
	ev := HostEvent{Buffer: BufferSockRecv, Event: EventQueuing, Flags: HostFlagStart,
		OccupancyBytes: 65536, CapacityBytes: 131072, HopLatency: 2500000, Inner: inner}
	payload, err := AppendHostReport(nil, 7, 0, 1, []HostEvent{ev})
	if err != nil {
		t.Fatal(err)
	}
	recs := NewDecoder(DecoderOptions{}).reportRecordsForTest(payload)
	if len(recs) != 1 {
		t.Fatalf("records %+v", recs)
	}
	r := recs[0]
	if r.Kind != RecordHostEvent || r.Buffer != BufferSockRecv || r.Event != EventQueuing ||
		!r.HasTag || r.Tag != benchTag || r.TCPSeq != 1000 || r.Flow.DstPort != 8080 ||
		r.PayloadLen != 100 || r.Latency != 2500000 || r.Occupancy != 65536 || r.Capacity != 131072 {
		t.Fatalf("record %+v", r)
	}
}
