package hwprobe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Status of one capability.
type Status string

const (
	Yes     Status = "yes"
	No      Status = "no"
	Unknown Status = "unknown" // could not be determined (usually: not root)
)

// Capability is one thing bufscope needs from the host.
type Capability struct {
	Group  string `json:"group"`  // kernel, bpf, cgroup, qdisc, tracepoint
	Name   string `json:"name"`   // e.g. "program type sockops"
	Status Status `json:"status"` //
	Detail string `json:"detail,omitempty"`
	// How says how the status was determined, so an operator can check it.
	How string `json:"how"`
	// Disables names what bufscope cannot do without it; it is set on
	// every capability but only matters when Status is not Yes.
	Disables string `json:"disables"`
}

// Interface is a network device of the probed namespace.
type Interface struct {
	Name   string `json:"name"`
	Index  int    `json:"index"`
	Driver string `json:"driver,omitempty"` // "" when the device reports none
	// Bus info from the driver, e.g. a PCI address.
	BusInfo string `json:"bus_info,omitempty"`
	// PCI IDs from /sys/class/net/NAME/device, "" for virtual devices.
	VendorID string `json:"vendor_id,omitempty"`
	DeviceID string `json:"device_id,omitempty"`
	// Vendor names PCI vendors known to ship SmartNICs or programmable
	// NICs (their other NICs have the same vendor ID: check the model).
	Vendor         string `json:"vendor,omitempty"`
	SmartNICVendor bool   `json:"smartnic_vendor"`
	TSO            Status `json:"tso"`
	GSO            Status `json:"gso"`
	// HWTimestamps is Yes when the device timestamps both directions in
	// hardware; PHCIndex is its PTP clock, -1 if none.
	HWTimestamps Status `json:"hw_timestamps"`
	PHCIndex     int    `json:"phc_index"`
	Error        string `json:"error,omitempty"` // what could not be read
	// Effects says what this device's properties mean for bufscope.
	Effects []string `json:"effects,omitempty"`
}

// effects explains the consequences of an interface's properties.
func (it *Interface) effects() []string {
	var out []string
	if it.HWTimestamps != Yes {
		out = append(out, "no hardware timestamps: captures on it carry kernel software timestamps")
	}
	if it.TSO == Yes || it.GSO == Yes {
		out = append(out, "TSO/GSO on: the first super-packet of a message copies its tag onto each of its segments (docs/tagger.md)")
	}
	if it.SmartNICVendor {
		out = append(out, "SmartNIC vendor: check the model; a programmable NIC can run the P4 tagger and telemetry (p4/)")
	}
	return out
}

// Report is what Probe found.
type Report struct {
	KernelRelease string       `json:"kernel_release"`
	KernelVersion string       `json:"kernel_version"`
	Machine       string       `json:"machine"`
	Root          bool         `json:"root"`
	Cgroup2Mounts []string     `json:"cgroup2_mounts"`
	BPFFSMounts   []string     `json:"bpffs_mounts"`
	Capabilities  []Capability `json:"capabilities"`
	Interfaces    []Interface  `json:"interfaces"`
}

// Missing lists the capabilities that are not available (No or Unknown).
func (r *Report) Missing() []Capability {
	var out []Capability
	for _, c := range r.Capabilities {
		if c.Status != Yes {
			out = append(out, c)
		}
	}
	return out
}

// Capability returns the capability with the given group and name.
func (r *Report) Capability(group, name string) (Capability, bool) {
	for _, c := range r.Capabilities {
		if c.Group == group && c.Name == name {
			return c, true
		}
	}
	return Capability{}, false
}

// ProbeOptions configures Probe.
type ProbeOptions struct {
	// Netns is the path of a network namespace file (e.g.
	// /run/netns/NAME) whose interfaces are listed; "" is the caller's.
	Netns string
	// SkipQdiscs leaves out the qdisc probe, which creates and deletes a
	// throwaway network namespace (and may make the kernel load qdisc
	// modules on demand).
	SkipQdiscs bool
	// Qdiscs are the qdisc kinds probed; default DefaultQdiscs.
	Qdiscs []string
}

// DefaultQdiscs are the qdiscs bufscope's lab and fault injection use, and
// the ones often met in production.
var DefaultQdiscs = []string{"pfifo", "bfifo", "tbf", "htb", "netem", "fq", "fq_codel", "prio", "sfq", "red", "codel", "cake", "mq", "clsact", "ingress"}

// Probe finds out what this host can do for bufscope. It never changes
// the host beyond a network namespace it creates and deletes (qdisc probe)
// and kernel modules the kernel may load on demand. Without root, BPF
// probes report Unknown. The error is only for failures to read the basic
// facts (uname); everything else lands in the report.
func Probe(ctx context.Context, opts ProbeOptions) (*Report, error) {
	r := &Report{Root: os.Geteuid() == 0}
	if err := kernelInfo(r); err != nil {
		return nil, err
	}
	mounts, err := readMounts("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	r.Cgroup2Mounts = mounts["cgroup2"]
	r.BPFFSMounts = mounts["bpf"]

	r.Capabilities = append(r.Capabilities, kernelCaps(r)...)
	r.Capabilities = append(r.Capabilities, bpfCaps(r.Root)...)
	r.Capabilities = append(r.Capabilities, tracepointCaps()...)
	if !opts.SkipQdiscs {
		kinds := opts.Qdiscs
		if len(kinds) == 0 {
			kinds = DefaultQdiscs
		}
		r.Capabilities = append(r.Capabilities, qdiscCaps(ctx, r.Root, kinds)...)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ifs, err := interfaces(opts.Netns)
	if err != nil {
		return nil, fmt.Errorf("probe: listing interfaces: %w", err)
	}
	r.Interfaces = ifs
	return r, nil
}

// readMounts maps file system type to mount points from a mountinfo file.
func readMounts(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseMounts(path, data)
}

// parseMounts reads mountinfo lines; path only names the input in errors.
func parseMounts(path string, data []byte) (map[string][]string, error) {
	out := map[string][]string{}
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		pf, sf := strings.Fields(pre), strings.Fields(post)
		if !ok || len(pf) < 5 || len(sf) < 1 {
			return nil, fmt.Errorf("%s: line %d: not a mountinfo line", path, i+1)
		}
		out[sf[0]] = append(out[sf[0]], unescapeMount(pf[4]))
	}
	return out, nil
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func yesNo(ok bool) Status {
	if ok {
		return Yes
	}
	return No
}

// errStatus turns a probe error into a status: a missing feature is No,
// a permission problem Unknown.
func errStatus(err error, notSupported error) (Status, string) {
	switch {
	case err == nil:
		return Yes, ""
	case errors.Is(err, notSupported):
		return No, err.Error()
	default:
		return Unknown, err.Error()
	}
}
