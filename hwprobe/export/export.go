package export

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe/monitor"
	"github.com/gopacket/gopacket"
)

// Source is where the exporter reads events; *monitor.Monitor is one.
type Source interface {
	// ReadEvent blocks until an event is available or the deadline
	// passes (os.ErrDeadlineExceeded).
	ReadEvent(ev *monitor.Event, deadline time.Time) error
	// DropReasons names the kernel's drop reasons.
	DropReasons() *monitor.DropReasons
}

// Options configure New.
type Options struct {
	// Collector is host:port of the collector; a missing port means
	// decode.DefaultReportPort.
	Collector string
	// NodeID goes into every group header. 0 means NodeIDFromHostname.
	NodeID uint32
	// HwID is the 6-bit hardware ID of the group header (0-63).
	HwID uint8
	// MaxPayload bounds a packet's UDP payload. Default 1400 bytes, so
	// reports cross a 1500-byte MTU path with room for tunnels.
	MaxPayload int
	// FlushInterval bounds how long an event waits for company. Default
	// 20 ms.
	FlushInterval time.Duration
	// Conn, when set, is used instead of dialling Collector (e.g. a socket
	// opened inside a network namespace). The exporter closes it.
	Conn net.Conn
	// Nodes, when not empty, lets one exporter speak for several network
	// namespaces of the host (a router and the hosts of a lab, containers
	// with their own node identity): an event goes out in the reports of
	// the node whose Netns matches Event.Netns, with that node's ID, its
	// own sequence numbers and its own socket. NodeID and Conn above are
	// then unused; events of a namespace that is not listed are counted
	// as Unattributed and dropped (the monitors' netns filter normally
	// keeps them out).
	Nodes []Node
}

// Node is one network namespace an exporter speaks for (Options.Nodes).
type Node struct {
	// Netns is the namespace's inode (monitor.NetnsInode).
	Netns uint32
	// NodeID goes into the group header of the node's reports; must not
	// be 0.
	NodeID uint32
	// Conn, when set, carries this node's reports (e.g. a socket opened
	// inside the node's namespace, so reports leave from its address);
	// nil shares one socket dialled to Collector. The exporter closes it.
	Conn net.Conn
}

// Counters are the exporter's own statistics.
type Counters struct {
	Events       uint64 // events read from the source
	Reports      uint64 // individual reports sent
	Packets      uint64 // UDP packets sent
	Bytes        uint64 // UDP payload bytes sent
	SendErrors   uint64 // packets the socket refused
	EncodeErrors uint64 // events that could not be serialized (dropped)
	Unattributed uint64 // events of a namespace not in Options.Nodes (dropped)
	// RingLost is the monitors' count of events the BPF ring buffer had no
	// room for (a per-CPU counter map), when the source reports it.
	RingLost uint64
}

// lossCounter is implemented by sources that count ring buffer losses
// (*monitor.Monitor does).
type lossCounter interface {
	Stats() (monitor.Stats, error)
}

// Exporter batches and sends reports. Run must be called from one
// goroutine; Counters is safe to call concurrently with it.
type Exporter struct {
	opts  Options
	nodes []*node
	// byNetns finds an event's node when Options.Nodes is given; nil means
	// every event belongs to nodes[0].
	byNetns map[uint32]*node
	conns   []net.Conn // every socket, closed once each by Close

	buf  []byte
	sbuf gopacket.SerializeBuffer

	events, reports, packets, bytes, sendErrs, encErrs, unattributed atomic.Uint64
	closeOnce                                                        sync.Once
	losses                                                           atomic.Pointer[lossCounter]
}

// node is what one reporting identity keeps: its batches wait apart, so a
// packet only ever carries one node's reports under that node's header.
type node struct {
	id     uint32
	conn   net.Conn
	seq    uint32
	host   batch
	router batch
	inIf   [maxBatch]uint32 // ingress ports of the router batch
}

// maxBatch bounds the events of one packet; with the smallest reports
// (~60 bytes) 1400 bytes hold about 23.
const maxBatch = 32

