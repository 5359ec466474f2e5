package decode

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestRecordReaderTrace writes a real bufscope trace (pcapng in seekable
// zstd) with the capture package and reads it back as Records.
func TestRecordReaderTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.pcapng.zst")
	w, err := capture.Create(path, capture.WriterOptions{Interfaces: []capture.Interface{
		{Name: "host0", LinkType: layers.LinkTypeEthernet},
		{Name: "collector0", LinkType: layers.LinkTypeEthernet},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 0)
	frames := []struct {
		iface int
		data  []byte
	}{{0, taggedTCPFrame(t)}, {1, intReportFrame(t, 3)}, {1, hostReportFrame(t)}}
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f.data), Length: len(f.data), InterfaceIndex: f.iface}
		if err := w.WritePacket(ci, f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rr, err := OpenRecords(path, capture.ReaderOptions{}, DecoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	recs, err := ReadAll(rr)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind  RecordKind
		iface int
		ms    int64
	}{{RecordPacket, 0, 0}, {RecordHop, 1, 1}, {RecordHop, 1, 1}, {RecordHop, 1, 1}, {RecordHop, 1, 1}, {RecordHostEvent, 1, 2}}
	if len(recs) != len(want) || rr.Packets() != 3 {
		t.Fatalf("%d records from %d packets, want %d from 3", len(recs), rr.Packets(), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.Kind != w.kind || r.Interface != w.iface || r.Time != t0.UnixNano()+w.ms*1e6 {
			t.Errorf("record %d: kind %s iface %d time %d, want %s %d +%dms", i, r.Kind, r.Interface, r.Time, w.kind, w.iface, w.ms)
		}
	}
	if !recs[0].HasTag || recs[0].Tag != benchTag {
		t.Errorf("tag lost on the way through the trace: %+v", recs[0].Tag)
	}
}

// BenchmarkRecordReader measures the whole pipeline the analyzer sees: a
// bufscope trace (pcapng in seekable zstd) read with the capture package and
// decoded into Records. The trace holds 100 000 packets: 70 % data segments
// (one in ten tagged), 20 % 3-hop INT sink reports, 10 % host reports.
func BenchmarkRecordReader(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.pcapng.zst")
	w, err := capture.Create(path, capture.WriterOptions{Interfaces: []capture.Interface{{Name: "collector0", LinkType: layers.LinkTypeEthernet}}})
	if err != nil {
		b.Fatal(err)
	}
	tagged, report, host := taggedTCPFrame(b), intReportFrame(b, 3), hostReportFrame(b)
	eth, ip := ethIPv4(layers.IPProtocolTCP, 0)
	plainTCP := &layers.TCP{SrcPort: 40000, DstPort: 8080, Seq: 1, ACK: true, Window: 512}
	_ = plainTCP.SetNetworkLayerForChecksum(ip)
	plain := mustSerialize(b, eth, ip, plainTCP, gopacket.Payload(make([]byte, 100)))
	t0 := time.Unix(1700000000, 0)
	const n = 100000
	for i := 0; i < n; i++ {
		f := plain
		switch {
		case i%10 < 2:
			f = report
		case i%10 == 2:
			f = host
		case i%100 == 3:
			f = tagged
		}
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Microsecond), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	records := 0
	for b.Loop() {
		rr, err := OpenRecords(path, capture.ReaderOptions{}, DecoderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, recs, err := rr.NextPacket()
			if err != nil {
				break
			}
			records += len(recs)
		}
		if rr.Packets() != n {
			b.Fatalf("%d packets, want %d", rr.Packets(), n)
		}
		rr.Close()
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "packets/s")
}
