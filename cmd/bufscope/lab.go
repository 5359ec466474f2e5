package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	netlab "github.com/bufscope/bufscope/hwprobe/lab"
)

type labOptions struct {
	IO         ioStreams
	Name       string
	Params     netlab.Params
	Output     string
	Overwrite  bool
	NoDeploy   bool
	NoMirror   bool
	NoMsgStart bool
	MsgEvery   uint32 // --message-start-every
	MsgFirst   bool   // --message-start-first-hop
	BPFStats   bool   // bench: --bpf-stats
	TaggerOnly bool
	Bottleneck bool // bench: --bottleneck
	Verbose    bool
	Command    string   // the command line, recorded in the truth file
	Agent      []string // argv prefix of `bufscope lab agent`; empty: this executable
	Runs       int      // bench: repetitions of each phase
	Doc        string   // bench: markdown file to append the results to
}

func newLabCmd(s ioStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run bufscope in a network-namespace lab with injected faults (needs root)",
		Long: `The lab builds clients, servers, a Linux router acting as a switch and a
collector, each in its own network namespace (bsl-<lab>-<node>, addresses in
10.77.0.0/16 only), deploys bufscope on every node, runs a real RPC
workload with request tags on the wire, injects a fault from the catalog
and records the collector into a trace, with a truth file naming the fault
and the workload's own view of every request beside it. See docs/lab.md.`,
		Example: `  bufscope lab list
  sudo bufscope lab run incast -o /tmp/incast.trace.zst
  sudo bufscope lab down`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newLabListCmd(s), newLabRunCmd(s, nil), newLabUpCmd(s, nil), newLabDownCmd(s), newLabBenchCmd(s, nil), newLabAgentCmd(s))
	return cmd
}

func newLabListCmd(s ioStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "Print the fault catalog",
		Example: `  bufscope lab list
  bufscope lab list | cut -f1,4     # names and descriptions`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			return runLabList(s.Out, s.OutTTY)
		},
	}
}

// runLabList prints the catalog: aligned columns on a terminal, one
// tab-separated line per entry otherwise, so scripts can cut fields.
func runLabList(w io.Writer, tty bool) error {
	var tw io.Writer = w
	flush := func() error { return nil }
	if tty {
		t := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		tw, flush = t, t.Flush
	}
	fmt.Fprintln(tw, "FAULT\tEVIDENCE\tDEFAULTS\tDESCRIPTION")
	for _, f := range netlab.Catalog {
		var ev []string
		for _, e := range f.Evidence {
			ev = append(ev, strings.Trim(e.Node+"/"+e.Buffer+"/"+e.Event, "/"))
		}
		d := f.Defaults
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, strings.Join(ev, ","),
			fmt.Sprintf("%dc/%ds %s %s", d.Clients, d.Servers, d.Mode, d.Duration), f.Summary)
	}
	return flush()
}

// bindParams binds the workload and fault flags. Zero values mean "the
// catalog entry's default", which `lab list` and docs/lab.md show.
func bindParams(f *pflag.FlagSet, p *netlab.Params) {
	f.IntVar(&p.Clients, "clients", 0, "client namespaces (1-20)")
	f.IntVar(&p.Servers, "servers", 0, "server namespaces (1-20)")
	f.DurationVar(&p.Duration, "duration", 0, "workload length, e.g. 4s")
	f.StringVar(&p.Mode, "mode", "", "workload: closed (back to back), open (Poisson arrivals) or fanout (frontend calls every server)")
	f.Float64Var(&p.Rate, "rate", 0, "arrivals per second per client (open, fanout)")
	f.IntVar(&p.Concurrency, "concurrency", 0, "connections per client and server")
	f.IntVar(&p.ReqBytes, "req-bytes", 0, "request size in bytes (header of 32 included)")
	f.IntVar(&p.RespBytes, "resp-bytes", 0, "response size in bytes")
	f.StringVar(&p.LinkRate, "link-rate", "", "tc rate of the router's bottleneck queue, e.g. 50mbit")
	f.IntVar(&p.QueueBytes, "queue-bytes", 0, "FIFO limit of the bottleneck (bytes); also the host-qdisc limit")
	f.DurationVar(&p.FaultAt, "fault-at", 0, "fault starts this long after the workload")
	f.DurationVar(&p.FaultFor, "fault-for", 0, "fault lasts this long (0 with no entry default: the whole run)")
	f.Float64Var(&p.LossPercent, "loss", 0, "lossy-link: percent of packets dropped")
	f.DurationVar(&p.AppDelay, "app-delay", 0, "slow-app: processing delay per request")
	f.DurationVar(&p.ReadPause, "read-pause", 0, "slow-reader: pause before reading each request")
	f.IntVar(&p.RcvBuf, "rcvbuf", 0, "slow-reader: server SO_RCVBUF in bytes")
	f.IntVar(&p.SndBuf, "sndbuf", 0, "small-sndbuf: client SO_SNDBUF in bytes")
	f.StringVar(&p.HostRate, "host-rate", "", "host-qdisc: tc rate of the client's egress, e.g. 10mbit")
	f.IntVar(&p.MTU, "mtu", 0, "MTU of every data link in bytes, e.g. 9000 for jumbo frames")
	f.DurationVar(&p.SLO, "slo", 0, "latency SLO written into the truth file")
	f.Uint64Var(&p.Seed, "seed", 0, "random seed of the workload")
}

