package decode

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// tcpSegment builds an IPv4/TCP packet whose header carries opts (padded
// to a multiple of 4 with zeros unless dataOffset overrides the header
// length) followed by payload.
func tcpSegment(opts []byte, dataOffset int, payload int) []byte {
	hdr := 20 + (len(opts)+3)/4*4
	if dataOffset == 0 {
		dataOffset = hdr / 4
	}
	b := make([]byte, 20+hdr+payload)
	b[0], b[9] = 0x45, 6
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	copy(b[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	t := b[20:]
	binary.BigEndian.PutUint16(t, 40000)
	binary.BigEndian.PutUint16(t[2:], 9000)
	binary.BigEndian.PutUint32(t[4:], 0x01020304)
	binary.BigEndian.PutUint32(t[8:], 0xa0b0c0d0)
	t[12] = byte(dataOffset<<4) | 1 // NS
	t[13] = 0x18                    // PSH ACK
	binary.BigEndian.PutUint16(t[14:], 512)
	copy(t[20:], opts)
	return b
}

// bothTCPPaths dissects an IPv4 packet with the header walk and with
// gopacket's layers.TCP and reports both results.
func bothTCPPaths(b []byte) (fast, slow pkt, okFast, okSlow bool) {
	d := NewDecoder(DecoderOptions{})
	okFast = d.dissectIP(b, &fast)
	d.layersTCP = true
	okSlow = d.dissectIP(b, &slow)
	return
}

func samePkt(a, b pkt) bool {
	return a.flow == b.flow && a.dscp == b.dscp && len(a.l4) == len(b.l4) && len(a.l4payload) == len(b.l4payload) &&
		a.l3payload == b.l3payload && a.tcp == b.tcp && a.udp == b.udp && a.seq == b.seq && a.ack == b.ack &&
		a.flags == b.flags && a.window == b.window && a.tcpHdrLen == b.tcpHdrLen && a.tag == b.tag &&
		a.hasTag == b.hasTag && a.tagReason == b.tagReason && a.ifa == b.ifa &&
		a.hasDSACK == b.hasDSACK && a.dsackLeft == b.dsackLeft
}

// TestTCPFastPathMatchesGopacket compares the two TCP paths on headers
// built to hit every rule of the option walk: the tag alone, after NOPs
// and timestamps, after an end-of-list, behind an option whose length
// runs past the header, with a foreign ExID, malformed, behind MPTCP
// options (valid and not), and headers that are cut short or whose data
// offset is too small or too large.
func TestTCPFastPathMatchesGopacket(t *testing.T) {
	tag := RequestTag{Version: TagVersion, Kind: MessageRequest, RPCID: 7, TraceID: 9, MessageLength: 300}.AppendOption(nil)
	badTag := append([]byte(nil), tag...)
	badTag[4] = 0x77                                // version 7
	foreign := []byte{TagOptionKind, 4, 0x12, 0x34} // another experiment's option
	ts := []byte{8, 10, 1, 2, 3, 4, 5, 6, 7, 8}
	mpCapable := []byte{30, 12, 0x01, 0x81, 1, 2, 3, 4, 5, 6, 7, 8}
	mpBadLen := []byte{30, 5, 0x01, 0x81, 0}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name    string
		opts    []byte
		offset  int
		payload int
		hasTag  bool
	}{
		{name: "no options", payload: 10},
		{name: "tag", opts: tag, payload: 100, hasTag: true},
		{name: "nop nop timestamps tag", opts: cat([]byte{1, 1}, ts, tag), payload: 100, hasTag: true},
		{name: "end of list before tag", opts: cat([]byte{0}, tag)},
		{name: "overlong option before tag", opts: cat([]byte{8, 60}, tag)},
		{name: "option of length 1 before tag", opts: cat([]byte{8, 1}, tag)},
		{name: "foreign ExID then ours", opts: cat(foreign, tag), hasTag: true},
		{name: "malformed tag", opts: badTag},
		{name: "tag cut by the header length", opts: tag, offset: 8},
		{name: "MPTCP then tag", opts: cat(mpCapable, tag), hasTag: true},
		{name: "bad MPTCP then tag", opts: cat(mpBadLen, tag)},
		{name: "tag then bad MPTCP", opts: cat(tag, mpBadLen), hasTag: true},
		{name: "data offset 4", offset: 4},
		{name: "data offset past the packet", opts: tag, offset: 15},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := tcpSegment(c.opts, c.offset, c.payload)
			fast, slow, okF, okS := bothTCPPaths(b)
			if okF != okS || !samePkt(fast, slow) {
				t.Fatalf("header walk %v %+v\ngopacket    %v %+v", okF, fast, okS, slow)
			}
			if fast.hasTag != c.hasTag {
				t.Errorf("hasTag %v, want %v (reason %q)", fast.hasTag, c.hasTag, fast.tagReason)
			}
		})
	}
	for n := 0; n < 40; n++ {
		b := tcpSegment(tag, 0, 0)
		t.Run("cut", func(t *testing.T) {
			fast, slow, okF, okS := bothTCPPaths(b[:min(len(b), 20+n)])
			if okF != okS || !samePkt(fast, slow) {
				t.Fatalf("cut to %d: header walk %+v, gopacket %+v", n, fast, slow)
			}
		})
	}
	// Random option areas: kinds drawn mostly from the ones the walk
	// treats specially.
	rng := rand.New(rand.NewPCG(3, 4))
	kinds := []byte{0, 1, 2, 8, 30, TagOptionKind, 99}
	for i := 0; i < 20000; i++ {
		opts := make([]byte, rng.IntN(41))
		for j := 0; j < len(opts); {
			k := kinds[rng.IntN(len(kinds))]
			opts[j] = k
			if j+1 < len(opts) && k > 1 {
				l := rng.IntN(len(opts) - j + 3)
				if k == TagOptionKind && rng.IntN(2) == 0 {
					l = TagOptionLen
					copy(opts[j:], tag[:min(len(tag), len(opts)-j)])
				}
				opts[j+1] = byte(l)
				j += max(2, l)
				continue
			}
			j++
		}
		b := tcpSegment(opts, 0, rng.IntN(3))
		fast, slow, okF, okS := bothTCPPaths(b)
		if okF != okS || !samePkt(fast, slow) {
			t.Fatalf("options % x: header walk %+v, gopacket %+v", opts, fast, slow)
		}
	}
}

