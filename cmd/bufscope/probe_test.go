package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bufscope/bufscope/hwprobe"
)

var fixedReport = &hwprobe.Report{
	KernelRelease: "6.1.0-test",
	KernelVersion: "#1 SMP",
	Machine:       "x86_64",
	Root:          true,
	Cgroup2Mounts: []string{"/sys/fs/cgroup"},
	Capabilities: []hwprobe.Capability{
		{Group: "kernel", Name: "BTF", Status: hwprobe.Yes, How: "stat", Disables: "monitors"},
		{Group: "qdisc", Name: "netem", Status: hwprobe.No, Detail: "kernel: unknown\tkind", How: "netlink", Disables: "nothing"},
	},
	Interfaces: []hwprobe.Interface{
		{Name: "eth0", Index: 2, Driver: "mlx5_core", VendorID: "0x15b3", Vendor: "Mellanox/NVIDIA", SmartNICVendor: true,
			TSO: hwprobe.Yes, GSO: hwprobe.Yes, HWTimestamps: hwprobe.Yes, PHCIndex: 0, Effects: []string{"effect A"}},
		{Name: "eth1", Index: 3, Driver: "virtio_net", TSO: hwprobe.No, GSO: hwprobe.No, HWTimestamps: hwprobe.No, PHCIndex: -1,
			Effects: []string{"effect A", "effect B"}},
	},
}

func runProbeWith(t *testing.T, tty bool, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	s := ioStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, OutTTY: tty}
	cmd := newProbeCmd(s, func(ctx context.Context, o *probeOptions) error {
		o.probe = func(context.Context, hwprobe.ProbeOptions) (*hwprobe.Report, error) { return fixedReport, nil }
		return runProbe(ctx, o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestProbeJSON(t *testing.T) {
	out, _, err := runProbeWith(t, false, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got hwprobe.Report
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want, _ := json.Marshal(fixedReport)
	again, _ := json.Marshal(&got)
	if !bytes.Equal(want, again) {
		t.Errorf("JSON round trip differs:\n%s\n%s", want, again)
	}
}

func TestProbeTSV(t *testing.T) {
	out, _, err := runProbeWith(t, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "kernel\t6.1.0-test\tx86_64\t#1 SMP\n" +
		"capability\tkernel\tBTF\tyes\t\t\n" +
		"capability\tqdisc\tnetem\tno\tkernel: unknown kind\tdisables nothing\n" +
		"interface\teth0\tmlx5_core\t0x15b3\tyes\tyes\tyes\tyes\t\n" +
		"interface\teth1\tvirtio_net\t\tno\tno\tno\tno\t\n"
	if out != want {
		t.Errorf("TSV output:\n%q\nwant\n%q", out, want)
	}
}

func TestProbeTable(t *testing.T) {
	out, _, err := runProbeWith(t, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"6.1.0-test", "netem", "disables nothing", "mlx5_core", "Mellanox/NVIDIA", "(ptp0)", "1 capabilities missing", "eth0, eth1: effect A\n", "eth1: effect B\n"} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
}

func TestProbeUsage(t *testing.T) {
	_, _, err := runProbeWith(t, false, "extra")
	if exitCode(err) != exitUsage {
		t.Errorf("probe with an argument: %v (exit %d), want a usage error", err, exitCode(err))
	}
	var u usageError
	if !errors.As(err, &u) {
		t.Errorf("not a usageError: %T", err)
	}
}
