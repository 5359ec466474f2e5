//go:build linux

package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Name prefixes of everything a lab creates; Down finds leftovers by them.
const (
	NetnsPrefix  = "bsl-"
	CgroupPrefix = "bufscope-lab-"
	PinPrefix    = "bsl-"
	PinDir       = "/sys/fs/bpf/bufscope"
)

// Lab addresses: everything lives in 10.77.0.0/16, inside the lab's own
// namespaces. Client i's link is 10.77.i.0/24, server j's 10.77.(100+j).0/24
// (host .2, router .1); the management network that carries reports to the
// collector is 10.77.250.0/24 (collector .1).
const (
	CollectorIP = "10.77.250.1"
	ReportPort  = 32766
	ServerPort  = 9000
	BulkPort    = 9100
)

// Roles of lab nodes.
const (
	RoleClient    = "client"
	RoleServer    = "server"
	RoleRouter    = "router"
	RoleCollector = "collector"
)

// Node is one network namespace of a lab.
type Node struct {
	Name   string   `json:"name"` // c1, s1, r1, col
	Role   string   `json:"role"`
	NodeID uint32   `json:"node_id,omitempty"` // in the reports' group header; 0 for the collector
	Addrs  []string `json:"addrs"`             // data-plane addresses
	Netns  string   `json:"netns"`
	Mgmt   string   `json:"mgmt"` // management address (reports leave from it)
	Cgroup string   `json:"-"`
	// Ifname of the node's data interface; for the router, RouterIfs lists
	// the interface towards each host by host name.
	Ifname    string            `json:"ifname,omitempty"`
	RouterIfs map[string]string `json:"router_ifs,omitempty"`
}

// Spec sizes a lab.
type Spec struct {
	// Name is the lab's short ID (letters and digits, at most 6), part of
	// every namespace and cgroup name. Empty picks one from the PID.
	Name    string
	Clients int // 1-20
	Servers int // 1-20
	// Mirror copies every data packet entering the router to an interface
	// of the collector, so the trace holds the data plane too (request
	// timing, message ends). On by default in the commands.
	Mirror bool
	// MTU of every host's data link (both ends) and of the mirror; 0
	// leaves the veth default, 1500.
	MTU int
}

// Topology is a lab that is up: its namespaces, links and cgroups.
type Topology struct {
	Name      string
	Nodes     []*Node
	CgroupDir string // the lab's parent cgroup; the tagger attaches here
}

var labName = regexp.MustCompile(`^[a-z0-9]{1,6}$`)

// Node returns the node with the given name, or nil.
func (t *Topology) Node(name string) *Node {
	for _, n := range t.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// ByRole lists the nodes of a role in order.
func (t *Topology) ByRole(role string) []*Node {
	var out []*Node
	for _, n := range t.Nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// Router is the lab's router.
func (t *Topology) Router() *Node { return t.Node("r1") }

// Collector is the lab's collector.
func (t *Topology) Collector() *Node { return t.Node("col") }

// CheckHost reports what this host lacks to run a lab.
func CheckHost() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the lab creates network namespaces and loads eBPF programs: run it as root: %w", os.ErrPermission)
	}
	for _, tool := range []string{"ip", "tc", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the lab needs %s in PATH (apt-get install iproute2 tcpdump): %w", tool, err)
		}
	}
	return nil
}

