package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	seekable "github.com/SaveTheRbtz/zstd-seekable-format-go/pkg"
	"github.com/gopacket/gopacket"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// WriterOptions configures a Writer. The zero value is usable.
type WriterOptions struct {
	// Interfaces are written up front; more can be added with AddInterface.
	Interfaces []Interface
	// Hardware, OS and Application fill the SHB options shb_hardware, shb_os
	// and shb_userappl. Empty means the defaults: runtime.GOARCH, the kernel
	// name and release from uname, and "bufscope <module version>".
	Hardware, OS, Application string
	// Topology is opaque UTF-8 (JSON by convention) describing nodes and
	// capture points. It is stored in every section header as an SHB comment
	// starting with "bufscope-topology:" and returned by Reader.Topology. At
	// most 65000 bytes (a pcapng option is limited to 65535).
	Topology []byte
	// FrameBytes is the uncompressed pcapng size after which a zstd frame is
	// closed (default 1 MiB). A frame exceeds it only when one packet does.
	FrameBytes int
	// FrameInterval closes a frame holding packets at least this often
	// (default 1 s), even if no further packet arrives, so a killed writer
	// loses at most the last FrameInterval of packets.
	FrameInterval time.Duration
	// Level is the zstd compression level (default zstd.SpeedDefault).
	Level zstd.EncoderLevel
	// WiresharkReadable lays frames out so that Wireshark and tshark (4.0 at
	// least) can open the .zst directly, working around their zstd reader
	// (docs/trace-format.md): no frame crosses a 131075-byte window of the
	// file unless it starts one, with skippable padding frames in between.
	// It costs a few percent of file size and caps compressed frames at one
	// window, so frames hold less than FrameBytes when data compresses
	// poorly. The output must start at offset 0 of the file.
	WiresharkReadable bool
	// Overwrite lets Create replace an existing file. Without it Create
	// refuses to touch an existing file, so a second recorder cannot destroy
	// a trace by reusing its name.
	Overwrite bool
}

// WriterStats are running totals of a Writer.
type WriterStats struct {
	Packets         int64 // packets written
	PacketBytes     int64 // captured packet bytes (sum of len(data))
	RawBytes        int64 // uncompressed pcapng bytes in closed frames
	CompressedBytes int64 // bytes written to the output so far
	Frames          int64 // zstd data frames written
}

// Ratio is RawBytes / CompressedBytes, or 0 before the first frame.
func (s WriterStats) Ratio() float64 {
	if s.CompressedBytes == 0 {
		return 0
	}
	return float64(s.RawBytes) / float64(s.CompressedBytes)
}

// Writer writes a bufscope trace: pcapng with nanosecond timestamps,
// compressed as independent zstd frames, each frame a complete pcapng section
// (SHB and every IDB known so far, then packets), followed on Close by a
// time-index skippable frame and the zstd seekable-format seek table. See
// docs/trace-format.md.
//
// All methods are safe for concurrent use: a mutex serialises them, and the
// frame timer takes it too. Packet data is copied; callers may reuse their
// buffers as soon as WritePacket returns.
type Writer struct {
	mu     sync.Mutex
	out    io.Writer
	file   *os.File // set by Create; closed by Close
	name   string   // for error messages
	enc    *zstd.Encoder
	seek   *seekable.Encoder
	opts   WriterOptions
	ifaces []Interface

	// Wireshark layout (WiresharkReadable): frames are compressed here and
	// handed to the seek-table encoder through pre.
	pre       *presetEncoder
	recs      []frameRec // blocks after the open frame's header, to split it
	ifAtStart int        // interfaces in the open frame's header
	limit     int        // uncompressed size at which the open frame closes
	ratio     float64    // compression ratio of the last frame, to size the next

	frame     []byte // uncompressed pcapng of the open frame
	shbStart  int    // offset of the open frame's SHB (always 0)
	packets   uint32 // packets in the open frame
	times     frameTimes
	index     []frameTimes
	timer     *time.Timer
	gen       uint64 // increments whenever a frame closes; stale timers check it
	stats     WriterStats
	err       error // sticky: the first output error ends the writer
	closed    bool
	wroteData bool
}

