//go:build linux

package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bufscope/bufscope/hwprobe"
	"github.com/bufscope/bufscope/hwprobe/monitor"
	"github.com/bufscope/bufscope/hwprobe/tagger"
	"github.com/cilium/ebpf"
)

// Options configure Run.
type Options struct {
	// Fault is a catalog entry name (see Catalog).
	Fault string
	// Params override the entry's defaults (zero fields keep them).
	Params Params
	// Output is the trace file; the truth and requests files go beside it
	// (<base>.truth.json, <base>.requests.jsonl, where base is Output
	// without .trace.zst or .zst).
	Output    string
	Overwrite bool
	// Command is the command line recorded in the truth file.
	Command string
	// Name of the lab (namespace/cgroup infix); "" picks one.
	Name string
	// Agent is the argv prefix that runs `bufscope lab agent`; the agent's
	// JSON config is appended. Tests point it at their own binary.
	Agent    []string
	AgentEnv []string
	// Log receives progress and the agents' error output; nil discards.
	Log io.Writer
	// NoDeploy runs the workload without tagger, monitors or exporters
	// (the baseline of the overhead measurement).
	NoDeploy bool
	// NoMirror leaves the data plane out of the trace.
	NoMirror bool
	// NoMessageStart deploys the monitors without per-message reports
	// (DeployOptions.NoMessageStart): only abnormal events are exported.
	NoMessageStart bool
	// MessageStartEvery and MessageStartFirstHop thin out the per-message
	// reports (DeployOptions of the same names); zero values report every
	// message at every hop, as the fixtures were recorded.
	MessageStartEvery    uint32
	MessageStartFirstHop bool
	// BPFStats turns on the kernel's per-program run time accounting
	// (kernel.bpf_stats_enabled) for the run and fills Result.BPF. The
	// accounting itself costs a little per program run.
	BPFStats bool
	// TaggerOnly loads the request tagger but no monitors or exporters,
	// to tell the tagger's cost from the monitors' in the overhead bench.
	TaggerOnly bool
	// Bottleneck shapes the router's egress towards every client and
	// server at Params.LinkRate (a tbf in front of a Params.QueueBytes
	// FIFO) before the fault's own setup: the workload is then bound by
	// the link, as a production service is by its network or its work,
	// instead of by the CPUs the lab's five nodes share.
	Bottleneck bool
}

// Result is what Run produced.
type Result struct {
	Trace, TruthPath, RequestsPath string
	Truth                          *Truth
	Requests                       []RequestLog
	Deploy                         []hwprobe.DeployCounters // of the one deployment serving every node
	CollectorStats                 string                   // the collector agent's counters line
	CollectorCPU                   time.Duration            // user + system time of the collector
	Elapsed                        time.Duration            // workload start to end
	RouterBytes                    uint64                   // bytes received by the router from the hosts (the data plane)
	Summary                        *TraceSummary            // what the trace holds, read back
	Tagger                         *tagger.Stats            // the lab's tagger, nil without deploy
	CaptureDrops                   uint64                   // packets the collector's capture lost in the kernel
	Programs                       []ebpf.ProgramID         // every BPF program the run loaded (all gone after Run)
	// BPF is the kernel's accounting of the monitor programs and the
	// tagger (Options.BPFStats), read when the workload ended.
	BPF []monitor.ProgramStat
	// SelfCPU is this process's user + system time during the workload:
	// with deploy, mostly the exporter; without, the runner's idle cost.
	SelfCPU time.Duration
	// MachineBusy is the share of all the machine's CPU time that was
	// busy during the workload (/proc/stat), whatever ran: near 1, the
	// workload was bound by the CPUs.
	MachineBusy float64
}

