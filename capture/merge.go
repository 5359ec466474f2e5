package capture

import (
	"container/heap"
	"errors"
	"io"
)

// Merged yields the packets of several readers in timestamp order, as for
// `bufscope decode a.zst b.zst`. Packets with equal timestamps come in the
// order of the readers given to Merge. Interfaces of all readers are
// renumbered into one list; Source tells which reader an interface came from.
//
// Like Reader it is for one goroutine. A returned Packet's Data stays valid
// until the next call to Next. Merged does not close the readers.
type Merged struct {
	rs     []*Reader
	heads  mergeHeap
	last   int // reader whose packet was returned last, -1 before the first
	remap  [][]int
	ifaces []Interface
	source []int
	errs   []error
	done   bool
}

type mergeHead struct {
	p   Packet
	src int
}

type mergeHeap []mergeHead

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if !h[i].p.Timestamp.Equal(h[j].p.Timestamp) {
		return h[i].p.Timestamp.Before(h[j].p.Timestamp)
	}
	return h[i].src < h[j].src
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeHead)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Merge starts merging rs. It reads the first packet of each reader.
func Merge(rs ...*Reader) *Merged {
	m := &Merged{rs: rs, last: -1, remap: make([][]int, len(rs))}
	for i, r := range rs {
		for j := range r.Interfaces() {
			m.mapIface(i, j)
		}
	}
	for i := range rs {
		m.advance(i)
	}
	heap.Init(&m.heads)
	return m
}

func (m *Merged) mapIface(src, local int) int {
	for len(m.remap[src]) <= local {
		l := len(m.remap[src])
		m.ifaces = append(m.ifaces, m.rs[src].Interfaces()[l])
		m.source = append(m.source, src)
		m.remap[src] = append(m.remap[src], len(m.ifaces)-1)
	}
	return m.remap[src][local]
}

// advance reads reader i's next packet into the heap (without fixing the
// heap order).
func (m *Merged) advance(i int) {
	p, err := m.rs[i].Next()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			m.errs = append(m.errs, err)
		}
		return
	}
	p.Interface = m.mapIface(i, p.Interface)
	m.heads = append(m.heads, mergeHead{p: p, src: i})
}

// Next returns the earliest pending packet. After the last one it returns
// io.EOF, or the readers' errors joined (each a *DamageError naming its file)
// if any reader hit damage; every intact packet of every reader comes first.
func (m *Merged) Next() (Packet, error) {
	if m.last >= 0 {
		n := len(m.heads)
		m.advance(m.last)
		if len(m.heads) > n {
			heap.Fix(&m.heads, len(m.heads)-1)
		}
		m.last = -1
	}
	if len(m.heads) == 0 {
		if len(m.errs) > 0 {
			return Packet{}, errors.Join(m.errs...)
		}
		return Packet{}, io.EOF
	}
	h := heap.Pop(&m.heads).(mergeHead)
	m.last = h.src
	return h.p, nil
}

// NextData is Next in the form of Reader.NextData, so one loop can read a
// Reader or a Merged; here it saves nothing, as the merge orders Packets.
func (m *Merged) NextData() (ns int64, iface int, data []byte, err error) {
	p, err := m.Next()
	if err != nil {
		return 0, 0, nil, err
	}
	return p.Timestamp.UnixNano(), p.Interface, p.Data, nil
}

// Interfaces returns the merged interface list (grows as readers meet new
// interfaces). The slice is the Merged's own: do not modify it.
func (m *Merged) Interfaces() []Interface { return m.ifaces }

// Source returns the index (into the readers given to Merge) of the reader
// that merged interface i came from.
func (m *Merged) Source(i int) int { return m.source[i] }
