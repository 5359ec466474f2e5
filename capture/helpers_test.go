package capture

import (
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

type testPacket struct {
	ci   gopacket.CaptureInfo
	data []byte
}

var testIfaces = []Interface{
	{Name: "collector0", Description: "telemetry reports", LinkType: layers.LinkTypeEthernet, SnapLen: 65535},
	{Name: "host1/eth0", Description: "client NIC", LinkType: layers.LinkTypeEthernet, SnapLen: 256},
}

var testEpoch = time.Date(2026, 11, 25, 19, 0, 0, 123456789, time.UTC)

// genPackets makes n packets spread over nIfaces interfaces with
// nanosecond-exact, mostly increasing timestamps and sizes from 1 to 256
// bytes; the content is seeded so failures reproduce.
func genPackets(n, nIfaces int, seed uint64) []testPacket {
	rng := rand.New(rand.NewPCG(seed, 7))
	ts := testEpoch
	out := make([]testPacket, n)
	for i := range out {
		ts = ts.Add(time.Duration(rng.IntN(50000)) * time.Nanosecond)
		size := 1 + rng.IntN(256)
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.IntN(8)) // compressible, like headers
		}
		out[i] = testPacket{
			ci: gopacket.CaptureInfo{Timestamp: ts, CaptureLength: size,
				Length: size + rng.IntN(3)*1000, InterfaceIndex: rng.IntN(nIfaces)},
			data: data,
		}
	}
	return out
}

func writeTrace(t testing.TB, path string, opts WriterOptions, pkts []testPacket) WriterStats {
	t.Helper()
	w, err := Create(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Stats()
}

// readAll returns clones of every packet and the terminal error (nil for a
// clean io.EOF).
func readAll(t testing.TB, r *Reader) ([]Packet, error) {
	t.Helper()
	var out []Packet
	for {
		p, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, p.Clone())
	}
}

func comparePackets(t *testing.T, got []Packet, want []testPacket) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Timestamp.Equal(w.ci.Timestamp) || g.Interface != w.ci.InterfaceIndex ||
			g.CaptureLength != len(w.data) || g.Length != max(w.ci.Length, len(w.data)) || string(g.Data) != string(w.data) {
			t.Fatalf("packet %d: got ts %s if %d caplen %d len %d data %x\nwant ts %s if %d caplen %d len %d data %x",
				i, g.Timestamp.Format(time.RFC3339Nano), g.Interface, g.CaptureLength, g.Length, g.Data,
				w.ci.Timestamp.Format(time.RFC3339Nano), w.ci.InterfaceIndex, len(w.data), w.ci.Length, w.data)
		}
	}
}

func tempTrace(t testing.TB) string {
	return filepath.Join(t.TempDir(), "trace.zst")
}
