//go:build linux

package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/bufscope/bufscope/hwprobe/monitor"
)

func requireLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the lab creates network namespaces and cgroups and loads eBPF programs (CI runs as root)")
	}
	if err := CheckHost(); err != nil {
		t.Skipf("this host cannot run the lab: %v", err)
	}
}

var labSeq int

// shortParams shrinks an entry's run for the test suite: 2.5 s of
// workload, faults squeezed into it.
func shortParams(f *Fault) Params {
	p := Params{Duration: 2500 * time.Millisecond}
	d := f.Defaults
	if d.FaultFor > 0 && d.FaultAt+d.FaultFor > p.Duration-500*time.Millisecond {
		p.FaultAt, p.FaultFor = 700*time.Millisecond, min(d.FaultFor, time.Second)
	}
	return p
}

// TestCatalogRuns runs every catalog entry briefly in a real lab and
// checks that the trace holds the fault's evidence, that the trace and
// the workload agree on the requests, and that nothing is left behind.
func TestCatalogRuns(t *testing.T) {
	requireLab(t)
	agent, env := testAgent(t)
	reasons, err := monitor.LoadDropReasons()
	if err != nil {
		t.Fatal(err)
	}
	qdiscDrop, ok := reasons.Value("QDISC_DROP")
	if !ok {
		t.Fatal("kernel BTF has no SKB_DROP_REASON_QDISC_DROP")
	}
	for _, f := range Catalog {
		t.Run(f.Name, func(t *testing.T) {
			labSeq++
			name := fmt.Sprintf("t%d%d", os.Getpid()%1000, labSeq)
			out := filepath.Join(t.TempDir(), f.Name+".trace.zst")
			t.Cleanup(func() { Down(name) }) // also when the test fails half-way
			res, err := Run(context.Background(), Options{Fault: f.Name, Params: shortParams(f), Output: out, Name: name,
				Agent: agent, AgentEnv: env, Command: "test", Log: testLog{t}})
			if err != nil {
				t.Fatal(err)
			}
			// One tagger and one set of monitors serve every node; a fault
			// may load a program of its own (lossy-link's loss injector).
			if n := len(res.Programs); n < 10 || n > 11 {
				t.Errorf("the run recorded %d program IDs, want the tagger's, one monitor per hook (9) and at most one of the fault's", n)
			}
			if len(res.Deploy) != 1 {
				t.Errorf("%d deployments, want one for all nodes", len(res.Deploy))
			}
			checkNothingLeft(t, name, res.Programs)
			sum := res.Summary

			// Evidence at the expected buffer.
			for _, e := range f.Evidence {
				n := 0
				for k, c := range sum.Events {
					parts := strings.Split(k, "/")
					if parts[0] == e.Node && (e.Buffer == "" || parts[1] == e.Buffer) && parts[2] == e.Event {
						n += c
					}
				}
				if n == 0 {
					t.Errorf("no %s/%s/%s event in the trace; it has %v", e.Node, e.Buffer, e.Event, sum.Events)
				}
			}
			switch f.Name {
			case "lossy-link":
				// The link loses packets, no queue overflows.
				if sum.RouterDropReasons[qdiscDrop] > 0 {
					t.Errorf("%d queue drops at the router in a lossy-link run", sum.RouterDropReasons[qdiscDrop])
				}
			case "overflow":
				if sum.RouterDropReasons[qdiscDrop] == 0 {
					t.Errorf("no QDISC_DROP drop at the router; drop reasons %v", sum.RouterDropReasons)
				}
			case "slow-app", "none":
				// Controls: the network stays quiet.
				for k, c := range sum.Events {
					if strings.HasPrefix(k, "r1/") && !strings.HasSuffix(k, "/hop") {
						t.Errorf("control run has router event %s ×%d", k, c)
					}
				}
			}

			// The workload's own view and the trace agree.
			completed := map[string]bool{}
			for _, r := range res.Requests {
				if r.Err == "" {
					completed[r.RPCID] = true
				}
			}
			if len(completed) == 0 || res.Truth.Requests != len(completed) {
				t.Fatalf("%d completed requests, truth says %d", len(completed), res.Truth.Requests)
			}
			missing, missingWire := 0, 0
			for id := range completed {
				var v uint64
				fmt.Sscanf(id, "0x%x", &v)
				if !sum.WireRequests[v] {
					missingWire++
				}
				if !sum.RequestStarts[v] {
					missing++
				}
			}
			// Every request must be in the trace twice over (its tagged
			// segment mirrored, its message-start report), except what
			// the collector's capture says it lost: a race-instrumented
			// collector on a busy 2-core machine does lose packets. A
			// report packet carries at most maxReportsPerPacket reports.
			const maxReportsPerPacket = 17
			t.Logf("%d requests completed, %d tagged on the wire, %d with a message-start report, %d packets lost by the capture",
				len(completed), len(completed)-missingWire, len(completed)-missing, res.CaptureDrops)
			if uint64(missingWire) > res.CaptureDrops {
				t.Errorf("%d completed requests lack their tagged segment in the trace; the capture lost only %d packets", missingWire, res.CaptureDrops)
			}
			if uint64(missing) > res.CaptureDrops*maxReportsPerPacket {
				t.Errorf("%d completed requests have no message-start report; the capture lost only %d packets", missing, res.CaptureDrops)
			}
			if len(sum.WireRequests) > len(completed) {
				t.Errorf("%d tagged requests on the wire, the workload completed only %d", len(sum.WireRequests), len(completed))
			}

			// The truth names the fault.
			tr, err := ReadTruth(res.TruthPath)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Fault != f.Name || tr.Trace != f.Name+".trace.zst" || (f.Name != "none" && len(tr.Faults) == 0) {
				t.Fatalf("truth %+v", tr)
			}
			for _, tf := range tr.Faults {
				if !tf.End.After(tf.Start) || tf.Buffer.Node == "" || tf.Buffer.Kind == "" {
					t.Errorf("truth fault %+v", tf)
				}
			}
		})
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// checkNothingLeft fails t if a namespace, cgroup, pin or program of the
// lab survived Run.
func checkNothingLeft(t *testing.T, name string, progs []ebpf.ProgramID) {
	t.Helper()
	if m, _ := filepath.Glob("/var/run/netns/" + NetnsPrefix + name + "-*"); len(m) > 0 {
		t.Errorf("namespaces left: %v", m)
	}
	if root, err := cgroup2Root(); err == nil {
		if _, err := os.Stat(filepath.Join(root, CgroupPrefix+name)); err == nil {
			t.Errorf("cgroup %s left", filepath.Join(root, CgroupPrefix+name))
		}
	}
	if _, err := os.Stat(filepath.Join(PinDir, PinPrefix+name)); err == nil {
		t.Errorf("pin %s left", filepath.Join(PinDir, PinPrefix+name))
	}
	// The kernel releases a program whose last link closed from a work
	// queue (bpf_link_put defers), so give it a moment.
	deadline := time.Now().Add(3 * time.Second)
	for _, id := range progs {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("program %d: %v", id, err)
				}
				break
			}
			p.Close()
			if time.Now().After(deadline) {
				t.Errorf("program %d still loaded 3 s after the lab ended", id)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestDownRemovesLeftovers simulates a crashed lab: Up without Run, so
// nothing tears down, then Down must find everything by its prefix.
func TestDownRemovesLeftovers(t *testing.T) {
	requireLab(t)
	name := fmt.Sprintf("d%d", os.Getpid()%10000)
	topo, err := Up(Spec{Name: name, Clients: 1, Servers: 1, Mirror: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Down(name) })
	if _, err := Up(Spec{Name: name, Clients: 1, Servers: 1}); err == nil || !strings.Contains(err.Error(), "lab down") {
		t.Fatalf("second lab of the same name: error %v, want one saying to run lab down", err)
	}
	removed, err := Down(name)
	if err != nil {
		t.Fatal(err)
	}
	// 4 namespaces (c1, s1, r1, col) and the cgroup.
	if len(removed) != len(topo.Nodes)+1 {
		t.Errorf("removed %v, want %d namespaces and a cgroup", removed, len(topo.Nodes))
	}
	checkNothingLeft(t, name, []ebpf.ProgramID{})
}
