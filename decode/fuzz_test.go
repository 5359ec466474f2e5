package decode

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Every parser entry point has a fuzz target. Seeds are the hand-written
// vectors; interesting inputs found by fuzzing live in testdata/fuzz.

func FuzzParseRequestTag(f *testing.F) {
	f.Add(tagVector)
	f.Add(tagVector[2:])
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := ParseRequestTag(b)
		if err != nil {
			return
		}
		want := b
		if len(b) == TagOptionLen-2 {
			want = append([]byte{TagOptionKind, TagOptionLen}, b...)
		}
		// The 2 reserved bytes are sent as zero whatever was received.
		if out := tag.AppendOption(nil); !bytes.Equal(out[:26], want[:26]) {
			t.Fatalf("round trip of % x gave % x", b, out)
		}
	})
}

func FuzzTelemetryReportV2(f *testing.F) {
	for _, v := range [][]byte{reportV2Spec, hostReportVector, reportV2Multi, reportV2TLV} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r TelemetryReportV2
		if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			return
		}
		clean := true
		for i := range r.Reports {
			rp := &r.Reports[i]
			if rp.Reason != "" || rp.ReportLength == 0xFF {
				clean = false
			}
			if len(rp.Inner) > len(b) || len(rp.DSData) > len(b) {
				t.Fatalf("report %d slices past the input", i)
			}
		}
		if !clean {
			return
		}
		// A report decoded without complaint must serialize to the same bytes.
		buf := gopacket.NewSerializeBuffer()
		if err := r.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Fatalf("round trip:\n in % x\nout % x", b, buf.Bytes())
		}
	})
}

func FuzzTelemetryReportV1(f *testing.F) {
	f.Add(reportV1Vector)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r TelemetryReportV1
		if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || r.Reason != "" {
			return
		}
		buf := gopacket.NewSerializeBuffer()
		if err := r.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
			t.Fatal(err)
		}
		// Drop-reason padding is not kept; compare everything else.
		want := append([]byte(nil), r.Contents...)
		if r.RepMdBits&RepV1DropReason != 0 {
			off := 16 + 4*popcount6(r.RepMdBits&^(RepV1DropReason|RepV1TxUtil))
			want[off+2], want[off+3] = 0, 0
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("round trip:\n in % x\nout % x", want, buf.Bytes())
		}
	})
}

func FuzzTelemetryReportV05(f *testing.F) {
	f.Add(reportV05Drop)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r TelemetryReportV05
		if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || r.Reason != "" {
			return
		}
		buf := gopacket.NewSerializeBuffer()
		if err := r.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), r.Contents) {
			t.Fatalf("round trip:\n in % x\nout % x", r.Contents, buf.Bytes())
		}
	})
}

func FuzzINT(f *testing.F) {
	f.Add(intMDVector)
	f.Add(intMXVector)
	f.Add(intV1Vector)
	f.Fuzz(func(t *testing.T, b []byte) {
		var n INT
		if err := n.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil || n.Reason != "" {
			return
		}
		if len(n.Contents)+len(n.Payload) != len(b) {
			t.Fatalf("contents %d + payload %d != %d", len(n.Contents), len(n.Payload), len(b))
		}
		// Reserved instruction bits are re-sent as "unavailable", so only
		// bitmaps without them round-trip byte for byte.
		if n.Version != 2 || n.Instructions&0x007E != 0 {
			return
		}
		buf := gopacket.NewSerializeBuffer()
		if err := n.SerializeTo(buf, gopacket.SerializeOptions{}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), n.Contents) {
			t.Fatalf("round trip:\n in % x\nout % x", n.Contents, buf.Bytes())
		}
	})
}

func FuzzIFA(f *testing.F) {
	f.Add(ifaVector)
	f.Fuzz(func(t *testing.T, b []byte) {
		var a IFA
		if err := a.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			return
		}
		if len(a.Hops)*8 > int(a.CurLen) {
			t.Fatalf("%d hops from CurLen %d", len(a.Hops), a.CurLen)
		}
	})
}

// FuzzRecords drives the whole Decoder with every link type it knows.
func FuzzRecords(f *testing.F) {
	f.Add(uint8(0), taggedTCPFrame(f))
	f.Add(uint8(0), intReportFrame(f, 3))
	f.Add(uint8(0), hostReportFrame(f))
	f.Add(uint8(1), reportV2Spec[28:])
	links := []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeLinuxSLL}
	d := NewDecoder(DecoderOptions{INTPorts: []uint16{0x4568}})
	f.Fuzz(func(t *testing.T, link uint8, b []byte) {
		recs := d.Records(0, 0, links[int(link)%len(links)], b, nil)
		for _, r := range recs {
			if r.Kind < RecordPacket || r.Kind > RecordOpaque {
				t.Fatalf("record kind %d", r.Kind)
			}
			if r.Kind == RecordOpaque && r.Reason == "" {
				t.Fatalf("opaque record without a reason: %+v", r)
			}
		}
	})
}

// FuzzHostReportRoundTrip builds host events from fuzzed fields, encodes
// them with AppendHostReport and decodes them again: what comes back must be
// what went in, up to the documented saturation and padding.
func FuzzHostReportRoundTrip(f *testing.F) {
	f.Add(uint8(3), uint8(1), uint16(0x8000), uint16(2), uint8(1), uint32(5), uint32(0x1000000), uint64(7), uint64(9),
		uint32(64), "QDISC_DROP", uint32(1000), uint32(1000), uint32(3), uint32(4), uint32(65535), uint32(14480), uint32(100), uint8(1))
	f.Fuzz(func(t *testing.T, buf, ev uint8, flags, ifindex uint16, qid uint8, lat, qocc uint32, in, eg uint64,
		reason uint32, name string, ob, cb, op, cp, rw, cw, dur uint32, innerKind uint8) {
		if len(name) > 32 || strings.IndexByte(name, 0) >= 0 {
			return
		}
		e := HostEvent{Buffer: BufferKind(buf), Event: EventKind(ev), Flags: flags, IfIndex: ifindex, QueueID: qid,
			HopLatency: lat, QueueOccupancy: qocc, IngressTime: in, EgressTime: eg,
			OccupancyBytes: ob, CapacityBytes: cb, OccupancyPackets: op, CapacityPackets: cp,
			RcvWnd: rw, SndCwnd: cw, Duration: dur}
		if e.Event == EventDrop {
			e.DropReason, e.DropReasonName = reason, name
		}
		switch innerKind % 3 {
		case 1:
			e.Inner = reportV1Vector[36:] // IPv4 + UDP, 28 bytes
		case 2:
			e.Inner = append([]byte{0x60}, make([]byte, 59)...) // IPv6 + 20 bytes
		}
		b, err := AppendHostReport(nil, 1, 2, 3, []HostEvent{e, e})
		if err != nil {
			t.Fatal(err)
		}
		var r TelemetryReportV2
		if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		want := e
		want.QueueOccupancy = sat24(e.QueueOccupancy)
		if len(r.Reports) != 2 {
			t.Fatalf("%d reports", len(r.Reports))
		}
		for i := range r.Reports {
			got, ok := r.Reports[i].HostEvent()
			if !ok {
				t.Fatalf("report %d not a host report: %q", i, r.Reports[i].Reason)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("report %d:\n got %+v\nwant %+v", i, got, want)
			}
		}
	})
}
