package decode

import (
	"encoding/binary"

	"github.com/gopacket/gopacket/layers"
)

// The IPv4, IPv6 and UDP headers of nearly every captured packet are read
// here by hand rather than through gopacket's DecodeFromBytes: those store
// a dozen slices into the Decoder's layer structs per packet, and each
// pointer store into a heap object pays a GC write barrier while a
// collection runs, which in a long analysis is often. Each function
// accepts and rejects exactly what its gopacket counterpart does (the
// comments name the rule they follow) and fills p the same way, so
// Records do not change; TestNetFastPathMatchesGopacket and
// FuzzNetFastPath hold the two paths equal. They only read b.

// ip4Header dissects an IPv4 header as layers.IPv4.DecodeFromBytes
// followed by Decoder.ip4Layers would.
func ip4Header(b []byte, p *pkt) (layers.IPProtocol, bool) {
	if len(b) < 20 {
		return 0, false
	}
	ihl := int(b[0]&0x0f) * 4
	length := int(binary.BigEndian.Uint16(b[2:]))
	stored := length // what gopacket keeps in IPv4.Length
	if length == 0 {
		// TSO: the packet is as long as the bytes captured; gopacket
		// clamps the field it keeps but checks the real length.
		length = len(b)
		stored = min(length, 0xFFFF)
	}
	if length < 20 || ihl < 20 || ihl > length {
		return 0, false
	}
	if len(b) > length {
		b = b[:length] // Ethernet padding or a trailer
	} else if ihl > len(b) {
		return 0, false // the header itself is cut short
	}
	// The option walk only decides whether the header is accepted: an
	// option must fit, and count its own two bytes.
	for opts := b[20:ihl]; len(opts) > 0; {
		switch opts[0] {
		case 0: // end of options
			opts = nil
		case 1: // no-op
			opts = opts[1:]
		default:
			if len(opts) < 2 || int(opts[1]) > len(opts) || opts[1] < 2 {
				return 0, false
			}
			opts = opts[opts[1]:]
		}
	}
	p.flow.IPVersion = 4
	copy(p.flow.Src[:4], b[12:16])
	copy(p.flow.Dst[:4], b[16:20])
	p.dscp = b[1] >> 2
	p.l4 = b[ihl:]
	p.l3payload = stored - ihl
	return layers.IPProtocol(b[9]), true
}

// ip6Header dissects an IPv6 header without a hop-by-hop header as
// layers.IPv6.DecodeFromBytes followed by Decoder.ip6Layers would; the
// caller sends hop-by-hop headers to gopacket.
func ip6Header(b []byte, p *pkt) (layers.IPProtocol, bool) {
	if len(b) < 40 {
		return 0, false
	}
	length := int(binary.BigEndian.Uint16(b[4:]))
	if length == 0 {
		return 0, false // a jumbogram needs a hop-by-hop header
	}
	payload := b[40:]
	if length < len(payload) {
		payload = payload[:length]
	}
	p.flow.IPVersion = 6
	copy(p.flow.Src[:], b[8:24])
	copy(p.flow.Dst[:], b[24:40])
	p.dscp = uint8(binary.BigEndian.Uint16(b)>>4) >> 2
	p.l4 = payload
	p.l3payload = length
	return layers.IPProtocol(b[6]), true
}

// udpHeader reads the UDP header at p.l4 as layers.UDP.DecodeFromBytes
// followed by Decoder.udpLayers would. A header gopacket rejects (shorter
// than 8 bytes, or a length field of 1 to 7) leaves a flow without ports.
func udpHeader(p *pkt) {
	b := p.l4
	if len(b) < 8 {
		return
	}
	ulen := int(binary.BigEndian.Uint16(b[4:]))
	switch {
	case ulen >= 8:
		p.l4payload = b[8:min(ulen, len(b))]
	case ulen == 0: // jumbogram: the rest of the packet
		p.l4payload = b[8:]
	default:
		return
	}
	p.udp = true
	p.flow.SrcPort, p.flow.DstPort = binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	if n := ulen - 8; n >= 0 && n <= p.l3payload {
		p.l3payload = n + 8
	}
	p.l3payload -= 8
}
