package capture

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// Byte vectors below are written from the pcap and pcapng specifications
// (draft-ietf-opsawg-pcap, draft-ietf-opsawg-pcapng), field by field.

func TestWriterBlocks(t *testing.T) {
	// EPB, little-endian: type 6, length 40, interface 1,
	// timestamp 1700000000123456789 ns = 0x17979cfe_3d85cd15 (high, low),
	// captured 5, original 60, "abcde" padded to 8, length 40.
	// 0000  06 00 00 00 28 00 00 00 01 00 00 00 fe 9c 97 17
	// 0010  15 cd 85 3d 05 00 00 00 3c 00 00 00 61 62 63 64
	// 0020  65 00 00 00 28 00 00 00
	wantEPB := []byte{
		0x06, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xfe, 0x9c, 0x97, 0x17,
		0x15, 0xcd, 0x85, 0x3d, 0x05, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x61, 0x62, 0x63, 0x64,
		0x65, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00,
	}
	if got := appendEPB(nil, 1, 1700000000123456789, 60, []byte("abcde")); !bytes.Equal(got, wantEPB) {
		t.Errorf("EPB\n got % x\nwant % x", got, wantEPB)
	}

	// IDB: type 1, length 40, link type 1, reserved, snap length 65535,
	// if_name "eth0", if_tsresol 9, opt_endofopt, length 40.
	// 0000  01 00 00 00 28 00 00 00 01 00 00 00 ff ff 00 00
	// 0010  02 00 04 00 65 74 68 30 09 00 01 00 09 00 00 00
	// 0020  00 00 00 00 28 00 00 00
	wantIDB := []byte{
		0x01, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00,
		0x02, 0x00, 0x04, 0x00, 0x65, 0x74, 0x68, 0x30, 0x09, 0x00, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00,
	}
	if got := appendIDB(nil, Interface{Name: "eth0", LinkType: layers.LinkTypeEthernet, SnapLen: 65535}); !bytes.Equal(got, wantIDB) {
		t.Errorf("IDB\n got % x\nwant % x", got, wantIDB)
	}

	// SHB: byte-order magic, version 1.0, section length -1, shb_hardware
	// "x86", shb_os "Linux 6", shb_userappl "bufscope t", opt_comment
	// "bufscope-topology:{}", opt_endofopt; length 92.
	// 0000  0a 0d 0d 0a 5c 00 00 00 4d 3c 2b 1a 01 00 00 00
	// 0010  ff ff ff ff ff ff ff ff 02 00 03 00 78 38 36 00
	// 0020  03 00 07 00 4c 69 6e 75 78 20 36 00 04 00 0a 00
	// 0030  62 75 66 73 63 6f 70 65 20 74 00 00 01 00 14 00
	// 0040  62 75 66 73 63 6f 70 65 2d 74 6f 70 6f 6c 6f 67
	// 0050  79 3a 7b 7d 00 00 00 00 5c 00 00 00
	wantSHB := []byte{
		0x0a, 0x0d, 0x0d, 0x0a, 0x5c, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00, 0x00,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x03, 0x00, 0x78, 0x38, 0x36, 0x00,
		0x03, 0x00, 0x07, 0x00, 0x4c, 0x69, 0x6e, 0x75, 0x78, 0x20, 0x36, 0x00, 0x04, 0x00, 0x0a, 0x00,
		0x62, 0x75, 0x66, 0x73, 0x63, 0x6f, 0x70, 0x65, 0x20, 0x74, 0x00, 0x00, 0x01, 0x00, 0x14, 0x00,
		0x62, 0x75, 0x66, 0x73, 0x63, 0x6f, 0x70, 0x65, 0x2d, 0x74, 0x6f, 0x70, 0x6f, 0x6c, 0x6f, 0x67,
		0x79, 0x3a, 0x7b, 0x7d, 0x00, 0x00, 0x00, 0x00, 0x5c, 0x00, 0x00, 0x00,
	}
	if got := appendSHB(nil, "x86", "Linux 6", "bufscope t", []byte("{}")); !bytes.Equal(got, wantSHB) {
		t.Errorf("SHB\n got % x\nwant % x", got, wantSHB)
	}

	// Read them back: SHB, the IDB twice (two capture points that happen to
	// look alike), and the EPB, which names interface 1.
	file := append(append(append(append([]byte(nil), wantSHB...), wantIDB...), wantIDB...), wantEPB...)
	pkts, r := readVector(t, "w.pcapng", file)
	want := []Packet{{Timestamp: time.Unix(0, 1700000000123456789), Interface: 1, CaptureLength: 5, Length: 60, Data: []byte("abcde")}}
	comparePacketStructs(t, pkts, want)
	if string(r.Topology()) != "{}" || len(r.Interfaces()) != 2 {
		t.Errorf("topology %q, interfaces %+v", r.Topology(), r.Interfaces())
	}
}

