//go:build linux

package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// lostSegment is one TCP packet the lossy link dropped.
type lostSegment struct {
	at       time.Time
	src, dst netip.AddrPort
	seq      uint32
	payload  uint32 // TCP payload bytes; 0 for a pure ACK
}

// dropRecordLen is the size of struct drop in bpf/loss.bpf.c.
const dropRecordLen = 32

// parseDrop decodes one record of the loss program's drop log. clock is
// CLOCK_REALTIME - CLOCK_MONOTONIC in ns, to turn the kernel's stamp into
// the wall clock the truth and the requests file use.
func parseDrop(b []byte, clock int64) (lostSegment, error) {
	if len(b) < dropRecordLen {
		return lostSegment{}, fmt.Errorf("lossy link: drop record of %d bytes, want %d", len(b), dropRecordLen)
	}
	le := binary.LittleEndian
	addr := func(o int) netip.Addr { return netip.AddrFrom4([4]byte(b[o : o+4])) }
	port := func(o int) uint16 { return binary.BigEndian.Uint16(b[o:]) }
	return lostSegment{
		at:      time.Unix(0, int64(le.Uint64(b[0:]))+clock).UTC(),
		src:     netip.AddrPortFrom(addr(8), port(16)),
		dst:     netip.AddrPortFrom(addr(12), port(18)),
		seq:     le.Uint32(b[20:]),
		payload: le.Uint32(b[24:]),
	}, nil
}

// dropLog collects the lossy link's drop records while the run goes on
// (the kernel's ring holds about 26 000; a long run would fill it). Its
// methods are safe for concurrent use.
type dropLog struct {
	rd       *ringbuf.Reader
	counters *ebpf.Map
	clock    int64
	done     chan struct{}

	mu       sync.Mutex
	segs     []lostSegment
	err      error
	unlogged uint64 // drops the kernel could not log (ring full)
}

func newDropLog(drops, counters *ebpf.Map) (*dropLog, error) {
	rd, err := ringbuf.NewReader(drops)
	if err != nil {
		return nil, fmt.Errorf("lossy link: reading the drop log: %w", err)
	}
	var rt, mono unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	l := &dropLog{rd: rd, counters: counters, clock: rt.Nano() - mono.Nano(), done: make(chan struct{})}
	go l.read()
	return l, nil
}

func (l *dropLog) read() {
	defer close(l.done)
	for {
		rec, err := l.rd.Read()
		if err != nil {
			if !errors.Is(err, ringbuf.ErrFlushed) && !errors.Is(err, ringbuf.ErrClosed) {
				l.mu.Lock()
				l.err = err
				l.mu.Unlock()
			}
			return
		}
		s, err := parseDrop(rec.RawSample, l.clock)
		l.mu.Lock()
		if err != nil {
			l.err = err
		} else {
			l.segs = append(l.segs, s)
		}
		l.mu.Unlock()
	}
}

// finish reads what the ring still holds, stops the reader, and reads
// how many drops the kernel could not log. Later calls do nothing.
func (l *dropLog) finish() {
	select {
	case <-l.done:
		return
	default:
	}
	// Flush, not a deadline: the reader holds its lock while it waits, so
	// SetDeadline would wait for the next drop.
	if err := l.rd.Flush(); err != nil {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		l.rd.Close()
	}
	<-l.done
	l.rd.Close()
	var n uint64
	if err := l.counters.Lookup(uint32(2), &n); err == nil {
		l.mu.Lock()
		l.unlogged = n
		l.mu.Unlock()
	}
}

// close stops the reader whether or not finish ran.
func (l *dropLog) close() {
	l.rd.Close()
	<-l.done
}

// complete says whether every drop was logged and read.
func (l *dropLog) complete() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err == nil && l.unlogged == 0
}

// lostData says whether the link dropped a data segment (not a pure ACK)
// that src sent to dst between from and to: the response of a request
// on connection dst, while the client waited for it.
func (l *dropLog) lostData(src, dst netip.AddrPort, from, to time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		if s.payload > 0 && s.src == src && s.dst == dst && !s.at.Before(from) && !s.at.After(to) {
			return true
		}
	}
	return false
}

// count returns how many drops were read.
func (l *dropLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.segs)
}
