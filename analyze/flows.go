package analyze

import (
	"slices"

	"github.com/bufscope/bufscope/decode"
)

// seqAfter reports whether sequence number a comes after b (RFC 793
// modular comparison).
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// reverse returns the flow of the opposite direction.
func reverse(f decode.Flow) decode.Flow {
	f.Src, f.Dst = f.Dst, f.Src
	f.SrcPort, f.DstPort = f.DstPort, f.SrcPort
	return f
}

// canonical returns one of f and reverse(f), the same for both, so that a
// connection has one key.
func canonical(f decode.Flow) decode.Flow {
	r := reverse(f)
	for i := range f.Src {
		if f.Src[i] != r.Src[i] {
			if f.Src[i] < r.Src[i] {
				return f
			}
			return r
		}
	}
	if f.SrcPort <= r.SrcPort {
		return f
	}
	return r
}

// bucketWidth is the resolution of per-flow byte counts used to rank
// culprits: fine enough for millisecond microbursts, coarse enough that a
// 10 s window of one busy flow is a few thousand counters.
const bucketWidth = int64(2_000_000)

type bucket struct {
	at    int64 // bucket index: time / bucketWidth
	bytes uint64
}

// byteSeries counts bytes per time bucket, oldest first.
type byteSeries []bucket

func (s *byteSeries) add(t int64, n uint64) {
	b := t / bucketWidth
	if l := len(*s); l > 0 && (*s)[l-1].at >= b {
		// Records arrive nearly in time order; a late one is counted in
		// the newest bucket rather than searched for.
		(*s)[l-1].bytes += n
		return
	}
	*s = append(*s, bucket{at: b, bytes: n})
}

func (s byteSeries) sum(from, to int64) uint64 {
	lo, hi := from/bucketWidth, to/bucketWidth
	var n uint64
	for i := len(s) - 1; i >= 0; i-- {
		if s[i].at < lo {
			break
		}
		if s[i].at <= hi {
			n += s[i].bytes
		}
	}
	return n
}

func (s *byteSeries) prune(before int64) {
	b := before / bucketWidth
	i := 0
	for i < len(*s) && (*s)[i].at < b {
		i++
	}
	// Dropping the front by reslicing, not copying: a sweep drops a few
	// buckets of thousands, and append moves the rest to a new array
	// only when the capacity behind them runs out (amortized, and the
	// dropped front is freed then).
	*s = (*s)[i:]
}

// conn is the state both directions of one TCP connection share: the RPCs
// still open on it.
type conn struct {
	open []*rpc
	// ids[i] is open[i].id: a new tag looks for its RPC among hundreds of
	// open ones (those whose response never completes wait a window),
	// and loading each would miss the cache.
	ids []uint64
}

// add puts p on the connection's open RPCs.
func (c *conn) add(p *rpc) {
	c.open = append(c.open, p)
	c.ids = append(c.ids, p.id)
}

// halfConn is one direction of a TCP connection.
type halfConn struct {
	flow decode.Flow
	c    *conn
	msgs []*message // open messages, in sequence order
	// keys[i] mirrors the identity and range of msgs[i]: the lookups run
	// for every segment and tag scan this compact slice instead of
	// loading each message, most of which are cold (RPCs whose response
	// never completes stay open for a whole window, hundreds per
	// direction). Whoever changes those fields of an open message calls
	// sync.
	keys []msgKey
	// inferredKeys counts the keys marked inferred: a new tag looks for
	// inferred messages to adopt or fold in only when there are some,
	// which is rare (their tagged first segment was not captured).
	inferredKeys int
	// role is the message kind this direction carries, learned from tags.
	role decode.MessageKind
	// anchor is the sequence number just after the last message finalized,
	// so that a message whose tagged first segment was not captured still
	// starts where the previous one ended.
	anchor    uint32
	hasAnchor bool
	hi        uint32 // highest sequence end seen: new data beyond it is counted once
	hasHi     bool
	last      int64
	bytes     byteSeries
	// Duplicate-ACK and zero-window tracking of the ACKs this direction
	// receives (they travel on the reverse direction).
	lastAck   uint32
	dupAcks   int
	zeroWin   []Evidence
	dupAckEvs []Evidence
	// The classes of the RPCs whose requests this direction carries
	// (classesOf): the server endpoint's, and the last sized one.
	coarse, sized *class
	sizedKey      classKey
	lastTail      int64    // arrival of the last finalized message's last byte
	switches      []uint32 // switch nodes this direction was seen at
	pathSince     int64
}

