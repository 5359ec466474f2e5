package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bufscope/bufscope/analyze"
	"github.com/bufscope/bufscope/internal/hugepage"
	"github.com/spf13/cobra"
)

type analyzeOptions struct {
	IO         ioStreams
	Files      []string
	SLO        time.Duration
	JSON       bool
	Explain    string
	Top        int
	From       string
	To         string
	Workers    int
	MADs       float64
	Percentile float64
	Window     time.Duration
	Decoder    decoderFlags
}

func newAnalyzeCmd(s ioStreams, runF func(context.Context, *analyzeOptions) error) *cobra.Command {
	opts := &analyzeOptions{IO: s}
	cmd := &cobra.Command{
		Use:   "analyze FILE...",
		Short: "Find the slow requests of traces and the buffer that made each slow",
		Long: `Reconstruct every RPC of one or more traces (several files, e.g. one per
collector, are merged by time) from the request tags and TCP sequence numbers,
lay out the chain of buffers each request crossed with the time it spent in
each, flag request latency anomalies (RLAs) against an SLO and against the
baseline of the same RPC class, and name for each RLA the root-cause buffer,
its event, the evidence, a confidence and the culprit flows.

The table lists RLAs by excess latency, then a summary by root cause. --json
prints the whole result (docs/analyze-json.md); --explain prints one request's
chain, evidence and culprits. docs/analyze.md explains the model.

On Linux, analyze asks the kernel for transparent huge pages on its heap
(madvise), which cuts its CPU time by about a tenth in a virtual machine; set
BUFSCOPE_HUGEPAGES=0 in the environment to not ask.`,
		Example: `  # RLAs of a trace against a 20 ms SLO
  bufscope analyze --slo 20ms fixtures/demo.trace.zst

  # the whole story of one request
  bufscope analyze --explain 0x0000111100000000 fixtures/demo.trace.zst

  # two collectors, one second of trace, as JSON
  bufscope analyze --json --from +2s --to +3s a.zst b.zst | jq '.summary'`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runAnalyze(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&opts.SLO, "slo", 0, "flag requests slower than this (e.g. 20ms); 0: baseline rules only")
	f.BoolVar(&opts.JSON, "json", false, "print the result as JSON (docs/analyze-json.md)")
	f.StringVar(&opts.Explain, "explain", "", "print the full chain, evidence and culprits of this request, trace or RPC ID")
	f.IntVar(&opts.Top, "top", 20, "show at most this many RLAs (0: all)")
	f.StringVar(&opts.From, "from", "", "analyze from this time: RFC 3339 or +DURATION after the first packet")
	f.StringVar(&opts.To, "to", "", "analyze up to this time: RFC 3339 or +DURATION after the first packet")
	f.IntVar(&opts.Workers, "workers", 0, "decoding goroutines (0: one per CPU but one, at least 1)")
	f.Float64Var(&opts.MADs, "baseline-mads", 6, "flag RPCs above their class median plus this many scaled MADs (negative: off)")
	f.Float64Var(&opts.Percentile, "baseline-percentile", 0, "also flag RPCs above this percentile of their class (0: off)")
	f.DurationVar(&opts.Window, "window", 10*time.Second, "state kept in trace time; must exceed the longest request")
	opts.Decoder.bind(f)
	return cmd
}

func (o *analyzeOptions) validate() error {
	switch {
	case o.SLO < 0:
		return usageError{fmt.Errorf("--slo %s: must not be negative", o.SLO)}
	case o.Top < 0:
		return usageError{fmt.Errorf("--top %d: must not be negative", o.Top)}
	case o.Workers < 0:
		return usageError{fmt.Errorf("--workers %d: must not be negative", o.Workers)}
	case o.Percentile < 0 || o.Percentile >= 100:
		return usageError{fmt.Errorf("--baseline-percentile %g: must be in [0, 100)", o.Percentile)}
	case o.Window < time.Second:
		return usageError{fmt.Errorf("--window %s: must be at least 1s (it must outlast the slowest request)", o.Window)}
	case o.JSON && o.Explain != "":
		return usageError{errors.New("--json and --explain exclude each other: --json already holds every chain")}
	}
	return o.Decoder.validate()
}

func runAnalyze(ctx context.Context, o *analyzeOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	from, to, err := resolveTimeRange(o.From, o.To, o.Files)
	if err != nil {
		return err
	}
	if os.Getenv("BUFSCOPE_HUGEPAGES") != "0" {
		// The analysis holds about 100 MB of heap on the large lab trace
		// (docs/performance.md); a refusal only costs speed. Asked once
		// the flags are known good: it allocates and collects.
		_ = hugepage.Advise(analyze.HugepageHeap)
	}
	aopts := analyze.Options{SLO: o.SLO, BaselineMADs: o.MADs, BaselinePercentile: o.Percentile, Window: o.Window,
		From: from, To: to}
	ro := analyze.RunOptions{Workers: o.Workers, Decoder: o.Decoder.options()}
	// Read from a window before --from so that requests already in flight
	// at --from are whole; the analyzer reports only those starting inside.
	if !aopts.From.IsZero() {
		ro.Reader.From = aopts.From.Add(-o.Window)
	}
	if !aopts.To.IsZero() {
		ro.Reader.To = aopts.To.Add(o.Window)
	}
	if o.IO.ErrTTY {
		ro.Progress = progressLine(o.IO)
	}
	res, err := analyze.Run(ctx, o.Files, ro, aopts)
	if o.IO.ErrTTY {
		fmt.Fprint(o.IO.ErrOut, "\r\033[K")
	}
	if res == nil {
		return inputError{err}
	}
	if err != nil {
		// The result covers the packets before the damage: print it, then
		// fail with the file and offset.
		defer fmt.Fprintln(o.IO.ErrOut, "bufscope analyze: the result above stops at the damage")
	}
	out := bufio.NewWriterSize(o.IO.Out, 64<<10)
	var werr error
	switch {
	case o.Explain != "":
		q := res.Find(o.Explain)
		if q == nil {
			out.Flush()
			return usageError{fmt.Errorf("--explain %s: no RLA with this request, trace or RPC ID (the table lists them; --top 0 shows all)", o.Explain)}
		}
		werr = analyze.Explain(out, q)
	case o.JSON:
		werr = analyze.WriteJSON(out, res, o.Top)
	default:
		werr = analyze.WriteTable(out, res, o.Top, !o.IO.OutTTY)
		if len(res.RLAs) == 0 && o.SLO == 0 && res.Stats.Requests > 0 {
			// The baseline rules compare a request with its own class: a
			// fault that slows the whole class for the whole trace raises
			// none. Say so instead of letting "0 RLAs" read as "all fine".
			fmt.Fprintln(o.IO.ErrOut, "bufscope analyze: no --slo given, so only requests far above their own class's median are flagged; a fault that lasts the whole trace slows every request alike: pass --slo with the latency you expect (e.g. --slo 20ms)")
		}
	}
	if ferr := out.Flush(); werr == nil {
		werr = ferr
	}
	if err != nil {
		return inputError{err}
	}
	return werr
}

// progressLine redraws one status line on a terminal: packets read and
// the trace time reached.
func progressLine(s ioStreams) func(int64, int64) {
	start := time.Now()
	return func(packets, now int64) {
		el := time.Since(start).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(packets) / el / 1e6
		}
		t := "-"
		if now != 0 {
			t = time.Unix(0, now).UTC().Format("15:04:05.000")
		}
		fmt.Fprintf(s.ErrOut, "\r\033[Kanalyze: %d packets, trace time %s, %.2f M packets/s", packets, t, rate)
	}
}