func readVector(t *testing.T, name string, b []byte) ([]Packet, *Reader) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b), int64(len(b)), name, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	pkts, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	return pkts, r
}

func comparePacketStructs(t *testing.T, got, want []Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d:\n%s", len(got), len(want), dumpPackets(got))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.Timestamp.Equal(w.Timestamp) || g.Interface != w.Interface || g.CaptureLength != w.CaptureLength ||
			g.Length != w.Length || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("packet %d:\n got %+v (%s)\nwant %+v (%s)", i, g, g.Timestamp.UTC().Format(time.RFC3339Nano), w, w.Timestamp.UTC().Format(time.RFC3339Nano))
		}
	}
}

func dumpPackets(ps []Packet) string {
	var b bytes.Buffer
	for _, p := range ps {
		fmt.Fprintf(&b, "%+v\n", p)
	}
	return b.String()
}

func TestPcapBigEndianMicro(t *testing.T) {
	// Header: magic a1b2c3d4 (big-endian, µs), version 2.4, thiszone 0,
	// sigfigs 0, snaplen 96, link type 1.
	// Record 1: 1700000000.123456, captured 4, original 60, de ad be ef.
	// Record 2: 1700000001.999999, captured 2, original 2, 01 02.
	// 0000  a1 b2 c3 d4 00 02 00 04 00 00 00 00 00 00 00 00
	// 0010  00 00 00 60 00 00 00 01 65 53 f1 00 00 01 e2 40
	// 0020  00 00 00 04 00 00 00 3c de ad be ef 65 53 f1 01
	// 0030  00 0f 42 3f 00 00 00 02 00 00 00 02 01 02
	b := []byte{
		0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x01, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x01, 0xe2, 0x40,
		0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x3c, 0xde, 0xad, 0xbe, 0xef, 0x65, 0x53, 0xf1, 0x01,
		0x00, 0x0f, 0x42, 0x3f, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02,
	}
	pkts, r := readVector(t, "dir/be.pcap", b)
	comparePacketStructs(t, pkts, []Packet{
		{Timestamp: time.Unix(1700000000, 123456000), CaptureLength: 4, Length: 60, Data: []byte{0xde, 0xad, 0xbe, 0xef}},
		{Timestamp: time.Unix(1700000001, 999999000), CaptureLength: 2, Length: 2, Data: []byte{1, 2}},
	})
	if f := r.Format(); f != "pcap (µs, big-endian)" {
		t.Errorf("Format = %q", f)
	}
	if want := []Interface{{Name: "be.pcap", LinkType: layers.LinkTypeEthernet, SnapLen: 96}}; !reflect.DeepEqual(r.Interfaces(), want) {
		t.Errorf("Interfaces = %+v, want %+v", r.Interfaces(), want)
	}
}

func TestPcapLittleEndianNano(t *testing.T) {
	// Header: magic a1b23c4d written little-endian (ns), version 2.4,
	// snaplen 65535, link type 101 (raw IP).
	// Record: 1700000000 s + 123456789 ns, captured 3, original 3, 45 00 00.
	// 0000  4d 3c b2 a1 02 00 04 00 00 00 00 00 00 00 00 00
	// 0010  ff ff 00 00 65 00 00 00 00 f1 53 65 15 cd 5b 07
	// 0020  03 00 00 00 03 00 00 00 45 00 00
	b := []byte{
		0x4d, 0x3c, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xff, 0xff, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00, 0x00, 0xf1, 0x53, 0x65, 0x15, 0xcd, 0x5b, 0x07,
		0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00,
	}
	pkts, r := readVector(t, "ns.pcap", b)
	comparePacketStructs(t, pkts, []Packet{
		{Timestamp: time.Unix(1700000000, 123456789), CaptureLength: 3, Length: 3, Data: []byte{0x45, 0, 0}},
	})
	if f := r.Format(); f != "pcap (ns, little-endian)" {
		t.Errorf("Format = %q", f)
	}
	if ifc := r.Interfaces()[0]; ifc.LinkType != layers.LinkTypeRaw || ifc.SnapLen != 65535 {
		t.Errorf("interface %+v", ifc)
	}
	// Every truncation of the vector must end in an error, never a panic,
	// and return only the complete record.
	for cut := 0; cut < len(b); cut++ {
		r, err := NewReader(bytes.NewReader(b[:cut]), int64(cut), "ns.pcap", ReaderOptions{})
		if err == nil {
			var got []Packet
			got, err = readAll(t, r)
			r.Close()
			if len(got) != 0 {
				t.Errorf("cut at %d: %d packets from an incomplete record", cut, len(got))
			}
		}
		if (err == nil) != (cut == 24) { // a bare header is an empty capture
			t.Errorf("cut at %d: error %v", cut, err)
		}
	}
}

