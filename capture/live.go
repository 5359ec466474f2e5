//go:build linux

package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/afpacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

// Ring geometry for TPACKET_V3. 64 KiB frames hold the largest packet the
// kernel filter lets through whole; 1 MiB blocks batch many small packets
// per wakeup; a 10 ms block timeout bounds how long a packet waits in a
// half-full block, which is also how late a stop request sees it.
const (
	liveFrameSize    = 64 << 10
	liveBlockSize    = 1 << 20
	liveNumBlocks    = 32
	liveBlockTimeout = 10 * time.Millisecond
	// livePollTimeout is how often an idle reader looks at its context.
	livePollTimeout = 20 * time.Millisecond
	// liveDrainTime bounds how long a stopping capture keeps reading
	// packets the kernel already accepted: two block timeouts plus a poll.
	liveDrainTime = 2*liveBlockTimeout + livePollTimeout
)

// DefaultSnapLen keeps every header bufscope reads and drops payload:
// Ethernet (14) + 802.1Q (4) + IPv6 (40) + TCP with the full 40 bytes of
// options, which hold the 28-byte request tag (60) is 118 bytes; 192 also
// fits one level of VXLAN/Geneve encapsulation (50) and rounds up to three
// cache lines. Telemetry reports are kept whole by LiveOptions.KeepWhole,
// so this limit never cuts one.
const DefaultSnapLen = 192

// ErrNotPermitted wraps the error of opening a packet socket without
// CAP_NET_RAW.
var ErrNotPermitted = errors.New("live capture needs root or CAP_NET_RAW")

// LiveOptions configures OpenLive. Zero values pick the defaults noted.
type LiveOptions struct {
	// Interfaces are OS interface names, captured at the same time.
	Interfaces []string
	// Filter is a pcap-filter expression (as for tcpdump); "" captures
	// everything. It is compiled with tcpdump (see ErrNoFilterCompiler).
	Filter string
	// SnapLen is how many bytes of each packet are kept; 0 means
	// DefaultSnapLen and a negative value keeps whole packets.
	SnapLen int
	// KeepWhole is a pcap-filter expression for packets that are never
	// truncated, typically the telemetry reports ("udp dst port 32766").
	KeepWhole string
	// Hostname prefixes capture-point names ("host/eth0"); "" means
	// os.Hostname.
	Hostname string
	// TCPDump is the path of the tcpdump binary; "" looks it up in PATH.
	TCPDump string
}

// Live captures from one or more interfaces through AF_PACKET TPACKET_V3
// rings. Its methods are safe for concurrent use, except that Record may
// run only once and Close must not race with Record.
type Live struct {
	opts    LiveOptions
	snap    int
	handles []*liveHandle

	closedDrops uint64 // drops counted before Close released the rings

	packets atomic.Uint64 // packets handed to the sink
	bytes   atomic.Uint64 // captured bytes handed to the sink
	wire    atomic.Uint64 // original lengths of those packets
}

type liveHandle struct {
	name    string // OS interface name
	ifindex int
	link    layers.LinkType
	tp      *afpacket.TPacket
	drops   atomic.Uint64
}

// OpenLive opens one ring per interface, attaches the combined filter and
// snap-length program to each, and returns a capture that has not started
// delivering packets yet (the kernel already queues them).
func OpenLive(opts LiveOptions) (*Live, error) {
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("no interface to capture from")
	}
	if opts.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("hostname for capture-point names: %w", err)
		}
		opts.Hostname = h
	}
	l := &Live{opts: opts, snap: opts.SnapLen}
	if l.snap == 0 {
		l.snap = DefaultSnapLen
	}
	if l.snap < 0 || l.snap > maxKeep {
		l.snap = maxKeep
	}
	seen := map[string]bool{}
	for _, name := range opts.Interfaces {
		if seen[name] {
			return nil, fmt.Errorf("interface %s given twice", name)
		}
		seen[name] = true
		h, err := l.open(name)
		if err != nil {
			l.Close()
			return nil, err
		}
		l.handles = append(l.handles, h)
	}
	return l, nil
}

