//go:build linux

package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// vethLab is a network namespace holding one end of a veth pair; the other
// end stays in the test's namespace, so traffic sent to Peer leaves through
// Host, where a capture sees it.
type vethLab struct {
	NS, Host, Inner string
	HostIP, Peer    net.IP
}

var labSeq atomic.Int32

// newVethLab creates the namespace and the pair, named with the bst- prefix
// so leftovers are easy to find, and removes them in t.Cleanup.
func newVethLab(t testing.TB) *vethLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair and opens AF_PACKET sockets")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (apt-get install iproute2)")
	}
	n := labSeq.Add(1)
	id := fmt.Sprintf("%d%02d", os.Getpid()%100000, n)
	l := &vethLab{
		NS: "bst-" + id, Host: "bst" + id + "h", Inner: "bst" + id + "n",
		HostIP: net.IPv4(10, 213, byte(n), 1), Peer: net.IPv4(10, 213, byte(n), 2),
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", l.NS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.NS).Run() })
	run("link", "add", l.Host, "type", "veth", "peer", "name", l.Inner)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", l.Host).Run() })
	run("link", "set", l.Inner, "netns", l.NS)
	run("addr", "add", l.HostIP.String()+"/24", "dev", l.Host)
	run("link", "set", l.Host, "up")
	run("-n", l.NS, "addr", "add", l.Peer.String()+"/24", "dev", l.Inner)
	run("-n", l.NS, "link", "set", l.Inner, "up")
	run("-n", l.NS, "link", "set", "lo", "up")
	// A static neighbour entry keeps ARP out of the timing of the first
	// packets without depending on the filter.
	mac := func() string {
		out, err := exec.Command("ip", "-n", l.NS, "-o", "link", "show", l.Inner).Output()
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(out))
		for i, s := range f {
			if s == "link/ether" {
				return f[i+1]
			}
		}
		t.Fatalf("no MAC in %q", out)
		return ""
	}()
	run("neigh", "replace", l.Peer.String(), "lladdr", mac, "dev", l.Host, "nud", "permanent")
	return l
}

// sendUDP sends n datagrams of size bytes to the peer's port.
func (l *vethLab) sendUDP(t testing.TB, port, n, size int) {
	t.Helper()
	// Unconnected, so the peer's ICMP port-unreachable replies do not
	// turn into ECONNREFUSED on the next write.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: l.HostIP})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := &net.UDPAddr{IP: l.Peer, Port: port}
	buf := make([]byte, size)
	for i := range n {
		buf[0], buf[1] = byte(i>>8), byte(i)
		if _, err := c.WriteTo(buf, dst); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if i%50 == 49 {
			// Stay far below the ring's capacity: this test is about
			// counts, not about overload.
			time.Sleep(time.Millisecond)
		}
	}
}

func readTrace(t testing.TB, path string) ([]Packet, *Reader) {
	t.Helper()
	r, err := Open(path, ReaderOptions{CopyData: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	var out []Packet
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, r
		}
		if err != nil {
			t.Fatalf("%s: after %d packets: %v", path, len(out), err)
		}
		out = append(out, p)
	}
}

// startRecord runs live.Record in the background. stop cancels it and
// returns its error; done is closed when Record returns by itself. Cleanup
// stops it too (before the rings close) when a test fails early.
func startRecord(t testing.TB, live *Live, sink Sink, limits RecordLimits) (stop func() error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var result error
	go func() {
		defer close(finished)
		result = live.Record(ctx, sink, limits)
	}()
	stop = func() error {
		cancel()
		<-finished
		return result
	}
	t.Cleanup(func() { stop(); live.Close() })
	return stop, finished
}

// recordPort9999 records UDP to port 9999 on a fresh lab's veth into a
// trace in a temporary directory. Cleanup stops the recording and closes
// the rotator (a test that reads the file closes it itself first).
func recordPort9999(tb testing.TB) (*vethLab, *Live, *Rotator, func() error) {
	tb.Helper()
	l := newVethLab(tb)
	live, err := OpenLive(LiveOptions{Interfaces: []string{l.Host}, Filter: "udp dst port 9999", Hostname: "lab"})
	if err != nil {
		tb.Fatal(err)
	}
	rot, err := NewRotator(RotateOptions{Path: filepath.Join(tb.TempDir(), "trace.zst"), Writer: WriterOptions{Interfaces: live.Interfaces()}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rot.Close() })
	stop, _ := startRecord(tb, live, rot, RecordLimits{})
	return l, live, rot, stop
}

