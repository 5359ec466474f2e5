package capture

import (
	"errors"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestRoundTrip(t *testing.T) {
	path := tempTrace(t)
	topo := []byte(`{"nodes":[{"id":1,"name":"host1"}]}`)
	pkts := genPackets(5000, 2, 1)
	third := Interface{Name: "sw1/q3", Description: "added later", LinkType: layers.LinkTypeRaw, SnapLen: 0}
	w, err := Create(path, WriterOptions{Interfaces: testIfaces, Topology: topo, FrameBytes: 16 << 10,
		Hardware: "hw", OS: "os", Application: "app"})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if i == 2500 {
			idx, err := w.AddInterface(third)
			if err != nil || idx != 2 {
				t.Fatalf("AddInterface = %d, %v; want 2", idx, err)
			}
		}
		if i > 2500 && i%3 == 0 {
			pkts[i].ci.InterfaceIndex = 2
		}
		if err := w.WritePacket(pkts[i].ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.Packets != 5000 || st.Frames < 20 {
		t.Fatalf("stats %+v: want 5000 packets in at least 20 frames of 16 KiB", st)
	}

	for _, workers := range []int{1, 2, 3} {
		r, err := Open(path, ReaderOptions{Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r.Format(), "bufscope seekable zstd pcapng"; got != want {
			t.Errorf("Format = %q, want %q", got, want)
		}
		if string(r.Topology()) != string(topo) {
			t.Errorf("Topology = %q, want %q", r.Topology(), topo)
		}
		got, err := readAll(t, r)
		if err != nil {
			t.Fatal(err)
		}
		comparePackets(t, got, pkts)
		wantIfaces := append(append([]Interface(nil), testIfaces...), third)
		if len(r.Interfaces()) != 3 {
			t.Fatalf("Interfaces = %+v", r.Interfaces())
		}
		for i, ifc := range r.Interfaces() {
			if ifc != wantIfaces[i] {
				t.Errorf("interface %d = %+v, want %+v", i, ifc, wantIfaces[i])
			}
		}
		if rs := r.Stats(); rs.Frames != st.Frames || rs.FramesDecompressed != st.Frames || rs.Packets != 5000 {
			t.Errorf("reader stats %+v, writer wrote %d frames", rs, st.Frames)
		}
		r.Close()
	}
}

func TestWriterRejects(t *testing.T) {
	w, err := NewWriter(discard{}, WriterOptions{Interfaces: testIfaces})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cases := []struct {
		name string
		ci   gopacket.CaptureInfo
		n    int
	}{
		{"interface out of range", gopacket.CaptureInfo{Timestamp: testEpoch, InterfaceIndex: 2}, 10},
		{"negative interface", gopacket.CaptureInfo{Timestamp: testEpoch, InterfaceIndex: -1}, 10},
		{"above snap length", gopacket.CaptureInfo{Timestamp: testEpoch, InterfaceIndex: 1}, 257},
		{"before 1970", gopacket.CaptureInfo{Timestamp: time.Unix(-1, 0), InterfaceIndex: 0}, 10},
		{"zero time", gopacket.CaptureInfo{InterfaceIndex: 0}, 10},
		{"after 2262", gopacket.CaptureInfo{Timestamp: time.Date(2262, 5, 1, 0, 0, 0, 0, time.UTC), InterfaceIndex: 0}, 10},
	}
	for _, c := range cases {
		if err := w.WritePacket(c.ci, make([]byte, c.n)); err == nil {
			t.Errorf("%s: WritePacket accepted it", c.name)
		}
	}
	if _, err := Create(t.TempDir(), WriterOptions{}); err == nil {
		t.Error("Create over an existing path succeeded without Overwrite")
	}
	if _, err := NewWriter(discard{}, WriterOptions{Topology: []byte{0xff, 0xfe}}); err == nil {
		t.Error("non-UTF-8 topology accepted")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestEmptyTrace(t *testing.T) {
	path := tempTrace(t)
	writeTrace(t, path, WriterOptions{Interfaces: testIfaces}, nil)
	r, err := Open(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := readAll(t, r)
	if err != nil || len(got) != 0 {
		t.Fatalf("got %d packets, err %v; want none", len(got), err)
	}
	if len(r.Interfaces()) != 2 || r.Interfaces()[1] != testIfaces[1] {
		t.Fatalf("interfaces %+v", r.Interfaces())
	}
}

// The frame timer must close a frame that holds packets even when no further
// packet arrives.
func TestFrameIntervalClosesIdleFrame(t *testing.T) {
	path := tempTrace(t)
	w, err := Create(path, WriterOptions{Interfaces: testIfaces, FrameInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pkts := genPackets(3, 2, 2)
	for _, p := range pkts {
		if err := w.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Frames == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no frame closed within 5 s of a 20 ms frame interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The file now holds a complete frame but no seek table: a reader sees
	// the packets, as after a crash, and then says the table is missing.
	r, err := Open(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, want := r.Format(), "zstd pcapng"; got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
	got, err := readAll(t, r)
	if !errors.Is(err, ErrNoSeekTable) {
		t.Fatalf("reading an unfinished trace: error %v, want ErrNoSeekTable", err)
	}
	comparePackets(t, got, pkts)
}
