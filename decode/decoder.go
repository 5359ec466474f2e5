package decode

import (
	"encoding/binary"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// DefaultReportPorts are the UDP destination ports on which Decoder expects
// Telemetry Reports when DecoderOptions.ReportPorts is nil: 32766 (bufscope,
// fabric-tna/SD-Fabric), 5900 (AmLight int_collector), 1234 and 54321
// (INTCollector benchmarks), 556 and 3933 (CableLabs draft v2.0: INT and drop
// reports).
var DefaultReportPorts = []uint16{DefaultReportPort, 5900, 1234, 54321, 556, 3933}

// DefaultINTDSCPs are the DSCP values that mark INT over TCP/UDP when
// DecoderOptions.INTDSCPs is nil: 0x17 (the INT specification's example,
// AmLight) and 0x20 (GEANT and the scapy INT implementation). A marked
// packet whose payload does not start with an INT shim is treated as
// ordinary traffic, so a real CS4 (0x20) flow is not misread.
var DefaultINTDSCPs = []uint8{0x17, 0x20}

// DecoderOptions configures which packets Decoder treats as telemetry. The
// zero value selects the defaults.
type DecoderOptions struct {
	// ReportPorts are UDP destination ports carrying Telemetry Reports.
	// nil selects DefaultReportPorts; an empty non-nil slice disables
	// report decoding.
	ReportPorts []uint16
	// INTPorts are UDP destination ports that signal INT over UDP (the
	// specification's INT_TBD). None by default: there is no assigned port.
	INTPorts []uint16
	// INTDSCPs are the DSCP values that signal INT over TCP/UDP. nil selects
	// DefaultINTDSCPs; an empty non-nil slice disables DSCP signalling.
	INTDSCPs []uint8
	// IFAProtocol is the IP protocol number of IFA; 0 selects 131.
	IFAProtocol uint8
	// TagExID is the RFC 6994 ExID of the request tag; 0 selects TagExID.
	TagExID uint16
}

// Decoder turns captured packets into Records. It keeps one set of layer
// structs and reuses them for every packet, so decoding allocates nothing
// once its internal slices have grown; the price is that a Decoder is not
// safe for concurrent use. Use one Decoder per goroutine.
type Decoder struct {
	reportPorts [1024]uint64 // bitset over 65536 ports
	intPorts    [1024]uint64
	intDSCP     uint64 // bitset over 64 DSCPs
	ifaProto    layers.IPProtocol
	exid        uint16

	eth   layers.Ethernet
	vlan  layers.Dot1Q
	ip4   layers.IPv4
	ip6   layers.IPv6
	tcp   layers.TCP
	udp   layers.UDP
	rep2  TelemetryReportV2
	rep1  TelemetryReportV1
	rep05 TelemetryReportV05
	intl  INT
	ifa   IFA

	// layersTCP makes dissectTCP fill d.tcp through gopacket (the tree
	// renderer prints it).
	layersTCP bool
	// layersNet makes dissectLink and dissectIP go through gopacket's
	// Ethernet, Dot1Q, IPv4, IPv6 and UDP layers, which leaves the headers
	// in d.eth, d.vlan, d.ip4, d.ip6 and d.udp (the tree renderer prints
	// them). Otherwise those headers are read by hand (netfast.go).
	layersNet bool
}

// NewDecoder returns a Decoder configured by opts.
func NewDecoder(opts DecoderOptions) *Decoder {
	d := &Decoder{ifaProto: IPProtocolIFA, exid: TagExID}
	ports := opts.ReportPorts
	if ports == nil {
		ports = DefaultReportPorts
	}
	for _, p := range ports {
		d.reportPorts[p>>6] |= 1 << (p & 63)
	}
	for _, p := range opts.INTPorts {
		d.intPorts[p>>6] |= 1 << (p & 63)
	}
	dscps := opts.INTDSCPs
	if dscps == nil {
		dscps = DefaultINTDSCPs
	}
	for _, v := range dscps {
		d.intDSCP |= 1 << (v & 63)
	}
	if opts.IFAProtocol != 0 {
		d.ifaProto = layers.IPProtocol(opts.IFAProtocol)
	}
	if opts.TagExID != 0 {
		d.exid = opts.TagExID
	}
	return d
}

func (d *Decoder) isReportPort(p uint16) bool { return d.reportPorts[p>>6]&(1<<(p&63)) != 0 }
func (d *Decoder) isINTPort(p uint16) bool    { return d.intPorts[p>>6]&(1<<(p&63)) != 0 }

// pkt is what dissect learns about one IP packet.
type pkt struct {
	flow      Flow
	dscp      uint8
	l4        []byte // transport header and what follows
	l4payload []byte // after the transport header
	l3payload int    // IP payload bytes by the IP length fields
	tcp       bool
	udp       bool
	seq, ack  uint32
	flags     uint16
	window    uint16
	hasDSACK  bool
	dsackLeft uint32
	tcpHdrLen int
	tag       RequestTag
	hasTag    bool
	tagReason string
	ifa       bool
}

const reasonTagMalformed = "request tag option with our ExID is malformed (length, version or message kind)"

// Records decodes one captured packet and appends its Records to dst: one
// RecordPacket for a TCP/UDP data packet, plus one Record per INT or IFA hop
// it carries; or, for a Telemetry Report, one Record per individual report
// and per hop in the INT stack of its inner packet. Packets that are not IP,
// or whose IP header is cut short, add nothing.
//
// ts is the capture time in ns since the Unix epoch, iface the capture
// interface, link the capture's link type (Ethernet, raw IP). data is read,
// never retained: the appended Records own no memory. It allocates nothing
// when dst has room for the Records.
func (d *Decoder) Records(ts int64, iface int, link layers.LinkType, data []byte, dst []Record) []Record {
	var p pkt
	if !d.dissectLink(link, data, &p) {
		return dst
	}
	if p.udp && d.isReportPort(p.flow.DstPort) {
		base := Record{Time: ts, Interface: iface}
		return d.reportRecords(&base, p.l4payload, dst)
	}
	return d.dataRecords(ts, iface, &p, dst)
}

// dissectLink strips the link layer and dissects the IP packet.
func (d *Decoder) dissectLink(link layers.LinkType, data []byte, p *pkt) bool {
	switch link {
	case layers.LinkTypeEthernet:
		return d.dissectEthernet(data, p)
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		return d.dissectIP(data, p)
	case layers.LinkTypeLinuxSLL:
		if len(data) < 16 {
			return false
		}
		return d.dissectEtherType(layers.EthernetType(binary.BigEndian.Uint16(data[14:])), data[16:], p)
	}
	return false
}

func (d *Decoder) dissectEthernet(data []byte, p *pkt) bool {
	if d.layersNet {
		if d.eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback) != nil {
			return false
		}
		return d.dissectEtherType(d.eth.EthernetType, d.eth.Payload, p)
	}
	if len(data) < 14 {
		return false
	}
	// gopacket turns a type below 0x600 (an 802.3 length) into LLC; either
	// way it is not IP, so the raw value serves.
	return d.dissectEtherType(layers.EthernetType(binary.BigEndian.Uint16(data[12:])), data[14:], p)
}

