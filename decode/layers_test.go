package decode

import (
	"bytes"
	"net"
	"reflect"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// serialize runs l.SerializeTo into a fresh buffer.
func serialize(t *testing.T, l gopacket.SerializableLayer, fix bool) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := l.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: fix}); err != nil {
		t.Fatalf("SerializeTo: %v", err)
	}
	return buf.Bytes()
}

// reportV2Spec follows the Telemetry Report v2.0 specification's first
// example: a flow report with L1 ports and queue occupancy and a truncated
// IPv4/TCP packet.
//
//	20 00 00 01 00 00 00 0b   Ver 2, hw_id 0, seq 1, Node ID 11
//	14 0e 02 20               RepType 1, InType 4, RepLen 14, MDLen 2, F
//	50 00 00 00 00 00 00 00   RepMdBits 0x5000, DS ID 0, DSMdBits 0, status 0
//	00 01 00 02               L1 ingress 1, egress 2
//	03 00 01 00               queue 3, occupancy 256
//	45 00 00 28 00 00 40 00 40 06 00 00 0a 00 00 01 0a 00 00 02   IPv4
//	30 39 00 50 00 00 00 01 00 00 00 00 50 02 ff ff 00 00 00 00   TCP SYN
var reportV2Spec = []byte{
	0x20, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0b,
	0x14, 0x0e, 0x02, 0x20,
	0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x00, 0x02,
	0x03, 0x00, 0x01, 0x00,
	0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00,
	0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
	0x30, 0x39, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x50, 0x02, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
}

