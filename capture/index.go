package capture

import (
	"encoding/binary"
	"fmt"
)

// The time index is a zstd skippable frame written just before the seek
// table. It maps every data frame to the time range and number of packets it
// holds, so a reader asked for a time window skips frames without
// decompressing them. zstd, tshark and the seekable-format library all ignore
// it (skippable frames carry no data). Layout, all little-endian:
//
//	0   4  skippable magic 0x184D2A5B
//	4   4  frame size (bytes after this field)
//	8   4  tag "BSTI"
//	12  2  version = 1
//	14  2  entry size = 24
//	16  4  number of entries = number of data frames in the seek table
//	20  24 × n entries: min timestamp (int64 ns since the Unix epoch),
//	       max timestamp (int64 ns), packets (uint32), reserved (uint32, 0)
//
// Frames without packets store 0, 0, 0.
const (
	indexMagic     = 0x184D2A5B
	indexTag       = "BSTI"
	indexVersion   = 1
	indexEntrySize = 24
	indexHeaderLen = 20

	seekTableFooterLen = 9
	seekableMagic      = 0x8F92EAB1
	seekTableMagic     = 0x184D2A5E
	zstdMagic          = 0xFD2FB528
	skippableMask      = 0xFFFFFFF0
	skippableBase      = 0x184D2A50
)

// frameTimes is one entry of the time index.
type frameTimes struct {
	min, max int64
	packets  uint32
}

func appendIndexFrame(dst []byte, idx []frameTimes) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, indexMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(indexHeaderLen-8+indexEntrySize*len(idx)))
	dst = append(dst, indexTag...)
	dst = binary.LittleEndian.AppendUint16(dst, indexVersion)
	dst = binary.LittleEndian.AppendUint16(dst, indexEntrySize)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(idx)))
	for _, e := range idx {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.min))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.max))
		dst = binary.LittleEndian.AppendUint32(dst, e.packets)
		dst = binary.LittleEndian.AppendUint32(dst, 0)
	}
	return dst
}

// parseIndexFrame decodes a whole time-index skippable frame that must hold
// exactly frames entries.
func parseIndexFrame(b []byte, frames int) ([]frameTimes, error) {
	if len(b) < indexHeaderLen {
		return nil, fmt.Errorf("time index: %d bytes, need at least %d", len(b), indexHeaderLen)
	}
	if m := binary.LittleEndian.Uint32(b); m != indexMagic {
		return nil, fmt.Errorf("time index: magic %#08x, want %#08x", m, indexMagic)
	}
	if sz := binary.LittleEndian.Uint32(b[4:]); int64(sz) != int64(len(b)-8) {
		return nil, fmt.Errorf("time index: frame size field %d, frame has %d", sz, len(b)-8)
	}
	if string(b[8:12]) != indexTag {
		return nil, fmt.Errorf("time index: tag %q, want %q", b[8:12], indexTag)
	}
	if v := binary.LittleEndian.Uint16(b[12:]); v != indexVersion {
		return nil, fmt.Errorf("time index: version %d, this build reads %d", v, indexVersion)
	}
	if es := binary.LittleEndian.Uint16(b[14:]); es != indexEntrySize {
		return nil, fmt.Errorf("time index: entry size %d, want %d", es, indexEntrySize)
	}
	n := binary.LittleEndian.Uint32(b[16:])
	if int64(n) != int64(frames) || int64(len(b)-indexHeaderLen) != int64(n)*indexEntrySize {
		return nil, fmt.Errorf("time index: %d entries in %d bytes for %d frames", n, len(b)-indexHeaderLen, frames)
	}
	idx := make([]frameTimes, n)
	for i := range idx {
		e := b[indexHeaderLen+i*indexEntrySize:]
		idx[i] = frameTimes{
			min:     int64(binary.LittleEndian.Uint64(e)),
			max:     int64(binary.LittleEndian.Uint64(e[8:])),
			packets: binary.LittleEndian.Uint32(e[16:]),
		}
	}
	return idx, nil
}
