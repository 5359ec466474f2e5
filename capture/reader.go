package capture

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/klauspost/compress/zstd"
)

// ReaderOptions configures a Reader. The zero value reads everything.
type ReaderOptions struct {
	// From and To select packets with From <= timestamp < To; a zero value
	// leaves that side open. In a bufscope trace, frames entirely outside the
	// window are skipped without being read or decompressed (the time index
	// says what each frame holds). Other files are read and filtered.
	From, To time.Time
	// Workers decompress zstd frames in parallel (default: GOMAXPROCS, at
	// most 4). Packets still come out in file order.
	Workers int
	// MaxDecoderMemory caps the memory one zstd frame may decompress to (and
	// the window of a streamed frame), so a hostile file cannot exhaust
	// memory. Default 512 MiB. Frames whose content size is unknown or above
	// 64 MiB are streamed instead of decompressed whole.
	MaxDecoderMemory uint64
	// CopyData makes every Packet.Data a fresh allocation that the caller
	// owns, instead of a view into the reader's buffers.
	CopyData bool
	// Inline decompresses each frame on the goroutine that calls Next,
	// when it needs the frame, instead of ahead of it on Workers
	// goroutines. For a caller that keeps every CPU busy with its own
	// pipeline (bufscope analyze on 2 CPUs): fewer runnable goroutines
	// than CPUs let each stay on its CPU instead of taking turns.
	Inline bool
}

// ReaderStats counts what a Reader did; it is safe to call Stats at any time.
type ReaderStats struct {
	Frames             int64 // zstd data frames seen (from the seek table, or scanned so far)
	FramesSkipped      int64 // frames skipped by time without reading them
	FramesDecompressed int64 // frames (or streamed frames) decompressed
	CompressedBytes    int64 // compressed bytes read from the file
	// Packets returned by Next and NextData. It is exact once they have
	// returned an error (io.EOF included); while reading it is brought up to date each
	// time the reader moves on to the next decompressed chunk (a zstd
	// frame, or 1 MiB of an uncompressed file), so it can lag by the
	// packets of one chunk.
	Packets int64
}

// Packet is one captured packet.
type Packet struct {
	Timestamp     time.Time
	Interface     int // index into Reader.Interfaces()
	CaptureLength int // len(Data)
	Length        int // original length on the wire
	// Data is owned by the Reader and valid until the next call to Next,
	// unless ReaderOptions.CopyData is set. Use Clone to keep a packet.
	Data []byte
}

// Clone returns a copy of p whose Data the caller owns.
func (p Packet) Clone() Packet {
	p.Data = bytes.Clone(p.Data)
	return p
}

const (
	chunkSize      = 1 << 20  // read size for uncompressed files and streamed frames
	decodeAllLimit = 64 << 20 // larger frames are streamed
)

type streamKind int

const (
	kindUnknown streamKind = iota
	kindPcapng
	kindPcap
)

// job is one unit of the read pipeline: a decompressed frame, a chunk of an
// uncompressed file, a frame the consumer streams itself, or a failure.
type job struct {
	frame  zframe
	done   chan struct{}
	data   []byte
	err    error // damage: this frame's data is lost, reading continues
	fatal  error // nothing after this point can be read
	stream bool  // decompressed by the consumer in pieces
	inline bool  // decompressed whole by the consumer (ReaderOptions.Inline)
	lost   frameTimes
	known  bool // lost is from the time index
}

