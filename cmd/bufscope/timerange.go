package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bufscope/bufscope/capture"
)

// The --from/--to flags of commands that read traces (decode, analyze)
// share one syntax; this file parses and resolves them.

// timeBound is a parsed --from/--to value.
type timeBound struct {
	abs        time.Time
	rel        time.Duration
	isRel, set bool
}

func parseTimeBound(flag, s string) (timeBound, error) {
	if s == "" {
		return timeBound{}, nil
	}
	if strings.HasPrefix(s, "+") {
		d, err := time.ParseDuration(s[1:])
		if err != nil || d < 0 {
			return timeBound{}, usageError{fmt.Errorf("--%s %s: not a duration after the first packet (e.g. +2.5s, +1m30s)", flag, s)}
		}
		return timeBound{rel: d, isRel: true, set: true}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return timeBound{}, usageError{fmt.Errorf("--%s %s: not an RFC 3339 time (e.g. 2026-01-02T15:04:05.5Z) or +DURATION", flag, s)}
	}
	return timeBound{abs: t, set: true}, nil
}

func (b timeBound) resolve(first time.Time) time.Time {
	switch {
	case !b.set:
		return time.Time{}
	case b.isRel:
		return first.Add(b.rel)
	}
	return b.abs
}

// resolveTimeRange parses --from and --to and resolves relative values
// against the first packet of files (read only when a value is relative).
// Zero times mean "open on that side".
func resolveTimeRange(fromFlag, toFlag string, files []string) (from, to time.Time, err error) {
	f, err := parseTimeBound("from", fromFlag)
	if err != nil {
		return from, to, err
	}
	t, err := parseTimeBound("to", toFlag)
	if err != nil {
		return from, to, err
	}
	var first time.Time
	if f.isRel || t.isRel {
		if first, err = firstTimestamp(files); err != nil {
			return from, to, err
		}
	}
	from, to = f.resolve(first), t.resolve(first)
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return from, to, usageError{fmt.Errorf("--to %s is not after --from %s", toFlag, fromFlag)}
	}
	return from, to, nil
}

// checkPorts validates a repeatable port flag.
func checkPorts(flag string, ports []uint) error {
	for _, p := range ports {
		if p == 0 || p > 65535 {
			return usageError{fmt.Errorf("--%s %d: not a port number", flag, p)}
		}
	}
	return nil
}

// firstTimestamp is the earliest first-packet time of the files, the origin
// of relative --from/--to values.
func firstTimestamp(files []string) (time.Time, error) {
	var first time.Time
	for _, f := range files {
		r, err := capture.Open(f, capture.ReaderOptions{})
		if err != nil {
			return time.Time{}, inputError{err}
		}
		p, err := r.Next()
		r.Close()
		if errors.Is(err, io.EOF) {
			continue
		}
		if err != nil {
			return time.Time{}, inputError{err}
		}
		if first.IsZero() || p.Timestamp.Before(first) {
			first = p.Timestamp
		}
	}
	if first.IsZero() {
		return time.Time{}, inputError{fmt.Errorf("%s: no packets, so a relative --from/--to has no origin", strings.Join(files, ", "))}
	}
	return first, nil
}
