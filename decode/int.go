package decode

import (
	"encoding/binary"
	"errors"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// INT header types (the shim's Type field).
const (
	INTTypeMD          = 1
	INTTypeDestination = 2
	INTTypeMX          = 3
)

// INT instruction bitmap masks (v2.x numbering; v1.0 uses the same bits 0–7
// with 4-byte timestamps).
const (
	INTNodeID     = 0x8000
	INTL1Ports    = 0x4000
	INTHopLatency = 0x2000
	INTQueueOcc   = 0x1000
	INTIngressTS  = 0x0800
	INTEgressTS   = 0x0400
	INTL2Ports    = 0x0200
	INTTxUtil     = 0x0100
	INTBufferOcc  = 0x0080 // v2.x only; reserved in v1.0
	INTChecksum   = 0x0001
)

// Bytes per instruction bit, bit 0 first. Reserved bits count 4 bytes (the
// forward-compatibility rule of both versions).
var (
	intItemSizeV2 = [16]int{4, 4, 4, 4, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 4, 4}
	intItemSizeV1 = [16]int{4, 4, 4, 4, 4, 4, 8, 4, 4, 4, 4, 4, 4, 4, 4, 4}
)

// INTHop is the metadata one node pushed. A field is meaningful only when the
// enclosing INT's instruction bit for it is set. In INT v1.0 the timestamps
// are 32 bits wide and arrive in the low half of IngressTS/EgressTS.
type INTHop struct {
	NodeID                      uint32
	L1IngressPort, L1EgressPort uint16
	HopLatency                  uint32
	QueueID                     uint8
	QueueOccupancy              uint32
	IngressTS, EgressTS         uint64
	L2IngressPort, L2EgressPort uint32
	TxUtilization               uint32
	BufferID                    uint8
	BufferOccupancy             uint32
	Checksum                    uint32
	DS                          []byte // per-hop domain-specific metadata; aliases the packet
}

// INT is an INT-over-TCP/UDP block: the shim, the INT-MD or INT-MX header and
// (MD) the metadata stack, newest hop first. Versions 2.0/2.1 (4-bit shim
// type) and 1.0 (8-bit shim type, shim counted in its length) are decoded;
// v0.5 and vendor variants are recognised and given a Reason.
//
// Hops is reused across calls; it and the byte slices in it alias the
// decoded buffer. The layer payload is what follows the INT block: the
// original L4 payload, or with NPT 2 the original L4 header. Not safe for
// concurrent use.
type INT struct {
	layers.BaseLayer
	Version    uint8  // INT version from the metadata header: 1 or 2
	Type       uint8  // 1 MD, 2 Destination, 3 MX
	NPT        uint8  // v2 shim next-protocol type
	ShimLength uint8  // words, as received
	ShimData   uint16 // last 16 shim bits: DSCP (NPT 0), original port (NPT 1), original protocol (NPT 2)

	Rep               uint8 // v1.0 only
	C                 bool  // v1.0 only
	D, E, M           bool
	HeaderReserved    uint32 // MD: 12 bits; MX: 27 bits; v1.0: 10 bits
	HopML             uint8
	RemainingHopCount uint8
	Instructions      uint16
	DomainID          uint16 // v2: Domain Specific ID; v1: the reserved half-word
	DSInstructions    uint16
	DSFlags           uint16

	Hops     []INTHop
	SourceDS []byte // stack bytes after the last whole hop (source-only DS metadata)
	Reason   string
}

// ErrNotINT is returned when bytes that were expected to hold INT (because of
// a DSCP or port mark) do not start with any INT shim. Callers treat the
// packet as ordinary traffic.
var ErrNotINT = errors.New("int: no INT shim at the start of the L4 payload")

var errINTShort = errors.New("int: shim or header runs past the end of the packet")

const (
	reasonINTv05        = "INT v0.5 (pre-1.0) layout: not decoded"
	reasonINTVersion    = "INT metadata header version is not 1 or 2 (GEANT pre-v1.0 layout?)"
	reasonINTDest       = "INT-Destination header: its format is undefined in INT v2.1"
	reasonINTHopML      = "instruction bitmap needs a different number of words per hop than Hop ML says"
	reasonINTStack      = "metadata stack is not a whole number of hops"
	reasonINTShimLength = "shim Length is shorter than the INT header"
	reasonINTNoHopML    = "Hop ML is 0 but the metadata stack is not empty"
	reasonINTTypeMixed  = "INT v1.0 shim with a v2 metadata header"
)

// LayerType returns LayerTypeINT.
func (n *INT) LayerType() gopacket.LayerType { return LayerTypeINT }

// CanDecode returns LayerTypeINT.
func (n *INT) CanDecode() gopacket.LayerClass { return LayerTypeINT }

// NextLayerType is the original L4 header for NPT 2, else the payload.
func (n *INT) NextLayerType() gopacket.LayerType {
	if n.Reason != "" || len(n.Payload) == 0 {
		return gopacket.LayerTypeZero
	}
	if n.Version == 2 && n.NPT == 2 {
		switch layers.IPProtocol(n.ShimData) {
		case layers.IPProtocolTCP:
			return layers.LayerTypeTCP
		case layers.IPProtocolUDP:
			return layers.LayerTypeUDP
		}
	}
	return gopacket.LayerTypePayload
}

// DSCP returns the original DSCP the shim carries (v2 NPT 0, v1.0).
func (n *INT) DSCP() uint8 { return uint8(n.ShimData>>2) & 0x3F }

// looksLikeINT reports whether data starts with an INT shim of any version.
func looksLikeINT(data []byte) bool {
	if len(data) < 4 {
		return false
	}
	if data[0] == 0x01 { // v0.5/v1.0: 8-bit type 1
		return true
	}
	t := data[0] >> 4
	return (t == INTTypeMD || t == INTTypeDestination || t == INTTypeMX) && data[0]&0x03 == 0 && data[0]>>2&3 != 3
}

// DecodeFromBytes decodes the shim, the header and the metadata stack.
func (n *INT) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if !looksLikeINT(data) {
		return ErrNotINT
	}
	hops := n.Hops[:0]
	*n = INT{Hops: hops}
	if data[0] == 0x01 {
		return n.decodeV1(data, df)
	}
	n.Type = data[0] >> 4
	n.NPT = data[0] >> 2 & 3
	n.ShimLength = data[1]
	n.ShimData = binary.BigEndian.Uint16(data[2:])
	total := 4 + int(n.ShimLength)*4
	if total > len(data) {
		df.SetTruncated()
		return errINTShort
	}
	n.Contents, n.Payload = data[:total], data[total:]
	if n.Type == INTTypeDestination {
		n.Version = 2
		n.Reason = reasonINTDest
		return nil
	}
	if n.ShimLength < 3 {
		n.Reason = reasonINTShimLength
		return nil
	}
	h := data[4:]
	n.Version = h[0] >> 4
	if n.Version != 2 {
		n.Reason = reasonINTVersion
		return nil
	}
	n.D = h[0]&0x08 != 0
	if n.Type == INTTypeMD {
		n.E = h[0]&0x04 != 0
		n.M = h[0]&0x02 != 0
		n.HeaderReserved = uint32(h[0]&1)<<11 | uint32(h[1])<<3 | uint32(h[2]>>5)
		n.HopML = h[2] & 0x1F
		n.RemainingHopCount = h[3]
	} else {
		n.HeaderReserved = uint32(h[0]&0x07)<<24 | uint32(h[1])<<16 | uint32(h[2])<<8 | uint32(h[3])
	}
	n.Instructions = binary.BigEndian.Uint16(h[4:])
	n.DomainID = binary.BigEndian.Uint16(h[6:])
	n.DSInstructions = binary.BigEndian.Uint16(h[8:])
	n.DSFlags = binary.BigEndian.Uint16(h[10:])
	stack := data[16:total]
	if n.Type == INTTypeMX {
		n.SourceDS = stack
		return nil
	}
	n.decodeStack(stack, &intItemSizeV2, false)
	return nil
}