func newLabRunCmd(s ioStreams, runF func(context.Context, *labOptions, string) error) *cobra.Command {
	opts := &labOptions{IO: s}
	cmd := &cobra.Command{
		Use:   "run FAULT -o TRACE",
		Short: "Run the workload with a fault injected and record a trace and its truth file",
		Long: `Bring a lab up, deploy bufscope on every node, run the workload with FAULT
injected (see 'bufscope lab list'), record the collector into TRACE, write
<base>.truth.json and <base>.requests.jsonl beside it, and tear the lab down.`,
		Example: `  sudo bufscope lab run incast --duration 4s -o fixtures/incast.trace.zst
  sudo bufscope lab run overflow --clients 4 --queue-bytes 20000 -o /tmp/overflow.trace.zst`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Command = commandLine(cmd)
			if runF != nil {
				return runF(cmd.Context(), opts, args[0])
			}
			return runLabRun(cmd.Context(), opts, args[0])
		},
	}
	f := cmd.Flags()
	bindParams(f, &opts.Params)
	f.StringVarP(&opts.Output, "output", "o", "", "trace file to write; truth and requests files go beside it")
	f.BoolVar(&opts.Overwrite, "overwrite", false, "replace existing output files")
	f.StringVar(&opts.Name, "name", "", "lab name (1-6 letters/digits; default from the PID)")
	f.BoolVar(&opts.NoDeploy, "no-deploy", false, "run without tagger and monitors (baseline)")
	f.BoolVar(&opts.NoMirror, "no-mirror", false, "do not record the data plane mirrored from the router")
	f.BoolVar(&opts.NoMsgStart, "no-message-start", false, "deploy without per-message reports (only abnormal events)")
	bindMessageStart(f, opts)
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "print progress and the agents' messages")
	return cmd
}

// bindMessageStart adds the flags that thin out message-start reports.
// Their zero values keep what the fixtures were recorded with.
func bindMessageStart(f *pflag.FlagSet, opts *labOptions) {
	f.Uint32Var(&opts.MsgEvery, "message-start-every", 0, "report the start of 1 message in N, picked by RPC ID so every hop reports the same ones (0, 1: all)")
	f.BoolVar(&opts.MsgFirst, "message-start-first-hop", false, "report a message start only at the sender's qdisc, not again at the router")
}

// commandLine rebuilds the command line as the user typed it, for the
// truth file.
func commandLine(cmd *cobra.Command) string {
	return strings.Join(append([]string{"bufscope"}, os.Args[1:]...), " ")
}

func (o *labOptions) labRunOptions(fault string) (netlab.Options, error) {
	if o.NoMsgStart && (o.MsgEvery > 1 || o.MsgFirst) {
		return netlab.Options{}, usageError{errors.New("--no-message-start: contradicts --message-start-every/--message-start-first-hop; give one or the other")}
	}
	agent := o.Agent
	if len(agent) == 0 {
		self, err := os.Executable()
		if err != nil {
			return netlab.Options{}, fmt.Errorf("lab: finding this executable to run the workload: %w", err)
		}
		agent = []string{self, "lab", "agent"}
	}
	lo := netlab.Options{Fault: fault, Params: o.Params, Output: o.Output, Overwrite: o.Overwrite, Command: o.Command,
		Name: o.Name, Agent: agent, NoDeploy: o.NoDeploy, NoMirror: o.NoMirror, NoMessageStart: o.NoMsgStart,
		MessageStartEvery: o.MsgEvery, MessageStartFirstHop: o.MsgFirst, BPFStats: o.BPFStats, TaggerOnly: o.TaggerOnly, Bottleneck: o.Bottleneck, Log: io.Discard}
	if o.Verbose {
		lo.Log = o.IO.ErrOut
	}
	return lo, nil
}