func (d *Decoder) dissectEtherType(et layers.EthernetType, b []byte, p *pkt) bool {
	for i := 0; i < 2 && (et == layers.EthernetTypeDot1Q || et == layers.EthernetTypeQinQ); i++ {
		if d.layersNet {
			if d.vlan.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
				return false
			}
			et, b = d.vlan.Type, d.vlan.Payload
			continue
		}
		// A tag whose type is an 802.3 length ends the walk below as not
		// IP, so the length gopacket trims the payload to never matters.
		if len(b) < 4 {
			return false
		}
		et, b = layers.EthernetType(binary.BigEndian.Uint16(b[2:])), b[4:]
	}
	switch et {
	case layers.EthernetTypeIPv4, layers.EthernetTypeIPv6:
		return d.dissectIP(b, p)
	}
	return false
}

// dissectIP fills p from an IPv4 or IPv6 packet and its TCP/UDP header.
func (d *Decoder) dissectIP(b []byte, p *pkt) bool {
	if len(b) == 0 {
		return false
	}
	var proto layers.IPProtocol
	var ok bool
	switch b[0] >> 4 {
	case 4:
		if d.layersNet {
			proto, ok = d.ip4Layers(b, p)
		} else {
			proto, ok = ip4Header(b, p)
		}
	case 6:
		// A hop-by-hop header (next header 0) brings jumbograms and
		// option rules that are left to gopacket.
		if d.layersNet || len(b) >= 40 && b[6] == byte(layers.IPProtocolIPv6HopByHop) {
			proto, ok = d.ip6Layers(b, p)
		} else {
			proto, ok = ip6Header(b, p)
		}
	}
	if !ok {
		return false
	}
	if p.l3payload < 0 || p.l3payload > 0xFFFF {
		p.l3payload = len(p.l4)
	}
	if proto == d.ifaProto && len(p.l4) >= 4 {
		// IFA sits between IP and the transport header.
		if d.ifa.DecodeFromBytes(p.l4, gopacket.NilDecodeFeedback) == nil {
			p.ifa = true
			proto = d.ifa.NextHdr
			p.l4 = d.ifa.Payload
			p.l3payload -= 4
		}
	}
	p.flow.Proto = uint8(proto)
	switch proto {
	case layers.IPProtocolTCP:
		return d.dissectTCP(p)
	case layers.IPProtocolUDP:
		if d.layersNet {
			d.udpLayers(p)
		} else {
			udpHeader(p)
		}
	}
	return true
}

