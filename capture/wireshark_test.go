package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// checkWiresharkLayout walks the zstd frames of a trace and checks the
// invariant Wireshark's reader needs: every frame that ends inside a
// 131075-byte window lies in a window that starts with a zstd data frame.
func checkWiresharkLayout(t *testing.T, b []byte) {
	t.Helper()
	starts := map[int64]bool{}
	for off := int64(0); off < int64(len(b)); {
		f, err := scanFrame(bytes.NewReader(b), int64(len(b)), off)
		if err != nil || f.truncated {
			t.Fatalf("offset %d: %v (truncated %v)", off, err, f.truncated)
		}
		if !f.skippable {
			starts[off] = true
		}
		end := off + f.clen
		w := (end - 1) / wiresharkWindow
		if end%wiresharkWindow != 0 && !starts[w*wiresharkWindow] {
			t.Fatalf("frame at %d ends at %d, inside window %d, which does not start with a data frame", off, end, w)
		}
		off = end
	}
}

func TestWiresharkReadableLayout(t *testing.T) {
	// Poorly compressible packets, a mid-stream change of compressibility,
	// and idle flushes of tiny frames: all must keep the layout.
	rng := rand.New(rand.NewPCG(5, 6))
	var pkts []testPacket
	for i, p := range genPackets(6000, 2, 61) {
		if i > 3000 {
			for j := range p.data {
				p.data[j] = byte(rng.Uint32())
			}
		}
		pkts = append(pkts, p)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Interfaces: testIfaces, WiresharkReadable: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if i == 2000 {
			if _, err := w.AddInterface(Interface{Name: "late", LinkType: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if i > 2000 && i%7 == 0 {
			pkts[i].ci.InterfaceIndex = 2
		}
		if err := w.WritePacket(pkts[i].ci, p.data); err != nil {
			t.Fatal(err)
		}
		if i < 500 && i%50 == 0 {
			w.Flush()
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	checkWiresharkLayout(t, b)
	got, err := readBytes(t, b, ReaderOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	comparePackets(t, got, pkts)
	r, err := NewReader(bytes.NewReader(b), int64(len(b)), "t", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Format() != "bufscope seekable zstd pcapng" || len(r.index) != len(r.frames) {
		t.Fatalf("Format %q with %d index entries for %d frames", r.Format(), len(r.index), len(r.frames))
	}
	var sum int
	for _, e := range r.index {
		sum += int(e.packets)
	}
	if sum != len(pkts) {
		t.Fatalf("time index counts %d packets, want %d", sum, len(pkts))
	}
}

// TestInteropTsharkDirectLarge has tshark read a multi-window trace written
// with WiresharkReadable directly, and checks every packet.
func TestInteropTsharkDirectLarge(t *testing.T) {
	tshark := needTool(t, "tshark")
	path := filepath.Join(t.TempDir(), "large.pcapng.zst")
	pkts := genPackets(20000, 2, 62)
	st := writeTrace(t, path, WriterOptions{Interfaces: testIfaces, WiresharkReadable: true}, pkts)
	if st.CompressedBytes < 4*wiresharkWindow {
		t.Fatalf("trace of %d bytes: the test needs several windows", st.CompressedBytes)
	}
	compareLines(t, "tshark -r large .pcapng.zst", tsharkFields(t, tshark, path), wantFields(pkts, testIfaces))
}

// TestWiresharkLayoutTruncated cuts a padded trace near every frame and
// padding boundary (and at a stride elsewhere): only the packets of complete
// data frames come back, and an error appears exactly when the cut is inside
// a zstd frame.
func TestWiresharkLayoutTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	pkts := genPackets(2400, 2, 63)
	for i := range pkts {
		for j := range pkts[i].data {
			pkts[i].data[j] = byte(rng.Uint32()) // compresses badly: padding appears
		}
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Interfaces: testIfaces, WiresharkReadable: true})
	if err != nil {
		t.Fatal(err)
	}
	type span struct {
		end     int64
		packets int
	}
	var frames []span
	for i, p := range pkts {
		if err := w.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
		if (i+1)%400 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			frames = append(frames, span{int64(buf.Len()), i + 1})
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	checkWiresharkLayout(t, full)
	// Every zstd frame boundary (data, padding, trailer).
	bounds := map[int64]bool{}
	var padded bool
	for off := int64(0); off < int64(len(full)); {
		f, err := scanFrame(bytes.NewReader(full), int64(len(full)), off)
		if err != nil {
			t.Fatal(err)
		}
		if f.skippable && binary.LittleEndian.Uint32(full[off:]) == skippableBase {
			padded = true
		}
		off += f.clen
		bounds[off] = true
	}
	if !padded {
		t.Fatal("no padding frame in the trace: the test data compressed too well")
	}
	cuts := map[int64]bool{}
	for b := range bounds {
		for d := int64(-9); d <= 9; d++ {
			if c := b + d; c > 0 && c < int64(len(full)) {
				cuts[c] = true
			}
		}
	}
	for c := int64(1); c < int64(len(full)); c += 4099 {
		cuts[c] = true
	}
	for cut := range cuts {
		want := 0
		for _, f := range frames {
			if f.end <= cut {
				want = f.packets
			}
		}
		got, err := readBytes(t, full[:cut], ReaderOptions{Workers: 2})
		if len(got) != want {
			t.Fatalf("cut at %d: %d packets, want %d", cut, len(got), want)
		}
		comparePacketsNoFatal(t, "wireshark layout", got, pkts[:want])
		if bounds[cut] != errors.Is(err, ErrNoSeekTable) || err == nil {
			t.Fatalf("cut at %d (frame boundary %v): error %v", cut, bounds[cut], err)
		}
	}
}