func runLabRun(ctx context.Context, o *labOptions, fault string) error {
	if netlab.Lookup(fault) == nil {
		return usageError{fmt.Errorf("lab run: fault %q is not in the catalog; 'bufscope lab list' shows it", fault)}
	}
	if o.Output == "" {
		return usageError{errors.New("lab run: no output: give -o TRACE")}
	}
	lo, err := o.labRunOptions(fault)
	if err != nil {
		return err
	}
	res, err := netlab.Run(ctx, lo)
	if err != nil {
		return labError(err)
	}
	ok := 0
	for _, r := range res.Requests {
		if r.Err == "" {
			ok++
		}
	}
	affected := 0
	for _, f := range res.Truth.Faults {
		affected += len(f.AffectedRPCIDs)
	}
	fmt.Fprintf(o.IO.Out, "trace\t%s\ntruth\t%s\nrequests\t%s\ncompleted\t%d\nfailed\t%d\naffected\t%d\n",
		res.Trace, res.TruthPath, res.RequestsPath, ok, len(res.Requests)-ok, affected)
	if sum := res.Summary; sum != nil {
		fmt.Fprintf(o.IO.Out, "packets\t%d\nrequest_starts_reported\t%d\nrequest_starts_on_wire\t%d\n", sum.Packets, len(sum.RequestStarts), len(sum.WireRequests))
		for _, k := range sum.Keys() {
			fmt.Fprintf(o.IO.Out, "event\t%s\t%d\n", k, sum.Events[k])
		}
	}
	return nil
}

// labError maps lab errors onto exit codes.
func labError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrPermission) {
		return privilegeError{err}
	}
	if strings.HasPrefix(err.Error(), "--") || strings.HasPrefix(err.Error(), "-o") {
		return usageError{err}
	}
	return err
}

func newLabUpCmd(s ioStreams, runF func(context.Context, *labOptions) error) *cobra.Command {
	opts := &labOptions{IO: s}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring a lab up with bufscope deployed and servers running, until interrupted",
		Long: `Bring a lab up (namespaces, router queues, collector), deploy bufscope on
every node, start the workload servers, record to -o if given, print the
nodes and wait for SIGINT/SIGTERM; then tear everything down. Run your own
traffic meanwhile with 'ip netns exec bsl-<lab>-c1 …'.`,
		Example: `  sudo bufscope lab up --clients 3 --servers 2 -o /tmp/lab.trace.zst
  # in another terminal, untagged traffic of your own (lab names from the table):
  sudo ip netns exec bsl-<lab>-s1 iperf3 -s -B 10.77.101.2 -1 &
  sudo ip netns exec bsl-<lab>-c1 iperf3 -c 10.77.101.2 -t 5`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runLabUp(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Params.Clients, "clients", 2, "client namespaces (1-20)")
	f.IntVar(&opts.Params.Servers, "servers", 2, "server namespaces (1-20)")
	f.StringVarP(&opts.Output, "output", "o", "", "record the collector into this trace")
	f.BoolVar(&opts.Overwrite, "overwrite", false, "replace an existing trace")
	f.StringVar(&opts.Name, "name", "", "lab name (1-6 letters/digits; default from the PID)")
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "print progress and the agents' messages")
	return cmd
}