// batch holds events waiting for a packet. Inner headers are copied into
// hdrs because the monitor's Event is reused for the next read.
type batch struct {
	evs   []decode.HostEvent
	hdrs  [maxBatch][monitor.HeaderMax]byte
	size  int       // bytes the packet would have
	first time.Time // when the oldest event arrived
}

// New opens the UDP socket (unless opts.Conn is given) and returns an
// Exporter. Close releases the socket.
func New(opts Options) (*Exporter, error) {
	if opts.MaxPayload == 0 {
		opts.MaxPayload = 1400
	}
	if opts.MaxPayload < 512 || opts.MaxPayload > 65507 {
		return nil, fmt.Errorf("export: payload budget %d bytes out of range 512-65507", opts.MaxPayload)
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 20 * time.Millisecond
	}
	if opts.HwID > 63 {
		return nil, fmt.Errorf("export: hw id %d does not fit the 6-bit field (0-63)", opts.HwID)
	}
	x := &Exporter{opts: opts, sbuf: gopacket.NewSerializeBuffer()}
	ok := false
	defer func() {
		if !ok {
			x.closeConns()
		}
	}()
	// The caller's sockets are the exporter's from here on, even on error.
	if len(opts.Nodes) == 0 && opts.Conn != nil {
		x.conns = append(x.conns, opts.Conn)
	}
	for _, n := range opts.Nodes {
		if n.Conn != nil {
			x.conns = append(x.conns, n.Conn)
		}
	}
	var shared net.Conn
	dial := func() (net.Conn, error) {
		if shared != nil {
			return shared, nil
		}
		addr, err := CollectorAddr(opts.Collector)
		if err != nil {
			return nil, err
		}
		c, err := net.Dial("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("export: opening UDP socket to collector %s: %w", addr, err)
		}
		shared = c
		x.conns = append(x.conns, c)
		return c, nil
	}
	if len(opts.Nodes) == 0 {
		n := &node{id: opts.NodeID, conn: opts.Conn}
		if n.id == 0 {
			id, err := NodeIDFromHostname()
			if err != nil {
				return nil, err
			}
			n.id = id
		}
		x.nodes = append(x.nodes, n)
	} else {
		x.byNetns = make(map[uint32]*node, len(opts.Nodes))
		for i, o := range opts.Nodes {
			if o.NodeID == 0 {
				return nil, fmt.Errorf("export: node %d (netns inode %d) has node id 0: give every namespace its own node id", i, o.Netns)
			}
			if _, dup := x.byNetns[o.Netns]; dup {
				return nil, fmt.Errorf("export: netns inode %d listed twice", o.Netns)
			}
			n := &node{id: o.NodeID, conn: o.Conn}
			x.byNetns[o.Netns] = n
			x.nodes = append(x.nodes, n)
		}
	}
	for _, n := range x.nodes {
		if n.conn == nil {
			c, err := dial()
			if err != nil {
				return nil, err
			}
			n.conn = c
		}
		n.host.evs = make([]decode.HostEvent, 0, maxBatch)
		n.router.evs = make([]decode.HostEvent, 0, maxBatch)
	}
	x.buf = make([]byte, 0, opts.MaxPayload+512)
	ok = true
	return x, nil
}

// CollectorAddr validates a --collector value and adds the default port.
func CollectorAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("export: no collector address: give --collector HOST[:PORT]")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole value is the host (IPv6 literals in brackets
		// or bare).
		host, port = s, strconv.Itoa(decode.DefaultReportPort)
		if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1]
		}
		if strings.ContainsAny(host, "[]") {
			return "", fmt.Errorf("export: collector %q: unbalanced brackets: give --collector HOST[:PORT] or [IPv6]:PORT", s)
		}
		if strings.Contains(host, ":") {
			if _, err := netip.ParseAddr(host); err != nil {
				return "", fmt.Errorf("export: collector %q is neither HOST:PORT nor an IPv6 address: give --collector HOST[:PORT] or [IPv6]:PORT", s)
			}
		}
	}
	if host == "" {
		return "", fmt.Errorf("export: collector %q has no host: give --collector HOST[:PORT]", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("export: collector %q: port %q is not 1-65535", s, port)
	}
	return net.JoinHostPort(host, port), nil
}

