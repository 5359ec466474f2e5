//go:build linux

package hwprobe_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe"
	"github.com/bufscope/bufscope/hwprobe/monitor/montest"
)

// The tagged client runs as a child process (this test binary again): it
// must be a member of the tagged cgroup, which the test itself must not
// join.
func TestMain(m *testing.M) {
	montest.RunTaggedClientIfChild()
	os.Exit(m.Run())
}

// tagRPCID reads the request tag of a report's inner IPv4/TCP header the
// way the analyzer will, with package decode.
func tagRPCID(dec *decode.Decoder, h []byte) (uint64, bool) {
	recs := dec.Records(0, 0, layers.LinkTypeIPv4, h, nil)
	if len(recs) != 1 || !recs[0].HasTag {
		return 0, false
	}
	return recs[0].Tag.RPCID, true
}

func TestDeployReportsTaggedMessageStarts(t *testing.T) {
	montest.RequireRoot(t)
	p := montest.NewPair(t)
	montest.Tc(t, p.Client.NS, "qdisc", "add", "dev", p.Client.Dev, "root", "tbf", "rate", "1gbit", "burst", "1mb", "latency", "50ms")
	cg := filepath.Join(cgroup2Root(t), fmt.Sprintf("bst-deploy-tag-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50 && os.Remove(cg) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
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
			pkts = append(pkts, bytes.Clone(buf[:n]))
			mu.Unlock()
		}
	}()

	d, err := hwprobe.Deploy(hwprobe.DeployOptions{Target: "linux", Netns: p.Client.NS, Cgroup: cg, Collector: col.LocalAddr().String()})
	if errors.Is(err, ebpf.ErrNotSupported) {
		t.Skipf("data plane not supported here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()

	const n = 20
	ln := montest.Listen(t, p.Server.NS, p.Server.IP)
	got := montest.Sink(t, ln, 0)
	// One 3000-byte message at a time on the wire, as an RPC client
	// waiting for responses would send them.
	client := montest.TaggedClient{Cgroup: cg, Netns: montest.Path(p.Client.NS), Pin: d.TagsPinPath(),
		Addr: ln.Addr().String(), N: n, Size: 3000, Gap: 5 * time.Millisecond, RPCBase: 0xD3B1_0000_0000_0000}
	rpcID := client.RPCID
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = client.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tagged client: %v\n%s", err, out)
	}
	if r := <-got; r != n*3000 {
		t.Fatalf("server read %d bytes, want %d", r, n*3000)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	counters, _ := d.Counters()

	mu.Lock()
	defer mu.Unlock()
	seen := map[uint64]int{}
	var tr decode.TelemetryReportV2
	dec := decode.NewDecoder(decode.DecoderOptions{})
	for _, pkt := range pkts {
		if err := tr.DecodeFromBytes(pkt, gopacket.NilDecodeFeedback); err != nil {
			t.Fatal(err)
		}
		for _, r := range tr.Reports {
			if r.Host.Event != decode.EventMessageStart {
				continue
			}
			id, ok := tagRPCID(dec, r.Inner)
			if !ok || r.Host.Buffer != decode.BufferQdisc || !r.F {
				t.Errorf("message-start report buffer %v F=%v without a readable tag: % x", r.Host.Buffer, r.F, r.Inner)
				continue
			}
			seen[id]++
		}
	}
	for i := 0; i < n; i++ {
		if seen[rpcID(i)] == 0 {
			t.Errorf("no message-start report for RPC %#x", rpcID(i))
		}
	}
	if len(seen) != n {
		t.Errorf("message-start reports for %d RPCs, want %d", len(seen), n)
	}
	if counters.Tagger == nil || counters.Tagger.Tagged < n {
		t.Errorf("tagger counters %+v, want >= %d tags written", counters.Tagger, n)
	}
}
