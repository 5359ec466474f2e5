package capture

import (
	"bytes"
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
