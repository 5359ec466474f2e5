package decode

import (
	"encoding/binary"
	"errors"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Telemetry Report v1.0 RepMdBits (6 bits; bit 0 is the most significant).
const (
	RepV1Ports      = 0x20 // ingress port (16) + egress port (16)
	RepV1HopLatency = 0x10
	RepV1QueueOcc   = 0x08 // queue id (8) + occupancy (24)
	RepV1EgressTS   = 0x04
	RepV1DropReason = 0x02 // queue id (8) + drop reason (8) + pad (16)
	RepV1TxUtil     = 0x01
)

// TelemetryReportV1 is a Telemetry Report v1.0 header (16 bytes plus 4 bytes
// per RepMdBits bit). The payload is the reported packet, starting with the
// header NProto names. Not safe for concurrent use.
type TelemetryReportV1 struct {
	layers.BaseLayer
	Version   uint8
	Length    uint8 // words including optional metadata
	NProto    uint8 // 0 Ethernet, 1 IPv4, 2 IPv6
	RepMdBits uint8
	Reserved  uint8
	D, Q, F   bool
	HwID      uint8
	SwitchID  uint32
	Seq       uint32
	IngressTS uint32

	IngressPort, EgressPort uint16
	HopLatency              uint32
	QueueID                 uint8
	QueueOccupancy          uint32
	EgressTS                uint32
	DropQueueID, DropReason uint8
	TxUtilization           uint32

	// Reason is set when the header was recognised but its lengths or
	// next-protocol contradict the v1.0 layout; the payload is then not
	// decoded further.
	Reason string
}

var (
	errReportV1Short   = errors.New("telemetry report v1.0: shorter than the 16-byte header")
	errReportV1Version = errors.New("telemetry report v1.0: version nibble is not 1")
)

const (
	reasonV1Length = "Length does not match 4 words plus one per RepMdBits bit"
	reasonV1Short  = "Length runs past the end of the UDP payload"
	reasonV1NProto = "reserved next protocol (NProto 3-7)"
	reasonV1Rsvd   = "reserved bits set in the v1.0 header (not a telemetry report?)"
)

// LayerType returns LayerTypeTelemetryReportV1.
func (t *TelemetryReportV1) LayerType() gopacket.LayerType { return LayerTypeTelemetryReportV1 }

// CanDecode returns LayerTypeTelemetryReportV1.
func (t *TelemetryReportV1) CanDecode() gopacket.LayerClass { return LayerTypeTelemetryReportV1 }

// NextLayerType follows NProto.
func (t *TelemetryReportV1) NextLayerType() gopacket.LayerType {
	if t.Reason != "" || len(t.Payload) == 0 {
		return gopacket.LayerTypeZero
	}
	switch t.NProto {
	case 0:
		return layers.LayerTypeEthernet
	case 1:
		return layers.LayerTypeIPv4
	case 2:
		return layers.LayerTypeIPv6
	}
	return gopacket.LayerTypeZero
}

func popcount6(b uint8) int {
	n := 0
	for b &= 0x3F; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// DecodeFromBytes decodes the header and its optional metadata.
func (t *TelemetryReportV1) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 16 {
		df.SetTruncated()
		return errReportV1Short
	}
	w0 := binary.BigEndian.Uint32(data)
	*t = TelemetryReportV1{
		Version:   uint8(w0 >> 28),
		Length:    uint8(w0>>24) & 0xF,
		NProto:    uint8(w0>>21) & 0x7,
		RepMdBits: uint8(w0>>15) & 0x3F,
		Reserved:  uint8(w0>>9) & 0x3F,
		D:         w0&(1<<8) != 0,
		Q:         w0&(1<<7) != 0,
		F:         w0&(1<<6) != 0,
		HwID:      uint8(w0) & 0x3F,
		SwitchID:  binary.BigEndian.Uint32(data[4:]),
		Seq:       binary.BigEndian.Uint32(data[8:]),
		IngressTS: binary.BigEndian.Uint32(data[12:]),
	}
	if t.Version != 1 {
		return errReportV1Version
	}
	n := int(t.Length) * 4
	switch {
	case int(t.Length) != 4+popcount6(t.RepMdBits):
		t.Reason = reasonV1Length
		t.Contents, t.Payload = data[:16], data[16:]
		return nil
	case n > len(data):
		t.Reason = reasonV1Short
		df.SetTruncated()
		t.Contents, t.Payload = data, nil
		return nil
	}
	t.Contents, t.Payload = data[:n], data[n:]
	md := data[16:n]
	if t.RepMdBits&RepV1Ports != 0 {
		t.IngressPort = binary.BigEndian.Uint16(md)
		t.EgressPort = binary.BigEndian.Uint16(md[2:])
		md = md[4:]
	}
	if t.RepMdBits&RepV1HopLatency != 0 {
		t.HopLatency = binary.BigEndian.Uint32(md)
		md = md[4:]
	}
	if t.RepMdBits&RepV1QueueOcc != 0 {
		v := binary.BigEndian.Uint32(md)
		t.QueueID, t.QueueOccupancy = uint8(v>>24), v&0xFFFFFF
		md = md[4:]
	}
	if t.RepMdBits&RepV1EgressTS != 0 {
		t.EgressTS = binary.BigEndian.Uint32(md)
		md = md[4:]
	}
	if t.RepMdBits&RepV1DropReason != 0 {
		t.DropQueueID, t.DropReason = md[0], md[1]
		md = md[4:]
	}
	if t.RepMdBits&RepV1TxUtil != 0 {
		t.TxUtilization = binary.BigEndian.Uint32(md)
	}
	switch {
	case t.NProto > 2:
		t.Reason = reasonV1NProto
	case t.Reserved != 0:
		t.Reason = reasonV1Rsvd
	}
	return nil
}

// SerializeTo writes the header and the metadata RepMdBits selects. With
// opts.FixLengths, Length is computed from RepMdBits.
func (t *TelemetryReportV1) SerializeTo(b gopacket.SerializeBuffer, opts gopacket.SerializeOptions) error {
	length := t.Length
	if opts.FixLengths {
		length = uint8(4 + popcount6(t.RepMdBits))
	}
	out := make([]byte, 0, 40)
	w0 := uint32(t.Version&0xF)<<28 | uint32(length&0xF)<<24 | uint32(t.NProto&7)<<21 |
		uint32(t.RepMdBits&0x3F)<<15 | uint32(t.Reserved&0x3F)<<9 | uint32(t.HwID&0x3F)
	if t.D {
		w0 |= 1 << 8
	}
	if t.Q {
		w0 |= 1 << 7
	}
	if t.F {
		w0 |= 1 << 6
	}
	out = binary.BigEndian.AppendUint32(out, w0)
	out = binary.BigEndian.AppendUint32(out, t.SwitchID)
	out = binary.BigEndian.AppendUint32(out, t.Seq)
	out = binary.BigEndian.AppendUint32(out, t.IngressTS)
	if t.RepMdBits&RepV1Ports != 0 {
		out = binary.BigEndian.AppendUint16(out, t.IngressPort)
		out = binary.BigEndian.AppendUint16(out, t.EgressPort)
	}
	if t.RepMdBits&RepV1HopLatency != 0 {
		out = binary.BigEndian.AppendUint32(out, t.HopLatency)
	}
	if t.RepMdBits&RepV1QueueOcc != 0 {
		out = binary.BigEndian.AppendUint32(out, uint32(t.QueueID)<<24|sat24(t.QueueOccupancy))
	}
	if t.RepMdBits&RepV1EgressTS != 0 {
		out = binary.BigEndian.AppendUint32(out, t.EgressTS)
	}
	if t.RepMdBits&RepV1DropReason != 0 {
		out = append(out, t.DropQueueID, t.DropReason, 0, 0)
	}
	if t.RepMdBits&RepV1TxUtil != 0 {
		out = binary.BigEndian.AppendUint32(out, t.TxUtilization)
	}
	buf, err := b.PrependBytes(len(out))
	if err != nil {
		return err
	}
	copy(buf, out)
	return nil
}

func decodeTelemetryReportV1(data []byte, p gopacket.PacketBuilder) error {
	t := &TelemetryReportV1{}
	if err := t.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(t)
	return nextDecoder(p, t.NextLayerType())
}
