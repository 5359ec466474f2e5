package decode

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// corpusDir returns the interop corpus folder, ../shared/captures relative
// to the module root, or skips the test when it is absent.
func corpusDir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(file)) // decode/ -> module root
	dir := filepath.Join(root, "..", "shared", "captures")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("interop corpus not found at %s (../shared/captures from the repository root): %v", dir, err)
	}
	return dir
}

type corpusPacket struct {
	ts   int64
	data []byte
}

// readCorpus reads a pcap or pcapng file with gopacket/pcapgo.
func readCorpus(t testing.TB, path string) (layers.LinkType, []corpusPacket) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pkts []corpusPacket
	var link layers.LinkType
	if filepath.Ext(path) == ".pcapng" {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		link = r.LinkType()
		for {
			data, ci, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			pkts = append(pkts, corpusPacket{ci.Timestamp.UnixNano(), data})
		}
		return link, pkts
	}
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	link = r.LinkType()
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pkts = append(pkts, corpusPacket{ci.Timestamp.UnixNano(), data})
	}
	return link, pkts
}

func TestCorpusDump(t *testing.T) {
	if os.Getenv("BUFSCOPE_DUMP") == "" {
		t.Skip("set BUFSCOPE_DUMP=1 to print the records of every corpus file")
	}
	dir := corpusDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.pcap"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "*.pcapng"))
	files = append(files, more...)
	for _, f := range files {
		link, pkts := readCorpus(t, f)
		d := NewDecoder(DecoderOptions{INTPorts: []uint16{0x4568}})
		for i, p := range pkts {
			recs := d.Records(p.ts, 0, link, p.data, nil)
			for _, r := range recs {
				if r.Kind == RecordPacket && r.Reason == "" {
					continue
				}
				t.Logf("%s #%d %s %s node=%d hop=%d/%d lat=%d q=%d occ=%d drop=%v/%d flow=%s reason=%q",
					filepath.Base(f), i+1, r.Kind, r.Source, r.Node, r.Hop, r.Hops, r.Latency, r.QueueID, r.Occupancy, r.HasDropReason, r.DropReason, r.Flow, r.Reason)
			}
		}
	}
}

