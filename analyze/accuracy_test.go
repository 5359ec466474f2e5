package analyze

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// accuracyReportOnly turns the acceptance criteria into log lines, to look
// at traces recorded elsewhere (BUFSCOPE_FIXTURES) before they are
// committed. By default every criterion fails the test.
var accuracyReportOnly = flag.Bool("accuracy.report-only", false, "log wrong diagnoses of the lab fixtures instead of failing")

// Floors over all fixtures, below which the analyzer has regressed: the
// share of RLAs caused by an injected fault that name its buffer and
// event, and the share of RLAs with true culprits in their top 3.
const (
	minDiagnosisAccuracy = 0.6
	minCulpritAccuracy   = 0.9
)

// truthFile is the lab's truth file (docs/truth.md, schema
// bufscope.truth/v1), parsed here with the analyzer's own struct so that
// the test does not depend on the lab package.
type truthFile struct {
	Schema string `json:"schema"`
	Fault  string `json:"fault"`
	Trace  string `json:"trace"`
	Faults []struct {
		Buffer struct {
			Node   string `json:"node"`
			NodeID uint32 `json:"node_id"`
			Kind   string `json:"kind"`
			IfName string `json:"ifname"`
			Queue  int    `json:"queue"`
		} `json:"buffer"`
		Event    string    `json:"event"`
		Start    time.Time `json:"start"`
		End      time.Time `json:"end"`
		Culprits []string  `json:"culprit_flows"`
		Affected []string  `json:"affected_rpc_ids"`
	} `json:"faults"`
	Requests int    `json:"requests"`
	SLO      string `json:"slo"`
}

// fixturesDir is the repository's fixtures directory, found from this
// file's location (tests run in the package directory). BUFSCOPE_FIXTURES
// overrides it, to check traces recorded elsewhere before they are
// committed.
func fixturesDir(t *testing.T) string {
	if d := os.Getenv("BUFSCOPE_FIXTURES"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "fixtures")
}

// classScore counts, for one fault class, the RLAs diagnosed as it and
// the affected requests.
type classScore struct {
	diagnosed, diagnosedRight int // precision: of RLAs blamed on this class, how many were right
	affected, found           int // recall: of the requests the fault slowed beyond the SLO, how many got it
}

// matches says whether a diagnosis names the fault's buffer and event.
// Truth names decode.BufferKind strings, "application" or "link"; a node
// is compared when both sides know it.
func matchesFault(d *Diagnosis, kind, event string, node uint32) bool {
	if d == nil || d.Kind != kind || d.Event != event {
		return false
	}
	return node == 0 || d.NodeID == 0 || d.NodeID == node
}

func culpritMatches(got, want string) bool {
	gs, gd, ok1 := strings.Cut(got, "->")
	ws, wd, ok2 := strings.Cut(want, "->")
	if !ok1 || !ok2 {
		return false
	}
	// Port 0 is any port, address 0.0.0.0 any address (docs/truth.md).
	eq := func(g, w string) bool {
		gi, wi := strings.LastIndex(g, ":"), strings.LastIndex(w, ":")
		if gi < 0 || wi < 0 {
			return g == w
		}
		ga, gp, wa, wp := g[:gi], g[gi+1:], w[:wi], w[wi+1:]
		return (wa == "0.0.0.0" || wa == ga) && (wp == "0" || wp == gp)
	}
	return eq(gs, ws) && eq(gd, wd)
}