// ip4Layers is ip4Header through gopacket's layers.IPv4 (left in d.ip4).
func (d *Decoder) ip4Layers(b []byte, p *pkt) (layers.IPProtocol, bool) {
	if d.ip4.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
		return 0, false
	}
	p.flow.IPVersion = 4
	copy(p.flow.Src[:4], d.ip4.SrcIP.To4())
	copy(p.flow.Dst[:4], d.ip4.DstIP.To4())
	p.dscp = d.ip4.TOS >> 2
	p.l4 = d.ip4.Payload
	p.l3payload = int(d.ip4.Length) - int(d.ip4.IHL)*4
	return d.ip4.Protocol, true
}

// ip6Layers is ip6Header through gopacket's layers.IPv6 (left in d.ip6),
// hop-by-hop header included.
func (d *Decoder) ip6Layers(b []byte, p *pkt) (layers.IPProtocol, bool) {
	if d.ip6.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
		return 0, false
	}
	p.flow.IPVersion = 6
	copy(p.flow.Src[:], d.ip6.SrcIP.To16())
	copy(p.flow.Dst[:], d.ip6.DstIP.To16())
	p.dscp = d.ip6.TrafficClass >> 2
	proto := d.ip6.NextHeader
	p.l4 = d.ip6.Payload
	p.l3payload = int(d.ip6.Length)
	if d.ip6.HopByHop != nil {
		proto = d.ip6.HopByHop.NextHeader
		p.l3payload -= len(d.ip6.HopByHop.Contents)
	}
	return proto, true
}

// udpLayers is udpHeader through gopacket's layers.UDP (left in d.udp).
func (d *Decoder) udpLayers(p *pkt) {
	if d.udp.DecodeFromBytes(p.l4, gopacket.NilDecodeFeedback) != nil {
		return // flow without ports
	}
	p.udp = true
	p.flow.SrcPort, p.flow.DstPort = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
	p.l4payload = d.udp.Payload
	if n := int(d.udp.Length) - 8; n >= 0 && n <= p.l3payload {
		p.l3payload = n + 8
	}
	p.l3payload -= 8
}

// dissectTCP reads the TCP header and looks for the request tag among its
// options. It reads the header itself rather than through layers.TCP:
// gopacket builds a TCPOption (with slices, hence GC write barriers) per
// option, which was half the cost of decoding a tagged segment. The walk
// follows layers.TCP.DecodeFromBytes rule for rule (which headers are
// rejected, where the option walk stops) so that Records do not change;
// an MPTCP option before the tag, whose subtype rules decide where
// gopacket stops, is left to gopacket itself, as is every packet the
// tree renderer prints (it reads d.tcp afterwards).
// TestTCPFastPathMatchesGopacket and FuzzTCPFastPath hold the two
// paths equal.
func (d *Decoder) dissectTCP(p *pkt) bool {
	if d.layersTCP {
		return d.dissectTCPLayers(p)
	}
	b := p.l4
	if len(b) < 20 {
		return true // flow without ports, as when gopacket rejects it
	}
	hdr := int(b[12]>>4) * 4
	if hdr < 20 || hdr > len(b) {
		return true
	}
	var tag RequestTag
	hasTag, bad := false, false
	var dsackLeft uint32
	hasDSACK := false
	ack := binary.BigEndian.Uint32(b[8:])
	opts := b[20:hdr]
walk:
	for len(opts) > 0 {
		switch opts[0] {
		case byte(layers.TCPOptionKindEndList):
			break walk
		case byte(layers.TCPOptionKindNop):
			opts = opts[1:]
			continue
		case byte(layers.TCPOptionKindMultipathTCP):
			return d.dissectTCPLayers(p)
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			break
		}
		n := int(opts[1])
		switch {
		case opts[0] == TagOptionKind && n >= 4 && !hasTag && !bad && binary.BigEndian.Uint16(opts[2:]) == d.exid:
			tag, hasTag = parseTagData(opts[2:n])
			bad = !hasTag
		case opts[0] == byte(layers.TCPOptionKindSACK) && !hasDSACK:
			dsackLeft, hasDSACK = dsack(opts[2:n], ack)
		}
		opts = opts[n:]
	}
	p.tcp = true
	p.flow.SrcPort, p.flow.DstPort = binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
	p.seq, p.ack, p.window = binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint16(b[14:])
	p.tcpHdrLen = hdr
	p.l4payload = b[hdr:]
	p.l3payload -= hdr
	p.flags = uint16(b[12]&1)<<8 | uint16(b[13])
	p.dsackLeft, p.hasDSACK = dsackLeft, hasDSACK
	if hasTag {
		p.tag, p.hasTag = tag, true
	} else if bad {
		p.tagReason = reasonTagMalformed
	}
	return true
}