func FuzzTCPFastPath(f *testing.F) {
	tag := RequestTag{Version: TagVersion, Kind: MessageResponse, RPCID: 1, TraceID: 2, MessageLength: 3}.AppendOption(nil)
	f.Add(tcpSegment(tag, 0, 10)[20:])
	f.Add(tcpSegment(append([]byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}, tag...), 0, 0)[20:])
	f.Add(tcpSegment([]byte{30, 12, 0x01, 0x81, 1, 2, 3, 4, 5, 6, 7, 8}, 0, 0)[20:])
	// D-SACK below the ACK, then the tag; a D-SACK inside a second block.
	f.Add(tcpSegment(append([]byte{1, 1, 5, 10, 0xa0, 0xb0, 0xbb, 0x78, 0xa0, 0xb0, 0xc0, 0xd0}, tag...), 0, 0)[20:])
	f.Add(tcpSegment([]byte{1, 1, 5, 18, 0xa0, 0xb0, 0xd0, 0, 0xa0, 0xb0, 0xd1, 0, 0xa0, 0xb0, 0xcf, 0, 0xa0, 0xb0, 0xd2, 0}, 0, 0)[20:])
	f.Fuzz(func(t *testing.T, seg []byte) {
		b := tcpSegment(nil, 0, 0)[:20]
		binary.BigEndian.PutUint16(b[2:], uint16(20+len(seg)))
		b = append(b, seg...)
		fast, slow, okF, okS := bothTCPPaths(b)
		if okF != okS || !samePkt(fast, slow) {
			t.Fatalf("segment % x: header walk %+v, gopacket %+v", seg, fast, slow)
		}
	})
}

