package decode

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

// netLinks are the link types whose headers the hand-written path reads;
// the fuzz target picks one by index.
var netLinks = []layers.LinkType{layers.LinkTypeEthernet, layers.LinkTypeRaw, layers.LinkTypeLinuxSLL}

// bothNetPaths dissects a frame with the hand-written Ethernet/VLAN/IP/UDP
// path and with gopacket's layers, and decodes it into Records both ways.
// The TCP header goes through the same walk in both, so only the layers
// below it are compared.
func bothNetPaths(link layers.LinkType, b []byte) (fast, slow pkt, okFast, okSlow bool, recFast, recSlow []Record) {
	df := NewDecoder(DecoderOptions{INTPorts: []uint16{6000}})
	ds := NewDecoder(DecoderOptions{INTPorts: []uint16{6000}})
	ds.layersNet = true
	okFast = df.dissectLink(link, b, &fast)
	okSlow = ds.dissectLink(link, b, &slow)
	recFast = df.Records(7, 1, link, b, nil)
	recSlow = ds.Records(7, 1, link, b, nil)
	return
}

// sameSlice reports whether a and b are the same bytes of the packet, not
// just equal ones: a header walk that slices one byte off would still
// compare equal on zeros.
func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func checkNetPaths(t *testing.T, name string, link layers.LinkType, b []byte) {
	t.Helper()
	fast, slow, okF, okS, rf, rs := bothNetPaths(link, b)
	if okF != okS || !samePkt(fast, slow) || !sameSlice(fast.l4, slow.l4) || !sameSlice(fast.l4payload, slow.l4payload) {
		t.Fatalf("%s: link %v, % x\nby hand  %v %+v\ngopacket %v %+v", name, link, b, okF, fast, okS, slow)
	}
	if len(rf) != len(rs) {
		t.Fatalf("%s: %d Records by hand, %d through gopacket", name, len(rf), len(rs))
	}
	for i := range rf {
		if rf[i] != rs[i] {
			t.Fatalf("%s: Record %d\nby hand  %+v\ngopacket %+v", name, i, rf[i], rs[i])
		}
	}
}

// ipv4Packet builds an IPv4 header with the given IHL (in 32-bit words,
// options area filled from opts) and total-length field, then payload.
func ipv4Packet(ihl int, opts []byte, totalLen int, proto byte, payload []byte) []byte {
	b := make([]byte, max(20, ihl*4))
	b[0] = 0x40 | byte(ihl&0x0f)
	b[1] = 0x17 << 2 // a DSCP the INT check looks at
	binary.BigEndian.PutUint16(b[2:], uint16(totalLen))
	b[8], b[9] = 64, proto
	copy(b[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	copy(b[20:], opts)
	return append(b, payload...)
}

// ipv6Packet builds an IPv6 header with the given payload-length field and
// next header, then payload.
func ipv6Packet(payloadLen int, next byte, payload []byte) []byte {
	b := make([]byte, 40)
	binary.BigEndian.PutUint32(b, 6<<28|0x5c<<20|0x12345) // traffic class 0x5c: DSCP 0x17
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6], b[7] = next, 64
	b[8], b[23] = 0xfd, 1
	b[24], b[39] = 0xfd, 2
	return append(b, payload...)
}

// udpHeaderBytes is a UDP header with the given length field and payload.
func udpHeaderBytes(dst uint16, length int, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b, 5000)
	binary.BigEndian.PutUint16(b[2:], dst)
	binary.BigEndian.PutUint16(b[4:], uint16(length))
	return append(b, payload...)
}

// ethFrame puts an Ethernet header with the given type (and VLAN tags,
// each a TCI and the type that follows it) before payload.
func ethFrame(etype uint16, payload []byte, tags ...[2]uint16) []byte {
	b := make([]byte, 12, 14+4*len(tags)+len(payload))
	b[5], b[11] = 2, 1
	b = binary.BigEndian.AppendUint16(b, etype)
	for _, tg := range tags {
		b = binary.BigEndian.AppendUint16(b, tg[0])
		b = binary.BigEndian.AppendUint16(b, tg[1])
	}
	return append(b, payload...)
}

