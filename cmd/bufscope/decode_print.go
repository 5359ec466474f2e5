package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/decode"
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
	dec    *decode.Decoder
	recs   []decode.Record // reused between packets
	outer  *outerHeaders
}

func newPacketPrinter(w io.Writer, o *decodeOptions, src *capture.Merged) *packetPrinter {
	p := &packetPrinter{w: w, o: o, src: src, dec: decode.NewDecoder(o.Decoder.options()), outer: newOuterHeaders()}
	if o.JSON {
		p.enc = json.NewEncoder(w)
		p.enc.SetEscapeHTML(false)
	}
	return p
}

// jsonPacket is one --json line: decode's packet object (docs/decode-json.md)
// with the fields a multi-file, multi-interface listing adds (docs/cli.md).
type jsonPacket struct {
	decode.PacketJSON
	Relative float64 `json:"relative"` // seconds since the first packet printed
	File     string  `json:"file"`     // the input the packet came from
	Point    string  `json:"point"`    // capture point (interface name)
	CapLen   int     `json:"caplen"`   // bytes captured; length is the wire length
}

func (p *packetPrinter) print(n int, pkt capture.Packet) error {
	if p.origin.IsZero() {
		p.origin = pkt.Timestamp
	}
	rel := pkt.Timestamp.Sub(p.origin).Seconds()
	// Interfaces of merged files are renumbered into one list; an unnamed
	// one (pcapng without if_name) is shown by its index.
	ifc := p.src.Interfaces()[pkt.Interface]
	file := p.o.Files[p.src.Source(pkt.Interface)]
	point := ifc.Name
	if point == "" {
		point = fmt.Sprintf("if%d", pkt.Interface)
	}
	if p.o.Verbose {
		fmt.Fprintf(p.w, "Packet %d: %s, %.9f s, %s, %d bytes on the wire, %d captured\n",
			n, pkt.Timestamp.UTC().Format(time.RFC3339Nano), rel, point, pkt.Length, pkt.CaptureLength)
		if err := p.dec.WriteTree(p.w, ifc.LinkType, pkt.Data); err != nil {
			return err
		}
		_, err := io.WriteString(p.w, "\n")
		return err
	}
	p.recs = p.dec.Records(pkt.Timestamp.UnixNano(), pkt.Interface, ifc.LinkType, pkt.Data, p.recs[:0])
	if p.o.JSON {
		return p.enc.Encode(jsonPacket{
			PacketJSON: decode.PacketJSONOf(int64(n), pkt.Timestamp, pkt.Interface, pkt.Length, p.recs),
			Relative:   rel, File: file, Point: point, CapLen: pkt.CaptureLength,
		})
	}
	c := p.outer.lineColumns(ifc.LinkType, pkt.Data, p.recs)
	if !p.o.IO.OutTTY {
		_, err := fmt.Fprintf(p.w, "%d\t%.9f\t%s\t%s\t%s\t%s\t%d\t%s\n",
			n, rel, point, c.Src, c.Dst, c.Protocol, pkt.Length, c.Info)
		return err
	}
	_, err := fmt.Fprintf(p.w, "%6d %13.9f %-12s %15s → %-15s %s %5d %s\n",
		n, rel, point, c.Src, c.Dst, colourProto(c.Protocol), pkt.Length, c.Info)
	return err
}

// colourProto pads the protocol column and colours it by family, the way
// Wireshark's default colouring tells reports from traffic at a glance.
func colourProto(proto string) string {
	code := "0"
	switch {
	case strings.HasPrefix(proto, "TR-"), proto == "INT", proto == "IFA":
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
