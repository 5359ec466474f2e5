package capture

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNoSeekTable marks a trace written by bufscope that ends without its
// seek table: the writer was killed, the disk filled, or the file was
// recompressed by another tool. Every packet of its complete frames has been
// read; the packets of the frame the writer had open are lost.
var ErrNoSeekTable = errors.New("no seek table at the end: the recording did not finish (writer killed or disk full?) or the file was recompressed; every complete frame was read")

// FrameError describes one damaged stretch of a trace: a zstd frame that
// failed to decompress or was cut short, a pcapng block that does not parse,
// or the point where a stream stopped making sense.
type FrameError struct {
	Frame  int   // zstd frame number (counting data frames from 0), -1 when not in a zstd frame
	Offset int64 // byte offset in the file: the frame's start, or the block's offset in an uncompressed file
	Err    error
	// Lost is the number of packets known to be lost with this frame (from
	// the time index), or -1 when nobody knows.
	Lost         int64
	First, Last  time.Time // time range of the lost packets, when Lost > 0
	StreamOffset int64     // decompressed offset of a bad pcapng block, -1 if not applicable
}

func (e FrameError) Error() string {
	var b strings.Builder
	if e.Frame >= 0 {
		fmt.Fprintf(&b, "frame %d at offset %d: ", e.Frame, e.Offset)
	} else {
		fmt.Fprintf(&b, "offset %d: ", e.Offset)
	}
	b.WriteString(e.Err.Error())
	switch {
	case e.Lost > 0:
		fmt.Fprintf(&b, ": %d packets of that frame lost (%s to %s)", e.Lost,
			e.First.UTC().Format("2006-01-02T15:04:05.000000000Z"), e.Last.UTC().Format("15:04:05.000000000"))
	case e.Lost == 0:
		b.WriteString(": no packets lost")
	}
	return b.String()
}

func (e FrameError) Unwrap() error { return e.Err }

// DamageError is what Reader.Next returns after the last intact packet of a
// trace that had damaged parts. Every packet outside the listed frames has
// been returned before it.
type DamageError struct {
	File   string
	Frames []FrameError
	// Stopped is true when the damage ended the read: nothing after the last
	// listed offset could be decoded (an uncompressed file, or a zstd stream
	// without frame boundaries to resume at).
	Stopped bool
}

func (e *DamageError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	b.WriteString(": ")
	b.WriteString(e.Frames[0].Error())
	if more := len(e.Frames) - 1; more > 0 {
		fmt.Fprintf(&b, "; %d more damaged part(s) at offset(s)", more)
		for i, f := range e.Frames[1:] {
			if i == 8 {
				b.WriteString(" …")
				break
			}
			fmt.Fprintf(&b, " %d", f.Offset)
		}
	}
	if e.Stopped {
		b.WriteString(" (reading stopped there)")
	}
	return b.String()
}

// Unwrap returns the individual frame errors, for errors.Is/As.
func (e *DamageError) Unwrap() []error {
	errs := make([]error, len(e.Frames))
	for i, f := range e.Frames {
		errs[i] = f
	}
	return errs
}
