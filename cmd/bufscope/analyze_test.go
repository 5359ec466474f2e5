package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func demoTrace(t *testing.T) string {
	t.Helper()
	p := filepath.Join(moduleRoot(t), "fixtures", "demo.trace.zst")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("fixtures/demo.trace.zst missing: %v", err)
	}
	return p
}

// The demo trace has one slow RPC: its request sat 35 ms in the server's
// socket receive queue (fixtures/gen). The table must name that buffer.
func TestAnalyzeTableOnDemo(t *testing.T) {
	out, errOut, code := execute(t, "analyze", "--slo", "20ms", demoTrace(t))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "16 requests, 48 RPCs (0 incomplete), 1 RLAs (SLO 20ms)") {
		t.Errorf("header line missing:\n%s", out)
	}
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "0x0000222200000004") {
			row = l
		}
	}
	for _, want := range []string{"sock-recv", "queuing", "slo", "baseline-mad"} {
		if !strings.Contains(row, want) {
			t.Errorf("RLA row lacks %q: %q", want, row)
		}
	}
}

func TestAnalyzeJSONOnDemo(t *testing.T) {
	out, errOut, code := execute(t, "analyze", "--json", "--slo", "20ms", demoTrace(t))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res struct {
		Schema string `json:"schema"`
		SLO    int64  `json:"slo_ns"`
		RLAs   []struct {
			ID       string `json:"id"`
			Critical string `json:"critical_rpc"`
			Latency  int64  `json:"latency_ns"`
			RPCs     []struct {
				RPCID string `json:"rpc_id"`
			} `json:"rpcs"`
			Diagnosis struct {
				Kind, Event string
				NodeID      uint32 `json:"node_id"`
				Confidence  float64
				Evidence    []struct{ Record, Buffer, Event string } `json:"evidence"`
			} `json:"diagnosis"`
		} `json:"rlas"`
		Summary []struct {
			Buffer, Event string
			RLAs          int `json:"rlas"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if res.Schema != "bufscope.analyze/v1" || res.SLO != 20e6 || len(res.RLAs) != 1 || len(res.Summary) != 1 {
		t.Fatalf("result %+v", res)
	}
	q := res.RLAs[0]
	d := q.Diagnosis
	if q.ID != "0x0000222200000004" || q.Critical != "0xa00000002222000d" || len(q.RPCs) != 3 ||
		d.Kind != "sock-recv" || d.Event != "queuing" || d.NodeID != 1 || d.Confidence < 0.8 {
		t.Errorf("RLA %+v", q)
	}
	if len(d.Evidence) == 0 || d.Evidence[0].Record != "host-event" || d.Evidence[0].Buffer != "sock-recv" {
		t.Errorf("evidence %+v", d.Evidence)
	}
}

func TestAnalyzeExplain(t *testing.T) {
	out, errOut, code := execute(t, "analyze", "--explain", "a00000002222000d", demoTrace(t))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"request 0x0000222200000004", "* rpc 0xa00000002222000d", "chain:", "server   node 1/sock-recv", "root cause: node 1/sock-recv queuing"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
	_, errOut, code = execute(t, "analyze", "--explain", "0x1234", demoTrace(t))
	if code != exitUsage || !strings.Contains(errOut, "--explain 0x1234: no RLA") {
		t.Errorf("unknown ID: exit %d, %q", code, errOut)
	}
}

func TestAnalyzeErrors(t *testing.T) {
	demo := demoTrace(t)
	bad := filepath.Join(t.TempDir(), "bad.zst")
	if err := os.WriteFile(bad, []byte("not a trace at all, just text"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"analyze"}, exitUsage, "requires at least 1 arg"},
		{[]string{"analyze", "--slo", "-5ms", demo}, exitUsage, "--slo -5ms: must not be negative"},
		{[]string{"analyze", "--top", "-1", demo}, exitUsage, "--top -1"},
		{[]string{"analyze", "--json", "--explain", "1", demo}, exitUsage, "exclude each other"},
		{[]string{"analyze", "--baseline-percentile", "100", demo}, exitUsage, "--baseline-percentile 100"},
		{[]string{"analyze", "--window", "10ms", demo}, exitUsage, "--window 10ms"},
		{[]string{"analyze", "--from", "yesterday", demo}, exitUsage, "--from yesterday"},
		{[]string{"analyze", filepath.Join(t.TempDir(), "missing.zst")}, exitBadInput, "missing.zst"},
		{[]string{"analyze", bad}, exitBadInput, "bad.zst"},
	} {
		_, errOut, code := execute(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", c.args, code, errOut, c.code, c.msg)
		}
	}
}

func TestAnalyzeFromTo(t *testing.T) {
	// The slow request starts 56 ms into the demo; a window after it
	// reports nothing, one around it reports it.
	out, _, code := execute(t, "analyze", "--slo", "20ms", "--from", "+100ms", demoTrace(t))
	if code != exitOK || !strings.Contains(out, ", 0 RLAs") {
		t.Errorf("after the RLA: exit %d\n%s", code, out)
	}
	out, _, code = execute(t, "analyze", "--slo", "20ms", "--from", "+50ms", "--to", "+60ms", demoTrace(t))
	if code != exitOK || !strings.Contains(out, ", 1 RLAs") {
		t.Errorf("around the RLA: exit %d\n%s", code, out)
	}
}

// Piped output is for scripts: tab-separated cells, no drawn boxes.
func TestAnalyzePipedOutputIsTabSeparated(t *testing.T) {
	incast := filepath.Join(moduleRoot(t), "fixtures", "incast.trace.zst")
	out, errOut, code := execute(t, "analyze", "--slo", "15ms", "--top", "2", incast)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || lines[1] != "request\tstart\tlatency\texcess\trule\troot cause\tevent\tconf\ttop culprit" {
		t.Fatalf("no tab-separated RLA header in:\n%s", out)
	}
	for _, l := range lines[2:4] {
		if f := strings.Split(l, "\t"); len(f) != 9 || !strings.HasPrefix(f[0], "0x") {
			t.Errorf("RLA row %q: %d cells, want 9 starting with the request ID", l, len(f))
		}
	}
	if strings.ContainsAny(out, "│┌└") {
		t.Errorf("piped output draws boxes:\n%s", out)
	}
}

// Without --slo, "0 RLAs" on a trace where every request was slowed must
// not read as "all is well": the command says what to pass.
func TestAnalyzeHintsAtSLOWhenBaselineFindsNothing(t *testing.T) {
	incast := filepath.Join(moduleRoot(t), "fixtures", "incast.trace.zst")
	out, errOut, code := execute(t, "analyze", incast)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, " 0 RLAs") {
		t.Fatalf("the baseline rules now flag RLAs on the incast fixture: update the README, which says they do not, and this test:\n%s", out)
	}
	if !strings.Contains(errOut, "--slo") {
		t.Errorf("0 RLAs without --slo and no hint on stderr: %q", errOut)
	}
	_, errOut, _ = execute(t, "analyze", "--slo", "15ms", incast)
	if strings.Contains(errOut, "no --slo given") {
		t.Errorf("hint printed although --slo was given: %q", errOut)
	}
}