// runner is one run in progress.
type runner struct {
	opts   Options
	p      Params
	fault  *Fault
	topo   *Topology
	tmp    string
	t0     time.Time // workload start
	tagPin string    // what agents pass to openTags
	tags   *ebpf.Map // the tagger's map, handed to agents
	tagger *tagger.Tagger

	servers map[string]*ServerConfig // by node name; faults adjust them
	clients map[string]*ClientConfig
	bulk    []struct {
		node string
		cfg  BulkConfig
	}
	actions []action // timed changes (stalls)
	truth   []truthSpec
	cleanup []func()
	agents  []*agent
	// programs are the kernel IDs of the programs loaded, for the check
	// that teardown removed them.
	programs []ebpf.ProgramID
	// drops is the lossy link's log of what it dropped, nil without one.
	drops *dropLog
}

// action is a change made at a time relative to the workload start.
type action struct {
	at time.Duration
	do func() error
}

// truthSpec is a fault as the catalog entry describes it; the affected
// requests are filled in after the run.
type truthSpec struct {
	fault TruthFault
	// victim says whether a request crossed the faulty buffer.
	victim func(RequestLog) bool
	// grace extends the window in which requests count as affected: a
	// queue drains, a loss is recovered after the fault ends.
	grace time.Duration
	// notes, when set, is appended to the fault's notes once the run is
	// over (what the injector saw).
	notes func() string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.opts.Log, "lab: "+format+"\n", args...)
}

