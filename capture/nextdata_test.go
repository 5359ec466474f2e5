package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// dataPacket is what NextData returns for one packet.
type dataPacket struct {
	ns    int64
	iface int
	data  string
}

// readEach reads b to the end, with Next when useNext says so for the
// packet's position and NextData otherwise, and returns the packets in
// NextData's form, the final error (io.EOF included) and Stats().Packets.
// slow sends every block through the full parser, without the fast path.
func readEach(b []byte, opts ReaderOptions, slow bool, useNext func(i int) bool) ([]dataPacket, error, int64) {
	r, err := NewReader(bytes.NewReader(b), int64(len(b)), "t", opts)
	if err != nil {
		return nil, err, 0
	}
	defer r.Close()
	r.noFast = slow
	var out []dataPacket
	for i := 0; i < 1<<16; i++ {
		var dp dataPacket
		if useNext(i) {
			p, err := r.Next()
			if err != nil {
				return out, err, r.Stats().Packets
			}
			if p.CaptureLength != len(p.Data) {
				return out, fmt.Errorf("packet %d: caplen %d, %d data bytes", i, p.CaptureLength, len(p.Data)), 0
			}
			dp = dataPacket{p.Timestamp.UnixNano(), p.Interface, string(p.Data)}
		} else {
			ns, ifc, data, err := r.NextData()
			if err != nil {
				return out, err, r.Stats().Packets
			}
			dp = dataPacket{ns, ifc, string(data)}
		}
		out = append(out, dp)
	}
	return out, errors.New("more than 65536 packets"), 0
}

// checkNextData reads b with Next through the full parser only, then with
// the fast path three ways — Next only, NextData only, and the two
// alternating — and fails unless all return the same packets, the same
// final error, and count every packet in Stats.
func checkNextData(t *testing.T, name string, b []byte, opts ReaderOptions) {
	t.Helper()
	want, wantErr, wantN := readEach(b, opts, true, func(int) bool { return true })
	for _, mode := range []struct {
		name string
		next func(int) bool
	}{
		{"Next", func(int) bool { return true }},
		{"NextData", func(int) bool { return false }},
		{"alternating", func(i int) bool { return i%3 == 1 }},
	} {
		got, err, n := readEach(b, opts, false, mode.next)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%s, %s: error %v, the full parser gave %v", name, mode.name, err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("%s, %s: %d packets, the full parser gave %d", name, mode.name, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s, %s: packet %d: %d on %d % x, the full parser gave %d on %d % x", name, mode.name, i,
					got[i].ns, got[i].iface, got[i].data, want[i].ns, want[i].iface, want[i].data)
			}
		}
		if n != int64(len(want)) || n != wantN {
			t.Errorf("%s, %s: Stats().Packets %d after the end, the full parser gave %d, %d packets read", name, mode.name, n, wantN, len(want))
		}
	}
}

