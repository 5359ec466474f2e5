package decode

import (
	"encoding/binary"
	"errors"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// ReportBaseline is the Telemetry Report v2.0 "variable optional baseline
// metadata". A field is meaningful only when its RepMdBits bit is set in the
// enclosing ReportV2.
type ReportBaseline struct {
	IngressPort, EgressPort     uint16 // bit 1: level-1 interface ids
	HopLatency                  uint32 // bit 2, ns
	QueueID                     uint8  // bit 3
	QueueOccupancy              uint32 // bit 3, 24 bits
	IngressTS, EgressTS         uint64 // bits 4, 5: ns
	L2IngressPort, L2EgressPort uint32 // bit 6: level-2 interface ids
	TxUtilization               uint32 // bit 7
	BufferID                    uint8  // bit 8
	BufferOccupancy             uint32 // bit 8, 24 bits
	DropQueueID                 uint8  // bit 15
	DropReason                  uint8  // bit 15
	DropPad                     uint16 // bit 15, the 16 padding bits as received
}

// HostMetadata is the bufscope domain-specific metadata (Domain Specific ID
// 0xB5C0). A field is meaningful only when its DSMdBits bit is set.
type HostMetadata struct {
	Buffer                            BufferKind
	Event                             EventKind
	Flags                             uint16
	OccupancyBytes, CapacityBytes     uint32
	OccupancyPackets, CapacityPackets uint32
	DropReason                        uint32
	DropReasonName                    [32]byte // ASCII, NUL-padded
	RcvWnd, SndCwnd                   uint32
	Duration                          uint32
}

// DropName returns the drop reason name without its NUL padding. It
// allocates; use it for rendering only.
func (h *HostMetadata) DropName() string {
	n := 0
	for n < len(h.DropReasonName) && h.DropReasonName[n] != 0 {
		n++
	}
	return string(h.DropReasonName[:n])
}

// ReportV2 is one Telemetry Report v2.0 individual report.
//
// DSData and Inner slice the packet the report was decoded from; they are
// valid only as long as that buffer is. When Reason is non-empty the report
// was recognised but not (fully) understood: the header fields are as
// received, Baseline/Host may be partial, and Reason says what was wrong.
type ReportV2 struct {
	RepType, InType        uint8
	ReportLength, MDLength uint8 // words, as received
	D, Q, F, I             bool
	Rsvd                   uint8 // the 4 reserved bits

	// Main contents (RepType 1 only).
	RepMdBits, DomainID, DSMdBits, DSMdStatus uint16
	Baseline                                  ReportBaseline
	Host                                      HostMetadata // DomainID == HostDomainID
	DSData                                    []byte       // domain-specific metadata bytes, any domain
	Inner                                     []byte       // inner contents, word padding included

	Reason string
}

// TelemetryReportV2 is a Telemetry Report v2.0 UDP payload: the group header
// and every individual report in it.
//
// Reports is reused across DecodeFromBytes calls (no allocation once it has
// grown to the largest report count seen); it and the slices inside it alias
// the decoded buffer. Not safe for concurrent use.
//
// In a gopacket chain the layer's payload is the inner contents of the first
// report, so generic decoding continues into that packet; the inner contents
// of the other reports are in Reports[i].Inner.
type TelemetryReportV2 struct {
	layers.BaseLayer
	Version uint8
	HwID    uint8
	Seq     uint32 // 22 bits
	NodeID  uint32
	Reports []ReportV2
}

// LayerType returns LayerTypeTelemetryReportV2.
func (t *TelemetryReportV2) LayerType() gopacket.LayerType { return LayerTypeTelemetryReportV2 }

// CanDecode returns LayerTypeTelemetryReportV2.
func (t *TelemetryReportV2) CanDecode() gopacket.LayerClass { return LayerTypeTelemetryReportV2 }

// NextLayerType is the layer of the first report's inner contents.
func (t *TelemetryReportV2) NextLayerType() gopacket.LayerType {
	if len(t.Reports) == 0 || t.Reports[0].Reason != "" || len(t.Payload) == 0 {
		return gopacket.LayerTypeZero
	}
	return innerLayerType(t.Reports[0].InType)
}

func innerLayerType(inType uint8) gopacket.LayerType {
	switch inType {
	case InTypeEthernet:
		return layers.LayerTypeEthernet
	case InTypeIPv4:
		return layers.LayerTypeIPv4
	case InTypeIPv6:
		return layers.LayerTypeIPv6
	}
	return gopacket.LayerTypeZero
}

var (
	errReportV2Short   = errors.New("telemetry report v2.0: shorter than the 8-byte group header")
	errReportV2Version = errors.New("telemetry report v2.0: version nibble is not 2")
)

// Reasons for reports that are recognised but not understood.
const (
	reasonTruncatedHeader = "individual report header truncated"
	reasonReportTooLong   = "Report Length runs past the end of the UDP payload"
	reasonMainTruncated   = "main contents shorter than the 8 fixed bytes"
	reasonMDTooLong       = "MD Length runs past the end of the report"
	reasonRepMdReserved   = "RepMdBits has a reserved bit set (0 or 9-14): metadata kept opaque"
	reasonRepMdLength     = "RepMdBits select more bytes than MD Length holds"
	reasonHostDSReserved  = "bufscope DSMdBits has a reserved bit set: DS metadata kept opaque"
	reasonHostDSLength    = "bufscope DSMdBits size does not match MD Length"
	reasonDefaultDomainMD = "Domain Specific ID 0 with DS metadata bits set"
	reasonInnerOnlyMD     = "RepType 0 (inner only) with a non-zero MD Length: not Telemetry Report v2.0 (CableLabs draft layout?)"
	reasonIOAM            = "RepType 2 (IOAM) has no defined format in Telemetry Report v2.0"
	reasonRepTypeReserved = "reserved RepType (3-15)"
	reasonInTypeReserved  = "reserved InType (6-15)"
	reasonInnerNotIPv4    = "InType 4 (IPv4) but the inner contents do not start with an IPv4 header"
	reasonInnerNotIPv6    = "InType 5 (IPv6) but the inner contents do not start with an IPv6 header"
	reasonInnerEthShort   = "InType 3 (Ethernet) with fewer than 14 bytes of inner contents"
	reasonInnerNone       = "InType 0 (none) but the report carries inner contents"
	reasonReservedFlags   = "reserved flag bits set in the individual report header"
)

// DecodeFromBytes decodes the group header and every individual report.
// Only a missing group header or a wrong version is an error; everything past
// the group header is decoded report by report, and a report that cannot be
// understood gets a Reason instead of failing the packet.
func (t *TelemetryReportV2) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) < 8 {
		df.SetTruncated()
		return errReportV2Short
	}
	w0 := binary.BigEndian.Uint32(data)
	t.Version = uint8(w0 >> 28)
	if t.Version != 2 {
		return errReportV2Version
	}
	t.HwID = uint8(w0>>22) & 0x3F
	t.Seq = w0 & 0x3FFFFF
	t.NodeID = binary.BigEndian.Uint32(data[4:])
	t.Reports = t.Reports[:0]
	t.Contents, t.Payload = data, nil
	rest := data[8:]
	for len(rest) > 0 {
		t.Reports = append(t.Reports, ReportV2{})
		r := &t.Reports[len(t.Reports)-1]
		if len(rest) < 4 {
			r.Reason = reasonTruncatedHeader
			r.Inner = rest
			df.SetTruncated()
			break
		}
		r.RepType = rest[0] >> 4
		r.InType = rest[0] & 0x0F
		r.ReportLength = rest[1]
		r.MDLength = rest[2]
		r.D = rest[3]&0x80 != 0
		r.Q = rest[3]&0x40 != 0
		r.F = rest[3]&0x20 != 0
		r.I = rest[3]&0x10 != 0
		r.Rsvd = rest[3] & 0x0F
		var body []byte
		switch n := int(r.ReportLength) * 4; {
		case r.ReportLength == 0xFF:
			body, rest = rest[4:], nil
		case n > len(rest)-4:
			r.Reason = reasonReportTooLong
			r.Inner = rest[4:]
			df.SetTruncated()
			rest = nil
			continue
		default:
			body, rest = rest[4:4+n], rest[4+n:]
		}
		r.decodeBody(body)
		if lengthUntrusted(r.Reason) {
			// The layout is not the one the lengths were read with, so
			// whatever follows would be misparsed: keep it with this report.
			r.Inner = body[:len(body):len(body)]
			if len(rest) > 0 {
				r.Inner = body[: len(body)+len(rest) : len(body)+len(rest)]
			}
			break
		}
	}
	if len(t.Reports) > 0 && t.Reports[0].Reason == "" {
		t.Payload = t.Reports[0].Inner
	}
	return nil
}

