package analyze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/decode"
	"github.com/gopacket/gopacket/layers"
)

// RunOptions configures Run: how traces are read and decoded.
type RunOptions struct {
	Reader  capture.ReaderOptions
	Decoder decode.DecoderOptions
	// Workers decode packets in parallel (default GOMAXPROCS-1, at least
	// 1). Records still reach the Analyzer in capture order.
	Workers int
	// Progress, if set, is called from Run's goroutine about every 64k
	// packets with the packets read so far and the trace time reached.
	Progress func(packets int64, now int64)
}

const batchPackets = 512

// HugepageHeap is how much heap bufscope analyze asks transparent huge
// pages for (internal/hugepage): more than the analysis of the large lab
// trace holds at its peak. It is address space only: no page is touched
// until the allocator uses it.
const HugepageHeap = 256 << 20

type pktRef struct {
	ts       int64
	iface    int
	link     layers.LinkType
	off, end int
}

// batch carries packets from the reader to a decoder and their Records on
// to the Analyzer. Batches are recycled; data and recs keep their capacity.
type batch struct {
	seq     int
	data    []byte
	pkts    []pktRef
	recs    []decode.Record
	packets int // packets decoded into recs
}

// Run analyzes the traces in files, merged by time, in one pass: one
// goroutine reads (the capture package decompresses frames in parallel),
// Workers goroutines decode, and the calling goroutine feeds the
// Analyzer. On a damaged file it returns the result of what was read
// before the damage together with the error, which names the file and
// offset.
func Run(ctx context.Context, files []string, ro RunOptions, opts Options) (*Result, error) {
	if ro.Workers <= 0 {
		// The analyzer's goroutine keeps one CPU busy and the capture
		// reader decompresses on the others: one decoder fewer than CPUs
		// measured faster than one per CPU on 2 cores (docs/performance.md).
		ro.Workers = max(1, runtime.GOMAXPROCS(0)-1)
	}
	if ro.Workers == 1 && runtime.GOMAXPROCS(0) <= 2 && ro.Reader.Workers == 0 && len(files) == 1 {
		// One goroutine reads, decompresses and decodes (and feeds the
		// baselines, baselines.go), instead of that one and two
		// decompressing workers besides the analyzer's, and each frame is
		// parsed while it is still in the cache it was decompressed into
		// (3 % less CPU, docs/performance.md).
		ro.Reader.Inline = true
	}
	readers := make([]*capture.Reader, 0, len(files))
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	for _, f := range files {
		r, err := capture.Open(f, ro.Reader)
		if err != nil {
			return nil, err
		}
		readers = append(readers, r)
		if t := r.Topology(); len(t) > 0 {
			opts.Topology = append(opts.Topology, t)
		}
	}
	a := New(opts)
	if runtime.GOMAXPROCS(0) > 1 {
		// baselines.go; Finish stops it. One decoder decodes on the
		// reading goroutine, which also feeds the baselines.
		a.startBaseliner(ro.Workers > 1)
	}
	// One file needs no merge heap. (Merge reads each reader's first
	// packet at once, so it is only built when used.)
	var src packetSource
	if len(readers) == 1 {
		src = readers[0]
	} else {
		src = capture.Merge(readers...)
	}
	err := a.feedMerged(ctx, src, ro)
	res := a.Finish()
	res.Inputs = files
	return res, err
}

// packetSource is a capture.Reader or a capture.Merged.
type packetSource interface {
	NextData() (ns int64, iface int, data []byte, err error)
	Interfaces() []capture.Interface
}

func (a *Analyzer) feedMerged(ctx context.Context, src packetSource, ro RunOptions) error {
	workers := ro.Workers // at least 1: Run sets the default
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Batches in flight: enough that the analyzer's goroutine rarely
	// finds none decoded. When it does, it blocks, and the decoder that
	// wakes it queues it on its own CPU, where it waits for the decoder
	// (or a decompressing worker the other CPU took meanwhile) to yield:
	// with 4 batches that wait was a fifth of a run on 2 CPUs.
	inflight := max(16, 4*workers)
	free := make(chan *batch, inflight)
	for range inflight {
		// Room for the Records of most batches (1.2 per packet in the
		// large lab trace), so that each does not grow through a dozen
		// arrays first.
		free <- &batch{recs: make([]decode.Record, 0, 2*batchPackets)}
	}
	done := make(chan *batch, inflight)
	var readErr error
	if workers == 1 {
		// One decoder decodes on the reader's goroutine, straight from
		// the reader's buffer: copying every packet into a batch for one
		// other goroutine cost more CPU than it saved, and on 2 CPUs the
		// analyzer's goroutine is the one that needs the second CPU.
		var ch chores
		if b := a.bl; b != nil {
			ch = chores{wake: b.wake, do: func() { b.serve(a) }}
		}
		go func() {
			defer close(done)
			readErr = readDecode(ctx, src, decode.NewDecoder(ro.Decoder), free, done, ch)
		}()
	} else {
		todo := make(chan *batch, 2*workers)
		go func() {
			defer close(todo)
			readErr = readBatches(ctx, src, free, todo)
		}()
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := decode.NewDecoder(ro.Decoder)
				for b := range todo {
					b.recs = b.recs[:0]
					for _, p := range b.pkts {
						b.recs = d.Records(p.ts, p.iface, p.link, b.data[p.off:p.end], b.recs)
					}
					b.packets = len(b.pkts)
					done <- b
				}
			}()
		}
		go func() {
			wg.Wait()
			close(done)
		}()
	}

	pending := map[int]*batch{}
	next := 0
	var packets int64
	for b := range done {
		pending[b.seq] = b
		for {
			nb, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			a.warmed += warm(nb.recs)
			for i := range nb.recs {
				a.Feed(&nb.recs[i])
			}
			before := packets
			packets += int64(nb.packets)
			if ro.Progress != nil && before>>16 != packets>>16 {
				ro.Progress(packets, a.now)
			}
			select {
			case free <- nb:
			default:
			}
		}
	}
	if ro.Progress != nil {
		ro.Progress(packets, a.now)
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return readErr
	}
	return nil
}