// TestNextDataMatchesNext holds Next and NextData, through the fast path
// they share, equal to what Next returns through the full block parser: bufscope traces whole, damaged and cut, with a time window,
// big-endian pcapng, pcap, and every capture of the interop corpus.
func TestNextDataMatchesNext(t *testing.T) {
	pkts := genPackets(400, 2, 61)
	full, frames := traceLayout(t, pkts, 50)
	checkNextData(t, "trace", full, ReaderOptions{})
	checkNextData(t, "trace, copied data", full, ReaderOptions{CopyData: true})
	checkNextData(t, "trace, no seek table", full[:frames[len(frames)-1][1]], ReaderOptions{})
	checkNextData(t, "trace cut in a frame", full[:(frames[5][0]+frames[5][1])/2], ReaderOptions{})
	corrupt := bytes.Clone(full)
	corrupt[(frames[3][0]+frames[3][1])/2] ^= 0x55
	checkNextData(t, "corrupt frame", corrupt, ReaderOptions{Workers: 2})
	checkNextData(t, "time window", full, ReaderOptions{From: pkts[120].ci.Timestamp, To: pkts[260].ci.Timestamp})
	checkNextData(t, "window from", full, ReaderOptions{From: pkts[333].ci.Timestamp})
	checkNextData(t, "window to", full, ReaderOptions{To: pkts[77].ci.Timestamp})
	checkNextData(t, "pcapng, big-endian sections", pcapngMixed, ReaderOptions{})
	pcap := []byte{0x4d, 0x3c, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0xf1, 0x53, 0x65, 0x15, 0xcd, 0x5b, 0x07,
		0x03, 0, 0, 0, 0x03, 0, 0, 0, 0x45, 0, 0}
	checkNextData(t, "pcap", pcap, ReaderOptions{})

	// Timestamps the nanosecond shortcut does not take: past what int64
	// nanoseconds hold, and on interfaces in microseconds and in 2^-9 s.
	odd := appendSHB(nil, "", "", "test", nil)
	for _, res := range []byte{9, 6, 0x89} {
		start := len(odd)
		odd = appendIDB(odd, Interface{LinkType: 1})
		odd[start+20] = res // the if_tsresol value: the only option before the end
	}
	for i, e := range []struct {
		iface uint32
		ts    uint64
	}{{0, 1<<63 + 5}, {0, 1 << 62}, {1, 1_700_000_000_123_456}, {2, 1_700_000_000 << 9}} {
		odd = appendEPB(odd, e.iface, e.ts, 60, []byte{byte(i), 1, 2})
	}
	checkNextData(t, "odd timestamps", odd, ReaderOptions{})
	if got, _, _ := readEach(odd, ReaderOptions{}, false, func(int) bool { return false }); len(got) != 4 || got[1].ns != 1<<62 || got[2].ns != 1_700_000_000_123_456_000 || got[3].ns != 1_700_000_000e9 {
		t.Errorf("odd timestamps: %+v", got)
	}

	dir := filepath.Join("..", "..", "shared", "captures")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*.pcap*"))
	if len(files) == 0 {
		t.Logf("interop corpus %s absent: only the built traces were compared", dir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkNextData(t, filepath.Base(f), b, ReaderOptions{})
	}
}

// TestNextDataOnDamagedPcapng corrupts block headers and bodies of an
// uncompressed pcapng file at random: wherever the fast path declines a
// block, the full parser must see the same damage as when it reads every
// block itself.
func TestNextDataOnDamagedPcapng(t *testing.T) {
	full, _ := traceLayout(t, genPackets(200, 2, 64), 200)
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	plain, err := dec.DecodeAll(full, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkNextData(t, "plain pcapng", plain, ReaderOptions{})
	rng := rand.New(rand.NewPCG(8, 9))
	special := []byte{0, 1, 2, 3, 6, 0x0a, 0x1c, 0x20, 0x40, 0x80, 0xff}
	for i := 0; i < 300; i++ {
		b := bytes.Clone(plain)
		for k := rng.IntN(3); k >= 0; k-- {
			j := rng.IntN(len(b))
			if rng.IntN(2) == 0 {
				b[j] = special[rng.IntN(len(special))]
			} else {
				b[j] ^= byte(1 + rng.IntN(255))
			}
		}
		checkNextData(t, fmt.Sprintf("corruption %d", i), b, ReaderOptions{})
	}
}

// FuzzNextData compares Next and NextData on arbitrary bytes.
func FuzzNextData(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkNextData(t, "fuzz", b, ReaderOptions{Workers: 1, MaxDecoderMemory: 8 << 20})
	})
}

// TestStatsCountsEveryPacket checks that the batched packet count is exact
// at the end, and stays behind by at most one chunk while reading.
func TestStatsCountsEveryPacket(t *testing.T) {
	pkts := genPackets(1000, 2, 63)
	full, frames := traceLayout(t, pkts, 100)
	r, err := NewReader(bytes.NewReader(full), int64(len(full)), "t", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := int64(0)
	for {
		_, _, _, err := r.NextData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if got := r.Stats().Packets; got > n || got < n-100 {
			t.Fatalf("after %d packets Stats().Packets = %d", n, got)
		}
	}
	if got := r.Stats().Packets; got != int64(len(pkts)) || n != int64(len(pkts)) {
		t.Fatalf("Stats().Packets = %d after %d packets, %d written in %d frames", got, n, len(pkts), len(frames))
	}
}
