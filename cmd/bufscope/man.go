package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

type manOptions struct {
	IO  ioStreams
	Dir string
}

// newManCmd is hidden: it exists to regenerate docs/man/ (see docs/cli.md),
// not for users.
func newManCmd(s ioStreams) *cobra.Command {
	opts := &manOptions{IO: s}
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write man pages for every command into DIR",
		Hidden: true,
		Args:   usageArgs(cobra.NoArgs),
		Example: `  # regenerate the committed pages
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) go run ./cmd/bufscope man --dir docs/man`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMan(cmd.Root(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "directory to write the pages into (created if missing)")
	return cmd
}

func runMan(root *cobra.Command, opts *manOptions) error {
	if opts.Dir == "" {
		return usageError{errors.New("man: give --dir DIR")}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return fmt.Errorf("man: --dir %s: %w", opts.Dir, err)
	}
	// The generated footer would carry a date that changes on every run;
	// cobra reads SOURCE_DATE_EPOCH for the header date instead.
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "BUFSCOPE", Section: "1", Source: "bufscope", Manual: "bufscope manual"}
	if err := doc.GenManTree(root, header, opts.Dir); err != nil {
		return fmt.Errorf("man: writing pages into %s: %w", opts.Dir, err)
	}
	fmt.Fprintf(opts.IO.Out, "wrote man pages into %s\n", opts.Dir)
	return nil
}