// Reader reads packets from a bufscope trace, a zstd-compressed pcap or
// pcapng (seekable or not), or a plain pcap/pcapng file.
//
// A Reader is not safe for concurrent use: one goroutine calls Next.
// Interfaces and Topology return the reader's own slices, which later Next
// calls may extend; Stats and Close may be called from any goroutine.
type Reader struct {
	name   string
	ra     io.ReaderAt
	size   int64
	closer io.Closer
	opts   ReaderOptions
	from   int64 // ns, math.MinInt64 when open
	to     int64 // ns, math.MaxInt64 when open
	fromOn bool
	toOn   bool
	noFast bool // tests: every block through the full parser

	container string // "bufscope seekable zstd", "seekable zstd", "zstd", ""
	frames    []zframe
	index     []frameTimes
	dec       *zstd.Decoder

	order   chan *job
	work    chan *job
	free    chan []byte
	quit    chan struct{}
	wg      sync.WaitGroup
	closeMu sync.Once

	// consumer state
	curBuf   []byte // pooled buffer behind data, returned on the next pull
	data     []byte
	pos      int
	base     int64 // decompressed-stream offset of data[0]
	frameIdx int   // frame the current chunk came from, -1 for uncompressed
	frameOff int64
	scratch  [2][]byte
	sIdx     int
	st       *streamState
	src      []byte // compressed frame (ReaderOptions.Inline)
	eof      bool
	resync   bool // after damage: the next chunk must start a pcapng section

	kind     streamKind
	bo       binary.ByteOrder
	le       bool // bo is little-endian (for fastEPB)
	local    []localIface
	ifaces   []Interface
	topology []byte
	pcapRes  tsResolution
	pcapDesc string
	snap     uint32

	damage     []FrameError
	stopped    bool
	ownWriter  bool // the section header names bufscope as the writing application
	framesSeen int  // zstd frames pulled
	sections   int  // section headers parsed
	final      error
	pending    *Packet

	stats struct {
		frames, skipped, decompressed, compressed, packets atomic.Int64
	}
	// delivered counts packets returned by Next or NextData but not yet added to
	// stats.packets: one atomic add per chunk instead of per packet.
	delivered int64
}

type localIface struct {
	global int
	res    tsResolution
	snap   uint32
}

type streamState struct {
	job *job
	dec *zstd.Decoder
	off int64 // decompressed bytes delivered so far
}

// Open opens a trace file and recognises its format by its magic bytes:
// a zstd stream (seekable or not, containing pcapng or pcap), pcapng, or
// pcap in either byte order with µs or ns timestamps. The header blocks are
// read before Open returns, so Interfaces, Topology and Format are ready.
func Open(path string, opts ReaderOptions) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trace: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open trace: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file (pipes are not supported: the reader needs random access)", path)
	}
	r, err := NewReader(f, fi.Size(), path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader reads a trace of size bytes from ra; name is used in errors.
// The caller keeps ownership of ra and must keep it open until Close.
func NewReader(ra io.ReaderAt, size int64, name string, opts ReaderOptions) (*Reader, error) {
	if opts.Workers <= 0 {
		opts.Workers = min(runtime.GOMAXPROCS(0), 4)
	}
	if opts.Inline {
		opts.Workers = 1
	}
	if opts.MaxDecoderMemory == 0 {
		opts.MaxDecoderMemory = 512 << 20
	}
	r := &Reader{
		name:     name,
		ra:       ra,
		size:     size,
		opts:     opts,
		quit:     make(chan struct{}),
		free:     make(chan []byte, opts.Workers+4),
		frameIdx: -1,
	}
	if !opts.From.IsZero() {
		r.fromOn, r.from = true, opts.From.UnixNano()
	}
	if !opts.To.IsZero() {
		r.toOn, r.to = true, opts.To.UnixNano()
	}
	var magic [4]byte
	if n, _ := ra.ReadAt(magic[:], 0); n < 4 {
		return nil, fmt.Errorf("%s: %d bytes: too short for any capture format (empty or truncated file)", name, n)
	}
	le := binary.LittleEndian.Uint32(magic[:])
	switch {
	case le == zstdMagic || le&skippableMask == skippableBase:
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(opts.Workers),
			zstd.WithDecoderMaxMemory(opts.MaxDecoderMemory),
			zstd.WithDecoderMaxWindow(min(opts.MaxDecoderMemory, zstd.MaxWindowSize)))
		if err != nil {
			return nil, fmt.Errorf("%s: zstd decoder: %w", name, err)
		}
		r.dec = dec
		r.container = "zstd"
		r.loadSeekTable()
	case le == blockSHB || isPcapMagic(magic):
	default:
		return nil, fmt.Errorf("%s: not a pcap, pcapng or zstd file (starts with % x): give a trace written by bufscope record, tcpdump or Wireshark", name, magic)
	}
	r.start()
	p, err := r.next()
	if err != nil && err != io.EOF && r.kind == kindUnknown {
		r.Close()
		return nil, err
	}
	r.pending = &p
	r.final = err
	return r, nil
}