// TestDSACK decodes SACK options written from RFC 2883's rules. The
// segment's cumulative ACK is 0xa0b0c0d0 (tcpSegment).
func TestDSACK(t *testing.T) {
	cases := []struct {
		name string
		opts []byte
		want bool
		left uint32
	}{
		// NOP NOP | SACK len 10 | [0xa0b0bb78, 0xa0b0c0d0): 1368 bytes just
		// below the cumulative ACK, received twice.
		{"below the ack", []byte{1, 1, 5, 10, 0xa0, 0xb0, 0xbb, 0x78, 0xa0, 0xb0, 0xc0, 0xd0}, true, 0xa0b0bb78},
		// First block [0xa0b0d000, 0xa0b0d100) inside the second
		// [0xa0b0cf00, 0xa0b0d200), both above the ACK: a duplicate of
		// out-of-order data.
		{"inside the second block", []byte{1, 1, 5, 18, 0xa0, 0xb0, 0xd0, 0x00, 0xa0, 0xb0, 0xd1, 0x00, 0xa0, 0xb0, 0xcf, 0x00, 0xa0, 0xb0, 0xd2, 0x00}, true, 0xa0b0d000},
		// An ordinary SACK above the ACK: data after a hole, no duplicate.
		{"plain SACK", []byte{1, 1, 5, 10, 0xa0, 0xb0, 0xc6, 0x28, 0xa0, 0xb0, 0xcb, 0xd0}, false, 0},
		// Two disjoint blocks above the ACK.
		{"two plain blocks", []byte{1, 1, 5, 18, 0xa0, 0xb0, 0xd0, 0x00, 0xa0, 0xb0, 0xd1, 0x00, 0xa0, 0xb0, 0xe0, 0x00, 0xa0, 0xb0, 0xe1, 0x00}, false, 0},
		// An empty block and a truncated one say nothing.
		{"empty block", []byte{1, 1, 5, 10, 0xa0, 0xb0, 0xbb, 0x78, 0xa0, 0xb0, 0xbb, 0x78}, false, 0},
		{"block cut short", []byte{1, 1, 5, 6, 0xa0, 0xb0, 0xbb, 0x78}, false, 0},
		// Across the 32-bit wrap: [0xfffffff0, 0x10) below an ACK of 0x20
		// is checked with ack rewritten below.
	}
	for _, c := range cases {
		fast, slow, _, _ := bothTCPPaths(tcpSegment(c.opts, 0, 0))
		if fast.hasDSACK != c.want || fast.dsackLeft != c.left {
			t.Errorf("%s: D-SACK %v left %#x, want %v %#x", c.name, fast.hasDSACK, fast.dsackLeft, c.want, c.left)
		}
		if !samePkt(fast, slow) {
			t.Errorf("%s: header walk and gopacket disagree: %+v vs %+v", c.name, fast, slow)
		}
	}
	b := tcpSegment([]byte{1, 1, 5, 10, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0x10}, 0, 0)
	binary.BigEndian.PutUint32(b[28:], 0x20)
	if p, _, _, _ := bothTCPPaths(b); !p.hasDSACK || p.dsackLeft != 0xfffffff0 {
		t.Errorf("D-SACK across the sequence wrap: %v %#x", p.hasDSACK, p.dsackLeft)
	}
	// The Record carries it.
	d := NewDecoder(DecoderOptions{})
	recs := d.Records(1, 0, layers.LinkTypeRaw, tcpSegment(cases[0].opts, 0, 0), nil)
	if len(recs) != 1 || !recs[0].HasDSACK || recs[0].DSACKLeft != 0xa0b0bb78 {
		t.Errorf("record: %+v", recs)
	}
}