// Up creates the lab's namespaces, links, qdiscs and cgroups. On error it
// removes what it created.
func Up(spec Spec) (t *Topology, err error) {
	if err := CheckHost(); err != nil {
		return nil, err
	}
	if spec.Name == "" {
		spec.Name = strconv.FormatInt(int64(os.Getpid()%46656), 36)
	}
	switch {
	case !labName.MatchString(spec.Name):
		return nil, fmt.Errorf("--name %q: use 1-6 lower-case letters or digits", spec.Name)
	case spec.Clients < 1 || spec.Clients > 20:
		return nil, fmt.Errorf("--clients %d: use 1 to 20", spec.Clients)
	case spec.Servers < 1 || spec.Servers > 20:
		return nil, fmt.Errorf("--servers %d: use 1 to 20", spec.Servers)
	}
	if _, err := os.Stat(netnsPath(NetnsPrefix + spec.Name + "-r1")); err == nil {
		return nil, fmt.Errorf("--name %s: a lab of that name is up; run `bufscope lab down --name %s` first", spec.Name, spec.Name)
	}
	cgRoot, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	t = &Topology{Name: spec.Name, CgroupDir: filepath.Join(cgRoot, CgroupPrefix+spec.Name)}
	defer func() {
		if err != nil {
			Down(spec.Name)
			t = nil
		}
	}()
	if err := os.Mkdir(t.CgroupDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", t.CgroupDir, err)
	}
	ns := func(n string) string { return NetnsPrefix + spec.Name + "-" + n }
	add := func(name, role string, id uint32) *Node {
		n := &Node{Name: name, Role: role, NodeID: id, Netns: ns(name)}
		t.Nodes = append(t.Nodes, n)
		return n
	}
	for i := 1; i <= spec.Clients; i++ {
		n := add(fmt.Sprintf("c%d", i), RoleClient, uint32(1000+i))
		n.Addrs = []string{fmt.Sprintf("10.77.%d.2", i)}
	}
	for j := 1; j <= spec.Servers; j++ {
		n := add(fmt.Sprintf("s%d", j), RoleServer, uint32(1500+j))
		n.Addrs = []string{fmt.Sprintf("10.77.%d.2", 100+j)}
	}
	r := add("r1", RoleRouter, 2001)
	r.RouterIfs = map[string]string{}
	col := add("col", RoleCollector, 0)
	col.Mgmt = CollectorIP

	for _, n := range t.Nodes {
		if err := sh("ip", "netns", "add", n.Netns); err != nil {
			return nil, err
		}
		if err := ipn(n.Netns, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
		// IPv4 only: IPv6 link-up chatter would show as noise.
		if err := sh("ip", "netns", "exec", n.Netns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return nil, err
		}
		if n.Role == RoleClient || n.Role == RoleServer {
			n.Cgroup = filepath.Join(t.CgroupDir, n.Name)
			if err := os.Mkdir(n.Cgroup, 0o755); err != nil {
				return nil, fmt.Errorf("creating cgroup %s: %w", n.Cgroup, err)
			}
		}
	}
	if err := t.mgmt(); err != nil {
		return nil, err
	}
	if err := t.dataLinks(spec.MTU); err != nil {
		return nil, err
	}
	if spec.Mirror {
		if err := t.mirror(spec.MTU); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// mgmt builds the management network: a bridge in the collector and one
// veth from every other node into it.
func (t *Topology) mgmt() error {
	col := t.Collector()
	steps := [][]string{
		{"link", "add", "br0", "type", "bridge"},
		{"addr", "add", CollectorIP + "/24", "dev", "br0"},
		{"link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := ipn(col.Netns, s...); err != nil {
			return err
		}
	}
	k := 10
	for _, n := range t.Nodes {
		if n == col {
			continue
		}
		n.Mgmt = fmt.Sprintf("10.77.250.%d", k)
		k++
		port := "m-" + n.Name
		if err := sh("ip", "link", "add", "mgmt0", "netns", n.Netns, "type", "veth", "peer", "name", port, "netns", col.Netns); err != nil {
			return err
		}
		if err := ipn(col.Netns, "link", "set", port, "master", "br0", "up"); err != nil {
			return err
		}
		if err := ipn(n.Netns, "addr", "add", n.Mgmt+"/24", "dev", "mgmt0"); err != nil {
			return err
		}
		if err := ipn(n.Netns, "link", "set", "mgmt0", "up"); err != nil {
			return err
		}
	}
	return nil
}

// dataLinks joins every host to the router with its own veth pair and
// subnet. Segmentation offload is off on both ends (gso_max_segs 1), so
// every skb in a qdisc is one wire segment: qdisc events then describe real
// packets and tbf/bfifo limits count real segments. Hosts and the router
// get an explicit root qdisc (a veth has none, and the monitors only see
// root qdiscs); faults replace it. It is a tbf far faster than the veth,
// not a pfifo: an idle pfifo lets packets bypass enqueue and dequeue
// (TCQ_F_CAN_BYPASS), so the monitors would never see a message start.
// An mtu other than 0 is set on both ends of every link.
func (t *Topology) dataLinks(mtu int) error {
	r := t.Router()
	if err := sh("ip", "netns", "exec", r.Netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	for _, n := range t.Nodes {
		if n.Role != RoleClient && n.Role != RoleServer {
			continue
		}
		rif := "r1-" + n.Name
		r.RouterIfs[n.Name] = rif
		n.Ifname = "eth0"
		gw := strings.TrimSuffix(n.Addrs[0], ".2") + ".1"
		if err := sh("ip", "link", "add", "eth0", "netns", n.Netns, "type", "veth", "peer", "name", rif, "netns", r.Netns); err != nil {
			return err
		}
		var mtuArgs []string
		if mtu != 0 {
			mtuArgs = []string{"mtu", fmt.Sprint(mtu)}
		}
		steps := []struct {
			ns   string
			args []string
		}{
			{n.Netns, []string{"addr", "add", n.Addrs[0] + "/24", "dev", "eth0"}},
			{r.Netns, []string{"addr", "add", gw + "/24", "dev", rif}},
			{n.Netns, append([]string{"link", "set", "eth0", "gso_max_segs", "1", "up"}, mtuArgs...)},
			{r.Netns, append([]string{"link", "set", rif, "gso_max_segs", "1", "up"}, mtuArgs...)},
			{n.Netns, []string{"route", "add", "10.77.0.0/17", "via", gw}},
		}
		for _, s := range steps {
			if err := ipn(s.ns, s.args...); err != nil {
				return err
			}
		}
		r.Addrs = append(r.Addrs, gw)
		if err := tcn(n.Netns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", openRate, "burst", "256kb", "limit", "1mb"); err != nil {
			return err
		}
		if err := tcn(r.Netns, "qdisc", "replace", "dev", rif, "root", "tbf", "rate", openRate, "burst", "256kb", "limit", "1mb"); err != nil {
			return err
		}
	}
	return nil
}

// openRate is the rate of a host's or router's default qdisc: no shaping.
const openRate = "10gbit"

// mirror copies every packet entering the router from a host to mir0,
// whose peer is in the collector: the data plane as the router's ingress
// sees it, before any router queue. Its MTU is at least the data
// links' mtu: a veth drops a packet longer than its peer's MTU, and the
// mirror must copy every data packet whole (the capture cuts them).
func (t *Topology) mirror(mtu int) error {
	r, col := t.Router(), t.Collector()
	if err := sh("ip", "link", "add", "mir0", "netns", r.Netns, "type", "veth", "peer", "name", "mir0", "netns", col.Netns); err != nil {
		return err
	}
	args := []string{"link", "set", "mir0", "up"}
	if mtu > 1500 {
		args = append(args, "mtu", fmt.Sprint(mtu))
	}
	for _, ns := range []string{r.Netns, col.Netns} {
		if err := ipn(ns, args...); err != nil {
			return err
		}
	}
	for _, rif := range r.RouterIfs {
		if err := tcn(r.Netns, "qdisc", "add", "dev", rif, "clsact"); err != nil {
			return err
		}
		if err := tcn(r.Netns, "filter", "add", "dev", rif, "ingress", "protocol", "ip", "u32", "match", "u32", "0", "0",
			"action", "mirred", "egress", "mirror", "dev", "mir0"); err != nil {
			return err
		}
	}
	return nil
}

// Down removes every namespace, cgroup and pin of the lab name, or of
// every lab when name is "": also the leftovers of a lab whose process was
// killed. Processes still in the lab's cgroups (workload agents) are
// killed first, so the namespaces really go away. It returns what it
// removed, one item per line, and the errors it met.
func Down(name string) ([]string, error) {
	var removed []string
	var errs []error
	cgRoot, err := cgroup2Root()
	if err == nil {
		pattern := filepath.Join(cgRoot, CgroupPrefix+name+"*")
		if name != "" {
			pattern = filepath.Join(cgRoot, CgroupPrefix+name)
		}
		dirs, _ := filepath.Glob(pattern)
		for _, d := range dirs {
			if err := removeCgroup(d); err != nil {
				errs = append(errs, err)
			} else {
				removed = append(removed, "cgroup "+d)
			}
		}
	}
	nsPattern := NetnsPrefix + name + "-*"
	if name == "" {
		nsPattern = NetnsPrefix + "*"
	}
	nss, _ := filepath.Glob(filepath.Join("/var/run/netns", nsPattern))
	for _, p := range nss {
		n := filepath.Base(p)
		if err := sh("ip", "netns", "del", n); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, "netns "+n)
		}
	}
	pinPattern := PinPrefix + name
	if name == "" {
		pinPattern = PinPrefix + "*"
	}
	pins, _ := filepath.Glob(filepath.Join(PinDir, pinPattern))
	for _, p := range pins {
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, "pin "+p)
		}
	}
	return removed, errors.Join(errs...)
}

// removeCgroup kills the processes left in a lab cgroup tree (only lab
// agents are ever placed there) and removes the tree, children first.
func removeCgroup(dir string) error {
	subs, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
	for _, s := range subs {
		if err := removeCgroup(filepath.Dir(s)); err != nil {
			return err
		}
	}
	var last error
	for try := 0; try < 50; try++ {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if last = os.Remove(dir); last == nil || os.IsNotExist(last) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", dir, last)
}