// Create creates path (mode 0600, O_EXCL unless opts.Overwrite) and returns a
// Writer that owns the file and closes it on Close.
func Create(path string, opts WriterOptions) (*Writer, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if opts.Overwrite {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create trace: %w (choose another name or allow overwriting)", err)
		}
		return nil, fmt.Errorf("create trace: %w", err)
	}
	w, err := newWriter(f, path, opts)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	w.file = f
	return w, nil
}

// NewWriter returns a Writer on w. The caller keeps ownership of w: Close
// writes the seek table but does not close w.
func NewWriter(w io.Writer, opts WriterOptions) (*Writer, error) {
	return newWriter(w, "trace", opts)
}

func newWriter(out io.Writer, name string, opts WriterOptions) (*Writer, error) {
	if opts.FrameBytes <= 0 {
		opts.FrameBytes = 1 << 20
	}
	if opts.FrameBytes > 1<<30 {
		return nil, fmt.Errorf("%s: frame size %d exceeds 1 GiB (the seekable format limit is 4 GiB per frame, and readers must hold a frame in memory)", name, opts.FrameBytes)
	}
	if opts.FrameInterval <= 0 {
		opts.FrameInterval = time.Second
	}
	if opts.Level == 0 {
		opts.Level = zstd.SpeedDefault
	}
	if opts.Hardware == "" {
		opts.Hardware = runtime.GOARCH
	}
	if opts.OS == "" {
		opts.OS = unameString()
	}
	if opts.Application == "" {
		opts.Application = "bufscope " + moduleVersion()
	}
	if len(opts.Topology) > 65000 {
		return nil, fmt.Errorf("%s: topology of %d bytes exceeds the 65000-byte limit of a pcapng comment: store node names only", name, len(opts.Topology))
	}
	if !utf8.Valid(opts.Topology) {
		return nil, fmt.Errorf("%s: topology is not valid UTF-8: pcapng comments must be UTF-8 (encode it as JSON)", name)
	}
	for _, s := range []string{opts.Hardware, opts.OS, opts.Application} {
		if len(s) > 65000 {
			return nil, fmt.Errorf("%s: SHB option of %d bytes is too long", name, len(s))
		}
	}
	for i, ifc := range opts.Interfaces {
		if err := checkInterface(ifc); err != nil {
			return nil, fmt.Errorf("%s: interface %d: %w", name, i, err)
		}
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(opts.Level), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, fmt.Errorf("%s: zstd encoder: %w", name, err)
	}
	var pre *presetEncoder
	var zenc seekable.ZSTDEncoder = enc
	if opts.WiresharkReadable {
		pre = &presetEncoder{}
		zenc = pre
	}
	seek, err := seekable.NewEncoder(zenc)
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("%s: seekable encoder: %w", name, err)
	}
	w := &Writer{
		out:    out,
		name:   name,
		enc:    enc,
		seek:   seek,
		opts:   opts,
		ifaces: append([]Interface(nil), opts.Interfaces...),
		frame:  make([]byte, 0, opts.FrameBytes+64<<10),
		pre:    pre,
		limit:  opts.FrameBytes,
		ratio:  1,
	}
	w.startFrame()
	return w, nil
}

func checkInterface(ifc Interface) error {
	if len(ifc.Name) > 65000 || len(ifc.Description) > 65000 {
		return fmt.Errorf("name or description longer than 65000 bytes")
	}
	return nil
}

