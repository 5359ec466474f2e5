package decode

import (
	"fmt"
	"io"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Rendering is kept apart from decoding: everything here may allocate, and
// nothing on the Records path calls it.

// Summary returns a one-line description of a packet, like the Info column
// of tshark: the transport and flow, the TCP state and tag, and for
// telemetry what the reports or hops say. It uses d's configuration (report
// ports, INT signalling) and d's scratch state, so it is not safe for
// concurrent use with other calls on d.
func (d *Decoder) Summary(link layers.LinkType, data []byte) string {
	recs := d.Records(0, 0, link, data, nil)
	return SummaryOf(recs)
}

// SummaryOf summarises the Records of one packet.
func SummaryOf(recs []Record) string {
	if len(recs) == 0 {
		return "no IP packet"
	}
	var b strings.Builder
	var hops, opaque int
	first := true
	for i := range recs {
		r := &recs[i]
		switch {
		case r.Kind == RecordOpaque:
			opaque++
			if opaque == 1 {
				sep(&b, &first)
				fmt.Fprintf(&b, "%s not decoded: %s", r.Source, r.Reason)
			}
			continue
		case r.Kind == RecordHop && (r.Source == SourceINT || r.Source == SourceIFA):
			hops++
			continue
		}
		sep(&b, &first)
		switch r.Kind {
		case RecordPacket:
			b.WriteString(packetSummary(r))
		default:
			b.WriteString(reportSummary(r))
		}
	}
	if hops > 0 {
		sep(&b, &first)
		src := SourceINT
		for _, r := range recs {
			if r.Kind == RecordHop && (r.Source == SourceINT || r.Source == SourceIFA) {
				src = r.Source
				break
			}
		}
		fmt.Fprintf(&b, "%s stack: %d hop%s", strings.ToUpper(src.String()), hops, plural(hops))
		var path []string
		for _, r := range recs {
			if r.Kind == RecordHop && r.Source == src {
				path = append(path, fmt.Sprintf("%d", r.Node))
			}
		}
		fmt.Fprintf(&b, " (node %s, newest first)", strings.Join(path, " < "))
	}
	return b.String()
}

func sep(b *strings.Builder, first *bool) {
	if !*first {
		b.WriteString("; ")
	}
	*first = false
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// TCPFlagsString renders flag bits like tshark: "[SYN, ACK]".
func TCPFlagsString(f uint16) string {
	names := []struct {
		bit  uint16
		name string
	}{{TCPFlagFIN, "FIN"}, {TCPFlagSYN, "SYN"}, {TCPFlagRST, "RST"}, {TCPFlagPSH, "PSH"},
		{TCPFlagACK, "ACK"}, {TCPFlagURG, "URG"}, {TCPFlagECE, "ECE"}, {TCPFlagCWR, "CWR"}, {TCPFlagNS, "NS"}}
	var out []string
	for _, n := range names {
		if f&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func packetSummary(r *Record) string {
	proto := fmt.Sprintf("IP proto %d", r.Flow.Proto)
	switch r.Flow.Proto {
	case 6:
		proto = "TCP"
	case 17:
		proto = "UDP"
	}
	s := fmt.Sprintf("%s %s", proto, flowArrow(r.Flow))
	if r.Flow.Proto == 6 {
		s += fmt.Sprintf(" %s seq=%d ack=%d win=%d", TCPFlagsString(r.TCPFlags), r.TCPSeq, r.TCPAck, r.Window)
	}
	s += fmt.Sprintf(" len=%d", r.PayloadLen)
	if r.HasTag {
		s += " " + tagSummary(r.Tag)
	}
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	return s
}

func tagSummary(t RequestTag) string {
	s := fmt.Sprintf("tag %s rpc=%016x trace=%016x msglen=%d", t.Kind, t.RPCID, t.TraceID, t.MessageLength)
	if t.Flags&TagFlagRetransmit != 0 {
		s += " R"
	}
	return s
}

func flowArrow(f Flow) string {
	if f.IPVersion == 0 {
		return "-"
	}
	if f.Proto != 6 && f.Proto != 17 {
		return fmt.Sprintf("%s → %s", f.SrcAddr(), f.DstAddr())
	}
	return fmt.Sprintf("%s:%d → %s:%d", addrString(f.SrcAddr().String(), f.IPVersion), f.SrcPort, addrString(f.DstAddr().String(), f.IPVersion), f.DstPort)
}

func addrString(a string, v uint8) string {
	if v == 6 {
		return "[" + a + "]"
	}
	return a
}

func reportSummary(r *Record) string {
	var b strings.Builder
	b.WriteString(sourceTitle(r.Source))
	if r.HasNode {
		fmt.Fprintf(&b, " node %d", r.Node)
	}
	fmt.Fprintf(&b, " seq %d: ", r.Seq)
	switch r.Kind {
	case RecordHostEvent:
		fmt.Fprintf(&b, "%s %s", r.Buffer, r.Event)
		if r.EventFlags&HostFlagStart != 0 {
			b.WriteString(" start")
		}
		if r.EventFlags&HostFlagCleared != 0 {
			b.WriteString(" cleared")
		}
	default:
		b.WriteString(r.Kind.String() + " report")
	}
	if r.HasDropReason {
		fmt.Fprintf(&b, " reason %s", dropReasonText(r))
	}
	if r.Latency != 0 {
		fmt.Fprintf(&b, " latency %dns", r.Latency)
	}
	if r.Occupancy != 0 || r.Capacity != 0 {
		fmt.Fprintf(&b, " queue %d occupancy %d", r.QueueID, r.Occupancy)
		if r.Capacity != 0 {
			fmt.Fprintf(&b, "/%d", r.Capacity)
		}
	}
	if r.Duration != 0 {
		fmt.Fprintf(&b, " for %dns", r.Duration)
	}
	if r.HasFlow {
		fmt.Fprintf(&b, " flow %s", flowArrow(r.Flow))
		if r.Flow.Proto == 6 {
			fmt.Fprintf(&b, " seq=%d", r.TCPSeq)
		}
	}
	if r.HasTag {
		b.WriteString(" " + tagSummary(r.Tag))
	}
	return b.String()
}

func sourceTitle(s Source) string {
	switch s {
	case SourceReportV2:
		return "Telemetry Report v2.0"
	case SourceReportV1:
		return "Telemetry Report v1.0"
	case SourceReportV0:
		return "Telemetry Report v0.5"
	case SourceINT:
		return "INT"
	case SourceIFA:
		return "IFA"
	}
	return s.String()
}

// dropReasonText prints a drop reason as its name when one is known, with
// the number: "64 (QDISC_DROP)", "80 (acl deny)", or just "200".
func dropReasonText(r *Record) string {
	if n := r.DropName(); n != "" {
		return fmt.Sprintf("%d (%s)", r.DropReason, n)
	}
	return fmt.Sprintf("%d", r.DropReason)
}

// WriteTree writes the packet's layers as an indented tree with the field
// names of the specifications, like tshark -V. Telemetry layers are shown in
// full; Ethernet/IP/TCP/UDP show the fields an engineer looks at. Not safe
// for concurrent use with other calls on d.
func (d *Decoder) WriteTree(w io.Writer, link layers.LinkType, data []byte) error {
	t := &tree{w: w}
	d.layersTCP, d.layersNet = true, true // the tree prints d.tcp, d.ip4, d.ip6, d.udp
	defer func() { d.layersTCP, d.layersNet = false, false }()
	d.treeLink(t, link, data)
	return t.err
}

type tree struct {
	w     io.Writer
	depth int
	err   error
}

func (t *tree) f(format string, args ...any) {
	if t.err != nil {
		return
	}
	_, t.err = fmt.Fprintf(t.w, "%s%s\n", strings.Repeat("    ", t.depth), fmt.Sprintf(format, args...))
}

func (t *tree) in()  { t.depth++ }
func (t *tree) out() { t.depth-- }

func (d *Decoder) treeLink(t *tree, link layers.LinkType, data []byte) {
	switch link {
	case layers.LinkTypeEthernet:
		var eth layers.Ethernet
		if err := eth.DecodeFromBytes(data, gopacket.NilDecodeFeedback); err != nil {
			t.f("Ethernet: %d bytes, truncated (%v)", len(data), err)
			return
		}
		t.f("Ethernet II, Src: %s, Dst: %s, Type: %s (0x%04x)", eth.SrcMAC, eth.DstMAC, eth.EthernetType, uint16(eth.EthernetType))
		d.treeEtherType(t, eth.EthernetType, eth.Payload)
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		d.treeIP(t, data)
	default:
		t.f("Link type %s: not decoded", link)
	}
}

func (d *Decoder) treeEtherType(t *tree, et layers.EthernetType, b []byte) {
	for et == layers.EthernetTypeDot1Q || et == layers.EthernetTypeQinQ {
		var v layers.Dot1Q
		if err := v.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			t.f("802.1Q: truncated")
			return
		}
		t.f("802.1Q Virtual LAN, PRI: %d, DEI: %v, ID: %d", v.Priority, v.DropEligible, v.VLANIdentifier)
		et, b = v.Type, v.Payload
	}
	switch et {
	case layers.EthernetTypeIPv4, layers.EthernetTypeIPv6:
		d.treeIP(t, b)
	default:
		t.f("%s payload: %d bytes", et, len(b))
	}
}

func (d *Decoder) treeIP(t *tree, b []byte) {
	var p pkt
	if !d.dissectIP(b, &p) {
		t.f("IP: %d bytes, not decoded (truncated or not IPv4/IPv6)", len(b))
		return
	}
	// d's layer structs now hold this packet; print them before anything
	// reuses them for an inner packet.
	if p.flow.IPVersion == 4 {
		ip := &d.ip4
		t.f("Internet Protocol Version 4, Src: %s, Dst: %s", ip.SrcIP, ip.DstIP)
		t.in()
		t.f("Differentiated Services Field: 0x%02x (DSCP: 0x%02x, ECN: %d)", ip.TOS, ip.TOS>>2, ip.TOS&3)
		t.f("Total Length: %d, Identification: 0x%04x, TTL: %d, Protocol: %s (%d)", ip.Length, ip.Id, ip.TTL, ip.Protocol, uint8(ip.Protocol))
		t.out()
	} else {
		ip := &d.ip6
		t.f("Internet Protocol Version 6, Src: %s, Dst: %s", ip.SrcIP, ip.DstIP)
		t.in()
		t.f("Traffic Class: 0x%02x (DSCP: 0x%02x), Flow Label: 0x%05x", ip.TrafficClass, ip.TrafficClass>>2, ip.FlowLabel)
		t.f("Payload Length: %d, Next Header: %s (%d), Hop Limit: %d", ip.Length, ip.NextHeader, uint8(ip.NextHeader), ip.HopLimit)
		t.out()
	}
	if p.ifa {
		treeIFA(t, &d.ifa)
	}
	switch {
	case p.tcp:
		tc := &d.tcp
		t.f("Transmission Control Protocol, Src Port: %d, Dst Port: %d, Seq: %d, Ack: %d, Len: %d", tc.SrcPort, tc.DstPort, tc.Seq, tc.Ack, p.l3payload)
		t.in()
		t.f("Flags: 0x%03x %s, Window: %d, Header Length: %d bytes", p.flags, TCPFlagsString(p.flags), tc.Window, p.tcpHdrLen)
		for _, o := range tc.Options {
			switch {
			case o.OptionType == TagOptionKind && len(o.OptionData) >= 2:
				treeTagOption(t, o.OptionData, d.exid)
			case o.OptionType == layers.TCPOptionKindNop || o.OptionType == layers.TCPOptionKindEndList:
			default:
				t.f("Option: %s, length %d", o.OptionType, o.OptionLength)
			}
		}
		t.out()
	case p.udp:
		t.f("User Datagram Protocol, Src Port: %d, Dst Port: %d, Length: %d", d.udp.SrcPort, d.udp.DstPort, d.udp.Length)
		if d.isReportPort(p.flow.DstPort) {
			d.treeReport(t, p.l4payload)
			return
		}
	default:
		return
	}
	if d.wantsINT(&p) && looksLikeINT(p.l4payload) {
		var n INT
		err := n.DecodeFromBytes(p.l4payload, gopacket.NilDecodeFeedback)
		treeINT(t, &n, err)
		if err == nil && n.Reason == "" {
			t.f("Data: %d bytes", len(n.Payload))
		}
		return
	}
	if len(p.l4payload) > 0 {
		t.f("Data: %d bytes", len(p.l4payload))
	}
}

func treeTagOption(t *tree, data []byte, exid uint16) {
	got := uint16(data[0])<<8 | uint16(data[1])
	if got != exid {
		t.f("Option: Experimental (253), ExID 0x%04x (not a bufscope tag)", got)
		return
	}
	tag, ok := parseTagData(data)
	if !ok {
		t.f("Option: bufscope request tag, ExID 0x%04x: MALFORMED (%d bytes of data, version %d, kind %d)", got, len(data), tag.Version, tag.Kind)
		return
	}
	t.f("Option: bufscope request tag (kind 253, ExID 0x%04x)", got)
	t.in()
	t.f("Version: %d", tag.Version)
	t.f("Message kind: %s (%d)", tag.Kind, tag.Kind)
	t.f("Flags: 0x%02x%s", tag.Flags, map[bool]string{true: " (R: retransmission)", false: ""}[tag.Flags&TagFlagRetransmit != 0])
	t.f("RPC ID: %016x", tag.RPCID)
	t.f("Trace ID: %016x", tag.TraceID)
	t.f("Message length: %d", tag.MessageLength)
	t.out()
}

func onOff(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (d *Decoder) treeReport(t *tree, b []byte) {
	if len(b) == 0 {
		t.f("Telemetry Report: empty payload")
		return
	}
	switch b[0] >> 4 {
	case 2:
		var r TelemetryReportV2
		if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			t.f("Telemetry Report v2.0: %v", err)
			return
		}
		d.treeReportV2(t, &r)
	case 1:
		var r TelemetryReportV1
		if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			t.f("Telemetry Report v1.0: %v", err)
			return
		}
		d.treeReportV1(t, &r)
	case 0:
		var r TelemetryReportV05
		if err := r.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			t.f("Telemetry Report v0.5: %v", err)
			return
		}
		d.treeReportV05(t, &r)
	default:
		t.f("Telemetry Report: version nibble %d is not 0, 1 or 2; %d bytes not decoded", b[0]>>4, len(b))
	}
}

func (d *Decoder) treeReportV1(t *tree, r *TelemetryReportV1) {
	t.f("Telemetry Report v1.0")
	t.in()
	defer t.out()
	t.f("Ver: %d, Length: %d words, NProto: %d, RepMdBits: 0x%02x, D: %d, Q: %d, F: %d, hw_id: %d", r.Version, r.Length, r.NProto, r.RepMdBits, onOff(r.D), onOff(r.Q), onOff(r.F), r.HwID)
	t.f("Switch ID: %d, Sequence Number: %d, Ingress Timestamp: %d", r.SwitchID, r.Seq, r.IngressTS)
	if r.Reason != "" {
		t.f("NOT DECODED: %s", r.Reason)
		return
	}
	bits := r.RepMdBits
	if bits&RepV1Ports != 0 {
		t.f("Ingress port: %d, Egress port: %d", r.IngressPort, r.EgressPort)
	}
	if bits&RepV1HopLatency != 0 {
		t.f("Hop latency: %d", r.HopLatency)
	}
	if bits&RepV1QueueOcc != 0 {
		t.f("Queue ID: %d, Queue occupancy: %d", r.QueueID, r.QueueOccupancy)
	}
	if bits&RepV1EgressTS != 0 {
		t.f("Egress timestamp: %d", r.EgressTS)
	}
	if bits&RepV1DropReason != 0 {
		t.f("Queue ID: %d, Drop reason: %s", r.DropQueueID, switchDrop(r.DropReason))
	}
	if bits&RepV1TxUtil != 0 {
		t.f("Egress port Tx utilization: %d", r.TxUtilization)
	}
	link := layers.LinkTypeEthernet
	if r.NProto != 0 {
		link = layers.LinkTypeRaw
	}
	d.treeInner(t, link, r.Payload)
}

func (d *Decoder) treeReportV05(t *tree, r *TelemetryReportV05) {
	t.f("Telemetry Report v0.5")
	t.in()
	defer t.out()
	t.f("Ver: %d, NProto: %d, D: %d, Q: %d, F: %d, hw_id: %d", r.Version, r.NProto, onOff(r.D), onOff(r.Q), onOff(r.F), r.HwID)
	t.f("Sequence Number: %d, Ingress Timestamp: %d", r.Seq, r.IngressTS)
	switch {
	case r.Reason != "":
		t.f("NOT DECODED: %s", r.Reason)
		return
	case r.NProto == ReportV05Drop:
		t.f("Drop Report: Switch ID: %d, Ingress port: %d, Egress port: %d, Queue ID: %d, Drop reason: %s", r.SwitchID, r.IngressPort, r.EgressPort, r.QueueID, switchDrop(r.DropReason))
	case r.NProto == ReportV05SwitchLocal:
		t.f("Switch Local Report: Switch ID: %d, Ingress port: %d, Egress port: %d, Queue ID: %d, Queue occupancy: %d, Egress timestamp: %d", r.SwitchID, r.IngressPort, r.EgressPort, r.QueueID, r.QueueOccupancy, r.EgressTS)
	}
	d.treeInner(t, layers.LinkTypeEthernet, r.Payload)
}

func switchDrop(code uint8) string {
	if n := SwitchDropReasonName(code); n != "" {
		return fmt.Sprintf("%d (%s)", code, n)
	}
	return fmt.Sprintf("%d", code)
}

var repTypeNames = map[uint8]string{0: "Inner Only", 1: "INT", 2: "IOAM"}
var inTypeNames = map[uint8]string{0: "None", 1: "TLV", 2: "Domain Specific Extension Data", 3: "Ethernet", 4: "IPv4", 5: "IPv6"}

func nameOr(m map[uint8]string, v uint8) string {
	if n, ok := m[v]; ok {
		return n
	}
	return "reserved"
}

func (d *Decoder) treeReportV2(t *tree, r *TelemetryReportV2) {
	t.f("Telemetry Report v2.0 Group Header")
	t.in()
	t.f("Ver: %d, hw_id: %d, Sequence Number: %d, Node ID: %d", r.Version, r.HwID, r.Seq, r.NodeID)
	t.out()
	for i := range r.Reports {
		rp := &r.Reports[i]
		t.f("Individual Report %d: RepType %d (%s), InType %d (%s)", i+1, rp.RepType, nameOr(repTypeNames, rp.RepType), rp.InType, nameOr(inTypeNames, rp.InType))
		t.in()
		t.f("Report Length: %d words, MD Length: %d words, D: %d, Q: %d, F: %d, I: %d", rp.ReportLength, rp.MDLength, onOff(rp.D), onOff(rp.Q), onOff(rp.F), onOff(rp.I))
		if rp.RepType == ReportTypeINT && rp.Reason != reasonMainTruncated {
			t.f("RepMdBits: 0x%04x, Domain Specific ID: 0x%04x, DSMdBits: 0x%04x, DSMdStatus: 0x%04x", rp.RepMdBits, rp.DomainID, rp.DSMdBits, rp.DSMdStatus)
		}
		if rp.Reason != "" {
			t.f("NOT DECODED: %s (%d bytes kept opaque)", rp.Reason, len(rp.Inner)+len(rp.DSData))
			t.out()
			continue
		}
		if rp.RepType == ReportTypeINT {
			treeBaseline(t, rp.RepMdBits, &rp.Baseline, rp.DomainID == HostDomainID)
			if rp.DomainID == HostDomainID {
				treeHost(t, rp.DSMdBits, &rp.Host)
			} else if len(rp.DSData) > 0 {
				t.f("Domain specific metadata (domain 0x%04x): % x", rp.DomainID, rp.DSData)
			}
		}
		inType, inner := rp.InnerPacket()
		switch inType {
		case InTypeEthernet:
			d.treeInner(t, layers.LinkTypeEthernet, inner)
		case InTypeIPv4, InTypeIPv6:
			d.treeInner(t, layers.LinkTypeRaw, inner)
		default:
			if len(rp.Inner) > 0 {
				t.f("Inner contents: %d bytes with no packet in them, not decoded", len(rp.Inner))
			}
		}
		t.out()
	}
}

// treeBaseline prints the baseline metadata. Host reports put a kernel drop
// reason in the drop field, so switch drop names are not looked up for them.
func treeBaseline(t *tree, bits uint16, b *ReportBaseline, host bool) {
	if bits&RepMdL1Ports != 0 {
		t.f("Level 1 Ingress Interface ID: %d, Level 1 Egress Interface ID: %d", b.IngressPort, b.EgressPort)
	}
	if bits&RepMdHopLatency != 0 {
		t.f("Hop latency: %d ns", b.HopLatency)
	}
	if bits&RepMdQueueOcc != 0 {
		t.f("Queue ID: %d, Queue occupancy: %d", b.QueueID, b.QueueOccupancy)
	}
	if bits&RepMdIngressTS != 0 {
		t.f("Ingress timestamp: %d", b.IngressTS)
	}
	if bits&RepMdEgressTS != 0 {
		t.f("Egress timestamp: %d", b.EgressTS)
	}
	if bits&RepMdL2Ports != 0 {
		t.f("Level 2 Ingress Interface ID: %d, Level 2 Egress Interface ID: %d", b.L2IngressPort, b.L2EgressPort)
	}
	if bits&RepMdTxUtil != 0 {
		t.f("Egress port Tx utilization: %d", b.TxUtilization)
	}
	if bits&RepMdBufferOcc != 0 {
		t.f("Buffer ID: %d, Buffer occupancy: %d", b.BufferID, b.BufferOccupancy)
	}
	if bits&RepMdDropReason != 0 {
		reason := switchDrop(b.DropReason)
		if host {
			reason = fmt.Sprintf("%d (kernel reason, saturated at 255; full value below)", b.DropReason)
		}
		t.f("Queue ID: %d, Drop reason: %s", b.DropQueueID, reason)
	}
}

func treeHost(t *tree, bits uint16, h *HostMetadata) {
	t.f("bufscope host-buffer metadata (Domain Specific ID 0xB5C0)")
	t.in()
	if bits&HostMdBufferEvent != 0 {
		t.f("Buffer: %s (%d), Event: %s (%d), Event flags: 0x%04x", h.Buffer, uint8(h.Buffer), h.Event, uint8(h.Event), h.Flags)
	}
	if bits&HostMdOccBytes != 0 {
		t.f("Occupancy: %d bytes, Capacity: %d bytes", h.OccupancyBytes, h.CapacityBytes)
	}
	if bits&HostMdOccPackets != 0 {
		t.f("Occupancy: %d packets, Capacity: %d packets", h.OccupancyPackets, h.CapacityPackets)
	}
	if bits&HostMdDropReason != 0 {
		name := h.DropName()
		if name == "" {
			name = "name not sent"
		}
		t.f("Drop reason: %d (%s)", h.DropReason, name)
	}
	if bits&HostMdWindows != 0 {
		t.f("Receive window: %d bytes, Send congestion window: %d bytes", h.RcvWnd, h.SndCwnd)
	}
	if bits&HostMdDuration != 0 {
		t.f("Event duration: %d ns", h.Duration)
	}
	t.out()
}

func (d *Decoder) treeInner(t *tree, link layers.LinkType, inner []byte) {
	if len(inner) == 0 {
		return
	}
	t.f("Inner packet (%d bytes)", len(inner))
	t.in()
	d.treeLink(t, link, inner)
	t.out()
}

func treeINT(t *tree, n *INT, err error) {
	if err != nil {
		t.f("In-band Network Telemetry: %v", err)
		return
	}
	kind := map[uint8]string{INTTypeMD: "INT-MD", INTTypeDestination: "INT-Destination", INTTypeMX: "INT-MX"}[n.Type]
	t.f("In-band Network Telemetry v%d %s", n.Version, kind)
	t.in()
	defer t.out()
	t.f("Shim: Type: %d, NPT: %d, Length: %d words, last 16 bits: 0x%04x", n.Type, n.NPT, n.ShimLength, n.ShimData)
	if n.Reason != "" {
		t.f("NOT DECODED: %s", n.Reason)
		return
	}
	t.f("Ver: %d, D: %d, E: %d, M: %d, Hop ML: %d words, Remaining Hop Count: %d", n.Version, onOff(n.D), onOff(n.E), onOff(n.M), n.HopML, n.RemainingHopCount)
	t.f("Instruction Bitmap: 0x%04x, Domain Specific ID: 0x%04x, DS Instruction: 0x%04x, DS Flags: 0x%04x", n.Instructions, n.DomainID, n.DSInstructions, n.DSFlags)
	for i := range n.Hops {
		h := &n.Hops[i]
		t.f("Hop %d (%s)", i+1, map[bool]string{true: "newest", false: "older"}[i == 0])
		t.in()
		bits := n.Instructions
		if bits&INTNodeID != 0 {
			t.f("Node ID: %d", h.NodeID)
		}
		if bits&INTL1Ports != 0 {
			t.f("Level 1 Ingress Interface ID: %d, Egress Interface ID: %d", h.L1IngressPort, h.L1EgressPort)
		}
		if bits&INTHopLatency != 0 {
			t.f("Hop latency: %d", h.HopLatency)
		}
		if bits&INTQueueOcc != 0 {
			t.f("Queue ID: %d, Queue occupancy: %d", h.QueueID, h.QueueOccupancy)
		}
		if bits&INTIngressTS != 0 {
			t.f("Ingress timestamp: %d", h.IngressTS)
		}
		if bits&INTEgressTS != 0 {
			t.f("Egress timestamp: %d", h.EgressTS)
		}
		if bits&INTL2Ports != 0 {
			t.f("Level 2 Ingress Interface ID: %d, Egress Interface ID: %d", h.L2IngressPort, h.L2EgressPort)
		}
		if bits&INTTxUtil != 0 {
			t.f("Egress interface Tx utilization: %d", h.TxUtilization)
		}
		if bits&INTBufferOcc != 0 && n.Version == 2 {
			t.f("Buffer ID: %d, Buffer occupancy: %d", h.BufferID, h.BufferOccupancy)
		}
		if bits&INTChecksum != 0 {
			t.f("Checksum Complement: 0x%08x", h.Checksum)
		}
		if len(h.DS) > 0 {
			t.f("Domain specific metadata: % x", h.DS)
		}
		t.out()
	}
	if len(n.SourceDS) > 0 {
		t.f("Source-only domain specific metadata: % x", n.SourceDS)
	}
}

func treeIFA(t *tree, f *IFA) {
	t.f("Inband Flow Analyzer, Ver: %d, GNS: %d, NextHdr: %s (%d), Flags: 0x%02x, MaxLen: %d", f.Version, f.GNS, f.NextHdr, uint8(f.NextHdr), f.Flags, f.MaxLen)
	t.in()
	defer t.out()
	if f.Reason != "" {
		t.f("NOT DECODED: %s", f.Reason)
		return
	}
	t.f("Metadata header: Request: 0x%02x, Action: 0x%02x, Hop limit: %d, Current length: %d words", f.Request, f.Action, f.HopLimit, f.CurLen)
	for i, h := range f.Hops {
		t.f("Hop %d: LNS: %d, Device ID: %d, TTL: %d, Speed: %d, Congestion: %d, Queue ID: %d, Rx: %d.%09d s, Egress port: %d, Ingress port: %d, Residence time: %d ns",
			i+1, h.LNS, h.DeviceID, h.TTL, h.Speed, h.Congestion, h.QueueID, h.RxSec, h.RxNanosec, h.EgressPort, h.IngressPort, h.ResidenceNanos)
	}
}