// lengthUntrusted reports whether a Reason means the report's own lengths
// cannot be relied on to find the next report.
func lengthUntrusted(reason string) bool {
	switch reason {
	case reasonInnerOnlyMD, reasonMainTruncated, reasonMDTooLong, reasonInnerNone, reasonInnerNotIPv4, reasonInnerNotIPv6:
		return true
	}
	return false
}

func (r *ReportV2) decodeBody(body []byte) {
	switch r.RepType {
	case ReportTypeInnerOnly:
		if r.MDLength != 0 {
			r.Reason = reasonInnerOnlyMD
			r.Inner = body
			return
		}
		r.Inner = body
	case ReportTypeINT:
		if len(body) < 8 {
			r.Reason = reasonMainTruncated
			return
		}
		r.RepMdBits = binary.BigEndian.Uint16(body[0:])
		r.DomainID = binary.BigEndian.Uint16(body[2:])
		r.DSMdBits = binary.BigEndian.Uint16(body[4:])
		r.DSMdStatus = binary.BigEndian.Uint16(body[6:])
		mdLen := int(r.MDLength) * 4
		if mdLen > len(body)-8 {
			r.Reason = reasonMDTooLong
			return
		}
		md := body[8 : 8+mdLen]
		r.Inner = body[8+mdLen:]
		baseLen, ok := repMdSize(r.RepMdBits)
		if !ok {
			r.Reason = reasonRepMdReserved
			r.DSData = md
			return
		}
		if baseLen > len(md) {
			r.Reason = reasonRepMdLength
			r.DSData = md
			return
		}
		r.Baseline.decode(r.RepMdBits, md[:baseLen])
		r.DSData = md[baseLen:]
		switch r.DomainID {
		case HostDomainID:
			dsLen, ok := hostMdSize(r.DSMdBits)
			switch {
			case !ok:
				r.Reason = reasonHostDSReserved
				return
			case dsLen != len(r.DSData):
				r.Reason = reasonHostDSLength
				return
			}
			r.Host.decode(r.DSMdBits, r.DSData)
		case 0:
			if r.DSMdBits != 0 || len(r.DSData) != 0 {
				r.Reason = reasonDefaultDomainMD
				return
			}
		}
	case ReportTypeIOAM:
		r.Reason = reasonIOAM
		r.Inner = body
		return
	default:
		r.Reason = reasonRepTypeReserved
		r.Inner = body
		return
	}
	r.checkInner()
	if r.Reason == "" && r.Rsvd != 0 {
		r.Reason = reasonReservedFlags
	}
}

