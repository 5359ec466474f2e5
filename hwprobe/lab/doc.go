// Package lab builds bufscope's network-namespace lab: clients, servers, a
// Linux router acting as a switch with a bottleneck egress queue, and a
// collector, each in its own network namespace (named bsl-<lab>-<node>);
// runs a real RPC workload through it with request tags on the wire; injects
// the faults of a catalog (Catalog); and records the collector's traffic
// into a trace with a truth file naming what was injected (docs/lab.md,
// docs/truth.md).
//
// One hwprobe.Deploy serves every node, as one host runs one set of
// monitors: the equivalent of `bufscope deploy --target linux` with one
// `--netns NAME=NODE_ID` per node, each node's reports exported under its
// node ID from inside its namespace; one request tagger is attached to the
// lab's parent cgroup, so every workload process below it is tagged.
//
// Workload processes and the collector are child processes of the lab
// (Options.Agent says how to start one), entered into their namespace with
// `ip netns exec` and placed in their node's cgroup at fork: cgroup
// placement is per process, and sysfs must show the namespace's interfaces
// to the capture code.
//
// Everything the lab creates carries a name prefix (netns bsl-*, cgroups
// bufscope-lab-*, pins /sys/fs/bpf/bufscope/bsl-*), so Down can find and
// remove the leftovers of a lab that crashed.
//
// The package is Linux-only and needs root. It may import decode, capture and
// the rest of hwprobe; it must not import analyze.
package lab
