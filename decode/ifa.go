package decode

import (
	"encoding/binary"
	"errors"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// IFAHop is one 32-byte IFA 2.0 metadata entry (draft-kumar-ippm-ifa).
type IFAHop struct {
	LNS            uint8  // 4 bits: local namespace
	DeviceID       uint32 // 20 bits
	TTL            uint8  // IP TTL seen by the device
	Speed          uint8  // 4 bits: egress port speed code
	Congestion     uint8  // 2 bits (ECN)
	QueueID        uint8  // 6 bits
	RxSec          uint32 // 20 bits: receive timestamp, seconds
	EgressPort     uint16
	IngressPort    uint16
	RxNanosec      uint32
	ResidenceNanos uint32    // hop latency
	Opaque         [3]uint32 // namespace-specific data (queue bytes/cells on Broadcom devices)
}

// IFA is the IFA 2.0 header (4 bytes, right after the IP header, IP protocol
// 131) together with the IFA metadata header and stack that sit after the
// L4 header named by NextHdr (UDP, TCP or GRE).
//
// The layer's contents are the 4-byte IFA header; its payload starts at the
// L4 header, so generic decoding continues with UDP/TCP/GRE, whose payload
// then begins with the metadata. Hops is reused across calls. Not safe for
// concurrent use.
type IFA struct {
	layers.BaseLayer
	Version uint8 // 4 bits, 2 for IFA 2.0
	GNS     uint8 // 4 bits, global namespace
	NextHdr layers.IPProtocol
	Flags   uint8
	MaxLen  uint8

	// Metadata header (after the L4 header).
	Request  uint8
	Action   uint8
	HopLimit uint8
	CurLen   uint8 // words of metadata stack
	Hops     []IFAHop

	// L4Length is the length of the L4 header that separates the IFA header
	// from its metadata, 0 when NextHdr is not UDP, TCP or GRE.
	L4Length int
	Reason   string
}

var errIFAShort = errors.New("ifa: shorter than the 4-byte IFA header")

const (
	reasonIFAVersion = "IFA version is not 2"
	reasonIFANextHdr = "IFA NextHdr is not UDP, TCP or GRE: metadata position unknown"
	reasonIFAShort   = "IFA metadata header or stack runs past the end of the packet"
	reasonIFAStack   = "IFA CurLen is not a whole number of 32-byte hops"
)

// LayerType returns LayerTypeIFA.
func (f *IFA) LayerType() gopacket.LayerType { return LayerTypeIFA }

// CanDecode returns LayerTypeIFA.
func (f *IFA) CanDecode() gopacket.LayerClass { return LayerTypeIFA }

// NextLayerType is the L4 header NextHdr names.
func (f *IFA) NextLayerType() gopacket.LayerType {
	switch f.NextHdr {
	case layers.IPProtocolUDP:
		return layers.LayerTypeUDP
	case layers.IPProtocolTCP:
		return layers.LayerTypeTCP
	case layers.IPProtocolGRE:
		return layers.LayerTypeGRE
	}
	return gopacket.LayerTypePayload
}

// MetadataOffset returns where the IFA metadata header starts within the
// layer payload (the L4 header length), or -1 if unknown.
func ifaL4Length(proto layers.IPProtocol, l4 []byte) int {
	switch proto {
	case layers.IPProtocolUDP:
		return 8
	case layers.IPProtocolTCP:
		if len(l4) < 13 {
			return -1
		}
		return int(l4[12]>>4) * 4
	case layers.IPProtocolGRE:
		if len(l4) < 2 {
			return -1
		}
		n := 4
		if l4[0]&0x80 != 0 { // checksum present
			n += 4
		}
		if l4[0]&0x20 != 0 { // key present
			n += 4
		}
		if l4[0]&0x10 != 0 { // sequence present
			n += 4
		}
		return n
	}
	return -1
}

// DecodeFromBytes decodes the IFA header, then finds and decodes the
// metadata behind the L4 header.
func (f *IFA) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 4 {
		df.SetTruncated()
		return errIFAShort
	}
	hops := f.Hops[:0]
	*f = IFA{
		Hops:    hops,
		Version: data[0] >> 4, GNS: data[0] & 0xF,
		NextHdr: layers.IPProtocol(data[1]), Flags: data[2], MaxLen: data[3],
	}
	f.Contents, f.Payload = data[:4], data[4:]
	if f.Version != 2 {
		f.Reason = reasonIFAVersion
		return nil
	}
	l4 := f.Payload
	n := ifaL4Length(f.NextHdr, l4)
	if n < 0 {
		f.Reason = reasonIFANextHdr
		return nil
	}
	f.L4Length = n
	if len(l4) < n+4 {
		f.Reason = reasonIFAShort
		df.SetTruncated()
		return nil
	}
	md := l4[n:]
	f.Request, f.Action, f.HopLimit, f.CurLen = md[0], md[1], md[2], md[3]
	stack := int(f.CurLen) * 4
	if len(md) < 4+stack {
		f.Reason = reasonIFAShort
		df.SetTruncated()
		return nil
	}
	if stack%32 != 0 {
		f.Reason = reasonIFAStack
		return nil
	}
	for b := md[4 : 4+stack]; len(b) >= 32; b = b[32:] {
		f.Hops = append(f.Hops, IFAHop{})
		f.Hops[len(f.Hops)-1].decode(b)
	}
	return nil
}