// dsack reads a SACK option's blocks (the data after kind and length) and
// says whether the first one reports a duplicate (RFC 2883 §4): it lies
// below the cumulative ACK, or inside the second block. It returns the
// duplicate's left edge.
func dsack(blocks []byte, ack uint32) (uint32, bool) {
	if len(blocks) < 8 {
		return 0, false
	}
	left, right := binary.BigEndian.Uint32(blocks), binary.BigEndian.Uint32(blocks[4:])
	if int32(right-left) <= 0 {
		return 0, false
	}
	if int32(ack-right) >= 0 {
		return left, true
	}
	if len(blocks) >= 16 {
		l2, r2 := binary.BigEndian.Uint32(blocks[8:]), binary.BigEndian.Uint32(blocks[12:])
		if int32(left-l2) >= 0 && int32(r2-right) >= 0 {
			return left, true
		}
	}
	return 0, false
}

// dissectTCPLayers is dissectTCP through gopacket's layers.TCP, which
// leaves the decoded header in d.tcp.
func (d *Decoder) dissectTCPLayers(p *pkt) bool {
	if d.tcp.DecodeFromBytes(p.l4, gopacket.NilDecodeFeedback) != nil {
		return true
	}
	t := &d.tcp
	p.tcp = true
	p.flow.SrcPort, p.flow.DstPort = uint16(t.SrcPort), uint16(t.DstPort)
	p.seq, p.ack, p.window = t.Seq, t.Ack, t.Window
	p.tcpHdrLen = int(t.DataOffset) * 4
	p.l4payload = t.Payload
	p.l3payload -= p.tcpHdrLen
	// The record's flag bits are the header's own (NS + 8 flags), so take
	// them from the wire instead of reassembling gopacket's booleans.
	p.flags = uint16(t.Contents[12]&1)<<8 | uint16(t.Contents[13])
	tagSeen := false
	for i := range t.Options {
		o := &t.Options[i]
		if o.OptionType == layers.TCPOptionKindSACK && !p.hasDSACK {
			p.dsackLeft, p.hasDSACK = dsack(o.OptionData, t.Ack)
			continue
		}
		if tagSeen || o.OptionType != TagOptionKind || len(o.OptionData) < 2 ||
			binary.BigEndian.Uint16(o.OptionData) != d.exid {
			continue
		}
		tagSeen = true
		if tag, ok := parseTagData(o.OptionData); ok {
			p.tag, p.hasTag = tag, true
		} else {
			p.tagReason = reasonTagMalformed
		}
	}
	return true
}

// parseTagData decodes the 26 option-data bytes after kind and length,
// without allocating; the ExID has been checked by the caller.
func parseTagData(b []byte) (RequestTag, bool) {
	if len(b) != TagOptionLen-2 {
		return RequestTag{}, false
	}
	t := RequestTag{
		Version: b[2] >> 4, Kind: MessageKind(b[2] & 0x0f), Flags: b[3],
		RPCID:         binary.BigEndian.Uint64(b[4:]),
		TraceID:       binary.BigEndian.Uint64(b[12:]),
		MessageLength: binary.BigEndian.Uint32(b[20:]),
	}
	ok := t.Version == TagVersion && (t.Kind == MessageRequest || t.Kind == MessageResponse)
	return t, ok
}

