package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

const benchPackets = 100000

// benchTraffic is collector-like traffic: Ethernet/IPv4/TCP headers of a
// few dozen flows with advancing sequence numbers and timestamps, captured
// with a 128-byte snap length, and one packet in eight a UDP telemetry
// report with varying queue fields. Payload bytes are random, so the ratio
// is not flattered by repetition.
func benchTraffic() []testPacket {
	rng := rand.New(rand.NewPCG(99, 1))
	out := make([]testPacket, benchPackets)
	ts := testEpoch
	seq := make([]uint32, 64)
	for i := range out {
		ts = ts.Add(time.Duration(2000+rng.IntN(4000)) * time.Nanosecond)
		flow := rng.IntN(len(seq))
		var b []byte
		if i%8 == 7 {
			b = make([]byte, 14+20+8+48)
			b[12], b[13] = 0x08, 0x00
			b[14] = 0x45
			b[23] = 17
			binary.BigEndian.PutUint16(b[36:], 32766)
			binary.BigEndian.PutUint32(b[42:], uint32(ts.UnixNano()))
			binary.BigEndian.PutUint32(b[50:], uint32(rng.IntN(1<<20)))
		} else {
			n := 66 + rng.IntN(62)
			b = make([]byte, n)
			b[12], b[13] = 0x08, 0x00
			b[14] = 0x45
			b[23] = 6
			binary.BigEndian.PutUint16(b[34:], uint16(40000+flow))
			binary.BigEndian.PutUint16(b[36:], 8080)
			seq[flow] += uint32(1448)
			binary.BigEndian.PutUint32(b[38:], seq[flow])
			for j := 66; j < n; j++ {
				b[j] = byte(rng.Uint32())
			}
		}
		copy(b[0:6], []byte{2, 0, 0, 0, 0, byte(flow)})
		copy(b[6:12], []byte{2, 0, 0, 0, 1, byte(flow)})
		out[i] = testPacket{ci: gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(b), Length: len(b) + rng.IntN(1400), InterfaceIndex: i % 2}, data: b}
	}
	return out
}

func trafficBytes(p []testPacket) int64 {
	var n int64
	for _, x := range p {
		n += int64(len(x.data))
	}
	return n
}

func reportRates(b *testing.B, pkts int) {
	b.ReportMetric(float64(pkts)*float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

func BenchmarkWrite(b *testing.B) {
	pkts := benchTraffic()
	b.Run("container", func(b *testing.B) { benchWrite(b, pkts, WriterOptions{Interfaces: testIfaces}) })
	b.Run("container-wireshark", func(b *testing.B) {
		benchWrite(b, pkts, WriterOptions{Interfaces: testIfaces, WiresharkReadable: true})
	})
	b.Run("pcapgo-ngwriter", func(b *testing.B) {
		b.SetBytes(trafficBytes(pkts))
		for b.Loop() {
			w, err := pcapgo.NewNgWriterInterface(io.Discard, pcapgo.NgInterface{Name: "a", LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}, pcapgo.DefaultNgWriterOptions)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.AddInterface(pcapgo.NgInterface{Name: "b", LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}); err != nil {
				b.Fatal(err)
			}
			for _, p := range pkts {
				if err := w.WritePacket(p.ci, p.data); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		reportRates(b, len(pkts))
	})
}

// benchFiles writes the traffic once as a bufscope trace and as the plain
// pcapng it decompresses to.
func benchFiles(b *testing.B) (trace, plain string) {
	dir := b.TempDir()
	trace, plain = filepath.Join(dir, "t.zst"), filepath.Join(dir, "t.pcapng")
	writeTrace(b, trace, WriterOptions{Interfaces: testIfaces}, benchTraffic())
	r, err := Open(trace, ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var all []byte
	raw, _ := os.ReadFile(trace)
	for _, f := range r.frames {
		out, err := r.dec.DecodeAll(raw[f.off:f.off+f.clen], nil)
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, out...)
	}
	r.Close()
	if err := os.WriteFile(plain, all, 0o600); err != nil {
		b.Fatal(err)
	}
	return trace, plain
}

func BenchmarkRead(b *testing.B) {
	trace, plain := benchFiles(b)
	pktBytes := trafficBytes(benchTraffic())
	readFile := func(b *testing.B, path string, workers int, nextData bool) {
		b.SetBytes(pktBytes)
		for b.Loop() {
			r, err := Open(path, ReaderOptions{Workers: workers})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				var err error
				if nextData {
					_, _, _, err = r.NextData()
				} else {
					_, err = r.Next()
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			r.Close()
			if n != benchPackets {
				b.Fatalf("%d packets", n)
			}
		}
		reportRates(b, benchPackets)
	}
	b.Run("container/workers=1", func(b *testing.B) { readFile(b, trace, 1, false) })
	b.Run("container/workers=2", func(b *testing.B) { readFile(b, trace, 2, false) })
	b.Run("plain-pcapng", func(b *testing.B) { readFile(b, plain, 1, false) })
	b.Run("plain-pcapng/NextData", func(b *testing.B) { readFile(b, plain, 1, true) })
	b.Run("pcapgo-ngreader", func(b *testing.B) {
		raw, err := os.ReadFile(plain)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(pktBytes)
		for b.Loop() {
			r, err := pcapgo.NewNgReader(bytes.NewReader(raw), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				_, _, err := r.ZeroCopyReadPacketData()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != benchPackets {
				b.Fatalf("%d packets", n)
			}
		}
		reportRates(b, benchPackets)
	})
	// zstd -d of the same file, decompression only (no packet parsing): the
	// ceiling a streaming reader could reach.
	b.Run("zstd-cli-decompress", func(b *testing.B) {
		zstdBin, err := exec.LookPath("zstd")
		if err != nil {
			b.Skip("zstd not installed")
		}
		b.SetBytes(pktBytes)
		for b.Loop() {
			if out, err := exec.Command(zstdBin, "-q", "-d", "-c", trace, "-o", os.DevNull).CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
		reportRates(b, benchPackets)
	})
}

func benchWrite(b *testing.B, pkts []testPacket, opts WriterOptions) {
	b.SetBytes(trafficBytes(pkts))
	var st WriterStats
	for b.Loop() {
		w, err := NewWriter(discard{}, opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range pkts {
			if err := w.WritePacket(p.ci, p.data); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		st = w.Stats()
	}
	reportRates(b, len(pkts))
	b.ReportMetric(st.Ratio(), "ratio")
}