func (r *ReportV2) checkInner() {
	switch r.InType {
	case InTypeNone:
		if len(r.Inner) != 0 {
			r.Reason = reasonInnerNone
		}
	case InTypeEthernet:
		if len(r.Inner) < 14 {
			r.Reason = reasonInnerEthShort
		}
	case InTypeIPv4:
		if len(r.Inner) < 20 || r.Inner[0]>>4 != 4 {
			r.Reason = reasonInnerNotIPv4
		}
	case InTypeIPv6:
		if len(r.Inner) < 40 || r.Inner[0]>>4 != 6 {
			r.Reason = reasonInnerNotIPv6
		}
	case InTypeTLV, InTypeDSExt:
		// Opaque by design: rendered as bytes, no flow taken from them.
	default:
		r.Reason = reasonInTypeReserved
	}
}

func (b *ReportBaseline) decode(bits uint16, md []byte) {
	*b = ReportBaseline{}
	o := 0
	if bits&RepMdL1Ports != 0 {
		b.IngressPort = binary.BigEndian.Uint16(md[o:])
		b.EgressPort = binary.BigEndian.Uint16(md[o+2:])
		o += 4
	}
	if bits&RepMdHopLatency != 0 {
		b.HopLatency = binary.BigEndian.Uint32(md[o:])
		o += 4
	}
	if bits&RepMdQueueOcc != 0 {
		v := binary.BigEndian.Uint32(md[o:])
		b.QueueID, b.QueueOccupancy = uint8(v>>24), v&0xFFFFFF
		o += 4
	}
	if bits&RepMdIngressTS != 0 {
		b.IngressTS = binary.BigEndian.Uint64(md[o:])
		o += 8
	}
	if bits&RepMdEgressTS != 0 {
		b.EgressTS = binary.BigEndian.Uint64(md[o:])
		o += 8
	}
	if bits&RepMdL2Ports != 0 {
		b.L2IngressPort = binary.BigEndian.Uint32(md[o:])
		b.L2EgressPort = binary.BigEndian.Uint32(md[o+4:])
		o += 8
	}
	if bits&RepMdTxUtil != 0 {
		b.TxUtilization = binary.BigEndian.Uint32(md[o:])
		o += 4
	}
	if bits&RepMdBufferOcc != 0 {
		v := binary.BigEndian.Uint32(md[o:])
		b.BufferID, b.BufferOccupancy = uint8(v>>24), v&0xFFFFFF
		o += 4
	}
	if bits&RepMdDropReason != 0 {
		b.DropQueueID, b.DropReason = md[o], md[o+1]
		b.DropPad = binary.BigEndian.Uint16(md[o+2:])
	}
}

