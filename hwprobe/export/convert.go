package export

import (
	"encoding/binary"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe/monitor"
)

const (
	afInet  = 2
	afInet6 = 10
)

// Convert fills he from ev. The victim packet is copied into scratch's
// backing array (which must hold monitor.HeaderMax bytes) and he.Inner
// slices it, so he stays valid after ev is reused. Socket events carry no
// packet; for them a 40- or 60-byte IP+TCP header is synthesized from the
// socket's addresses, ports and sequence numbers. It does not allocate.
func Convert(ev *monitor.Event, reasons *monitor.DropReasons, he *decode.HostEvent, scratch []byte) {
	*he = decode.HostEvent{
		Event:      decode.EventKind(ev.Event),
		Flags:      ev.Flags,
		IfIndex:    uint16(ev.IfIndex),
		QueueID:    uint8(ev.QueueID),
		EgressTime: uint64(ev.Time),
		RcvWnd:     ev.RcvWnd,
		SndCwnd:    ev.SndCwnd,
	}
	buf := ev.Buffer
	if ev.Event == monitor.EventDrop {
		he.DropReason = ev.DropReason
		if reasons != nil {
			name := reasons.Name(ev.DropReason)
			if len(name) > 32 {
				name = name[:32]
			}
			he.DropReasonName = name
			if buf == 0 {
				buf = monitor.BufferOf(name, ev.Router)
			}
		}
	}
	he.Buffer = decode.BufferKind(buf)
	if ev.Start != 0 && ev.Time >= ev.Start {
		he.IngressTime = uint64(ev.Start)
		he.HopLatency = sat32(ev.Time - ev.Start)
	}
	if ev.Since != 0 && ev.Time > ev.Since {
		he.Duration = sat32(ev.Time - ev.Since)
	}
	switch buf {
	case monitor.BufferQdisc, monitor.BufferSwitch:
		he.QueueOccupancy = ev.OccBytes
		he.OccupancyBytes = ev.OccBytes
		he.OccupancyPackets = ev.OccPkts
		// struct Qdisc's limit is in bytes for bfifo and in packets for
		// the packet FIFOs; other qdiscs keep their limit privately.
		switch ev.Qdisc() {
		case "bfifo":
			he.CapacityBytes = ev.CapPkts
		case "pfifo", "pfifo_head_drop", "pfifo_fast":
			he.CapacityPackets = ev.CapPkts
		}
	default:
		he.OccupancyBytes = ev.OccBytes
		he.CapacityBytes = ev.CapBytes
	}
	he.Inner = inner(ev, scratch[:0])
}

// inner returns the victim header: copied from the skb, or synthesized
// from the socket fields.
func inner(ev *monitor.Event, dst []byte) []byte {
	if ev.HeaderLen > 0 {
		return append(dst, ev.Header[:ev.HeaderLen]...)
	}
	switch ev.Family {
	case afInet:
		return synthIPv4(ev, dst)
	case afInet6:
		return synthIPv6(ev, dst)
	}
	return nil
}

// synthIPv4 writes a 20-byte IPv4 header and a 20-byte TCP header (ACK
// set, window 0: the real windows travel in the report's metadata).
func synthIPv4(ev *monitor.Event, dst []byte) []byte {
	var h [40]byte
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], 40)
	h[6] = 0x40 // DF
	h[8] = 64
	h[9] = 6
	copy(h[12:16], ev.SrcAddr[:4])
	copy(h[16:20], ev.DstAddr[:4])
	binary.BigEndian.PutUint16(h[10:], ipv4Checksum(h[:20]))
	tcp(ev, h[20:])
	return append(dst, h[:]...)
}

func synthIPv6(ev *monitor.Event, dst []byte) []byte {
	var h [60]byte
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], 20)
	h[6] = 6
	h[7] = 64
	copy(h[8:24], ev.SrcAddr[:])
	copy(h[24:40], ev.DstAddr[:])
	tcp(ev, h[40:])
	return append(dst, h[:]...)
}

func tcp(ev *monitor.Event, t []byte) {
	binary.BigEndian.PutUint16(t[0:], ev.SrcPort)
	binary.BigEndian.PutUint16(t[2:], ev.DstPort)
	binary.BigEndian.PutUint32(t[4:], ev.Seq)
	binary.BigEndian.PutUint32(t[8:], ev.Ack)
	t[12] = 5 << 4
	t[13] = 0x10 // ACK
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xFFFF {
		sum = sum>>16 + sum&0xFFFF
	}
	return ^uint16(sum)
}

func sat32(v int64) uint32 {
	if v > 0xFFFFFFFF {
		return 0xFFFFFFFF
	}
	if v < 0 {
		return 0
	}
	return uint32(v)
}

// switchReport fills r with the standard INT view of a router's egress
// queue event: L1 ports, hop latency, queue id + occupancy, timestamps and,
// for drops, the drop reason (its low 8 bits, as the baseline field holds).
// inIf is the ingress interface of the victim.
func switchReport(he *decode.HostEvent, inIf uint32, r *decode.ReportV2) {
	*r = decode.ReportV2{RepType: decode.ReportTypeINT}
	switch {
	case len(he.Inner) > 0 && he.Inner[0]>>4 == 4:
		r.InType = decode.InTypeIPv4
	case len(he.Inner) > 0 && he.Inner[0]>>4 == 6:
		r.InType = decode.InTypeIPv6
	}
	r.Inner = he.Inner
	r.RepMdBits = decode.RepMdL1Ports | decode.RepMdQueueOcc | decode.RepMdEgressTS
	r.Baseline.IngressPort = uint16(inIf)
	r.Baseline.EgressPort = he.IfIndex
	r.Baseline.QueueID = he.QueueID
	r.Baseline.QueueOccupancy = min(he.QueueOccupancy, 0xFFFFFF)
	r.Baseline.EgressTS = he.EgressTime
	if he.HopLatency != 0 {
		r.RepMdBits |= decode.RepMdHopLatency | decode.RepMdIngressTS
		r.Baseline.HopLatency = he.HopLatency
		r.Baseline.IngressTS = he.IngressTime
	}
	switch he.Event {
	case decode.EventDrop:
		r.D = true
		r.RepMdBits |= decode.RepMdDropReason
		r.Baseline.DropQueueID = he.QueueID
		r.Baseline.DropReason = uint8(min(he.DropReason, 0xFF))
	case decode.EventQueuing, decode.EventStall:
		r.Q = true
	case decode.EventMessageStart, decode.EventRetransmit:
		r.F = true
	}
}