func isPcapMagic(m [4]byte) bool {
	be := binary.BigEndian.Uint32(m[:])
	le := binary.LittleEndian.Uint32(m[:])
	return be == 0xa1b2c3d4 || le == 0xa1b2c3d4 || be == 0xa1b23c4d || le == 0xa1b23c4d
}

// loadSeekTable looks for the seekable-format seek table at the end of the
// file and, just before it, the bufscope time index. A file without them (a
// writer that was killed, or plain zstd) is read by scanning frames.
func (r *Reader) loadSeekTable() {
	if r.size < seekTableFooterLen+8 {
		return
	}
	var foot [seekTableFooterLen]byte
	if _, err := r.ra.ReadAt(foot[:], r.size-seekTableFooterLen); err != nil {
		return
	}
	if binary.LittleEndian.Uint32(foot[5:]) != seekableMagic {
		return
	}
	n := int64(binary.LittleEndian.Uint32(foot[:]))
	entry := int64(8)
	if foot[4]&0x80 != 0 {
		entry = 12
	}
	stLen := 8 + n*entry + seekTableFooterLen
	if stLen > r.size || stLen > 64<<20 {
		return
	}
	buf := make([]byte, stLen)
	if _, err := r.ra.ReadAt(buf, r.size-stLen); err != nil {
		return
	}
	st, err := seekable.NewSeekTable(buf)
	if err != nil {
		return
	}
	frames := make([]zframe, 0, st.NumFrames())
	var end int64
	for i := int64(0); i < st.NumFrames(); i++ {
		e, _ := st.EntryByID(i)
		frames = append(frames, zframe{index: int(i), off: int64(e.CompressedOffset),
			clen: int64(e.CompressedSize), dlen: int64(e.DecompressedSize)})
		end = int64(e.CompressedOffset) + int64(e.CompressedSize)
	}
	if end > r.size-stLen {
		return // the table describes another file; scan instead
	}
	r.frames = frames
	r.container = "seekable zstd"
	// A Wireshark-readable trace may have padding and an empty zstd frame
	// before the index (docs/trace-format.md).
	for end < r.size-stLen {
		f, err := scanFrame(r.ra, r.size-stLen, end)
		var m [4]byte
		r.ra.ReadAt(m[:], end)
		if err != nil || f.truncated || binary.LittleEndian.Uint32(m[:]) == indexMagic ||
			(!f.skippable && f.dlen != 0) {
			break
		}
		end += f.clen
	}
	if gap := r.size - stLen - end; gap >= indexHeaderLen && gap <= 64<<20 {
		ib := make([]byte, gap)
		if _, err := r.ra.ReadAt(ib, end); err == nil {
			if idx, err := parseIndexFrame(ib, len(frames)); err == nil {
				r.index = idx
				r.container = "bufscope seekable zstd"
			}
		}
	}
	r.stats.frames.Store(int64(len(frames)))
}

// start launches the dispatcher, which decides what to read in file order,
// and the workers that decompress frames.
func (r *Reader) start() {
	r.order = make(chan *job, r.opts.Workers+1)
	r.work = make(chan *job, r.opts.Workers+1)
	if r.dec != nil && !r.opts.Inline {
		for i := 0; i < r.opts.Workers; i++ {
			r.wg.Add(1)
			go r.worker()
		}
	}
	r.wg.Add(1)
	go r.dispatch()
}

func (r *Reader) send(j *job, decode bool) bool {
	if decode && r.opts.Inline {
		j.inline, decode = true, false
	}
	select {
	case r.order <- j:
	case <-r.quit:
		return false
	}
	if decode {
		select {
		case r.work <- j:
		case <-r.quit:
			return false
		}
	}
	return true
}

func (r *Reader) dispatch() {
	defer r.wg.Done()
	defer close(r.order)
	defer close(r.work)
	switch {
	case r.dec == nil:
		r.dispatchRaw()
	case r.frames != nil:
		for i, f := range r.frames {
			j := &job{frame: f, done: make(chan struct{})}
			if r.index != nil {
				t := r.index[i]
				j.lost, j.known = t, true
				if t.packets > 0 && ((r.fromOn && t.max < r.from) || (r.toOn && t.min >= r.to)) {
					r.stats.skipped.Add(1)
					continue
				}
			}
			if !r.dispatchFrame(j) {
				return
			}
		}
	default:
		r.dispatchScan()
	}
}