func (b *ReportBaseline) appendTo(dst []byte, bits uint16) []byte {
	if bits&RepMdL1Ports != 0 {
		dst = binary.BigEndian.AppendUint16(dst, b.IngressPort)
		dst = binary.BigEndian.AppendUint16(dst, b.EgressPort)
	}
	if bits&RepMdHopLatency != 0 {
		dst = binary.BigEndian.AppendUint32(dst, b.HopLatency)
	}
	if bits&RepMdQueueOcc != 0 {
		dst = binary.BigEndian.AppendUint32(dst, uint32(b.QueueID)<<24|sat24(b.QueueOccupancy))
	}
	if bits&RepMdIngressTS != 0 {
		dst = binary.BigEndian.AppendUint64(dst, b.IngressTS)
	}
	if bits&RepMdEgressTS != 0 {
		dst = binary.BigEndian.AppendUint64(dst, b.EgressTS)
	}
	if bits&RepMdL2Ports != 0 {
		dst = binary.BigEndian.AppendUint32(dst, b.L2IngressPort)
		dst = binary.BigEndian.AppendUint32(dst, b.L2EgressPort)
	}
	if bits&RepMdTxUtil != 0 {
		dst = binary.BigEndian.AppendUint32(dst, b.TxUtilization)
	}
	if bits&RepMdBufferOcc != 0 {
		dst = binary.BigEndian.AppendUint32(dst, uint32(b.BufferID)<<24|sat24(b.BufferOccupancy))
	}
	if bits&RepMdDropReason != 0 {
		dst = append(dst, b.DropQueueID, b.DropReason)
		dst = binary.BigEndian.AppendUint16(dst, b.DropPad)
	}
	return dst
}

