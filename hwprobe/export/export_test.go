package export_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe/export"
	"github.com/bufscope/bufscope/hwprobe/monitor"
	"github.com/bufscope/bufscope/hwprobe/monitor/montest"
	"github.com/gopacket/gopacket"
)

// collector is a UDP socket in the test's own namespace that keeps every
// datagram it receives.
type collector struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts [][]byte
	done chan struct{}
}

func newCollector(t *testing.T) *collector {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadBuffer(8 << 20)
	c := &collector{conn: conn, done: make(chan struct{})}
	t.Cleanup(func() { conn.Close(); <-c.done })
	go func() {
		defer close(c.done)
		buf := make([]byte, 65536)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.pkts = append(c.pkts, append([]byte(nil), buf[:n]...))
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) packets() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pkts
}

func loadMonitor(t *testing.T, ns ...monitor.Netns) *monitor.Monitor {
	m, err := monitor.Load(monitor.Options{Netns: ns})
	if errors.Is(err, monitor.ErrNotSupported) {
		t.Skipf("buffer monitors not supported here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func inode(t *testing.T, ns string) uint32 {
	ino, err := monitor.NetnsInode(montest.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// push sends n bytes from a client in cns to a reader at sip in sns and
// returns the client's and server's ports.
func push(t *testing.T, cns, sns, sip string, n int) (cport, sport uint16) {
	ln := montest.Listen(t, sns, sip)
	got := montest.Sink(t, ln, 0)
	c := montest.Dial(t, cns, ln.Addr(), montest.DialOptions{})
	montest.Push(t, c, n, time.Now().Add(30*time.Second))
	c.CloseWrite()
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("server did not finish reading")
	}
	return uint16(c.LocalAddr().(*net.TCPAddr).Port), uint16(ln.Addr().(*net.TCPAddr).Port)
}

// runExporter runs x on m until stop is called, which returns Run's error.
func runExporter(t *testing.T, x *export.Exporter, m *monitor.Monitor) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- x.Run(ctx, m) }()
	return func() error {
		time.Sleep(100 * time.Millisecond)
		cancel()
		return <-errc
	}
}

func innerPorts(inner []byte) (uint16, uint16, bool) {
	if len(inner) < 40 || inner[0]>>4 != 4 || inner[9] != 6 {
		return 0, 0, false
	}
	ihl := int(inner[0]&0x0f) * 4
	return binary.BigEndian.Uint16(inner[ihl:]), binary.BigEndian.Uint16(inner[ihl+2:]), true
}

func TestExporterSendsDecodableHostReports(t *testing.T) {
	montest.RequireRoot(t)
	p := montest.NewPair(t)
	montest.Tc(t, p.Client.NS, "qdisc", "add", "dev", p.Client.Dev, "root", "handle", "1:", "tbf", "rate", "10mbit", "burst", "5k", "latency", "200ms")
	montest.Tc(t, p.Client.NS, "qdisc", "add", "dev", p.Client.Dev, "parent", "1:1", "handle", "10:", "bfifo", "limit", "3000")
	col := newCollector(t)
	m := loadMonitor(t, monitor.Netns{Inode: inode(t, p.Client.NS)})
	x, err := export.New(export.Options{Collector: col.conn.LocalAddr().String(), NodeID: 0xB5C0FFEE, HwID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	stop := runExporter(t, x, m)
	cport, sport := push(t, p.Client.NS, p.Server.NS, p.Server.IP, 256<<10)
	if err := stop(); err != nil {
		t.Fatalf("exporter: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	cnt := x.Counters()
	pkts := col.packets()
	if len(pkts) == 0 || uint64(len(pkts)) != cnt.Packets {
		t.Fatalf("collector got %d packets, exporter counted %d (%+v)", len(pkts), cnt.Packets, cnt)
	}
	if cnt.Events != cnt.Reports || cnt.SendErrors != 0 || cnt.EncodeErrors != 0 || cnt.RingLost != 0 {
		t.Errorf("counters %+v: every event must become one report", cnt)
	}

	var tr decode.TelemetryReportV2
	var drops, queuing, reports int
	for i, pkt := range pkts {
		if len(pkt) > 1400 {
			t.Errorf("packet %d is %d bytes, over the 1400-byte budget", i, len(pkt))
		}
		if err := tr.DecodeFromBytes(pkt, gopacket.NilDecodeFeedback); err != nil {
			t.Fatalf("packet %d does not decode: %v", i, err)
		}
		if tr.NodeID != 0xB5C0FFEE || tr.HwID != 1 || tr.Seq != uint32(i) {
			t.Errorf("packet %d: node %#x hw %d seq %d, want node 0xb5c0ffee hw 1 seq %d", i, tr.NodeID, tr.HwID, tr.Seq, i)
		}
		for _, r := range tr.Reports {
			reports++
			if r.Reason != "" || r.DomainID != decode.HostDomainID {
				t.Errorf("packet %d: report not understood (%q, domain %#x)", i, r.Reason, r.DomainID)
				continue
			}
			sp, dp, ok := innerPorts(r.Inner)
			switch {
			case r.Host.Buffer == decode.BufferQdisc && r.Host.Event == decode.EventDrop:
				drops++
				if !r.D || r.Host.DropName() != "QDISC_DROP" || !ok || sp != cport || dp != sport {
					t.Errorf("drop report D=%v name %q flow %d->%d, want D QDISC_DROP %d->%d", r.D, r.Host.DropName(), sp, dp, cport, sport)
				}
			case r.Host.Buffer == decode.BufferQdisc && r.Host.Event == decode.EventQueuing:
				queuing++
				if !r.Q || !ok || sp != cport || dp != sport || r.Baseline.HopLatency == 0 {
					t.Errorf("queuing report Q=%v flow %d->%d latency %d", r.Q, sp, dp, r.Baseline.HopLatency)
				}
			}
		}
	}
	if uint64(reports) != cnt.Reports {
		t.Errorf("decoded %d reports, exporter counted %d", reports, cnt.Reports)
	}
	if drops == 0 || queuing == 0 {
		t.Errorf("%d qdisc drop and %d qdisc queuing reports, want both", drops, queuing)
	}
	if len(pkts) >= reports && reports > 4 {
		t.Errorf("%d packets for %d reports: reports are not batched", len(pkts), reports)
	}
	t.Logf("%d reports in %d packets (%d bytes): %d drops, %d queuing", reports, len(pkts), cnt.Bytes, drops, queuing)
}

func TestExporterRouterReportsAreStandardINT(t *testing.T) {
	montest.RequireRoot(t)
	c := montest.NewChain(t)
	montest.Tc(t, c.Router.NS, "qdisc", "add", "dev", c.Router.Dev, "root", "tbf", "rate", "10mbit", "burst", "5k", "latency", "200ms")
	col := newCollector(t)
	m := loadMonitor(t, monitor.Netns{Inode: inode(t, c.Router.NS), Router: true})
	x, err := export.New(export.Options{Collector: col.conn.LocalAddr().String(), NodeID: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	stop := runExporter(t, x, m)
	cport, sport := push(t, c.Client.NS, c.Server.NS, c.Server.IP, 512<<10)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	in := montest.Ifindex(t, c.Router.NS, c.Router.Peer)
	out := montest.Ifindex(t, c.Router.NS, c.Router.Dev)
	var tr decode.TelemetryReportV2
	n := 0
	for _, pkt := range col.packets() {
		if err := tr.DecodeFromBytes(pkt, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		for _, r := range tr.Reports {
			n++
			if r.Reason != "" || r.DomainID != 0 || r.DSMdBits != 0 {
				t.Errorf("router report carries domain %#x bits %#x (%q), want baseline only", r.DomainID, r.DSMdBits, r.Reason)
			}
			b := r.Baseline
			if int(b.IngressPort) != in || int(b.EgressPort) != out || r.RepMdBits&decode.RepMdQueueOcc == 0 {
				t.Errorf("router report ports %d->%d bits %#x, want %d->%d with queue occupancy", b.IngressPort, b.EgressPort, r.RepMdBits, in, out)
			}
			if sp, dp, ok := innerPorts(r.Inner); !ok || sp != cport || dp != sport {
				t.Errorf("router report inner flow %d->%d, want %d->%d", sp, dp, cport, sport)
			}
		}
	}
	if n == 0 {
		t.Fatal("no report from the shaped router egress")
	}
}
