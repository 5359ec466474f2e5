//go:build linux

package hwprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/bufscope/bufscope/hwprobe/export"
	"github.com/bufscope/bufscope/hwprobe/monitor"
	"github.com/bufscope/bufscope/hwprobe/tagger"
)

// DeployOptions configure Deploy. Errors about a field name its flag.
type DeployOptions struct {
	// Target is where to deploy; only "linux" exists (eBPF on this host).
	Target string
	// Netns is a network namespace name (as in `ip netns list`) or a path
	// to a namespace file. The monitors report only that namespace; empty
	// (and no Nodes) watches every namespace of the host. Shorthand for
	// Nodes with one entry of this name, NodeID and Router.
	Netns string
	// Router says the namespace forwards: its egress qdiscs are reported
	// as switch queues with INT baseline metadata only.
	Router bool
	// Nodes watches several network namespaces with one set of monitors
	// and one exporter, each namespace reported under its own node ID (a
	// router and the hosts of a lab, or containers that are nodes of their
	// own). Every tracepoint then runs one program per packet however many
	// namespaces are watched. Exclusive with Netns.
	Nodes []DeployNode
	// Cgroup is a cgroup v2 directory whose sockets get the request tag.
	// Empty deploys no tagger.
	Cgroup string
	// Collector is HOST[:PORT] of the Telemetry Report collector.
	Collector string
	// CollectorInNetns opens the exporter's socket inside Netns (with
	// Nodes: one socket inside each node's namespace, so every node's
	// reports leave from its own address) instead of the namespace
	// bufscope runs in.
	CollectorInNetns bool
	// NodeID for the reports; 0 hashes the host name.
	NodeID uint32
	// Monitor thresholds; zero fields take monitor.DefaultThresholds.
	Thresholds monitor.Thresholds
	// NoMessageStart turns off the per-tagged-segment qdisc events.
	NoMessageStart bool
	// MessageStartEvery reports the start of one tagged message in this
	// many, picked by RPC ID so every hop reports the same messages; 0 or
	// 1 reports all. Abnormal events are never sampled.
	MessageStartEvery uint32
	// MessageStartFirstHop reports a message start only at the qdisc the
	// segment leaves its sender by, not again at each forwarding hop.
	MessageStartFirstHop bool
	// TagExID is the RFC 6994 ExID the tagger writes and the monitors
	// recognise; 0 means decode.TagExID (0xBF5C).
	TagExID uint16
	// FlushInterval of the exporter; 0 means its default.
	FlushInterval time.Duration
}

// DeployNode is one namespace of DeployOptions.Nodes.
type DeployNode struct {
	// Netns is a name as `ip netns list` shows it, or a path.
	Netns string
	// NodeID of the namespace's reports; must be set and distinct when
	// more than one namespace is watched.
	NodeID uint32
	// Router: the namespace forwards (see DeployOptions.Router).
	Router bool
}

// FlagError is a Deploy error caused by one option's value; Flag is the
// command-line flag that sets it ("--netns").
type FlagError struct {
	Flag string
	Err  error
}

