package capture

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/klauspost/compress/zstd"
)

// plainPcapng returns the uncompressed pcapng of a trace of pkts.
func plainPcapng(t *testing.T, pkts []testPacket) []byte {
	t.Helper()
	full, _ := traceLayout(t, pkts, len(pkts))
	r, err := NewReader(bytes.NewReader(full), int64(len(full)), "t", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var plain []byte
	for _, f := range r.frames {
		out, err := r.dec.DecodeAll(full[f.off:f.off+f.clen], nil)
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, out...)
	}
	return plain
}

// compressPieces compresses b as independent zstd frames of piece bytes
// each, cut without regard to pcap/pcapng records (as `zstd -T` or pzstd
// do).
func compressPieces(t *testing.T, b []byte, piece int) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var out []byte
	for len(b) > 0 {
		n := min(piece, len(b))
		out = enc.EncodeAll(b[:n], out)
		b = b[n:]
	}
	return out
}

// compressStream compresses b as one streamed frame without a content
// size, which the reader decompresses piece by piece.
func compressStream(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	enc, err := zstd.NewWriter(&out, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestPlainZstdOfPcapng(t *testing.T) {
	pkts := genPackets(20000, 2, 71)
	plain := plainPcapng(t, pkts)
	if len(plain) < 2*chunkSize {
		t.Fatalf("%d bytes: the streamed case needs several read chunks", len(plain))
	}
	streamed := compressStream(t, plain)
	if f, err := scanFrame(bytes.NewReader(streamed), int64(len(streamed)), 0); err != nil || f.dlen != -1 || f.clen != int64(len(streamed)) {
		t.Fatalf("streamed frame: %+v, %v; want one frame of unknown size", f, err)
	}
	for name, z := range map[string][]byte{
		"frames cut mid-record": compressPieces(t, plain, 777),
		"one streamed frame":    streamed,
	} {
		r, err := NewReader(bytes.NewReader(z), int64(len(z)), "p.zst", ReaderOptions{Workers: 2})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Format() != "zstd pcapng" {
			t.Errorf("%s: Format %q", name, r.Format())
		}
		got, err := readAll(t, r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		comparePackets(t, got, pkts)
	}
}

// A streamed frame cut in the middle gives the packets decompressed before
// the cut (a prefix), then an error naming the frame.
func TestTruncatedStreamedFrame(t *testing.T) {
	pkts := genPackets(20000, 2, 73)
	z := compressStream(t, plainPcapng(t, pkts))
	got, err := readBytes(t, z[:len(z)/2], ReaderOptions{})
	if len(got) == 0 || len(got) >= len(pkts) {
		t.Fatalf("%d packets from half a streamed frame", len(got))
	}
	comparePacketsNoFatal(t, "streamed prefix", got, pkts[:len(got)])
	var de *DamageError
	if !errors.As(err, &de) || de.Frames[0].Offset != 0 || de.Frames[0].Frame != 0 {
		t.Fatalf("error %v, want frame 0 at offset 0 damaged", err)
	}
}

func TestPlainZstdOfPcap(t *testing.T) {
	pkts := genPackets(3000, 1, 72)
	var buf bytes.Buffer
	w := pcapgo.NewWriterNanos(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		ci := p.ci
		ci.CaptureLength = len(p.data)
		ci.Length = max(ci.Length, len(p.data))
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	z := compressPieces(t, buf.Bytes(), 1000)
	r, err := NewReader(bytes.NewReader(z), int64(len(z)), "p.pcap.zst", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Format() != "zstd pcap (ns, little-endian)" {
		t.Errorf("Format %q", r.Format())
	}
	got, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	comparePackets(t, got, pkts)
}
