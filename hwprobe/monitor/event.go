package monitor

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Buffer kinds and events as in docs/wire-format.md §2; the values are the
// ones the BPF programs write.
const (
	BufferSocketSend    = 2
	BufferQdisc         = 3
	BufferNICTx         = 4
	BufferNICRx         = 5
	BufferSocketReceive = 6
	BufferSwitch        = 8

	EventDrop           = 1
	EventQueuing        = 2
	EventStall          = 3
	EventMessageStart   = 4
	EventRetransmission = 5

	FlagStart   = 0x8000
	FlagCleared = 0x4000
)

// Source names the program an event came from.
type Source uint8

const (
	SourceQdiscDequeue Source = iota + 1
	SourceQdiscEnqueue
	SourceKfreeSkb
	SourceRetransmit
	SourceSendLength
	SourceTCPProbe
	SourceRecvLength
	SourceRcvqueueFull
	SourceExceedBufLimit
)

var sourceNames = [...]string{"", "qdisc_dequeue", "qdisc_enqueue", "kfree_skb", "tcp_retransmit_skb",
	"sock_send_length", "tcp_probe", "sock_recv_length", "sock_rcvqueue_full", "sock_exceed_buf_limit"}

func (s Source) String() string {
	if int(s) < len(sourceNames) && s != 0 {
		return sourceNames[s]
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// HeaderMax is the most header bytes a BPF program copies from a victim.
const HeaderMax = 128

// eventSize is sizeof(struct event) in monitor.bpf.c.
const eventSize = 8 + 8 + 8 + 12*4 + 6*2 + 4 + 16 + 16 + 8 + HeaderMax

// Event is one monitor event as read from the ring buffer. Header holds
// the victim's IP and transport headers when the program could copy them
// (HeaderLen > 0); otherwise Family, addresses, ports, Seq and Ack describe
// the flow so a header can be synthesized (package export does).
type Event struct {
	Time       int64 // event time, ns since the Unix epoch
	Start      int64 // the victim entered the buffer, ns since the epoch; 0 unknown
	Since      int64 // the condition began, ns since the epoch; 0 not applicable
	Netns      uint32
	IfIndex    uint32
	InIfIndex  uint32
	DropReason uint32
	OccBytes   uint32
	CapBytes   uint32
	OccPkts    uint32
	CapPkts    uint32
	RcvWnd     uint32
	SndCwnd    uint32
	Seq        uint32
	Ack        uint32
	QueueID    uint16
	Flags      uint16
	HeaderLen  uint16
	SrcPort    uint16
	DstPort    uint16
	Family     uint16
	Buffer     uint8
	Event      uint8
	Source     Source
	Router     bool
	SrcAddr    [16]byte
	DstAddr    [16]byte
	QdiscKind  [8]byte
	Header     [HeaderMax]byte

	mono, startMono, sinceMono int64
}

// Mono returns the event time on CLOCK_MONOTONIC, as the kernel took it.
func (e *Event) Mono() int64 { return e.mono }

// setClock converts the kernel's CLOCK_MONOTONIC stamps to Unix time using
// offset (realtime minus monotonic).
func (e *Event) setClock(offset int64) {
	e.Time = e.mono + offset
	e.Start, e.Since = 0, 0
	if e.startMono != 0 {
		e.Start = e.startMono + offset
	}
	if e.sinceMono != 0 {
		e.Since = e.sinceMono + offset
	}
}

// Qdisc returns the qdisc kind ("tbf", "bfifo", …) for qdisc events.
func (e *Event) Qdisc() string {
	n := 0
	for n < len(e.QdiscKind) && e.QdiscKind[n] != 0 {
		n++
	}
	return string(e.QdiscKind[:n])
}

// Addrs returns the flow's addresses from the socket fields.
func (e *Event) Addrs() (src, dst netip.Addr) {
	if e.Family == 2 {
		return netip.AddrFrom4([4]byte(e.SrcAddr[:4])), netip.AddrFrom4([4]byte(e.DstAddr[:4]))
	}
	return netip.AddrFrom16(e.SrcAddr), netip.AddrFrom16(e.DstAddr)
}

func (e *Event) unmarshal(b []byte) error {
	if len(b) < eventSize {
		return fmt.Errorf("monitor event: ring buffer record of %d bytes, want %d (loader and object out of step?)", len(b), eventSize)
	}
	le := binary.LittleEndian
	e.mono = int64(le.Uint64(b[0:]))
	e.startMono = int64(le.Uint64(b[8:]))
	e.sinceMono = int64(le.Uint64(b[16:]))
	u32 := func(i int) uint32 { return le.Uint32(b[24+4*i:]) }
	e.Netns, e.IfIndex, e.InIfIndex, e.DropReason = u32(0), u32(1), u32(2), u32(3)
	e.OccBytes, e.CapBytes, e.OccPkts, e.CapPkts = u32(4), u32(5), u32(6), u32(7)
	e.RcvWnd, e.SndCwnd, e.Seq, e.Ack = u32(8), u32(9), u32(10), u32(11)
	o := 24 + 48
	e.QueueID = le.Uint16(b[o:])
	e.Flags = le.Uint16(b[o+2:])
	e.HeaderLen = le.Uint16(b[o+4:])
	// Ports were stored in network order by the kernel.
	e.SrcPort = binary.BigEndian.Uint16(b[o+6:])
	e.DstPort = binary.BigEndian.Uint16(b[o+8:])
	e.Family = le.Uint16(b[o+10:])
	o += 12
	e.Buffer, e.Event, e.Source, e.Router = b[o], b[o+1], Source(b[o+2]), b[o+3] != 0
	o += 4
	copy(e.SrcAddr[:], b[o:])
	copy(e.DstAddr[:], b[o+16:])
	copy(e.QdiscKind[:], b[o+32:])
	o += 40
	copy(e.Header[:], b[o:o+HeaderMax])
	if e.HeaderLen > HeaderMax {
		return fmt.Errorf("monitor event: header length %d exceeds %d", e.HeaderLen, HeaderMax)
	}
	return nil
}
