package export

import (
	"context"
	"encoding/binary"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bufscope/bufscope/hwprobe/monitor"
)

// udpSink is a loopback UDP socket a test reads datagrams from.
func udpSink(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialSink(t *testing.T, s *net.UDPConn) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", s.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// groupHeaders reads n datagrams from s and returns the node ID and
// sequence number of each group header (docs/wire-format.md §3).
func groupHeaders(t *testing.T, s *net.UDPConn, n int) (ids, seqs []uint32) {
	t.Helper()
	buf := make([]byte, 65536)
	for i := 0; i < n; i++ {
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := s.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i+1, n, err)
		}
		if k < 8 {
			t.Fatalf("datagram of %d bytes", k)
		}
		seqs = append(seqs, binary.BigEndian.Uint32(buf[0:])&0x3FFFFF)
		ids = append(ids, binary.BigEndian.Uint32(buf[4:]))
	}
	return ids, seqs
}

// TestExporterNodesByNetns: one exporter serving three namespaces sends
// each event under its namespace's node ID, on that node's socket, with
// sequence numbers counted per node, and drops (and counts) events of a
// namespace it does not serve.
func TestExporterNodesByNetns(t *testing.T) {
	sinks := []*net.UDPConn{udpSink(t), udpSink(t), udpSink(t)}
	x, err := New(Options{Nodes: []Node{
		{Netns: 11, NodeID: 101, Conn: dialSink(t, sinks[0])},
		{Netns: 22, NodeID: 102, Conn: dialSink(t, sinks[1])},
		{Netns: 33, NodeID: 2001, Conn: dialSink(t, sinks[2])},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ev := qdiscEvent()
	send := func(netns uint32, router bool) {
		ev.Netns, ev.Router = netns, router
		x.add(&ev, nil)
	}
	// Two packets for node 101, one for 102, one router packet for 2001.
	send(11, false)
	x.flushAll()
	send(11, false)
	send(22, false)
	send(33, true)
	send(44, false) // not served
	x.flushAll()

	for i, want := range []struct {
		ids, seqs []uint32
	}{{[]uint32{101, 101}, []uint32{0, 1}}, {[]uint32{102}, []uint32{0}}, {[]uint32{2001}, []uint32{0}}} {
		ids, seqs := groupHeaders(t, sinks[i], len(want.ids))
		for k := range ids {
			if ids[k] != want.ids[k] || seqs[k] != want.seqs[k] {
				t.Errorf("socket %d datagram %d: node %d seq %d, want node %d seq %d", i, k, ids[k], seqs[k], want.ids[k], want.seqs[k])
			}
		}
	}
	c := x.Counters()
	if c.Unattributed != 1 || c.Reports != 4 || c.Packets != 4 {
		t.Errorf("counters %+v: want 4 reports in 4 packets and 1 unattributed event", c)
	}
	if got := x.NodeIDs(); len(got) != 3 || got[0] != 101 || got[2] != 2001 {
		t.Errorf("NodeIDs %v", got)
	}
}

// TestExporterNodesShareDialledSocket: nodes without a Conn share one
// socket dialled to Collector, each still under its own node ID.
func TestExporterNodesShareDialledSocket(t *testing.T) {
	s := udpSink(t)
	x, err := New(Options{Collector: s.LocalAddr().String(), Nodes: []Node{{Netns: 1, NodeID: 7}, {Netns: 2, NodeID: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if len(x.conns) != 1 {
		t.Errorf("%d sockets opened, want one shared", len(x.conns))
	}
	ev := qdiscEvent()
	ev.Netns = 2
	x.add(&ev, nil)
	x.flushAll()
	ev.Netns = 1
	x.add(&ev, nil)
	x.flushAll()
	ids, _ := groupHeaders(t, s, 2)
	if ids[0] != 8 || ids[1] != 7 {
		t.Errorf("node IDs %v, want [8 7]", ids)
	}
}

func TestExporterNodesRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nodes []Node
		want  string
	}{
		{"node id 0", []Node{{Netns: 1, NodeID: 5}, {Netns: 2}}, "node id 0"},
		{"netns twice", []Node{{Netns: 1, NodeID: 5}, {Netns: 1, NodeID: 6}}, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := udpSink(t)
			conn := dialSink(t, s)
			_, err := New(Options{Collector: s.LocalAddr().String(), Nodes: append([]Node{{Netns: 99, NodeID: 1, Conn: conn}}, tc.nodes...)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error about %q", err, tc.want)
			}
			// The refused exporter closed the socket it was given.
			if _, werr := conn.Write([]byte{0}); werr == nil {
				t.Errorf("the caller's socket is still open after New failed")
			}
		})
	}
}

// TestExporterNodesPathAllocs pins that finding an event's node costs no
// allocation.
func TestExporterNodesPathAllocs(t *testing.T) {
	s := udpSink(t)
	x, err := New(Options{Collector: s.LocalAddr().String(), Nodes: []Node{{Netns: 1, NodeID: 7}, {Netns: 2, NodeID: 8}}})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ev := qdiscEvent()
	n := testing.AllocsPerRun(200, func() {
		for i := 0; i < 8; i++ {
			ev.Netns = uint32(1 + i%2)
			x.add(&ev, nil)
		}
		x.flushHost(x.nodes[0])
		x.flushHost(x.nodes[1])
	})
	if n != 0 {
		t.Errorf("batching 8 reports for two nodes allocates %v times", n)
	}
}

// msPollSource is a Source that waits the way the ring buffer's epoll does:
// in whole milliseconds, rounded down. It hands out one event every
// `every` and counts the calls.
type msPollSource struct {
	every time.Duration
	next  time.Time
	calls int
}

func (s *msPollSource) DropReasons() *monitor.DropReasons { return nil }

func (s *msPollSource) ReadEvent(ev *monitor.Event, deadline time.Time) error {
	s.calls++
	now := time.Now()
	if !now.Before(s.next) {
		s.next = now.Add(s.every)
		*ev = qdiscEvent()
		return nil
	}
	// An event wakes the poll when it comes; the deadline only to the
	// millisecond below.
	if s.next.Before(deadline) {
		time.Sleep(time.Until(s.next))
	} else if wait := time.Until(deadline).Truncate(time.Millisecond); wait > 0 {
		time.Sleep(wait)
	}
	if !time.Now().Before(s.next) {
		s.next = time.Now().Add(s.every)
		*ev = qdiscEvent()
		return nil
	}
	return os.ErrDeadlineExceeded
}

// TestExporterDoesNotSpinBeforeFlush: with a poll that rounds its timeout
// down to whole milliseconds, the exporter must not spin with zero
// timeouts while a batch waits for its flush time. One event per 30 ms
// and a 20 ms flush interval need a handful of polls per event; the
// spinning loop this pins made thousands.
func TestExporterDoesNotSpinBeforeFlush(t *testing.T) {
	s := udpSink(t)
	x, err := New(Options{Collector: s.LocalAddr().String(), NodeID: 1, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	src := &msPollSource{every: 30 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	if err := x.Run(ctx, src); err != nil {
		t.Fatal(err)
	}
	c := x.Counters()
	// About 20 events, each normally flushed alone; on a loaded machine
	// the exporter can be scheduled late enough for two to share a packet,
	// which is not what this test is about.
	if c.Events < 10 || c.Packets == 0 || c.Packets > c.Events {
		t.Fatalf("%d events in %d packets: want about 20 events, flushed in at most as many packets", c.Events, c.Packets)
	}
	if perEvent := float64(src.calls) / float64(c.Events); perEvent > 10 {
		t.Errorf("%d polls for %d events (%.0f per event): the loop spins until the flush is due", src.calls, c.Events, perEvent)
	}
}
