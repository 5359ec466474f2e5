//go:build linux

package hwprobe_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe"
	"github.com/bufscope/bufscope/hwprobe/monitor/montest"
)

func TestDeployRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		opts hwprobe.DeployOptions
		flag string
	}{
		{"p4 target", hwprobe.DeployOptions{Target: "tofino", Collector: "127.0.0.1"}, "--target"},
		// Namespace lists are checked before anything is loaded.
		{"netns and nodes", hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1", Netns: "a",
			Nodes: []hwprobe.DeployNode{{Netns: "b", NodeID: 2}}}, "--netns"},
		{"nodes without node id", hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1",
			Nodes: []hwprobe.DeployNode{{Netns: "a", NodeID: 1}, {Netns: "b"}}}, "--netns"},
		{"nodes with one node id", hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1",
			Nodes: []hwprobe.DeployNode{{Netns: "a", NodeID: 1}, {Netns: "b", NodeID: 1}}}, "--netns"},
		{"router flag with nodes", hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1", Router: true,
			Nodes: []hwprobe.DeployNode{{Netns: "a", NodeID: 1}, {Netns: "b", NodeID: 2}}}, "--router"},
	}
	if os.Geteuid() == 0 {
		// These are checked after the root check.
		cases = append(cases,
			struct {
				name string
				opts hwprobe.DeployOptions
				flag string
			}{"no collector", hwprobe.DeployOptions{Target: "linux"}, "--collector"},
			struct {
				name string
				opts hwprobe.DeployOptions
				flag string
			}{"missing netns", hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1", Netns: "bst-does-not-exist"}, "--netns"},
			struct {
				name string
				opts hwprobe.DeployOptions
				flag string
			}{"router without netns", hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1", Router: true}, "--router"},
			struct {
				name string
				opts hwprobe.DeployOptions
				flag string
			}{"netns path not a netns", hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1", Netns: "/etc/hostname"}, "--netns"},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := hwprobe.Deploy(c.opts)
			if err == nil {
				d.Close()
				t.Fatal("deployed with a bad option")
			}
			var fe *hwprobe.FlagError
			if !errors.As(err, &fe) || fe.Flag != c.flag || !strings.HasPrefix(err.Error(), c.flag) {
				t.Errorf("error %q, want a FlagError for %s", err, c.flag)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestDeployRefusesWithoutRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root: the refusal path is for unprivileged users")
	}
	_, err := hwprobe.Deploy(hwprobe.DeployOptions{Target: "linux", Collector: "127.0.0.1"})
	if !errors.Is(err, ebpf.ErrNotSupported) || !strings.Contains(err.Error(), "root") {
		t.Errorf("error %v, want one wrapping ErrNotSupported that names root", err)
	}
}

// cgroup2Root finds a cgroup v2 mount.
func cgroup2Root(t *testing.T) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no mountinfo: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if pf := strings.Fields(pre); len(pf) > 4 {
				return pf[4]
			}
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted: the tagger attaches to cgroup v2 only")
	return ""
}

func qdiscs(t *testing.T, ns string) string {
	args := []string{"qdisc", "show"}
	cmd := exec.Command("tc", args...)
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, "tc"}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tc qdisc show: %v\n%s", err, out)
	}
	return string(out)
}

// droppingShaper puts a 10 Mbit/s tbf in front of a 3000-byte bfifo on
// dev in ns: a bulk transfer through it queues and is tail-dropped.
func droppingShaper(t *testing.T, ns, dev string) {
	t.Helper()
	montest.Tc(t, ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf", "rate", "10mbit", "burst", "5k", "latency", "200ms")
	montest.Tc(t, ns, "qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", "bfifo", "limit", "3000")
}

// collectorIn opens a UDP collector socket on ip inside ns, closed when
// the test ends.
func collectorIn(t *testing.T, ns, ip string) *net.UDPConn {
	t.Helper()
	var col *net.UDPConn
	montest.In(t, ns, func() error {
		var err error
		col, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		return err
	})
	t.Cleanup(func() { col.Close() })
	return col
}

// runDuringTransfer runs d while a client in cns pushes n bytes to a sink
// at sip in sns, lets the exporter flush for 100 ms, then stops d and
// fails t if its run failed.
func runDuringTransfer(t *testing.T, d *hwprobe.Deployment, cns, sns, sip string, n int, limit time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	ln := montest.Listen(t, sns, sip)
	got := montest.Sink(t, ln, 0)
	c := montest.Dial(t, cns, ln.Addr(), montest.DialOptions{})
	montest.Push(t, c, n, time.Now().Add(limit))
	c.CloseWrite()
	<-got
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestDeployExportsAndLeavesNothingBehind(t *testing.T) {
	montest.RequireRoot(t)
	p := montest.NewPair(t)
	droppingShaper(t, p.Client.NS, p.Client.Dev)
	cg := filepath.Join(cgroup2Root(t), fmt.Sprintf("bst-deploy-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cg) })

	col, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	var mu sync.Mutex
	var pkts [][]byte
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := col.Read(buf)
			if err != nil {
				return
			}
			mu.Lock()
			pkts = append(pkts, append([]byte(nil), buf[:n]...))
			mu.Unlock()
		}
	}()

	qBefore := qdiscs(t, p.Client.NS) + qdiscs(t, "")
	d, err := hwprobe.Deploy(hwprobe.DeployOptions{
		Target: "linux", Netns: p.Client.NS, Cgroup: cg,
		Collector: col.LocalAddr().String(), NodeID: 42,
	})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("data plane not supported here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	progs := d.Programs()
	if len(progs) < 10 {
		t.Errorf("deployment holds %d programs, want the tagger and 9 monitors", len(progs))
	}
	var desc strings.Builder
	d.Describe(&desc)
	for _, want := range []string{"tagger\tcgroup " + cg, "tp_btf/qdisc_dequeue", "tp_btf/kfree_skb", "watching network namespace /var/run/netns/" + p.Client.NS, "node id 0x2a"} {
		if !strings.Contains(desc.String(), want) {
			t.Errorf("description lacks %q:\n%s", want, desc.String())
		}
	}
	runDuringTransfer(t, d, p.Client.NS, p.Server.NS, p.Server.IP, 128<<10, 20*time.Second)
	counters, err := d.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// Everything the deployment held is gone from the kernel. Tracing
	// programs are freed after an RCU grace period, so give the kernel a
	// moment before calling one a leak.
	for _, id := range progs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			prog, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			prog.Close()
			if time.Now().After(deadline) {
				t.Errorf("program %d still loaded 10 s after Close", id)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// No link in the kernel still points at one of our programs.
	ours := map[ebpf.ProgramID]bool{}
	for _, id := range progs {
		ours[id] = true
	}
	var it link.Iterator
	for it.Next() {
		if info, err := it.Link.Info(); err == nil && ours[info.Program] {
			t.Errorf("link %d (type %v) to program %d still attached after Close", info.ID, info.Type, info.Program)
		}
	}
	if err := it.Err(); err != nil {
		t.Errorf("iterating links: %v", err)
	}
	if _, err := os.Stat("/sys/fs/bpf/bufscope/tags"); err == nil {
		t.Errorf("tagger pin /sys/fs/bpf/bufscope/tags left behind")
	}
	if q := qdiscs(t, p.Client.NS) + qdiscs(t, ""); q != qBefore {
		t.Errorf("qdiscs changed:\nbefore\n%s\nafter\n%s", qBefore, q)
	}

	// And it did its job while it was there.
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if counters.Exporter.Packets == 0 || uint64(len(pkts)) != counters.Exporter.Packets {
		t.Fatalf("collector got %d packets, exporter sent %d", len(pkts), counters.Exporter.Packets)
	}
	var tr decode.TelemetryReportV2
	drops := 0
	for _, pkt := range pkts {
		if err := tr.DecodeFromBytes(pkt, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		if tr.NodeID != 42 {
			t.Errorf("node id %d, want 42", tr.NodeID)
		}
		for _, r := range tr.Reports {
			if r.Host.Event == decode.EventDrop && r.Host.DropName() == "QDISC_DROP" {
				drops++
			}
		}
	}
	if drops == 0 {
		t.Errorf("no QDISC_DROP report from a 3000-byte bfifo")
	}
	if counters.Tagger == nil || counters.Tagger.Sockets != 0 {
		t.Errorf("tagger counters %+v: the test's sockets are not in the cgroup, none may be tagged", counters.Tagger)
	}
}

func TestDeployCollectorInsideNetns(t *testing.T) {
	montest.RequireRoot(t)
	p := montest.NewPair(t)
	// The collector lives in the server namespace, reachable only from the
	// client namespace over the veth: the host namespace has no route.
	col := collectorIn(t, p.Server.NS, p.Server.IP)
	droppingShaper(t, p.Client.NS, p.Client.Dev)

	d, err := hwprobe.Deploy(hwprobe.DeployOptions{Target: "linux", Netns: p.Client.NS, CollectorInNetns: true, Collector: col.LocalAddr().String()})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("data plane not supported here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var desc strings.Builder
	d.Describe(&desc)
	if !strings.Contains(desc.String(), "from inside /var/run/netns/"+p.Client.NS) {
		t.Errorf("description does not say where the socket is:\n%s", desc.String())
	}
	runDuringTransfer(t, d, p.Client.NS, p.Server.NS, p.Server.IP, 128<<10, 20*time.Second)
	col.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65536)
	n, err := col.Read(buf)
	if err != nil {
		t.Fatalf("no report reached the collector inside the namespace: %v (counters %+v)", err, must(d.Counters()))
	}
	var tr decode.TelemetryReportV2
	if err := tr.DecodeFromBytes(buf[:n], gopacket.NilDecodeFeedback); err != nil || len(tr.Reports) == 0 {
		t.Fatalf("report does not decode: %v", err)
	}
}

func must[T any](v T, _ error) T { return v }

// TestDeployOneForSeveralNamespaces deploys once for a client and the
// router behind it: one program per hook, and the reports of each
// namespace arrive under its own node ID from a socket inside it (the
// client's retransmissions from the client's address, the router's
// switch-queue drops from the router's).
func TestDeployOneForSeveralNamespaces(t *testing.T) {
	montest.RequireRoot(t)
	c := montest.NewChain(t)
	col := collectorIn(t, c.Server.NS, c.Server.IP)
	droppingShaper(t, c.Router.NS, c.Router.Dev)

	const clientID, routerID = 101, 2001
	d, err := hwprobe.Deploy(hwprobe.DeployOptions{Target: "linux", CollectorInNetns: true, Collector: col.LocalAddr().String(),
		Nodes: []hwprobe.DeployNode{{Netns: c.Client.NS, NodeID: clientID}, {Netns: c.Router.NS, NodeID: routerID, Router: true}}})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("data plane not supported here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if n, want := len(d.Programs()), 9; n != want {
		t.Errorf("%d programs loaded for two namespaces, want one per hook (%d)", n, want)
	}
	var desc strings.Builder
	d.Describe(&desc)
	for _, want := range []string{c.Client.NS + " as node id 0x65", c.Router.NS + " as node id 0x7d1 (router"} {
		if !strings.Contains(desc.String(), want) {
			t.Errorf("description lacks %q:\n%s", want, desc.String())
		}
	}

	// The collector's reader runs during the traffic: the socket buffer
	// would not hold every report of a lossy transfer.
	type pkt struct {
		from netip.Addr
		node uint32
		tr   decode.TelemetryReportV2
	}
	pkts := make(chan pkt, 4096)
	go func() {
		defer close(pkts)
		buf := make([]byte, 65536)
		for {
			col.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, from, err := col.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var p pkt
			p.from = from.Addr()
			if err := p.tr.DecodeFromBytes(append([]byte(nil), buf[:n]...), gopacket.NilDecodeFeedback); err != nil {
				t.Errorf("report from %v does not decode: %v", from, err)
				continue
			}
			p.node = p.tr.NodeID
			pkts <- p
		}
	}()
	runDuringTransfer(t, d, c.Client.NS, c.Server.NS, c.Server.IP, 512<<10, 30*time.Second)
	byNode := map[uint32]int{}
	for p := range pkts {
		byNode[p.node]++
		switch p.node {
		case clientID:
			if p.from.String() != c.Client.IP {
				t.Errorf("client report sent from %v, want the client's address %s", p.from, c.Client.IP)
			}
		case routerID:
			if p.from.String() != c.Router.IP {
				t.Errorf("router report sent from %v, want the router's address %s", p.from, c.Router.IP)
			}
			for _, r := range p.tr.Reports {
				if !r.D && !r.Q && !r.F {
					t.Errorf("router report with none of the D, Q, F bits: %+v", r)
				}
			}
		default:
			t.Errorf("report with node ID %d, want %d or %d", p.node, clientID, routerID)
		}
	}
	if byNode[clientID] == 0 || byNode[routerID] == 0 {
		t.Errorf("report packets per node %v: want some from both the client (retransmissions) and the router (drops)", byNode)
	}
	if ctr := must(d.Counters()); ctr.Exporter.Unattributed != 0 || ctr.Exporter.SendErrors != 0 {
		t.Errorf("counters %+v", ctr.Exporter)
	}
}

// TestDeployRefusesAsNobody runs TestDeployRefusesWithoutRoot as user
// nobody from a root test run, so the refusal path is exercised in CI too.
func TestDeployRefusesAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to user nobody (the unprivileged case runs directly)")
	}
	dir, err := os.MkdirTemp("", "bst-deploy-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "hwprobe.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestDeployRefusesWithoutRoot$", "-test.v")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDeployRefusesWithoutRoot") {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}
