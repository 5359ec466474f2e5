//go:build linux

package lab

import (
	"strings"
	"testing"
	"time"

	"github.com/bufscope/bufscope/hwprobe/monitor"
)

// benchFixture is two runs per phase with round numbers, so every derived
// figure can be worked out by hand.
func benchFixture() *BenchResult {
	p := Lookup("none").Defaults
	p.Duration = 5 * time.Second
	return &BenchResult{
		Opts:   Options{MessageStartEvery: 16, MessageStartFirstHop: true, Bottleneck: true},
		Params: p,
		Without: BenchPhase{Runs: 2, Requests: 40000, Elapsed: 10 * time.Second, PerRun: []float64{4000, 4000},
			SelfCPU: 2 * time.Millisecond, LoadMin: 3, LoadMax: 5, Busy: 1.2},
		With: BenchPhase{Deployed: true, Runs: 2, Requests: 30000, Elapsed: 10 * time.Second, PerRun: []float64{3200, 2800},
			DataBytes: 1_000_000, TagBytes: 300, ReportBytes: 200, Reports: 100_000, ReportPkts: 10_000,
			CollectorCPU: 5 * time.Second, TraceBytes: 300_000, SelfCPU: 1002 * time.Millisecond, LoadMin: 4, LoadMax: 6, Busy: 1.5,
			BPF: []monitor.ProgramStat{{Program: "qdisc_dequeue", RunCount: 1_000_000, Runtime: 400 * time.Millisecond}}},
	}
}

func TestBenchDerivedFigures(t *testing.T) {
	b := benchFixture()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"throughput loss %", b.throughputLoss(), 25},
		{"wire share %", b.wireShare(), 0.05},
		// 0.5 cores for 10,000 reports/s.
		{"cores per 100k reports/s", b.cpuPer100k(), 5},
		{"stored bytes per request", b.storedPerRequest(), 10},
	} {
		if diff := c.got - c.want; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got, want := b.pairSummary(), "median -20.0%, range -30.0% to -20.0% over 2 pairs"; got != want {
		t.Errorf("pair summary %q, want %q", got, want)
	}
}

func TestBenchMarkdown(t *testing.T) {
	var md strings.Builder
	if err := benchFixture().WriteMarkdown(&md, "bufscope lab bench --runs 2", time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### Lab overhead run of 2026-11-25 21:00 UTC",
		"message-start reports: 1 message in 16 (by RPC ID), at the sender's qdisc only",
		"1-minute load average 3.0–6.0",
		"router egress towards every host shaped to 100mbit (tbf, 200000-byte FIFO)",
		"| machine CPU busy during the workload | 60% | 75% | |",
		"| requests/s | 4000.0 | 3000.0 | -25.00% (pairs of runs: median -20.0%, range -30.0% to -20.0% over 2 pairs) |",
		"| tag + report bytes as a share of data bytes | 0.0500% |",
		"0.100 cores for the exporter",
		"| `qdisc_dequeue` | 1000000 | 400 | 0.040 |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

// TestCPUTicks reads the real /proc/stat: busy ticks never exceed the
// total, and a second of spinning on this goroutine moves both.
func TestCPUTicks(t *testing.T) {
	b0, t0 := cpuTicks()
	if t0 == 0 || b0 > t0 {
		t.Fatalf("cpuTicks() = busy %d, total %d: /proc/stat not read", b0, t0)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	b1, t1 := cpuTicks()
	if t1 <= t0 || b1 <= b0 || b1-b0 > t1-t0 {
		t.Errorf("after 300 ms of spinning: busy %d→%d, total %d→%d", b0, b1, t0, t1)
	}
}