func (e *FlagError) Error() string { return e.Flag + ": " + e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

func flagErr(flag string, format string, args ...any) error {
	return &FlagError{Flag: flag, Err: fmt.Errorf(format, args...)}
}

// Deployment is what Deploy loaded: the tagger (if a cgroup was given),
// the buffer monitors and the exporter. Run drives the exporter; Close
// removes everything. Counters may be called concurrently with Run.
type Deployment struct {
	opts     DeployOptions
	nodes    []deployedNode // empty: all namespaces, one node
	tagger   *tagger.Tagger
	monitor  *monitor.Monitor
	exporter *export.Exporter

	closeOnce sync.Once
	closeErr  error
}

// deployedNode is a watched namespace, resolved.
type deployedNode struct {
	DeployNode
	path  string
	inode uint32
}

// Deploy checks the host, loads and attaches the tagger and monitors, and
// opens the exporter's socket. Errors for hosts that cannot run bufscope's
// data plane (not root, no BTF, a hook missing) wrap ebpf.ErrNotSupported
// (the sentinel monitor.ErrNotSupported and tagger.ErrNotSupported name
// too) and say what to do. On error nothing stays loaded.
func Deploy(opts DeployOptions) (*Deployment, error) {
	if opts.Target != "linux" {
		return nil, flagErr("--target", "%q: only \"linux\" (eBPF on this host) can be deployed; P4 targets are built from p4/", opts.Target)
	}
	nodes, err := deployNodes(opts)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("deploy: loading eBPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN): run with sudo: %w", ebpf.ErrNotSupported)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("deploy: the kernel exposes no BTF (/sys/kernel/btf/vmlinux): boot a kernel built with CONFIG_DEBUG_INFO_BTF=y: %w", ebpf.ErrNotSupported)
	}
	if _, err := export.CollectorAddr(opts.Collector); err != nil {
		return nil, &FlagError{Flag: "--collector", Err: err}
	}
	d := &Deployment{opts: opts}
	mopts := monitor.Options{
		Thresholds:           opts.Thresholds,
		NoMessageStart:       opts.NoMessageStart,
		MessageStartEvery:    opts.MessageStartEvery,
		MessageStartFirstHop: opts.MessageStartFirstHop,
		TagExID:              opts.TagExID,
	}
	for _, n := range nodes {
		path, ino, err := resolveNetns(n.Netns)
		if err != nil {
			return nil, err
		}
		for _, o := range d.nodes {
			if o.inode == ino {
				return nil, flagErr("--netns", "%s and %s are the same namespace (inode %d)", o.Netns, n.Netns, ino)
			}
		}
		d.nodes = append(d.nodes, deployedNode{DeployNode: n, path: path, inode: ino})
		mopts.Netns = append(mopts.Netns, monitor.Netns{Inode: ino, Router: n.Router})
	}

	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if opts.Cgroup != "" {
		t, err := tagger.Load(tagger.Options{CgroupPath: opts.Cgroup, ExID: opts.TagExID})
		if err != nil {
			return nil, &FlagError{Flag: "--cgroup", Err: fmt.Errorf("%s: %w", opts.Cgroup, err)}
		}
		d.tagger = t
	}
	m, err := monitor.Load(mopts)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	d.monitor = m

	xopts := export.Options{Collector: opts.Collector, NodeID: opts.NodeID, FlushInterval: opts.FlushInterval}
	for _, n := range d.nodes {
		xn := export.Node{Netns: n.inode, NodeID: n.NodeID}
		if xn.NodeID == 0 {
			// Only a lone namespace may go without a node ID (deployNodes
			// checked): it is the host's.
			if xn.NodeID, err = export.NodeIDFromHostname(); err != nil {
				return nil, &FlagError{Flag: "--node-id", Err: err}
			}
		}
		if opts.CollectorInNetns {
			conn, err := dialInNetns(n.path, opts.Collector)
			if err != nil {
				for _, o := range xopts.Nodes {
					o.Conn.Close()
				}
				return nil, err
			}
			xn.Conn = conn
		}
		xopts.Nodes = append(xopts.Nodes, xn)
	}
	x, err := export.New(xopts)
	if err != nil {
		return nil, &FlagError{Flag: "--collector", Err: err}
	}
	d.exporter = x
	ok = true
	return d, nil
}

