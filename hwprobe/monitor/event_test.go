package monitor

import (
	"bytes"
	"net/netip"
	"testing"
)

// recordQdiscQueuing is a ring buffer record as the qdisc_dequeue program
// writes it (struct event, little-endian), for a queuing start on ifindex 7
// with a 40-byte IPv4/TCP victim header. Offsets per monitor.bpf.c:
//
//	00: ts_ns     e8 03 00 00 00 00 00 00   1000
//	08: start_ns  64 00 00 00 00 00 00 00   100
//	10: since_ns  e8 03 00 00 00 00 00 00   1000
//	18: netns     01 00 00 f0               0xf0000001
//	1c: ifindex   07 00 00 00               7
//	20: iif       00 00 00 00
//	24: drop      00 00 00 00
//	28: occ_bytes 00 30 00 00               12288
//	2c: cap_bytes 00 00 00 00
//	30: occ_pkts  08 00 00 00               8
//	34: cap_pkts  00 00 00 00
//	38: rcv_wnd, snd_cwnd, seq, ack         all 0
//	48: queue_id  02 00   flags 00 80   hdr_len 28 00
//	4e: sport 00 00  dport 00 00  family 00 00
//	54: buffer 03  event 02  source 01  router 00
//	58: saddr[16], daddr[16]                 0
//	78: qdisc_kind "tbf\0\0\0\0\0"
//	80: hdr[128]   45 00 00 28 … (40 bytes, rest 0)
var recordQdiscQueuing = func() []byte {
	b := []byte{
		0xe8, 0x03, 0, 0, 0, 0, 0, 0,
		0x64, 0, 0, 0, 0, 0, 0, 0,
		0xe8, 0x03, 0, 0, 0, 0, 0, 0,
		0x01, 0, 0, 0xf0, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0x30, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x02, 0, 0, 0x80, 0x28, 0, 0, 0, 0, 0, 0, 0,
		0x03, 0x02, 0x01, 0x00,
	}
	b = append(b, make([]byte, 32)...)
	b = append(b, 't', 'b', 'f', 0, 0, 0, 0, 0)
	hdr := []byte{
		0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
		10, 0, 0, 1, 10, 0, 0, 2,
		0x9c, 0x40, 0x00, 0x50, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0,
	}
	b = append(b, hdr...)
	return append(b, make([]byte, HeaderMax-len(hdr))...)
}()

