package capture

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// The per-packet paths must not allocate: WritePacket inside a frame, and
// Next inside a decompressed frame.
func TestNoAllocations(t *testing.T) {
	w, err := NewWriter(discard{}, WriterOptions{Interfaces: testIfaces, FrameBytes: 64 << 20, FrameInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	p := genPackets(1, 2, 41)[0]
	if n := testing.AllocsPerRun(1000, func() {
		if err := w.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("WritePacket: %v allocations per packet", n)
	}

	pkts := genPackets(5000, 2, 42)
	full, _ := traceLayout(t, pkts, 5000)
	r, err := NewReader(bytes.NewReader(full), int64(len(full)), "t", ReaderOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Next: %v allocations per packet", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, _, err := r.NextData(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("NextData: %v allocations per packet", n)
	}
}

func TestMerge(t *testing.T) {
	dir := t.TempDir()
	a := genPackets(500, 2, 51)
	b := genPackets(300, 1, 52) // same epoch: the two interleave
	for i := range b {
		b[i].ci.Timestamp = b[i].ci.Timestamp.Add(7 * time.Nanosecond)
	}
	ifB := []Interface{{Name: "other/eth9", LinkType: 1}}
	pa, pb := filepath.Join(dir, "a.zst"), filepath.Join(dir, "b.zst")
	writeTrace(t, pa, WriterOptions{Interfaces: testIfaces, FrameBytes: 8 << 10}, a)
	writeTrace(t, pb, WriterOptions{Interfaces: ifB, FrameBytes: 8 << 10}, b)
	ra, err := Open(pa, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := Open(pb, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	m := Merge(ra, rb)
	var got []Packet
	for {
		p, err := m.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Clone())
	}
	if len(got) != len(a)+len(b) {
		t.Fatalf("%d packets, want %d", len(got), len(a)+len(b))
	}
	ifs := m.Interfaces()
	if len(ifs) != 3 || ifs[2] != ifB[0] || m.Source(2) != 1 || m.Source(1) != 0 {
		t.Fatalf("merged interfaces %+v", ifs)
	}
	// Rebuild each input from the merged stream: order within a file and
	// every field must survive, and the stream must be in time order.
	var gotA, gotB []Packet
	for i, p := range got {
		if i > 0 && p.Timestamp.Before(got[i-1].Timestamp) {
			t.Fatalf("packet %d at %s is before packet %d", i, p.Timestamp, i-1)
		}
		if m.Source(p.Interface) == 0 {
			gotA = append(gotA, p)
		} else {
			p.Interface -= 2
			gotB = append(gotB, p)
		}
	}
	comparePackets(t, gotA, a)
	comparePackets(t, gotB, b)
}
