package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/bufscope/bufscope/hwprobe"
)

type probeOptions struct {
	IO         ioStreams
	JSON       bool
	Netns      string
	SkipQdiscs bool
	// probe is hwprobe.Probe; tests replace it with a fixed report.
	probe func(context.Context, hwprobe.ProbeOptions) (*hwprobe.Report, error)
}

func newProbeCmd(s ioStreams, runF func(context.Context, *probeOptions) error) *cobra.Command {
	opts := &probeOptions{IO: s, probe: hwprobe.Probe}
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Show what this host can do for bufscope: kernel, eBPF, qdiscs, tracepoints, NICs",
		Long: `Probe the kernel and network devices for what bufscope's Linux data plane
needs: BTF, cgroup v2, the BPF program and map types and helpers of the
request tagger and buffer monitors, qdiscs, tracepoints, and per interface
the driver, TSO/GSO, hardware timestamping and SmartNIC vendor.

Every capability that is missing says what it disables. BPF and qdisc
probes need root; without it they show "unknown". The qdisc probe creates
each qdisc kind on the loopback device of a throwaway network namespace
(the kernel may load qdisc modules on demand); --skip-qdiscs leaves it out.

Interfaces are read with ethtool ioctls (ETHTOOL_GDRVINFO for the driver,
falling back to /sys/class/net/IFACE/device/driver; ETHTOOL_GTSO and
ETHTOOL_GGSO for the offloads; ETHTOOL_GET_TS_INFO for timestamping) and the
PCI vendor from /sys/class/net/IFACE/device/vendor.

Output is a table on a terminal, tab-separated lines when piped (first
field: kernel, capability or interface; capability lines are group, name,
status, detail, effect; interface lines are name, driver, PCI vendor,
SmartNIC vendor, TSO, GSO, hardware timestamps, problems), and one JSON
document with --json.`,
		Example: `  sudo bufscope probe
  sudo bufscope probe --json | jq '.capabilities[] | select(.status != "yes")'
  sudo bufscope probe --netns /run/netns/lab1`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runProbe(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	f.StringVar(&opts.Netns, "netns", "", "list the interfaces of this network namespace (a file such as /run/netns/NAME)")
	f.BoolVar(&opts.SkipQdiscs, "skip-qdiscs", false, "do not probe qdiscs (no throwaway namespace is created)")
	return cmd
}

func runProbe(ctx context.Context, opts *probeOptions) error {
	r, err := opts.probe(ctx, hwprobe.ProbeOptions{Netns: opts.Netns, SkipQdiscs: opts.SkipQdiscs})
	if err != nil {
		if opts.Netns != "" && strings.Contains(err.Error(), opts.Netns) {
			return usageError{fmt.Errorf("--netns %s: %w", opts.Netns, err)}
		}
		return err
	}
	if !r.Root {
		fmt.Fprintln(opts.IO.ErrOut, "bufscope: not root: BPF and qdisc capabilities show as unknown; run with sudo for a full report")
	}
	switch {
	case opts.JSON:
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case opts.IO.OutTTY:
		return printProbeTables(opts.IO.Out, r)
	default:
		return printProbeTSV(opts.IO.Out, r)
	}
}

// effect is what a row shows about a capability: nothing when present,
// what it disables otherwise.
func effect(c hwprobe.Capability) string {
	if c.Status == hwprobe.Yes {
		return ""
	}
	return "disables " + c.Disables
}

func printProbeTables(w io.Writer, r *hwprobe.Report) error {
	fmt.Fprintf(w, "kernel %s (%s), %s\n\n", r.KernelRelease, r.Machine, r.KernelVersion)
	t := tablewriter.NewWriter(w)
	t.Header("group", "capability", "status", "detail", "if missing")
	for _, c := range r.Capabilities {
		if err := t.Append(c.Group, c.Name, string(c.Status), c.Detail, effect(c)); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = tablewriter.NewWriter(w)
	t.Header("interface", "driver", "pci vendor", "smartnic vendor", "tso", "gso", "hw timestamps", "problems")
	for _, it := range r.Interfaces {
		vendor := it.VendorID
		if it.Vendor != "" {
			vendor += " " + it.Vendor
		}
		hw := string(it.HWTimestamps)
		if it.PHCIndex >= 0 {
			hw += fmt.Sprintf(" (ptp%d)", it.PHCIndex)
		}
		if err := t.Append(it.Name, it.Driver, vendor, probeYesNo(it.SmartNICVendor), string(it.TSO), string(it.GSO), hw, it.Error); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	// The same consequence usually holds for many devices: say it once.
	var order []string
	devs := map[string][]string{}
	for _, it := range r.Interfaces {
		for _, e := range it.Effects {
			if devs[e] == nil {
				order = append(order, e)
			}
			devs[e] = append(devs[e], it.Name)
		}
	}
	for _, e := range order {
		fmt.Fprintf(w, "%s: %s\n", strings.Join(devs[e], ", "), e)
	}
	if missing := r.Missing(); len(missing) > 0 {
		fmt.Fprintf(w, "\n%d capabilities missing or unknown; see \"if missing\".\n", len(missing))
	}
	return nil
}

func probeYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printProbeTSV writes one record per line, the first field naming the
// record type, so scripts can grep and cut without parsing a table.
func printProbeTSV(w io.Writer, r *hwprobe.Report) error {
	clean := func(s string) string { return strings.NewReplacer("\t", " ", "\n", " ").Replace(s) }
	fmt.Fprintf(w, "kernel\t%s\t%s\t%s\n", clean(r.KernelRelease), clean(r.Machine), clean(r.KernelVersion))
	for _, c := range r.Capabilities {
		fmt.Fprintf(w, "capability\t%s\t%s\t%s\t%s\t%s\n", c.Group, clean(c.Name), c.Status, clean(c.Detail), clean(effect(c)))
	}
	for _, it := range r.Interfaces {
		_, err := fmt.Fprintf(w, "interface\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Name, clean(it.Driver), it.VendorID,
			probeYesNo(it.SmartNICVendor), it.TSO, it.GSO, it.HWTimestamps, clean(it.Error))
		if err != nil {
			return err
		}
	}
	return nil
}
