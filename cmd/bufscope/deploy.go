package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/spf13/cobra"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe"
	"github.com/bufscope/bufscope/hwprobe/monitor"
)

type deployOptions struct {
	IO     ioStreams
	Deploy hwprobe.DeployOptions
	// For is how long to stay deployed; 0 means until SIGINT/SIGTERM.
	For time.Duration
}

func newDeployCmd(s ioStreams, runF func(context.Context, *deployOptions) error) *cobra.Command {
	opts := &deployOptions{IO: s}
	th := monitor.DefaultThresholds()
	var netns []string
	cmd := &cobra.Command{
		Use:   "deploy --target linux --collector HOST[:PORT]",
		Short: "Load the request tagger and buffer monitors on this host and export their reports",
		Long: `Deploy bufscope's Linux data plane on this host: the eBPF request tagger
(with --cgroup), the eBPF buffer monitors (socket send and receive queues,
root qdiscs, drops with the kernel's drop reason, TCP retransmissions) and
the exporter that sends their events as Telemetry Report v2.0 packets over
UDP to the collector (docs/monitors.md, docs/wire-format.md).

It prints what it attached, runs until interrupted (SIGINT, SIGTERM) or for
--for, then removes every program, link and pin it created and prints its
counters. It changes no qdisc. Needs root and a kernel with BTF.

With --netns the monitors report only that network namespace; the
exporter's socket is opened in the namespace bufscope runs in, unless
--collector-in-netns opens it inside the watched one. --router reports the
namespace's egress qdiscs as switch queues with standard INT metadata.

--netns may be repeated as NAME=NODE_ID[,router]: one set of monitors and
one exporter then serve every listed namespace, each reported under its
own node ID (and, with ",router", as a switch), each exporting from inside
its own namespace with --collector-in-netns. Every tracepoint then runs one
program per packet however many namespaces are watched.

Message-start reports (one per tagged message at each qdisc it crosses)
can be thinned: --message-start-every N reports 1 message in N, chosen by
RPC ID so that every hop and host picks the same messages;
--message-start-first-hop reports a message only at the qdisc of the host
that sent it. Abnormal events are always reported.`,
		Example: `  # watch the whole host, report to a collector
  sudo bufscope deploy --target linux --collector 10.0.0.9

  # tag the sockets of one cgroup and watch one namespace for a minute
  sudo bufscope deploy --target linux --netns lab1 --cgroup /sys/fs/cgroup/unified/app \
      --collector 127.0.0.1:32766 --for 1m

  # one deployment for two hosts and the router between them
  sudo bufscope deploy --target linux --collector 10.77.250.1 --collector-in-netns \
      --netns h1=101 --netns h2=102 --netns r1=2001,router`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Deploy.Thresholds = th
			if err := parseNetnsFlags(&opts.Deploy, netns, cmd.Flags().Changed("node-id")); err != nil {
				return usageError{err}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runDeploy(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	d := &opts.Deploy
	f.StringVar(&d.Target, "target", "linux", `where to deploy; "linux" is eBPF on this host`)
	f.StringVar(&d.Collector, "collector", "", "collector HOST[:PORT] for the reports (default port 32766)")
	f.StringArrayVar(&netns, "netns", nil, "watch only this network namespace (a name as ip netns list shows it, or a path); repeat as NAME=NODE_ID[,router] to watch several")
	f.BoolVar(&d.Router, "router", false, "the single --netns namespace forwards: report its egress qdiscs as switch queues")
	f.StringVar(&d.Cgroup, "cgroup", "", "cgroup v2 directory whose TCP sockets get the request tag (omit: no tagger)")
	f.BoolVar(&d.CollectorInNetns, "collector-in-netns", false, "open the exporter's socket inside the --netns namespace")
	f.Uint32Var(&d.NodeID, "node-id", 0, "node ID in the reports (default: hash of the host name)")
	f.BoolVar(&d.NoMessageStart, "no-message-start", false, "do not report tagged segments passing the qdisc")
	f.Uint32Var(&d.MessageStartEvery, "message-start-every", 1, "report the start of 1 tagged message in N, picked by RPC ID so every hop reports the same ones")
	f.BoolVar(&d.MessageStartFirstHop, "message-start-first-hop", false, "report a message start only at the qdisc of the host that sent it, not at forwarding hops")
	f.Uint16Var(&d.TagExID, "tag-exid", decode.TagExID, "RFC 6994 ExID of the request tag the tagger writes and the monitors recognise")
	f.DurationVar(&d.FlushInterval, "flush", 20*time.Millisecond, "longest time an event waits to be batched into a report packet")
	f.DurationVar(&opts.For, "for", 0, "stay deployed this long, then clean up (default: until interrupted)")
	f.DurationVar(&th.QdiscResidence, "qdisc-residence", th.QdiscResidence, "report qdisc queuing when a packet waits longer than this")
	f.Uint32Var(&th.QdiscBacklogBytes, "qdisc-backlog", 0, "also report qdisc queuing above this backlog in bytes (0: off)")
	f.DurationVar(&th.QdiscStall, "qdisc-stall", th.QdiscStall, "report a qdisc stall when packets wait and none leaves for this long")
	f.DurationVar(&th.Repeat, "repeat", th.Repeat, "re-report a lasting condition this often")
	f.Uint32Var(&th.SendQueuePercent, "sndq-percent", th.SendQueuePercent, "report a send queue at or above this percentage of its SO_SNDBUF")
	f.DurationVar(&th.ReceiveStall, "rcv-stall", th.ReceiveStall, "report a receive queue whose unread data was not read for this long")
	return cmd
}

// parseNetnsFlags turns the --netns values into DeployOptions: one plain
// name is the single-namespace form (with --node-id and --router as
// before); NAME=NODE_ID[,router] values, or more than one value, become
// Nodes.
func parseNetnsFlags(d *hwprobe.DeployOptions, values []string, nodeIDSet bool) error {
	if len(values) == 1 && !strings.Contains(values[0], "=") {
		d.Netns = values[0]
		return nil
	}
	for _, v := range values {
		name, rest, hasID := strings.Cut(v, "=")
		if name == "" {
			return fmt.Errorf("--netns %q: no namespace name; give NAME or NAME=NODE_ID[,router]", v)
		}
		if !hasID {
			return fmt.Errorf("--netns %s: with more than one --netns give each its node ID: NAME=NODE_ID[,router]", v)
		}
		idText, role, _ := strings.Cut(rest, ",")
		id, err := strconv.ParseUint(idText, 0, 32)
		if err != nil || id == 0 {
			return fmt.Errorf("--netns %s: node ID %q is not a number 1-4294967295", v, idText)
		}
		n := hwprobe.DeployNode{Netns: name, NodeID: uint32(id)}
		switch role {
		case "":
		case "router":
			n.Router = true
		default:
			return fmt.Errorf("--netns %s: unknown role %q after the node ID; the only one is \"router\"", v, role)
		}
		d.Nodes = append(d.Nodes, n)
	}
	if len(d.Nodes) > 0 && nodeIDSet {
		return errors.New("--node-id: the node IDs are given in --netns NAME=NODE_ID; drop --node-id")
	}
	return nil
}

func runDeploy(ctx context.Context, opts *deployOptions) error {
	if opts.Deploy.Collector == "" {
		return usageError{errors.New("--collector is required: give the collector's HOST[:PORT]")}
	}
	if p := opts.Deploy.Thresholds.SendQueuePercent; p == 0 || p > 100 {
		return usageError{fmt.Errorf("--sndq-percent %d: give 1-100", p)}
	}
	if opts.Deploy.NoMessageStart && (opts.Deploy.MessageStartEvery > 1 || opts.Deploy.MessageStartFirstHop) {
		return usageError{errors.New("--no-message-start: contradicts --message-start-every/--message-start-first-hop; give one or the other")}
	}
	if opts.For < 0 {
		return usageError{fmt.Errorf("--for %v: give a positive duration", opts.For)}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if opts.For > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.For)
		defer cancel()
	}

	d, err := hwprobe.Deploy(opts.Deploy)
	if err != nil {
		return deployError(err)
	}
	d.Describe(opts.IO.Out)
	fmt.Fprintln(opts.IO.ErrOut, "bufscope: deployed; Ctrl-C removes everything")
	runErr := d.Run(ctx)
	counters, cerr := d.Counters()
	closeErr := d.Close()
	if cerr == nil {
		counters.WriteCounters(opts.IO.Out)
	}
	if runErr != nil {
		return fmt.Errorf("deploy: %w", runErr)
	}
	if closeErr != nil {
		return fmt.Errorf("deploy: removing what was deployed: %w", closeErr)
	}
	return nil
}

// deployError maps Deploy's errors onto the exit codes.
func deployError(err error) error {
	var fe *hwprobe.FlagError
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return privilegeError{err}
	case errors.As(err, &fe):
		return usageError{err}
	}
	return err
}
