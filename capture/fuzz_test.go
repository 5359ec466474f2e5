package capture

import (
	"bytes"
	"testing"
)

// fuzzSeeds are small inputs of every format the reader knows.
func fuzzSeeds(f *testing.F) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Interfaces: testIfaces, Topology: []byte(`{"n":1}`)})
	if err != nil {
		f.Fatal(err)
	}
	for i, p := range genPackets(12, 2, 31) {
		if err := w.WritePacket(p.ci, p.data[:min(len(p.data), 24)]); err != nil {
			f.Fatal(err)
		}
		if i%4 == 3 {
			w.Flush()
		}
	}
	noTable := bytes.Clone(buf.Bytes())
	if err := w.Close(); err != nil {
		f.Fatal(err)
	}
	trace := buf.Bytes()
	f.Add(trace)
	f.Add(noTable)
	f.Add(trace[:len(trace)/2])
	f.Add(pcapngMixed)
	f.Add(pcapngMixed[:100])
	f.Add([]byte{0x4d, 0x3c, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0, 0, 0x65, 0, 0, 0, 0, 0xf1, 0x53, 0x65, 0x15, 0xcd, 0x5b, 0x07,
		0x03, 0, 0, 0, 0x03, 0, 0, 0, 0x45, 0, 0})
}

// FuzzOpen feeds arbitrary bytes to the reader: it must never panic, never
// hand out a packet whose fields disagree, and always end.
func FuzzOpen(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b), int64(len(b)), "fuzz", ReaderOptions{Workers: 1, MaxDecoderMemory: 8 << 20})
		if err != nil {
			return
		}
		defer r.Close()
		_ = r.Format()
		for i := 0; i < 1<<16; i++ {
			p, err := r.Next()
			if err != nil {
				return
			}
			if p.CaptureLength != len(p.Data) || p.Interface < 0 || p.Interface >= len(r.Interfaces()) {
				t.Fatalf("packet %d: caplen %d, %d data bytes, interface %d of %d", i, p.CaptureLength, len(p.Data), p.Interface, len(r.Interfaces()))
			}
		}
		t.Fatal("more than 65536 packets from a fuzz input")
	})
}

// FuzzScanFrame checks the zstd frame walker on arbitrary bytes: the extent
// it reports stays inside the input and makes progress.
func FuzzScanFrame(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for off := int64(0); off < int64(len(b)); {
			fr, err := scanFrame(bytes.NewReader(b), int64(len(b)), off)
			if err != nil {
				return
			}
			if fr.clen <= 0 || off+fr.clen > int64(len(b)) {
				t.Fatalf("frame at %d: length %d in %d bytes", off, fr.clen, len(b))
			}
			off += fr.clen
		}
	})
}

// FuzzIndex checks the time-index parser.
func FuzzIndex(f *testing.F) {
	f.Add(appendIndexFrame(nil, []frameTimes{{1, 2, 3}, {4, 5, 6}}), 2)
	f.Add(appendIndexFrame(nil, nil), 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		idx, err := parseIndexFrame(b, n)
		if err == nil && len(idx) != n {
			t.Fatalf("%d entries for %d frames", len(idx), n)
		}
		if err != nil {
			return
		}
		// Reserved fields are ignored on reading and written as zero.
		want := bytes.Clone(b)
		for i := range idx {
			copy(want[indexHeaderLen+i*indexEntrySize+20:], []byte{0, 0, 0, 0})
		}
		if !bytes.Equal(appendIndexFrame(nil, idx), want) {
			t.Fatal("index does not serialise back to its bytes")
		}
	})
}