func (r *Reader) dispatchRaw() {
	for off := int64(0); off < r.size; off += chunkSize {
		buf := r.getBuf(chunkSize)[:min(chunkSize, r.size-off)]
		n, err := r.ra.ReadAt(buf, off)
		j := &job{frame: zframe{index: -1, off: off}, done: make(chan struct{}), data: buf[:n]}
		if n < len(buf) {
			j.fatal = fmt.Errorf("offset %d: read: %v", off+int64(n), err)
		}
		close(j.done)
		if !r.send(j, false) || j.fatal != nil {
			return
		}
	}
}

func (r *Reader) dispatchScan() {
	idx := 0
	for off := int64(0); off < r.size; {
		f, err := scanFrame(r.ra, r.size, off)
		if err != nil {
			j := &job{frame: zframe{index: idx, off: off}, done: make(chan struct{}), fatal: err}
			close(j.done)
			r.send(j, false)
			return
		}
		off += f.clen
		f.index = idx
		if f.skippable {
			if f.truncated {
				j := &job{frame: f, done: make(chan struct{}),
					err: fmt.Errorf("skippable frame truncated: file ends %d bytes into its %d", f.clen, f.need)}
				j.lost.packets, j.known = 0, true
				close(j.done)
				if !r.send(j, false) {
					return
				}
			}
			continue
		}
		idx++
		r.stats.frames.Add(1)
		j := &job{frame: f, done: make(chan struct{})}
		if !r.dispatchFrame(j) {
			return
		}
	}
}

// dispatchFrame queues one data frame for a worker, for the consumer to
// stream, or as an immediate failure.
func (r *Reader) dispatchFrame(j *job) bool {
	f := j.frame
	streamed := f.dlen < 0 || f.dlen > decodeAllLimit
	switch {
	case f.truncated && streamed && f.clen > 4:
		// A frame too big to hold whole is trusted block by block, as any
		// streaming zstd reader would: its packets up to the cut are kept.
		j.stream = true
	case f.truncated:
		j.err = fmt.Errorf("truncated: the file ends %d bytes into the frame, which needs at least %d (was the writer stopped before Close? the frames before are intact)", f.clen, f.need)
	case f.dlen > int64(r.opts.MaxDecoderMemory):
		j.err = fmt.Errorf("frame decompresses to %d bytes, above the %d-byte decoder memory limit (raise ReaderOptions.MaxDecoderMemory if the file is trusted)", f.dlen, r.opts.MaxDecoderMemory)
	case f.dlen >= 0 && f.clen > f.dlen+f.dlen/64+256<<10:
		// zstd never expands data by more than a block header per 128 KiB;
		// a bigger frame is crafted to make the reader allocate.
		j.err = fmt.Errorf("frame of %d compressed bytes claims to hold only %d", f.clen, f.dlen)
	case streamed:
		j.stream = true
	default:
		return r.send(j, true)
	}
	close(j.done)
	return r.send(j, false)
}

func (r *Reader) worker() {
	defer r.wg.Done()
	var src []byte
	for {
		var j *job
		select {
		case j = <-r.work:
		case <-r.quit:
			return
		}
		if j == nil {
			return
		}
		src = r.decompress(j, src)
	}
}

// decompress reads and decompresses j's frame whole, using src (returned,
// maybe grown) for the compressed bytes, and closes j.done.
func (r *Reader) decompress(j *job, src []byte) []byte {
	defer close(j.done)
	if int64(cap(src)) < j.frame.clen {
		src = make([]byte, j.frame.clen)
	}
	src = src[:j.frame.clen]
	if _, err := r.ra.ReadAt(src, j.frame.off); err != nil {
		j.err = fmt.Errorf("read: %w", err)
		return src
	}
	r.stats.compressed.Add(j.frame.clen)
	r.stats.decompressed.Add(1)
	out, err := r.dec.DecodeAll(src, r.getBuf(int(j.frame.dlen))[:0])
	switch {
	case err != nil:
		j.err = fmt.Errorf("corrupt zstd data: %w", err)
		r.putBuf(out)
	case int64(len(out)) != j.frame.dlen:
		j.err = fmt.Errorf("frame decompressed to %d bytes, the file says %d", len(out), j.frame.dlen)
		r.putBuf(out)
	default:
		j.data = out
	}
	return src
}