func TestLiveRecordCountsAndSnap(t *testing.T) {
	l := newVethLab(t)
	live, err := OpenLive(LiveOptions{
		Interfaces: []string{l.Host},
		Filter:     "udp and (dst port 9999 or dst port 32766)",
		KeepWhole:  "udp dst port 32766",
		Hostname:   "testhost",
	})
	if errors.Is(err, ErrNoFilterCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	topo, err := live.Topology()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "trace.zst")
	rot, err := NewRotator(RotateOptions{Path: path, Writer: WriterOptions{Interfaces: live.Interfaces(), Topology: topo}})
	if err != nil {
		t.Fatal(err)
	}
	stop, _ := startRecord(t, live, rot, RecordLimits{})

	const data, reports = 500, 20
	l.sendUDP(t, 9999, data, 1000)
	l.sendUDP(t, 32766, reports, 700)
	l.sendUDP(t, 9998, 50, 100) // filtered out
	// Cancel right away: the drain must still collect what the kernel
	// has already accepted.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := rot.Close(); err != nil {
		t.Fatal(err)
	}
	if st := live.Stats(); st.Packets != data+reports || st.Drops != 0 {
		t.Errorf("stats: %d packets, %d drops; want %d, 0", st.Packets, st.Drops, data+reports)
	}

	pkts, r := readTrace(t, path)
	var gotData, gotReports int
	for i, p := range pkts {
		switch {
		case p.Length == 14+20+8+1000 && p.CaptureLength == DefaultSnapLen:
			gotData++
		case p.Length == 14+20+8+700 && p.CaptureLength == p.Length:
			gotReports++
		default:
			t.Errorf("packet %d: caplen %d, length %d: neither a truncated data packet nor a whole report", i, p.CaptureLength, p.Length)
		}
	}
	if gotData != data || gotReports != reports {
		t.Errorf("read back %d data packets and %d reports, sent %d and %d", gotData, gotReports, data, reports)
	}
	ifs := r.Interfaces()
	if len(ifs) != 1 || ifs[0].Name != "testhost/"+l.Host {
		t.Errorf("interfaces %+v, want one named testhost/%s", ifs, l.Host)
	}
	var tp Topology
	if err := json.Unmarshal(r.Topology(), &tp); err != nil {
		t.Fatalf("topology %q: %v", r.Topology(), err)
	}
	if tp.Hostname != "testhost" || len(tp.Interfaces) != 1 || len(tp.Interfaces[0].Addresses) == 0 ||
		tp.Interfaces[0].Addresses[0] != l.HostIP.String()+"/24" {
		t.Errorf("topology %+v does not name the host and %s/24", tp, l.HostIP)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestLiveRecordTwoInterfacesAndCount(t *testing.T) {
	a, b := newVethLab(t), newVethLab(t)
	live, err := OpenLive(LiveOptions{Interfaces: []string{a.Host, b.Host}, Filter: "udp dst port 9999", Hostname: "h"})
	if errors.Is(err, ErrNoFilterCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "two.zst")
	rot, err := NewRotator(RotateOptions{Path: path, Writer: WriterOptions{Interfaces: live.Interfaces()}})
	if err != nil {
		t.Fatal(err)
	}
	stop, done := startRecord(t, live, rot, RecordLimits{Count: 150})
	a.sendUDP(t, 9999, 100, 64)
	b.sendUDP(t, 9999, 100, 64)
	select {
	case <-done:
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Record did not stop at --count 150 after 200 packets were sent")
	}
	if err := rot.Close(); err != nil {
		t.Fatal(err)
	}
	pkts, r := readTrace(t, path)
	if len(pkts) != 150 {
		t.Fatalf("read back %d packets, want exactly 150", len(pkts))
	}
	per := map[int]int{}
	for _, p := range pkts {
		per[p.Interface]++
	}
	if per[0] != 100 || per[1] != 50 {
		// a's packets were all sent before b's, and each was written
		// as it arrived.
		t.Logf("per interface: %v", per)
	}
	if per[0] == 0 || per[1] == 0 {
		t.Errorf("per interface %v: want packets from both", per)
	}
	names := []string{r.Interfaces()[0].Name, r.Interfaces()[1].Name}
	if names[0] != "h/"+a.Host || names[1] != "h/"+b.Host {
		t.Errorf("interface names %v", names)
	}
}

func TestOpenLiveErrors(t *testing.T) {
	if _, err := OpenLive(LiveOptions{}); err == nil {
		t.Error("no interfaces accepted")
	}
	if _, err := OpenLive(LiveOptions{Interfaces: []string{"bst-no-such0"}}); err == nil || !strings.Contains(err.Error(), "bst-no-such0") {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := OpenLive(LiveOptions{Interfaces: []string{"lo", "lo"}}); err == nil {
		t.Error("duplicate interface accepted")
	}
	if os.Geteuid() == 0 {
		if _, err := OpenLive(LiveOptions{Interfaces: []string{"lo"}, Filter: "udp port"}); err == nil || !strings.Contains(err.Error(), "syntax error") {
			t.Errorf("bad filter: %v", err)
		}
	}
}
