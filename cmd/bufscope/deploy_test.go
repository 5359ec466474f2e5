package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bufscope/bufscope/hwprobe"
)

func runDeployArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newDeployCmd(ioStreams{Out: &out, ErrOut: &errOut}, nil)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String() + errOut.String(), err
}

func TestDeployUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "--collector is required"},
		{[]string{"--collector", "127.0.0.1", "--sndq-percent", "0"}, "--sndq-percent 0"},
		{[]string{"--collector", "127.0.0.1", "--sndq-percent", "101"}, "--sndq-percent 101"},
		{[]string{"--collector", "127.0.0.1", "--target", "tofino"}, "--target"},
		{[]string{"--collector", "127.0.0.1", "extra"}, "unknown command"},
		{[]string{"--collector", "127.0.0.1", "--netns", "a", "--netns", "b=2"}, "--netns a: with more than one"},
		{[]string{"--collector", "127.0.0.1", "--netns", "a=x"}, `node ID "x"`},
		{[]string{"--collector", "127.0.0.1", "--netns", "a=0"}, `node ID "0"`},
		{[]string{"--collector", "127.0.0.1", "--netns", "=5"}, "no namespace name"},
		{[]string{"--collector", "127.0.0.1", "--netns", "a=1,switch"}, `unknown role "switch"`},
		{[]string{"--collector", "127.0.0.1", "--netns", "a=1", "--netns", "b=2", "--node-id", "3"}, "--node-id"},
		{[]string{"--collector", "127.0.0.1", "--no-message-start", "--message-start-every", "4"}, "--no-message-start"},
	}
	for _, c := range cases {
		_, err := runDeployArgs(t, c.args...)
		if err == nil {
			t.Errorf("deploy %v succeeded", c.args)
			continue
		}
		if code := exitCode(err); code != exitUsage {
			t.Errorf("deploy %v: exit code %d (%v), want %d", c.args, code, err, exitUsage)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("deploy %v: error %q does not mention %q", c.args, err, c.want)
		}
	}
}

func TestDeployFlagsReachOptions(t *testing.T) {
	var got *deployOptions
	cmd := newDeployCmd(ioStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(_ context.Context, o *deployOptions) error {
		got = o
		return nil
	})
	cmd.SetArgs([]string{"--collector", "10.0.0.9:9999", "--netns", "lab1", "--router", "--cgroup", "/sys/fs/cgroup/unified/app",
		"--node-id", "7", "--qdisc-residence", "2ms", "--rcv-stall", "1s", "--sndq-percent", "80", "--for", "1m"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	d := got.Deploy
	if d.Target != "linux" || d.Collector != "10.0.0.9:9999" || d.Netns != "lab1" || !d.Router || d.Cgroup != "/sys/fs/cgroup/unified/app" || d.NodeID != 7 {
		t.Errorf("deploy options %+v", d)
	}
	th := d.Thresholds
	if th.QdiscResidence != 2*time.Millisecond || th.ReceiveStall != time.Second || th.SendQueuePercent != 80 || th.QdiscStall != 50*time.Millisecond {
		t.Errorf("thresholds %+v", th)
	}
	if got.For != time.Minute {
		t.Errorf("--for %v", got.For)
	}
}

func TestDeploySeveralNetnsReachOptions(t *testing.T) {
	var got *deployOptions
	cmd := newDeployCmd(ioStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(_ context.Context, o *deployOptions) error {
		got = o
		return nil
	})
	cmd.SetArgs([]string{"--collector", "10.77.250.1", "--collector-in-netns", "--netns", "h1=101", "--netns", "/proc/7/ns/net=0x66",
		"--netns", "r1=2001,router", "--message-start-every", "16", "--message-start-first-hop"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	d := got.Deploy
	want := []hwprobe.DeployNode{{Netns: "h1", NodeID: 101}, {Netns: "/proc/7/ns/net", NodeID: 0x66}, {Netns: "r1", NodeID: 2001, Router: true}}
	if d.Netns != "" || !slices.Equal(d.Nodes, want) {
		t.Errorf("netns %q nodes %+v, want none and %+v", d.Netns, d.Nodes, want)
	}
	if d.MessageStartEvery != 16 || !d.MessageStartFirstHop || !d.CollectorInNetns {
		t.Errorf("deploy options %+v", d)
	}
}

func TestDeployRunsForAndReportsCounters(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads eBPF programs (CI runs as root)")
	}
	out, err := runDeployArgs(t, "--target", "linux", "--collector", "127.0.0.1:9", "--for", "300ms")
	if err != nil {
		if exitCode(err) == exitPrivilege {
			t.Skipf("data plane not supported here: %v", err)
		}
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	for _, want := range []string{"monitor\ttp_btf/qdisc_enqueue\tprog ", "monitor\twatching all network namespaces", "exporter\tnode id ", "\nevents\t", "\nring_lost\t0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