// deployNodes checks the namespace options and returns the namespaces to
// watch, none for the whole host.
func deployNodes(opts DeployOptions) ([]DeployNode, error) {
	nodes := opts.Nodes
	switch {
	case opts.Netns != "" && len(nodes) > 0:
		return nil, flagErr("--netns", "give the namespaces either as Netns or as Nodes, not both")
	case opts.Netns != "":
		nodes = []DeployNode{{Netns: opts.Netns, NodeID: opts.NodeID, Router: opts.Router}}
	case opts.Router && len(nodes) == 0:
		return nil, flagErr("--router", "needs --netns: name the namespace that forwards")
	case opts.Router:
		return nil, flagErr("--router", "applies to a single --netns; with several, mark the router as --netns NAME=ID,router")
	}
	if opts.CollectorInNetns && len(nodes) == 0 {
		return nil, flagErr("--collector-in-netns", "needs --netns")
	}
	seen := map[uint32]string{}
	for _, n := range nodes {
		if n.Netns == "" {
			return nil, flagErr("--netns", "empty namespace name")
		}
		if len(nodes) == 1 {
			break
		}
		if n.NodeID == 0 {
			return nil, flagErr("--netns", "%s: give every namespace its node ID (--netns %s=ID) when watching more than one", n.Netns, n.Netns)
		}
		if o, dup := seen[n.NodeID]; dup {
			return nil, flagErr("--netns", "%s and %s have the same node ID %d; each namespace reports as its own node", o, n.Netns, n.NodeID)
		}
		seen[n.NodeID] = n.Netns
	}
	return nodes, nil
}

// resolveNetns turns a --netns value into a namespace file and its inode.
func resolveNetns(name string) (string, uint32, error) {
	candidates := []string{name}
	if !strings.Contains(name, "/") {
		candidates = []string{filepath.Join("/var/run/netns", name), filepath.Join("/run/netns", name)}
	}
	var st unix.Stat_t
	var statfs unix.Statfs_t
	for _, p := range candidates {
		if err := unix.Stat(p, &st); err != nil {
			continue
		}
		// A namespace file is a bind mount of nsfs; anything else (a
		// leftover empty file after `ip netns del` races) is refused.
		if err := unix.Statfs(p, &statfs); err != nil || statfs.Type != unix.NSFS_MAGIC {
			return "", 0, flagErr("--netns", "%s: %s is not a network namespace (not on nsfs)", name, p)
		}
		return p, uint32(st.Ino), nil
	}
	return "", 0, flagErr("--netns", "%s: no such network namespace (see `ip netns list`, or give a path such as /proc/PID/ns/net)", name)
}

// dialInNetns opens a UDP socket to the collector from inside the
// namespace at path. The socket keeps that namespace for its life.
func dialInNetns(path, collector string) (net.Conn, error) {
	addr, err := export.CollectorAddr(collector)
	if err != nil {
		return nil, &FlagError{Flag: "--collector", Err: err}
	}
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		// The thread is only unlocked once it is back in its own
		// namespace; otherwise the runtime discards it when this
		// goroutine ends.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("--collector-in-netns: %w", err)}
			return
		}
		defer self.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("--netns: %w", err)}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- result{err: fmt.Errorf("--collector-in-netns: entering %s: %w", path, err)}
			return
		}
		c, derr := net.Dial("udp", addr)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			if c != nil {
				c.Close()
			}
			res <- result{err: fmt.Errorf("--collector-in-netns: returning from %s: %w", path, err)}
			return
		}
		runtime.UnlockOSThread()
		if derr != nil {
			derr = fmt.Errorf("--collector %s: opening UDP socket inside %s: %w", collector, path, derr)
		}
		res <- result{c, derr}
	}()
	r := <-res
	return r.c, r.err
}

// Describe writes what the deployment attached, one line each.
func (d *Deployment) Describe(w io.Writer) {
	if d.tagger != nil {
		fmt.Fprintf(w, "tagger\tcgroup %s sockops, tags map pinned at %s\n", d.opts.Cgroup, d.tagger.PinPath())
	}
	for _, a := range d.monitor.Attached() {
		fmt.Fprintf(w, "monitor\t%s\tprog %d link %d\n", a.Hook, a.ID, a.LinkID)
	}
	if len(d.nodes) == 0 {
		fmt.Fprintf(w, "monitor\twatching all network namespaces\n")
	}
	ids := d.exporter.NodeIDs()
	for i, n := range d.nodes {
		role := ""
		if n.Router {
			role = " (router: egress qdiscs reported as switch queues)"
		}
		fmt.Fprintf(w, "monitor\twatching network namespace %s as node id %#x%s\n", n.path, ids[i], role)
	}
	where := "from the host namespace"
	switch {
	case d.opts.CollectorInNetns && len(d.nodes) == 1:
		where = "from inside " + d.nodes[0].path
	case d.opts.CollectorInNetns:
		where = "from inside each watched namespace"
	}
	if len(d.nodes) == 0 {
		fmt.Fprintf(w, "exporter\tnode id %#x, reports to %s %s\n", d.exporter.NodeID(), d.opts.Collector, where)
	} else {
		fmt.Fprintf(w, "exporter\treports to %s %s\n", d.opts.Collector, where)
	}
}