// TestAccuracyOnLabFixtures runs analyze on every fixtures/*.truth.json
// and checks the diagnosis against the injected fault (docs/accuracy.md).
func TestAccuracyOnLabFixtures(t *testing.T) {
	dir := fixturesDir(t)
	truths, _ := filepath.Glob(filepath.Join(dir, "*.truth.json"))
	if len(truths) == 0 {
		t.Skipf("no lab fixtures (*.truth.json) in %s: record them with `bufscope lab run` (docs/lab.md)", dir)
	}
	sort.Strings(truths)
	scores := map[string]*classScore{}
	score := func(class string) *classScore {
		if scores[class] == nil {
			scores[class] = &classScore{}
		}
		return scores[class]
	}
	var totalCulOK, totalCulAsked, faultCaused int
	for _, path := range truths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".truth.json"), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var tr truthFile
			if err := json.Unmarshal(b, &tr); err != nil || tr.Schema != "bufscope.truth/v1" {
				t.Fatalf("%s: not a bufscope.truth/v1 file (%v)", path, err)
			}
			slo, err := time.ParseDuration(tr.SLO)
			if err != nil {
				t.Fatalf("%s: slo %q: %v", path, tr.SLO, err)
			}
			trace := filepath.Join(filepath.Dir(path), tr.Trace)
			res, err := Run(context.Background(), []string{trace}, RunOptions{}, Options{SLO: slo})
			if err != nil {
				t.Fatalf("analyze %s: %v", trace, err)
			}
			// Which fault slowed each RPC, by the workload's own view.
			faultOf := map[string]int{}
			for i, f := range tr.Faults {
				for _, id := range f.Affected {
					faultOf[normID(id)] = i
				}
			}
			work := readRequests(t, strings.TrimSuffix(path, ".truth.json")+".requests.jsonl")
			found := make([]int, len(tr.Faults))
			culpritsOK, culpritsAsked, offWire := 0, 0, 0
			var wrong []string
			for _, q := range res.RLAs {
				fi, ok := -1, false
				var hitRPC *RPC
				for _, r := range q.RPCs {
					if i, hit := faultOf[normID(r.ID)]; hit && (fi < 0 || r.ID == q.Critical) {
						fi, ok, hitRPC = i, true, r
					}
				}
				if ok && slowedOffWire(hitRPC, work) && hitRPC.Latency <= slo.Nanoseconds() {
					// The workload waited for this RPC mostly before its
					// first byte left the client (its connection was busy
					// with a response the fault held) or after its last
					// byte arrived (the client did not read it): that wait
					// is in no buffer of the chain. What the analyzer saw
					// of it is within the SLO, by which the truth calls a
					// request affected: the fault's part of it is
					// invisible, and the RLA can be judged neither right
					// nor wrong for the fault. Counted apart
					// (docs/accuracy.md).
					offWire++
					continue
				}
				d := q.Diagnosis
				class := "none"
				if d != nil {
					class = d.Kind + "/" + d.Event
				}
				if !ok {
					// An RLA the fault did not cause (or a control): it
					// must not be blamed on the fault's buffer.
					score(class).diagnosed++
					if len(tr.Faults) == 0 && d != nil && d.Kind != "application" && d.Kind != "wire" {
						wrong = append(wrong, fmt.Sprintf("%s: network blamed (%s %s) in a fixture without a network fault", q.ID, d.Buffer, d.Event))
					}
					continue
				}
				f := tr.Faults[fi]
				fclass := f.Buffer.Kind + "/" + f.Event
				faultCaused++
				score(class).diagnosed++
				if matchesFault(d, f.Buffer.Kind, f.Event, f.Buffer.NodeID) {
					score(class).diagnosedRight++
					found[fi]++
				} else {
					got := "nothing"
					if d != nil {
						got = d.Buffer + " " + d.Event
					}
					wrong = append(wrong, fmt.Sprintf("%s (fault %s at %s): diagnosed %s", q.ID, fclass, f.Buffer.Node, got))
				}
				if d != nil && len(f.Culprits) > 0 && len(d.Culprits) > 0 {
					culpritsAsked++
					for _, c := range d.Culprits[:min(3, len(d.Culprits))] {
						if slicesAny(f.Culprits, func(w string) bool { return culpritMatches(c.Flow, w) }) {
							culpritsOK++
							break
						}
					}
				}
			}
			for i, f := range tr.Faults {
				s := score(f.Buffer.Kind + "/" + f.Event)
				s.affected += len(f.Affected)
				s.found += found[i]
			}
			t.Logf("%s: %d RLAs, %d wrong; culprits in top 3 for %d of %d; %d slowed off the wire", tr.Fault, len(res.RLAs), len(wrong), culpritsOK, culpritsAsked, offWire)
			for _, w := range wrong[:min(len(wrong), 10)] {
				t.Logf("  %s", w)
			}
			// Single-fault fixtures: every RLA the fault caused is
			// diagnosed right; the slow-server and quiet controls never
			// blame the network.
			fail := t.Errorf
			if *accuracyReportOnly {
				fail = t.Logf
			}
			if len(tr.Faults) <= 1 && len(wrong) > 0 {
				fail("%s: %d RLAs diagnosed wrong (first: %s)", tr.Fault, len(wrong), wrong[0])
			}
			if culpritsAsked > 0 && culpritsOK < culpritsAsked {
				fail("%s: the true culprits are in the top 3 for %d of %d RLAs", tr.Fault, culpritsOK, culpritsAsked)
			}
			if len(tr.Faults) > 1 {
				for i, f := range tr.Faults {
					if len(f.Affected) > 0 && found[i] == 0 {
						fail("%s: fault %d (%s %s at %s) diagnosed for no RLA: faults are not separated", tr.Fault, i, f.Buffer.Kind, f.Event, f.Buffer.Node)
					}
				}
			}
			totalCulOK += culpritsOK
			totalCulAsked += culpritsAsked
		})
	}
	var classes []string
	for c := range scores {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	// Precision of a class: of the RLAs the analyzer blamed on it, the
	// share that a fault of that class caused. Recall: of the RPCs a fault
	// of the class slowed (the lab's list), the share that the analyzer
	// flagged and blamed on it.
	t.Logf("%-34s %9s %9s %9s %9s %9s %9s", "class", "diagnosed", "right", "precision", "affected", "found", "recall")
	var right, blamed int
	for _, c := range classes {
		s := scores[c]
		prec, rec := "-", "-"
		if s.diagnosed > 0 {
			prec = fmt.Sprintf("%.2f", float64(s.diagnosedRight)/float64(s.diagnosed))
		}
		if s.affected > 0 {
			rec = fmt.Sprintf("%.2f", float64(s.found)/float64(s.affected))
		}
		t.Logf("%-34s %9d %9d %9s %9d %9d %9s", c, s.diagnosed, s.diagnosedRight, prec, s.affected, s.found, rec)
		right += s.diagnosedRight
		blamed += s.found
	}
	_ = blamed
	t.Logf("diagnosis right for %d RLAs caused by faults; culprits in top 3 for %d of %d", right, totalCulOK, totalCulAsked)
	if totalCulAsked > 0 && float64(totalCulOK) < minCulpritAccuracy*float64(totalCulAsked) {
		t.Errorf("true culprits in the top 3 for %d of %d RLAs, below the %.0f%% floor", totalCulOK, totalCulAsked, 100*minCulpritAccuracy)
	}
	if faultCaused > 0 && float64(right) < minDiagnosisAccuracy*float64(faultCaused) {
		t.Errorf("diagnosis right for %d of %d RLAs caused by a fault, below the %.0f%% floor", right, faultCaused, 100*minDiagnosisAccuracy)
	}
}

// workRequest is one line of a lab requests file (docs/truth.md): the
// workload's own view of a request.
type workRequest struct {
	RPCID string    `json:"rpc_id"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// readRequests reads a requests file into RPC ID → request. A fixture
// without one has an empty map.
func readRequests(t *testing.T, path string) map[string]workRequest {
	out := map[string]workRequest{}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var w workRequest
		if err := json.Unmarshal([]byte(line), &w); err != nil {
			t.Fatalf("%s:%d: %v", path, i+1, err)
		}
		out[normID(w.RPCID)] = w
	}
	return out
}

// slowedOffWire says whether the workload's latency of r was mostly
// spent before r's first byte was seen (the request arrived, open-loop
// workloads counting from the arrival, but waited in the client for its
// connection) or after its response's last byte was (the client
// application had the response but did not read it).
func slowedOffWire(r *RPC, work map[string]workRequest) bool {
	w, ok := work[normID(r.ID)]
	if !ok || r.Start == 0 || r.End == 0 {
		return false
	}
	before := max(0, r.Start-w.Start.UnixNano())
	after := max(0, w.End.UnixNano()-r.End)
	return before+after > w.End.Sub(w.Start).Nanoseconds()/2
}

func slicesAny(xs []string, f func(string) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}
