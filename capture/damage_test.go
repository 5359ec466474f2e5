package capture

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/klauspost/compress/zstd"
)

// traceLayout writes pkts (one frame per perFrame packets, forced with
// Flush so frame membership is known without trusting the reader) and
// returns the file bytes and each data frame's [start, end) offsets.
func traceLayout(t *testing.T, pkts []testPacket, perFrame int) ([]byte, [][2]int64) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Interfaces: testIfaces, FrameBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var frames [][2]int64
	for i, p := range pkts {
		if err := w.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
		if (i+1)%perFrame == 0 || i == len(pkts)-1 {
			start := int64(buf.Len())
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			frames = append(frames, [2]int64{start, int64(buf.Len())})
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), frames
}

func readBytes(t *testing.T, b []byte, opts ReaderOptions) ([]Packet, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b), int64(len(b)), "trace.zst", opts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readAll(t, r)
}

// TestTruncatedEveryOffset cuts a trace at every byte of its last two data
// frames, its time index and seek table. The reader must return exactly the
// packets of the frames that are complete, and name the cut frame's offset.
func TestTruncatedEveryOffset(t *testing.T) {
	const perFrame = 20
	pkts := genPackets(100, 2, 11)
	full, frames := traceLayout(t, pkts, perFrame)
	dataEnd := frames[len(frames)-1][1]
	from := frames[len(frames)-2][0]
	for cut := from; cut < int64(len(full)); cut++ {
		complete := 0
		var cutFrame int64 = -1
		for i, f := range frames {
			if f[1] <= cut {
				complete = min(len(pkts), (i+1)*perFrame)
			} else if f[0] < cut {
				cutFrame = f[0]
			}
		}
		// Frames decompressed ahead by workers, and by the reading
		// goroutine itself, give the same packets and errors.
		got, err := readBytes(t, full[:cut], ReaderOptions{Workers: 2})
		comparePacketsNoFatal(t, fmt.Sprintf("cut at %d", cut), got, pkts[:complete])
		gotInline, errInline := readBytes(t, full[:cut], ReaderOptions{Inline: true})
		comparePacketsNoFatal(t, fmt.Sprintf("cut at %d, inline", cut), gotInline, pkts[:complete])
		if fmt.Sprint(err) != fmt.Sprint(errInline) {
			t.Fatalf("cut at %d: error %q with workers, %q inline", cut, err, errInline)
		}
		atBoundary := cutFrame < 0 && (cut == dataEnd || isFrameEnd(frames, cut) || cut == dataEnd+indexLen(len(frames)))
		switch {
		case atBoundary:
			// Nothing is half-written, but the seek table is missing: the
			// reader must still say the recording was cut short.
			if !errors.Is(err, ErrNoSeekTable) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", cut)) {
				t.Errorf("cut at frame boundary %d: error %v, want ErrNoSeekTable at offset %d", cut, err, cut)
			}
		case err == nil:
			t.Errorf("cut at %d: no error for a truncated file", cut)
		default:
			var de *DamageError
			if !errors.As(err, &de) {
				t.Fatalf("cut at %d: error %T %v, want *DamageError", cut, err, err)
			}
			want := cutFrame
			if cutFrame < 0 { // inside the index or seek table
				want = dataEnd
				if cut > dataEnd+indexLen(len(frames)) {
					want = dataEnd + indexLen(len(frames))
				}
			}
			if de.Frames[0].Offset != want || !strings.Contains(err.Error(), fmt.Sprintf("at offset %d", want)) {
				t.Fatalf("cut at %d: error %q, want it to name offset %d", cut, err, want)
			}
		}
	}
}

func indexLen(frames int) int64 { return int64(indexHeaderLen + indexEntrySize*frames) }

func isFrameEnd(frames [][2]int64, off int64) bool {
	for _, f := range frames {
		if f[1] == off {
			return true
		}
	}
	return false
}

func comparePacketsNoFatal(t *testing.T, what string, got []Packet, want []testPacket) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d packets, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !got[i].Timestamp.Equal(want[i].ci.Timestamp) || !bytes.Equal(got[i].Data, want[i].data) {
			t.Fatalf("%s: packet %d differs", what, i)
		}
	}
}

