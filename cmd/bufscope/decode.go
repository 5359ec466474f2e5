package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bufscope/bufscope/capture"
	"github.com/spf13/cobra"
)

type decodeOptions struct {
	IO      ioStreams
	Files   []string
	Verbose bool
	JSON    bool
	Count   int
	From    string
	To      string
	Workers int
	Decoder decoderFlags
}

func newDecodeCmd(s ioStreams, runF func(context.Context, *decodeOptions) error) *cobra.Command {
	opts := &decodeOptions{IO: s}
	cmd := &cobra.Command{
		Use:   "decode FILE...",
		Short: "Print the packets of traces, one line each, as a layer tree or as JSON",
		Long: `Print the packets of one or more traces: bufscope traces (.zst), and pcap or
pcapng files as tcpdump and Wireshark write them, compressed with zstd or not.
Several files are merged by timestamp.

The default output is one line per packet: number, time in seconds since the
first packet printed, capture point, source, destination, protocol, captured
length, and a short description. On a terminal the columns are aligned and
coloured; when piped, the fields are separated by tabs. -V prints every layer
with every field; --json prints one JSON object per packet (docs/cli.md
describes the envelope, docs/decode-json.md the layers).

--from and --to take an absolute time (RFC 3339, e.g. 2026-01-02T15:04:05.5Z)
or a time relative to the first packet of the inputs (+2.5s, +1m). The range
includes --from and excludes --to; bufscope traces jump straight to it.

A damaged or truncated file still has its intact packets printed; then the
error names the file and offset, and the exit status is 3.`,
		Example: `  # one line per packet
  bufscope decode fixtures/demo.trace.zst

  # the first 10 packets with every field
  bufscope decode -V -c 10 trace.zst

  # two capture points merged, from 2.5 s after the start for one second, as JSON
  bufscope decode --json --from +2.5s --to +3.5s a.zst b.pcapng | jq .layers`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runDecode(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Verbose, "verbose", "V", false, "print the full layer tree of every packet")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object per packet")
	f.IntVarP(&opts.Count, "count", "c", 0, "stop after this many packets (0: all)")
	f.StringVar(&opts.From, "from", "", "first time to print: RFC 3339 or +DURATION after the first packet")
	f.StringVar(&opts.To, "to", "", "time to stop before: RFC 3339 or +DURATION after the first packet")
	f.IntVar(&opts.Workers, "workers", 0, "frames decompressed in parallel (0: one per CPU, at most 4)")
	opts.Decoder.bind(f)
	return cmd
}

func (o *decodeOptions) validate() error {
	if o.Verbose && o.JSON {
		return usageError{errors.New("-V and --json exclude each other: pick the tree or the JSON")}
	}
	if o.Count < 0 {
		return usageError{fmt.Errorf("--count %d: must not be negative", o.Count)}
	}
	if err := o.Decoder.validate(); err != nil {
		return err
	}
	if o.Workers < 0 {
		return usageError{fmt.Errorf("--workers %d: must not be negative", o.Workers)}
	}
	return nil
}

func runDecode(ctx context.Context, o *decodeOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	from, to, err := resolveTimeRange(o.From, o.To, o.Files)
	if err != nil {
		return err
	}
	ropts := capture.ReaderOptions{From: from, To: to, Workers: o.Workers}

	readers := make([]*capture.Reader, 0, len(o.Files))
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	for _, f := range o.Files {
		r, err := capture.Open(f, ropts)
		if err != nil {
			return inputError{err}
		}
		readers = append(readers, r)
	}

	out := bufio.NewWriterSize(o.IO.Out, 64<<10)
	defer out.Flush()
	src := capture.Merge(readers...)
	pr := newPacketPrinter(out, o, src)
	n := 0
	for o.Count == 0 || n < o.Count {
		if ctx.Err() != nil {
			return nil // interrupted by the user: what was printed stands
		}
		pkt, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Flush()
			return inputError{fmt.Errorf("%w; %d packets read before it", oneLine(err), n)}
		}
		n++
		if err := pr.print(n, pkt); err != nil {
			return err
		}
	}
	return out.Flush()
}

// oneLine keeps an error to one line: several damaged inputs come back
// as errors.Join, which separates them with newlines.
func oneLine(err error) error {
	if !strings.Contains(err.Error(), "\n") {
		return err
	}
	return lineError{err}
}

type lineError struct{ err error }

func (e lineError) Error() string { return strings.ReplaceAll(e.err.Error(), "\n", "; ") }
func (e lineError) Unwrap() error { return e.err }