func TestReportV2SpecExample(t *testing.T) {
	var got TelemetryReportV2
	if err := got.DecodeFromBytes(reportV2Spec, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := TelemetryReportV2{
		BaseLayer: layers.BaseLayer{Contents: reportV2Spec, Payload: reportV2Spec[28:]},
		Version:   2, Seq: 1, NodeID: 11,
		Reports: []ReportV2{{
			RepType: 1, InType: 4, ReportLength: 14, MDLength: 2, F: true,
			RepMdBits: 0x5000,
			Baseline:  ReportBaseline{IngressPort: 1, EgressPort: 2, QueueID: 3, QueueOccupancy: 256},
			DSData:    []byte{},
			Inner:     reportV2Spec[28:],
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if out := serialize(t, &got, false); !bytes.Equal(out, reportV2Spec) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, reportV2Spec)
	}
	got.Reports[0].ReportLength, got.Reports[0].MDLength = 0, 0
	if out := serialize(t, &got, true); !bytes.Equal(out, reportV2Spec) {
		t.Fatalf("serialized with FixLengths\n% x\nwant\n% x", out, reportV2Spec)
	}
}

func TestReportV2HostVector(t *testing.T) {
	var got TelemetryReportV2
	if err := got.DecodeFromBytes(hostReportVector, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	inner := hostReportVector[len(hostReportVector)-28:]
	var name [32]byte
	copy(name[:], "QDISC_DROP")
	want := TelemetryReportV2{
		BaseLayer: layers.BaseLayer{Contents: hostReportVector, Payload: inner},
		Version:   2, HwID: 1, Seq: 5, NodeID: 0x0a000001,
		Reports: []ReportV2{{
			RepType: 1, InType: 4, ReportLength: 26, MDLength: 17, D: true,
			RepMdBits: 0x5401, DomainID: HostDomainID, DSMdBits: 0xD800,
			Baseline: ReportBaseline{EgressPort: 2, QueueID: 1, QueueOccupancy: 0xFFFFFF,
				EgressTS: 0x1800000000000001, DropQueueID: 1, DropReason: 64},
			Host: HostMetadata{Buffer: BufferQdisc, Event: EventDrop, Flags: HostFlagStart,
				OccupancyBytes: 1000, CapacityBytes: 1000, DropReason: 64, DropReasonName: name},
			DSData: hostReportVector[40 : 40+48], // after 8 group + 12 header + 20 baseline bytes
			Inner:  inner,
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if out := serialize(t, &got, true); !bytes.Equal(out, hostReportVector) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, hostReportVector)
	}
	if got.Reports[0].Host.DropName() != "QDISC_DROP" {
		t.Fatalf("DropName = %q", got.Reports[0].Host.DropName())
	}
}

// reportV2Multi holds two individual reports: an IOAM one (RepType 2, no
// defined format) that must become opaque without hiding the second, a
// switch drop report.
//
//	20 00 00 02 00 00 00 0c   Ver 2, seq 2, Node ID 12
//	20 01 00 00 de ad be ef   RepType 2, InType 0, RepLen 1, 4 bytes of IOAM data
//	10 03 01 80               RepType 1, InType 0, RepLen 3, MDLen 1, D
//	00 01 00 00 00 00 00 00   RepMdBits 0x0001 (drop reason)
//	07 47 00 00               queue 7, drop reason 71
var reportV2Multi = []byte{
	0x20, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0c,
	0x20, 0x01, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef,
	0x10, 0x03, 0x01, 0x80,
	0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x07, 0x47, 0x00, 0x00,
}

func TestReportV2MultiAndOpaque(t *testing.T) {
	var got TelemetryReportV2
	if err := got.DecodeFromBytes(reportV2Multi, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := TelemetryReportV2{
		BaseLayer: layers.BaseLayer{Contents: reportV2Multi},
		Version:   2, Seq: 2, NodeID: 12,
		Reports: []ReportV2{
			{RepType: 2, ReportLength: 1, Inner: reportV2Multi[12:16], Reason: reasonIOAM},
			{RepType: 1, ReportLength: 3, MDLength: 1, D: true, RepMdBits: 1,
				Baseline: ReportBaseline{DropQueueID: 7, DropReason: 71}, DSData: []byte{}, Inner: []byte{}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if out := serialize(t, &got, false); !bytes.Equal(out, reportV2Multi) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, reportV2Multi)
	}
	recs := NewDecoder(DecoderOptions{}).reportRecordsForTest(reportV2Multi)
	if len(recs) != 2 || recs[0].Kind != RecordOpaque || recs[0].Reason != reasonIOAM ||
		recs[1].Kind != RecordDrop || recs[1].DropReason != 71 || recs[1].QueueID != 7 ||
		recs[1].DropName() != "traffic manager (queue full)" || recs[1].Node != 12 {
		t.Fatalf("records %+v", recs)
	}
}

// reportRecordsForTest runs the report path on a bare UDP payload.
func (d *Decoder) reportRecordsForTest(payload []byte) []Record {
	return d.reportRecords(&Record{}, payload, nil)
}

func TestReportV2Variants(t *testing.T) {
	mk := func(indiv ...byte) []byte {
		return append([]byte{0x20, 0, 0, 0, 0, 0, 0, 1}, indiv...)
	}
	cases := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"reserved RepType", mk(0x30, 0x00, 0x00, 0x00), reasonRepTypeReserved},
		{"reserved RepMdBits", mk(0x10, 0x03, 0x01, 0x00, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), reasonRepMdReserved},
		{"RepMdBits beyond MD Length", mk(0x10, 0x02, 0x00, 0x00, 0x20, 0x00, 0, 0, 0, 0, 0, 0), reasonRepMdLength},
		{"reserved InType", mk(0x17, 0x02, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0), reasonInTypeReserved},
		{"reserved flag bits", mk(0x10, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0), reasonReservedFlags},
		{"host DS reserved bit", mk(0x10, 0x02, 0x00, 0x00, 0, 0, 0xb5, 0xc0, 0x00, 0x80, 0, 0), reasonHostDSReserved},
		{"host DS size mismatch", mk(0x10, 0x02, 0x00, 0x00, 0, 0, 0xb5, 0xc0, 0x80, 0x00, 0, 0), reasonHostDSLength},
		{"report length past the end", mk(0x10, 0x09, 0x00, 0x00, 0, 0, 0, 0), reasonReportTooLong},
		{"InType 4 with Ethernet inside", mk(0x14, 0x06, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
			0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 8, 0, 0x45, 0), reasonInnerNotIPv4},
		{"unknown domain is kept opaque, not an error", mk(0x10, 0x03, 0x01, 0x00, 0, 0, 0x12, 0x34, 0x80, 0, 0, 0, 9, 9, 9, 9), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r TelemetryReportV2
			if err := r.DecodeFromBytes(c.data, gopacket.NilDecodeFeedback); err != nil {
				t.Fatalf("error %v: a bad report must not fail the packet", err)
			}
			if len(r.Reports) != 1 || r.Reports[0].Reason != c.reason {
				t.Fatalf("reports %+v, want one with reason %q", r.Reports, c.reason)
			}
			if c.reason == "" && !bytes.Equal(r.Reports[0].DSData, []byte{9, 9, 9, 9}) {
				t.Fatalf("DS data %x, want the 4 opaque bytes", r.Reports[0].DSData)
			}
		})
	}
}

// reportV1Vector is a Telemetry Report v1.0 drop report with five of the six
// optional metadata words and an inner IPv4/UDP packet.
//
//	19 3f 01 03   Ver 1, Len 9, NProt 1 (IPv4), RepMdBits 0x3E, D, hw_id 3
//	00 00 00 2a   Switch ID 42
//	00 00 00 07   seq 7
//	00 00 10 00   ingress ts 4096
//	00 05 00 06   ports 5 / 6
//	00 00 01 f4   hop latency 500
//	02 00 00 64   queue 2, occupancy 100
//	00 00 11 f4   egress ts 4596
//	02 47 00 00   queue 2, drop reason 71
//	45 00 00 1c 00 00 00 00 40 11 00 00 0a 00 00 01 0a 00 00 02   IPv4
//	04 d2 16 2e 00 08 00 00   UDP 1234 -> 5678
var reportV1Vector = []byte{
	0x19, 0x3f, 0x01, 0x03,
	0x00, 0x00, 0x00, 0x2a,
	0x00, 0x00, 0x00, 0x07,
	0x00, 0x00, 0x10, 0x00,
	0x00, 0x05, 0x00, 0x06,
	0x00, 0x00, 0x01, 0xf4,
	0x02, 0x00, 0x00, 0x64,
	0x00, 0x00, 0x11, 0xf4,
	0x02, 0x47, 0x00, 0x00,
	0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
	0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
	0x04, 0xd2, 0x16, 0x2e, 0x00, 0x08, 0x00, 0x00,
}

func TestReportV1Vector(t *testing.T) {
	var got TelemetryReportV1
	if err := got.DecodeFromBytes(reportV1Vector, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := TelemetryReportV1{
		BaseLayer: layers.BaseLayer{Contents: reportV1Vector[:36], Payload: reportV1Vector[36:]},
		Version:   1, Length: 9, NProto: 1, RepMdBits: 0x3E, D: true, HwID: 3,
		SwitchID: 42, Seq: 7, IngressTS: 4096,
		IngressPort: 5, EgressPort: 6, HopLatency: 500, QueueID: 2, QueueOccupancy: 100,
		EgressTS: 4596, DropQueueID: 2, DropReason: 71,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if out := serialize(t, &got, true); !bytes.Equal(out, reportV1Vector[:36]) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, reportV1Vector[:36])
	}
	recs := NewDecoder(DecoderOptions{}).reportRecordsForTest(reportV1Vector)
	if len(recs) != 1 {
		t.Fatalf("records %+v", recs)
	}
	r := recs[0]
	if r.Kind != RecordDrop || r.Node != 42 || r.Latency != 500 || r.Occupancy != 100 || r.QueueID != 2 ||
		r.DropReason != 71 || r.Flow.SrcPort != 1234 || r.Flow.DstPort != 5678 || r.EgressTS != 4596 {
		t.Fatalf("record %+v", r)
	}
}

// reportV05Drop is a Telemetry Report v0.5 drop report (fabric-tna layout).
//
//	01 80 00 02   Ver 0, NProto 1 (drop), D, hw_id 2
//	00 00 00 09   seq 9
//	00 00 00 05   ingress ts 5
//	00 00 00 01   Switch ID 1
//	00 82 00 83   ports 130 / 131
//	00 50 00 00   queue 0, drop reason 80
//	00 00 00 00 00 02 00 00 00 00 00 01 08 00   Ethernet
//	45 00 00 1c 00 00 00 00 40 11 00 00 0a 00 00 01 0a 00 00 02   IPv4
//	04 d2 16 2e 00 08 00 00   UDP 1234 -> 5678
var reportV05Drop = []byte{
	0x01, 0x80, 0x00, 0x02,
	0x00, 0x00, 0x00, 0x09,
	0x00, 0x00, 0x00, 0x05,
	0x00, 0x00, 0x00, 0x01,
	0x00, 0x82, 0x00, 0x83,
	0x00, 0x50, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00,
	0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
	0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
	0x04, 0xd2, 0x16, 0x2e, 0x00, 0x08, 0x00, 0x00,
}

func TestReportV05Vector(t *testing.T) {
	var got TelemetryReportV05
	if err := got.DecodeFromBytes(reportV05Drop, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := TelemetryReportV05{
		BaseLayer: layers.BaseLayer{Contents: reportV05Drop[:24], Payload: reportV05Drop[24:]},
		NProto:    1, D: true, HwID: 2, Seq: 9, IngressTS: 5,
		SwitchID: 1, IngressPort: 130, EgressPort: 131, DropReason: 80,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if out := serialize(t, &got, false); !bytes.Equal(out, reportV05Drop[:24]) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, reportV05Drop[:24])
	}
	recs := NewDecoder(DecoderOptions{}).reportRecordsForTest(reportV05Drop)
	if len(recs) != 1 || recs[0].Kind != RecordDrop || recs[0].DropName() != "acl deny" || recs[0].Flow.DstPort != 5678 {
		t.Fatalf("records %+v", recs)
	}
}

// intMDVector is the INT v2.1 specification's worked example carried over
// UDP: shim with NPT 0, Hop ML 2, Remaining Hop Count 6, bitmap 0x9000 (node
// id, queue), two hops, newest first, then the original payload "hi!!".
//
//	10 07 00 28   Type 1 (MD), NPT 0, Length 7, original DSCP 0x0A
//	20 00 02 06   Ver 2, Hop ML 2, Remaining Hop Count 6
//	90 00 00 00   instruction bitmap 0x9000, Domain Specific ID 0
//	00 00 00 00   DS instruction, DS flags
//	00 00 00 02 01 00 00 10   hop: node 2, queue 1 occupancy 16
//	00 00 00 01 01 00 00 08   hop: node 1, queue 1 occupancy 8
//	68 69 21 21   payload
var intMDVector = []byte{
	0x10, 0x07, 0x00, 0x28,
	0x20, 0x00, 0x02, 0x06,
	0x90, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x02, 0x01, 0x00, 0x00, 0x10,
	0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x08,
	0x68, 0x69, 0x21, 0x21,
}

func TestINTMDVector(t *testing.T) {
	var got INT
	if err := got.DecodeFromBytes(intMDVector, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := INT{
		BaseLayer: layers.BaseLayer{Contents: intMDVector[:32], Payload: intMDVector[32:]},
		Version:   2, Type: INTTypeMD, ShimLength: 7, ShimData: 0x28,
		HopML: 2, RemainingHopCount: 6, Instructions: 0x9000,
		Hops: []INTHop{
			{NodeID: 2, QueueID: 1, QueueOccupancy: 16, DS: []byte{}},
			{NodeID: 1, QueueID: 1, QueueOccupancy: 8, DS: []byte{}},
		},
		SourceDS: []byte{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if got.DSCP() != 0x0A || got.NextLayerType() != gopacket.LayerTypePayload {
		t.Fatalf("DSCP %#x next %v", got.DSCP(), got.NextLayerType())
	}
	if out := serialize(t, &got, true); !bytes.Equal(out, intMDVector[:32]) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, intMDVector[:32])
	}
}

// intMXVector is an INT-MX header over UDP with port signalling (NPT 1).
//
//	34 03 23 84   Type 3 (MX), NPT 1, Length 3, original UDP port 9092
//	28 00 00 00   Ver 2, D
//	fe 00 b5 c0   bitmap 0xFE00, Domain Specific ID 0xB5C0
//	80 00 00 01   DS instruction 0x8000, DS flags 1
var intMXVector = []byte{
	0x34, 0x03, 0x23, 0x84,
	0x28, 0x00, 0x00, 0x00,
	0xfe, 0x00, 0xb5, 0xc0,
	0x80, 0x00, 0x00, 0x01,
}

func TestINTMXVector(t *testing.T) {
	var got INT
	if err := got.DecodeFromBytes(intMXVector, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := INT{
		BaseLayer: layers.BaseLayer{Contents: intMXVector, Payload: []byte{}},
		Version:   2, Type: INTTypeMX, NPT: 1, ShimLength: 3, ShimData: 9092, D: true,
		Instructions: 0xFE00, DomainID: 0xB5C0, DSInstructions: 0x8000, DSFlags: 1,
		SourceDS: []byte{},
	}
	got.Hops = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if out := serialize(t, &got, false); !bytes.Equal(out, intMXVector) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, intMXVector)
	}
}

func TestINTVariants(t *testing.T) {
	cases := []struct {
		name   string
		data   []byte
		reason string
		err    error
	}{
		{"not INT", []byte{0x45, 0, 0, 0, 0, 0, 0, 0}, "", ErrNotINT},
		{"destination header", []byte{0x20, 0x00, 0, 0}, reasonINTDest, nil},
		{"v2 shim with v3 header", []byte{0x10, 0x03, 0, 0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, reasonINTVersion, nil},
		{"hop ML too small", []byte{0x10, 0x04, 0, 0, 0x20, 0, 0x01, 0, 0x88, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, reasonINTHopML, nil},
		{"hop ML zero with stack", []byte{0x10, 0x04, 0, 0, 0x20, 0, 0x00, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, reasonINTNoHopML, nil},
		{"v0.5 header", []byte{0x01, 0, 0x03, 0, 0x00, 0, 0, 0, 0, 0, 0, 0}, reasonINTv05, nil},
		{"length past the end", []byte{0x10, 0x09, 0, 0, 0x20, 0, 0, 0}, "", errINTShort},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var n INT
			err := n.DecodeFromBytes(c.data, gopacket.NilDecodeFeedback)
			if err != c.err || n.Reason != c.reason {
				t.Fatalf("err %v reason %q, want %v %q", err, n.Reason, c.err, c.reason)
			}
		})
	}
}

// ifaVector is an IFA 2.0 header, a UDP header and one 32-byte hop.
//
//	2f 11 04 ff   Ver 2, GNS 15, NextHdr 17 (UDP), Flags 0x04, MaxLen 255
//	04 4c 08 98 00 30 00 00   UDP 1100 -> 2200
//	ee c0 7e 08   Request 0xEE, Action 0xC0, HopLimit 126, CurLen 8 words
//	10 0b 22 3f   LNS 1, device 0xB22, TTL 63
//	4c 80 00 05   speed 4, congestion 3, queue 8, rx seconds 5
//	00 19 00 18   egress port 25, ingress port 24
//	00 00 03 e8   rx nanoseconds 1000
//	00 00 00 64   residence 100 ns
//	00 00 00 01 00 00 00 02 00 00 00 03   opaque
var ifaVector = []byte{
	0x2f, 0x11, 0x04, 0xff,
	0x04, 0x4c, 0x08, 0x98, 0x00, 0x30, 0x00, 0x00,
	0xee, 0xc0, 0x7e, 0x08,
	0x10, 0x0b, 0x22, 0x3f,
	0x4c, 0x80, 0x00, 0x05,
	0x00, 0x19, 0x00, 0x18,
	0x00, 0x00, 0x03, 0xe8,
	0x00, 0x00, 0x00, 0x64,
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03,
}

func TestIFAVector(t *testing.T) {
	var got IFA
	if err := got.DecodeFromBytes(ifaVector, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := IFA{
		BaseLayer: layers.BaseLayer{Contents: ifaVector[:4], Payload: ifaVector[4:]},
		Version:   2, GNS: 15, NextHdr: layers.IPProtocolUDP, Flags: 4, MaxLen: 255,
		Request: 0xEE, Action: 0xC0, HopLimit: 126, CurLen: 8, L4Length: 8,
		Hops: []IFAHop{{LNS: 1, DeviceID: 0xB22, TTL: 63, Speed: 4, Congestion: 3, QueueID: 8, RxSec: 5,
			EgressPort: 25, IngressPort: 24, RxNanosec: 1000, ResidenceNanos: 100, Opaque: [3]uint32{1, 2, 3}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if out := serialize(t, &got, false); !bytes.Equal(out, ifaVector[:4]) {
		t.Fatalf("header serialized as % x, want % x", out, ifaVector[:4])
	}
	if out := got.AppendMetadata(nil, true); !bytes.Equal(out, ifaVector[12:]) {
		t.Fatalf("metadata serialized as\n% x\nwant\n% x", out, ifaVector[12:])
	}
}

// intV1Vector is an INT v1.0 block as AmLight's switches push it over UDP:
// an 8-bit shim type and a Length that counts the shim itself.
//
//	01 00 07 5c   shim: Type 1, Length 7 words (shim included), DSCP 0x17
//	10 00 04 07   Ver 1, Hop ML 4, Remaining Hop Count 7
//	f0 00 00 00   instruction bitmap 0xF000 (switch id, ports, latency, queue), reserved
//	00 00 00 05   hop: switch id 5
//	00 17 00 0b   ingress port 23, egress port 11
//	00 00 05 b0   hop latency 1456
//	02 00 00 6f   queue 2, occupancy 111
//	aa bb         payload
var intV1Vector = []byte{
	0x01, 0x00, 0x07, 0x5c,
	0x10, 0x00, 0x04, 0x07,
	0xf0, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x05,
	0x00, 0x17, 0x00, 0x0b,
	0x00, 0x00, 0x05, 0xb0,
	0x02, 0x00, 0x00, 0x6f,
	0xaa, 0xbb,
}

func TestINTv1Vector(t *testing.T) {
	var got INT
	if err := got.DecodeFromBytes(intV1Vector, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	want := INT{
		BaseLayer: layers.BaseLayer{Contents: intV1Vector[:28], Payload: intV1Vector[28:]},
		Version:   1, Type: 1, ShimLength: 7, ShimData: 0x5c,
		HopML: 4, RemainingHopCount: 7, Instructions: 0xF000,
		Hops:     []INTHop{{NodeID: 5, L1IngressPort: 23, L1EgressPort: 11, HopLatency: 1456, QueueID: 2, QueueOccupancy: 111, DS: []byte{}}},
		SourceDS: []byte{},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if got.DSCP() != 0x17 {
		t.Fatalf("DSCP %#x", got.DSCP())
	}
}

// TestTruncatedInputs feeds every prefix of every vector to every decoder:
// none may panic, and a layer that reports success must not claim more bytes
// than it was given.
func TestTruncatedInputs(t *testing.T) {
	vectors := map[string][]byte{
		"v2 spec": reportV2Spec, "v2 host": hostReportVector, "v2 multi": reportV2Multi,
		"v1": reportV1Vector, "v0.5": reportV05Drop, "int md": intMDVector, "int mx": intMXVector,
		"ifa": ifaVector, "tag": tagVector, "int v1": intV1Vector, "v2 tlv": reportV2TLV,
	}
	d := NewDecoder(DecoderOptions{})
	for name, v := range vectors {
		for n := 0; n <= len(v); n++ {
			b := append([]byte(nil), v[:n]...)
			var (
				r2  TelemetryReportV2
				r1  TelemetryReportV1
				r05 TelemetryReportV05
				in  INT
				fa  IFA
			)
			for _, l := range []gopacket.DecodingLayer{&r2, &r1, &r05, &in, &fa} {
				if err := l.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err == nil {
					if len(l.LayerPayload()) > n {
						t.Errorf("%s[:%d]: %T payload %d bytes", name, n, l, len(l.LayerPayload()))
					}
				}
			}
			_, _ = ParseRequestTag(b)
			_ = d.reportRecordsForTest(b)
			_ = gopacket.NewPacket(b, LayerTypeTelemetryReport, gopacket.Default)
			_ = gopacket.NewPacket(b, LayerTypeINT, gopacket.Default)
			_ = gopacket.NewPacket(b, LayerTypeIFA, gopacket.Default)
		}
	}
}

// reportV2TLV carries its inner packet as TLVs: a domain-specific TLV that
// is skipped, then an IPv4 TLV.
//
//	20 00 00 03 00 00 00 0d   Ver 2, seq 3, Node ID 13
//	11 0c 00 20               RepType 1, InType 1 (TLV), RepLen 12, MDLen 0, F
//	00 00 00 00 00 00 00 00   RepMdBits 0, DS ID 0, DSMdBits 0, status 0
//	00 01 12 34 aa bb cc dd   TLV type 0 (DS ext), length 1, template 0x1234
//	20 07 00 00               TLV type 2 (IPv4), length 7
//	45 00 00 1c 00 00 00 00 40 11 00 00 0a 00 00 01 0a 00 00 02   IPv4
//	04 d2 16 2e 00 08 00 00   UDP 1234 -> 5678
var reportV2TLV = []byte{
	0x20, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x0d,
	0x11, 0x0c, 0x00, 0x20,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x01, 0x12, 0x34, 0xaa, 0xbb, 0xcc, 0xdd,
	0x20, 0x07, 0x00, 0x00,
	0x45, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
	0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
	0x04, 0xd2, 0x16, 0x2e, 0x00, 0x08, 0x00, 0x00,
}

func TestReportV2TLV(t *testing.T) {
	var r TelemetryReportV2
	if err := r.DecodeFromBytes(reportV2TLV, gopacket.NilDecodeFeedback); err != nil {
		t.Fatal(err)
	}
	if len(r.Reports) != 1 || r.Reports[0].Reason != "" {
		t.Fatalf("reports %+v", r.Reports)
	}
	typ, inner := r.Reports[0].InnerPacket()
	if typ != InTypeIPv4 || !bytes.Equal(inner, reportV2TLV[32:]) {
		t.Fatalf("InnerPacket = %d % x", typ, inner)
	}
	if out := serialize(t, &r, true); !bytes.Equal(out, reportV2TLV) {
		t.Fatalf("serialized\n% x\nwant\n% x", out, reportV2TLV)
	}
	recs := NewDecoder(DecoderOptions{}).reportRecordsForTest(reportV2TLV)
	if len(recs) != 1 || recs[0].Kind != RecordHop || recs[0].Flow.DstPort != 5678 || recs[0].Node != 13 {
		t.Fatalf("records %+v", recs)
	}
}

// The layers work in a DecodingLayerParser, the gopacket zero-allocation
// path: UDP on the report port hands over to TelemetryReport.
func TestDecodingLayerParser(t *testing.T) {
	var (
		eth layers.Ethernet
		ip4 layers.IPv4
		udp layers.UDP
		rep TelemetryReport
	)
	p := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip4, &udp, &rep)
	p.IgnoreUnsupported = true
	var decoded []gopacket.LayerType
	frame := intReportFrame(t, 2)
	if err := p.DecodeLayers(frame, &decoded); err != nil {
		t.Fatal(err)
	}
	// The parser goes on into the reported packet, reusing the IPv4 and UDP
	// structs (so they end up holding the inner headers).
	want := []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv4, layers.LayerTypeUDP,
		LayerTypeTelemetryReport, layers.LayerTypeIPv4, layers.LayerTypeUDP}
	if !reflect.DeepEqual(decoded, want) || udp.DstPort != 6000 {
		t.Fatalf("decoded %v, want %v", decoded, want)
	}
	if rep.Version != 2 || rep.V2.NodeID != 9 || len(rep.V2.Reports) != 1 || rep.NextLayerType() != layers.LayerTypeIPv4 {
		t.Fatalf("report %+v", rep.V2)
	}
	n := testing.AllocsPerRun(100, func() { _ = p.DecodeLayers(frame, &decoded) })
	if n != 0 {
		t.Fatalf("DecodingLayerParser path allocates %v times", n)
	}
}

// Generic gopacket decoding reaches the report layers through UDP port
// 32766 and IFA through IP protocol 131, both registered at init.
func TestGopacketNewPacketRouting(t *testing.T) {
	p := gopacket.NewPacket(intReportFrame(t, 2), layers.LayerTypeEthernet, gopacket.Default)
	if p.ErrorLayer() != nil {
		t.Fatal(p.ErrorLayer().Error())
	}
	var got []gopacket.LayerType
	for _, l := range p.Layers() {
		got = append(got, l.LayerType())
	}
	want := []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv4, layers.LayerTypeUDP,
		LayerTypeTelemetryReportV2, layers.LayerTypeIPv4, layers.LayerTypeUDP, gopacket.LayerTypePayload}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("layers %v, want %v", got, want)
	}
	if r := p.Layer(LayerTypeTelemetryReportV2).(*TelemetryReportV2); r.NodeID != 9 || len(r.Reports) != 1 {
		t.Fatalf("report %+v", r)
	}

	eth, ip := ethIPv4(layers.IPProtocol(IPProtocolIFA), 0)
	frame := mustSerialize(t, eth, ip, gopacket.Payload(ifaVector))
	p = gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	f, ok := p.Layer(LayerTypeIFA).(*IFA)
	if !ok || len(f.Hops) != 1 || f.Hops[0].DeviceID != 0xB22 || p.Layer(layers.LayerTypeUDP) == nil {
		t.Fatalf("IFA not decoded by gopacket: %v", p)
	}
}

// Records come out of IPv6, VLAN-tagged and Linux cooked (SLL) captures too.
func TestRecordsLinkVariants(t *testing.T) {
	d := NewDecoder(DecoderOptions{})
	tcp := taggedTCPFrame(t)
	vlan := append(append(append([]byte(nil), tcp[:12]...), 0x81, 0x00, 0x00, 0x2a), tcp[12:]...)
	sll := append([]byte{0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00}, tcp[14:]...)
	eth6 := &layers.Ethernet{SrcMAC: tcp[6:12], DstMAC: tcp[:6], EthernetType: layers.EthernetTypeIPv6}
	ip6 := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64,
		SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2"), TrafficClass: 0x17 << 2}
	opt := benchTag.AppendOption(nil)
	t6 := &layers.TCP{SrcPort: 1, DstPort: 2, Seq: 5, ACK: true, Options: []layers.TCPOption{
		{OptionType: TagOptionKind, OptionLength: TagOptionLen, OptionData: opt[2:]}}}
	_ = t6.SetNetworkLayerForChecksum(ip6)
	v6 := mustSerialize(t, eth6, ip6, t6, gopacket.Payload([]byte("hello")))
	cases := []struct {
		name string
		link layers.LinkType
		data []byte
		port uint16
		plen uint32
	}{
		{"vlan", layers.LinkTypeEthernet, vlan, 8080, 100},
		{"sll", layers.LinkTypeLinuxSLL, sll, 8080, 100},
		{"raw", layers.LinkTypeRaw, tcp[14:], 8080, 100},
		{"ipv6", layers.LinkTypeEthernet, v6, 2, 5},
	}
	for _, c := range cases {
		recs := d.Records(0, 0, c.link, c.data, nil)
		// The IPv6 packet is DSCP-marked (0x17) but carries no INT shim: it
		// must stay a plain packet.
		if len(recs) != 1 || recs[0].Kind != RecordPacket || !recs[0].HasTag || recs[0].Tag != benchTag ||
			recs[0].Flow.DstPort != c.port || recs[0].PayloadLen != c.plen {
			t.Errorf("%s: records %+v", c.name, recs)
		}
	}
}

// Reserved header bits that senders clear mark a payload that is probably
// not a report at all (a shared port); it is flagged, never trusted.
func TestOldReportReservedBits(t *testing.T) {
	v05 := append([]byte(nil), reportV05Drop...)
	v05[2] |= 0x40 // one of the 15 reserved bits
	var r05 TelemetryReportV05
	if err := r05.DecodeFromBytes(v05, gopacket.NilDecodeFeedback); err != nil || r05.Reason != reasonV05Reserved {
		t.Fatalf("v0.5: err %v reason %q", err, r05.Reason)
	}
	v1 := append([]byte(nil), reportV1Vector...)
	v1[2] |= 0x02 // a reserved bit
	var r1 TelemetryReportV1
	if err := r1.DecodeFromBytes(v1, gopacket.NilDecodeFeedback); err != nil || r1.Reason != reasonV1Rsvd {
		t.Fatalf("v1.0: err %v reason %q", err, r1.Reason)
	}
	for _, b := range [][]byte{v05, v1} {
		recs := NewDecoder(DecoderOptions{}).reportRecordsForTest(b)
		if len(recs) != 1 || recs[0].Kind != RecordOpaque {
			t.Fatalf("records %+v", recs)
		}
	}
}