// Run brings a lab up, deploys bufscope on every node, runs the workload
// with the fault injected, records the collector, writes the trace, the
// truth and the requests file, and tears everything down (also on error
// and when ctx is cancelled). Runs of labs with different names may go on
// at the same time; the Result and its slices belong to the caller.
func Run(ctx context.Context, opts Options) (res *Result, err error) {
	f := Lookup(opts.Fault)
	if f == nil {
		return nil, fmt.Errorf("fault %q is not in the catalog; `bufscope lab list` shows it", opts.Fault)
	}
	if opts.Output == "" {
		return nil, errors.New("-o: no output trace given")
	}
	if len(opts.Agent) == 0 {
		return nil, errors.New("lab: Options.Agent is empty: nothing can run the workload")
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	p := opts.Params.merge(f.Defaults)
	if err := p.check(); err != nil {
		return nil, err
	}
	if !opts.Overwrite {
		if _, err := os.Stat(opts.Output); err == nil {
			return nil, fmt.Errorf("-o %s: file exists; give --overwrite to replace it", opts.Output)
		}
	}
	r := &runner{opts: opts, p: p, fault: f, servers: map[string]*ServerConfig{}, clients: map[string]*ClientConfig{}}
	r.tmp, err = os.MkdirTemp("", "bufscope-lab-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.tmp)
	r.topo, err = Up(Spec{Name: opts.Name, Clients: p.Clients, Servers: p.Servers, Mirror: !opts.NoMirror, MTU: p.MTU})
	if err != nil {
		return nil, err
	}
	r.logf("lab %s up: %d clients, %d servers, router r1, collector col", r.topo.Name, p.Clients, p.Servers)
	defer func() {
		for i := len(r.cleanup) - 1; i >= 0; i-- {
			r.cleanup[i]()
		}
		for _, a := range r.agents {
			a.kill()
		}
		if _, derr := Down(r.topo.Name); derr != nil {
			err = errors.Join(err, fmt.Errorf("tearing down lab %s: %w", r.topo.Name, derr))
		}
	}()
	return r.run(ctx)
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	res := &Result{Trace: r.opts.Output}
	defer func() { res.Programs = r.programs }()
	base := strings.TrimSuffix(strings.TrimSuffix(r.opts.Output, ".zst"), ".trace")
	res.TruthPath, res.RequestsPath = base+".truth.json", base+".requests.jsonl"

	// The collector starts first, so the first reports are recorded.
	nodes, _ := json.Marshal(r.truthNodes())
	ifs := []string{"br0"}
	if !r.opts.NoMirror {
		ifs = append(ifs, "mir0")
	}
	col, err := r.startAgent("col", r.topo.Collector().Netns, "", AgentConfig{Collector: &CollectorConfig{
		Interfaces: ifs, Output: r.opts.Output, Nodes: nodes, Overwrite: r.opts.Overwrite}})
	if err != nil {
		return nil, err
	}
	r.agents = append(r.agents, col)

	deployCtx, stopDeploy := context.WithCancel(context.Background())
	var deployWG sync.WaitGroup
	var deps []*hwprobe.Deployment
	r.cleanup = append(r.cleanup, func() {
		stopDeploy()
		deployWG.Wait()
		for _, d := range deps {
			d.Close()
		}
	})
	if r.opts.BPFStats {
		st, err := monitor.EnableKernelStats()
		if err != nil {
			return nil, err
		}
		r.cleanup = append(r.cleanup, func() { st.Close() })
	}
	if !r.opts.NoDeploy {
		if deps, err = r.deploy(deployCtx, &deployWG); err != nil {
			return nil, err
		}
	}

	// Workload defaults: every client calls every server.
	for _, s := range r.topo.ByRole(RoleServer) {
		r.servers[s.Name] = &ServerConfig{Listen: fmt.Sprintf("%s:%d", s.Addrs[0], ServerPort), TagsPin: r.tagPin}
	}
	r.t0 = time.Now().Add(1500 * time.Millisecond)
	for i, c := range r.topo.ByRole(RoleClient) {
		cfg := &ClientConfig{Name: c.Name, TagsPin: r.tagPin, Mode: r.p.Mode, Rate: r.p.Rate, Concurrency: r.p.Concurrency,
			ReqBytes: r.p.ReqBytes, RespBytes: r.p.RespBytes, Start: r.t0, Duration: r.p.Duration,
			Seed: r.p.Seed + uint64(i)*7919 + 1, Output: filepath.Join(r.tmp, c.Name+".jsonl")}
		for _, s := range r.topo.ByRole(RoleServer) {
			cfg.Servers = append(cfg.Servers, fmt.Sprintf("%s=%s:%d", s.Name, s.Addrs[0], ServerPort))
		}
		r.clients[c.Name] = cfg
	}
	if r.opts.Bottleneck {
		for _, n := range append(r.topo.ByRole(RoleClient), r.topo.ByRole(RoleServer)...) {
			if err := r.shape(n.Name); err != nil {
				return nil, fmt.Errorf("bottleneck towards %s: %w", n.Name, err)
			}
		}
	}
	if err := r.fault.setup(r); err != nil {
		return nil, fmt.Errorf("fault %s: %w", r.fault.Name, err)
	}

	for _, s := range r.topo.ByRole(RoleServer) {
		a, err := r.startAgent(s.Name, s.Netns, s.Cgroup, AgentConfig{Server: r.servers[s.Name]})
		if err != nil {
			return nil, err
		}
		r.agents = append(r.agents, a)
	}
	for _, b := range r.bulk {
		n := r.topo.Node(b.node)
		a, err := r.startAgent(b.node+"-bulk", n.Netns, n.Cgroup, AgentConfig{Bulk: &b.cfg})
		if err != nil {
			return nil, err
		}
		r.agents = append(r.agents, a)
	}
	var clients []*agent
	for _, c := range r.topo.ByRole(RoleClient) {
		cfg := r.clients[c.Name]
		if len(cfg.Servers) == 0 {
			continue
		}
		a, err := r.startAgent(c.Name, c.Netns, c.Cgroup, AgentConfig{Client: cfg})
		if err != nil {
			return nil, err
		}
		r.agents = append(r.agents, a)
		clients = append(clients, a)
	}
	if time.Now().After(r.t0) {
		r.logf("warning: setting up took longer than the 1.5 s head start; the workload started late")
	}
	r.logf("workload from %s for %s, fault %s", r.t0.Format(time.RFC3339Nano), r.p.Duration, r.fault.Name)

	time.Sleep(time.Until(r.t0))
	cpu0 := selfCPU()
	busy0, total0 := cpuTicks()
	actErr := make(chan error, 1)
	go func() { actErr <- r.runActions(ctx) }()
	var errs []error
	for _, a := range clients {
		if err := a.wait(time.Until(r.t0) + r.p.Duration + 20*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	res.Elapsed = time.Since(r.t0)
	res.SelfCPU = selfCPU() - cpu0
	if busy1, total1 := cpuTicks(); total1 > total0 {
		res.MachineBusy = float64(busy1-busy0) / float64(total1-total0)
	}
	res.RouterBytes = r.routerBytes()
	if r.opts.BPFStats {
		res.BPF = r.programStats(deps)
	}
	errs = append(errs, <-actErr)
	for _, a := range r.agents[1:] {
		if !a.hasExited() {
			errs = append(errs, a.stop(5*time.Second))
		}
	}
	// Give the exporters a flush interval to send the last events, then
	// stop them, then the recorder.
	time.Sleep(200 * time.Millisecond)
	stopDeploy()
	deployWG.Wait()
	for i, d := range deps {
		c, err := d.Counters()
		if err == nil {
			res.Deploy = append(res.Deploy, c)
			var b strings.Builder
			c.WriteCounters(&b)
			r.logf("deployment %d counters: %s", i, strings.ReplaceAll(strings.TrimSpace(b.String()), "\n", " "))
		}
	}
	if r.tagger != nil {
		if st, err := r.tagger.Stats(); err == nil {
			res.Tagger = &st
		}
	}
	time.Sleep(100 * time.Millisecond)
	errs = append(errs, col.stop(10*time.Second))
	res.CollectorStats = col.stats
	if col.hasExited() {
		ps := col.cmd.ProcessState
		res.CollectorCPU = ps.UserTime() + ps.SystemTime()
	}
	fmt.Sscanf(col.stats, "collector-stats packets=%d bytes=%d wire=%d drops=%d", new(uint64), new(uint64), new(uint64), &res.CaptureDrops)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := r.collectRequests(res); err != nil {
		return nil, err
	}
	if r.drops != nil {
		r.drops.finish()
	}
	if err := r.writeTruth(res); err != nil {
		return nil, err
	}
	names := map[uint32]string{}
	for _, n := range r.topo.Nodes {
		names[n.NodeID] = n.Name
	}
	if res.Summary, err = Inspect(r.opts.Output, names); err != nil {
		return nil, fmt.Errorf("reading back %s: %w", r.opts.Output, err)
	}
	return res, nil
}

// deploy loads one request tagger on the lab's parent cgroup and one
// hwprobe deployment that watches every node's namespace, each reported
// under its node ID and exporting from inside its own namespace to the
// collector. One deployment is what a real host runs: each tracepoint of
// the shared kernel runs one monitor program per packet, not one per node.
func (r *runner) deploy(ctx context.Context, wg *sync.WaitGroup) ([]*hwprobe.Deployment, error) {
	// One tagger for all workload cgroups: Deploy pins its tags map under
	// one fixed name, so a second Deploy with a cgroup would collide; a
	// cgroup program also covers the cgroups below it.
	name := PinPrefix + r.topo.Name
	t, err := tagger.Load(tagger.Options{CgroupPath: r.topo.CgroupDir, Name: name})
	if err != nil {
		return nil, fmt.Errorf("deploy: tagger on %s: %w", r.topo.CgroupDir, err)
	}
	r.cleanup = append(r.cleanup, func() { t.Close() })
	r.tags, r.tagPin, r.tagger = t.Tags(), "fd", t
	if info, err := t.Program().Info(); err == nil {
		if id, ok := info.ID(); ok {
			r.programs = append(r.programs, id)
		}
	}
	if r.opts.TaggerOnly {
		r.logf("tagger only on %s, tags map pinned at %s", r.topo.CgroupDir, t.PinPath())
		return nil, nil
	}
	var nodes []hwprobe.DeployNode
	for _, n := range r.topo.Nodes {
		if n.Role == RoleCollector {
			continue
		}
		nodes = append(nodes, hwprobe.DeployNode{Netns: n.Netns, NodeID: n.NodeID, Router: n.Role == RoleRouter})
	}
	d, err := hwprobe.Deploy(hwprobe.DeployOptions{
		Target: "linux", Nodes: nodes,
		Collector: fmt.Sprintf("%s:%d", CollectorIP, ReportPort), CollectorInNetns: true,
		NoMessageStart: r.opts.NoMessageStart, MessageStartEvery: r.opts.MessageStartEvery,
		MessageStartFirstHop: r.opts.MessageStartFirstHop,
	})
	if err != nil {
		return nil, fmt.Errorf("deploy on %d nodes: %w", len(nodes), err)
	}
	r.programs = append(r.programs, d.Programs()...)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.Run(ctx); err != nil && ctx.Err() == nil {
			r.logf("exporter: %v", err)
		}
	}()
	r.logf("deployed on %d nodes; tagger on %s, tags map pinned at %s", len(nodes), r.topo.CgroupDir, t.PinPath())
	return []*hwprobe.Deployment{d}, nil
}

func (r *runner) runActions(ctx context.Context) error {
	sort.SliceStable(r.actions, func(i, j int) bool { return r.actions[i].at < r.actions[j].at })
	for _, a := range r.actions {
		select {
		case <-time.After(time.Until(r.t0.Add(a.at))):
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := a.do(); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) truthNodes() []TruthNode {
	var out []TruthNode
	for _, n := range r.topo.Nodes {
		addrs := n.Addrs
		if addrs == nil {
			addrs = []string{}
		}
		if n.Role == RoleCollector {
			addrs = []string{CollectorIP}
		}
		out = append(out, TruthNode{Name: n.Name, Role: n.Role, NodeID: n.NodeID, Addrs: addrs})
	}
	return out
}

// collectRequests merges the clients' request files, sorted by start.
func (r *runner) collectRequests(res *Result) error {
	files, _ := filepath.Glob(filepath.Join(r.tmp, "*.jsonl"))
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		s := bufio.NewScanner(fh)
		for s.Scan() {
			var rl RequestLog
			if err := json.Unmarshal(s.Bytes(), &rl); err != nil {
				fh.Close()
				return fmt.Errorf("%s: %w", f, err)
			}
			res.Requests = append(res.Requests, rl)
		}
		fh.Close()
	}
	sort.SliceStable(res.Requests, func(i, j int) bool { return res.Requests[i].Start.Before(res.Requests[j].Start) })
	out, err := os.Create(res.RequestsPath)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	enc := json.NewEncoder(bw)
	for _, rl := range res.Requests {
		if err := enc.Encode(rl); err != nil {
			out.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeTruth fills in the affected requests and writes the truth file.
func (r *runner) writeTruth(res *Result) error {
	t := &Truth{Schema: TruthSchema, Fault: r.fault.Name, Command: r.opts.Command, Trace: filepath.Base(r.opts.Output),
		Topology: TruthTopology{Nodes: r.truthNodes()}, SLO: r.p.SLO.String(), Faults: []TruthFault{}}
	for _, rl := range res.Requests {
		if rl.Err == "" {
			t.Requests++
		}
	}
	for _, ts := range r.truth {
		tf := ts.fault
		tf.AffectedRPCIDs = []string{}
		if tf.CulpritFlows == nil {
			tf.CulpritFlows = []string{}
		}
		until := tf.End.Add(ts.grace)
		for _, rl := range res.Requests {
			if rl.Err != "" || rl.Latency() <= r.p.SLO || rl.End.Before(tf.Start) || rl.Start.After(until) {
				continue
			}
			if ts.victim == nil || ts.victim(rl) {
				tf.AffectedRPCIDs = append(tf.AffectedRPCIDs, rl.RPCID)
			}
		}
		if ts.notes != nil {
			tf.Notes += ts.notes()
		}
		t.Faults = append(t.Faults, tf)
	}
	var b bytes.Buffer
	if err := t.Encode(&b); err != nil {
		return err
	}
	res.Truth = t
	return os.WriteFile(res.TruthPath, b.Bytes(), 0o644)
}

// programStats sums the kernel's run counts and times per program name
// over the deployments, with the tagger's as "tagger".
func (r *runner) programStats(deps []*hwprobe.Deployment) []monitor.ProgramStat {
	var out []monitor.ProgramStat
	add := func(st monitor.ProgramStat) {
		for i := range out {
			if out[i].Program == st.Program {
				out[i].RunCount += st.RunCount
				out[i].Runtime += st.Runtime
				return
			}
		}
		out = append(out, st)
	}
	if r.tagger != nil {
		if st, err := r.tagger.Program().Stats(); err == nil {
			add(monitor.ProgramStat{Program: "tagger", RunCount: st.RunCount, Runtime: st.Runtime})
		}
	}
	for _, d := range deps {
		sts, err := d.ProgramStats()
		if err != nil {
			r.logf("reading program stats: %v", err)
			continue
		}
		for _, st := range sts {
			add(st)
		}
	}
	return out
}

// routerBytes sums the bytes the router received on its host-facing
// interfaces: the data plane's traffic, headers included.
func (r *runner) routerBytes() uint64 {
	rt := r.topo.Router()
	out, err := exec.Command("ip", "-n", rt.Netns, "-j", "-s", "link", "show").Output()
	if err != nil {
		return 0
	}
	var links []struct {
		Ifname  string `json:"ifname"`
		Stats64 struct {
			Rx struct {
				Bytes uint64 `json:"bytes"`
			} `json:"rx"`
		} `json:"stats64"`
	}
	if json.Unmarshal(out, &links) != nil {
		return 0
	}
	var sum uint64
	for _, l := range links {
		if strings.HasPrefix(l.Ifname, "r1-") {
			sum += l.Stats64.Rx.Bytes
		}
	}
	return sum
}

// Hold brings a lab up with bufscope deployed and the workload servers
// running, records to opts.Output when set, calls onUp, and waits for ctx
// to be done; then it tears everything down.
func Hold(ctx context.Context, opts Options, onUp func(*Topology)) (err error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	p := opts.Params.merge(Lookup("none").Defaults)
	r := &runner{opts: opts, p: p, servers: map[string]*ServerConfig{}}
	r.topo, err = Up(Spec{Name: opts.Name, Clients: p.Clients, Servers: p.Servers, Mirror: opts.Output != ""})
	if err != nil {
		return err
	}
	defer func() {
		for i := len(r.cleanup) - 1; i >= 0; i-- {
			r.cleanup[i]()
		}
		for _, a := range r.agents {
			_ = a.stop(5 * time.Second)
		}
		if _, derr := Down(r.topo.Name); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if opts.Output != "" {
		nodes, _ := json.Marshal(r.truthNodes())
		col, err := r.startAgent("col", r.topo.Collector().Netns, "", AgentConfig{Collector: &CollectorConfig{
			Interfaces: []string{"br0", "mir0"}, Output: opts.Output, Nodes: nodes, Overwrite: opts.Overwrite}})
		if err != nil {
			return err
		}
		r.agents = append(r.agents, col)
	}
	deployCtx, stopDeploy := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	deps, err := r.deploy(deployCtx, &wg)
	if err != nil {
		stopDeploy()
		return err
	}
	r.cleanup = append(r.cleanup, func() {
		stopDeploy()
		wg.Wait()
		for _, d := range deps {
			d.Close()
		}
	})
	for _, s := range r.topo.ByRole(RoleServer) {
		a, err := r.startAgent(s.Name, s.Netns, s.Cgroup, AgentConfig{Server: &ServerConfig{
			Listen: fmt.Sprintf("%s:%d", s.Addrs[0], ServerPort), TagsPin: r.tagPin}})
		if err != nil {
			return err
		}
		r.agents = append([]*agent{a}, r.agents...) // stopped before the collector
	}
	onUp(r.topo)
	<-ctx.Done()
	return nil
}
