//go:build linux

package tagger_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Helpers that build a two-namespace lab for the tagger tests: a client
// netns and a server netns joined by a veth pair, a cgroup v2 child for the
// client process, and tcpdump captures. Everything is named with the bst-
// prefix and removed by t.Cleanup, also when a test fails.

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, cgroups and loads eBPF (CI runs as root)")
	}
	for _, tool := range []string{"ip", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s in PATH: %v", tool, err)
		}
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

var labSeq atomic.Int32

type lab struct {
	cliNS, srvNS   string
	cliDev, srvDev string
	cliIP, srvIP   string
}

// newLab creates the namespaces and veth pair. gsoMaxSegs > 0 limits the
// client device's GSO so every skb on the wire is one segment.
func newLab(t testing.TB, gsoMaxSegs int) *lab {
	t.Helper()
	n := int(labSeq.Add(1))
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	l := &lab{
		cliNS:  "bst-tgc-" + id,
		srvNS:  "bst-tgs-" + id,
		cliDev: fmt.Sprintf("bst-tc%d", n),
		srvDev: fmt.Sprintf("bst-ts%d", n),
		cliIP:  fmt.Sprintf("10.251.%d.1", n),
		srvIP:  fmt.Sprintf("10.251.%d.2", n),
	}
	run(t, "ip", "netns", "add", l.cliNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.cliNS).Run() })
	run(t, "ip", "netns", "add", l.srvNS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.srvNS).Run() })
	run(t, "ip", "link", "add", l.cliDev, "netns", l.cliNS, "type", "veth", "peer", "name", l.srvDev, "netns", l.srvNS)
	run(t, "ip", "-n", l.cliNS, "addr", "add", l.cliIP+"/24", "dev", l.cliDev)
	run(t, "ip", "-n", l.srvNS, "addr", "add", l.srvIP+"/24", "dev", l.srvDev)
	if gsoMaxSegs > 0 {
		run(t, "ip", "-n", l.cliNS, "link", "set", l.cliDev, "gso_max_segs", fmt.Sprint(gsoMaxSegs))
	}
	for _, ns := range []string{l.cliNS, l.srvNS} {
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "-n", l.cliNS, "link", "set", l.cliDev, "up")
	run(t, "ip", "-n", l.srvNS, "link", "set", l.srvDev, "up")
	return l
}

// inNetns runs fn on a thread switched into netns ns; sockets created by
// fn stay in ns.
func inNetns(t testing.TB, ns string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is left locked and so discarded if restoring fails.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("restoring netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// cgroup2Root finds a cgroup v2 mount in /proc/self/mountinfo.
func cgroup2Root(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if f := strings.Fields(post); len(f) > 0 && f[0] == "cgroup2" {
			if pf := strings.Fields(pre); len(pf) >= 5 {
				return pf[4]
			}
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted: sockops programs attach to cgroup v2 only")
	return ""
}

// newCgroup creates an empty child cgroup and removes it after the test.
func newCgroup(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(cgroup2Root(t), fmt.Sprintf("bst-tagger-%d-%d", os.Getpid(), labSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Removal fails while the client process is still a member.
		for i := 0; i < 50; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("cgroup %s left behind", dir)
	})
	return dir
}

// capture runs tcpdump on dev in netns ns; stop it and get the file with
// the returned function.
func capture(t testing.TB, ns, dev string) func() string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cap.pcap")
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-n", "-U", "--immediate-mode", "-i", dev, "-s", "256", "-w", file, "tcp")
	var stderr syncBuffer
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			stderr.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "listening on") {
				once = true
				close(ready)
			}
		}
		if !once {
			close(ready)
		}
	}()
	stopped := false
	stop := func() string {
		if stopped {
			return file
		}
		stopped = true
		// Let the last packets reach the file before stopping.
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		return file
	}
	t.Cleanup(func() { stop() })
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump did not start: %s", stderr.String())
	}
	if cmd.ProcessState != nil {
		t.Fatalf("tcpdump exited: %s", stderr.String())
	}
	return stop
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) WriteString(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(v)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
