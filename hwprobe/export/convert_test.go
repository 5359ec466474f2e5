package export

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe/monitor"
	"github.com/gopacket/gopacket"
)

// victim is the IPv4/TCP header of a segment 10.0.0.1:40000 -> 10.0.0.2:80,
// seq 1000, ACK, as a qdisc program copies it:
//
//	45 00 00 28 00 01 40 00 40 06 00 00 0a 00 00 01 0a 00 00 02
//	9c 40 00 50 00 00 03 e8 00 00 00 00 50 10 ff ff 00 00 00 00
var victim = []byte{
	0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
	0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x50, 0x10, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
}

func qdiscEvent() monitor.Event {
	ev := monitor.Event{
		Time: 1_700_000_000_002_000_000, Start: 1_700_000_000_000_000_000, Since: 1_700_000_000_001_000_000,
		IfIndex: 7, QueueID: 1, OccBytes: 30000, OccPkts: 20, CapPkts: 3000,
		Flags: monitor.FlagStart, HeaderLen: uint16(len(victim)),
		Buffer: monitor.BufferQdisc, Event: monitor.EventQueuing, Source: monitor.SourceQdiscDequeue,
		QdiscKind: [8]byte{'b', 'f', 'i', 'f', 'o'},
	}
	copy(ev.Header[:], victim)
	return ev
}

func TestConvertQdiscEvent(t *testing.T) {
	ev := qdiscEvent()
	var he decode.HostEvent
	scratch := make([]byte, 0, monitor.HeaderMax)
	Convert(&ev, nil, &he, scratch)
	want := decode.HostEvent{
		Buffer: decode.BufferQdisc, Event: decode.EventQueuing, Flags: decode.HostFlagStart,
		IfIndex: 7, QueueID: 1, HopLatency: 2_000_000, QueueOccupancy: 30000,
		IngressTime: 1_700_000_000_000_000_000, EgressTime: 1_700_000_000_002_000_000,
		OccupancyBytes: 30000, CapacityBytes: 3000, OccupancyPackets: 20,
		Duration: 1_000_000,
		Inner:    victim,
	}
	if !equalHostEvent(he, want) {
		t.Errorf("converted\n%+v\nwant\n%+v", he, want)
	}
	// Inner must not alias the event, which the reader reuses.
	ev.Header[0] = 0
	if he.Inner[0] != 0x45 {
		t.Errorf("Inner aliases the event's header buffer")
	}
}

func equalHostEvent(a, b decode.HostEvent) bool {
	ai, bi := a.Inner, b.Inner
	a.Inner, b.Inner = nil, nil
	return reflect.DeepEqual(a, b) && bytes.Equal(ai, bi)
}

func TestConvertSocketEventSynthesizesHeader(t *testing.T) {
	ev := monitor.Event{
		Time: 2_000, Since: 1_000, Buffer: monitor.BufferSocketReceive, Event: monitor.EventStall,
		Flags: monitor.FlagStart, Family: afInet, SrcPort: 40000, DstPort: 80, Seq: 1000, Ack: 77,
		OccBytes: 65536, CapBytes: 131072, Source: monitor.SourceTCPProbe,
	}
	copy(ev.SrcAddr[:], []byte{10, 0, 0, 1})
	copy(ev.DstAddr[:], []byte{10, 0, 0, 2})
	var he decode.HostEvent
	Convert(&ev, nil, &he, make([]byte, 0, monitor.HeaderMax))
	// 45 00 00 28 00 00 40 00 40 06 26 ce 0a 00 00 01 0a 00 00 02   (checksum: ~(4500+0028+4000+4006+0a00+0001+0a00+0002))
	// 9c 40 00 50 00 00 03 e8 00 00 00 4d 50 10 00 00 00 00 00 00
	want := []byte{
		0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x26, 0xce, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
		0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x4d, 0x50, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	}
	if !bytes.Equal(he.Inner, want) {
		t.Errorf("synthesized header\n% x\nwant\n% x", he.Inner, want)
	}
	if ipv4Checksum(he.Inner[:20]) != 0 {
		t.Errorf("IPv4 header checksum does not verify")
	}
	if he.Duration != 1000 || he.HopLatency != 0 || he.OccupancyBytes != 65536 || he.CapacityBytes != 131072 {
		t.Errorf("socket fields: %+v", he)
	}
}

