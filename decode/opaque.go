package decode

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Opaque holds telemetry bytes that were recognised as telemetry (by port,
// DSCP or protocol) but could not be decoded with confidence: an unknown
// version, a reserved type, a layout that contradicts its own lengths. Reason
// says why in one line; it always points at static text, so decoding stays
// allocation-free. Contents slices the input.
type Opaque struct {
	layers.BaseLayer
	Reason string
}

// LayerType returns LayerTypeOpaque.
func (o *Opaque) LayerType() gopacket.LayerType { return LayerTypeOpaque }

// CanDecode returns LayerTypeOpaque.
func (o *Opaque) CanDecode() gopacket.LayerClass { return LayerTypeOpaque }

// NextLayerType returns gopacket.LayerTypeZero: nothing is decoded past an
// opaque block.
func (o *Opaque) NextLayerType() gopacket.LayerType { return gopacket.LayerTypeZero }

// DecodeFromBytes keeps data as the opaque contents; it never fails. The
// Reason is left as the caller set it.
func (o *Opaque) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	o.Contents, o.Payload = data, nil
	return nil
}

func decodeOpaque(data []byte, p gopacket.PacketBuilder) error {
	return decodeOpaqueReason(data, p, "not decoded")
}

func decodeOpaqueReason(data []byte, p gopacket.PacketBuilder, reason string) error {
	o := &Opaque{Reason: reason}
	_ = o.DecodeFromBytes(data, p)
	p.AddLayer(o)
	return nil
}