// fillPacket copies what p knows about the packet into r.
func fillPacket(r *Record, p *pkt) {
	if p.flow.IPVersion == 0 {
		return
	}
	r.HasFlow = true
	r.Flow = p.flow
	r.DSCP = p.dscp
	if p.l3payload > 0 {
		r.PayloadLen = uint32(p.l3payload)
	}
	if p.tcp {
		r.TCPSeq, r.TCPAck, r.TCPFlags, r.Window = p.seq, p.ack, p.flags, p.window
		r.HasDSACK, r.DSACKLeft = p.hasDSACK, p.dsackLeft
	}
	if p.hasTag {
		r.HasTag, r.Tag = true, p.tag
	}
	if p.tagReason != "" {
		r.Reason = p.tagReason
	}
}

// wantsINT reports whether the packet is signalled as carrying INT.
func (d *Decoder) wantsINT(p *pkt) bool {
	if !p.tcp && !p.udp {
		return false
	}
	if d.isINTPort(p.flow.DstPort) {
		return true // UDP per the spec; TCP too, as some sources do
	}
	return d.intDSCP&(1<<(p.dscp&63)) != 0
}

// dataRecords emits the packet record and the records of any INT or IFA
// stack it carries.
func (d *Decoder) dataRecords(ts int64, iface int, p *pkt, dst []Record) []Record {
	// The packet's Record is written in place: it is most Records, and
	// building it aside and copying it in wrote its 256 bytes twice.
	pi := len(dst)
	if pi < cap(dst) {
		dst = dst[:pi+1]
	} else {
		dst = append(dst, Record{})
	}
	r := &dst[pi]
	*r = Record{Time: ts, Interface: iface, Kind: RecordPacket, Source: SourceCapture}
	fillPacket(r, p)
	if p.ifa {
		base := Record{Time: ts, Interface: iface}
		dst = d.ifaRecords(&base, p, dst)
	}
	if d.wantsINT(p) && looksLikeINT(p.l4payload) {
		base := Record{Time: ts, Interface: iface}
		dst = d.intRecords(&base, p, SourceINT, dst)
		if d.intl.Reason == "" {
			// The INT block is not part of the application's byte stream.
			if n := uint32(len(d.intl.Contents)); dst[pi].PayloadLen >= n {
				dst[pi].PayloadLen -= n
			}
		}
	}
	return dst
}

// intRecords decodes the INT block at p.l4payload and emits one Record per
// hop (or one opaque Record).
func (d *Decoder) intRecords(base *Record, p *pkt, src Source, dst []Record) []Record {
	err := d.intl.DecodeFromBytes(p.l4payload, gopacket.NilDecodeFeedback)
	if err != nil || d.intl.Reason != "" {
		r := *base
		r.Kind, r.Source = RecordOpaque, src
		fillPacket(&r, p)
		r.Reason = d.intl.Reason
		if err != nil {
			r.Reason = "INT block truncated: shim Length runs past the end of the packet"
		}
		return append(dst, r)
	}
	n := &d.intl
	// Fill the fields every hop shares once, then copy that template into
	// each hop's slot: a Record is 256 bytes, and copies are most of the cost.
	tmpl := *base
	tmpl.Kind, tmpl.Source = RecordHop, SourceINT
	fillPacket(&tmpl, p)
	tmpl.Reason = ""
	tmpl.Hops = uint8(len(n.Hops))
	hasNode := n.Instructions&INTNodeID != 0
	bufOcc := n.Instructions&INTBufferOcc != 0 && n.Instructions&INTQueueOcc == 0
	for i := range n.Hops {
		h := &n.Hops[i]
		dst = append(dst, tmpl)
		r := &dst[len(dst)-1]
		r.Hop = uint8(i)
		r.HasNode, r.Node = hasNode, h.NodeID
		r.IngressPort, r.EgressPort = uint32(h.L1IngressPort), uint32(h.L1EgressPort)
		r.Latency = h.HopLatency
		r.QueueID, r.Occupancy = h.QueueID, h.QueueOccupancy
		if bufOcc {
			r.Occupancy = h.BufferOccupancy
		}
		r.IngressTS, r.EgressTS = h.IngressTS, h.EgressTS
	}
	return dst
}