func (h *HostMetadata) decode(bits uint16, md []byte) {
	*h = HostMetadata{}
	o := 0
	if bits&HostMdBufferEvent != 0 {
		h.Buffer, h.Event = BufferKind(md[o]), EventKind(md[o+1])
		h.Flags = binary.BigEndian.Uint16(md[o+2:])
		o += 4
	}
	if bits&HostMdOccBytes != 0 {
		h.OccupancyBytes = binary.BigEndian.Uint32(md[o:])
		h.CapacityBytes = binary.BigEndian.Uint32(md[o+4:])
		o += 8
	}
	if bits&HostMdOccPackets != 0 {
		h.OccupancyPackets = binary.BigEndian.Uint32(md[o:])
		h.CapacityPackets = binary.BigEndian.Uint32(md[o+4:])
		o += 8
	}
	if bits&HostMdDropReason != 0 {
		h.DropReason = binary.BigEndian.Uint32(md[o:])
		o += 4
	}
	if bits&HostMdDropName != 0 {
		copy(h.DropReasonName[:], md[o:o+hostDropNameLength])
		o += hostDropNameLength
	}
	if bits&HostMdWindows != 0 {
		h.RcvWnd = binary.BigEndian.Uint32(md[o:])
		h.SndCwnd = binary.BigEndian.Uint32(md[o+4:])
		o += 8
	}
	if bits&HostMdDuration != 0 {
		h.Duration = binary.BigEndian.Uint32(md[o:])
	}
}

func (h *HostMetadata) appendTo(dst []byte, bits uint16) []byte {
	if bits&HostMdBufferEvent != 0 {
		dst = append(dst, uint8(h.Buffer), uint8(h.Event))
		dst = binary.BigEndian.AppendUint16(dst, h.Flags)
	}
	if bits&HostMdOccBytes != 0 {
		dst = binary.BigEndian.AppendUint32(dst, h.OccupancyBytes)
		dst = binary.BigEndian.AppendUint32(dst, h.CapacityBytes)
	}
	if bits&HostMdOccPackets != 0 {
		dst = binary.BigEndian.AppendUint32(dst, h.OccupancyPackets)
		dst = binary.BigEndian.AppendUint32(dst, h.CapacityPackets)
	}
	if bits&HostMdDropReason != 0 {
		dst = binary.BigEndian.AppendUint32(dst, h.DropReason)
	}
	if bits&HostMdDropName != 0 {
		dst = append(dst, h.DropReasonName[:]...)
	}
	if bits&HostMdWindows != 0 {
		dst = binary.BigEndian.AppendUint32(dst, h.RcvWnd)
		dst = binary.BigEndian.AppendUint32(dst, h.SndCwnd)
	}
	if bits&HostMdDuration != 0 {
		dst = binary.BigEndian.AppendUint32(dst, h.Duration)
	}
	return dst
}

// mdBytes returns the metadata bytes r serializes: baseline by RepMdBits,
// then the host extension by DSMdBits (DomainID 0xB5C0) or DSData as is.
func (r *ReportV2) appendMD(dst []byte) []byte {
	dst = r.Baseline.appendTo(dst, r.RepMdBits)
	if r.DomainID == HostDomainID {
		return r.Host.appendTo(dst, r.DSMdBits)
	}
	return append(dst, r.DSData...)
}

