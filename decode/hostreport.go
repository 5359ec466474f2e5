package decode

import (
	"encoding/binary"
	"fmt"
)

// DefaultReportPort is the collector's default UDP destination port for
// Telemetry Reports (32766, the port fabric-tna uses as well).
const DefaultReportPort = 32766

// HostDomainID is the Telemetry Report v2.0 Domain Specific ID of the bufscope
// host-buffer extension (docs/wire-format.md §2).
const HostDomainID = 0xB5C0

// BufferKind names the buffer a host event happened in (docs/wire-format.md §2).
type BufferKind uint8

// Buffer kinds. 0 and 9–255 are unknown.
const (
	BufferAppSend    BufferKind = 1
	BufferSockSend   BufferKind = 2
	BufferQdisc      BufferKind = 3
	BufferNICTx      BufferKind = 4
	BufferNICRx      BufferKind = 5
	BufferSockRecv   BufferKind = 6
	BufferAppRecv    BufferKind = 7
	BufferSwitchEgrQ BufferKind = 8
)

var bufferKindNames = [...]string{
	BufferAppSend:    "app-send",
	BufferSockSend:   "sock-send",
	BufferQdisc:      "qdisc",
	BufferNICTx:      "nic-tx",
	BufferNICRx:      "nic-rx",
	BufferSockRecv:   "sock-recv",
	BufferAppRecv:    "app-recv",
	BufferSwitchEgrQ: "switch-egress-queue",
}

// String returns the short name used in text and JSON output, or
// "buffer(N)" for values the format does not define.
func (b BufferKind) String() string {
	if int(b) < len(bufferKindNames) && bufferKindNames[b] != "" {
		return bufferKindNames[b]
	}
	return fmt.Sprintf("buffer(%d)", uint8(b))
}

// EventKind names what went wrong in a buffer (docs/wire-format.md §2).
type EventKind uint8

// Event kinds. 0 and 6–255 are unknown.
const (
	EventDrop         EventKind = 1
	EventQueuing      EventKind = 2
	EventStall        EventKind = 3
	EventMessageStart EventKind = 4
	EventRetransmit   EventKind = 5
)

var eventKindNames = [...]string{
	EventDrop:         "drop",
	EventQueuing:      "queuing",
	EventStall:        "stall",
	EventMessageStart: "message-start",
	EventRetransmit:   "retransmit",
}