func loadExpected(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v []map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// layerFields returns the fields of the n-th layer called name in an
// expected.json frame.
func layerFields(frame map[string]any, name string, n int) map[string]any {
	for _, l := range frame["layers"].([]any) {
		m := l.(map[string]any)
		if m["layer"] == name {
			if n == 0 {
				return m["fields"].(map[string]any)
			}
			n--
		}
	}
	return nil
}

func num(m map[string]any, k string) uint64 {
	v, ok := m[k].(float64)
	if !ok {
		panic("expected.json: no number " + k)
	}
	return uint64(v)
}

// l4Payload returns the TCP or UDP payload of an Ethernet frame, decoded by
// gopacket's own layers.
func l4Payload(t *testing.T, data []byte) []byte {
	t.Helper()
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
	if l := p.Layer(layers.LayerTypeUDP); l != nil {
		return l.LayerPayload()
	}
	if l := p.Layer(layers.LayerTypeTCP); l != nil {
		return l.LayerPayload()
	}
	t.Fatalf("no TCP/UDP in frame")
	return nil
}

func recordsOf(recs []Record, k RecordKind) []Record {
	var out []Record
	for _, r := range recs {
		if r.Kind == k {
			out = append(out, r)
		}
	}
	return out
}

func TestCorpusINTv21Scapy(t *testing.T) {
	dir := corpusDir(t)
	link, pkts := readCorpus(t, filepath.Join(dir, "int", "int_v2.1_scapy_pr4230.pcap"))
	exp := loadExpected(t, filepath.Join(dir, "int", "int_v2.1_scapy_pr4230.expected.json"))
	if len(pkts) != 28 || len(exp) != 28 {
		t.Fatalf("%d packets, %d expected frames; want 28", len(pkts), len(exp))
	}
	d := NewDecoder(DecoderOptions{INTPorts: []uint16{0x4568}})
	for i := 0; i < 16; i++ { // TCP/UDP carriers; 17-28 are GRE/GPE/Geneve shims
		shim := layerFields(exp[i], "INTShimTcpUdp", 0)
		var n INT
		if err := n.DecodeFromBytes(l4Payload(t, pkts[i].data), gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		md := shim["metadata"].([]any)[0].(map[string]any)
		mf := md["fields"].(map[string]any)
		want := INT{
			Version: 2, Type: uint8(num(shim, "type")), NPT: uint8(num(shim, "npt")),
			ShimLength:   uint8(num(shim, "length")),
			Instructions: uint16(num(mf, "instr_bitmap")), DomainID: uint16(num(mf, "ds_id")),
			DSInstructions: uint16(num(mf, "ds_instr")), DSFlags: uint16(num(mf, "ds_flags")),
		}
		if want.NPT == 1 {
			want.ShimData = uint16(num(shim, "l4_dport"))
		}
		if md["layer"] == "INTMetaMd" {
			want.HopML, want.RemainingHopCount = uint8(num(mf, "hop_len")), uint8(num(mf, "hop_left"))
			for _, h := range mf["meta_hops"].([]any) {
				hf := h.([]any)[0].(map[string]any)["fields"].(map[string]any)
				want.Hops = append(want.Hops, INTHop{
					NodeID: uint32(num(hf, "node_id")), L1IngressPort: uint16(num(hf, "igr_l1_intf")),
					L1EgressPort: uint16(num(hf, "egr_l1_intf")), HopLatency: uint32(num(hf, "latency")),
					QueueID: uint8(num(hf, "que_id")), QueueOccupancy: uint32(num(hf, "que_occupy")),
					IngressTS: num(hf, "igr_ts"), EgressTS: num(hf, "egr_ts"),
					L2IngressPort: uint32(num(hf, "igr_l2_intf")), L2EgressPort: uint32(num(hf, "egr_l2_intf")),
					DS: []byte{},
				})
			}
		}
		got := n
		got.BaseLayer = layers.BaseLayer{}
		if len(got.SourceDS) == 0 {
			got.SourceDS = nil
		}
		if len(got.Hops) == 0 {
			got.Hops = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d (%s):\n got %+v\nwant %+v", i+1, exp[i]["case"], got, want)
		}
		// The Decoder reports one hop Record per stack entry, newest first.
		recs := d.Records(pkts[i].ts, 0, link, pkts[i].data, nil)
		hops := recordsOf(recs, RecordHop)
		if len(hops) != len(want.Hops) {
			t.Errorf("frame %d: %d hop records, want %d", i+1, len(hops), len(want.Hops))
			continue
		}
		for j, h := range hops {
			w := want.Hops[j]
			if !h.HasNode || h.Node != w.NodeID || h.IngressPort != uint32(w.L1IngressPort) || h.EgressPort != uint32(w.L1EgressPort) || h.Hop != uint8(j) || h.Hops != uint8(len(hops)) {
				t.Errorf("frame %d hop %d: record %+v does not match %+v", i+1, j, h, w)
			}
		}
		if pr := recordsOf(recs, RecordPacket); len(pr) != 1 || pr[0].PayloadLen != 64 {
			t.Errorf("frame %d: packet records %+v, want one with the 64-byte original payload", i+1, pr)
		}
	}
	for i := 16; i < 28; i++ {
		recs := d.Records(pkts[i].ts, 0, link, pkts[i].data, nil)
		for _, r := range recs {
			if r.Kind != RecordPacket {
				t.Errorf("frame %d (%s): INT in a GRE/GPE/Geneve shim is out of scope, got %s record %q", i+1, exp[i]["case"], r.Kind, r.Reason)
			}
		}
	}
}

func TestCorpusReportV1AmLight(t *testing.T) {
	dir := corpusDir(t)
	link, pkts := readCorpus(t, filepath.Join(dir, "report", "report_v1.0_amlight_int_collector.pcap"))
	exp := loadExpected(t, filepath.Join(dir, "report", "report_v1.0_amlight_int_collector.expected.json"))
	if len(pkts) != len(exp) || len(pkts) != 13 {
		t.Fatalf("%d packets, %d expected", len(pkts), len(exp))
	}
	d := NewDecoder(DecoderOptions{})
	var seqs []uint32
	for i, p := range pkts {
		tr := layerFields(exp[i], "TelemetryReport", 0)
		var rep TelemetryReportV1
		if err := rep.DecodeFromBytes(l4Payload(t, p.data), gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		want := TelemetryReportV1{
			Version: uint8(num(tr, "ver")), Length: uint8(num(tr, "len")), NProto: uint8(num(tr, "nProto")),
			RepMdBits: uint8(num(tr, "repMdBits")), HwID: uint8(num(tr, "hw_id")),
			SwitchID: uint32(num(tr, "swid")), Seq: uint32(num(tr, "seqNumber")), IngressTS: uint32(num(tr, "ingress_ts")),
		}
		got := rep
		got.BaseLayer = layers.BaseLayer{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d header:\n got %+v\nwant %+v", i+1, got, want)
		}
		recs := d.Records(p.ts, 0, link, p.data, nil)
		if len(recs) == 0 || recs[0].Kind != RecordHop || recs[0].Source != SourceReportV1 || recs[0].Node != want.SwitchID || recs[0].Seq != want.Seq {
			t.Fatalf("frame %d: first record %+v is not the v1.0 report", i+1, recs)
		}
		seqs = append(seqs, recs[0].Seq)
		var hops []Record
		for _, r := range recs[1:] {
			if r.Source == SourceINT && r.Kind == RecordHop {
				hops = append(hops, r)
			}
		}
		for j := 0; ; j++ {
			m := layerFields(exp[i], "IntMetadata", j)
			if m == nil {
				if j != len(hops) {
					t.Errorf("frame %d: %d hop records, expected.json has %d", i+1, len(hops), j)
				}
				break
			}
			if j >= len(hops) {
				t.Errorf("frame %d: hop %d missing", i+1, j)
				break
			}
			h := hops[j]
			if h.Node != uint32(num(m, "switch_id")) || h.IngressPort != uint32(num(m, "ingress_id")) ||
				h.EgressPort != uint32(num(m, "egress_id")) || h.Latency != uint32(num(m, "hop_latency")) ||
				h.QueueID != uint8(num(m, "queue_id")) || h.Occupancy != uint32(num(m, "queue_occ")) ||
				h.IngressTS != num(m, "ingress_ts") || h.EgressTS != num(m, "egress_ts") {
				t.Errorf("frame %d hop %d: %+v vs %v", i+1, j, h, m)
			}
			if h.Flow.SrcPort != 50000 || h.Flow.DstPort != 50001 || h.Flow.SrcAddr().String() != "9.9.9.9" {
				t.Errorf("frame %d hop %d: inner flow %s", i+1, j, h.Flow)
			}
		}
		if i == 0 && len(hops) == 1 && hops[0].EgressTS-hops[0].IngressTS != 1456 {
			t.Errorf("frame 1: egress-ingress = %d, the upstream test expects 1456", hops[0].EgressTS-hops[0].IngressTS)
		}
	}
	// Frames 6-13: the collector's loss count over these sequence numbers is 7.
	lost := uint32(0)
	for i := 6; i < 13; i++ {
		lost += seqs[i] - seqs[i-1] - 1
	}
	if lost != 7 {
		t.Errorf("lost reports over frames 6-13 = %d, want 7 (seqs %v)", lost, seqs[5:])
	}
}

func TestCorpusReportV05FabricTNA(t *testing.T) {
	dir := corpusDir(t)
	link, pkts := readCorpus(t, filepath.Join(dir, "report", "report_v0.5_fabric_tna_layout.pcap"))
	exp := loadExpected(t, filepath.Join(dir, "report", "report_v0.5_fabric_tna_layout.expected.json"))
	if len(pkts) != 4 || len(exp) != 4 {
		t.Fatalf("%d packets, %d expected", len(pkts), len(exp))
	}
	d := NewDecoder(DecoderOptions{})
	for i, p := range pkts {
		e := exp[i]["expect"].(map[string]any)
		var rep TelemetryReportV05
		if err := rep.DecodeFromBytes(l4Payload(t, p.data), gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		want := TelemetryReportV05{
			Version: uint8(num(e, "ver")), NProto: uint8(num(e, "nproto")),
			D: num(e, "d") == 1, Q: num(e, "q") == 1, F: num(e, "f") == 1, HwID: uint8(num(e, "hw_id")),
			Seq: uint32(num(e, "seq_no")), IngressTS: uint32(num(e, "ingress_tstamp")),
			SwitchID: uint32(num(e, "switch_id")), IngressPort: uint16(num(e, "ingress_port")),
			EgressPort: uint16(num(e, "egress_port")), QueueID: uint8(num(e, "queue_id")),
		}
		if want.NProto == ReportV05SwitchLocal {
			want.QueueOccupancy, want.EgressTS = uint32(num(e, "queue_occupancy")), uint32(num(e, "egress_tstamp"))
		} else {
			want.DropReason = uint8(num(e, "drop_reason"))
		}
		got := rep
		got.BaseLayer = layers.BaseLayer{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d:\n got %+v\nwant %+v", i+1, got, want)
		}
		// inner_len is the switch's truncation length; a frame shorter than
		// that (14 + the inner IP length) is carried whole.
		innerIP := layerFields(exp[i], "IP", 1)
		wantInner := min(int(num(e, "inner_len")), 14+int(num(innerIP, "len")))
		if len(rep.Payload) != wantInner {
			t.Errorf("frame %d: inner %d bytes, want %d", i+1, len(rep.Payload), wantInner)
		}
		recs := d.Records(p.ts, 0, link, p.data, nil)
		wantKind := map[uint8]RecordKind{0: RecordHop, 1: RecordQueue, 2: RecordDrop, 3: RecordDrop}[uint8(i)]
		if len(recs) != 1 || recs[0].Kind != wantKind || recs[0].Node != want.SwitchID || recs[0].Flow.DstPort != 80 {
			t.Errorf("frame %d: records %+v, want one %s record for flow to port 80", i+1, recs, wantKind)
		}
		if wantKind == RecordDrop && (recs[0].DropReason != uint32(want.DropReason) || recs[0].DropName() == "") {
			t.Errorf("frame %d: drop reason %d name %q", i+1, recs[0].DropReason, recs[0].DropName())
		}
	}
}

func TestCorpusIFA(t *testing.T) {
	dir := corpusDir(t)
	link, pkts := readCorpus(t, filepath.Join(dir, "ifa", "ifa_scapy_pr4235.pcap"))
	exp := loadExpected(t, filepath.Join(dir, "ifa", "ifa_scapy_pr4235.expected.json"))
	if len(pkts) != 52 || len(exp) != 52 {
		t.Fatalf("%d packets, %d expected", len(pkts), len(exp))
	}
	d := NewDecoder(DecoderOptions{})
	for i, p := range pkts {
		hdr := layerFields(exp[i], "IFA", 0)
		md := layerFields(exp[i], "IFAMdHdr", 0)
		recs := d.Records(p.ts, 0, link, p.data, nil)
		hops := recordsOf(recs, RecordHop)
		stack := md["mdstack"].([]any)
		if len(hops) != len(stack) || num(hdr, "ver") != 2 {
			t.Errorf("frame %d: %d hop records, want %d", i+1, len(hops), len(stack))
			continue
		}
		if d.ifa.CurLen != uint8(num(md, "curlen")) || d.ifa.Request != uint8(num(md, "request")) ||
			d.ifa.Action != uint8(num(md, "action")) || d.ifa.HopLimit != uint8(num(md, "hoplmt")) ||
			d.ifa.GNS != uint8(num(hdr, "gns")) || d.ifa.Flags != uint8(num(hdr, "flags")) ||
			uint8(d.ifa.NextHdr) != uint8(num(hdr, "nexthdr")) || d.ifa.MaxLen != uint8(num(hdr, "maxlen")) {
			t.Errorf("frame %d: IFA header %+v vs %v %v", i+1, d.ifa, hdr, md)
		}
		for j, s := range stack {
			f := s.([]any)[0].(map[string]any)["fields"].(map[string]any)
			h := d.ifa.Hops[j]
			want := IFAHop{
				LNS: uint8(num(f, "lns")), DeviceID: uint32(num(f, "device_id")), TTL: uint8(num(f, "ttl")),
				Speed: uint8(num(f, "speed")), Congestion: uint8(num(f, "ecn")), QueueID: uint8(num(f, "qid")),
				RxSec: uint32(num(f, "rx_sec")), EgressPort: uint16(num(f, "dport")), IngressPort: uint16(num(f, "sport")),
				RxNanosec: uint32(num(f, "rx_nsec")), ResidenceNanos: uint32(num(f, "latency")),
			}
			if h != want {
				t.Errorf("frame %d hop %d:\n got %+v\nwant %+v", i+1, j, h, want)
			}
			if hops[j].Node != want.DeviceID || hops[j].Source != SourceIFA {
				t.Errorf("frame %d hop %d: record %+v", i+1, j, hops[j])
			}
		}
	}
}

// Non-conformant inputs must be flagged with a reason, never decoded into
// telemetry values.
func TestCorpusNonConformant(t *testing.T) {
	dir := corpusDir(t)
	cases := []struct {
		file   string
		frames int
		reason string
	}{
		{"report/report_v2.0draft_cablelabs_tps.pcap", 5, "CableLabs"},
		{"int/geant_int_v0.5style_2601_double_header.pcap", 1, "GEANT"},
		{"int/geant_int_v1.0_fpga_my.pcap", 1, "Hop ML"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			link, pkts := readCorpus(t, filepath.Join(dir, c.file))
			if len(pkts) != c.frames {
				t.Fatalf("%d frames, want %d", len(pkts), c.frames)
			}
			d := NewDecoder(DecoderOptions{})
			for i, p := range pkts {
				recs := d.Records(p.ts, 0, link, p.data, nil)
				opaque := 0
				for _, r := range recs {
					switch r.Kind {
					case RecordOpaque:
						opaque++
						if !strings.Contains(r.Reason, c.reason) {
							t.Errorf("frame %d: reason %q does not mention %q", i+1, r.Reason, c.reason)
						}
					case RecordPacket:
					default:
						t.Errorf("frame %d: misparsed into a %s record %+v", i+1, r.Kind, r)
					}
				}
				if opaque != 1 {
					t.Errorf("frame %d: %d opaque records, want 1", i+1, opaque)
				}
			}
		})
	}
}

// Ordinary traffic yields packet records only: no telemetry, no reasons.
func TestCorpusNegative(t *testing.T) {
	dir := corpusDir(t)
	var files []string
	for _, g := range []string{"negative/*.pcap", "tcp/*.pcap", "tcp/*.pcapng"} {
		m, _ := filepath.Glob(filepath.Join(dir, g))
		files = append(files, m...)
	}
	if len(files) < 15 {
		t.Fatalf("found %d negative/tcp captures, want at least 15", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			link, pkts := readCorpus(t, f)
			d := NewDecoder(DecoderOptions{})
			tcp := 0
			for i, p := range pkts {
				for _, r := range d.Records(p.ts, 0, link, p.data, nil) {
					if r.Kind != RecordPacket || r.Reason != "" || r.HasTag {
						t.Errorf("packet %d: %s record, reason %q, tag %v", i+1, r.Kind, r.Reason, r.HasTag)
					}
					if r.Flow.Proto == 6 {
						tcp++
					}
				}
			}
			if strings.Contains(f, "/tcp/") && tcp == 0 {
				t.Errorf("no TCP packet records from a TCP capture")
			}
		})
	}
}