func (l *Live) open(name string) (*liveHandle, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	lt, err := linkTypeOf(name)
	if err != nil {
		return nil, err
	}
	dlt := "EN10MB"
	if lt == layers.LinkTypeRaw {
		dlt = "RAW"
	}
	var filter, keep []bpf.RawInstruction
	if l.opts.Filter != "" {
		if filter, err = compileExpr(l.opts.TCPDump, name, dlt, l.opts.Filter); err != nil {
			return nil, err
		}
	}
	if l.opts.KeepWhole != "" && l.snap < maxKeep {
		if keep, err = compileExpr(l.opts.TCPDump, name, dlt, l.opts.KeepWhole); err != nil {
			return nil, err
		}
	}
	prog, err := snapProgram(filter, keep, l.snap)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(name),
		afpacket.TPacketVersion3,
		afpacket.OptFrameSize(liveFrameSize),
		afpacket.OptBlockSize(liveBlockSize),
		afpacket.OptNumBlocks(liveNumBlocks),
		afpacket.OptBlockTimeout(liveBlockTimeout),
		afpacket.OptPollTimeout(livePollTimeout),
	)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("interface %s: %w: %w", name, ErrNotPermitted, err)
		}
		return nil, fmt.Errorf("interface %s: opening AF_PACKET ring: %w", name, err)
	}
	// The ring starts filling as soon as the socket is bound, before any
	// filter is attached, so it may already hold packets the filter would
	// reject (on a fresh veth: IPv6 neighbour discovery). As libpcap does,
	// attach a filter that rejects everything, discard what arrived
	// unfiltered, then attach the real program.
	if err := tp.SetBPF([]bpf.RawInstruction{{Op: opRetK, K: 0}}); err != nil {
		tp.Close()
		return nil, fmt.Errorf("interface %s: attaching capture filter: %w", name, err)
	}
	if err := drainRing(tp); err != nil {
		tp.Close()
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	if err := tp.SetBPF(prog); err != nil {
		tp.Close()
		return nil, fmt.Errorf("interface %s: attaching capture filter: %w", name, err)
	}
	return &liveHandle{name: name, ifindex: ifc.Index, tp: tp, link: lt}, nil
}

// drainRing discards every packet in the ring. It returns when a poll finds
// nothing (one poll timeout after the last block retired), or gives up
// after a second of continuous packets, which can only happen if the
// reject-all filter did not take.
func drainRing(tp *afpacket.TPacket) error {
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		_, _, err := tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("draining packets received before the filter: %w", err)
		}
	}
	return errors.New("packets kept arriving through a reject-all filter")
}

// linkTypeOf maps the interface's ARPHRD type to a pcap link type.
func linkTypeOf(name string) (layers.LinkType, error) {
	b, err := os.ReadFile("/sys/class/net/" + name + "/type")
	if err != nil {
		return 0, fmt.Errorf("interface %s: reading its link type: %w", name, err)
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("interface %s: link type %q: %w", name, b, err)
	}
	switch t {
	case 1, 772: // ARPHRD_ETHER; ARPHRD_LOOPBACK delivers Ethernet headers
		return layers.LinkTypeEthernet, nil
	case 65534: // ARPHRD_NONE: tun and WireGuard devices carry bare IP
		return layers.LinkTypeRaw, nil
	}
	return 0, fmt.Errorf("interface %s: link type ARPHRD %d is not supported (Ethernet, loopback and bare-IP devices are)", name, t)
}

// Interfaces describes the capture points in the order Record numbers them
// in CaptureInfo.InterfaceIndex; pass it to WriterOptions.Interfaces.
func (l *Live) Interfaces() []Interface {
	out := make([]Interface, len(l.handles))
	for i, h := range l.handles {
		out[i] = Interface{
			Name:        l.opts.Hostname + "/" + h.name,
			Description: fmt.Sprintf("%s on %s (ifindex %d)", h.name, l.opts.Hostname, h.ifindex),
			LinkType:    h.link,
			// Packets matching KeepWhole may be longer than the snap length.
			SnapLen: maxKeep,
		}
	}
	return out
}

// Topology is the JSON document written into the trace so that the
// analyzer can name capture points and match addresses to hosts offline.
type Topology struct {
	Hostname   string              `json:"hostname"`
	Started    time.Time           `json:"started"`
	Filter     string              `json:"filter,omitempty"`
	KeepWhole  string              `json:"keep_whole,omitempty"`
	SnapLen    int                 `json:"snaplen"`
	Interfaces []TopologyInterface `json:"interfaces"`
}

// TopologyInterface is one capture point in a Topology.
type TopologyInterface struct {
	Point     string   `json:"point"` // pcapng interface name, "host/iface"
	Name      string   `json:"name"`
	Index     int      `json:"ifindex"`
	MAC       string   `json:"mac,omitempty"`
	MTU       int      `json:"mtu"`
	Addresses []string `json:"addresses"` // CIDR notation
}

