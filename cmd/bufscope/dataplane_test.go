//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bufscope/bufscope/hwprobe/monitor/montest"
)

// TestDeployRecordDecode runs the data plane the way a user does: `bufscope
// record` on the collector, `bufscope deploy` on a namespace whose egress is a
// small shaped queue, an RPC client in the tagged cgroup; then `bufscope
// decode -V` of the trace must show the tagged message starts and the
// buffer events of a real queue build-up and a real drop.
func TestDeployRecordDecode(t *testing.T) {
	montest.RequireRoot(t)
	bin := bufscopeBinary(t)
	p := montest.NewPair(t)
	// 20 Mbit/s with room for ~10 full-size packets: a burst of 64 KiB
	// messages queues, then overflows.
	montest.Tc(t, p.Client.NS, "qdisc", "add", "dev", p.Client.Dev, "root", "tbf", "rate", "20mbit", "burst", "5k", "limit", "15000")
	cg := filepath.Join(cgroup2Mount(t), fmt.Sprintf("bst-e2e-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 100 && os.Remove(cg) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	port := freeUDPPort(t)
	trace := filepath.Join(t.TempDir(), "e2e.trace.zst")

	rec := exec.Command(bin, "record", "-i", "lo", "-f", fmt.Sprintf("udp port %d", port), "--report-port", strconv.Itoa(port), "-o", trace)
	var recErr bytes.Buffer
	rec.Stderr = &recErr
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Process.Kill(); rec.Wait() })
	waitFor(t, "record to create its file", func() bool { _, err := os.Stat(trace); return err == nil })

	dep := exec.Command(bin, "deploy", "--target", "linux", "--netns", p.Client.NS, "--cgroup", cg,
		"--collector", fmt.Sprintf("127.0.0.1:%d", port))
	out, err := dep.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var depErr bytes.Buffer
	dep.Stderr = &depErr
	if err := dep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dep.Process.Kill(); dep.Wait() })
	pin := ""
	pinRE := regexp.MustCompile(`tags map pinned at (\S+)`)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := pinRE.FindStringSubmatch(sc.Text()); m != nil {
			pin = m[1]
		}
		if strings.HasPrefix(sc.Text(), "exporter") {
			break
		}
	}
	if pin == "" {
		dep.Process.Kill()
		dep.Wait()
		t.Fatalf("deploy printed no tags pin; stderr: %s", depErr.String())
	}
	counters := make(chan string, 1)
	go func() {
		var b strings.Builder
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
		}
		counters <- b.String()
	}()

	const n, size = 12, 64 << 10
	ln := montest.Listen(t, p.Server.NS, p.Server.IP)
	got := montest.Sink(t, ln, 0)
	// The queue drains between messages (64 KiB take 26 ms at 20 Mbit/s), so
	// each message starts on an empty queue, then overflows it.
	tc := montest.TaggedClient{Cgroup: cg, Netns: montest.Path(p.Client.NS), Pin: pin, Addr: ln.Addr().String(),
		N: n, Size: size, Gap: 40 * time.Millisecond, RPCBase: 0xE2E0_0000_0000_0000}
	client := exec.Command(os.Args[0], "-test.run=^$")
	client.Env = tc.Env()
	if b, err := client.CombinedOutput(); err != nil {
		t.Fatalf("tagged client: %v\n%s", err, b)
	}
	if r := <-got; r != n*size {
		t.Fatalf("server read %d bytes, want %d", r, n*size)
	}
	time.Sleep(300 * time.Millisecond) // the exporter's last batch
	dep.Process.Signal(syscall.SIGINT)
	if err := dep.Wait(); err != nil {
		t.Fatalf("deploy: %v\n%s", err, depErr.String())
	}
	deployCounters := <-counters
	time.Sleep(200 * time.Millisecond)
	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil {
		t.Fatalf("record: %v\n%s", err, recErr.String())
	}

	tree, err := exec.Command(bin, "decode", "-V", "--report-port", strconv.Itoa(port), trace).CombinedOutput()
	if err != nil {
		t.Fatalf("decode -V: %v\n%s", err, tree)
	}
	text := string(tree)
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%016x", tc.RPCID(i))
		if !strings.Contains(text, id) {
			t.Errorf("decode -V shows no report carrying the tag of RPC %s", id)
		}
	}
	for _, want := range []string{"message-start", "queuing", "QDISC_DROP"} {
		if !strings.Contains(text, want) {
			t.Errorf("decode -V shows no %q", want)
		}
	}
	if t.Failed() {
		t.Logf("deploy's counters:\n%s", deployCounters)
		t.Logf("decode -V output (first 4000 bytes):\n%s", text[:min(len(text), 4000)])
	}
}

func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	t.Skip("no cgroup v2 mount: the tagger cannot attach")
	return ""
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
