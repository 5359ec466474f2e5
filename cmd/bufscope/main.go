// Command bufscope records tagged TCP traffic and buffer telemetry into
// trace files and decodes them. Every subcommand lives in its own file with
// an options struct, a constructor that binds flags into it and a run
// function that takes its IO from that struct, so tests drive commands
// without a process or a terminal.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(mainRun())
}

// mainRun is main without os.Exit, so deferred cleanups (signal handlers,
// open files inside commands) run before the process ends.
func mainRun() int {
	// SIGTERM is included because that is what service managers and
	// container runtimes send; a recording must flush on it just as on ^C.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	streams := systemStreams()
	root := newRootCmd(streams)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(streams.ErrOut, "bufscope: %v\n", err)
	}
	return exitCode(err)
}
