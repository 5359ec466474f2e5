package capture

import "encoding/binary"

// wiresharkWindow is the input buffer of Wireshark's zstd reader
// (ZSTD_DStreamInSize() = 128 KiB + 3). After each zstd frame Wireshark
// checks for a zstd magic number at the start of that buffer rather than at
// the current position, so a frame may end inside a window only if the
// window starts with a zstd data frame.
const wiresharkWindow = 131075

// emptyZstdFrame is a zstd frame with no content: single segment, content
// size 0, one empty raw block marked last.
var emptyZstdFrame = []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00}

// presetEncoder hands the seek-table encoder a frame compressed (and
// padded) beforehand, so the seek table's compressed size covers padding
// and frame together and offsets stay exact.
type presetEncoder struct{ out []byte }

func (p *presetEncoder) EncodeAll(src, dst []byte) []byte { return append(dst, p.out...) }

// frameRec locates a block appended to the open frame after its header.
type frameRec struct {
	off, n int
	idb    bool
}

// appendPadding appends a skippable frame of exactly n bytes (n >= 8).
func appendPadding(dst []byte, n int64) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, skippableBase)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n-8))
	return append(dst, make([]byte, n-8)...)
}

// emitAligned compresses one section and writes it so that it does not
// cross a window boundary: if it does not fit the rest of the current
// window, padding moves it to the next. A section that compresses to more
// than a window is split in two at a packet boundary, each half with its own
// SHB and IDBs. ifaces is the number of IDBs in sec's header.
func (w *Writer) emitAligned(sec []byte, recs []frameRec, ifaces int) error {
	comp := w.enc.EncodeAll(sec, nil)
	if len(sec) > 64<<10 {
		// Frames closed early by the timer or Flush say little about the
		// ratio of full ones.
		w.ratio = float64(len(sec)) / float64(len(comp))
	}
	var epbs []int
	for i, r := range recs {
		if !r.idb {
			epbs = append(epbs, i)
		}
	}
	if len(comp) > wiresharkWindow && len(epbs) >= 2 {
		mid := epbs[len(epbs)/2]
		nIf := ifaces
		for _, r := range recs[:mid] {
			if r.idb {
				nIf++
			}
		}
		a, ra := w.rebuild(sec, recs[:mid], ifaces)
		if err := w.emitAligned(a, ra, ifaces); err != nil {
			return err
		}
		b, rb := w.rebuild(sec, recs[mid:], nIf)
		return w.emitAligned(b, rb, nIf)
	}
	// A single packet too large for a window cannot be aligned; the file
	// stays valid for every other reader.
	pos := w.stats.CompressedBytes
	room := wiresharkWindow - pos%wiresharkWindow
	var out []byte
	if int64(len(comp)) > room && room != wiresharkWindow {
		if room < 8 {
			room += wiresharkWindow
		}
		out = appendPadding(make([]byte, 0, int(room)+len(comp)), room)
	}
	out = append(out, comp...)
	return w.emit(sec, sectionTimes(sec, recs), out)
}

// rebuild makes a section of the header (SHB and the first nIf IDBs) and
// the given blocks of sec.
func (w *Writer) rebuild(sec []byte, recs []frameRec, nIf int) ([]byte, []frameRec) {
	out := appendSHB(nil, w.opts.Hardware, w.opts.OS, w.opts.Application, w.opts.Topology)
	for _, ifc := range w.ifaces[:nIf] {
		out = appendIDB(out, ifc)
	}
	nr := make([]frameRec, len(recs))
	for i, r := range recs {
		nr[i] = frameRec{off: len(out), n: r.n, idb: r.idb}
		out = append(out, sec[r.off:r.off+r.n]...)
	}
	patchSectionLength(out)
	return out, nr
}

// sectionTimes recomputes the time-index entry of a section from its EPBs.
func sectionTimes(sec []byte, recs []frameRec) frameTimes {
	var t frameTimes
	for _, r := range recs {
		if r.idb {
			continue
		}
		b := sec[r.off:]
		ns := int64(uint64(binary.LittleEndian.Uint32(b[12:]))<<32 | uint64(binary.LittleEndian.Uint32(b[16:])))
		if t.packets == 0 {
			t.min, t.max = ns, ns
		}
		t.min, t.max = min(t.min, ns), max(t.max, ns)
		t.packets++
	}
	return t
}
