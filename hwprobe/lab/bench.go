//go:build linux

package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/bufscope/bufscope/hwprobe/monitor"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// Run is the run to repeat; Fault "" or "bench" means "none", Output
	// is ignored (traces go to a temporary directory).
	Run  Options
	Runs int // repetitions of each phase
}

// BenchPhase aggregates the runs of one phase (with or without deploy).
type BenchPhase struct {
	Deployed     bool
	Runs         int
	Requests     int           // completed
	Elapsed      time.Duration // summed workload time
	RespBytes    int64         // response payload bytes completed
	P50, P99     time.Duration
	P999         time.Duration
	DataBytes    uint64 // bytes the router received from hosts
	TagBytes     uint64 // 28 bytes per tagged segment
	ReportBytes  uint64 // report packets on the wire (UDP payload + UDP/IP/Ethernet headers)
	Reports      uint64 // individual reports
	ReportPkts   uint64
	CollectorCPU time.Duration
	TraceBytes   int64
	// SelfCPU is the bench process's CPU time during the workloads: with
	// deploy the exporter's, plus the runner's idle cost both phases pay.
	SelfCPU time.Duration
	// BPF sums the kernel's accounting per program (BPFStats runs only).
	BPF []monitor.ProgramStat
	// Load is /proc/loadavg's 1-minute figure before each run, min and
	// max: other work on the machine.
	LoadMin, LoadMax float64
	// PerRun is each run's completed requests per second, in run order.
	PerRun []float64
	// Busy sums each run's Result.MachineBusy; MachineBusy averages it.
	Busy float64
}

// MachineBusy is the mean share of the machine's CPU time that was busy
// during the phase's workloads.
func (p BenchPhase) MachineBusy() float64 {
	if p.Runs == 0 {
		return 0
	}
	return p.Busy / float64(p.Runs)
}

// BPFTime is the summed run time of every program in BPF.
func (p BenchPhase) BPFTime() time.Duration {
	var t time.Duration
	for _, st := range p.BPF {
		t += st.Runtime
	}
	return t
}

// Throughput is completed requests per second.
func (p BenchPhase) Throughput() float64 { return float64(p.Requests) / p.Elapsed.Seconds() }

// BenchResult compares the two phases.
type BenchResult struct {
	Opts    Options // the run options, for the description
	Params  Params
	Without BenchPhase
	With    BenchPhase
}

// Bench runs the workload Runs times without and Runs times with bufscope
// deployed, alternating so that drift in the machine's load hits both
// phases alike. The data plane is not mirrored: the collector then records
// what a production collector would, the reports only.
func Bench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	dir, err := os.MkdirTemp("", "bufscope-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ro := o.Run
	if ro.Fault == "" || ro.Fault == "bench" {
		ro.Fault = "none"
	}
	ro.NoMirror, ro.Overwrite = true, true
	res := &BenchResult{Opts: ro, Params: ro.Params.merge(Lookup(ro.Fault).Defaults)}
	var lat [2][]time.Duration
	for i := 0; i < 2*o.Runs; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("bench stopped before run %d: %w", i+1, err)
		}
		deployed := i%2 == 1
		ro.NoDeploy = !deployed
		ro.Output = filepath.Join(dir, fmt.Sprintf("run%d.trace.zst", i))
		load := loadAvg()
		r, err := Run(ctx, ro)
		if err != nil {
			return nil, fmt.Errorf("bench run %d (deployed %v): %w", i+1, deployed, err)
		}
		ph := &res.Without
		if deployed {
			ph = &res.With
		}
		ph.Deployed = deployed
		if ph.Runs == 0 || load < ph.LoadMin {
			ph.LoadMin = load
		}
		ph.LoadMax = max(ph.LoadMax, load)
		ph.Runs++
		ph.SelfCPU += r.SelfCPU
		ph.Busy += r.MachineBusy
		ph.BPF = addProgramStats(ph.BPF, r.BPF)
		ph.Elapsed += res.Params.Duration
		ph.DataBytes += r.RouterBytes
		ph.CollectorCPU += r.CollectorCPU
		if st, err := os.Stat(r.Trace); err == nil {
			ph.TraceBytes += st.Size()
		}
		done := 0
		for _, rl := range r.Requests {
			if rl.Err == "" {
				done++
				ph.Requests++
				ph.RespBytes += int64(rl.RespBytes)
				lat[i%2] = append(lat[i%2], rl.Latency())
			}
		}
		ph.PerRun = append(ph.PerRun, float64(done)/res.Params.Duration.Seconds())
		for _, c := range r.Deploy {
			ph.Reports += c.Exporter.Reports
			ph.ReportPkts += c.Exporter.Packets
			ph.ReportBytes += c.Exporter.Bytes + c.Exporter.Packets*(8+20+14)
		}
		if r.Tagger != nil {
			ph.TagBytes += r.Tagger.Tagged * 28
		}
	}
	for k, ph := range []*BenchPhase{&res.Without, &res.With} {
		slices.Sort(lat[k])
		ph.P50, ph.P99, ph.P999 = pct(lat[k], 0.5), pct(lat[k], 0.99), pct(lat[k], 0.999)
	}
	return res, nil
}