func (d *Decoder) ifaRecords(base *Record, p *pkt, dst []Record) []Record {
	f := &d.ifa
	if f.Reason != "" {
		r := *base
		r.Kind, r.Source, r.Reason = RecordOpaque, SourceIFA, f.Reason
		fillPacket(&r, p)
		return append(dst, r)
	}
	tmpl := *base
	tmpl.Kind, tmpl.Source = RecordHop, SourceIFA
	fillPacket(&tmpl, p)
	tmpl.Hops, tmpl.HasNode = uint8(len(f.Hops)), true
	for i := range f.Hops {
		h := &f.Hops[i]
		dst = append(dst, tmpl)
		r := &dst[len(dst)-1]
		r.Hop = uint8(i)
		r.Node = h.DeviceID
		r.IngressPort, r.EgressPort = uint32(h.IngressPort), uint32(h.EgressPort)
		r.QueueID = h.QueueID
		r.Latency = h.ResidenceNanos
		r.IngressTS = uint64(h.RxSec)*1e9 + uint64(h.RxNanosec)
	}
	return dst
}

// reportRecords decodes a Telemetry Report payload of any known version.
func (d *Decoder) reportRecords(base *Record, b []byte, dst []Record) []Record {
	if len(b) == 0 {
		return appendOpaque(dst, base, 0, "empty UDP payload on a report port")
	}
	switch b[0] >> 4 {
	case 2:
		if d.rep2.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return appendOpaque(dst, base, SourceReportV2, "Telemetry Report v2.0 shorter than its group header")
		}
		return d.v2Records(base, dst)
	case 1:
		if d.rep1.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return appendOpaque(dst, base, SourceReportV1, "Telemetry Report v1.0 shorter than its 16-byte header")
		}
		return d.v1Records(base, dst)
	case 0:
		if d.rep05.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			return appendOpaque(dst, base, SourceReportV0, "Telemetry Report v0.5 shorter than its headers")
		}
		return d.v05Records(base, dst)
	}
	return appendOpaque(dst, base, 0, "UDP payload on a report port with version nibble 3-15: not a known Telemetry Report")
}

func appendOpaque(dst []Record, base *Record, src Source, reason string) []Record {
	r := *base
	r.Kind, r.Source, r.Reason = RecordOpaque, src, reason
	return append(dst, r)
}

// innerRecords dissects a report's inner packet into r and appends r, then
// the Records of an INT stack inside the inner packet.
func (d *Decoder) innerRecords(r *Record, link layers.LinkType, inner []byte, dst []Record) []Record {
	var p pkt
	ok := len(inner) > 0 && d.dissectLink(link, inner, &p)
	if ok {
		fillPacket(r, &p)
	}
	dst = append(dst, *r)
	if ok && d.wantsINT(&p) && looksLikeINT(p.l4payload) {
		b := Record{Time: r.Time, Interface: r.Interface, Seq: r.Seq}
		dst = d.intRecords(&b, &p, r.Source, dst)
	}
	return dst
}

func (d *Decoder) v2Records(base *Record, dst []Record) []Record {
	t := &d.rep2
	for i := range t.Reports {
		rp := &t.Reports[i]
		r := *base
		r.Source = SourceReportV2
		r.HasNode, r.Node, r.HwID, r.Seq = true, t.NodeID, t.HwID, t.Seq
		if rp.Reason != "" {
			r.Kind, r.Reason = RecordOpaque, rp.Reason
			dst = append(dst, r)
			continue
		}
		fillV2(&r, rp)
		var link layers.LinkType
		inType, inner := rp.InnerPacket()
		switch inType {
		case InTypeEthernet:
			link = layers.LinkTypeEthernet
		case InTypeIPv4, InTypeIPv6:
			link = layers.LinkTypeRaw
		default:
			dst = append(dst, r)
			continue
		}
		dst = d.innerRecords(&r, link, inner, dst)
	}
	return dst
}