func unameString() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return runtime.GOOS
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// startFrame begins a new pcapng section in the frame buffer. Repeating the
// SHB and all IDBs at the start of every frame makes each frame a complete
// pcapng file on its own: a reader that skips to frame k knows every
// interface without touching frame 0, and a damaged frame never hides the
// interfaces of the frames after it.
func (w *Writer) startFrame() {
	w.frame = w.frame[:0]
	w.shbStart = 0
	w.frame = appendSHB(w.frame, w.opts.Hardware, w.opts.OS, w.opts.Application, w.opts.Topology)
	for _, ifc := range w.ifaces {
		w.frame = appendIDB(w.frame, ifc)
	}
	w.packets = 0
	w.times = frameTimes{}
	w.recs = w.recs[:0]
	w.ifAtStart = len(w.ifaces)
	if w.pre != nil {
		// Aim at 95 % of a window at the last frame's ratio; emitAligned
		// splits the frame if the data compresses worse than that.
		w.limit = min(w.opts.FrameBytes, max(4096, int(w.ratio*0.95*wiresharkWindow)))
	}
}

// AddInterface adds a capture point and returns its index for
// gopacket.CaptureInfo.InterfaceIndex. The IDB goes into the open frame at
// once and into the header of every later frame.
func (w *Writer) AddInterface(ifc Interface) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return 0, err
	}
	if err := checkInterface(ifc); err != nil {
		return 0, fmt.Errorf("%s: add interface %q: %w", w.name, ifc.Name, err)
	}
	w.ifaces = append(w.ifaces, ifc)
	off := len(w.frame)
	w.frame = appendIDB(w.frame, ifc)
	w.recs = append(w.recs, frameRec{off: off, n: len(w.frame) - off, idb: true})
	return len(w.ifaces) - 1, nil
}

func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return fmt.Errorf("%s: writer is closed", w.name)
	}
	return nil
}

// WritePacket appends one packet. ci.InterfaceIndex indexes the writer's
// interfaces; ci.Length is the original length (0 means len(data));
// ci.CaptureLength is ignored in favour of len(data). data is copied.
func (w *Writer) WritePacket(ci gopacket.CaptureInfo, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	if ci.InterfaceIndex < 0 || ci.InterfaceIndex >= len(w.ifaces) {
		return fmt.Errorf("%s: packet on interface %d, but only %d interfaces were added", w.name, ci.InterfaceIndex, len(w.ifaces))
	}
	ifc := &w.ifaces[ci.InterfaceIndex]
	if ifc.SnapLen != 0 && uint32(len(data)) > ifc.SnapLen {
		return fmt.Errorf("%s: packet of %d bytes exceeds the snap length %d of interface %d (%s): truncate it and keep the original length in CaptureInfo.Length", w.name, len(data), ifc.SnapLen, ci.InterfaceIndex, ifc.Name)
	}
	if len(data) > maxBlockLen-64 {
		return fmt.Errorf("%s: packet of %d bytes is larger than readers accept (%d)", w.name, len(data), maxBlockLen-64)
	}
	length := ci.Length
	if length < len(data) {
		length = len(data)
	}
	if int64(length) > 1<<32-1 {
		return fmt.Errorf("%s: original length %d does not fit pcapng's 32-bit field", w.name, length)
	}
	if ci.Timestamp.Before(time.Unix(0, 0)) || ci.Timestamp.Year() >= 2262 {
		return fmt.Errorf("%s: timestamp %s is outside 1970..2262, which nanosecond pcapng cannot hold", w.name, ci.Timestamp.Format(time.RFC3339Nano))
	}
	ns := ci.Timestamp.UnixNano()
	if w.packets > 0 && len(w.frame)+epbLen(len(data)) > w.limit {
		if err := w.endFrame(); err != nil {
			return err
		}
	}
	if w.packets == 0 {
		w.times.min, w.times.max = ns, ns
		gen := w.gen
		w.timer = time.AfterFunc(w.opts.FrameInterval, func() { w.onTimer(gen) })
	}
	if w.pre != nil {
		w.recs = append(w.recs, frameRec{off: len(w.frame), n: epbLen(len(data))})
	}
	w.frame = appendEPB(w.frame, uint32(ci.InterfaceIndex), uint64(ns), uint32(length), data)
	w.packets++
	w.times.packets++
	w.times.min = min(w.times.min, ns)
	w.times.max = max(w.times.max, ns)
	w.stats.Packets++
	w.stats.PacketBytes += int64(len(data))
	if len(w.frame) >= w.limit {
		return w.endFrame()
	}
	return nil
}

