package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

type versionOptions struct {
	IO ioStreams
	// buildInfo is runtime/debug.ReadBuildInfo; tests replace it.
	buildInfo func() (*debug.BuildInfo, bool)
}

func newVersionCmd(s ioStreams) *cobra.Command {
	opts := &versionOptions{IO: s, buildInfo: debug.ReadBuildInfo}
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the module version and the VCS commit bufscope was built from",
		Args:    usageArgs(cobra.NoArgs),
		Example: "  bufscope version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runVersion(opts)
		},
	}
}

func runVersion(opts *versionOptions) error {
	bi, ok := opts.buildInfo()
	if !ok {
		fmt.Fprintln(opts.IO.Out, "bufscope (unknown version: built without module support)")
		return nil
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	var revision, when, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		}
	}
	fmt.Fprintf(opts.IO.Out, "bufscope %s\n", version)
	if revision != "" {
		fmt.Fprintf(opts.IO.Out, "commit %s%s %s\n", revision, modified, when)
	} else {
		// `go run` and `go test` do not stamp VCS data.
		fmt.Fprintln(opts.IO.Out, "commit unknown (not built with 'go build' from a checkout)")
	}
	fmt.Fprintf(opts.IO.Out, "%s\n", bi.GoVersion)
	return nil
}
