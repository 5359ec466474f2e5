package decode

import (
	"fmt"
	"net/netip"
)

// RecordKind says what a Record observed.
type RecordKind uint8

// Record kinds.
const (
	// RecordPacket: a data packet seen at a capture point.
	RecordPacket RecordKind = 1
	// RecordHop: one node's metadata about a packet (INT/IFA hop, flow
	// report, postcard) with no drop or congestion flag.
	RecordHop RecordKind = 2
	// RecordDrop: a switch drop report (D flag or drop header).
	RecordDrop RecordKind = 3
	// RecordQueue: a switch queue (congestion) report (Q flag).
	RecordQueue RecordKind = 4
	// RecordHostEvent: a bufscope host-buffer event (DS ID 0xB5C0).
	RecordHostEvent RecordKind = 5
	// RecordOpaque: telemetry that was recognised but not understood;
	// Reason says why.
	RecordOpaque RecordKind = 6
)

var recordKindNames = [...]string{
	RecordPacket: "packet", RecordHop: "hop", RecordDrop: "drop",
	RecordQueue: "queue", RecordHostEvent: "host-event", RecordOpaque: "opaque",
}

// String returns the kind's JSON name.
func (k RecordKind) String() string {
	if int(k) < len(recordKindNames) && recordKindNames[k] != "" {
		return recordKindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Source names the format a Record was decoded from.
type Source uint8

// Sources.
const (
	SourceCapture  Source = 1 // the captured packet itself
	SourceINT      Source = 2 // an INT-MD stack (v1.0 or v2.x)
	SourceReportV2 Source = 3
	SourceReportV1 Source = 4
	SourceReportV0 Source = 5 // Telemetry Report v0.5
	SourceIFA      Source = 6
)

var sourceNames = [...]string{
	SourceCapture: "capture", SourceINT: "int", SourceReportV2: "report-v2.0",
	SourceReportV1: "report-v1.0", SourceReportV0: "report-v0.5", SourceIFA: "ifa",
}

// String returns the source's JSON name.
func (s Source) String() string {
	if int(s) < len(sourceNames) && sourceNames[s] != "" {
		return sourceNames[s]
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Flow is a 5-tuple. IPv4 addresses are held in the first 4 bytes of Src and
// Dst. A Flow is a comparable value, usable as a map key.
type Flow struct {
	IPVersion        uint8 // 4 or 6; 0 = no flow
	Proto            uint8 // IP protocol of the transport header
	Src, Dst         [16]byte
	SrcPort, DstPort uint16
}

// SrcAddr returns the source address.
func (f Flow) SrcAddr() netip.Addr { return f.addr(f.Src) }

// DstAddr returns the destination address.
func (f Flow) DstAddr() netip.Addr { return f.addr(f.Dst) }

func (f Flow) addr(a [16]byte) netip.Addr {
	switch f.IPVersion {
	case 4:
		return netip.AddrFrom4([4]byte(a[:4]))
	case 6:
		return netip.AddrFrom16(a)
	}
	return netip.Addr{}
}

// String renders "src:port > dst:port proto". It allocates.
func (f Flow) String() string {
	if f.IPVersion == 0 {
		return "-"
	}
	return fmt.Sprintf("%s > %s proto %d",
		netip.AddrPortFrom(f.SrcAddr(), f.SrcPort), netip.AddrPortFrom(f.DstAddr(), f.DstPort), f.Proto)
}

// TCP flag bits as Record.TCPFlags holds them (the low 9 bits of the TCP
// header's flags field).
const (
	TCPFlagFIN = 0x001
	TCPFlagSYN = 0x002
	TCPFlagRST = 0x004
	TCPFlagPSH = 0x008
	TCPFlagACK = 0x010
	TCPFlagURG = 0x020
	TCPFlagECE = 0x040
	TCPFlagCWR = 0x080
	TCPFlagNS  = 0x100
)

// Record is the normalised observation the analyzer reads: one per data
// packet, per report, per INT/IFA hop. It is a plain value that owns no
// memory (fixed-size arrays only; Reason points at static text), so Records
// may be kept, copied and compared freely after the packet buffer is gone.
//
// Zero means "not reported" for optional numeric fields; Has* flags mark the
// groups where zero is a real value.
type Record struct {
	// The fields a captured data segment fills come first: with them in
	// the first two cache lines, the analyzer, which reads Records another
	// CPU wrote, loads two lines of such a Record instead of three.
	Time      int64 // capture time, ns since the Unix epoch
	Interface int   // capture interface (pcapng interface id)
	Kind      RecordKind
	Source    Source

	// The packet (the captured one, or a report's inner packet).
	HasFlow bool
	// HasTag: the segment carries a request tag (Tag).
	HasTag bool
	// HasDSACK: the segment's first SACK block lies below its cumulative
	// ACK (RFC 2883): the receiver got the bytes from DSACKLeft twice, so
	// a retransmission of them was spurious.
	HasDSACK   bool
	DSCP       uint8
	TCPFlags   uint16
	TCPSeq     uint32
	TCPAck     uint32
	PayloadLen uint32 // L4 payload bytes by the IP length fields (INT bytes excluded)
	Window     uint16 // raw, unscaled
	Flow       Flow
	DSACKLeft  uint32 // the packet's D-SACK block's left edge, if HasDSACK
	Tag        RequestTag

	// Observation point.
	HasNode     bool
	Node        uint32 // Node/Switch ID
	HwID        uint8
	Seq         uint32 // report sequence number
	Hop         uint8  // position in an INT/IFA stack, 0 = newest (nearest the sink)
	Hops        uint8  // number of hops in that stack
	Buffer      BufferKind
	Event       EventKind
	EventFlags  uint16
	QueueID     uint8
	IngressPort uint32
	EgressPort  uint32

	// Buffer state.
	Occupancy        uint32 // bytes (host) or the switch's unit (cells/bytes)
	Capacity         uint32
	OccupancyPackets uint32
	CapacityPackets  uint32
	Latency          uint32 // ns in the buffer (hop latency / residence)
	IngressTS        uint64 // as reported: ns, 64 bits in v2 / INT v2; 32-bit counters in older formats
	EgressTS         uint64
	HasDropReason    bool
	DropReason       uint32
	DropReasonName   [32]byte // host reports only; NUL-padded ASCII
	RcvWnd, SndCwnd  uint32
	Duration         uint32

	// Reason is non-empty for RecordOpaque, and for other records that
	// carry something suspicious (e.g. a malformed request tag).
	Reason string
}

// DropName returns the drop reason's name: the host-supplied name, or the
// P4.org/fabric-tna meaning of a switch drop code, or "" if none is known.
// It allocates only for host names.
func (r *Record) DropName() string {
	if !r.HasDropReason {
		return ""
	}
	if r.DropReasonName[0] != 0 {
		n := 0
		for n < len(r.DropReasonName) && r.DropReasonName[n] != 0 {
			n++
		}
		return string(r.DropReasonName[:n])
	}
	if r.Kind != RecordHostEvent && (r.Source == SourceReportV2 || r.Source == SourceReportV1 || r.Source == SourceReportV0) {
		return SwitchDropReasonName(uint8(r.DropReason))
	}
	return ""
}