// netCases are frames built to hit every acceptance rule of the Ethernet,
// 802.1Q, IPv4, IPv6 and UDP decoders, on the link type they use.
func netCases() []struct {
	name string
	link layers.LinkType
	b    []byte
} {
	tag := RequestTag{Version: TagVersion, Kind: MessageRequest, RPCID: 7, TraceID: 9, MessageLength: 300}.AppendOption(nil)
	tcp := tcpSegment(tag, 0, 40)[20:] // a tagged TCP header and 40 payload bytes
	udp := udpHeaderBytes(9000, 8+24, make([]byte, 24))
	ip4tcp := ipv4Packet(5, nil, 20+len(tcp), 6, tcp)
	ip4udp := ipv4Packet(5, nil, 20+len(udp), 17, udp)
	ip6tcp := ipv6Packet(len(tcp), 6, tcp)
	routerAlert := []byte{0x94, 4, 0, 0}
	// A hop-by-hop header with a jumbo payload option, then TCP.
	jumbo := append([]byte{6, 0, 0xc2, 4, 0, 0, 0, 0}, tcp...)
	binary.BigEndian.PutUint32(jumbo[4:], uint32(len(jumbo)))
	// A hop-by-hop header with PadN only, then TCP.
	hbh := append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcp...)
	vlan := func(next uint16) [2]uint16 { return [2]uint16{0x2064, next} }
	raw, eth, sll := layers.LinkTypeRaw, layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL
	type c = struct {
		name string
		link layers.LinkType
		b    []byte
	}
	cases := []c{
		{"ethernet ipv4 tcp", eth, ethFrame(0x0800, ip4tcp)},
		{"ethernet ipv6 tcp", eth, ethFrame(0x86dd, ip6tcp)},
		{"ethernet ipv4 udp", eth, ethFrame(0x0800, ip4udp)},
		{"ethernet with padding after ipv4", eth, ethFrame(0x0800, append(append([]byte(nil), ip4udp...), make([]byte, 18)...))},
		{"ethernet 13 bytes", eth, ethFrame(0x0800, nil)[:13]},
		{"ethernet header only", eth, ethFrame(0x0800, nil)},
		{"802.3 length", eth, ethFrame(46, ip4tcp)},
		{"ethernet arp", eth, ethFrame(0x0806, ip4tcp)},
		{"vlan", eth, ethFrame(0x8100, ip4tcp, vlan(0x0800))},
		{"qinq", eth, ethFrame(0x88a8, ip6tcp, vlan(0x8100), vlan(0x86dd))},
		{"three tags", eth, ethFrame(0x8100, ip4tcp, vlan(0x8100), vlan(0x8100), vlan(0x0800))},
		{"vlan cut short", eth, ethFrame(0x8100, []byte{0x20, 0x64, 0x08})},
		{"vlan with a length", eth, ethFrame(0x8100, ip4tcp, vlan(40))},
		{"linux sll", sll, append(make([]byte, 14), append([]byte{8, 0}, ip4tcp...)...)},
		{"linux sll with vlan", sll, append(make([]byte, 14), append([]byte{0x81, 0, 0x20, 0x64, 8, 0}, ip4tcp...)...)},
		{"ipv4 ihl 4", raw, ipv4Packet(4, nil, 20+len(tcp), 6, tcp)},
		{"ipv4 ihl past the length", raw, ipv4Packet(15, nil, 40, 6, make([]byte, 60))},
		{"ipv4 length 19", raw, ipv4Packet(5, nil, 19, 6, tcp)},
		{"ipv4 length 0 (TSO)", raw, ipv4Packet(5, nil, 0, 6, tcp)},
		{"ipv4 length 0, 19 bytes", raw, ipv4Packet(5, nil, 0, 6, nil)[:19]},
		{"ipv4 longer than captured", raw, ipv4Packet(5, nil, 1500, 6, tcp)},
		{"ipv4 header cut by the capture", raw, ipv4Packet(8, routerAlert, 1500, 6, nil)[:28]},
		{"ipv4 shorter than captured", raw, ipv4Packet(5, nil, 20+len(tcp)-10, 6, tcp)},
		{"ipv4 router alert", raw, ipv4Packet(6, routerAlert, 24+len(tcp), 6, tcp)},
		{"ipv4 nop nop eol", raw, ipv4Packet(6, []byte{1, 1, 0, 0x99}, 24+len(tcp), 6, tcp)},
		{"ipv4 option of length 1", raw, ipv4Packet(6, []byte{0x94, 1, 0, 0}, 24+len(tcp), 6, tcp)},
		{"ipv4 option of length 0", raw, ipv4Packet(6, []byte{0x94, 0, 0, 0}, 24+len(tcp), 6, tcp)},
		{"ipv4 option past the header", raw, ipv4Packet(6, []byte{1, 0x94, 4, 0}, 24+len(tcp), 6, tcp)},
		{"ipv4 option without a length byte", raw, ipv4Packet(6, []byte{1, 1, 1, 0x94}, 24+len(tcp), 6, tcp)},
		{"ipv4 fragment", raw, func() []byte {
			b := ipv4Packet(5, nil, 20+len(tcp), 6, tcp)
			b[6] = 0x20 // more fragments
			return b
		}()},
		{"ipv4 udp length 0", raw, ipv4Packet(5, nil, 20+len(udp), 17, udpHeaderBytes(9000, 0, make([]byte, 24)))},
		{"ipv4 udp length 5", raw, ipv4Packet(5, nil, 20+len(udp), 17, udpHeaderBytes(9000, 5, make([]byte, 24)))},
		{"ipv4 udp length past the packet", raw, ipv4Packet(5, nil, 20+len(udp), 17, udpHeaderBytes(9000, 200, make([]byte, 24)))},
		{"ipv4 udp length inside the packet", raw, ipv4Packet(5, nil, 20+len(udp), 17, udpHeaderBytes(9000, 12, make([]byte, 24)))},
		{"ipv4 udp 7 bytes", raw, ipv4Packet(5, nil, 27, 17, udp[:7])},
		{"ipv4 report port", raw, ipv4Packet(5, nil, 20+8+4, 17, udpHeaderBytes(DefaultReportPort, 12, []byte{0x20, 0, 0, 0}))},
		{"ipv4 ifa", raw, ipv4Packet(5, nil, 20+4+len(tcp), 131, append([]byte{0x20, 6, 0, 0}, tcp...))},
		{"ipv6 39 bytes", raw, ipv6Packet(len(tcp), 6, tcp)[:39]},
		{"ipv6 length 0", raw, ipv6Packet(0, 6, tcp)},
		{"ipv6 longer than captured", raw, ipv6Packet(1400, 6, tcp)},
		{"ipv6 with a trailer", raw, append(ipv6Packet(len(tcp), 6, tcp), 1, 2, 3, 4)},
		{"ipv6 udp", raw, ipv6Packet(len(udp), 17, udp)},
		{"ipv6 hop-by-hop", raw, ipv6Packet(len(hbh), 0, hbh)},
		{"ipv6 jumbogram", raw, ipv6Packet(0, 0, jumbo)},
		{"ipv6 hop-by-hop cut short", raw, ipv6Packet(len(hbh), 0, hbh[:5])},
		{"version 5", raw, func() []byte { b := ipv4Packet(5, nil, 20+len(tcp), 6, tcp); b[0] = 0x55; return b }()},
		{"empty", raw, nil},
	}
	for n := 0; n <= len(ip4tcp); n += 3 {
		cases = append(cases, c{"ipv4 cut", eth, ethFrame(0x0800, ip4tcp[:n])})
	}
	for n := 0; n <= len(ip6tcp); n += 3 {
		cases = append(cases, c{"ipv6 cut", raw, ip6tcp[:n]})
	}
	return cases
}

