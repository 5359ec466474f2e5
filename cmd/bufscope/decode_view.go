package main

import (
	"github.com/bufscope/bufscope/decode"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// columns are the fields of one summary line.
type columns struct{ Src, Dst, Protocol, Info string }

// protocolNames are the protocol column for packets whose Records come from
// telemetry, named like the specifications.
var protocolNames = map[decode.Source]string{
	decode.SourceINT:      "INT",
	decode.SourceIFA:      "IFA",
	decode.SourceReportV2: "TR-2.0",
	decode.SourceReportV1: "TR-1.0",
	decode.SourceReportV0: "TR-0.5",
}

// outerHeaders reads the outer addresses (IP, or MAC for other frames such
// as ARP, as tshark shows them) and the innermost header gopacket knows,
// for the address and protocol columns. It reuses its layers, so a
// line costs no allocation here; not safe for concurrent use.
type outerHeaders struct {
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	ip4     layers.IPv4
	ip6     layers.IPv6
	arp     layers.ARP
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	gre     layers.GRE
	byLink  map[gopacket.LayerType]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newOuterHeaders() *outerHeaders {
	h := &outerHeaders{byLink: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}}
	for _, first := range []gopacket.LayerType{layers.LayerTypeEthernet, layers.LayerTypeIPv4, layers.LayerTypeIPv6} {
		p := gopacket.NewDecodingLayerParser(first, &h.eth, &h.dot1q, &h.ip4, &h.ip6, &h.arp, &h.tcp, &h.udp, &h.icmp4, &h.icmp6, &h.gre)
		// Telemetry and unknown payloads end the walk; that is expected.
		p.IgnoreUnsupported = true
		h.byLink[first] = p
	}
	return h
}

// lineColumns fills the line format from decode's Records and summary. The
// addresses are the outer packet's, as tshark shows them: for a report that
// is the switch and the collector, while the Info column says which flow
// the report is about.
func (h *outerHeaders) lineColumns(link layers.LinkType, data []byte, recs []decode.Record) columns {
	c := columns{Info: decode.SummaryOf(recs)}
	first := layers.LayerTypeEthernet
	if link != layers.LinkTypeEthernet {
		first = layers.LayerTypeIPv4
		if len(data) > 0 && data[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
	}
	h.decoded = h.decoded[:0]
	_ = h.byLink[first].DecodeLayers(data, &h.decoded) // a truncated header just ends the walk
	innermost := gopacket.LayerTypeZero
	for _, t := range h.decoded {
		switch t {
		case layers.LayerTypeEthernet:
			c.Src, c.Dst = h.eth.SrcMAC.String(), h.eth.DstMAC.String()
		case layers.LayerTypeIPv4:
			c.Src, c.Dst = h.ip4.SrcIP.String(), h.ip4.DstIP.String()
		case layers.LayerTypeIPv6:
			c.Src, c.Dst = h.ip6.SrcIP.String(), h.ip6.DstIP.String()
		}
		innermost = t
	}
	for i := range recs {
		if name, ok := protocolNames[recs[i].Source]; ok {
			c.Protocol = name
			return c
		}
	}
	switch innermost {
	case gopacket.LayerTypeZero:
		c.Protocol = "?"
	case layers.LayerTypeTCP, layers.LayerTypeUDP:
		c.Protocol = innermost.String()
	default:
		// Not TCP or UDP (ARP, ICMP, …): name the innermost header, which
		// is also all decode can say about it.
		c.Protocol = innermost.String()
		if len(recs) == 0 {
			c.Info = c.Protocol
		}
	}
	return c
}
