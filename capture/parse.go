package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/gopacket/gopacket/layers"
)

// This file is the block parser: it turns the decompressed stream that
// reader.go assembles into packets, for pcapng and pcap alike, and keeps the
// offsets that error messages name.

// errResync is returned by fill when damage cut the stream: the parser drops
// the partial block and continues at the next pcapng section.
var errResync = errors.New("resync")

// fill makes n contiguous bytes available at data[pos:]. It returns io.EOF
// when the stream ended cleanly before any of them, errResync after damage,
// and a *FrameError when the stream ends inside the n bytes or cannot go on.
func (r *Reader) fill(n int) ([]byte, error) {
	if len(r.data)-r.pos >= n {
		return r.data[r.pos : r.pos+n], nil
	}
	have := len(r.data) - r.pos
	if r.eof {
		if have == 0 {
			return nil, io.EOF
		}
		return nil, r.truncatedAt(n)
	}
	r.sIdx ^= 1
	s := append(r.scratch[r.sIdx][:0], r.data[r.pos:]...)
	startOff := r.base + int64(r.pos)
	for {
		p := r.pull()
		switch {
		case p.fatal != nil:
			r.data, r.pos = nil, 0
			return nil, r.stop(p.fatal)
		case p.damage != nil:
			r.damage = append(r.damage, *p.damage)
			r.data, r.pos, r.base = nil, 0, startOff+int64(len(s))
			r.resync = true
			return nil, errResync
		case p.eof:
			r.eof = true
			if len(s) == 0 {
				r.data, r.pos, r.base = nil, 0, startOff
				return nil, io.EOF
			}
			r.data, r.pos, r.base = s, 0, startOff
			r.scratch[r.sIdx] = s
			return nil, r.truncatedAt(n)
		}
		if len(s) == 0 && len(p.data) >= n {
			r.data, r.pos, r.base = p.data, 0, startOff
			return r.data[:n], nil
		}
		s = append(s, p.data...)
		r.scratch[r.sIdx] = s
		if len(s) >= n {
			r.data, r.pos, r.base = s, 0, startOff
			return r.data[:n], nil
		}
	}
}

func (r *Reader) truncatedAt(n int) error {
	have := len(r.data) - r.pos
	err := fmt.Errorf("truncated: %s ends %d bytes into a %d-byte record at stream offset %d", r.streamName(), have, n, r.base+int64(r.pos))
	return r.stop(r.blockError(err))
}

func (r *Reader) streamName() string {
	if r.dec != nil {
		return "the decompressed stream"
	}
	return "the file"
}

// blockError describes a problem at the parser's position.
func (r *Reader) blockError(err error) *FrameError {
	fe := &FrameError{Frame: r.frameIdx, Offset: r.frameOff, Err: err, Lost: -1, StreamOffset: r.base + int64(r.pos)}
	if r.dec == nil {
		fe.Frame = -1
		fe.Offset = r.base + int64(r.pos)
	}
	return fe
}

// stop records a damage that ends the read and returns the final error.
func (r *Reader) stop(fe *FrameError) error {
	r.damage = append(r.damage, *fe)
	r.stopped = true
	return r.damageError()
}

func (r *Reader) damageError() error {
	if len(r.damage) == 0 && r.ownWriter && r.container == "zstd" && r.sections == r.framesSeen {
		// bufscope's Writer always ends a trace with the seek table, so a
		// zstd trace of ours without one was cut short: say so, rather than
		// let a killed recording look complete. Each of its frames opens a
		// section; a file recompressed by another tool has frames that do
		// not, unless it is a single frame holding a single section.
		r.damage = append(r.damage, FrameError{Frame: -1, Offset: r.size, Lost: -1, StreamOffset: -1, Err: ErrNoSeekTable})
	}
	if len(r.damage) == 0 {
		return io.EOF
	}
	return &DamageError{File: r.name, Frames: r.damage, Stopped: r.stopped}
}

// next parses blocks until a packet inside the time window, the end, or an
// error that ends the read.
func (r *Reader) next() (Packet, error) {
	for {
		p, ok, err := r.parseOne()
		if err == errResync {
			continue
		}
		if err != nil {
			if err == io.EOF {
				return Packet{}, r.damageError()
			}
			return Packet{}, err
		}
		if !ok {
			continue
		}
		if r.outside(p.Timestamp.UnixNano()) {
			continue
		}
		return p, nil
	}
}

// outside reports whether a packet stamped ns falls outside the time
// window.
func (r *Reader) outside(ns int64) bool {
	return (r.fromOn && ns < r.from) || (r.toOn && ns >= r.to)
}

