// Package montest builds the network-namespace labs the buffer monitor,
// exporter and deploy tests run in: real namespaces, veth pairs, qdiscs
// and TCP connections, all named with the bst- prefix and removed by
// t.Cleanup, also when a test fails.
//
// It is test support: it calls t.Fatal on setup errors and must only be
// imported from _test.go files.
package montest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// RequireRoot skips t unless it runs as root with the ip and tc tools.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and loads eBPF programs (CI runs as root)")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s in PATH: %v", tool, err)
		}
	}
}

// Run runs a command and fails t with its output if it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

var seq atomic.Int32

// Node is one namespace of a lab.
type Node struct {
	NS   string // name under /var/run/netns
	Dev  string // the node's veth towards the next node (client, router→server side)
	IP   string
	Peer string // router only: the veth towards the client
}

// Pair is a client and a server namespace joined by one veth pair.
type Pair struct {
	Client, Server Node
}

func uniq() (int, string) {
	n := int(seq.Add(1))
	return n, fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
}

func addNS(t testing.TB, name string) {
	t.Helper()
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	// The labs are IPv4 only; IPv6 link-up chatter (router solicitations,
	// MLD reports) would otherwise show up as drops in the quiet tests.
	Run(t, "ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
}

// noOffload turns off segmentation offloads on dev so every skb in a qdisc
// is one wire segment: qdisc events then describe real packets, and the
// drop/retransmission tests see per-segment losses.
func noOffload(t testing.TB, ns, dev string) {
	t.Helper()
	Run(t, "ip", "-n", ns, "link", "set", "dev", dev, "gso_max_segs", "1")
	if _, err := exec.LookPath("ethtool"); err == nil {
		_ = exec.Command("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso", "off").Run()
	}
}

// NewPair creates client and server namespaces joined by a veth pair with
// 10.252.N.1 (client) and 10.252.N.2 (server).
func NewPair(t testing.TB) *Pair {
	t.Helper()
	n, id := uniq()
	p := &Pair{
		Client: Node{NS: "bst-mc-" + id, Dev: fmt.Sprintf("bst-mc%d", n), IP: fmt.Sprintf("10.252.%d.1", n%250)},
		Server: Node{NS: "bst-ms-" + id, Dev: fmt.Sprintf("bst-ms%d", n), IP: fmt.Sprintf("10.252.%d.2", n%250)},
	}
	addNS(t, p.Client.NS)
	addNS(t, p.Server.NS)
	Run(t, "ip", "link", "add", p.Client.Dev, "netns", p.Client.NS, "type", "veth", "peer", "name", p.Server.Dev, "netns", p.Server.NS)
	for _, nd := range []Node{p.Client, p.Server} {
		Run(t, "ip", "-n", nd.NS, "addr", "add", nd.IP+"/24", "dev", nd.Dev)
		noOffload(t, nd.NS, nd.Dev)
		Run(t, "ip", "-n", nd.NS, "link", "set", nd.Dev, "up")
	}
	return p
}

// Chain is client — router — server: two veth pairs, the router forwarding.
type Chain struct {
	Client, Router, Server Node
}

// NewChain creates the three namespaces; the router's Dev faces the
// server (its egress qdisc there is the "switch queue"), Peer faces the
// client. Client is 10.253.N.1, server 10.254.N.2.
func NewChain(t testing.TB) *Chain {
	t.Helper()
	n, id := uniq()
	m := n % 250
	c := &Chain{
		Client: Node{NS: "bst-rc-" + id, Dev: fmt.Sprintf("bst-rc%d", n), IP: fmt.Sprintf("10.253.%d.1", m)},
		Router: Node{NS: "bst-rr-" + id, Dev: fmt.Sprintf("bst-rs%d", n), Peer: fmt.Sprintf("bst-rl%d", n), IP: fmt.Sprintf("10.254.%d.1", m)},
		Server: Node{NS: "bst-rs-" + id, Dev: fmt.Sprintf("bst-rv%d", n), IP: fmt.Sprintf("10.254.%d.2", m)},
	}
	for _, nd := range []Node{c.Client, c.Router, c.Server} {
		addNS(t, nd.NS)
	}
	Run(t, "ip", "link", "add", c.Client.Dev, "netns", c.Client.NS, "type", "veth", "peer", "name", c.Router.Peer, "netns", c.Router.NS)
	Run(t, "ip", "link", "add", c.Router.Dev, "netns", c.Router.NS, "type", "veth", "peer", "name", c.Server.Dev, "netns", c.Server.NS)
	Run(t, "ip", "-n", c.Client.NS, "addr", "add", c.Client.IP+"/24", "dev", c.Client.Dev)
	Run(t, "ip", "-n", c.Router.NS, "addr", "add", fmt.Sprintf("10.253.%d.254/24", m), "dev", c.Router.Peer)
	Run(t, "ip", "-n", c.Router.NS, "addr", "add", c.Router.IP+"/24", "dev", c.Router.Dev)
	Run(t, "ip", "-n", c.Server.NS, "addr", "add", c.Server.IP+"/24", "dev", c.Server.Dev)
	for _, x := range [][2]string{{c.Client.NS, c.Client.Dev}, {c.Router.NS, c.Router.Peer}, {c.Router.NS, c.Router.Dev}, {c.Server.NS, c.Server.Dev}} {
		noOffload(t, x[0], x[1])
		Run(t, "ip", "-n", x[0], "link", "set", x[1], "up")
	}
	Run(t, "ip", "-n", c.Client.NS, "route", "add", "default", "via", fmt.Sprintf("10.253.%d.254", m))
	Run(t, "ip", "-n", c.Server.NS, "route", "add", "default", "via", c.Router.IP)
	Run(t, "ip", "netns", "exec", c.Router.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return c
}

// Tc runs tc inside ns ("qdisc add dev X root tbf …").
func Tc(t testing.TB, ns string, args ...string) {
	t.Helper()
	Run(t, "ip", append([]string{"netns", "exec", ns, "tc"}, args...)...)
}

// Path returns the netns file of name.
func Path(name string) string { return "/var/run/netns/" + name }

// Ifindex returns the ifindex of dev inside ns.
func Ifindex(t testing.TB, ns, dev string) int {
	t.Helper()
	var idx int
	In(t, ns, func() error {
		i, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		idx = i.Index
		return nil
	})
	return idx
}

// In runs f on a locked OS thread that has joined network namespace ns.
// Sockets f creates belong to ns for their whole life, so listeners and
// connections made here can be used from any goroutine afterwards.
func In(t testing.TB, ns string, f func() error) {
	t.Helper()
	if err := InNetns(Path(ns), f); err != nil {
		t.Fatalf("in netns %s: %v", ns, err)
	}
}

// InNetns is In without a testing.TB, for use from goroutines.
func InNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// A thread whose namespace could not be restored is never
		// unlocked, so the runtime discards it instead of reusing it.
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("restoring netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