func (n *INT) decodeV1(data []byte, df gopacket.DecodeFeedback) error {
	n.Type = data[0]
	n.ShimLength = data[2]
	n.ShimData = uint16(data[3])
	total := int(n.ShimLength) * 4
	if total < 12 {
		if len(data) < 12 {
			df.SetTruncated()
			return errINTShort
		}
		n.Contents, n.Payload = data[:12], data[12:]
		n.Reason = reasonINTShimLength
		return nil
	}
	if total > len(data) {
		df.SetTruncated()
		return errINTShort
	}
	n.Contents, n.Payload = data[:total], data[total:]
	h := data[4:]
	n.Version = h[0] >> 4
	switch n.Version {
	case 0:
		n.Reason = reasonINTv05
		return nil
	case 1:
	case 2:
		n.Reason = reasonINTTypeMixed
		return nil
	default:
		n.Reason = reasonINTVersion
		return nil
	}
	n.Rep = h[0] >> 2 & 3
	n.C = h[0]&0x02 != 0
	n.E = h[0]&0x01 != 0
	n.M = h[1]&0x80 != 0
	n.HeaderReserved = uint32(h[1]&0x7F)<<3 | uint32(h[2]>>5)
	n.HopML = h[2] & 0x1F
	n.RemainingHopCount = h[3]
	n.Instructions = binary.BigEndian.Uint16(h[4:])
	n.DomainID = binary.BigEndian.Uint16(h[6:])
	n.decodeStack(data[12:total], &intItemSizeV1, true)
	return nil
}

