package analyze

import (
	"slices"

	"github.com/bufscope/bufscope/decode"
)

// obs is one observation of a segment: where (a capture point or a
// buffer), when it entered and when it was seen or left.
type obs struct {
	point   uint64 // capture point or buffer, see pointOf
	enter   int64  // entered the buffer (== at for capture points)
	at      int64
	buf     BufferID
	isBuf   bool
	latency uint32
	// ev is the report's evidence (buffers; the caller's, read only
	// during the call it passes o to). Captured segments have none: it is
	// built from rec on demand. A pointer, not a copy: an obs is made for
	// every segment and report.
	ev  *Evidence
	rec *decode.Record
}

func (o *obs) evidence() Evidence {
	if o.rec != nil {
		return evidenceOf(o.rec, o.at)
	}
	return *o.ev
}

// event is the event a buffer's report names (none for a capture).
func (o *obs) event() decode.EventKind {
	if o.ev == nil {
		return 0
	}
	return o.ev.Event
}

// capturePoint marks obs.point values of capture interfaces (buffers use
// pointOf).
const capturePoint = 1 << 63

// segObs remembers when a message's segment was first seen and at which
// points, to tell a retransmission (same point, same bytes, later) from
// the same segment passing another point.
type segObs struct {
	off, n uint32
	at     int64
	seen   uint16 // bit i: points[i] saw these bytes
	rtx    bool   // seen again later at some point: retransmitted
}

// bufObs is a message's passage through one buffer.
type bufObs struct {
	id          BufferID
	first, last int64 // enter of the first segment, leave of the last
	maxRes      uint32
	n           int
	ev          Evidence
	est         *Estimate // not reported: estimated from the queue's reports (sampled.go)
}

// maxSegs bounds the retransmission bookkeeping of one message; beyond
// it (messages over ~1 MB), later segments are not checked.
const maxSegs = 1024

// message is one RPC message (request or response) on one direction.
type message struct {
	msgState

	// First storage of points, segs and bufs: most messages fit, so a
	// message costs one allocation instead of four to eight. The message
	// is only ever handled by pointer, so the slices stay valid. A
	// recycled message does not clear them (newMessage): only what the
	// slices hold is ever read, and they are two thirds of the message.
	points0 [4]uint64
	segs0   [8]segObs
	bufs0   [2]bufObs
}

// msgState is a message without its inline storage: what recycling a
// message resets.
type msgState struct {
	hc       *halfConn
	owner    *rpc
	kind     decode.MessageKind
	rpcID    uint64
	traceID  uint64
	start    uint32
	length   uint32 // 0: unknown (start not captured, or tag length 0)
	inferred bool   // the tagged first segment was never seen
	shared   bool   // more than one RPC has owned it: never recycled
	hi       uint32 // highest byte offset seen
	seen     bool
	firstOut int64 // earliest time any of its bytes entered an observed buffer or point
	firstAt  int64 // earliest time its first byte was seen anywhere
	lastIn   int64 // latest observation of any of its bytes
	doneAt   int64 // time the last byte was first seen
	complete bool
	// tailIn is when the last missing byte arrived: the latest first
	// sighting of any of its bytes at any point. A retransmission that
	// fills a hole is a first sighting there; a spurious one (bytes the
	// point already saw) is not, so it does not make the message late.
	tailIn int64
	points []uint64 // points that saw the message; index = bit in segObs.seen

	bufs []bufObs
	segs []segObs
	// segEnd is the largest off+n of segs (0 if none): a segment that
	// starts at or after it overlaps none, the common case of new data,
	// and segment does not scan them.
	segEnd uint32
	// segsUnordered: some segment in segs starts before the end of the
	// one appended before it. Until then segs are in ascending order and
	// disjoint, and the segments a sighting overlaps are found by binary
	// search (a message-start report overlaps the first of many).
	segsUnordered bool
	retrans       int
	// rtxSegs counts the segments retransmitted (retrans counts every
	// capture point's sighting of a retransmission); spurious those of
	// them the receiver reported getting twice (D-SACK, RFC 2883): the
	// original was late, not lost.
	rtxSegs, spurious int
	rtxWait           int64
	rtxEv             []Evidence
	drops             []Evidence
}

// end is when the message was fully in: its tail's arrival once complete,
// else its last observation.
//
// Retransmissions count: from one capture point a spurious retransmission
// cannot be told from one that filled a hole, and the latter is common.
// Even a D-SACK does not date the end: the late original may have waited
// in a queue after the capture point for as long as the copy took.
func (m *message) end() int64 {
	return m.lastIn
}

// lossless says whether every retransmission of the message was
// spurious: the receiver reported each one as a duplicate, so nothing was
// lost and the retransmissions' wait is the late original's transfer.
func (m *message) lossless() bool { return m.rtxSegs > 0 && m.spurious >= m.rtxSegs }

func (m *message) contains(seq uint32) bool {
	off := seq - m.start
	if int32(off) < 0 {
		return false
	}
	if m.length != 0 {
		return off < m.length
	}
	return true
}

// observe adds one observation of the segment [seq, seq+n) and reports
// whether it completed the message.
func (m *message) observe(o *obs, seq, n uint32) bool {
	off := seq - m.start
	if !m.seen || o.enter < m.firstOut {
		m.firstOut = o.enter
	}
	// In a receive queue the victim waits for its application after it
	// arrived: the message was "in" when it entered.
	in := o.at
	if o.isBuf && (o.buf.Kind == ElementKind(decode.BufferSockRecv) || o.buf.Kind == ElementKind(decode.BufferAppRecv)) {
		in = o.enter
	}
	if !m.seen || in > m.lastIn {
		m.lastIn = in
	}
	if off == 0 && (!m.seen || o.at < m.firstAt || m.firstAt == 0) {
		m.firstAt = o.at
	}
	m.seen = true
	if o.isBuf {
		m.addBuf(o)
	}
	if n > 0 && m.segment(o, off, n) {
		m.tailIn = max(m.tailIn, in)
	}
	if end := off + n; end > m.hi {
		m.hi = end
	}

	if !m.complete && m.length != 0 && m.hi >= m.length {
		m.complete, m.doneAt = true, o.at
		return true
	}
	return false
}

