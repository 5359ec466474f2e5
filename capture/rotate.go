package capture

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
)

// RotateOptions configures a Rotator.
type RotateOptions struct {
	// Path is the trace to write. Without rotation it is used as is; with
	// rotation the files are Path with -0001, -0002, … inserted before the
	// extension (trace.zst → trace-0001.zst, trace.pcapng.zst →
	// trace-0001.pcapng.zst).
	Path string
	// MaxBytes starts a new file once the current one holds this many
	// compressed bytes (0: no size limit). A file ends on a frame boundary,
	// so it may exceed MaxBytes by up to one frame.
	MaxBytes int64
	// Every starts a new file when the current one has been open this long
	// (0: no time limit). Checked when a packet arrives.
	Every time.Duration
	// Writer configures every file; each file is a complete trace with
	// the same interfaces and topology.
	Writer WriterOptions
	// now is time.Now; tests replace it.
	now func() time.Time
}

// Rotator writes packets into a trace, or into a numbered sequence of
// traces when a size or time limit is set. It implements Sink. Its methods
// are safe for concurrent use (a status line reads Stats while packets are
// written).
type Rotator struct {
	mu     sync.Mutex
	opts   RotateOptions
	rotate bool
	w      *Writer
	path   string
	opened time.Time
	files  []string
	done   WriterStats // totals of closed files
}

// NewRotator creates the first file.
func NewRotator(opts RotateOptions) (*Rotator, error) {
	if opts.Path == "" {
		return nil, errors.New("no output file")
	}
	if opts.MaxBytes < 0 || opts.Every < 0 {
		return nil, errors.New("rotation limits must not be negative")
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	r := &Rotator{opts: opts, rotate: opts.MaxBytes > 0 || opts.Every > 0}
	if err := r.next(); err != nil {
		return nil, err
	}
	return r, nil
}

// RotatedName returns the name of the n-th file (from 1) of a rotated
// trace at path.
func RotatedName(path string, n int) string {
	dir, base := filepath.Split(path)
	stem, ext := base, ""
	if i := strings.IndexByte(base[min(1, len(base)):], '.'); i >= 0 {
		// Keep compound extensions such as .pcapng.zst together.
		stem, ext = base[:i+1], base[i+1:]
	}
	return fmt.Sprintf("%s%s-%04d%s", dir, stem, n, ext)
}

func (r *Rotator) next() error {
	path := r.opts.Path
	if r.rotate {
		path = RotatedName(r.opts.Path, len(r.files)+1)
	}
	w, err := Create(path, r.opts.Writer)
	if err != nil {
		return err
	}
	r.w, r.path, r.opened = w, path, r.opts.now()
	r.files = append(r.files, path)
	return nil
}

// WritePacket writes one packet, first starting a new file if a limit was
// reached. data is copied.
func (r *Rotator) WritePacket(ci gopacket.CaptureInfo, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return errors.New("rotator is closed")
	}
	if r.rotate && r.due() {
		if err := r.closeCurrent(); err != nil {
			return err
		}
		if err := r.next(); err != nil {
			return err
		}
	}
	if err := r.w.WritePacket(ci, data); err != nil {
		return r.explain(err)
	}
	return nil
}

func (r *Rotator) due() bool {
	if r.opts.Every > 0 && r.opts.now().Sub(r.opened) >= r.opts.Every {
		return true
	}
	return r.opts.MaxBytes > 0 && r.w.Stats().CompressedBytes >= r.opts.MaxBytes
}

func (r *Rotator) closeCurrent() error {
	err := r.w.Close()
	r.done = addStats(r.done, r.w.Stats())
	r.w = nil
	if err != nil {
		return r.explain(err)
	}
	return nil
}

// ErrDiskFull wraps ENOSPC from a trace file together with what is safe.
type ErrDiskFull struct {
	File string
	// Safe is how many packets of File can be read back: those in frames
	// completed before the disk filled.
	Safe int64
	// EarlierFiles and EarlierPackets count the completed files before it.
	EarlierFiles   int
	EarlierPackets int64
	Err            error
}

func (e *ErrDiskFull) Error() string {
	msg := fmt.Sprintf("%s: disk full: %d packets before the failed write are safe in it", e.File, e.Safe)
	if e.EarlierFiles > 0 {
		msg += fmt.Sprintf(" (and %d in %d earlier files)", e.EarlierPackets, e.EarlierFiles)
	}
	return msg + "; free space or write elsewhere (-o) and record again"
}

func (e *ErrDiskFull) Unwrap() error { return e.Err }

// explain turns ENOSPC into an ErrDiskFull, counting the packets that
// survive by reading the damaged file back: the writer knows what it
// handed to the kernel, only the file knows what landed.
func (r *Rotator) explain(err error) error {
	if !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	safe := int64(-1)
	if rd, oerr := Open(r.path, ReaderOptions{}); oerr == nil {
		safe = 0
		for {
			if _, nerr := rd.Next(); nerr != nil {
				break
			}
			safe++
		}
		rd.Close()
	}
	return &ErrDiskFull{File: r.path, Safe: safe, EarlierFiles: len(r.files) - 1, EarlierPackets: r.done.Packets, Err: err}
}

// Flush completes the current frame, so everything written so far is in
// the file as complete zstd frames.
func (r *Rotator) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return nil
	}
	return r.explain(r.w.Flush())
}

// Files returns the names of the files created so far, in order.
func (r *Rotator) Files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.files...)
}

// Current returns the name of the file being written.
func (r *Rotator) Current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

// Stats returns totals over every file so far.
func (r *Rotator) Stats() WriterStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return r.done
	}
	return addStats(r.done, r.w.Stats())
}

func addStats(a, b WriterStats) WriterStats {
	return WriterStats{
		Packets:         a.Packets + b.Packets,
		PacketBytes:     a.PacketBytes + b.PacketBytes,
		RawBytes:        a.RawBytes + b.RawBytes,
		CompressedBytes: a.CompressedBytes + b.CompressedBytes,
		Frames:          a.Frames + b.Frames,
	}
}

// Close completes the current file (frames, time index, seek table).
func (r *Rotator) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return nil
	}
	return r.closeCurrent()
}

var _ Sink = (*Rotator)(nil)
var _ io.Closer = (*Rotator)(nil)