func (n *INT) decodeStack(stack []byte, sizes *[16]int, v1 bool) {
	base := 0
	for i := 0; i < 16; i++ {
		if n.Instructions&(0x8000>>i) != 0 {
			base += sizes[i]
		}
	}
	hop := int(n.HopML) * 4
	switch {
	case hop == 0 && len(stack) > 0:
		n.Reason = reasonINTNoHopML
		return
	case hop == 0:
		return
	case hop < base || (v1 && hop != base):
		n.Reason = reasonINTHopML
		return
	case v1 && len(stack)%hop != 0:
		n.Reason = reasonINTStack
		return
	}
	for len(stack) >= hop {
		n.Hops = append(n.Hops, INTHop{})
		n.Hops[len(n.Hops)-1].decode(n.Instructions, stack[:hop], base, v1)
		stack = stack[hop:]
	}
	n.SourceDS = stack
}

func (h *INTHop) decode(bits uint16, b []byte, base int, v1 bool) {
	o := 0
	u32 := func() uint32 { v := binary.BigEndian.Uint32(b[o:]); o += 4; return v }
	if bits&INTNodeID != 0 {
		h.NodeID = u32()
	}
	if bits&INTL1Ports != 0 {
		v := u32()
		h.L1IngressPort, h.L1EgressPort = uint16(v>>16), uint16(v)
	}
	if bits&INTHopLatency != 0 {
		h.HopLatency = u32()
	}
	if bits&INTQueueOcc != 0 {
		v := u32()
		h.QueueID, h.QueueOccupancy = uint8(v>>24), v&0xFFFFFF
	}
	if bits&INTIngressTS != 0 {
		if v1 {
			h.IngressTS = uint64(u32())
		} else {
			h.IngressTS = binary.BigEndian.Uint64(b[o:])
			o += 8
		}
	}
	if bits&INTEgressTS != 0 {
		if v1 {
			h.EgressTS = uint64(u32())
		} else {
			h.EgressTS = binary.BigEndian.Uint64(b[o:])
			o += 8
		}
	}
	if bits&INTL2Ports != 0 {
		h.L2IngressPort = u32()
		h.L2EgressPort = u32()
	}
	if bits&INTTxUtil != 0 {
		h.TxUtilization = u32()
	}
	if bits&INTBufferOcc != 0 {
		v := u32()
		if !v1 {
			h.BufferID, h.BufferOccupancy = uint8(v>>24), v&0xFFFFFF
		}
	}
	for i := 9; i < 15; i++ { // reserved items: skipped, 4 bytes each
		if bits&(0x8000>>i) != 0 {
			o += 4
		}
	}
	if bits&INTChecksum != 0 {
		h.Checksum = u32()
	}
	h.DS = b[base:]
}