// TestHostReportRoundTrip sends converted events through decode's
// serializer and parser: what the exporter emits is what the analyzer reads.
func TestHostReportRoundTrip(t *testing.T) {
	d, err := monitor.LoadDropReasons()
	if err != nil {
		t.Skipf("no kernel BTF for drop reason names: %v", err)
	}
	qdrop, _ := d.Value("QDISC_DROP")
	ev1 := qdiscEvent()
	ev2 := qdiscEvent()
	ev2.Event, ev2.Buffer, ev2.DropReason, ev2.Start, ev2.Since, ev2.Flags = monitor.EventDrop, 0, qdrop, 0, 0, 0
	hes := make([]decode.HostEvent, 2)
	Convert(&ev1, d, &hes[0], make([]byte, 0, monitor.HeaderMax))
	Convert(&ev2, d, &hes[1], make([]byte, 0, monitor.HeaderMax))
	pkt, err := decode.AppendHostReport(nil, 0xABCD, 3, 42, hes)
	if err != nil {
		t.Fatal(err)
	}
	var tr decode.TelemetryReportV2
	if err := tr.DecodeFromBytes(pkt, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if tr.NodeID != 0xABCD || tr.HwID != 3 || tr.Seq != 42 || len(tr.Reports) != 2 {
		t.Fatalf("group header node %#x hw %d seq %d reports %d", tr.NodeID, tr.HwID, tr.Seq, len(tr.Reports))
	}
	r := tr.Reports[1]
	if r.Reason != "" || !r.D || r.Host.Buffer != decode.BufferQdisc || r.Host.Event != decode.EventDrop ||
		r.Host.DropName() != "QDISC_DROP" || r.Host.DropReason != qdrop {
		t.Errorf("drop report %+v", r)
	}
	if !bytes.Equal(r.Inner[:len(victim)], victim) {
		t.Errorf("inner packet\n% x\nwant\n% x", r.Inner, victim)
	}
	q := tr.Reports[0]
	if q.Reason != "" || !q.Q || q.Baseline.HopLatency != 2_000_000 || q.Host.Duration != 1_000_000 || q.Host.CapacityBytes != 3000 {
		t.Errorf("queuing report %+v", q)
	}
}

func TestSwitchReportIsBaselineOnly(t *testing.T) {
	ev := qdiscEvent()
	ev.Router, ev.Buffer, ev.InIfIndex = true, monitor.BufferSwitch, 3
	var he decode.HostEvent
	Convert(&ev, nil, &he, make([]byte, 0, monitor.HeaderMax))
	tr := decode.TelemetryReportV2{Version: 2, Seq: 5, NodeID: 9, Reports: make([]decode.ReportV2, 1)}
	switchReport(&he, ev.InIfIndex, &tr.Reports[0])
	sb := gopacket.NewSerializeBuffer()
	if err := tr.SerializeTo(sb, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		t.Fatal(err)
	}
	var got decode.TelemetryReportV2
	if err := got.DecodeFromBytes(sb.Bytes(), gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	r := got.Reports[0]
	if r.Reason != "" || r.DomainID != 0 || r.DSMdBits != 0 || !r.Q || r.D {
		t.Fatalf("switch report domain %#x ds %#x flags D=%v Q=%v reason %q", r.DomainID, r.DSMdBits, r.D, r.Q, r.Reason)
	}
	b := r.Baseline
	if b.IngressPort != 3 || b.EgressPort != 7 || b.QueueID != 1 || b.QueueOccupancy != 30000 ||
		b.HopLatency != 2_000_000 || b.IngressTS != uint64(ev.Start) || b.EgressTS != uint64(ev.Time) {
		t.Errorf("baseline %+v", b)
	}
}

func TestConvertAllocs(t *testing.T) {
	ev := qdiscEvent()
	var he decode.HostEvent
	scratch := make([]byte, 0, monitor.HeaderMax)
	hes := []decode.HostEvent{{}}
	buf := make([]byte, 0, 2048)
	n := testing.AllocsPerRun(200, func() {
		Convert(&ev, nil, &he, scratch)
		hes[0] = he
		var err error
		if buf, err = decode.AppendHostReport(buf[:0], 1, 0, 1, hes); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("convert + serialize allocates %v times per event", n)
	}
}

func TestCollectorAddr(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"10.0.0.1:9000", "10.0.0.1:9000", ""},
		{"10.0.0.1", "10.0.0.1:32766", ""},
		{"collector.example", "collector.example:32766", ""},
		{"[::1]:5", "[::1]:5", ""},
		{"[::1]", "[::1]:32766", ""},
		{"", "", "no collector address"},
		{":9000", "", "has no host"},
		{"h:0", "", "not 1-65535"},
		{"h:http", "", "not 1-65535"},
	}
	for _, c := range cases {
		got, err := CollectorAddr(c.in)
		if c.err != "" {
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.err)) {
				t.Errorf("CollectorAddr(%q) error %v, want one containing %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("CollectorAddr(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSynthIPv6(t *testing.T) {
	ev := monitor.Event{Family: afInet6, SrcPort: 1, DstPort: 2, Seq: 3}
	src, dst := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	ev.SrcAddr, ev.DstAddr = src.As16(), dst.As16()
	h := inner(&ev, nil)
	if len(h) != 60 || h[0]>>4 != 6 || h[6] != 6 || binary.BigEndian.Uint16(h[4:]) != 20 ||
		!bytes.Equal(h[8:24], ev.SrcAddr[:]) || binary.BigEndian.Uint32(h[44:]) != 3 {
		t.Errorf("IPv6 header % x", h)
	}
}

func FuzzCollectorAddr(f *testing.F) {
	for _, s := range []string{"10.0.0.1:9000", "10.0.0.1", "[::1]", "[::1]:5", "", ":", "h:0", "[", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := CollectorAddr(s)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil || host == "" || port == "" {
			t.Fatalf("CollectorAddr(%q) = %q, which does not split into host and port", s, got)
		}
	})
}
