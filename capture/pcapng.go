package capture

import (
	"encoding/binary"
	"math"
	"math/bits"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// pcapng block types and option codes (draft-ietf-opsawg-pcapng).
const (
	blockSHB       = 0x0A0D0D0A
	blockIDB       = 0x00000001
	blockOPB       = 0x00000002 // obsolete Packet Block
	blockSPB       = 0x00000003
	blockEPB       = 0x00000006
	byteOrderMagic = 0x1A2B3C4D

	optEndOfOpt  = 0
	optComment   = 1
	optShbHW     = 2
	optShbOS     = 3
	optShbApp    = 4
	optIfName    = 2
	optIfDesc    = 3
	optIfTsresol = 9
	optIfTsoff   = 14

	// maxBlockLen bounds one pcapng block (and one pcap record) so a corrupt
	// length field cannot make the reader allocate gigabytes. 64 KiB packets
	// plus options fit many times over.
	maxBlockLen = 16 << 20

	// topologyPrefix starts the SHB comment that carries WriterOptions.Topology.
	// A comment rather than a custom block: custom blocks need an IANA Private
	// Enterprise Number bufscope does not have, and Wireshark shows SHB comments
	// in its capture-file properties, so a person opening the trace sees the
	// topology too.
	topologyPrefix = "bufscope-topology:"
)

// Interface is one capture point: a pcapng Interface Description Block.
type Interface struct {
	Name        string          // if_name, e.g. "collector0" or "host1/eth0"
	Description string          // if_description
	LinkType    layers.LinkType // link type of the packets (Ethernet usually)
	SnapLen     uint32          // 0 means unlimited
}

// pad4 returns n rounded up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }

// appendOption appends one little-endian pcapng option. Callers check that
// len(v) fits 16 bits.
func appendOption(dst []byte, code uint16, v []byte) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, code)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(v)))
	dst = append(dst, v...)
	for i := len(v); i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return dst
}

func appendStringOption(dst []byte, code uint16, s string) []byte {
	if s == "" {
		return dst
	}
	dst = binary.LittleEndian.AppendUint16(dst, code)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
	dst = append(dst, s...)
	for i := len(s); i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return dst
}

// finishBlock writes the total length at start+4 and appends the trailing
// length copy.
func finishBlock(dst []byte, start int) []byte {
	n := uint32(len(dst) - start + 4)
	binary.LittleEndian.PutUint32(dst[start+4:], n)
	return binary.LittleEndian.AppendUint32(dst, n)
}

// appendSHB appends a little-endian Section Header Block with an unknown
// section length (-1); the writer patches the length when the frame closes.
func appendSHB(dst []byte, hw, os, app string, topology []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, blockSHB)
	dst = binary.LittleEndian.AppendUint32(dst, 0) // patched by finishBlock
	dst = binary.LittleEndian.AppendUint32(dst, byteOrderMagic)
	dst = binary.LittleEndian.AppendUint16(dst, 1) // major
	dst = binary.LittleEndian.AppendUint16(dst, 0) // minor
	dst = binary.LittleEndian.AppendUint64(dst, ^uint64(0))
	dst = appendStringOption(dst, optShbHW, hw)
	dst = appendStringOption(dst, optShbOS, os)
	dst = appendStringOption(dst, optShbApp, app)
	if len(topology) > 0 {
		v := make([]byte, 0, len(topologyPrefix)+len(topology))
		v = append(append(v, topologyPrefix...), topology...)
		dst = appendOption(dst, optComment, v)
	}
	dst = appendOption(dst, optEndOfOpt, nil)
	return finishBlock(dst, start)
}

// appendIDB appends an Interface Description Block with if_tsresol = 9
// (nanoseconds).
func appendIDB(dst []byte, ifc Interface) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, blockIDB)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(ifc.LinkType))
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, ifc.SnapLen)
	dst = appendStringOption(dst, optIfName, ifc.Name)
	dst = appendStringOption(dst, optIfDesc, ifc.Description)
	dst = appendOption(dst, optIfTsresol, []byte{9})
	dst = appendOption(dst, optEndOfOpt, nil)
	return finishBlock(dst, start)
}

// epbLen is the size of an Enhanced Packet Block without options.
func epbLen(caplen int) int { return 32 + pad4(caplen) }

// appendEPB appends an Enhanced Packet Block with a nanosecond timestamp and
// no options. It does not allocate when dst has room for epbLen(len(data)).
func appendEPB(dst []byte, iface uint32, tsNanos uint64, length uint32, data []byte) []byte {
	n := uint32(epbLen(len(data)))
	dst = binary.LittleEndian.AppendUint32(dst, blockEPB)
	dst = binary.LittleEndian.AppendUint32(dst, n)
	dst = binary.LittleEndian.AppendUint32(dst, iface)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(tsNanos>>32))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(tsNanos))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(data)))
	dst = binary.LittleEndian.AppendUint32(dst, length)
	dst = append(dst, data...)
	for i := len(data); i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return binary.LittleEndian.AppendUint32(dst, n)
}

// tsResolution converts pcapng/pcap timestamp units to time.Time without
// allocating. A zero value means microseconds, as pcapng specifies when
// if_tsresol is absent.
type tsResolution struct {
	pow2   bool
	exp    uint8 // 10^-exp or 2^-exp seconds per unit
	offset int64 // if_tsoffset, seconds
}

var pow10 = [...]uint64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// parseTsresol decodes the if_tsresol byte; ok is false for resolutions that
// cannot be represented (finer than 10^-19 or 2^-63 s).
func parseTsresol(b byte) (tsResolution, bool) {
	if b&0x80 != 0 {
		e := b & 0x7f
		return tsResolution{pow2: true, exp: e}, e <= 63
	}
	return tsResolution{exp: b}, int(b) < len(pow10)
}

func (r tsResolution) time(units uint64) time.Time {
	if r == (tsResolution{exp: 9}) && units <= math.MaxInt64 {
		// Nanoseconds, as bufscope writes: time.Unix normalises to the
		// same Time without the two divisions below.
		return time.Unix(0, int64(units))
	}
	var sec, nsec uint64
	if r.pow2 {
		sec = units >> r.exp
		frac := units & (1<<r.exp - 1)
		hi, lo := bits.Mul64(frac, 1e9)
		// (hi:lo) >> exp; exp <= 63 and frac < 2^exp so the result fits.
		if r.exp == 0 {
			nsec = 0
		} else {
			nsec = lo>>r.exp | hi<<(64-r.exp)
		}
	} else {
		p := pow10[r.exp]
		sec, nsec = units/p, units%p
		if r.exp <= 9 {
			nsec *= pow10[9-r.exp]
		} else {
			nsec /= pow10[r.exp-9]
		}
	}
	return time.Unix(int64(sec)+r.offset, int64(nsec))
}
