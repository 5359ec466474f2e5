package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/spf13/cobra"
)

type recordOptions struct {
	IO          ioStreams
	Interfaces  []string
	Output      string
	Filter      string
	SnapLen     int
	ReportPort  int
	RotateSize  byteSize
	RotateEvery time.Duration
	Count       uint64
	Duration    time.Duration
	Hostname    string
	Overwrite   bool
	Compact     bool
	// FrameInterval bounds what a killed recorder loses; a flag would only
	// invite values that break that promise, so it is fixed here.
	FrameInterval time.Duration
	// StatusEvery is how often the terminal status line is redrawn.
	StatusEvery time.Duration
}

func newRecordCmd(s ioStreams, runF func(context.Context, *recordOptions) error) *cobra.Command {
	opts := &recordOptions{IO: s, FrameInterval: 500 * time.Millisecond, StatusEvery: 250 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "record -i IFACE [-i IFACE]... -o FILE",
		Short: "Capture packets from interfaces into a trace file (needs root or CAP_NET_RAW)",
		Long: `Capture packets from one or more interfaces through AF_PACKET (TPACKET_V3)
into a bufscope trace: pcapng, one interface block per capture point named
HOST/IFACE, compressed as independent zstd frames with a seek table.

Packets are cut to --snap-len bytes in the kernel (headers and the request
tag survive, payload does not); UDP packets to --report-port, the telemetry
reports, are always kept whole. A capture filter (-f) uses the pcap-filter
language and is compiled by tcpdump, which must be installed to use -f or
the snap length.

The file is written in frames completed at least every 0.5 s, so a recorder
that is killed loses at most the last second; SIGINT and SIGTERM stop it
cleanly with everything flushed. Files are created with mode 0600 and an
existing file is not replaced unless --overwrite is given.

Frames are laid out so that Wireshark and tshark 4.0, whose zstd reader
loses its place after a frame that crosses its 128 KiB input window, open
the trace directly; --compact writes 1 MiB frames instead (about 7% smaller;
those files need "zstd -d" before Wireshark 4.0 reads them, bufscope reads
both).`,
		Example: `  # the telemetry collector port and tagged TCP on eth0, until ^C
  sudo bufscope record -i eth0 -f 'udp port 32766 or tcp' -o trace.zst

  # two capture points, a new file every 100 MB or 10 minutes
  sudo bufscope record -i eth0 -i eth1 -o trace.zst --rotate-size 100MB --rotate-every 10m

  # exactly 1000 packets, or stop after 30 s
  sudo bufscope record -i lo -o lo.zst --count 1000 --duration 30s`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRecord(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.Interfaces, "interface", "i", nil, "interface to capture from; repeat for several")
	f.StringVarP(&opts.Output, "output", "o", "", "trace file to write (with rotation: FILE-0001.zst, …)")
	f.StringVarP(&opts.Filter, "filter", "f", "", "capture filter in pcap-filter syntax, e.g. 'udp port 32766'")
	f.IntVarP(&opts.SnapLen, "snap-len", "s", capture.DefaultSnapLen, "bytes kept of each packet; 0 keeps whole packets")
	f.IntVar(&opts.ReportPort, "report-port", 32766, "UDP destination port of telemetry reports, never truncated; 0 disables")
	f.Var(&opts.RotateSize, "rotate-size", "start a new file after this many compressed bytes (e.g. 100MB, 1GiB)")
	f.DurationVar(&opts.RotateEvery, "rotate-every", 0, "start a new file after this long (e.g. 10m)")
	f.Uint64VarP(&opts.Count, "count", "c", 0, "stop after this many packets")
	f.DurationVar(&opts.Duration, "duration", 0, "stop after this long (e.g. 30s)")
	f.StringVar(&opts.Hostname, "hostname", "", "host part of capture-point names (default: this host's name)")
	f.BoolVar(&opts.Overwrite, "overwrite", false, "replace existing output files")
	f.BoolVar(&opts.Compact, "compact", false, "1 MiB frames: smaller, but Wireshark 4.0 needs the file decompressed first")
	return cmd
}

func (o *recordOptions) validate() error {
	switch {
	case len(o.Interfaces) == 0:
		return usageError{errors.New("record: no interface: give at least one -i IFACE")}
	case o.Output == "":
		return usageError{errors.New("record: no output file: give -o FILE")}
	case o.SnapLen < 0 || o.SnapLen > 65535:
		return usageError{fmt.Errorf("--snap-len %d: must be 0 (whole packets) to 65535", o.SnapLen)}
	case o.SnapLen > 0 && o.SnapLen < 64:
		return usageError{fmt.Errorf("--snap-len %d: below 64 bytes even the TCP header is lost; use 192 or more", o.SnapLen)}
	case o.ReportPort < 0 || o.ReportPort > 65535:
		return usageError{fmt.Errorf("--report-port %d: not a port number", o.ReportPort)}
	case o.RotateEvery < 0:
		return usageError{fmt.Errorf("--rotate-every %s: must be positive", o.RotateEvery)}
	case o.Duration < 0:
		return usageError{fmt.Errorf("--duration %s: must be positive", o.Duration)}
	case o.RotateSize > 0 && o.RotateSize < 1<<20:
		return usageError{fmt.Errorf("--rotate-size %s: use at least 1MiB, one compressed frame is up to that big", o.RotateSize.String())}
	}
	return nil
}

func runRecord(ctx context.Context, o *recordOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	lo := capture.LiveOptions{Interfaces: o.Interfaces, Filter: o.Filter, SnapLen: o.SnapLen, Hostname: o.Hostname}
	if o.SnapLen == 0 {
		lo.SnapLen = -1
	}
	if o.ReportPort > 0 {
		lo.KeepWhole = fmt.Sprintf("udp dst port %d", o.ReportPort)
	}
	for _, name := range o.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return usageError{fmt.Errorf("record: -i %s: no such network interface (ip link lists them)", name)}
		}
	}
	live, err := capture.OpenLive(lo)
	switch {
	case errors.Is(err, capture.ErrNotPermitted):
		return privilegeError{fmt.Errorf("record: %w: run it as root, or grant the binary cap_net_raw (setcap cap_net_raw+ep)", err)}
	case errors.Is(err, capture.ErrNoFilterCompiler):
		return privilegeError{fmt.Errorf("record: %w; or record whole packets without a filter: --snap-len 0 --report-port 0", err)}
	case errors.Is(err, capture.ErrBadFilter):
		return usageError{fmt.Errorf("record: -f: %w", err)}
	case err != nil:
		return fmt.Errorf("record: %w", err)
	}
	defer live.Close()
	topo, err := live.Topology()
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	rot, err := capture.NewRotator(capture.RotateOptions{
		Path:     o.Output,
		MaxBytes: int64(o.RotateSize),
		Every:    o.RotateEvery,
		Writer: capture.WriterOptions{
			Interfaces:    live.Interfaces(),
			Topology:      topo,
			FrameInterval: o.FrameInterval,
			Overwrite:     o.Overwrite,
			// Traces must open in the Wireshark users have; see --compact.
			WiresharkReadable: !o.Compact,
		},
	})
	if errors.Is(err, os.ErrExist) {
		return usageError{fmt.Errorf("record: -o %s: %w; pass --overwrite to replace it", o.Output, err)}
	}
	if err != nil {
		return fmt.Errorf("record: -o %s: %w", o.Output, err)
	}

	start := time.Now()
	stopStatus := func() {}
	if o.IO.ErrTTY {
		stopStatus = startStatusLine(o.IO.ErrOut, o.StatusEvery, func() string { return statusLine(live, rot, start) })
	}
	recErr := live.Record(ctx, rot, capture.RecordLimits{Count: o.Count, Duration: o.Duration})
	closeErr := rot.Close()
	stopStatus()
	if err := errors.Join(recErr, closeErr); err != nil {
		var full *capture.ErrDiskFull
		if errors.As(err, &full) {
			return fmt.Errorf("record: %w", full)
		}
		return fmt.Errorf("record: %w", oneLine(err))
	}
	fmt.Fprintln(o.IO.ErrOut, summaryLine(live, rot, start))
	return nil
}

