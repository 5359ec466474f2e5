package analyze

import "sync"

// Feeding the class baselines (laying out each finalized RPC's chain and
// adding its element times to its two classes' rings) is about an eighth
// of the analyzer's work, and nothing else the analyzer does between two
// sweeps reads the classes' rings: judging and diagnosing, which do, run
// in closeTraces. Under Run, where the analyzer's goroutine is the
// critical path and the reading goroutine leaves part of the other CPU
// idle, a worker goroutine does the feeding, in finalize order, and
// maintain waits for it to catch up before closeTraces. The baselines a
// request is judged against are then those of the serial order, and the
// result the same.
//
// What the worker reads of an RPC does not change after finalize hands it
// over: the RPC's timing fields, and its messages, which are detached
// from their direction (no later packet reaches them) and recycled only
// when their request closes, after the wait. It writes the classes'
// rings and sorts its messages' buffer observations in place, which only
// closeTraces and later read.

// baseliner is the worker's side.
type baseliner struct {
	batches chan []*RPC
	free    chan []*RPC // emptied batches coming back
	pending sync.WaitGroup
	done    chan struct{}
	chain   []Element // the worker's scratch
}

// startBaseliner makes later finalizations feed the baselines on a worker
// goroutine; Finish stops it.
func (a *Analyzer) startBaseliner() {
	b := &baseliner{batches: make(chan []*RPC, 64), free: make(chan []*RPC, 64), done: make(chan struct{})}
	a.bl = b
	go func() {
		defer close(b.done)
		for batch := range b.batches {
			for i, r := range batch {
				b.chain = a.feedBaselines(r, b.chain)
				batch[i] = nil
			}
			select {
			case b.free <- batch[:0]:
			default:
			}
			b.pending.Done()
		}
	}()
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

// baselines feeds r to its classes now, or hands it to the worker with
// the next batch. An RPC with a message another RPC also held (shared) is
// fed here, after the worker caught up: that message may still be reached
// through the other RPC, which the worker must never race with.
func (a *Analyzer) baselines(r *RPC) {
	if a.bl == nil || r.req.shared || r.resp != nil && r.resp.shared {
		a.waitBaselines() // the order of finalize stays the order fed
		a.chainBuf = a.feedBaselines(r, a.chainBuf)
		return
	}
	a.blBatch = append(a.blBatch, r)
}

// sendBaselines hands the RPCs finalized since the last call to the worker.
func (a *Analyzer) sendBaselines() {
	b := a.bl
	if b == nil || len(a.blBatch) == 0 {
		return
	}
	b.pending.Add(1)
	b.batches <- a.blBatch
	select {
	case a.blBatch = <-b.free:
	default:
		a.blBatch = nil
	}
}

// waitBaselines returns once the worker has fed every RPC handed to it.
func (a *Analyzer) waitBaselines() {
	if a.bl != nil {
		a.sendBaselines()
		a.bl.pending.Wait()
	}
}

// stopBaseliner ends the worker after what it was handed.
func (a *Analyzer) stopBaseliner() {
	if a.bl != nil {
		a.waitBaselines()
		close(a.bl.batches)
		<-a.bl.done
		a.bl = nil
	}
}