// String returns the short name used in text and JSON output, or
// "event(N)" for values the format does not define.
func (e EventKind) String() string {
	if int(e) < len(eventKindNames) && eventKindNames[e] != "" {
		return eventKindNames[e]
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// Host event flags (the 16-bit Event flags field).
const (
	HostFlagStart   = 0x8000 // threshold crossed upward: the condition starts
	HostFlagCleared = 0x4000 // the condition ended
)

// HostEvent is one host-buffer event: the baseline fields a host fills plus the
// bufscope domain-specific metadata (Domain Specific ID 0xB5C0).
//
// Zero means "not present" for every optional field; which RepMdBits and
// DSMdBits AppendHostReport sets follows from that (docs/wire-format.md §2.3).
// Inner is only read by AppendHostReport, never retained.
type HostEvent struct {
	Buffer         BufferKind
	Event          EventKind
	Flags          uint16
	IfIndex        uint16 // L1 egress interface id
	QueueID        uint8
	HopLatency     uint32 // residence ns
	QueueOccupancy uint32 // 24-bit field in baseline; saturates
	IngressTime    uint64 // ns since the Unix epoch
	EgressTime     uint64 // ns since the Unix epoch

	DropReason     uint32 // only for EventDrop
	DropReasonName string // only for EventDrop; at most 32 ASCII bytes

	OccupancyBytes, CapacityBytes     uint32
	OccupancyPackets, CapacityPackets uint32

	RcvWnd, SndCwnd uint32 // 0 = not present
	Duration        uint32 // ns, 0 = not present

	// Inner is the victim packet starting at its IP header, already truncated
	// after the L4 header by the caller; IPv4 or IPv6 by version nibble.
	// Empty means the report carries no inner contents (InType 0).
	Inner []byte
}

// RepMdBits masks (Telemetry Report v2.0; bit n of the field is 0x8000>>n).
const (
	RepMdL1Ports    = 0x4000
	RepMdHopLatency = 0x2000
	RepMdQueueOcc   = 0x1000
	RepMdIngressTS  = 0x0800
	RepMdEgressTS   = 0x0400
	RepMdL2Ports    = 0x0200
	RepMdTxUtil     = 0x0100
	RepMdBufferOcc  = 0x0080
	RepMdDropReason = 0x0001
)

// DSMdBits masks of the bufscope host extension (Domain Specific ID 0xB5C0).
const (
	HostMdBufferEvent  = 0x8000 // 4 B
	HostMdOccBytes     = 0x4000 // 8 B
	HostMdOccPackets   = 0x2000 // 8 B
	HostMdDropReason   = 0x1000 // 4 B
	HostMdDropName     = 0x0800 // 32 B
	HostMdWindows      = 0x0400 // 8 B
	HostMdDuration     = 0x0200 // 4 B
	hostMdKnown        = 0xFE00
	hostDropNameLength = 32
)

// Report header constants (Telemetry Report v2.0).
const (
	ReportTypeInnerOnly = 0
	ReportTypeINT       = 1
	ReportTypeIOAM      = 2

	InTypeNone     = 0
	InTypeTLV      = 1
	InTypeDSExt    = 2
	InTypeEthernet = 3
	InTypeIPv4     = 4
	InTypeIPv6     = 5

	reportFlagD = 0x08
	reportFlagQ = 0x04
	reportFlagF = 0x02
	reportFlagI = 0x01
)

// hostBits returns the RepMdBits, DSMdBits and the report flag nibble
// (D/Q/F/I in the low 4 bits) that e's fields select.
func (e *HostEvent) hostBits() (rep, ds uint16, flags uint8) {
	if e.IfIndex != 0 {
		rep |= RepMdL1Ports
	}
	if e.HopLatency != 0 {
		rep |= RepMdHopLatency
	}
	if e.QueueOccupancy != 0 || e.QueueID != 0 {
		rep |= RepMdQueueOcc
	}
	if e.IngressTime != 0 {
		rep |= RepMdIngressTS
	}
	if e.EgressTime != 0 {
		rep |= RepMdEgressTS
	}
	if e.Buffer != 0 || e.Event != 0 || e.Flags != 0 {
		ds |= HostMdBufferEvent
	}
	if e.OccupancyBytes != 0 || e.CapacityBytes != 0 {
		ds |= HostMdOccBytes
	}
	if e.OccupancyPackets != 0 || e.CapacityPackets != 0 {
		ds |= HostMdOccPackets
	}
	switch e.Event {
	case EventDrop:
		rep |= RepMdDropReason
		ds |= HostMdDropReason
		if e.DropReasonName != "" {
			ds |= HostMdDropName
		}
		flags |= reportFlagD
	case EventQueuing, EventStall:
		flags |= reportFlagQ
	case EventMessageStart, EventRetransmit:
		flags |= reportFlagF
	}
	if e.RcvWnd != 0 || e.SndCwnd != 0 {
		ds |= HostMdWindows
	}
	if e.Duration != 0 {
		ds |= HostMdDuration
	}
	return rep, ds, flags
}

// repMdSize returns the bytes of baseline metadata RepMdBits selects, and
// false if a bit whose size this package does not know (bit 0, 9–14) is set.
func repMdSize(bits uint16) (int, bool) {
	if bits&0x807E != 0 {
		return 0, false
	}
	n := 0
	for _, s := range repMdSizes {
		if bits&s.mask != 0 {
			n += s.size
		}
	}
	return n, true
}

var repMdSizes = [...]struct {
	mask uint16
	size int
}{
	{RepMdL1Ports, 4}, {RepMdHopLatency, 4}, {RepMdQueueOcc, 4}, {RepMdIngressTS, 8},
	{RepMdEgressTS, 8}, {RepMdL2Ports, 8}, {RepMdTxUtil, 4}, {RepMdBufferOcc, 4}, {RepMdDropReason, 4},
}

// hostMdSize returns the bytes of bufscope DS metadata DSMdBits selects, and
// false if a reserved bit is set.
func hostMdSize(bits uint16) (int, bool) {
	if bits&^hostMdKnown != 0 {
		return 0, false
	}
	n := 0
	for _, s := range hostMdSizes {
		if bits&s.mask != 0 {
			n += s.size
		}
	}
	return n, true
}

var hostMdSizes = [...]struct {
	mask uint16
	size int
}{
	{HostMdBufferEvent, 4}, {HostMdOccBytes, 8}, {HostMdOccPackets, 8}, {HostMdDropReason, 4},
	{HostMdDropName, hostDropNameLength}, {HostMdWindows, 8}, {HostMdDuration, 4},
}

func sat24(v uint32) uint32 {
	if v > 0xFFFFFF {
		return 0xFFFFFF
	}
	return v
}

// AppendHostReport appends a complete Telemetry Report v2.0 UDP payload (group
// header + one individual report per event) to dst and returns it. It
// allocates nothing when dst has capacity.
//
// seq is taken modulo 2^22 (the group header's sequence field wraps). An
// error names the event index and field when an event cannot be encoded (hw
// id above 63, inner packet that is not IPv4/IPv6, report too long for the
// 8-bit Report Length, drop reason name too long); dst is then returned
// unchanged in length. Safe for concurrent use: it touches only its arguments.
func AppendHostReport(dst []byte, nodeID uint32, hwID uint8, seq uint32, evs []HostEvent) ([]byte, error) {
	if hwID > 63 {
		return dst, fmt.Errorf("host report: hw id %d does not fit the 6-bit field (0-63)", hwID)
	}
	start := len(dst)
	var g [8]byte
	binary.BigEndian.PutUint32(g[0:], 2<<28|uint32(hwID)<<22|seq&0x3FFFFF)
	binary.BigEndian.PutUint32(g[4:], nodeID)
	dst = append(dst, g[:]...)
	for i := range evs {
		var err error
		dst, err = appendHostIndividual(dst, &evs[i])
		if err != nil {
			return dst[:start], fmt.Errorf("host report event %d: %w", i, err)
		}
	}
	return dst, nil
}

func appendHostIndividual(dst []byte, e *HostEvent) ([]byte, error) {
	rep, ds, flags := e.hostBits()
	inType := uint8(InTypeNone)
	if len(e.Inner) > 0 {
		switch e.Inner[0] >> 4 {
		case 4:
			inType = InTypeIPv4
		case 6:
			inType = InTypeIPv6
		default:
			return dst, fmt.Errorf("inner packet starts with IP version %d, want 4 or 6", e.Inner[0]>>4)
		}
	}
	if len(e.DropReasonName) > hostDropNameLength {
		return dst, fmt.Errorf("drop reason name %q is %d bytes, the field holds %d", e.DropReasonName, len(e.DropReasonName), hostDropNameLength)
	}
	baseLen, _ := repMdSize(rep)
	dsLen, _ := hostMdSize(ds)
	mdWords := (baseLen + dsLen) / 4
	innerWords := (len(e.Inner) + 3) / 4
	repLen := 2 + mdWords + innerWords
	if repLen >= 0xFF {
		return dst, fmt.Errorf("report needs %d words, the 8-bit Report Length allows 254: truncate the inner packet (%d bytes)", repLen, len(e.Inner))
	}
	var h [12]byte
	h[0] = ReportTypeINT<<4 | inType
	h[1] = uint8(repLen)
	h[2] = uint8(mdWords)
	h[3] = flags << 4
	binary.BigEndian.PutUint16(h[4:], rep)
	binary.BigEndian.PutUint16(h[6:], HostDomainID)
	binary.BigEndian.PutUint16(h[8:], ds)
	// h[10:12] DSMdStatus = 0
	dst = append(dst, h[:]...)

	var w [8]byte
	if rep&RepMdL1Ports != 0 {
		binary.BigEndian.PutUint16(w[0:], 0)
		binary.BigEndian.PutUint16(w[2:], e.IfIndex)
		dst = append(dst, w[:4]...)
	}
	if rep&RepMdHopLatency != 0 {
		binary.BigEndian.PutUint32(w[0:], e.HopLatency)
		dst = append(dst, w[:4]...)
	}
	if rep&RepMdQueueOcc != 0 {
		binary.BigEndian.PutUint32(w[0:], uint32(e.QueueID)<<24|sat24(e.QueueOccupancy))
		dst = append(dst, w[:4]...)
	}
	if rep&RepMdIngressTS != 0 {
		binary.BigEndian.PutUint64(w[0:], e.IngressTime)
		dst = append(dst, w[:8]...)
	}
	if rep&RepMdEgressTS != 0 {
		binary.BigEndian.PutUint64(w[0:], e.EgressTime)
		dst = append(dst, w[:8]...)
	}
	if rep&RepMdDropReason != 0 {
		r := e.DropReason
		if r > 0xFF {
			r = 0xFF
		}
		binary.BigEndian.PutUint32(w[0:], uint32(e.QueueID)<<24|r<<16)
		dst = append(dst, w[:4]...)
	}
	if ds&HostMdBufferEvent != 0 {
		w[0], w[1] = uint8(e.Buffer), uint8(e.Event)
		binary.BigEndian.PutUint16(w[2:], e.Flags)
		dst = append(dst, w[:4]...)
	}
	if ds&HostMdOccBytes != 0 {
		binary.BigEndian.PutUint32(w[0:], e.OccupancyBytes)
		binary.BigEndian.PutUint32(w[4:], e.CapacityBytes)
		dst = append(dst, w[:8]...)
	}
	if ds&HostMdOccPackets != 0 {
		binary.BigEndian.PutUint32(w[0:], e.OccupancyPackets)
		binary.BigEndian.PutUint32(w[4:], e.CapacityPackets)
		dst = append(dst, w[:8]...)
	}
	if ds&HostMdDropReason != 0 {
		binary.BigEndian.PutUint32(w[0:], e.DropReason)
		dst = append(dst, w[:4]...)
	}
	if ds&HostMdDropName != 0 {
		var name [hostDropNameLength]byte
		copy(name[:], e.DropReasonName)
		dst = append(dst, name[:]...)
	}
	if ds&HostMdWindows != 0 {
		binary.BigEndian.PutUint32(w[0:], e.RcvWnd)
		binary.BigEndian.PutUint32(w[4:], e.SndCwnd)
		dst = append(dst, w[:8]...)
	}
	if ds&HostMdDuration != 0 {
		binary.BigEndian.PutUint32(w[0:], e.Duration)
		dst = append(dst, w[:4]...)
	}
	dst = append(dst, e.Inner...)
	if pad := innerWords*4 - len(e.Inner); pad > 0 {
		var zero [3]byte
		dst = append(dst, zero[:pad]...)
	}
	return dst, nil
}

// HostEvent converts a decoded bufscope host report back into the HostEvent
// its sender encoded. ok is false when r is not a fully understood host
// report (another Domain Specific ID, or a Reason). Values the wire format
// saturates (queue occupancy above 0xFFFFFF) come back saturated, and Inner
// keeps the zero padding to a word boundary; Inner aliases the decoded
// buffer. DropReasonName allocates.
func (r *ReportV2) HostEvent() (e HostEvent, ok bool) {
	if r.RepType != ReportTypeINT || r.DomainID != HostDomainID || r.Reason != "" {
		return HostEvent{}, false
	}
	b, h := &r.Baseline, &r.Host
	e = HostEvent{
		Buffer: h.Buffer, Event: h.Event, Flags: h.Flags,
		IfIndex: b.EgressPort, HopLatency: b.HopLatency,
		IngressTime: b.IngressTS, EgressTime: b.EgressTS,
		OccupancyBytes: h.OccupancyBytes, CapacityBytes: h.CapacityBytes,
		OccupancyPackets: h.OccupancyPackets, CapacityPackets: h.CapacityPackets,
		RcvWnd: h.RcvWnd, SndCwnd: h.SndCwnd, Duration: h.Duration,
		Inner: r.Inner,
	}
	switch {
	case r.RepMdBits&RepMdQueueOcc != 0:
		e.QueueID, e.QueueOccupancy = b.QueueID, b.QueueOccupancy
	case r.RepMdBits&RepMdDropReason != 0:
		e.QueueID = b.DropQueueID
	}
	if r.DSMdBits&HostMdDropReason != 0 {
		e.DropReason = h.DropReason
	}
	if r.DSMdBits&HostMdDropName != 0 {
		e.DropReasonName = h.DropName()
	}
	if len(e.Inner) == 0 {
		e.Inner = nil
	}
	return e, true
}
