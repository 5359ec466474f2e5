package analyze

import (
	"testing"

	"github.com/bufscope/bufscope/decode"
)

// A stall and the queuing it caused are often opened as two events of one
// switch queue, microseconds apart; the stall names the condition even
// when the queuing event covers a few microseconds more of the window. A
// queue that covers more of the window than another buffer's stall still
// wins over it.
func TestEventOnPathStallOfTheSameQueue(t *testing.T) {
	flow := decode.Flow{IPVersion: 4, Proto: 6, SrcPort: 9000, DstPort: 48068}
	q := BufferID{Node: 2001, Kind: ElementKind(decode.BufferSwitchEgrQ), Port: 3}
	other := BufferID{Node: 2001, Kind: ElementKind(decode.BufferSwitchEgrQ), Port: 4}
	const ms = int64(1e6)
	build := func(evs map[BufferID][]*Event) *Analyzer {
		a := New(Options{})
		for id, es := range evs {
			a.bufferFlow(id, &flow, 0, 0)
			a.buffers[id].events = es
		}
		return a
	}
	queuing := &Event{ID: 1, Buffer: q, Class: EvQueuing, Start: 100 * ms, End: 1100 * ms, Magnitude: 50 * ms}
	stall := &Event{ID: 2, Buffer: q, Class: EvStall, Start: 100*ms + 12_000, End: 1090 * ms, Magnitude: 210 * ms}
	a := build(map[BufferID][]*Event{q: {queuing, stall}})
	for _, want := range []EventClass{evCongestion, EvNone} {
		if got := a.eventOnPath(flow, 99*ms, 312*ms, want); got != stall {
			t.Errorf("want class %v: got %+v, want the stall", want, got)
		}
	}
	if got := a.eventOnPath(flow, 99*ms, 312*ms, EvQueuing); got != queuing {
		t.Errorf("asked for queuing only: got %+v, want the queuing event", got)
	}

	// A stall elsewhere that covers less of the window does not take
	// over another queue's queuing.
	far := &Event{ID: 3, Buffer: other, Class: EvStall, Start: 300 * ms, End: 310 * ms, Magnitude: 10 * ms}
	a = build(map[BufferID][]*Event{q: {queuing}, other: {far}})
	if got := a.eventOnPath(flow, 99*ms, 312*ms, evCongestion); got != queuing {
		t.Errorf("got %+v, want the queuing event that covers the window", got)
	}
}