func (m *message) addBuf(o *obs) {
	for i := range m.bufs {
		b := &m.bufs[i]
		if b.id == o.buf {
			b.n++
			b.first = min(b.first, o.enter)
			b.last = max(b.last, o.at)
			if o.latency > b.maxRes {
				b.maxRes, b.ev = o.latency, *o.ev
			}
			return
		}
	}
	if m.bufs == nil {
		m.bufs = m.bufs0[:0]
	}
	m.bufs = append(m.bufs, bufObs{id: o.buf, first: o.enter, last: o.at, maxRes: o.latency, n: 1, ev: *o.ev})
}

// segment records the segment, detects a retransmission (the same bytes
// seen again at the same point later; the wait counts from the first time
// those bytes were seen anywhere) and reports whether this was the first
// sighting of these bytes at this point.
func (m *message) segment(o *obs, off, n uint32) bool {
	pi := slices.Index(m.points, o.point)
	if pi < 0 && len(m.points) < 16 {
		if m.points == nil {
			m.points = m.points0[:0]
		}
		m.points = append(m.points, o.point)
		pi = len(m.points) - 1
	}
	var bit uint16
	if pi >= 0 {
		bit = 1 << pi
	}
	earliest := int64(0)
	seenHere, later := false, false
	// The segments overlapping [off, off+n) are visited in any order:
	// what the loop gathers does not depend on it. Unordered, every one
	// may overlap; ordered, those from the first ending after off on.
	// New data (at or past segEnd) overlaps none, and is not searched.
	from, to, step := len(m.segs)-1, -1, -1
	if off >= m.segEnd {
		from = to
	} else if !m.segsUnordered {
		lo, hi := 0, len(m.segs)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if s := &m.segs[mid]; s.off+s.n <= off {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		from, to, step = lo, len(m.segs), 1
	}
	for i := from; i != to && off < m.segEnd; i += step {
		s := &m.segs[i]
		if off >= s.off+s.n || s.off >= off+n {
			if step > 0 {
				break // ordered: this one and all after start past the sighting
			}
			continue
		}
		if earliest == 0 || s.at < earliest {
			earliest = s.at
		}
		if s.seen&bit != 0 {
			seenHere = true
			if o.at > s.at {
				later = true
				if !s.rtx && (o.point&capturePoint != 0 || o.event() == decode.EventRetransmit) {
					s.rtx = true
					m.rtxSegs++
				}
			}
		}
		s.seen |= bit
	}
	if seenHere {
		// Only a capture point (or a host's retransmission report) can
		// tell a retransmission: a buffer reports the same segment more
		// than once (entering, queued, leaving).
		if later && (o.point&capturePoint != 0 || o.event() == decode.EventRetransmit) {
			m.retrans++
			if w := o.at - earliest; w > m.rtxWait {
				m.rtxWait = w
			}
			if len(m.rtxEv) < maxEvidence {
				ev := o.evidence()
				ev.Note = "retransmission"
				m.rtxEv = append(m.rtxEv, ev)
			}
		}
		return false
	}
	if earliest == 0 && len(m.segs) < maxSegs {
		if m.segs == nil {
			m.segs = m.segs0[:0]
		}
		m.appendSeg(segObs{off: off, n: n, at: o.at, seen: bit})
	}
	return true
}

// appendSeg adds s to segs, keeping segEnd and segsUnordered.
func (m *message) appendSeg(s segObs) {
	if !m.inOrder(len(m.segs), s) {
		m.segsUnordered = true
	}
	m.segs = append(m.segs, s)
	m.segEnd = max(m.segEnd, s.off+s.n)
}

// inOrder says whether s may follow segs[:i] in ascending order: it
// starts at or after the end of segs[i-1], and its own end does not wrap
// past 2^32 (bytes before the message's start have offsets up there), so
// that the ends ascend too, as segment's binary search needs.
func (m *message) inOrder(i int, s segObs) bool {
	if s.off+s.n < s.off {
		return false
	}
	return i == 0 || s.off >= m.segs[i-1].off+m.segs[i-1].n
}

// absorb takes over the observations of x, an inferred message that turned
// out to be part of m.
func (m *message) absorb(x *message) {
	d := x.start - m.start
	if x.seen {
		if !m.seen || x.firstOut < m.firstOut {
			m.firstOut = x.firstOut
		}
		m.lastIn = max(m.lastIn, x.lastIn)
		m.seen = true
	}
	m.hi = max(m.hi, x.hi+d)
	for i := range x.bufs {
		b := &x.bufs[i]
		o := obs{buf: b.id, enter: b.first, at: b.last, latency: b.maxRes, ev: &b.ev}
		m.addBuf(&o)
	}
	if m.segs == nil {
		m.segs = m.segs0[:0]
	}
	for _, s := range x.segs {
		if len(m.segs) < maxSegs {
			s.off += d
			s.seen = 0 // point indexes differ between the two messages
			m.appendSeg(s)
		}
	}
	m.retrans += x.retrans
	m.rtxSegs += x.rtxSegs
	m.spurious += x.spurious
	m.rtxWait = max(m.rtxWait, x.rtxWait)
	m.rtxEv = append(m.rtxEv, x.rtxEv...)
	m.drops = append(m.drops, x.drops...)
}