func addProgramStats(sum, add []monitor.ProgramStat) []monitor.ProgramStat {
next:
	for _, a := range add {
		for i := range sum {
			if sum[i].Program == a.Program {
				sum[i].RunCount += a.RunCount
				sum[i].Runtime += a.Runtime
				continue next
			}
		}
		sum = append(sum, a)
	}
	return sum
}

// loadAvg is the 1-minute load average, 0 when unreadable.
func loadAvg() float64 {
	var l float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l)
	}
	return l
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// Derived figures.
func (b *BenchResult) throughputLoss() float64 {
	return 100 * (1 - b.With.Throughput()/b.Without.Throughput())
}

// pairChanges is the throughput change of each run with deploy against
// the run without just before it, sorted: on a shared machine the spread
// says how much of the difference is the machine.
func (b *BenchResult) pairChanges() []float64 {
	var out []float64
	for i := range min(len(b.Without.PerRun), len(b.With.PerRun)) {
		if b.Without.PerRun[i] > 0 {
			out = append(out, 100*(b.With.PerRun[i]/b.Without.PerRun[i]-1))
		}
	}
	slices.Sort(out)
	return out
}

func (b *BenchResult) pairSummary() string {
	ch := b.pairChanges()
	if len(ch) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("median %+.1f%%, range %+.1f%% to %+.1f%% over %d pairs", ch[len(ch)/2], ch[0], ch[len(ch)-1], len(ch))
}

func (b *BenchResult) wireShare() float64 {
	return 100 * float64(b.With.TagBytes+b.With.ReportBytes) / float64(b.With.DataBytes)
}

func (b *BenchResult) cpuPer100k() float64 {
	reportsPerSec := float64(b.With.Reports) / b.With.Elapsed.Seconds()
	cores := b.With.CollectorCPU.Seconds() / b.With.Elapsed.Seconds()
	if reportsPerSec == 0 {
		return 0
	}
	return cores / (reportsPerSec / 1e5)
}

func (b *BenchResult) storedPerRequest() float64 {
	return float64(b.With.TraceBytes) / float64(max(1, b.With.Requests))
}

// WriteText prints the comparison, one "name<TAB>value" per line.
func (b *BenchResult) WriteText(w io.Writer) {
	for _, ph := range []BenchPhase{b.Without, b.With} {
		tag := "without"
		if ph.Deployed {
			tag = "with"
		}
		fmt.Fprintf(w, "%s.requests_per_s\t%.1f\n%s.p50\t%s\n%s.p99\t%s\n%s.p999\t%s\n", tag, ph.Throughput(), tag, ph.P50, tag, ph.P99, tag, ph.P999)
		fmt.Fprintf(w, "%s.machine_busy_percent\t%.1f\n", tag, 100*ph.MachineBusy())
	}
	fmt.Fprintf(w, "throughput_loss_percent\t%.2f\n", b.throughputLoss())
	fmt.Fprintf(w, "throughput_change_per_pair\t%s\n", b.pairSummary())
	fmt.Fprintf(w, "tag_bytes\t%d\nreport_bytes\t%d\ndata_bytes\t%d\nwire_share_percent\t%.4f\n", b.With.TagBytes, b.With.ReportBytes, b.With.DataBytes, b.wireShare())
	fmt.Fprintf(w, "reports\t%d\nreports_per_s\t%.0f\ncollector_cpu\t%s\ncollector_cores_per_100k_reports_per_s\t%.3f\n",
		b.With.Reports, float64(b.With.Reports)/b.With.Elapsed.Seconds(), b.With.CollectorCPU, b.cpuPer100k())
	fmt.Fprintf(w, "stored_bytes_per_request\t%.1f\n", b.storedPerRequest())
	fmt.Fprintf(w, "without.self_cpu\t%s\nwith.self_cpu\t%s\n", b.Without.SelfCPU, b.With.SelfCPU)
	fmt.Fprintf(w, "load_1min\t%.1f-%.1f\n", min(b.Without.LoadMin, b.With.LoadMin), max(b.Without.LoadMax, b.With.LoadMax))
	for _, st := range b.With.BPF {
		fmt.Fprintf(w, "bpf.%s\truns=%d ns_per_run=%.0f cores=%.3f\n", st.Program, st.RunCount, nsPerRun(st), st.Runtime.Seconds()/b.With.Elapsed.Seconds())
	}
	if len(b.With.BPF) > 0 {
		fmt.Fprintf(w, "bpf_cores\t%.3f\n", b.With.BPFTime().Seconds()/b.With.Elapsed.Seconds())
	}
}

