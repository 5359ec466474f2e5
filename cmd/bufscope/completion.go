package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

type completionOptions struct {
	IO    ioStreams
	Shell string
}

func newCompletionCmd(s ioStreams) *cobra.Command {
	opts := &completionOptions{IO: s}
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a completion script for bash, zsh or fish on standard output.
Load it in the current shell or install it where your shell looks for completions.`,
		Example: `  # bash, current shell
  source <(bufscope completion bash)

  # zsh, installed
  bufscope completion zsh > "${fpath[1]}/_bufscope"

  # fish
  bufscope completion fish > ~/.config/fish/completions/bufscope.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      usageArgs(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Shell = args[0]
			return runCompletion(cmd.Root(), opts)
		},
	}
}

func runCompletion(root *cobra.Command, opts *completionOptions) error {
	switch opts.Shell {
	case "bash":
		return root.GenBashCompletionV2(opts.IO.Out, true)
	case "zsh":
		return root.GenZshCompletion(opts.IO.Out)
	case "fish":
		return root.GenFishCompletion(opts.IO.Out, true)
	}
	return usageError{fmt.Errorf("completion: unsupported shell %q: use bash, zsh or fish", opts.Shell)}
}