func runLabUp(ctx context.Context, o *labOptions) error {
	lo, err := o.labRunOptions("")
	if err != nil {
		return err
	}
	lo.Log = o.IO.ErrOut
	err = netlab.Hold(ctx, lo, func(t *netlab.Topology) {
		tw := tabwriter.NewWriter(o.IO.Out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tROLE\tNODE_ID\tNETNS\tADDRESS\tMGMT")
		for _, n := range t.Nodes {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", n.Name, n.Role, n.NodeID, n.Netns, strings.Join(n.Addrs, ","), n.Mgmt)
		}
		tw.Flush()
		fmt.Fprintln(o.IO.ErrOut, "bufscope: lab up; Ctrl-C tears it down")
	})
	return labError(err)
}

func newLabDownCmd(s ioStreams) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove every lab namespace, cgroup and pin (also leftovers of a crashed lab)",
		Example: `  sudo bufscope lab down              # every lab
  sudo bufscope lab down --name t42    # one lab`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			removed, err := netlab.Down(name)
			for _, r := range removed {
				fmt.Fprintln(s.Out, "removed\t"+r)
			}
			if len(removed) == 0 && err == nil {
				fmt.Fprintln(s.ErrOut, "bufscope: no lab leftovers found")
			}
			if err != nil {
				return fmt.Errorf("lab down: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "remove only this lab (default: every lab)")
	return cmd
}

func newLabAgentCmd(s ioStreams) *cobra.Command {
	return &cobra.Command{
		Use:    "agent CONFIG",
		Short:  "Run one lab workload or collector process (started by the lab itself)",
		Hidden: true,
		Args:   usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return netlab.RunAgent(cmd.Context(), args[0], s.Out)
		},
	}
}

func newLabBenchCmd(s ioStreams, runF func(context.Context, *labOptions) error) *cobra.Command {
	opts := &labOptions{IO: s}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure bufscope's overhead: the same workload with and without deploy",
		Long: `Run the same workload in one lab without and with bufscope deployed,
alternating, and print throughput, RPC latency percentiles, tag and report
bytes as a share of the traffic, collector CPU per 100k reports/s,
stored bytes per request and the CPU of the exporter (this process).
One deployment watches every node, as one host runs one set of monitors.
--bpf-stats adds the kernel's run time of each eBPF program. --doc
appends the results as markdown. The share of the machine's CPU time that
was busy shows whether the workload was bound by the CPUs (the lab's five
nodes share them) or, with --bottleneck, by the link.`,
		Example: `  sudo bufscope lab bench --duration 5s --runs 3 --doc docs/overhead.md

  # message starts of 1 RPC in 16, only where they leave the sender
  sudo bufscope lab bench --message-start-every 16 --message-start-first-hop

  # a workload bound by a 500 Mbit/s link instead of by the CPUs
  sudo bufscope lab bench --bottleneck --link-rate 500mbit`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Command = commandLine(cmd)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runLabBench(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	bindParams(f, &opts.Params)
	f.IntVar(&opts.Runs, "runs", 3, "repetitions of each phase (without, with deploy)")
	f.BoolVar(&opts.NoMsgStart, "no-message-start", false, "deploy without per-message reports (only abnormal events)")
	bindMessageStart(f, opts)
	f.BoolVar(&opts.TaggerOnly, "tagger-only", false, "deploy only the request tagger, no monitors (to attribute the cost)")
	f.BoolVar(&opts.BPFStats, "bpf-stats", false, "turn on the kernel's BPF run time accounting and print each program's cost (adds a little to it)")
	f.BoolVar(&opts.Bottleneck, "bottleneck", false, "shape the router's egress towards every host to --link-rate with a --queue-bytes FIFO: a workload bound by the link, not by the CPUs")
	f.StringVar(&opts.Doc, "doc", "", "append a markdown section with the results to this file")
	f.StringVar(&opts.Name, "name", "", "lab name (1-6 letters/digits; default from the PID)")
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "print progress")
	return cmd
}

func runLabBench(ctx context.Context, o *labOptions) error {
	if o.Runs < 1 || o.Runs > 20 {
		return usageError{fmt.Errorf("--runs %d: use 1 to 20", o.Runs)}
	}
	lo, err := o.labRunOptions("bench")
	if err != nil {
		return err
	}
	res, err := netlab.Bench(ctx, netlab.BenchOptions{Run: lo, Runs: o.Runs})
	if err != nil {
		return labError(err)
	}
	res.WriteText(o.IO.Out)
	if o.Doc != "" {
		f, err := os.OpenFile(o.Doc, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("--doc %s: %w", o.Doc, err)
		}
		defer f.Close()
		if err := res.WriteMarkdown(f, o.Command, time.Now()); err != nil {
			return fmt.Errorf("--doc %s: %w", o.Doc, err)
		}
	}
	return nil
}