// msgKey is the part of a message that finding it by sequence number
// or by tag compares.
type msgKey struct {
	rpcID         uint64
	start, length uint32
	kind          decode.MessageKind
	inferred      bool
}

func keyOf(m *message) msgKey {
	return msgKey{rpcID: m.rpcID, start: m.start, length: m.length, kind: m.kind, inferred: m.inferred}
}

// contains is message.contains on the mirrored range.
func (k *msgKey) contains(seq uint32) bool {
	off := seq - k.start
	if int32(off) < 0 {
		return false
	}
	return k.length == 0 || off < k.length
}

// sync copies m's identity and range into its key after they changed;
// m need not be open in h.
func (h *halfConn) sync(m *message) {
	for i := len(h.msgs) - 1; i >= 0; i-- {
		if h.msgs[i] == m {
			h.setKey(i, keyOf(m))
			return
		}
	}
}

// find returns the open message holding sequence number seq, and its
// index in h.msgs (-1 if none).
func (h *halfConn) find(seq uint32) (*message, int) {
	for i := len(h.keys) - 1; i >= 0; i-- {
		if h.keys[i].contains(seq) {
			return h.msgs[i], i
		}
	}
	return nil, -1
}

// setKey replaces keys[i], keeping inferredKeys.
func (h *halfConn) setKey(i int, k msgKey) {
	if h.keys[i].inferred {
		h.inferredKeys--
	}
	if k.inferred {
		h.inferredKeys++
	}
	h.keys[i] = k
}

func (h *halfConn) insert(m *message) {
	i := len(h.keys)
	for i > 0 && seqAfter(h.keys[i-1].start, m.start) {
		i--
	}
	h.msgs = slices.Insert(h.msgs, i, m)
	h.keys = slices.Insert(h.keys, i, keyOf(m))
	if m.inferred {
		h.inferredKeys++
	}
	// A message with unknown length ends where the next one starts.
	if i > 0 {
		if k := &h.keys[i-1]; k.length == 0 && seqAfter(m.start, k.start) {
			k.length = m.start - k.start
			h.msgs[i-1].length = k.length
		}
	}
}

// drop removes the open message at index i.
func (h *halfConn) drop(i int) {
	if h.keys[i].inferred {
		h.inferredKeys--
	}
	h.msgs = deleteAt(h.msgs, i)
	h.keys = deleteAt(h.keys, i)
}

// deleteAt is slices.Delete(s, i, i+1), except that the first element,
// the one messages and RPCs mostly leave from (they finish in the order
// they started), goes by reslicing instead of moving all the others:
// append moves them to a new array only when the capacity behind them
// runs out. The vacated slot is zeroed, so that it holds no pointer. A
// short slice moves its few elements instead: a connection with one
// exchange at a time would otherwise leave an array with no capacity
// behind at every exchange, and allocate a new one for the next.
func deleteAt[S ~[]E, E any](s S, i int) S {
	if i == 0 && len(s) > 8 {
		var zero E
		s[0] = zero
		return s[1:]
	}
	return slices.Delete(s, i, i+1)
}

func (h *halfConn) remove(m *message) {
	if i := slices.Index(h.msgs, m); i >= 0 {
		h.drop(i)
	}
	h.lastTail = max(h.lastTail, m.end())
	end := m.start + m.hi
	if m.length != 0 {
		end = m.start + m.length
	}
	if !h.hasAnchor || seqAfter(end, h.anchor) {
		h.anchor, h.hasAnchor = end, true
	}
}