// parseOne consumes one block or record; ok reports a packet.
func (r *Reader) parseOne() (Packet, bool, error) {
	if r.resync || r.kind == kindUnknown {
		b, err := r.fill(4)
		if err != nil {
			return Packet{}, false, err
		}
		m := [4]byte(b)
		switch {
		case binary.LittleEndian.Uint32(b) == blockSHB:
			if r.kind == kindPcap {
				return Packet{}, false, r.stop(r.blockError(errors.New("pcapng section inside a pcap stream")))
			}
			r.kind = kindPcapng
		case r.kind == kindUnknown && isPcapMagic(m):
			r.kind = kindPcap
			return Packet{}, false, r.parsePcapHeader()
		case r.kind == kindUnknown:
			return Packet{}, false, r.stop(r.blockError(fmt.Errorf("decompressed data is neither pcap nor pcapng (starts with % x)", b)))
		default:
			return Packet{}, false, r.stop(r.blockError(errors.New("cannot resynchronise after the damage: the next frame does not start a pcapng section")))
		}
		r.resync = false
	}
	if r.kind == kindPcap {
		return r.parsePcapRecord()
	}
	return r.parseBlock()
}

// skipDamaged records a bad block and drops the rest of the current chunk:
// in a bufscope trace that is the rest of the frame, and the next frame
// starts a fresh section.
func (r *Reader) skipDamaged(err error) error {
	fe := r.blockError(err)
	if r.dec == nil {
		return r.stop(fe)
	}
	fe.Err = fmt.Errorf("%w (rest of the frame skipped)", err)
	r.damage = append(r.damage, *fe)
	r.pos = len(r.data)
	r.resync = true
	return errResync
}

func (r *Reader) parseBlock() (Packet, bool, error) {
	h, err := r.fill(12)
	if err != nil {
		return Packet{}, false, err
	}
	btype := binary.LittleEndian.Uint32(h)
	if btype == blockSHB {
		switch binary.LittleEndian.Uint32(h[8:]) {
		case byteOrderMagic:
			r.bo, r.le = binary.LittleEndian, true
		case 0x4D3C2B1A:
			r.bo, r.le = binary.BigEndian, false
		default:
			return Packet{}, false, r.skipDamaged(fmt.Errorf("section header with byte-order magic % x", h[8:12]))
		}
	} else if r.bo == nil {
		return Packet{}, false, r.skipDamaged(errors.New("pcapng block before any section header"))
	}
	btype = r.bo.Uint32(h)
	blen := r.bo.Uint32(h[4:])
	if blen%4 != 0 || blen < 12 || blen > maxBlockLen {
		return Packet{}, false, r.skipDamaged(fmt.Errorf("pcapng block type %#x with impossible length %d", btype, blen))
	}
	b, err := r.fill(int(blen))
	if err != nil {
		return Packet{}, false, err
	}
	if r.bo.Uint32(b[blen-4:]) != blen {
		return Packet{}, false, r.skipDamaged(fmt.Errorf("pcapng block type %#x: trailing length %d differs from leading %d", btype, r.bo.Uint32(b[blen-4:]), blen))
	}
	body := b[8 : blen-4]
	var p Packet
	ok := false
	switch btype {
	case blockSHB:
		err = r.parseSHB(body)
	case blockIDB:
		err = r.parseIDB(body)
	case blockEPB:
		p, ok, err = r.parseEPB(body)
	case blockSPB:
		p, ok, err = r.parseSPB(body)
	case blockOPB:
		p, ok, err = r.parseOPB(body)
	}
	if err != nil {
		return Packet{}, false, r.skipDamaged(fmt.Errorf("pcapng block type %#x: %w", btype, err))
	}
	r.pos += int(blen)
	return p, ok, nil
}

// forOptions calls fn for every option in opts until opt_endofopt.
func (r *Reader) forOptions(opts []byte, fn func(code uint16, v []byte) error) error {
	for len(opts) >= 4 {
		code := r.bo.Uint16(opts)
		l := int(r.bo.Uint16(opts[2:]))
		if code == optEndOfOpt {
			return nil
		}
		if 4+l > len(opts) {
			return fmt.Errorf("option %d of %d bytes overruns the block", code, l)
		}
		if err := fn(code, opts[4:4+l]); err != nil {
			return err
		}
		opts = opts[min(len(opts), 4+pad4(l)):]
	}
	return nil
}

func (r *Reader) parseSHB(body []byte) error {
	if len(body) < 16 {
		return fmt.Errorf("section header body of %d bytes, need 16", len(body))
	}
	if major := r.bo.Uint16(body[4:]); major != 1 {
		return fmt.Errorf("pcapng major version %d, only 1 exists", major)
	}
	r.local = r.local[:0]
	r.sections++
	return r.forOptions(body[16:], func(code uint16, v []byte) error {
		if code == optComment && bytes.HasPrefix(v, []byte(topologyPrefix)) && r.topology == nil {
			r.topology = bytes.Clone(v[len(topologyPrefix):])
		}
		if code == optShbApp && bytes.HasPrefix(v, []byte("bufscope")) {
			r.ownWriter = true
		}
		return nil
	})
}

