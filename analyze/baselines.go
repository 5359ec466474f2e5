package analyze

import (
	"sync"
	"sync/atomic"
)

// Feeding the class baselines (laying out each finalized RPC's chain and
// adding its element times to its two classes' rings) is about an eighth
// of the analyzer's work, and nothing else the analyzer does between two
// sweeps reads the classes' rings: judging and diagnosing, which do, run
// in closeTraces. Under Run, where the analyzer's goroutine is the
// critical path, the feeding is done off it, in finalize order, and
// maintain makes sure it has caught up before closeTraces. The baselines
// a request is judged against are then those of the serial order, and the
// result the same.
//
// Who does it: on 2 CPUs, the goroutine that reads and decodes, between
// two batches of packets and whenever it waits for a free batch (Run).
// A goroutine of its own would compete with the reader for the second
// CPU, and the scheduler would let it wait, runnable, while the analyzer
// waited for it: a tenth of a run. With more decoders, a goroutine of its
// own. In both cases, when maintain must wait, the analyzer feeds what is
// still queued itself rather than sleep.
//
// What is fed reads of an RPC only what does not change after finalize
// hands it over: the RPC's timing fields, and its messages, which are
// detached from their direction (no later packet reaches them) and
// recycled only when their request closes, after the catch-up. It writes
// the classes' rings and sorts its messages' buffer observations in
// place, which only closeTraces and later read.

// baseliner holds the finalized RPCs whose baselines are still to be fed.
type baseliner struct {
	// mu is held while a batch is taken from queue and fed, so batches
	// are fed one at a time and in order, whoever feeds them.
	mu     sync.Mutex
	queue  [][]*RPC
	free   [][]*RPC  // emptied batches, for reuse
	chain  []Element // scratch of whoever holds mu
	queued atomic.Int32
	wake   chan struct{} // a batch was queued (capacity 1), for a worker of its own
	done   chan struct{} // closed when that worker has returned
	closed bool          // guarded by mu: no more batches
}

// startBaseliner makes later finalizations feed the baselines off the
// analyzer's goroutine: on one of its own if own, else on whichever
// goroutine calls serve. Finish stops it.
func (a *Analyzer) startBaseliner(own bool) {
	b := &baseliner{wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.bl = b
	if !own {
		close(b.done)
		return
	}
	go func() {
		defer close(b.done)
		for range b.wake {
			if !b.serve(a) {
				return
			}
		}
	}()
}

// serve feeds the queued batches, one at a time, and reports whether more
// may come. It is cheap when nothing is queued.
func (b *baseliner) serve(a *Analyzer) bool {
	if b.queued.Load() == 0 {
		return true
	}
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			closed := b.closed
			b.mu.Unlock()
			return !closed
		}
		b.feedFirst(a)
		b.mu.Unlock()
	}
}

// feedFirst feeds the first queued batch. b.mu is held.
func (b *baseliner) feedFirst(a *Analyzer) {
	batch := b.queue[0]
	b.queue[0] = nil
	b.queue = b.queue[1:]
	b.queued.Add(-1)
	for i, r := range batch {
		b.chain = a.feedBaselines(r, b.chain)
		batch[i] = nil
	}
	b.free = append(b.free, batch[:0])
}

// feedBaselines adds complete RPC r to its classes, laying its chain out in
// scratch, which it returns for reuse.
func (a *Analyzer) feedBaselines(r *RPC, scratch []Element) []Element {
	chain := a.chain(r, scratch[:0])
	r.clsC.add(r, chain)
	r.coarseC.add(r, chain)
	clear(chain) // no evidence pointers left behind in the scratch
	return chain[:0]
}

// baselines feeds r to its classes now, or queues it with the next batch.
// An RPC with a message another RPC also held (shared) is fed here, after
// the queue is empty: that message may still be reached through the other
// RPC, which no other goroutine may race with.
func (a *Analyzer) baselines(r *RPC) {
	if a.bl == nil || r.req.shared || r.resp != nil && r.resp.shared {
		a.waitBaselines() // the order of finalize stays the order fed
		a.chainBuf = a.feedBaselines(r, a.chainBuf)
		return
	}
	a.blBatch = append(a.blBatch, r)
}

// sendBaselines queues the RPCs finalized since the last call.
func (a *Analyzer) sendBaselines() {
	b := a.bl
	if b == nil || len(a.blBatch) == 0 {
		return
	}
	b.mu.Lock()
	b.queue = append(b.queue, a.blBatch)
	b.queued.Add(1)
	a.blBatch = nil
	if n := len(b.free); n > 0 {
		a.blBatch = b.free[n-1]
		b.free = b.free[:n-1]
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// waitBaselines returns once every RPC finalized so far is fed: it feeds
// what is still queued itself, after the batch being fed elsewhere.
func (a *Analyzer) waitBaselines() {
	b := a.bl
	if b == nil {
		return
	}
	a.sendBaselines()
	b.mu.Lock()
	for len(b.queue) > 0 {
		b.feedFirst(a)
	}
	b.mu.Unlock()
}

// stopBaseliner feeds what is queued and ends the worker, if any.
func (a *Analyzer) stopBaseliner() {
	b := a.bl
	if b == nil {
		return
	}
	a.waitBaselines()
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.wake)
	<-b.done
	a.bl = nil
}