func statusLine(live *capture.Live, rot *capture.Rotator, start time.Time) string {
	ls, ws := live.Stats(), rot.Stats()
	ratio := "-"
	if r := ws.Ratio(); r > 0 {
		ratio = fmt.Sprintf("%.1fx", r)
	}
	el := time.Since(start).Truncate(time.Second)
	return fmt.Sprintf("%d packets  %s  %d dropped by kernel  compression %s  %s  → %s",
		ls.Packets, humanBytes(ls.Bytes), ls.Drops, ratio, el, rot.Current())
}

func summaryLine(live *capture.Live, rot *capture.Rotator, start time.Time) string {
	ls, ws := live.Stats(), rot.Stats()
	return fmt.Sprintf("recorded %d packets (%s captured, %s on the wire) in %s into %s; %s written, compression %.1fx; %d dropped by the kernel",
		ls.Packets, humanBytes(ls.Bytes), humanBytes(ls.WireBytes), time.Since(start).Round(time.Millisecond),
		strings.Join(rot.Files(), ", "), humanBytes(uint64(ws.CompressedBytes)), ws.Ratio(), ls.Drops)
}

// startStatusLine redraws one line on a terminal until the returned
// function is called, which clears it.
func startStatusLine(w io.Writer, every time.Duration, line func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\x1b[K%s", line())
			}
		}
	}()
	return func() { close(done); <-finished }
}