// TestCorruptFrameInTheMiddle damages frame 3 of a seekable trace; every
// other frame's packets still come out, then one error names the frame,
// its offset and what was lost.
func TestCorruptFrameInTheMiddle(t *testing.T) {
	const perFrame = 50
	pkts := genPackets(400, 2, 12)
	full, frames := traceLayout(t, pkts, perFrame)
	for _, seekTable := range []bool{true, false} {
		b := bytes.Clone(full)
		if !seekTable {
			b = b[:frames[len(frames)-1][1]] // as if the writer was killed
		}
		f3 := frames[3]
		b[(f3[0]+f3[1])/2] ^= 0x55
		_, errInline := readBytes(t, b, ReaderOptions{Inline: true})
		got, err := readBytes(t, b, ReaderOptions{Workers: 2})
		if fmt.Sprint(err) != fmt.Sprint(errInline) {
			t.Errorf("seek table %v: error %q with workers, %q inline", seekTable, err, errInline)
		}
		want := append(append([]testPacket(nil), pkts[:3*perFrame]...), pkts[4*perFrame:]...)
		comparePacketsNoFatal(t, fmt.Sprintf("seek table %v", seekTable), got, want)
		var de *DamageError
		if !errors.As(err, &de) || len(de.Frames) != 1 {
			t.Fatalf("seek table %v: error %v, want one damaged frame", seekTable, err)
		}
		fe := de.Frames[0]
		if fe.Frame != 3 || fe.Offset != f3[0] {
			t.Errorf("seek table %v: damage at frame %d offset %d, want frame 3 at %d", seekTable, fe.Frame, fe.Offset, f3[0])
		}
		msg := err.Error()
		wantMsg := fmt.Sprintf("trace.zst: frame 3 at offset %d: corrupt zstd data", f3[0])
		if !strings.HasPrefix(msg, wantMsg) {
			t.Errorf("error %q does not start with %q", msg, wantMsg)
		}
		if seekTable {
			// The time index knows what was lost.
			if fe.Lost != perFrame || !fe.First.Equal(pkts[3*perFrame].ci.Timestamp) || !fe.Last.Equal(pkts[4*perFrame-1].ci.Timestamp) {
				t.Errorf("lost %d packets %s..%s, want %d %s..%s", fe.Lost, fe.First, fe.Last, perFrame,
					pkts[3*perFrame].ci.Timestamp, pkts[4*perFrame-1].ci.Timestamp)
			}
			if !strings.Contains(msg, "50 packets of that frame lost") {
				t.Errorf("error %q does not say how many packets were lost", msg)
			}
		}
	}
}