func (r *Reader) getBuf(n int) []byte {
	select {
	case b := <-r.free:
		if cap(b) >= n {
			return b
		}
	default:
	}
	return make([]byte, 0, max(n, chunkSize))
}

func (r *Reader) putBuf(b []byte) {
	if b == nil {
		return
	}
	select {
	case r.free <- b[:0]:
	default:
	}
}

// pulled is one step of the decompressed stream seen by the parser.
type pulled struct {
	data   []byte
	damage *FrameError
	fatal  *FrameError
	eof    bool
}

// pull returns the next piece of the decompressed stream. The previous
// piece's buffer goes back to the pool: callers copy what they still need.
func (r *Reader) pull() pulled {
	r.flushDelivered()
	r.putBuf(r.curBuf)
	r.curBuf = nil
	for {
		if r.st != nil {
			if p, ok := r.pullStream(); ok {
				return p
			}
			continue
		}
		j, ok := <-r.order
		if !ok {
			return pulled{eof: true}
		}
		if j.inline {
			r.src = r.decompress(j, r.src)
		}
		<-j.done
		r.framesSeen++
		r.frameIdx, r.frameOff = j.frame.index, j.frame.off
		if r.dec == nil {
			r.frameIdx = -1
		}
		switch {
		case j.fatal != nil:
			return pulled{fatal: r.frameError(j, j.fatal)}
		case j.err != nil:
			return pulled{damage: r.frameError(j, j.err)}
		case j.stream:
			dec, err := zstd.NewReader(io.NewSectionReader(r.ra, j.frame.off, j.frame.clen),
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(r.opts.MaxDecoderMemory),
				zstd.WithDecoderMaxWindow(min(r.opts.MaxDecoderMemory, zstd.MaxWindowSize)))
			if err != nil {
				return pulled{damage: r.frameError(j, err)}
			}
			r.stats.decompressed.Add(1)
			r.stats.compressed.Add(j.frame.clen)
			r.st = &streamState{job: j, dec: dec}
			continue
		}
		r.curBuf = j.data
		return pulled{data: j.data}
	}
}

// pullStream reads the next piece of a frame the consumer decompresses
// itself; ok is false when the frame ended cleanly.
func (r *Reader) pullStream() (pulled, bool) {
	st := r.st
	buf := r.getBuf(chunkSize)[:chunkSize]
	n := 0
	var err error
	for n < len(buf) && err == nil {
		var m int
		m, err = st.dec.Read(buf[n:])
		n += m
	}
	if n > 0 {
		r.curBuf = buf[:n]
		st.off += int64(n)
		if err != nil && err != io.EOF {
			// Deliver what decoded; the damage is reported on the next pull.
			return pulled{data: buf[:n]}, true
		}
		if err == io.EOF {
			st.dec.Close()
			r.st = nil
		}
		return pulled{data: buf[:n]}, true
	}
	r.putBuf(buf)
	st.dec.Close()
	r.st = nil
	if err != nil && err != io.EOF {
		fe := r.frameError(st.job, fmt.Errorf("corrupt zstd data after %d decompressed bytes: %w", st.off, err))
		fe.Lost = -1
		return pulled{damage: fe}, true
	}
	return pulled{}, false
}

func (r *Reader) frameError(j *job, err error) *FrameError {
	fe := &FrameError{Frame: j.frame.index, Offset: j.frame.off, Err: err, Lost: -1, StreamOffset: -1}
	if r.dec == nil {
		fe.Frame = -1
	}
	if j.known {
		fe.Lost = int64(j.lost.packets)
		if fe.Lost > 0 {
			fe.First, fe.Last = time.Unix(0, j.lost.min), time.Unix(0, j.lost.max)
		}
	}
	return fe
}

// Next returns the next packet in file order. At the end it returns io.EOF,
// or, if parts of the file were damaged, a *DamageError listing them after
// every intact packet has been returned. The error repeats on later calls.
func (r *Reader) Next() (Packet, error) {
	for r.pending == nil && r.final == nil {
		body, li := r.fastEPB()
		if li == nil {
			break
		}
		p := epbPacket(body, li)
		if (r.fromOn || r.toOn) && r.outside(p.Timestamp.UnixNano()) {
			continue
		}
		return r.deliver(p), nil
	}
	return r.nextSlow()
}

