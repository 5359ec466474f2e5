package decode

import (
	"fmt"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// JSONSchema names the version of the JSON form below; docs/decode-json.md
// describes it. A change that removes or renames a field, or changes a
// field's meaning, bumps the number; adding fields does not.
const JSONSchema = "bufscope.decode/1"

// PacketJSON is one packet in `bufscope decode --json` output (one object
// per line).
type PacketJSON struct {
	Schema    string       `json:"schema"`
	Frame     int64        `json:"frame"`
	Time      string       `json:"time"`
	TimeNS    int64        `json:"time_ns"`
	Interface int          `json:"interface"`
	Length    int          `json:"length"`
	Summary   string       `json:"summary"`
	Records   []RecordJSON `json:"records"`
}

// RecordJSON is the JSON form of a Record. Optional fields are omitted when
// the record does not carry them.
type RecordJSON struct {
	Kind        string    `json:"kind"`
	Source      string    `json:"source"`
	Reason      string    `json:"reason,omitempty"`
	Node        *uint32   `json:"node,omitempty"`
	HwID        uint8     `json:"hw_id,omitempty"`
	Seq         uint32    `json:"report_seq,omitempty"`
	Hop         *HopJSON  `json:"hop,omitempty"`
	Buffer      string    `json:"buffer,omitempty"`
	Event       string    `json:"event,omitempty"`
	EventFlags  uint16    `json:"event_flags,omitempty"`
	QueueID     uint8     `json:"queue_id,omitempty"`
	IngressPort uint32    `json:"ingress_port,omitempty"`
	EgressPort  uint32    `json:"egress_port,omitempty"`
	Flow        *FlowJSON `json:"flow,omitempty"`
	TCP         *TCPJSON  `json:"tcp,omitempty"`
	Tag         *TagJSON  `json:"tag,omitempty"`

	OccupancyBytes   uint32    `json:"occupancy,omitempty"`
	CapacityBytes    uint32    `json:"capacity,omitempty"`
	OccupancyPackets uint32    `json:"occupancy_packets,omitempty"`
	CapacityPackets  uint32    `json:"capacity_packets,omitempty"`
	LatencyNS        uint32    `json:"latency_ns,omitempty"`
	IngressTS        uint64    `json:"ingress_ts,omitempty"`
	EgressTS         uint64    `json:"egress_ts,omitempty"`
	Drop             *DropJSON `json:"drop,omitempty"`
	RcvWnd           uint32    `json:"rcv_wnd,omitempty"`
	SndCwnd          uint32    `json:"snd_cwnd,omitempty"`
	DurationNS       uint32    `json:"duration_ns,omitempty"`
}

// HopJSON places a record in an INT or IFA stack.
type HopJSON struct {
	Index int `json:"index"` // 0 = newest
	Count int `json:"count"`
}

// FlowJSON is a 5-tuple.
type FlowJSON struct {
	IPVersion uint8  `json:"ip_version"`
	Proto     uint8  `json:"proto"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	SrcPort   uint16 `json:"src_port"`
	DstPort   uint16 `json:"dst_port"`
	DSCP      uint8  `json:"dscp"`
	Length    uint32 `json:"payload_length"`
}

// TCPJSON is the TCP state of a record's packet.
type TCPJSON struct {
	Seq    uint32   `json:"seq"`
	Ack    uint32   `json:"ack"`
	Flags  []string `json:"flags"`
	Window uint16   `json:"window"`
}

// TagJSON is a request tag; the 64-bit IDs are hex strings so that no JSON
// reader loses precision.
type TagJSON struct {
	Version       uint8  `json:"version"`
	Kind          string `json:"kind"`
	Retransmit    bool   `json:"retransmit"`
	RPCID         string `json:"rpc_id"`
	TraceID       string `json:"trace_id"`
	MessageLength uint32 `json:"message_length"`
}

// DropJSON is a drop reason with its name when one is known.
type DropJSON struct {
	Reason uint32 `json:"reason"`
	Name   string `json:"name,omitempty"`
}

// ToJSON converts a Record to its JSON form.
func (r *Record) ToJSON() RecordJSON {
	j := RecordJSON{
		Kind: r.Kind.String(), Source: r.Source.String(), Reason: r.Reason,
		HwID: r.HwID, Seq: r.Seq, QueueID: r.QueueID, IngressPort: r.IngressPort, EgressPort: r.EgressPort,
		OccupancyBytes: r.Occupancy, CapacityBytes: r.Capacity,
		OccupancyPackets: r.OccupancyPackets, CapacityPackets: r.CapacityPackets,
		LatencyNS: r.Latency, IngressTS: r.IngressTS, EgressTS: r.EgressTS,
		RcvWnd: r.RcvWnd, SndCwnd: r.SndCwnd, DurationNS: r.Duration, EventFlags: r.EventFlags,
	}
	if r.HasNode {
		n := r.Node
		j.Node = &n
	}
	if r.Hops > 0 {
		j.Hop = &HopJSON{Index: int(r.Hop), Count: int(r.Hops)}
	}
	if r.Buffer != 0 {
		j.Buffer = r.Buffer.String()
	}
	if r.Event != 0 {
		j.Event = r.Event.String()
	}
	if r.HasFlow {
		j.Flow = &FlowJSON{IPVersion: r.Flow.IPVersion, Proto: r.Flow.Proto,
			Src: r.Flow.SrcAddr().String(), Dst: r.Flow.DstAddr().String(),
			SrcPort: r.Flow.SrcPort, DstPort: r.Flow.DstPort, DSCP: r.DSCP, Length: r.PayloadLen}
		if r.Flow.Proto == uint8(layers.IPProtocolTCP) {
			fl := TCPFlagsString(r.TCPFlags)
			j.TCP = &TCPJSON{Seq: r.TCPSeq, Ack: r.TCPAck, Window: r.Window, Flags: splitFlags(fl)}
		}
	}
	if r.HasTag {
		j.Tag = &TagJSON{Version: r.Tag.Version, Kind: r.Tag.Kind.String(), Retransmit: r.Tag.Flags&TagFlagRetransmit != 0,
			RPCID: fmt.Sprintf("%016x", r.Tag.RPCID), TraceID: fmt.Sprintf("%016x", r.Tag.TraceID), MessageLength: r.Tag.MessageLength}
	}
	if r.HasDropReason {
		j.Drop = &DropJSON{Reason: r.DropReason, Name: r.DropName()}
	}
	return j
}

func splitFlags(s string) []string {
	out := []string{}
	cur := ""
	for _, c := range s[1 : len(s)-1] {
		switch c {
		case ',':
			out = append(out, cur)
			cur = ""
		case ' ':
		default:
			cur += string(c)
		}
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// PacketJSON decodes one packet into its JSON form. frame is the 1-based
// packet number in the file. Not safe for concurrent use with other calls
// on d.
func (d *Decoder) PacketJSON(frame int64, ts time.Time, iface int, link layers.LinkType, data []byte, wireLen int) PacketJSON {
	recs := d.Records(ts.UnixNano(), iface, link, data, nil)
	return PacketJSONOf(frame, ts, iface, wireLen, recs)
}

// PacketJSONOf builds the JSON form from already decoded Records.
func PacketJSONOf(frame int64, ts time.Time, iface int, wireLen int, recs []Record) PacketJSON {
	p := PacketJSON{
		Schema: JSONSchema, Frame: frame, Time: ts.UTC().Format(time.RFC3339Nano), TimeNS: ts.UnixNano(),
		Interface: iface, Length: wireLen, Summary: SummaryOf(recs), Records: make([]RecordJSON, 0, len(recs)),
	}
	for i := range recs {
		p.Records = append(p.Records, recs[i].ToJSON())
	}
	return p
}
