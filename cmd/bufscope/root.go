package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
)

// ioStreams is where a command reads and writes. Tests build one over
// bytes.Buffers; main builds one over the process's standard streams.
type ioStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// OutTTY and ErrTTY say whether Out/ErrOut are terminals: only then may
	// a command colour its output or redraw a status line. Piped output
	// stays stable so scripts can parse it.
	OutTTY bool
	ErrTTY bool
}

func systemStreams() ioStreams {
	isTTY := func(f *os.File) bool {
		return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
	}
	return ioStreams{
		In:     os.Stdin,
		Out:    os.Stdout,
		ErrOut: os.Stderr,
		OutTTY: isTTY(os.Stdout) && os.Getenv("NO_COLOR") == "",
		ErrTTY: isTTY(os.Stderr),
	}
}

func newRootCmd(s ioStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "bufscope",
		Short: "Find out which buffer made a request slow",
		Long: `bufscope records tagged TCP traffic and buffer telemetry (P4.org Telemetry
Reports, INT, bufscope host-buffer reports) into compressed pcapng traces and
reconstructs offline which buffer made each request slow.

` + exitCodesHelp,
		Example: `  # decode a trace, one line per packet
  bufscope decode fixtures/demo.trace.zst

  # record the telemetry collector port on eth0 for ten minutes (needs root)
  sudo bufscope record -i eth0 -f 'udp port 32766' -o trace.zst --duration 10m`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Args and RunE are set so that an unknown subcommand is reported
		// as a usage error (exit 2) rather than cobra's generic error.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q; run 'bufscope --help' for the list", args[0])
			if sugg := cmd.SuggestionsFor(args[0]); len(sugg) > 0 {
				msg = fmt.Sprintf("unknown command %q; did you mean %s?", args[0], strings.Join(sugg, " or "))
			}
			return usageError{fmt.Errorf("%s", msg)}
		},
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{err}
	})
	root.CompletionOptions.DisableDefaultCmd = true
	root.SuggestionsMinimumDistance = 2

	// The command list. Each line registers one command; keep it sorted.
	root.AddCommand(newAnalyzeCmd(s, nil))
	root.AddCommand(newCompletionCmd(s))
	root.AddCommand(newDecodeCmd(s, nil))
	root.AddCommand(newDeployCmd(s, nil))
	root.AddCommand(newLabCmd(s))
	root.AddCommand(newManCmd(s))
	root.AddCommand(newProbeCmd(s, nil))
	root.AddCommand(newRecordCmd(s, nil))
	root.AddCommand(newVersionCmd(s))
	return root
}

// usageArgs turns cobra's argument-count errors into usage errors so they
// exit with code 2 like flag errors do.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