// nextSlow is Next for every packet fastEPB does not take.
func (r *Reader) nextSlow() (Packet, error) {
	if r.pending != nil {
		p := *r.pending
		r.pending = nil
		if r.final != nil {
			r.flushDelivered()
			return Packet{}, r.final
		}
		return r.deliver(p), nil
	}
	if r.final != nil {
		return Packet{}, r.final
	}
	p, err := r.next()
	if err != nil {
		r.final = err
		r.flushDelivered()
		return Packet{}, err
	}
	return r.deliver(p), nil
}

// NextData is Next for callers that need only the timestamp, interface
// and bytes of each packet: it returns the timestamp as nanoseconds since
// the Unix epoch (Packet.Timestamp.UnixNano()) and builds no Packet, which
// saves a time.Time conversion and a 72-byte copy per packet. iface
// indexes Interfaces(); data follows Packet.Data's rules (owned by the
// Reader until the next call unless ReaderOptions.CopyData is set). Errors
// are Next's. Next and NextData may be mixed.
func (r *Reader) NextData() (ns int64, iface int, data []byte, err error) {
	for r.pending == nil && r.final == nil {
		body, li := r.fastEPB()
		if li == nil {
			break
		}
		units := uint64(binary.LittleEndian.Uint32(body[4:]))<<32 | uint64(binary.LittleEndian.Uint32(body[8:]))
		if li.res == (tsResolution{exp: 9}) && units <= math.MaxInt64 {
			ns = int64(units)
		} else {
			ns = li.res.time(units).UnixNano()
		}
		if (r.fromOn || r.toOn) && r.outside(ns) {
			continue
		}
		caplen := binary.LittleEndian.Uint32(body[12:])
		data = body[20 : 20+caplen : 20+caplen]
		r.delivered++
		if r.opts.CopyData {
			data = bytes.Clone(data)
		}
		return ns, li.global, data, nil
	}
	p, err := r.nextSlow()
	if err != nil {
		return 0, 0, nil, err
	}
	return p.Timestamp.UnixNano(), p.Interface, p.Data, nil
}

func (r *Reader) deliver(p Packet) Packet {
	r.delivered++
	if r.opts.CopyData {
		p.Data = bytes.Clone(p.Data)
	}
	return p
}

// flushDelivered publishes the packets Next returned since the last call
// to Stats readers on other goroutines.
func (r *Reader) flushDelivered() {
	if r.delivered != 0 {
		r.stats.packets.Add(r.delivered)
		r.delivered = 0
	}
}

// Interfaces returns the capture points met so far; every Packet.Interface
// returned indexes it. The slice is the Reader's: do not modify it.
func (r *Reader) Interfaces() []Interface { return r.ifaces }

// Topology returns the topology stored by the writer (nil if none).
func (r *Reader) Topology() []byte { return r.topology }

// Format names the container and capture format, e.g. "bufscope seekable
// zstd pcapng" or "pcap (µs, little-endian)".
func (r *Reader) Format() string {
	inner := "pcapng"
	switch r.kind {
	case kindPcap:
		inner = r.pcapDesc
	case kindUnknown:
		inner = "(empty)"
	}
	if r.container == "" {
		return inner
	}
	return r.container + " " + inner
}

// Stats returns counters of the work done so far.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{
		Frames:             r.stats.frames.Load(),
		FramesSkipped:      r.stats.skipped.Load(),
		FramesDecompressed: r.stats.decompressed.Load(),
		CompressedBytes:    r.stats.compressed.Load(),
		Packets:            r.stats.packets.Load(),
	}
}

// Close stops the workers, releases the decoders and closes the file if
// Open opened it. Packets returned earlier become invalid unless copied.
func (r *Reader) Close() error {
	var err error
	r.closeMu.Do(func() {
		close(r.quit)
		// Drain so a dispatcher blocked on a full queue sees quit.
		go func() {
			for range r.order {
			}
		}()
		r.wg.Wait()
		if r.st != nil {
			r.st.dec.Close()
			r.st = nil
		}
		if r.dec != nil {
			r.dec.Close()
		}
		if r.closer != nil {
			err = r.closer.Close()
		}
	})
	return err
}
