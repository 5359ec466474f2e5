package montest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bufscope/bufscope/hwprobe/rpctag"
)

// TaggedClient describes an RPC client that sends request messages
// announced to the tagger. It runs as a child process (the test binary
// again, see Env and TaggedClientFromEnv) because it must join the tagged
// cgroup, which the test itself must not.
type TaggedClient struct {
	Cgroup string // cgroup v2 directory the tagger is attached to
	Netns  string // path of the namespace to connect from
	Pin    string // pinned tags map (Deployment.TagsPinPath)
	Addr   string // server address
	N      int    // messages
	Size   int    // bytes per message
	Gap    time.Duration
	// RPCBase | i is the RPC ID of message i.
	RPCBase uint64
}

// RPCID is the RPC ID of message i.
func (c TaggedClient) RPCID(i int) uint64 { return c.RPCBase | uint64(i) }

const clientEnv = "BST_TAGGED_CLIENT"

// Env returns the environment for the child process.
func (c TaggedClient) Env() []string {
	return append(os.Environ(), clientEnv+"=1", "BST_CGROUP="+c.Cgroup, "BST_NETNS="+c.Netns,
		"BST_PIN="+c.Pin, "BST_ADDR="+c.Addr, "BST_N="+strconv.Itoa(c.N), "BST_SIZE="+strconv.Itoa(c.Size),
		"BST_GAP="+c.Gap.String(), "BST_RPC="+strconv.FormatUint(c.RPCBase, 10))
}

// RunTaggedClientIfChild is for TestMain: in the child process started
// with Env it runs the client and exits; elsewhere it returns.
func RunTaggedClientIfChild() {
	if os.Getenv(clientEnv) == "" {
		return
	}
	c := TaggedClient{Cgroup: os.Getenv("BST_CGROUP"), Netns: os.Getenv("BST_NETNS"), Pin: os.Getenv("BST_PIN"), Addr: os.Getenv("BST_ADDR")}
	c.N, _ = strconv.Atoi(os.Getenv("BST_N"))
	c.Size, _ = strconv.Atoi(os.Getenv("BST_SIZE"))
	c.Gap, _ = time.ParseDuration(os.Getenv("BST_GAP"))
	c.RPCBase, _ = strconv.ParseUint(os.Getenv("BST_RPC"), 10, 64)
	if err := c.run(); err != nil {
		fmt.Fprintln(os.Stderr, "tagged client:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// run joins the cgroup, enters the namespace and sends the messages, each
// announced to the tagger, Gap apart (as an RPC client waiting for its
// responses would).
func (c TaggedClient) run() error {
	if err := os.WriteFile(filepath.Join(c.Cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	runtime.LockOSThread() // the process exits with the thread in Netns
	ns, err := os.Open(c.Netns)
	if err != nil {
		return err
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return err
	}
	table, err := rpctag.Open(c.Pin)
	if err != nil {
		return err
	}
	defer table.Close()
	tc, err := net.Dial("tcp4", c.Addr)
	if err != nil {
		return err
	}
	conn, err := table.Wrap(tc.(*net.TCPConn))
	if err != nil {
		return err
	}
	defer conn.Close()
	msg := make([]byte, c.Size)
	for i := 0; i < c.N; i++ {
		if err := conn.BeginMessage(rpctag.Request, c.RPCID(i), 0x7ACE, uint32(len(msg))); err != nil {
			return err
		}
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		time.Sleep(c.Gap)
	}
	return conn.CloseWrite()
}