// TestNetFastPathMatchesGopacket holds the hand-written Ethernet, 802.1Q,
// IPv4, IPv6 and UDP decoding equal to gopacket's DecodeFromBytes on
// frames built to hit each acceptance rule, then on random corruptions of
// them.
func TestNetFastPathMatchesGopacket(t *testing.T) {
	cases := netCases()
	for _, c := range cases {
		checkNetPaths(t, c.name, c.link, c.b)
	}
	// Corrupt the header bytes: bytes set to the values the rules test
	// (lengths near their limits, the VLAN and IP type codes) as well as
	// random ones, and random cuts.
	rng := rand.New(rand.NewPCG(5, 6))
	special := []byte{0, 1, 2, 4, 5, 6, 8, 0x11, 0x14, 0x40, 0x45, 0x46, 0x4f, 0x60, 0x81, 0x86, 0x88, 0xa8, 0xdd, 0xff}
	for i := 0; i < 30000; i++ {
		c := cases[rng.IntN(len(cases))]
		b := append([]byte(nil), c.b...)
		for k := rng.IntN(4); k >= 0 && len(b) > 0; k-- {
			j := rng.IntN(min(len(b), 80))
			if rng.IntN(2) == 0 {
				b[j] = special[rng.IntN(len(special))]
			} else {
				b[j] = byte(rng.Uint32())
			}
		}
		if rng.IntN(4) == 0 && len(b) > 0 {
			b = b[:rng.IntN(len(b))]
		}
		checkNetPaths(t, c.name+" corrupted", c.link, b)
	}
}

// TestNetFastPathNoAlloc pins that the hand-written path allocates
// nothing, for IPv4 with options, VLAN-tagged IPv6 and UDP.
func TestNetFastPathNoAlloc(t *testing.T) {
	for _, c := range netCases() {
		switch c.name {
		case "ipv4 router alert", "qinq", "ethernet ipv4 udp", "ipv6 udp":
		default:
			continue
		}
		d := NewDecoder(DecoderOptions{})
		dst := d.Records(0, 0, c.link, c.b, make([]Record, 0, 16))
		if len(dst) != 1 || !dst[0].HasFlow {
			t.Fatalf("%s: records %+v", c.name, dst)
		}
		if n := testing.AllocsPerRun(200, func() { dst = d.Records(0, 0, c.link, c.b, dst[:0]) }); n != 0 {
			t.Errorf("%s: %v allocations per packet", c.name, n)
		}
	}
}

func FuzzNetFastPath(f *testing.F) {
	for _, c := range netCases() {
		for l, lt := range netLinks {
			if lt == c.link {
				f.Add(uint8(l), c.b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, link uint8, b []byte) {
		checkNetPaths(t, "fuzz", netLinks[int(link)%len(netLinks)], b)
	})
}
