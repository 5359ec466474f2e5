package capture

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSeekByTime checks that From/To select exactly the packets in the
// window and that frames entirely outside it are never decompressed.
func TestSeekByTime(t *testing.T) {
	const perFrame, n = 100, 4000
	pkts := genPackets(n, 2, 21)
	full, frames := traceLayout(t, pkts, perFrame)
	if len(frames) != n/perFrame {
		t.Fatalf("%d frames, want %d", len(frames), n/perFrame)
	}
	cases := []struct {
		name               string
		from, to           int // packet indexes; -1 = open
		skipped, decoded   int64
		firstWant, endWant int
	}{
		// From inside frame 25: frames 0-24 end before it.
		{"from", 2550, -1, 25, 15, 2550, n},
		// To inside frame 30: frames 31-39 start at or after it.
		{"to", -1, 3050, 9, 31, 0, 3050},
		{"window", 2550, 3050, 34, 6, 2550, 3050},
		// From exactly at a frame's first packet: the previous frame ends before it.
		{"frame start", 1000, -1, 10, 30, 1000, n},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var opts ReaderOptions
			if c.from >= 0 {
				opts.From = pkts[c.from].ci.Timestamp
			}
			if c.to >= 0 {
				opts.To = pkts[c.to].ci.Timestamp
			}
			opts.Workers = 2
			r, err := NewReader(bytes.NewReader(full), int64(len(full)), "t", opts)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := readAll(t, r)
			if err != nil {
				t.Fatal(err)
			}
			comparePacketsNoFatal(t, c.name, got, pkts[c.firstWant:c.endWant])
			st := r.Stats()
			if st.FramesSkipped != c.skipped || st.FramesDecompressed != c.decoded || st.Frames != int64(len(frames)) {
				t.Errorf("stats %+v: want %d skipped and %d decompressed of %d", st, c.skipped, c.decoded, len(frames))
			}
		})
	}
}

// Without a time index (plain pcapng) the window still applies, by reading
// and filtering everything.
func TestTimeWindowPlainPcapng(t *testing.T) {
	pkts := genPackets(300, 2, 22)
	full, _ := traceLayout(t, pkts, 300)
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
	path := filepath.Join(t.TempDir(), "p.pcapng")
	if err := os.WriteFile(path, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = Open(path, ReaderOptions{From: pkts[100].ci.Timestamp, To: pkts[200].ci.Timestamp.Add(time.Nanosecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	comparePacketsNoFatal(t, "pcapng window", got, pkts[100:201])
}