// NodeIDFromHostname returns the FNV-1a hash of the host name, never 0.
// Stable across restarts, so reports from one host keep one node ID.
func NodeIDFromHostname() (uint32, error) {
	name, err := os.Hostname()
	if err != nil {
		return 0, fmt.Errorf("export: no node id given and the host name is unreadable: %w", err)
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	if id := h.Sum32(); id != 0 {
		return id, nil
	}
	return 1, nil
}

// NodeID is the node ID the exporter puts in its reports; with
// Options.Nodes, the first node's.
func (x *Exporter) NodeID() uint32 { return x.nodes[0].id }

// NodeIDs lists the node IDs the exporter reports as, in Options.Nodes
// order. The slice is the caller's.
func (x *Exporter) NodeIDs() []uint32 {
	ids := make([]uint32, len(x.nodes))
	for i, n := range x.nodes {
		ids[i] = n.id
	}
	return ids
}

// Run reads events from src until ctx is done or src fails, sending
// reports as batches fill or age. On return everything read has been
// flushed. It returns nil when ctx ended it.
func (x *Exporter) Run(ctx context.Context, src Source) error {
	var ev monitor.Event
	reasons := src.DropReasons()
	if lc, ok := src.(lossCounter); ok {
		x.losses.Store(&lc)
	}
	for {
		deadline := time.Now().Add(x.opts.FlushInterval)
		if t, ok := x.oldest(); ok && t.Add(x.opts.FlushInterval).Before(deadline) {
			deadline = t.Add(x.opts.FlushInterval)
		}
		// The ring buffer's poll takes its timeout in whole milliseconds,
		// rounded down: without the extra millisecond it returns just
		// before the batch is due, and the loop then spins with a zero
		// timeout until it is (about 1 ms of busy CPU per flush, 5% of a
		// core at a flush every 20 ms).
		deadline = deadline.Add(time.Millisecond)
		err := src.ReadEvent(&ev, deadline)
		switch {
		case err == nil:
			x.events.Add(1)
			x.add(&ev, reasons)
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			x.flushAll()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("export: reading monitor events: %w", err)
		}
		now := time.Now()
		x.flushAged(now)
		if ctx.Err() != nil {
			x.drain(src, reasons)
			x.flushAll()
			return nil
		}
	}
}

// drain reads what is already in the ring, without waiting, so events
// that happened before shutdown are not lost.
func (x *Exporter) drain(src Source, reasons *monitor.DropReasons) {
	var ev monitor.Event
	for i := 0; i < 1<<16; i++ {
		if err := src.ReadEvent(&ev, time.Now()); err != nil {
			return
		}
		x.events.Add(1)
		x.add(&ev, reasons)
	}
}

func (x *Exporter) oldest() (time.Time, bool) {
	var t time.Time
	for _, n := range x.nodes {
		for _, b := range []*batch{&n.host, &n.router} {
			if len(b.evs) > 0 && (t.IsZero() || b.first.Before(t)) {
				t = b.first
			}
		}
	}
	return t, !t.IsZero()
}

func (x *Exporter) flushAged(now time.Time) {
	for _, n := range x.nodes {
		if len(n.host.evs) > 0 && now.Sub(n.host.first) >= x.opts.FlushInterval {
			x.flushHost(n)
		}
		if len(n.router.evs) > 0 && now.Sub(n.router.first) >= x.opts.FlushInterval {
			x.flushRouter(n)
		}
	}
}

func (x *Exporter) flushAll() {
	for _, n := range x.nodes {
		x.flushHost(n)
		x.flushRouter(n)
	}
}

// reportBound is the most bytes one individual report can take besides
// its inner packet: header 12, baseline 32, host metadata 68.
const reportBound = 12 + 32 + 68

func (x *Exporter) add(ev *monitor.Event, reasons *monitor.DropReasons) {
	n := x.nodes[0]
	if x.byNetns != nil {
		var ok bool
		if n, ok = x.byNetns[ev.Netns]; !ok {
			x.unattributed.Add(1)
			return
		}
	}
	b, flush := &n.host, x.flushHost
	if ev.Router {
		b, flush = &n.router, x.flushRouter
	}
	k := len(b.evs)
	if k > 0 && (k == maxBatch || b.size+reportBound+monitor.HeaderMax > x.opts.MaxPayload) {
		flush(n)
		k = 0
	}
	if k == 0 {
		b.first = time.Now()
		b.size = 8
	}
	b.evs = b.evs[:k+1]
	he := &b.evs[k]
	Convert(ev, reasons, he, b.hdrs[k][:0])
	if ev.Router {
		n.inIf[k] = ev.InIfIndex
	}
	b.size += reportBound + (len(he.Inner)+3)&^3
}

func (x *Exporter) flushHost(n *node) {
	if len(n.host.evs) == 0 {
		return
	}
	out, err := decode.AppendHostReport(x.buf[:0], n.id, x.opts.HwID, n.seq, n.host.evs)
	if err != nil {
		// One bad event must not cost the others their report: send them
		// one by one and count what cannot be encoded.
		for i := range n.host.evs {
			one, err := decode.AppendHostReport(x.buf[:0], n.id, x.opts.HwID, n.seq, n.host.evs[i:i+1])
			if err != nil {
				x.encErrs.Add(1)
				continue
			}
			x.send(n, one, 1)
		}
	} else {
		x.send(n, out, len(n.host.evs))
	}
	n.host.evs = n.host.evs[:0]
}

// flushRouter sends the router's egress-queue events as standard INT
// reports: baseline metadata only, no bufscope extension.
func (x *Exporter) flushRouter(n *node) {
	if len(n.router.evs) == 0 {
		return
	}
	t := decode.TelemetryReportV2{Version: 2, HwID: x.opts.HwID, Seq: n.seq, NodeID: n.id}
	t.Reports = make([]decode.ReportV2, len(n.router.evs))
	for i := range n.router.evs {
		switchReport(&n.router.evs[i], n.inIf[i], &t.Reports[i])
	}
	if err := x.sbuf.Clear(); err == nil {
		err = t.SerializeTo(x.sbuf, gopacket.SerializeOptions{FixLengths: true})
		if err != nil {
			x.encErrs.Add(uint64(len(n.router.evs)))
		} else {
			x.send(n, x.sbuf.Bytes(), len(n.router.evs))
		}
	}
	n.router.evs = n.router.evs[:0]
}

func (x *Exporter) send(n *node, p []byte, reports int) {
	n.seq = (n.seq + 1) & 0x3FFFFF
	_, err := n.conn.Write(p)
	if errors.Is(err, syscall.ECONNREFUSED) {
		// The ICMP port-unreachable of an earlier datagram, reported on
		// this send, which did not happen. Collectors that capture with
		// AF_PACKET (bufscope record) have no socket on the port, so
		// every datagram draws one: send again rather than lose it.
		_, err = n.conn.Write(p)
	}
	if err != nil {
		x.sendErrs.Add(1)
		return
	}
	x.packets.Add(1)
	x.reports.Add(uint64(reports))
	x.bytes.Add(uint64(len(p)))
}

// Counters returns the exporter's counters so far.
func (x *Exporter) Counters() Counters {
	c := Counters{
		Events: x.events.Load(), Reports: x.reports.Load(), Packets: x.packets.Load(),
		Bytes: x.bytes.Load(), SendErrors: x.sendErrs.Load(), EncodeErrors: x.encErrs.Load(),
		Unattributed: x.unattributed.Load(),
	}
	if lc := x.losses.Load(); lc != nil {
		if st, err := (*lc).Stats(); err == nil {
			c.RingLost = st.Lost
		}
	}
	return c
}

// Close closes the sockets. Call it after Run has returned.
func (x *Exporter) Close() error {
	var err error
	x.closeOnce.Do(func() { err = x.closeConns() })
	return err
}

func (x *Exporter) closeConns() error {
	var errs []error
	for _, c := range x.conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
