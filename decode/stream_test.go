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