func (w *Writer) onTimer(gen uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.err != nil || gen != w.gen || w.packets == 0 {
		return
	}
	// An error here becomes sticky and surfaces on the next call.
	_ = w.endFrame()
}

// endFrame compresses and writes the open frame if it holds packets (or, on
// Close of a trace that never had one, the bare headers) and starts the next.
// Called with w.mu held.
func (w *Writer) endFrame() error {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.gen++
	if w.packets == 0 && (w.wroteData || !w.closed) {
		return nil
	}
	patchSectionLength(w.frame)
	var err error
	if w.pre != nil {
		err = w.emitAligned(w.frame, w.recs, w.ifAtStart)
	} else {
		err = w.emit(w.frame, w.times, nil)
	}
	if err != nil {
		return err
	}
	w.startFrame()
	return nil
}

// patchSectionLength fills in the SHB's section length, so pcapng tools can
// skip a whole frame's section.
func patchSectionLength(sec []byte) {
	shbLen := int(binary.LittleEndian.Uint32(sec[4:]))
	binary.LittleEndian.PutUint64(sec[16:], uint64(len(sec)-shbLen))
}

// emit compresses one section into a frame and writes it; with the
// Wireshark layout, comp is the already compressed frame (padding included).
func (w *Writer) emit(sec []byte, times frameTimes, comp []byte) error {
	if comp != nil {
		w.pre.out = comp
	}
	out, err := w.seek.Encode(sec)
	if err != nil {
		w.err = fmt.Errorf("%s: compress frame %d: %w", w.name, len(w.index), err)
		return w.err
	}
	if _, err := w.out.Write(out); err != nil {
		w.err = fmt.Errorf("%s: write frame %d at offset %d: %w", w.name, len(w.index), w.stats.CompressedBytes, err)
		return w.err
	}
	w.wroteData = true
	w.index = append(w.index, times)
	w.stats.Frames++
	w.stats.RawBytes += int64(len(sec))
	w.stats.CompressedBytes += int64(len(out))
	return nil
}

// Flush ends the open frame, so everything written so far is on the output
// as complete zstd frames. It does nothing when the frame holds no packets.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	return w.endFrame()
}

// Stats returns the running totals.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close ends the open frame, writes the time index and the seek table, and
// closes the file if the Writer was made by Create. A trace without packets
// still gets one frame holding its headers, so it opens as an empty capture.
// Calling Close again returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.err
	if err == nil {
		w.closed = true
		err = w.endFrame()
	}
	w.closed = true
	if err == nil {
		err = w.writeTrailer()
	}
	w.enc.Close()
	if w.file != nil {
		if cerr := w.file.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close: %w", w.name, cerr)
		}
	}
	return err
}

// writeTrailer writes the time index and the seek table. With the Wireshark
// layout the two must not end in a window that does not start with a zstd
// data frame, so when they do not fit the current window they go to a new
// one that starts with an empty frame.
func (w *Writer) writeTrailer() error {
	idx := appendIndexFrame(nil, w.index)
	st, err := w.seek.EndStream()
	if err != nil {
		return fmt.Errorf("%s: seek table: %w", w.name, err)
	}
	var pre []byte
	if w.pre != nil {
		if room := wiresharkWindow - w.stats.CompressedBytes%wiresharkWindow; int64(len(idx)+len(st)) > room {
			pre = appendPadding(nil, room)
			pre = append(pre, emptyZstdFrame...)
		}
	}
	for _, b := range [][]byte{pre, idx, st} {
		if _, err := w.out.Write(b); err != nil {
			return fmt.Errorf("%s: write trailer at offset %d: %w", w.name, w.stats.CompressedBytes, err)
		}
		w.stats.CompressedBytes += int64(len(b))
	}
	return nil
}