// SerializeTo writes an INT v2 block (shim, MD or MX header, stack from Hops
// then SourceDS). With opts.FixLengths the shim Length is computed. Only
// version 2 is written; bufscope emits no v1.0 INT.
func (n *INT) SerializeTo(b gopacket.SerializeBuffer, opts gopacket.SerializeOptions) error {
	if n.Version != 2 || (n.Type != INTTypeMD && n.Type != INTTypeMX) {
		return errors.New("int: only version 2 INT-MD and INT-MX are serialized")
	}
	out := make([]byte, 4, 16+len(n.Hops)*48)
	out[0] = n.Type<<4 | (n.NPT&3)<<2
	out[1] = n.ShimLength
	binary.BigEndian.PutUint16(out[2:], n.ShimData)
	var h [4]byte
	if n.Type == INTTypeMD {
		h[0] = 2 << 4
		if n.D {
			h[0] |= 0x08
		}
		if n.E {
			h[0] |= 0x04
		}
		if n.M {
			h[0] |= 0x02
		}
		h[0] |= uint8(n.HeaderReserved>>11) & 1
		h[1] = uint8(n.HeaderReserved >> 3)
		h[2] = uint8(n.HeaderReserved)<<5 | n.HopML&0x1F
		h[3] = n.RemainingHopCount
	} else {
		h[0] = 2<<4 | uint8(n.HeaderReserved>>24)&0x07
		if n.D {
			h[0] |= 0x08
		}
		h[1], h[2], h[3] = uint8(n.HeaderReserved>>16), uint8(n.HeaderReserved>>8), uint8(n.HeaderReserved)
	}
	out = append(out, h[:]...)
	out = binary.BigEndian.AppendUint16(out, n.Instructions)
	out = binary.BigEndian.AppendUint16(out, n.DomainID)
	out = binary.BigEndian.AppendUint16(out, n.DSInstructions)
	out = binary.BigEndian.AppendUint16(out, n.DSFlags)
	if n.Type == INTTypeMD {
		for i := range n.Hops {
			out = n.Hops[i].appendTo(out, n.Instructions)
		}
	}
	out = append(out, n.SourceDS...)
	if opts.FixLengths {
		if (len(out)-4)%4 != 0 || (len(out)-4)/4 > 0xFF {
			return errors.New("int: stack is not a whole number of words or longer than 255 words")
		}
		out[1] = uint8((len(out) - 4) / 4)
	}
	buf, err := b.PrependBytes(len(out))
	if err != nil {
		return err
	}
	copy(buf, out)
	return nil
}

func (h *INTHop) appendTo(out []byte, bits uint16) []byte {
	be := binary.BigEndian
	if bits&INTNodeID != 0 {
		out = be.AppendUint32(out, h.NodeID)
	}
	if bits&INTL1Ports != 0 {
		out = be.AppendUint16(out, h.L1IngressPort)
		out = be.AppendUint16(out, h.L1EgressPort)
	}
	if bits&INTHopLatency != 0 {
		out = be.AppendUint32(out, h.HopLatency)
	}
	if bits&INTQueueOcc != 0 {
		out = be.AppendUint32(out, uint32(h.QueueID)<<24|sat24(h.QueueOccupancy))
	}
	if bits&INTIngressTS != 0 {
		out = be.AppendUint64(out, h.IngressTS)
	}
	if bits&INTEgressTS != 0 {
		out = be.AppendUint64(out, h.EgressTS)
	}
	if bits&INTL2Ports != 0 {
		out = be.AppendUint32(out, h.L2IngressPort)
		out = be.AppendUint32(out, h.L2EgressPort)
	}
	if bits&INTTxUtil != 0 {
		out = be.AppendUint32(out, h.TxUtilization)
	}
	if bits&INTBufferOcc != 0 {
		out = be.AppendUint32(out, uint32(h.BufferID)<<24|sat24(h.BufferOccupancy))
	}
	for i := 9; i < 15; i++ {
		if bits&(0x8000>>i) != 0 {
			out = be.AppendUint32(out, 0xFFFFFFFF) // "unavailable", as the spec asks
		}
	}
	if bits&INTChecksum != 0 {
		out = be.AppendUint32(out, h.Checksum)
	}
	return append(out, h.DS...)
}

func decodeINT(data []byte, p gopacket.PacketBuilder) error {
	n := &INT{}
	if err := n.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(n)
	return nextDecoder(p, n.NextLayerType())
}