// pcapngMixed is two sections: a big-endian one with an IDB using
// if_tsresol 2^-10 and if_tsoffset 100 s, then an EPB, an SPB, a custom
// block to skip and an obsolete Packet Block; then a little-endian one whose
// IDB has no if_tsresol (µs) and no opt_endofopt, and an EPB.
var pcapngMixed = []byte{
	// SHB big-endian, shb_userappl "vec"
	// 0000  0a 0d 0d 0a 00 00 00 28 1a 2b 3c 4d 00 01 00 00
	// 0010  ff ff ff ff ff ff ff ff 00 04 00 03 76 65 63 00
	// 0020  00 00 00 00 00 00 00 28
	0x0a, 0x0d, 0x0d, 0x0a, 0x00, 0x00, 0x00, 0x28, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x01, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x04, 0x00, 0x03, 0x76, 0x65, 0x63, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28,
	// IDB: Ethernet, snaplen 0, if_name "be0", if_tsresol 0x8a, if_tsoffset 100
	// 0000  00 00 00 01 00 00 00 34 00 01 00 00 00 00 00 00
	// 0010  00 02 00 03 62 65 30 00 00 09 00 01 8a 00 00 00
	// 0020  00 0e 00 08 00 00 00 00 00 00 00 64 00 00 00 00
	// 0030  00 00 00 34
	0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x34, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x02, 0x00, 0x03, 0x62, 0x65, 0x30, 0x00, 0x00, 0x09, 0x00, 0x01, 0x8a, 0x00, 0x00, 0x00,
	0x00, 0x0e, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x34,
	// EPB: interface 0, units 1700000000*1024+512, captured 3, original 1500
	// 0000  00 00 00 06 00 00 00 24 00 00 00 00 00 00 01 95
	// 0010  4f c4 02 00 00 00 00 03 00 00 05 dc aa bb cc 00
	// 0020  00 00 00 24
	0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x95,
	0x4f, 0xc4, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x05, 0xdc, 0xaa, 0xbb, 0xcc, 0x00,
	0x00, 0x00, 0x00, 0x24,
	// SPB: original length 2, 11 22 padded
	// 0000  00 00 00 03 00 00 00 14 00 00 00 02 11 22 00 00
	// 0010  00 00 00 14
	0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x02, 0x11, 0x22, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x14,
	// custom block 0x00000BAD, PEN 32473, "skip"
	// 0000  00 00 0b ad 00 00 00 14 00 00 7e d9 73 6b 69 70
	// 0010  00 00 00 14
	0x00, 0x00, 0x0b, 0xad, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x7e, 0xd9, 0x73, 0x6b, 0x69, 0x70,
	0x00, 0x00, 0x00, 0x14,
	// OPB: interface 0, drops 0, units 1700000000*1024+1, captured 1, original 1
	// 0000  00 00 00 02 00 00 00 24 00 00 00 00 00 00 01 95
	// 0010  4f c4 00 01 00 00 00 01 00 00 00 01 99 00 00 00
	// 0020  00 00 00 24
	0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x95,
	0x4f, 0xc4, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x99, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x24,
	// SHB little-endian, no options
	// 0000  0a 0d 0d 0a 1c 00 00 00 4d 3c 2b 1a 01 00 00 00
	// 0010  ff ff ff ff ff ff ff ff 1c 00 00 00
	0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1c, 0x00, 0x00, 0x00,
	// IDB: raw IP (101), snaplen 64, if_name "le0"
	// 0000  01 00 00 00 1c 00 00 00 65 00 00 00 40 00 00 00
	// 0010  02 00 03 00 6c 65 30 00 1c 00 00 00
	0x01, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x03, 0x00, 0x6c, 0x65, 0x30, 0x00, 0x1c, 0x00, 0x00, 0x00,
	// EPB: interface 0, 1700000002000001 µs, captured 1, original 1, 60
	// 0000  06 00 00 00 24 00 00 00 00 00 00 00 24 0a 06 00
	// 0010  81 c4 3c 18 01 00 00 00 01 00 00 00 60 00 00 00
	// 0020  24 00 00 00
	0x06, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x24, 0x0a, 0x06, 0x00,
	0x81, 0xc4, 0x3c, 0x18, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00,
	0x24, 0x00, 0x00, 0x00,
}