// warm loads the first two cache lines of every Record in recs, which
// the decoding goroutine wrote on the other CPU, before the Analyzer reads
// them one by one: the loads do not depend on each other, so the CPU has
// many in flight at once, where the Analyzer, reading a Record's fields as
// it needs them, waited for each line in turn (8 % of a run on 2 CPUs,
// docs/performance.md). Those two lines hold every field a data segment
// fills (decode.Record); a report's further lines are left to the
// Analyzer. It returns a sum of what it loaded, for the caller to keep, so
// that the loads are not optimized away.
func warm(recs []decode.Record) int64 {
	var s int64
	for i := range recs {
		r := &recs[i]
		s += r.Time + int64(r.Flow.DstPort)
	}
	return s
}

// readDecode decodes packets into batches of Records on the reader's
// goroutine: the packet data is used before the next call to Next reuses
// it, and Records own no memory, so nothing is copied.
func readDecode(ctx context.Context, src packetSource, d *decode.Decoder, free <-chan *batch, done chan<- *batch, ch chores) error {
	return readInto(ctx, src, free, done, ch, func(b *batch) {
		b.recs, b.packets = b.recs[:0], 0
	}, func(b *batch, ns int64, iface int, data []byte, link layers.LinkType) {
		b.recs = d.Records(ns, iface, link, data, b.recs)
		b.packets++
	})
}

// readBatches copies packets into batches: the capture reader's buffers
// are reused on the next call, and decoders run later on other goroutines.
func readBatches(ctx context.Context, src packetSource, free <-chan *batch, todo chan<- *batch) error {
	return readInto(ctx, src, free, todo, chores{}, func(b *batch) {
		b.data, b.pkts, b.packets = b.data[:0], b.pkts[:0], 0
	}, func(b *batch, ns int64, iface int, data []byte, link layers.LinkType) {
		off := len(b.data)
		b.data = append(b.data, data...)
		b.pkts = append(b.pkts, pktRef{ts: ns, iface: iface, link: link, off: off, end: len(b.data)})
		b.packets++
	})
}

// chores is other work the reading goroutine does between two batches,
// and whenever it waits for a free one: do, when wake has a token or when
// a batch is sent. The zero chores is none.
type chores struct {
	wake <-chan struct{}
	do   func()
}

// readInto reads every packet of src into batches taken from free, in
// order (each batch numbered), and sends each full batch, and the last
// one, to out. reset empties a batch taken from free; add puts one packet
// into it (counting it in b.packets) before the next call to Next reuses
// the packet's data. Between batches it does ch.
func readInto(ctx context.Context, src packetSource, free <-chan *batch, out chan<- *batch, ch chores,
	reset func(*batch), add func(b *batch, ns int64, iface int, data []byte, link layers.LinkType)) error {
	seq := 0
	var b *batch
	// Interfaces only grow, and an entry never changes once listed, so
	// the slice is fetched again only for an interface it does not hold.
	ifs := src.Interfaces()
	flush := func() bool {
		if b == nil || b.packets == 0 {
			return true
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return false
		}
		b = nil
		if ch.do != nil {
			ch.do()
		}
		return true
	}
	for {
		ns, iface, data, err := src.NextData()
		if err != nil {
			flush()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%w (the analysis covers the packets before it)", err)
		}
		if b == nil {
			for b == nil {
				select {
				case b = <-free:
				case <-ch.wake: // nil without chores: never ready
					ch.do()
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			reset(b)
			b.seq = seq
			seq++
		}
		if iface >= len(ifs) {
			ifs = src.Interfaces()
		}
		link := layers.LinkTypeEthernet
		if iface >= 0 && iface < len(ifs) {
			link = ifs[iface].LinkType
		}
		add(b, ns, iface, data, link)
		if b.packets == batchPackets {
			if !flush() {
				return ctx.Err()
			}
		}
	}
}
