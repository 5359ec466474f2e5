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

// lineColumns fills the line format from decode's Records and summary. The
// addresses are the outer packet's, as tshark shows them: for a report that
// is the switch and the collector, while the Info column says which flow
// the report is about.
func lineColumns(link layers.LinkType, data []byte, recs []decode.Record) columns {
	c := columns{Info: decode.SummaryOf(recs)}
	p := gopacket.NewPacket(data, link, gopacket.DecodeOptions{NoCopy: true, Lazy: true})
	if nl := p.NetworkLayer(); nl != nil {
		c.Src, c.Dst = nl.NetworkFlow().Src().String(), nl.NetworkFlow().Dst().String()
	} else if ll := p.LinkLayer(); ll != nil {
		c.Src, c.Dst = ll.LinkFlow().Src().String(), ll.LinkFlow().Dst().String()
	}
	for i := range recs {
		if name, ok := protocolNames[recs[i].Source]; ok {
			c.Protocol = name
			return c
		}
	}
	switch {
	case p.Layer(layers.LayerTypeTCP) != nil:
		c.Protocol = "TCP"
	case p.Layer(layers.LayerTypeUDP) != nil:
		c.Protocol = "UDP"
	default:
		// Not IP, or IP without TCP/UDP: name the innermost layer gopacket
		// knows (ARP, ICMPv6, …) and let it describe the packet.
		for _, l := range p.Layers() {
			if t := l.LayerType(); t != gopacket.LayerTypePayload && t != gopacket.LayerTypeDecodeFailure {
				c.Protocol = t.String()
			}
		}
		if len(recs) == 0 {
			c.Info = c.Protocol
		}
	}
	if c.Protocol == "" {
		c.Protocol = "?"
	}
	return c
}