var pcapngMixedPackets = []Packet{
	// 2^-10 s units: 512/1024 s = 0.5 s, plus if_tsoffset 100 s.
	{Timestamp: time.Unix(1700000100, 500000000), Interface: 0, CaptureLength: 3, Length: 1500, Data: []byte{0xaa, 0xbb, 0xcc}},
	// SPB: no timestamp; captured length is min(original, block space).
	{Interface: 0, CaptureLength: 2, Length: 2, Data: []byte{0x11, 0x22}},
	// 1/1024 s = 976562.5 ns, truncated.
	{Timestamp: time.Unix(1700000100, 976562), Interface: 0, CaptureLength: 1, Length: 1, Data: []byte{0x99}},
	{Timestamp: time.Unix(1700000002, 1000), Interface: 1, CaptureLength: 1, Length: 1, Data: []byte{0x60}},
}

func TestPcapngSectionsAndBlocks(t *testing.T) {
	pkts, r := readVector(t, "mixed.pcapng", pcapngMixed)
	comparePacketStructs(t, pkts, pcapngMixedPackets)
	want := []Interface{
		{Name: "be0", LinkType: layers.LinkTypeEthernet},
		{Name: "le0", LinkType: layers.LinkTypeRaw, SnapLen: 64},
	}
	if !reflect.DeepEqual(r.Interfaces(), want) {
		t.Errorf("Interfaces = %+v, want %+v", r.Interfaces(), want)
	}
	if r.Format() != "pcapng" || r.Topology() != nil {
		t.Errorf("Format %q, Topology %q", r.Format(), r.Topology())
	}
}

// TestTruncatedVectors cuts the pcapng vector at every byte: no panic, only
// complete blocks' packets, and an error whenever the cut is inside a block.
func TestTruncatedVectors(t *testing.T) {
	ends := map[int]int{} // block end offset -> packets complete there
	for off, n := 0, 0; off < len(pcapngMixed); {
		l := blockLenAt(pcapngMixed, off)
		off += l
		switch off {
		case 0x28 + 0x34 + 0x24, 0x28 + 0x34 + 0x24 + 0x14, 0x28 + 0x34 + 0x24 + 0x14 + 0x14 + 0x24, len(pcapngMixed):
			n++
		}
		ends[off] = n
	}
	for cut := 1; cut < len(pcapngMixed); cut++ {
		r, err := NewReader(bytes.NewReader(pcapngMixed[:cut]), int64(cut), "m", ReaderOptions{})
		var got []Packet
		if err == nil {
			got, err = readAll(t, r)
			r.Close()
		}
		n, atEnd := ends[cut]
		if !atEnd {
			n = 0
			for e, k := range ends {
				if e < cut && k > n {
					n = k
				}
			}
		}
		if len(got) != n {
			t.Errorf("cut at %d: %d packets, want %d", cut, len(got), n)
		}
		if (err == nil) != atEnd {
			t.Errorf("cut at %d: error %v", cut, err)
		}
	}
}

func blockLenAt(b []byte, off int) int {
	// The first section is big-endian, the second little-endian.
	if off < 0x28+0x34+0x24+0x14+0x14+0x24 {
		return int(b[off+4])<<24 | int(b[off+5])<<16 | int(b[off+6])<<8 | int(b[off+7])
	}
	return int(b[off+4]) | int(b[off+5])<<8 | int(b[off+6])<<16 | int(b[off+7])<<24
}