func TestEventUnmarshal(t *testing.T) {
	if len(recordQdiscQueuing) != eventSize {
		t.Fatalf("hand-written record is %d bytes, struct event is %d", len(recordQdiscQueuing), eventSize)
	}
	var got Event
	if err := got.unmarshal(recordQdiscQueuing); err != nil {
		t.Fatal(err)
	}
	got.setClock(5000)
	want := Event{
		Time: 6000, Start: 5100, Since: 6000,
		Netns: 0xf0000001, IfIndex: 7, OccBytes: 12288, OccPkts: 8,
		QueueID: 2, Flags: FlagStart, HeaderLen: 40,
		Buffer: BufferQdisc, Event: EventQueuing, Source: SourceQdiscDequeue,
		QdiscKind: [8]byte{'t', 'b', 'f'},
		mono:      1000, startMono: 100, sinceMono: 1000,
	}
	copy(want.Header[:], recordQdiscQueuing[0x80:])
	if got != want {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if got.Qdisc() != "tbf" {
		t.Errorf("Qdisc() = %q", got.Qdisc())
	}
	if !bytes.Equal(got.Header[:got.HeaderLen], recordQdiscQueuing[0x80:0x80+40]) {
		t.Errorf("header bytes differ")
	}
}

func TestEventUnmarshalSocketFields(t *testing.T) {
	b := make([]byte, eventSize)
	// sport 0x9c40 = 40000 and dport 80 as the kernel stores them, in
	// network order; family AF_INET; addresses 10.0.0.1 -> 10.0.0.2.
	copy(b[0x4e:], []byte{0x9c, 0x40, 0x00, 0x50, 0x02, 0x00})
	copy(b[0x58:], []byte{10, 0, 0, 1})
	copy(b[0x68:], []byte{10, 0, 0, 2})
	var e Event
	if err := e.unmarshal(b); err != nil {
		t.Fatal(err)
	}
	src, dst := e.Addrs()
	if e.SrcPort != 40000 || e.DstPort != 80 || src != netip.MustParseAddr("10.0.0.1") || dst != netip.MustParseAddr("10.0.0.2") {
		t.Errorf("flow %v:%d -> %v:%d", src, e.SrcPort, dst, e.DstPort)
	}
}

func TestEventUnmarshalRejectsBadRecords(t *testing.T) {
	for _, n := range []int{0, 1, 8, 0x54, 0x80, eventSize - 1} {
		var e Event
		if err := e.unmarshal(recordQdiscQueuing[:n]); err == nil {
			t.Errorf("%d-byte record decoded without error", n)
		}
	}
	bad := bytes.Clone(recordQdiscQueuing)
	bad[0x4c] = 0x81 // hdr_len 129 > HeaderMax
	var e Event
	if err := e.unmarshal(bad); err == nil {
		t.Error("header length beyond the copied bytes accepted")
	}
}

func TestEventUnmarshalAllocs(t *testing.T) {
	var e Event
	n := testing.AllocsPerRun(100, func() {
		_ = e.unmarshal(recordQdiscQueuing)
		e.setClock(1)
	})
	if n != 0 {
		t.Errorf("unmarshal allocates %v times per record", n)
	}
}

func FuzzEventUnmarshal(f *testing.F) {
	f.Add(recordQdiscQueuing)
	f.Add(recordQdiscQueuing[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := e.unmarshal(b); err != nil {
			return
		}
		if int(e.HeaderLen) > HeaderMax {
			t.Fatalf("accepted header length %d", e.HeaderLen)
		}
		_ = e.Qdisc()
		e.Addrs()
	})
}

func TestBufferOf(t *testing.T) {
	cases := []struct {
		name   string
		router bool
		want   uint8
	}{
		{"QDISC_DROP", false, BufferQdisc},
		{"QDISC_DROP", true, BufferSwitch},
		{"QDISC_OVERLIMIT", false, BufferQdisc},
		{"FQ_FLOW_LIMIT", false, BufferQdisc},
		{"SOCKET_RCVBUFF", false, BufferSocketReceive},
		{"TCP_ZEROWINDOW", false, BufferSocketReceive},
		{"CPU_BACKLOG", false, BufferNICRx},
		{"FULL_RING", false, BufferNICTx},
		{"NOT_SPECIFIED", false, 0},
		{"IP_INNOROUTES", true, 0},
		{"", false, 0},
	}
	for _, c := range cases {
		if got := BufferOf(c.name, c.router); got != c.want {
			t.Errorf("BufferOf(%q, %v) = %d, want %d", c.name, c.router, got, c.want)
		}
	}
}

func TestDropReasonsFromKernelBTF(t *testing.T) {
	d, err := LoadDropReasons()
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	// NOT_SPECIFIED has been 2 since the enum was introduced (5.17), right
	// after SKB_NOT_DROPPED_YET and SKB_CONSUMED, whose names keep their
	// prefix.
	if got := d.Name(2); got != "NOT_SPECIFIED" {
		t.Errorf("reason 2 = %q, want NOT_SPECIFIED", got)
	}
	if got := d.Name(1); got != "SKB_CONSUMED" {
		t.Errorf("reason 1 = %q, want SKB_CONSUMED", got)
	}
	v, ok := d.Value("QDISC_DROP")
	if !ok || d.Name(v) != "QDISC_DROP" {
		t.Errorf("QDISC_DROP round trip: value %d ok %v name %q", v, ok, d.Name(v))
	}
	if d.Name(0xFFFFFFF0) != "" {
		t.Errorf("undefined reason has a name")
	}
	for _, name := range DefaultIgnoredDrops {
		if _, ok := d.Value(name); !ok {
			t.Logf("default-ignored reason %s not on this kernel", name)
		}
	}
}