func (h *IFAHop) decode(b []byte) {
	be := binary.BigEndian
	w0, w1 := be.Uint32(b), be.Uint32(b[4:])
	*h = IFAHop{
		LNS: uint8(w0 >> 28), DeviceID: w0 >> 8 & 0xFFFFF, TTL: uint8(w0),
		Speed: uint8(w1 >> 28), Congestion: uint8(w1>>26) & 3, QueueID: uint8(w1>>20) & 0x3F, RxSec: w1 & 0xFFFFF,
		EgressPort: be.Uint16(b[8:]), IngressPort: be.Uint16(b[10:]),
		RxNanosec: be.Uint32(b[12:]), ResidenceNanos: be.Uint32(b[16:]),
		Opaque: [3]uint32{be.Uint32(b[20:]), be.Uint32(b[24:]), be.Uint32(b[28:])},
	}
}

func decodeIFA(data []byte, p gopacket.PacketBuilder) error {
	f := &IFA{}
	if err := f.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(f)
	return nextDecoder(p, f.NextLayerType())
}

// SerializeTo writes the 4-byte IFA header. The metadata lives behind the
// L4 header, which is another layer's; AppendMetadata writes it.
func (f *IFA) SerializeTo(b gopacket.SerializeBuffer, opts gopacket.SerializeOptions) error {
	buf, err := b.PrependBytes(4)
	if err != nil {
		return err
	}
	buf[0], buf[1], buf[2], buf[3] = f.Version<<4|f.GNS&0xF, uint8(f.NextHdr), f.Flags, f.MaxLen
	return nil
}

// AppendMetadata appends the IFA metadata header and the hop stack to dst.
// CurLen is written as received unless fixLength is set, in which case it
// is computed from the hops (8 words each).
func (f *IFA) AppendMetadata(dst []byte, fixLength bool) []byte {
	curLen := f.CurLen
	if fixLength {
		curLen = uint8(len(f.Hops) * 8)
	}
	dst = append(dst, f.Request, f.Action, f.HopLimit, curLen)
	be := binary.BigEndian
	for i := range f.Hops {
		h := &f.Hops[i]
		dst = be.AppendUint32(dst, uint32(h.LNS)<<28|(h.DeviceID&0xFFFFF)<<8|uint32(h.TTL))
		dst = be.AppendUint32(dst, uint32(h.Speed&0xF)<<28|uint32(h.Congestion&3)<<26|uint32(h.QueueID&0x3F)<<20|h.RxSec&0xFFFFF)
		dst = be.AppendUint16(dst, h.EgressPort)
		dst = be.AppendUint16(dst, h.IngressPort)
		dst = be.AppendUint32(dst, h.RxNanosec)
		dst = be.AppendUint32(dst, h.ResidenceNanos)
		for _, o := range h.Opaque {
			dst = be.AppendUint32(dst, o)
		}
	}
	return dst
}