// Programs lists the kernel IDs of the programs the deployment holds (the
// tagger's first when there is one), so tests and operators can check that
// Close removed them.
func (d *Deployment) Programs() []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	if d.tagger != nil {
		if info, err := d.tagger.Program().Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, id)
			}
		}
	}
	for _, a := range d.monitor.Attached() {
		ids = append(ids, a.ID)
	}
	return ids
}

// ProgramStats returns the kernel's run count and run time of each
// monitor program (zero unless kernel.bpf_stats_enabled is on, see
// monitor.EnableKernelStats).
func (d *Deployment) ProgramStats() ([]monitor.ProgramStat, error) {
	return d.monitor.ProgramStats()
}

// TagsPinPath is where the tagger's tags map is pinned, for rpctag.Open in
// the processes whose messages are tagged; "" without a tagger.
func (d *Deployment) TagsPinPath() string {
	if d.tagger == nil {
		return ""
	}
	return d.tagger.PinPath()
}

// Run exports events until ctx is done, then flushes. It does not Close.
func (d *Deployment) Run(ctx context.Context) error {
	return d.exporter.Run(ctx, d.monitor)
}

// DeployCounters are a deployment's statistics.
type DeployCounters struct {
	Monitor  monitor.Stats
	Exporter export.Counters
	Tagger   *tagger.Stats // nil without a tagger
}

// Counters reads the counters of every part.
func (d *Deployment) Counters() (DeployCounters, error) {
	var c DeployCounters
	var err error
	if c.Monitor, err = d.monitor.Stats(); err != nil {
		return c, err
	}
	c.Exporter = d.exporter.Counters()
	if d.tagger != nil {
		st, err := d.tagger.Stats()
		if err != nil {
			return c, err
		}
		c.Tagger = &st
	}
	return c, nil
}

// WriteCounters prints c as "name value" lines.
func (c DeployCounters) WriteCounters(w io.Writer) {
	fmt.Fprintf(w, "events\t%d\nreports\t%d\npackets\t%d\nbytes\t%d\nsend_errors\t%d\nencode_errors\t%d\nunattributed\t%d\n",
		c.Exporter.Events, c.Exporter.Reports, c.Exporter.Packets, c.Exporter.Bytes, c.Exporter.SendErrors, c.Exporter.EncodeErrors, c.Exporter.Unattributed)
	fmt.Fprintf(w, "ring_lost\t%d\nmonitor_emitted\t%d\nqdisc_dequeues\t%d\nqdisc_unmatched\t%d\n",
		c.Monitor.Lost, c.Monitor.Emitted, c.Monitor.DequeueSeen, c.Monitor.DequeueUnmatched)
	if c.Tagger != nil {
		fmt.Fprintf(w, "tagged_sockets\t%d\ntags_written\t%d\ntags_no_space\t%d\n", c.Tagger.Sockets, c.Tagger.Tagged, c.Tagger.NoSpace)
	}
}

// Close removes everything Deploy created: the exporter's socket, the
// monitors' links, programs and maps, and the tagger's cgroup link and
// pin. Deploy changes no qdisc, so there is none to restore.
//
// Safe to call more than once; call it after Run has returned.
func (d *Deployment) Close() error {
	d.closeOnce.Do(func() {
		var errs []error
		if d.exporter != nil {
			errs = append(errs, d.exporter.Close())
		}
		if d.monitor != nil {
			errs = append(errs, d.monitor.Close())
		}
		if d.tagger != nil {
			errs = append(errs, d.tagger.Close())
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}