func nsPerRun(st monitor.ProgramStat) float64 {
	return float64(st.Runtime.Nanoseconds()) / float64(max(1, st.RunCount))
}

// bottleneck describes what bounds the workload besides the CPUs.
func (b *BenchResult) bottleneck() string {
	if !b.Opts.Bottleneck {
		return "no shaper on the router (the entry's own faults aside)"
	}
	return fmt.Sprintf("router egress towards every host shaped to %s (tbf, %d-byte FIFO)", b.Params.LinkRate, b.Params.QueueBytes)
}

// messageStarts describes which message starts the deployment reported.
func (o Options) messageStarts() string {
	switch {
	case o.TaggerOnly:
		return "tagger only, no monitors"
	case o.NoMessageStart:
		return "none (abnormal events only)"
	}
	s := "every message"
	if o.MessageStartEvery > 1 {
		s = fmt.Sprintf("1 message in %d (by RPC ID)", o.MessageStartEvery)
	}
	if o.MessageStartFirstHop {
		return s + ", at the sender's qdisc only"
	}
	return s + ", at every hop"
}

// WriteMarkdown appends a results table for docs/overhead.md.
func (b *BenchResult) WriteMarkdown(w io.Writer, command string, when time.Time) error {
	p := b.Params
	_, err := fmt.Fprintf(w, `
### Lab overhead run of %s

Command: `+"`%s`"+`; workload %s, %d clients × %d servers, %d connections each, %d B requests, %d B responses, %s per run, %d runs per phase, alternating; %s; one deployment for all nodes; message-start reports: %s. Machine: %d CPUs, 1-minute load average %.1f–%.1f before the runs.

| measure | without deploy | with deploy | change |
|---|---|---|---|
| requests/s | %.1f | %.1f | %+.2f%% (pairs of runs: %s) |
| RPC latency p50 | %s | %s | |
| RPC latency p99 | %s | %s | |
| RPC latency p99.9 | %s | %s | |
| machine CPU busy during the workload | %.0f%% | %.0f%% | |

| measure | value |
|---|---|
| tag bytes (28 B per tagged segment) | %d |
| report bytes on the wire (UDP payload + 42 B headers) | %d in %d packets, %d reports |
| data-plane bytes (router receive counters) | %d |
| tag + report bytes as a share of data bytes | %.4f%% |
| collector CPU (user+system, capture + zstd) | %s for %.0f reports/s → %.3f cores per 100k reports/s |
| stored bytes per request (trace size / completed requests) | %.1f |
| bench process CPU (exporter with deploy; runner alone without) | %s with, %s without: %.3f cores for the exporter |
`, when.UTC().Format("2006-01-02 15:04 MST"), command, p.Mode, p.Clients, p.Servers, p.Concurrency, p.ReqBytes, p.RespBytes, p.Duration, b.With.Runs,
		b.bottleneck(), b.Opts.messageStarts(), runtime.NumCPU(), min(b.Without.LoadMin, b.With.LoadMin), max(b.Without.LoadMax, b.With.LoadMax),
		b.Without.Throughput(), b.With.Throughput(), -b.throughputLoss(), b.pairSummary(),
		b.Without.P50, b.With.P50, b.Without.P99, b.With.P99, b.Without.P999, b.With.P999,
		100*b.Without.MachineBusy(), 100*b.With.MachineBusy(),
		b.With.TagBytes, b.With.ReportBytes, b.With.ReportPkts, b.With.Reports, b.With.DataBytes, b.wireShare(),
		b.With.CollectorCPU, float64(b.With.Reports)/b.With.Elapsed.Seconds(), b.cpuPer100k(), b.storedPerRequest(),
		b.With.SelfCPU, b.Without.SelfCPU, (b.With.SelfCPU-b.Without.SelfCPU).Seconds()/b.With.Elapsed.Seconds())
	if err != nil || len(b.With.BPF) == 0 {
		return err
	}
	_, err = fmt.Fprintf(w, `
Kernel accounting of the programs in the runs with deploy (`+"`kernel.bpf_stats_enabled`"+`, which itself adds a little to every run):

| program | runs | ns per run | cores |
|---|---|---|---|
`)
	for _, st := range b.With.BPF {
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "| `%s` | %d | %.0f | %.3f |\n", st.Program, st.RunCount, nsPerRun(st), st.Runtime.Seconds()/b.With.Elapsed.Seconds())
	}
	if err == nil {
		_, err = fmt.Fprintf(w, "| all | | | %.3f |\n", b.With.BPFTime().Seconds()/b.With.Elapsed.Seconds())
	}
	return err
}