func (r *Reader) parseIDB(body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("interface description body of %d bytes, need 8", len(body))
	}
	ifc := Interface{LinkType: layers.LinkType(r.bo.Uint16(body)), SnapLen: r.bo.Uint32(body[4:])}
	li := localIface{res: tsResolution{exp: 6}, snap: ifc.SnapLen}
	err := r.forOptions(body[8:], func(code uint16, v []byte) error {
		switch code {
		case optIfName:
			ifc.Name = string(v)
		case optIfDesc:
			ifc.Description = string(v)
		case optIfTsresol:
			if len(v) != 1 {
				return fmt.Errorf("if_tsresol of %d bytes", len(v))
			}
			res, ok := parseTsresol(v[0])
			if !ok {
				return fmt.Errorf("if_tsresol %#x is finer than this reader supports", v[0])
			}
			li.res.pow2, li.res.exp = res.pow2, res.exp
		case optIfTsoff:
			if len(v) != 8 {
				return fmt.Errorf("if_tsoffset of %d bytes", len(v))
			}
			li.res.offset = int64(r.bo.Uint64(v))
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Sections repeat the interfaces of earlier ones (a bufscope trace
	// repeats them in every frame): the same description at the same
	// position is the same capture point.
	n := len(r.local)
	if n < len(r.ifaces) && r.ifaces[n] == ifc {
		li.global = n
	} else {
		r.ifaces = append(r.ifaces, ifc)
		li.global = len(r.ifaces) - 1
	}
	r.local = append(r.local, li)
	return nil
}

func (r *Reader) iface(id uint32) (*localIface, error) {
	if int64(id) >= int64(len(r.local)) {
		return nil, fmt.Errorf("packet on interface %d, but the section describes %d", id, len(r.local))
	}
	return &r.local[id], nil
}

func (r *Reader) parseEPB(body []byte) (Packet, bool, error) {
	if len(body) < 20 {
		return Packet{}, false, fmt.Errorf("enhanced packet body of %d bytes, need 20", len(body))
	}
	li, err := r.iface(r.bo.Uint32(body))
	if err != nil {
		return Packet{}, false, err
	}
	units := uint64(r.bo.Uint32(body[4:]))<<32 | uint64(r.bo.Uint32(body[8:]))
	caplen := r.bo.Uint32(body[12:])
	if int64(caplen) > int64(len(body)-20) {
		return Packet{}, false, fmt.Errorf("captured length %d overruns the %d-byte block", caplen, len(body)+12)
	}
	return Packet{Timestamp: li.res.time(units), Interface: li.global, CaptureLength: int(caplen),
		Length: int(r.bo.Uint32(body[16:])), Data: body[20 : 20+caplen : 20+caplen]}, true, nil
}

// fastEPB consumes the next block if it is what nearly every block of a
// trace is: an Enhanced Packet Block of a little-endian pcapng section,
// whole in the current chunk, that parseBlock would accept. It returns the
// block body and the packet's interface, or a nil interface (consuming
// nothing) for every other case, which parseOne then handles with all its
// checks and error reporting. It reads the fields without going through
// r.bo, whose every call is an interface call. The caller applies the
// time window, as next does.
func (r *Reader) fastEPB() ([]byte, *localIface) {
	if r.kind != kindPcapng || r.resync || !r.le || r.noFast {
		return nil, nil
	}
	b := r.data[r.pos:]
	if len(b) < 32 || binary.LittleEndian.Uint32(b) != blockEPB {
		return nil, nil
	}
	n := binary.LittleEndian.Uint32(b[4:])
	// 32 bytes is the smallest block whose body holds the 20-byte EPB
	// header parseEPB needs.
	if n%4 != 0 || n < 32 || n > maxBlockLen || int64(n) > int64(len(b)) ||
		binary.LittleEndian.Uint32(b[n-4:]) != n {
		return nil, nil
	}
	body := b[8 : n-4]
	id := binary.LittleEndian.Uint32(body)
	if int64(id) >= int64(len(r.local)) ||
		int64(binary.LittleEndian.Uint32(body[12:])) > int64(len(body)-20) {
		return nil, nil
	}
	r.pos += int(n)
	return body, &r.local[id]
}

// epbPacket is parseEPB's Packet for a body fastEPB accepted.
func epbPacket(body []byte, li *localIface) Packet {
	caplen := binary.LittleEndian.Uint32(body[12:])
	units := uint64(binary.LittleEndian.Uint32(body[4:]))<<32 | uint64(binary.LittleEndian.Uint32(body[8:]))
	return Packet{Timestamp: li.res.time(units), Interface: li.global, CaptureLength: int(caplen),
		Length: int(binary.LittleEndian.Uint32(body[16:])), Data: body[20 : 20+caplen : 20+caplen]}
}

func (r *Reader) parseOPB(body []byte) (Packet, bool, error) {
	if len(body) < 20 {
		return Packet{}, false, fmt.Errorf("packet block body of %d bytes, need 20", len(body))
	}
	li, err := r.iface(uint32(r.bo.Uint16(body)))
	if err != nil {
		return Packet{}, false, err
	}
	units := uint64(r.bo.Uint32(body[4:]))<<32 | uint64(r.bo.Uint32(body[8:]))
	caplen := r.bo.Uint32(body[12:])
	if int64(caplen) > int64(len(body)-20) {
		return Packet{}, false, fmt.Errorf("captured length %d overruns the %d-byte block", caplen, len(body)+12)
	}
	return Packet{Timestamp: li.res.time(units), Interface: li.global, CaptureLength: int(caplen),
		Length: int(r.bo.Uint32(body[16:])), Data: body[20 : 20+caplen : 20+caplen]}, true, nil
}

// parseSPB decodes a Simple Packet Block: interface 0, no timestamp (the
// packet gets the zero time), captured length from the block and snap length.
func (r *Reader) parseSPB(body []byte) (Packet, bool, error) {
	if len(body) < 4 {
		return Packet{}, false, fmt.Errorf("simple packet body of %d bytes, need 4", len(body))
	}
	li, err := r.iface(0)
	if err != nil {
		return Packet{}, false, err
	}
	orig := r.bo.Uint32(body)
	caplen := int64(len(body) - 4)
	caplen = min(caplen, int64(orig))
	if li.snap != 0 {
		caplen = min(caplen, int64(li.snap))
	}
	return Packet{Interface: li.global, CaptureLength: int(caplen), Length: int(orig),
		Data: body[4 : 4+caplen : 4+caplen]}, true, nil
}

func (r *Reader) parsePcapHeader() error {
	h, err := r.fill(24)
	if err != nil {
		if err == io.EOF || err == errResync {
			return r.stop(r.blockError(errors.New("pcap file header missing")))
		}
		return err
	}
	endian, unit := "little-endian", "µs"
	switch {
	case binary.LittleEndian.Uint32(h) == 0xa1b2c3d4:
		r.bo = binary.LittleEndian
	case binary.BigEndian.Uint32(h) == 0xa1b2c3d4:
		r.bo, endian = binary.BigEndian, "big-endian"
	case binary.LittleEndian.Uint32(h) == 0xa1b23c4d:
		r.bo, unit = binary.LittleEndian, "ns"
	default:
		r.bo, endian, unit = binary.BigEndian, "big-endian", "ns"
	}
	r.pcapRes = tsResolution{exp: 6}
	if unit == "ns" {
		r.pcapRes.exp = 9
	}
	r.pcapDesc = fmt.Sprintf("pcap (%s, %s)", unit, endian)
	r.snap = r.bo.Uint32(h[16:])
	link := r.bo.Uint32(h[20:])
	r.ifaces = append(r.ifaces, Interface{Name: filepath.Base(r.name), LinkType: layers.LinkType(link & 0xffff), SnapLen: r.snap})
	r.pos += 24
	return nil
}

func (r *Reader) parsePcapRecord() (Packet, bool, error) {
	h, err := r.fill(16)
	if err != nil {
		if err == errResync {
			// A pcap stream has no sections to resynchronise at.
			r.stopped = true
			return Packet{}, false, r.damageError()
		}
		return Packet{}, false, err
	}
	caplen := r.bo.Uint32(h[8:])
	if caplen > maxBlockLen {
		return Packet{}, false, r.stop(r.blockError(fmt.Errorf("pcap record with captured length %d (snap length %d): corrupt record header", caplen, r.snap)))
	}
	sec, frac := r.bo.Uint32(h), r.bo.Uint32(h[4:])
	orig := r.bo.Uint32(h[12:])
	b, err := r.fill(16 + int(caplen))
	if err != nil {
		if err == errResync {
			r.stopped = true
			return Packet{}, false, r.damageError()
		}
		return Packet{}, false, err
	}
	units := uint64(sec)*pow10[r.pcapRes.exp] + uint64(frac)
	p := Packet{Timestamp: r.pcapRes.time(units), CaptureLength: int(caplen), Length: int(orig),
		Data: b[16 : 16+caplen : 16+caplen]}
	r.pos += 16 + int(caplen)
	return p, true, nil
}
