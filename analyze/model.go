package analyze

import (
	"encoding/json"
	"net/netip"
	"strconv"

	"github.com/bufscope/bufscope/decode"
)

// BufferID names one buffer of the fleet: the node that reported it, its
// kind, the egress port (ifindex or switch port) and the queue. Buffers
// without a report (the application, the wire) use the pseudo kinds below.
// A BufferID is a comparable value, usable as a map key.
type BufferID struct {
	Node  uint32
	Kind  ElementKind
	Port  uint32
	Queue uint8
}

// ElementKind is the kind of one element of a request's chain: one of the
// host/switch buffer kinds of docs/wire-format.md §2, or a pseudo element
// that holds time without being a buffer.
type ElementKind uint8

// Pseudo elements. Real buffers use decode.BufferKind values (1–8).
const (
	// ElemApplication is the server's processing time: last request byte
	// in to first response byte out.
	ElemApplication ElementKind = 100 + iota
	// ElemWire is the part of a message's transfer that no buffer report
	// accounts for: propagation, serialization and unreported queuing.
	ElemWire
	// ElemRetransmit is time spent waiting for retransmissions.
	ElemRetransmit
	// ElemLink is a lossy link: retransmissions with no drop reported by
	// any buffer.
	ElemLink
)

// String returns the name used in tables, JSON and truth files:
// decode.BufferKind names for buffers, "application", "wire",
// "retransmit-wait", "link" for pseudo elements.
func (k ElementKind) String() string {
	switch k {
	case ElemApplication:
		return "application"
	case ElemWire:
		return "wire"
	case ElemRetransmit:
		return "retransmit-wait"
	case ElemLink:
		return "link"
	}
	return decode.BufferKind(k).String()
}

// IsBuffer says whether k is a real buffer (one that reports events).
func (k ElementKind) IsBuffer() bool { return k >= 1 && k <= 8 }

// EventClass names an event of the library (DESIGN.md §"The buffer chain and
// the event library").
type EventClass uint8

// Event classes. Drop, queuing and stall are buffer properties going wrong;
// the rest complete the picture.
const (
	EvNone EventClass = iota
	EvDrop
	EvQueuing
	EvStall
	EvPathChange
	EvSlowApp // the application held the request (server processing)
	EvLoss    // segments lost with no buffer reporting a drop
)

var eventClassNames = [...]string{"none", "drop", "queuing", "stall", "path-change", "slow-app", "loss"}

// String returns the event's name as truth files and JSON use it.
func (e EventClass) String() string {
	if int(e) < len(eventClassNames) {
		return eventClassNames[e]
	}
	return "event(" + strconv.Itoa(int(e)) + ")"
}

// Evidence is one record that supports an event or a timing, kept as a
// compact summary (the full Record is not retained).
type Evidence struct {
	Time      int64             `json:"time_ns"`
	Kind      decode.RecordKind `json:"-"`
	Source    decode.Source     `json:"-"`
	Buffer    decode.BufferKind `json:"-"`
	Event     decode.EventKind  `json:"-"`
	Flow      decode.Flow       `json:"-"`
	Seq       uint32            `json:"seq,omitempty"`
	Latency   uint32            `json:"latency_ns,omitempty"`
	Occupancy uint32            `json:"occupancy,omitempty"`
	Capacity  uint32            `json:"capacity,omitempty"`
	Drop      string            `json:"drop_reason,omitempty"`
	Flags     uint16            `json:"-"`
	Note      string            `json:"note,omitempty"`
}

// Event is one abnormal condition of one buffer, from Start to End, with
// its magnitude (the largest residence in ns for queuing and stalls, the
// number of drops for a drop event) and up to maxEvidence records.
type Event struct {
	ID        int
	Buffer    BufferID
	Class     EventClass
	Start     int64
	End       int64
	Magnitude int64
	Peak      uint32 // largest occupancy reported
	Count     int    // records that make up the event
	Evidence  []Evidence
	open      bool
}

const maxEvidence = 8

func (e *Event) addEvidence(ev Evidence) {
	e.Count++
	if len(e.Evidence) < maxEvidence {
		e.Evidence = append(e.Evidence, ev)
	}
}

func (e *Event) overlaps(from, to int64) bool { return e.Start <= to && e.End >= from }

// FlowString renders a flow as "src:port->dst:port", the form truth files
// use for culprit flows.
func FlowString(f decode.Flow) string {
	if f.IPVersion == 0 {
		return "-"
	}
	return netip.AddrPortFrom(f.SrcAddr(), f.SrcPort).String() + "->" + netip.AddrPortFrom(f.DstAddr(), f.DstPort).String()
}

// HexID renders an RPC or trace ID as truth files and --explain take it.
func HexID(id uint64) string {
	const digits = "0123456789abcdef"
	var b [18]byte
	b[0], b[1] = '0', 'x'
	for i := 17; i >= 2; i-- {
		b[i] = digits[id&0xf]
		id >>= 4
	}
	return string(b[:])
}

// MarshalJSON writes the names of kinds and the flow as text
// (docs/analyze-json.md).
func (e Evidence) MarshalJSON() ([]byte, error) {
	type out struct {
		Time      int64  `json:"time_ns"`
		Record    string `json:"record"`
		Source    string `json:"source"`
		Buffer    string `json:"buffer,omitempty"`
		Event     string `json:"event,omitempty"`
		Flow      string `json:"flow"`
		Seq       uint32 `json:"seq"`
		Latency   uint32 `json:"latency_ns,omitempty"`
		Occupancy uint32 `json:"occupancy,omitempty"`
		Capacity  uint32 `json:"capacity,omitempty"`
		Drop      string `json:"drop_reason,omitempty"`
		Note      string `json:"note,omitempty"`
	}
	o := out{Time: e.Time, Record: e.Kind.String(), Source: e.Source.String(), Flow: FlowString(e.Flow), Seq: e.Seq,
		Latency: e.Latency, Occupancy: e.Occupancy, Capacity: e.Capacity, Drop: e.Drop, Note: e.Note}
	if e.Buffer != 0 {
		o.Buffer = e.Buffer.String()
	}
	if e.Event != 0 {
		o.Event = e.Event.String()
	}
	return json.Marshal(o)
}