// Topology returns the capture's topology as JSON.
func (l *Live) Topology() ([]byte, error) {
	t := Topology{
		Hostname:  l.opts.Hostname,
		Started:   time.Now().UTC(),
		Filter:    l.opts.Filter,
		KeepWhole: l.opts.KeepWhole,
		SnapLen:   l.snap,
	}
	for _, h := range l.handles {
		ifc, err := net.InterfaceByName(h.name)
		if err != nil {
			return nil, fmt.Errorf("topology: interface %s: %w", h.name, err)
		}
		ti := TopologyInterface{
			Point: l.opts.Hostname + "/" + h.name, Name: h.name, Index: ifc.Index,
			MAC: ifc.HardwareAddr.String(), MTU: ifc.MTU, Addresses: []string{},
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("topology: addresses of %s: %w", h.name, err)
		}
		for _, a := range addrs {
			ti.Addresses = append(ti.Addresses, a.String())
		}
		t.Interfaces = append(t.Interfaces, ti)
	}
	return json.Marshal(t)
}

// Sink receives captured packets. Live calls WritePacket from one
// goroutine at a time; data is only valid during the call and must be
// copied if kept.
type Sink interface {
	WritePacket(ci gopacket.CaptureInfo, data []byte) error
}

// RecordLimits stop a recording by themselves; zero values mean no limit.
type RecordLimits struct {
	Count    uint64        // stop after this many packets
	Duration time.Duration // stop after this long
}

// LiveStats are counters of a running or finished capture.
type LiveStats struct {
	Packets   uint64 // packets written to the sink
	Bytes     uint64 // captured bytes written to the sink
	WireBytes uint64 // original lengths of those packets
	Drops     uint64 // packets the kernel dropped because a ring was full
}

// Stats returns the counters so far. Safe to call while Record runs (a
// status line does); it reads the kernel's drop counters, which clears them
// in the kernel, so Live accumulates them.
func (l *Live) Stats() LiveStats {
	s := LiveStats{Packets: l.packets.Load(), Bytes: l.bytes.Load(), WireBytes: l.wire.Load(), Drops: l.closedDrops}
	for _, h := range l.handles {
		if _, v3, err := h.tp.SocketStats(); err == nil {
			// SocketStats already accumulates across calls.
			h.drops.Store(uint64(v3.Drops()))
		}
		s.Drops += h.drops.Load()
	}
	return s
}

// Record delivers packets from every interface to sink until ctx is done,
// a limit is reached, or an error occurs. When ctx is cancelled it keeps
// reading for a short drain period, so packets the kernel accepted before
// the stop request are not lost. A sink error stops the recording and is
// returned; reaching a limit or cancellation returns nil.
func (l *Live) Record(ctx context.Context, sink Sink, limits RecordLimits) error {
	if limits.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limits.Duration)
		defer cancel()
	}
	var (
		mu       sync.Mutex // serialises the sink and the count limit
		full     atomic.Bool
		firstErr error
		wg       sync.WaitGroup
	)
	stopAll, stop := context.WithCancel(context.Background())
	defer stop()
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		stop()
	}
	for idx, h := range l.handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var drainUntil time.Time
			for {
				if stopAll.Err() != nil || full.Load() {
					return
				}
				if drainUntil.IsZero() && ctx.Err() != nil {
					drainUntil = time.Now().Add(liveDrainTime)
				}
				if !drainUntil.IsZero() && time.Now().After(drainUntil) {
					return
				}
				data, ci, err := h.tp.ZeroCopyReadPacketData()
				if errors.Is(err, afpacket.ErrTimeout) {
					if !drainUntil.IsZero() {
						return // ring is empty: the drain is done
					}
					continue
				}
				if err != nil {
					fail(fmt.Errorf("interface %s: reading from ring: %w", h.name, err))
					return
				}
				ci.InterfaceIndex = idx
				mu.Lock()
				if limits.Count > 0 && l.packets.Load() >= limits.Count {
					mu.Unlock()
					full.Store(true)
					return
				}
				err = sink.WritePacket(ci, data)
				if err == nil {
					l.packets.Add(1)
					l.bytes.Add(uint64(ci.CaptureLength))
					l.wire.Add(uint64(ci.Length))
					if limits.Count > 0 && l.packets.Load() >= limits.Count {
						full.Store(true)
					}
				}
				mu.Unlock()
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// Close releases every ring; Stats still reports the final counters. It
// must not be called while Record runs.
func (l *Live) Close() error {
	l.closedDrops = l.Stats().Drops
	for _, h := range l.handles {
		h.tp.Close()
	}
	l.handles = nil
	return nil
}