// fillV2 sets a record's kind and buffer state from one understood
// individual report.
func fillV2(r *Record, rp *ReportV2) {
	b, bits := &rp.Baseline, rp.RepMdBits
	switch {
	case rp.DomainID == HostDomainID && rp.DSMdBits&HostMdBufferEvent != 0:
		r.Kind = RecordHostEvent
	case rp.D || bits&RepMdDropReason != 0:
		r.Kind = RecordDrop
	case rp.Q:
		r.Kind = RecordQueue
	default:
		r.Kind = RecordHop
	}
	r.IngressPort, r.EgressPort = uint32(b.IngressPort), uint32(b.EgressPort)
	if bits&RepMdL2Ports != 0 && bits&RepMdL1Ports == 0 {
		r.IngressPort, r.EgressPort = b.L2IngressPort, b.L2EgressPort
	}
	r.Latency = b.HopLatency
	switch {
	case bits&RepMdQueueOcc != 0:
		r.QueueID, r.Occupancy = b.QueueID, b.QueueOccupancy
	case bits&RepMdBufferOcc != 0:
		r.QueueID, r.Occupancy = b.BufferID, b.BufferOccupancy
	}
	r.IngressTS, r.EgressTS = b.IngressTS, b.EgressTS
	if bits&RepMdDropReason != 0 {
		r.HasDropReason, r.DropReason = true, uint32(b.DropReason)
		if bits&RepMdQueueOcc == 0 {
			r.QueueID = b.DropQueueID
		}
	}
	if rp.DomainID != HostDomainID {
		return
	}
	h, ds := &rp.Host, rp.DSMdBits
	r.Buffer, r.Event, r.EventFlags = h.Buffer, h.Event, h.Flags
	if ds&HostMdOccBytes != 0 {
		r.Occupancy, r.Capacity = h.OccupancyBytes, h.CapacityBytes
	}
	r.OccupancyPackets, r.CapacityPackets = h.OccupancyPackets, h.CapacityPackets
	if ds&HostMdDropReason != 0 {
		r.HasDropReason, r.DropReason = true, h.DropReason
	}
	r.DropReasonName = h.DropReasonName
	r.RcvWnd, r.SndCwnd, r.Duration = h.RcvWnd, h.SndCwnd, h.Duration
}

func (d *Decoder) v1Records(base *Record, dst []Record) []Record {
	t := &d.rep1
	r := *base
	r.Source = SourceReportV1
	r.HasNode, r.Node, r.HwID, r.Seq = true, t.SwitchID, t.HwID, t.Seq
	if t.Reason != "" {
		r.Kind, r.Reason = RecordOpaque, t.Reason
		return append(dst, r)
	}
	switch {
	case t.D || t.RepMdBits&RepV1DropReason != 0:
		r.Kind = RecordDrop
	case t.Q:
		r.Kind = RecordQueue
	default:
		r.Kind = RecordHop
	}
	r.IngressPort, r.EgressPort = uint32(t.IngressPort), uint32(t.EgressPort)
	r.Latency = t.HopLatency
	r.QueueID, r.Occupancy = t.QueueID, t.QueueOccupancy
	r.IngressTS, r.EgressTS = uint64(t.IngressTS), uint64(t.EgressTS)
	if t.RepMdBits&RepV1DropReason != 0 {
		r.HasDropReason, r.DropReason = true, uint32(t.DropReason)
		if t.RepMdBits&RepV1QueueOcc == 0 {
			r.QueueID = t.DropQueueID
		}
	}
	link := layers.LinkTypeEthernet
	if t.NProto != 0 {
		link = layers.LinkTypeRaw
	}
	return d.innerRecords(&r, link, t.Payload, dst)
}

func (d *Decoder) v05Records(base *Record, dst []Record) []Record {
	t := &d.rep05
	r := *base
	r.Source = SourceReportV0
	r.HwID, r.Seq = t.HwID, t.Seq
	if t.Reason != "" {
		r.Kind, r.Reason = RecordOpaque, t.Reason
		return append(dst, r)
	}
	r.IngressTS = uint64(t.IngressTS)
	switch t.NProto {
	case ReportV05Drop:
		r.Kind = RecordDrop
		r.HasDropReason, r.DropReason = true, uint32(t.DropReason)
	case ReportV05SwitchLocal:
		r.Kind = RecordHop
		if t.Q {
			r.Kind = RecordQueue
		}
		r.Occupancy, r.EgressTS = t.QueueOccupancy, uint64(t.EgressTS)
	default:
		r.Kind = RecordHop
		if t.D {
			r.Kind = RecordDrop
		} else if t.Q {
			r.Kind = RecordQueue
		}
	}
	if t.NProto != ReportV05Ethernet {
		r.HasNode, r.Node = true, t.SwitchID
		r.IngressPort, r.EgressPort, r.QueueID = uint32(t.IngressPort), uint32(t.EgressPort), t.QueueID
	}
	return d.innerRecords(&r, layers.LinkTypeEthernet, t.Payload, dst)
}
