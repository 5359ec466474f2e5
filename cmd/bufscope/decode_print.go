package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/gopacket/gopacket"
)

// packetPrinter writes packets in the format decodeOptions asks for. It
// owns no decoding logic: the layers, summaries, trees and JSON come from
// the decode package.
type packetPrinter struct {
	w      io.Writer
	o      *decodeOptions
	src    *capture.Merged
	origin time.Time // time of the first packet printed
	enc    *json.Encoder
}

func newPacketPrinter(w io.Writer, o *decodeOptions, src *capture.Merged) *packetPrinter {
	p := &packetPrinter{w: w, o: o, src: src}
	if o.JSON {
		p.enc = json.NewEncoder(w)
		p.enc.SetEscapeHTML(false)
	}
	return p
}

// jsonPacket is the envelope of one --json line; docs/cli.md documents it.
type jsonPacket struct {
	Number    int     `json:"number"`
	Time      string  `json:"time"`     // RFC 3339 with nanoseconds, UTC
	Relative  float64 `json:"relative"` // seconds since the first packet printed
	File      string  `json:"file"`
	Interface int     `json:"interface"` // index in the merged interface list
	Point     string  `json:"point"`     // capture point (interface name)
	CapLen    int     `json:"caplen"`
	Length    int     `json:"length"` // original length on the wire
	Layers    any     `json:"layers"`
}

func (p *packetPrinter) print(n int, pkt capture.Packet) error {
	if p.origin.IsZero() {
		p.origin = pkt.Timestamp
	}
	rel := pkt.Timestamp.Sub(p.origin).Seconds()
	// Interfaces of merged files are renumbered into one list; an unnamed
	// one (plain pcap, or pcapng without if_name) is shown by file and index.
	ifc := p.src.Interfaces()[pkt.Interface]
	file := p.o.Files[p.src.Source(pkt.Interface)]
	point := ifc.Name
	if point == "" {
		point = fmt.Sprintf("if%d", pkt.Interface)
	}
	gp := gopacket.NewPacket(pkt.Data, ifc.LinkType, gopacket.DecodeOptions{NoCopy: true, Lazy: false})
	if md := gp.Metadata(); md != nil {
		md.Timestamp = pkt.Timestamp
		md.CaptureLength = pkt.CaptureLength
		md.Length = pkt.Length
		md.InterfaceIndex = pkt.Interface
	}
	switch {
	case p.o.JSON:
		return p.enc.Encode(jsonPacket{
			Number: n, Time: pkt.Timestamp.UTC().Format(time.RFC3339Nano), Relative: rel,
			File: file, Interface: pkt.Interface, Point: point,
			CapLen: pkt.CaptureLength, Length: pkt.Length, Layers: packetJSON(gp),
		})
	case p.o.Verbose:
		fmt.Fprintf(p.w, "Packet %d: %s, %.9f s, %s, %d bytes on the wire, %d captured\n",
			n, pkt.Timestamp.UTC().Format(time.RFC3339Nano), rel, point, pkt.Length, pkt.CaptureLength)
		_, err := io.WriteString(p.w, packetTree(gp))
		if err == nil {
			_, err = io.WriteString(p.w, "\n")
		}
		return err
	}
	s := summarize(gp)
	if !p.o.IO.OutTTY {
		_, err := fmt.Fprintf(p.w, "%d\t%.9f\t%s\t%s\t%s\t%s\t%d\t%s\n",
			n, rel, point, s.Src, s.Dst, s.Protocol, pkt.Length, s.Info)
		return err
	}
	_, err := fmt.Fprintf(p.w, "%6d %13.9f %-12s %15s → %-15s %s %5d %s\n",
		n, rel, point, s.Src, s.Dst, colourProto(s.Protocol), pkt.Length, s.Info)
	return err
}

// colourProto pads the protocol column and colours it by family, the way
// Wireshark's default colouring tells reports from traffic at a glance.
func colourProto(proto string) string {
	code := "0"
	switch {
	case strings.HasPrefix(proto, "Telemetry"), proto == "INT", proto == "IFA":
		code = "1;35"
	case proto == "TCP":
		code = "36"
	case proto == "UDP":
		code = "34"
	case strings.HasPrefix(proto, "ICMP"), proto == "ARP":
		code = "33"
	}
	return fmt.Sprintf("\x1b[%sm%-8s\x1b[0m", code, proto)
}
