package main

import (
	"errors"
	"os"
)

// Exit codes. They are part of the command-line contract (docs/cli.md and
// `bufscope --help` list them), so scripts may branch on them.
const (
	exitOK        = 0
	exitFailure   = 1 // anything not listed below
	exitUsage     = 2 // unknown command, bad flag or flag value, wrong number of arguments
	exitBadInput  = 3 // an input file is missing, unreadable, truncated or not a trace
	exitPrivilege = 4 // missing root/capability or a kernel feature the command needs
)

const exitCodesHelp = `Exit status:
  0  success
  1  general failure (for example a write error or a full disk)
  2  usage error: unknown command or flag, bad flag value
  3  bad input file: missing, unreadable, truncated or not a trace
     (the packets before the damage are still printed)
  4  missing privilege (root / CAP_NET_RAW) or kernel feature`

// usageError marks an error as the caller's mistake on the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// inputError marks an error as caused by the contents of an input file.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

// privilegeError marks an error as caused by missing privileges or a kernel
// feature the command depends on.
type privilegeError struct{ err error }

func (e privilegeError) Error() string { return e.err.Error() }
func (e privilegeError) Unwrap() error { return e.err }

// exitCode is the one place where errors become exit codes.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var (
		u usageError
		i inputError
		p privilegeError
	)
	switch {
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &i):
		return exitBadInput
	case errors.As(err, &p), errors.Is(err, os.ErrPermission):
		return exitPrivilege
	}
	return exitFailure
}
