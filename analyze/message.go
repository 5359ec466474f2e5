package analyze

import "github.com/bufscope/bufscope/decode"

// obs is one observation of a segment: where (a capture point or a
// buffer), when it entered and when it was seen or left.
type obs struct {
	point   uint64 // capture point or buffer, see pointOf
	enter   int64  // entered the buffer (== at for capture points)
	at      int64
	buf     BufferID
	isBuf   bool
	latency uint32
	ev      Evidence
}

// segObs remembers where a message's segment was first seen, to tell a
// retransmission (same point, same bytes, later) from the same segment
// passing another point.
type segObs struct {
	off, n uint32
	at     int64
	point  uint64
}

// bufObs is a message's passage through one buffer.
type bufObs struct {
	id          BufferID
	first, last int64 // enter of the first segment, leave of the last
	maxRes      uint32
	n           int
	ev          Evidence
}

// maxSegs bounds the retransmission bookkeeping of one message; beyond
// it (messages over ~1 MB), later segments are not checked.
const maxSegs = 1024

// message is one RPC message (request or response) on one direction.
type message struct {
	hc       *halfConn
	owner    *rpc
	kind     decode.MessageKind
	rpcID    uint64
	traceID  uint64
	start    uint32
	length   uint32 // 0: unknown (start not captured, or tag length 0)
	inferred bool   // the tagged first segment was never seen
	hi       uint32 // highest byte offset seen
	seen     bool
	firstOut int64 // earliest time any of its bytes entered an observed buffer or point
	firstAt  int64 // earliest time its first byte was seen anywhere
	lastIn   int64 // latest observation of any of its bytes
	doneAt   int64 // time the last byte was first seen
	complete bool

	bufs    []bufObs
	segs    []segObs
	retrans int
	rtxWait int64
	rtxEv   []Evidence
	drops   []Evidence
}

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
	if n > 0 {
		m.segment(o, off, n)
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
				b.maxRes, b.ev = o.latency, o.ev
			}
			return
		}
	}
	m.bufs = append(m.bufs, bufObs{id: o.buf, first: o.enter, last: o.at, maxRes: o.latency, n: 1, ev: o.ev})
}

// segment records the segment and detects a retransmission: the same
// bytes seen again at the same point later. The wait is counted from the
// first time those bytes were seen anywhere.
func (m *message) segment(o *obs, off, n uint32) {
	earliest := int64(0)
	retrans := false
	for i := len(m.segs) - 1; i >= 0; i-- {
		s := &m.segs[i]
		if off >= s.off+s.n || s.off >= off+n {
			continue
		}
		if earliest == 0 || s.at < earliest {
			earliest = s.at
		}
		if s.point == o.point && o.at > s.at {
			retrans = true
		}
	}
	if retrans {
		m.retrans++
		if w := o.at - earliest; w > m.rtxWait {
			m.rtxWait = w
		}
		if len(m.rtxEv) < maxEvidence {
			ev := o.ev
			ev.Note = "retransmission"
			m.rtxEv = append(m.rtxEv, ev)
		}
		return
	}
	if earliest == 0 && len(m.segs) < maxSegs {
		m.segs = append(m.segs, segObs{off: off, n: n, at: o.at, point: o.point})
	}
}
