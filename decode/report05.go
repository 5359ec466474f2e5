package decode

import (
	"encoding/binary"
	"errors"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Telemetry Report v0.5 next-protocol values.
const (
	ReportV05Ethernet    = 0 // Ethernet follows the fixed header
	ReportV05Drop        = 1 // Drop Report header, then Ethernet
	ReportV05SwitchLocal = 2 // Switch Local Report header, then Ethernet
)

// TelemetryReportV05 is a Telemetry Report v0.5 fixed header (12 bytes) with
// its optional Drop (12 bytes) or Switch Local (16 bytes) header, as
// fabric-tna / SD-Fabric send it. The payload is the reported Ethernet frame.
// Not safe for concurrent use.
type TelemetryReportV05 struct {
	layers.BaseLayer
	Version   uint8
	NProto    uint8
	D, Q, F   bool
	Reserved  uint16 // 15 bits
	HwID      uint8
	Seq       uint32
	IngressTS uint32

	// Drop (NProto 1) and Switch Local (NProto 2) header fields.
	SwitchID                uint32
	IngressPort, EgressPort uint16
	QueueID                 uint8
	QueueOccupancy          uint32 // Switch Local only, 24 bits
	EgressTS                uint32 // Switch Local only
	DropReason              uint8  // Drop only
	DropPad                 uint16 // Drop only

	Reason string
}

var (
	errReportV05Short   = errors.New("telemetry report v0.5: shorter than its fixed and typed headers")
	errReportV05Version = errors.New("telemetry report v0.5: version nibble is not 0")
)

const (
	reasonV05NProto   = "reserved next protocol (NProto 3-15)"
	reasonV05Reserved = "reserved bits set in the v0.5 fixed header (not a telemetry report?)"
)

// LayerType returns LayerTypeTelemetryReportV05.
func (t *TelemetryReportV05) LayerType() gopacket.LayerType { return LayerTypeTelemetryReportV05 }

// CanDecode returns LayerTypeTelemetryReportV05.
func (t *TelemetryReportV05) CanDecode() gopacket.LayerClass { return LayerTypeTelemetryReportV05 }

// NextLayerType is Ethernet unless the header was not understood.
func (t *TelemetryReportV05) NextLayerType() gopacket.LayerType {
	if t.Reason != "" || len(t.Payload) == 0 {
		return gopacket.LayerTypeZero
	}
	return layers.LayerTypeEthernet
}

func (t *TelemetryReportV05) headerLen() int {
	switch t.NProto {
	case ReportV05Drop:
		return 24
	case ReportV05SwitchLocal:
		return 28
	}
	return 12
}

// DecodeFromBytes decodes the fixed header and the typed header NProto names.
func (t *TelemetryReportV05) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 12 {
		df.SetTruncated()
		return errReportV05Short
	}
	w0 := binary.BigEndian.Uint32(data)
	*t = TelemetryReportV05{
		Version:   uint8(w0 >> 28),
		NProto:    uint8(w0>>24) & 0xF,
		D:         w0&(1<<23) != 0,
		Q:         w0&(1<<22) != 0,
		F:         w0&(1<<21) != 0,
		Reserved:  uint16(w0>>6) & 0x7FFF,
		HwID:      uint8(w0) & 0x3F,
		Seq:       binary.BigEndian.Uint32(data[4:]),
		IngressTS: binary.BigEndian.Uint32(data[8:]),
	}
	if t.Version != 0 {
		return errReportV05Version
	}
	if t.NProto > ReportV05SwitchLocal {
		t.Reason = reasonV05NProto
		t.Contents, t.Payload = data[:12], data[12:]
		return nil
	}
	n := t.headerLen()
	if len(data) < n {
		df.SetTruncated()
		return errReportV05Short
	}
	h := data[12:n]
	switch t.NProto {
	case ReportV05Drop:
		t.SwitchID = binary.BigEndian.Uint32(h)
		t.IngressPort = binary.BigEndian.Uint16(h[4:])
		t.EgressPort = binary.BigEndian.Uint16(h[6:])
		t.QueueID, t.DropReason = h[8], h[9]
		t.DropPad = binary.BigEndian.Uint16(h[10:])
	case ReportV05SwitchLocal:
		t.SwitchID = binary.BigEndian.Uint32(h)
		t.IngressPort = binary.BigEndian.Uint16(h[4:])
		t.EgressPort = binary.BigEndian.Uint16(h[6:])
		v := binary.BigEndian.Uint32(h[8:])
		t.QueueID, t.QueueOccupancy = uint8(v>>24), v&0xFFFFFF
		t.EgressTS = binary.BigEndian.Uint32(h[12:])
	}
	t.Contents, t.Payload = data[:n], data[n:]
	if t.Reserved != 0 {
		// Senders clear them; on a shared port this is the cheapest sign
		// that the payload is not a report at all.
		t.Reason = reasonV05Reserved
	}
	return nil
}

// SerializeTo writes the fixed header and the typed header NProto selects.
func (t *TelemetryReportV05) SerializeTo(b gopacket.SerializeBuffer, opts gopacket.SerializeOptions) error {
	out := make([]byte, 0, 28)
	w0 := uint32(t.Version&0xF)<<28 | uint32(t.NProto&0xF)<<24 | uint32(t.Reserved&0x7FFF)<<6 | uint32(t.HwID&0x3F)
	if t.D {
		w0 |= 1 << 23
	}
	if t.Q {
		w0 |= 1 << 22
	}
	if t.F {
		w0 |= 1 << 21
	}
	out = binary.BigEndian.AppendUint32(out, w0)
	out = binary.BigEndian.AppendUint32(out, t.Seq)
	out = binary.BigEndian.AppendUint32(out, t.IngressTS)
	switch t.NProto {
	case ReportV05Drop:
		out = binary.BigEndian.AppendUint32(out, t.SwitchID)
		out = binary.BigEndian.AppendUint16(out, t.IngressPort)
		out = binary.BigEndian.AppendUint16(out, t.EgressPort)
		out = append(out, t.QueueID, t.DropReason)
		out = binary.BigEndian.AppendUint16(out, t.DropPad)
	case ReportV05SwitchLocal:
		out = binary.BigEndian.AppendUint32(out, t.SwitchID)
		out = binary.BigEndian.AppendUint16(out, t.IngressPort)
		out = binary.BigEndian.AppendUint16(out, t.EgressPort)
		out = binary.BigEndian.AppendUint32(out, uint32(t.QueueID)<<24|sat24(t.QueueOccupancy))
		out = binary.BigEndian.AppendUint32(out, t.EgressTS)
	}
	buf, err := b.PrependBytes(len(out))
	if err != nil {
		return err
	}
	copy(buf, out)
	return nil
}

func decodeTelemetryReportV05(data []byte, p gopacket.PacketBuilder) error {
	t := &TelemetryReportV05{}
	if err := t.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(t)
	return nextDecoder(p, t.NextLayerType())
}
