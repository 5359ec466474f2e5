//go:build linux

package lab

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bufscope/bufscope/decode"
)

func TestCatalogEntries(t *testing.T) {
	buffers := map[string]bool{"": true}
	for b := decode.BufferKind(1); b < 16; b++ {
		if n := b.String(); !strings.HasPrefix(n, "buffer(") {
			buffers[n] = true
		}
	}
	events := map[string]bool{}
	for e := decode.EventKind(1); e < 16; e++ {
		if n := e.String(); !strings.HasPrefix(n, "event(") {
			events[n] = true
		}
	}
	seen := map[string]bool{}
	for _, f := range Catalog {
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if err := f.Defaults.check(); err != nil {
			t.Errorf("%s: defaults: %v", f.Name, err)
		}
		if len(f.Evidence) == 0 || f.setup == nil || f.Summary == "" {
			t.Errorf("%s: evidence, setup and summary are required", f.Name)
		}
		for _, e := range f.Evidence {
			if !buffers[e.Buffer] || !events[e.Event] {
				t.Errorf("%s: evidence %+v names no decode buffer/event", f.Name, e)
			}
		}
	}
	for _, want := range []string{"incast", "overflow", "elephant", "slow-reader", "small-sndbuf", "host-qdisc", "lossy-link", "slow-app", "stall", "mixed"} {
		if Lookup(want) == nil {
			t.Errorf("catalog lacks %s", want)
		}
	}
}

func TestParamsMergeAndCheck(t *testing.T) {
	d := Lookup("incast").Defaults
	p := Params{Clients: 3, LinkRate: "5mbit"}.merge(d)
	if p.Clients != 3 || p.LinkRate != "5mbit" || p.Servers != d.Servers || p.RespBytes != d.RespBytes || p.SLO != d.SLO {
		t.Fatalf("merge: %+v", p)
	}
	bad := map[string]Params{
		"--duration":    {Duration: time.Millisecond},
		"--concurrency": {Concurrency: 1000},
		"--req-bytes":   {ReqBytes: 10},
		"--resp-bytes":  {RespBytes: maxMsg + 1},
		"--mode":        {Mode: "burst"},
		"--loss":        {LossPercent: 80},
		"--slo":         {SLO: -time.Second},
		"--mtu":         {MTU: 100},
	}
	for flag, b := range bad {
		err := b.merge(d).check()
		if err == nil || !strings.HasPrefix(err.Error(), flag) {
			t.Errorf("%+v: error %v, want one starting with %s", b, err, flag)
		}
	}
	if err := (Params{Mode: "open", Rate: -1}).merge(Lookup("none").Defaults).check(); err == nil || !strings.HasPrefix(err.Error(), "--rate") {
		t.Errorf("negative rate in open mode: %v", err)
	}
}

// The truth file layout is a contract with the analyzer's tests, which
// parse it with their own struct: pin it byte for byte.
func TestTruthJSON(t *testing.T) {
	start := time.Date(2026, 11, 25, 19, 30, 1, 250000000, time.UTC)
	tr := Truth{
		Schema: TruthSchema, Fault: "incast", Command: "bufscope lab run incast -o fixtures/incast.trace.zst", Trace: "incast.trace.zst",
		Topology: TruthTopology{Nodes: []TruthNode{{Name: "c1", Role: "client", NodeID: 1001, Addrs: []string{"10.77.1.2"}}}},
		Faults: []TruthFault{{
			Buffer: TruthBuffer{Node: "r1", NodeID: 2001, Kind: "switch-egress-queue", Ifname: "r1-c1"},
			Event:  "queuing", Start: start, End: start.Add(1500 * time.Millisecond),
			CulpritFlows: []string{"10.77.101.2:9000->10.77.1.2:0"}, AffectedRPCIDs: []string{"0x00000000000000aa"}, Notes: "n",
		}},
		Requests: 412, SLO: "20ms",
	}
	var buf bytes.Buffer
	if err := tr.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	got := compact.Bytes()
	want := `{"schema":"bufscope.truth/v1","fault":"incast","command":"bufscope lab run incast -o fixtures/incast.trace.zst","trace":"incast.trace.zst",` +
		`"topology":{"nodes":[{"name":"c1","role":"client","node_id":1001,"addrs":["10.77.1.2"]}]},` +
		`"faults":[{"buffer":{"node":"r1","node_id":2001,"kind":"switch-egress-queue","ifname":"r1-c1","queue":0},"event":"queuing",` +
		`"culprit_flows":["10.77.101.2:9000->10.77.1.2:0"],"affected_rpc_ids":["0x00000000000000aa"],"notes":"n",` +
		`"start":"2026-11-25T19:30:01.250000000Z","end":"2026-11-25T19:30:02.750000000Z"}],"requests":412,"slo":"20ms"}`
	if string(got) != want {
		t.Fatalf("truth JSON\n%s\nwant\n%s", got, want)
	}
	path := filepath.Join(t.TempDir(), "x.truth.json")
	if err := os.WriteFile(path, got, 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := ReadTruth(path)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Faults[0].Start.Equal(start) || back.Requests != 412 || back.Faults[0].Buffer != tr.Faults[0].Buffer {
		t.Fatalf("read back %+v", back)
	}
	if err := os.WriteFile(path, []byte(`{"schema":"bufscope.truth/v0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTruth(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("wrong schema: error %v, want one naming the file", err)
	}
}

func FuzzParseTruth(f *testing.F) {
	f.Add([]byte(`{"schema":"bufscope.truth/v1","fault":"stall","faults":[{"buffer":{"node":"r1","node_id":2001,"kind":"switch-egress-queue"},` +
		`"event":"stall","start":"2026-11-25T19:30:01.250000000Z","end":"2026-11-25T19:30:01.330000000Z","culprit_flows":[],"affected_rpc_ids":["0x01"]}],"requests":3,"slo":"20ms"}`))
	f.Add([]byte(`{"schema":"bufscope.truth/v1","faults":[{"start":"2026-11-25T19:30:01.250000000Z"}]}`))
	f.Add([]byte(`{"schema":"bufscope.truth/v1","faults":[{"start":"not a time"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := parseTruth(b, "fuzz.truth.json")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.truth.json") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if tr.Schema != TruthSchema {
			t.Fatalf("accepted schema %q", tr.Schema)
		}
		// What was accepted encodes and parses back to the same times.
		var buf bytes.Buffer
		if err := tr.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := parseTruth(buf.Bytes(), "again")
		if err != nil {
			t.Fatalf("re-encoded truth does not parse: %v\n%s", err, buf.Bytes())
		}
		for i := range tr.Faults {
			if !back.Faults[i].Start.Equal(tr.Faults[i].Start) || !back.Faults[i].End.Equal(tr.Faults[i].End) {
				t.Fatalf("fault %d times changed: %v %v -> %v %v", i, tr.Faults[i].Start, tr.Faults[i].End, back.Faults[i].Start, back.Faults[i].End)
			}
		}
	})
}