// A corrupt pcapng block inside an intact zstd frame (a writer bug or a
// crafted file) skips the rest of that frame; the next frame's section
// header resynchronises.
func TestCorruptBlockResyncsAtNextFrame(t *testing.T) {
	const perFrame = 10
	pkts := genPackets(30, 2, 13)
	full, frames := traceLayout(t, pkts, perFrame)
	// Rebuild the trace with frame 1's pcapng broken before compression: make
	// an uncompressed copy, break it, and read it as pcapng where nothing can
	// be resynchronised, then as frames.
	r, err := NewReader(bytes.NewReader(full), int64(len(full)), "t", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var plain []byte
	var sections [][]byte
	for _, f := range r.frames {
		out, err := r.dec.DecodeAll(full[f.off:f.off+f.clen], nil)
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, out...)
		sections = append(sections, out)
	}
	if len(frames) != 3 || len(sections) != 3 {
		t.Fatalf("%d frames, want 3", len(sections))
	}
	// Packets are the only blocks after the headers; find the 15th EPB and
	// give it an impossible length.
	off := nthBlock(t, plain, blockEPB, 15)
	plain[off+4] = 0xff
	plain[off+5] = 0xff
	plain[off+6] = 0xff
	plain[off+7] = 0x7f
	got, err := readBytes(t, plain, ReaderOptions{})
	comparePacketsNoFatal(t, "uncompressed", got, pkts[:14])
	var de *DamageError
	if !errors.As(err, &de) || !de.Stopped || de.Frames[0].Offset != int64(off) {
		t.Fatalf("uncompressed: error %v, want a stop at offset %d", err, off)
	}

	// The same damage inside zstd frames: frame 1 loses the bad block and
	// everything after it in that frame, frame 2 reads normally.
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	se, err := seekable.NewEncoder(enc)
	if err != nil {
		t.Fatal(err)
	}
	var z []byte
	var f1 int
	for i, sec := range sections {
		if i == 1 {
			f1 = len(z)
			sec = plain[len(sections[0]) : len(sections[0])+len(sec)]
		}
		c, err := se.Encode(sec)
		if err != nil {
			t.Fatal(err)
		}
		z = append(z, c...)
	}
	st, err := se.EndStream()
	if err != nil {
		t.Fatal(err)
	}
	z = append(z, st...)
	got, err = readBytes(t, z, ReaderOptions{})
	comparePacketsNoFatal(t, "zstd", got, append(append([]testPacket(nil), pkts[:14]...), pkts[20:]...))
	if !errors.As(err, &de) || de.Stopped || len(de.Frames) != 1 || de.Frames[0].Frame != 1 || de.Frames[0].Offset != int64(f1) {
		t.Fatalf("zstd: error %v, want frame 1 at offset %d damaged", err, f1)
	}
	if want := "rest of the frame skipped"; !strings.Contains(err.Error(), want) {
		t.Errorf("zstd: error %q does not say %q", err, want)
	}
}

func nthBlock(t *testing.T, b []byte, typ uint32, n int) int {
	t.Helper()
	seen := 0
	for off := 0; off+8 <= len(b); {
		bt := uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16 | uint32(b[off+3])<<24
		l := int(uint32(b[off+4]) | uint32(b[off+5])<<8 | uint32(b[off+6])<<16 | uint32(b[off+7])<<24)
		if bt == typ {
			if seen == n-1 {
				return off
			}
			seen++
		}
		off += l
	}
	t.Fatalf("no block %d of type %d", n, typ)
	return 0
}

func TestTruncatedPlainFiles(t *testing.T) {
	pkts := genPackets(40, 2, 14)
	full, _ := traceLayout(t, pkts, 40)
	r, err := NewReader(bytes.NewReader(full), int64(len(full)), "t", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := r.frames[0]
	plain, err := r.dec.DecodeAll(full[f.off:f.off+f.clen], nil)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Block ends, to know which packets are complete at each cut.
	var ends []int
	for off := 0; off < len(plain); {
		l := int(uint32(plain[off+4]) | uint32(plain[off+5])<<8 | uint32(plain[off+6])<<16 | uint32(plain[off+7])<<24)
		if plain[off] == blockEPB {
			ends = append(ends, off+l)
		}
		off += l
	}
	for cut := ends[len(ends)-4]; cut < len(plain); cut++ {
		n := 0
		for _, e := range ends {
			if e <= cut {
				n++
			}
		}
		got, err := readBytes(t, plain[:cut], ReaderOptions{})
		comparePacketsNoFatal(t, fmt.Sprintf("pcapng cut at %d", cut), got, pkts[:n])
		if (err == nil) != (ends[n-1] == cut) {
			t.Fatalf("pcapng cut at %d: error %v", cut, err)
		}
		if err != nil && !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("pcapng cut at %d: error %q does not say truncated", cut, err)
		}
	}
}

func TestOpenRejectsGarbage(t *testing.T) {
	cases := map[string][]byte{
		"empty":     {},
		"short":     {0x0a, 0x0d},
		"text":      []byte("hello world, not a capture"),
		"zstd junk": {0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for name, b := range cases {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)), "in.bin", ReaderOptions{})
		if err == nil {
			_, err = readAll(t, r)
			r.Close()
		}
		if err == nil || !strings.HasPrefix(err.Error(), "in.bin") {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
	dir := t.TempDir()
	if _, err := Open(dir, ReaderOptions{}); err == nil {
		t.Error("Open of a directory succeeded")
	}
	if _, err := Open(dir+"/missing", ReaderOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %v", err)
	}
}
