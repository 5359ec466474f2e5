package main

import (
	"fmt"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

type summary struct{ Src, Dst, Protocol, Info string }

func summarize(p gopacket.Packet) summary {
	var s summary
	if nl := p.NetworkLayer(); nl != nil {
		f := nl.NetworkFlow()
		s.Src, s.Dst = f.Src().String(), f.Dst().String()
	} else if ll := p.LinkLayer(); ll != nil {
		f := ll.LinkFlow()
		s.Src, s.Dst = f.Src().String(), f.Dst().String()
	}
	for _, l := range p.Layers() {
		switch l.LayerType() {
		case gopacket.LayerTypePayload, gopacket.LayerTypeDecodeFailure:
			continue
		}
		s.Protocol = l.LayerType().String()
	}
	switch {
	case p.Layer(layers.LayerTypeTCP) != nil && s.Protocol == "TCP":
		t := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		var fl []string
		for _, f := range []struct {
			on   bool
			name string
		}{{t.SYN, "SYN"}, {t.FIN, "FIN"}, {t.RST, "RST"}, {t.PSH, "PSH"}, {t.ACK, "ACK"}, {t.URG, "URG"}} {
			if f.on {
				fl = append(fl, f.name)
			}
		}
		s.Info = fmt.Sprintf("%d → %d [%s] Seq=%d Ack=%d Win=%d Len=%d",
			t.SrcPort, t.DstPort, strings.Join(fl, ", "), t.Seq, t.Ack, t.Window, len(t.Payload))
	case p.Layer(layers.LayerTypeUDP) != nil:
		u := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		s.Info = fmt.Sprintf("%d → %d Len=%d", u.SrcPort, u.DstPort, int(u.Length)-8)
	}
	if el := p.ErrorLayer(); el != nil {
		s.Info = strings.TrimSpace(s.Info + " [malformed: " + el.Error().Error() + "]")
	}
	return s
}

func packetTree(p gopacket.Packet) string {
	var b strings.Builder
	for _, l := range p.Layers() {
		b.WriteString(gopacket.LayerString(l))
		b.WriteByte('\n')
	}
	return b.String()
}

func packetJSON(p gopacket.Packet) any {
	var out []map[string]any
	for _, l := range p.Layers() {
		out = append(out, map[string]any{"type": l.LayerType().String()})
	}
	return out
}
