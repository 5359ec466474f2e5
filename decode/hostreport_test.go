package decode

import (
	"strings"
	"testing"
)

// hostReportVector is one host drop event written by hand from
// docs/wire-format.md §2 and Telemetry Report v2.0:
//
//	group header
//	20 40 00 05   Ver 2, hw_id 1, seq 5
//	0a 00 00 01   Node ID 10.0.0.1
//	individual report
//	14 1a 11 80   RepType 1, InType 4, Report Length 26, MD Length 17, D=1
//	54 01 b5 c0   RepMdBits 0x5401 (L1 ports, queue, egress ts, drop), DS ID 0xB5C0
//	d8 00 00 00   DSMdBits 0xD800 (buffer/event, bytes, reason, name), status 0
//	00 00 00 02   L1 ingress 0, egress 2
//	01 ff ff ff   queue 1, occupancy saturated
//	18 00 00 00 00 00 00 01   egress timestamp
//	01 40 00 00   queue 1, drop reason 64
//	03 01 80 00   buffer qdisc, event drop, flags start
//	00 00 03 e8 00 00 03 e8   occupancy / capacity bytes 1000 / 1000
//	00 00 00 40   drop reason 64
//	"QDISC_DROP" + 22 NUL
//	45 00 00 1c 00 01 00 00 40 11 00 00 0a 00 00 01 0a 00 00 02   IPv4
//	30 39 00 35 00 08 00 00   UDP 12345 -> 53
var hostReportVector = []byte{
	0x20, 0x40, 0x00, 0x05,
	0x0a, 0x00, 0x00, 0x01,
	0x14, 0x1a, 0x11, 0x80,
	0x54, 0x01, 0xb5, 0xc0,
	0xd8, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x02,
	0x01, 0xff, 0xff, 0xff,
	0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
	0x01, 0x40, 0x00, 0x00,
	0x03, 0x01, 0x80, 0x00,
	0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x03, 0xe8,
	0x00, 0x00, 0x00, 0x40,
	'Q', 'D', 'I', 'S', 'C', '_', 'D', 'R', 'O', 'P', 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
	0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
	0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
}

var hostReportEvent = HostEvent{
	Buffer: BufferQdisc, Event: EventDrop, Flags: HostFlagStart,
	IfIndex: 2, QueueID: 1, QueueOccupancy: 0x1000000,
	EgressTime: 0x1800000000000001,
	DropReason: 64, DropReasonName: "QDISC_DROP",
	OccupancyBytes: 1000, CapacityBytes: 1000,
	Inner: hostReportVector[len(hostReportVector)-28:],
}

func TestAppendHostReportVector(t *testing.T) {
	got, err := AppendHostReport(nil, 0x0a000001, 1, 5, []HostEvent{hostReportEvent})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(hostReportVector) {
		t.Fatalf("AppendHostReport =\n% x\nwant\n% x", got, hostReportVector)
	}
}

// TestAppendHostReportPadding checks that an inner packet that is not a word
// multiple is zero-padded and counted in whole words, and that an event with
// only a message-start and no optional fields sets F and nothing else.
//
//	20 00 00 00 00 00 00 07   Ver 2, hw 0, seq 0 (2^22 wraps), node 7
//	14 05 01 20               RepType 1, InType 4, RepLen 5 (2+1+2), MDLen 1, F=1
//	00 00 b5 c0 80 00 00 00   RepMdBits 0, DS ID, DSMdBits 0x8000
//	02 04 00 00               buffer sock-send, event message-start
//	45 00 00 00 00 00 00 00   inner (6 bytes + 2 padding)
func TestAppendHostReportPadding(t *testing.T) {
	want := []byte{
		0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
		0x14, 0x05, 0x01, 0x20,
		0x00, 0x00, 0xb5, 0xc0, 0x80, 0x00, 0x00, 0x00,
		0x02, 0x04, 0x00, 0x00,
		0x45, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	}
	ev := HostEvent{Buffer: BufferSockSend, Event: EventMessageStart, Inner: []byte{0x45, 0, 0, 0, 0, 0}}
	got, err := AppendHostReport([]byte{0xee}, 7, 0, 1<<22, []HostEvent{ev})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 0xee || string(got[1:]) != string(want) {
		t.Fatalf("got\n% x\nwant ee +\n% x", got, want)
	}
}

func TestAppendHostReportErrors(t *testing.T) {
	prefix := []byte{1, 2, 3}
	cases := []struct {
		name string
		hw   uint8
		ev   HostEvent
		want string
	}{
		{"hw id", 64, HostEvent{Event: EventQueuing}, "hw id 64"},
		{"inner version", 0, HostEvent{Event: EventQueuing, Inner: []byte{0x50}}, "IP version 5"},
		{"long name", 0, HostEvent{Event: EventDrop, DropReasonName: strings.Repeat("X", 33)}, "33 bytes"},
		{"too long", 0, HostEvent{Event: EventQueuing, Inner: append([]byte{0x45}, make([]byte, 1100)...)}, "Report Length"},
	}
	for _, c := range cases {
		got, err := AppendHostReport(prefix, 1, c.hw, 1, []HostEvent{{Event: EventQueuing}, c.ev})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want mention of %q", c.name, err, c.want)
		}
		if string(got) != string(prefix) {
			t.Errorf("%s: dst changed to % x on error", c.name, got)
		}
	}
}

func TestAppendHostReportNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 2048)
	evs := []HostEvent{hostReportEvent, hostReportEvent}
	n := testing.AllocsPerRun(100, func() {
		if _, err := AppendHostReport(buf[:0], 1, 0, 9, evs); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("AppendHostReport allocates %v times per call", n)
	}
}

func BenchmarkAppendHostReport(b *testing.B) {
	buf := make([]byte, 0, 2048)
	evs := []HostEvent{hostReportEvent}
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendHostReport(buf[:0], 1, 0, 9, evs)
	}
}