// SerializeTo writes the group header and every report. With
// opts.FixLengths, Report Length and MD Length are computed from the fields
// and the inner contents (padded to a word); otherwise the received values
// are written and the inner contents must already be word-aligned.
// Reports with a Reason are written from their raw fields as far as they go.
func (t *TelemetryReportV2) SerializeTo(b gopacket.SerializeBuffer, opts gopacket.SerializeOptions) error {
	out := make([]byte, 0, 8+len(t.Reports)*64)
	out = binary.BigEndian.AppendUint32(out, uint32(t.Version&0xF)<<28|uint32(t.HwID&0x3F)<<22|t.Seq&0x3FFFFF)
	out = binary.BigEndian.AppendUint32(out, t.NodeID)
	for i := range t.Reports {
		r := &t.Reports[i]
		hdr := len(out)
		out = append(out, r.RepType<<4|r.InType&0xF, r.ReportLength, r.MDLength, flagsByte(r))
		mdStart := len(out)
		if r.RepType == ReportTypeINT {
			out = binary.BigEndian.AppendUint16(out, r.RepMdBits)
			out = binary.BigEndian.AppendUint16(out, r.DomainID)
			out = binary.BigEndian.AppendUint16(out, r.DSMdBits)
			out = binary.BigEndian.AppendUint16(out, r.DSMdStatus)
			mdStart = len(out)
			out = r.appendMD(out)
		}
		mdWords := (len(out) - mdStart) / 4
		out = append(out, r.Inner...)
		for opts.FixLengths && (len(out)-hdr)%4 != 0 {
			out = append(out, 0)
		}
		if opts.FixLengths {
			words := (len(out) - hdr - 4) / 4
			if words >= 0xFF {
				return errors.New("telemetry report v2.0: individual report longer than 254 words; serialize it with Report Length 0xFF by hand")
			}
			out[hdr+1] = uint8(words)
			out[hdr+2] = uint8(mdWords)
		}
	}
	buf, err := b.PrependBytes(len(out))
	if err != nil {
		return err
	}
	copy(buf, out)
	return nil
}

func flagsByte(r *ReportV2) uint8 {
	var f uint8
	if r.D {
		f |= 0x80
	}
	if r.Q {
		f |= 0x40
	}
	if r.F {
		f |= 0x20
	}
	if r.I {
		f |= 0x10
	}
	return f | r.Rsvd&0x0F
}

func decodeTelemetryReportV2(data []byte, p gopacket.PacketBuilder) error {
	t := &TelemetryReportV2{}
	if err := t.DecodeFromBytes(data, p); err != nil {
		return err
	}
	p.AddLayer(t)
	return nextDecoder(p, t.NextLayerType())
}

// nextDecoder hands the payload on unless there is nothing to decode.
func nextDecoder(p gopacket.PacketBuilder, next gopacket.LayerType) error {
	if next == gopacket.LayerTypeZero {
		return nil
	}
	return p.NextDecoder(next)
}

// TLV types of Telemetry Report v2.0 inner contents (InType 1).
const (
	TLVTypeDSExt    = 0
	TLVTypeEthernet = 1
	TLVTypeIPv4     = 2
	TLVTypeIPv6     = 3
)

// InnerPacket returns the reported packet inside the inner contents as an
// InType code (InTypeEthernet, InTypeIPv4 or InTypeIPv6) and its bytes: the
// inner contents themselves for InType 3–5, or the first Ethernet/IPv4/IPv6
// TLV for InType 1. It returns InTypeNone when there is no packet (no inner
// contents, DS extension data only, or a TLV list that runs past its end).
// The bytes alias the decoded buffer; nothing is allocated.
func (r *ReportV2) InnerPacket() (uint8, []byte) {
	switch r.InType {
	case InTypeEthernet, InTypeIPv4, InTypeIPv6:
		return r.InType, r.Inner
	case InTypeTLV:
		b := r.Inner
		for len(b) >= 4 {
			typ, n := b[0]>>4, int(b[1])*4
			if 4+n > len(b) {
				return InTypeNone, nil
			}
			switch typ {
			case TLVTypeEthernet:
				return InTypeEthernet, b[4 : 4+n]
			case TLVTypeIPv4:
				return InTypeIPv4, b[4 : 4+n]
			case TLVTypeIPv6:
				return InTypeIPv6, b[4 : 4+n]
			}
			b = b[4+n:]
		}
	}
	return InTypeNone, nil
}
