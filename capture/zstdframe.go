package capture

import (
	"encoding/binary"
	"fmt"
	"io"
)

// zframe is one frame of a zstd stream as found in the file.
type zframe struct {
	index     int   // data-frame number (skippable frames share the next one's)
	off       int64 // offset of the frame's magic number in the file
	clen      int64 // compressed length; up to the end of file when truncated
	dlen      int64 // decompressed length, -1 when unknown
	skippable bool
	truncated bool  // the file ends inside this frame
	need      int64 // when truncated: the length the frame header and blocks announce (lower bound)
}

// scanFrame finds the extent of the zstd frame starting at off by walking
// its header and block headers (RFC 8878 §3.1), without decompressing. It
// lets the reader hand whole frames to parallel workers and resume after a
// damaged frame in files that have no seek table. An error means the bytes at
// off are not a frame at all, so nothing after them can be trusted.
func scanFrame(ra io.ReaderAt, size, off int64) (zframe, error) {
	f := zframe{off: off, dlen: -1}
	var hdr [18]byte
	n, _ := ra.ReadAt(hdr[:min(int64(len(hdr)), size-off)], off)
	if n < 4 {
		f.clen, f.truncated, f.need = size-off, true, 4
		return f, nil
	}
	magic := binary.LittleEndian.Uint32(hdr[:])
	if magic&skippableMask == skippableBase {
		if n < 8 {
			f.clen, f.truncated, f.need = size-off, true, 8
			return f, nil
		}
		f.skippable = true
		f.clen = 8 + int64(binary.LittleEndian.Uint32(hdr[4:]))
		if off+f.clen > size {
			f.need, f.clen, f.truncated = f.clen, size-off, true
		}
		return f, nil
	}
	if magic != zstdMagic {
		return f, fmt.Errorf("offset %d: not a zstd frame (magic %#08x)", off, magic)
	}
	if n < 5 {
		f.clen, f.truncated, f.need = size-off, true, 5
		return f, nil
	}
	fhd := hdr[4]
	if fhd&0x08 != 0 {
		return f, fmt.Errorf("offset %d: zstd frame header has the reserved bit set", off)
	}
	fcsFlag := fhd >> 6
	single := fhd&0x20 != 0
	checksum := fhd&0x04 != 0
	dictLen := [4]int{0, 1, 2, 4}[fhd&3]
	fcsLen := [4]int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsLen = 1
	}
	hlen := 5 + dictLen + fcsLen
	if !single {
		hlen++
	}
	if n < hlen {
		f.clen, f.truncated, f.need = size-off, true, int64(hlen)
		return f, nil
	}
	fcs := hdr[hlen-fcsLen : hlen]
	switch fcsLen {
	case 1:
		f.dlen = int64(fcs[0])
	case 2:
		f.dlen = int64(binary.LittleEndian.Uint16(fcs)) + 256
	case 4:
		f.dlen = int64(binary.LittleEndian.Uint32(fcs))
	case 8:
		if v := binary.LittleEndian.Uint64(fcs); v < 1<<62 {
			f.dlen = int64(v)
		}
	}
	pos := off + int64(hlen)
	for {
		var bh [3]byte
		if pos+3 > size {
			f.clen, f.truncated, f.need = size-off, true, pos+3-off
			return f, nil
		}
		if _, err := ra.ReadAt(bh[:], pos); err != nil {
			return f, fmt.Errorf("offset %d: read zstd block header: %w", pos, err)
		}
		v := uint32(bh[0]) | uint32(bh[1])<<8 | uint32(bh[2])<<16
		last := v&1 != 0
		btype := (v >> 1) & 3
		bsize := int64(v >> 3)
		switch btype {
		case 1: // RLE: one byte repeated bsize times
			bsize = 1
		case 3:
			return f, fmt.Errorf("offset %d: zstd block of reserved type 3", pos)
		}
		if bsize > 128<<10 {
			return f, fmt.Errorf("offset %d: zstd block of %d bytes exceeds the 128 KiB maximum", pos, bsize)
		}
		pos += 3 + bsize
		if last {
			break
		}
	}
	if checksum {
		pos += 4
	}
	f.clen = pos - off
	if pos > size {
		f.need, f.clen, f.truncated = f.clen, size-off, true
	}
	return f, nil
}
