package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	netlab "github.com/bufscope/bufscope/hwprobe/lab"
)

func TestLabList(t *testing.T) {
	for _, tty := range []bool{false, true} {
		var out bytes.Buffer
		if err := runLabList(&out, tty); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
		if len(lines) != len(netlab.Catalog)+1 || !strings.HasPrefix(lines[0], "FAULT") {
			t.Fatalf("tty %v: %d lines, want a header and %d entries:\n%s", tty, len(lines), len(netlab.Catalog), out.String())
		}
		for i, f := range netlab.Catalog {
			fields := strings.Fields(lines[i+1])
			if !tty {
				// Piped: exactly four tab-separated fields.
				fields = strings.Split(lines[i+1], "\t")
				if len(fields) != 4 || fields[3] != f.Summary {
					t.Errorf("piped line %d = %q: want 4 tab-separated fields ending in the summary", i+1, lines[i+1])
				}
			}
			if len(fields) < 4 || fields[0] != f.Name {
				t.Errorf("tty %v: line %d = %q, want entry %s", tty, i+1, lines[i+1], f.Name)
			}
		}
	}
}

func TestLabRunFlags(t *testing.T) {
	var got *labOptions
	var fault string
	cmd := newLabRunCmd(ioStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, func(_ context.Context, o *labOptions, f string) error {
		got, fault = o, f
		return nil
	})
	cmd.SetArgs([]string{"lossy-link", "--clients", "3", "--loss", "1.5", "--fault-for", "2s", "--link-rate", "20mbit",
		"--mode", "open", "--rate", "50", "-o", "x.trace.zst", "--no-mirror"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	p := got.Params
	if fault != "lossy-link" || got.Output != "x.trace.zst" || !got.NoMirror || p.Clients != 3 || p.LossPercent != 1.5 ||
		p.FaultFor != 2*time.Second || p.LinkRate != "20mbit" || p.Mode != "open" || p.Rate != 50 || p.Servers != 0 {
		t.Fatalf("options %+v, fault %q", got, fault)
	}
	if !strings.HasPrefix(got.Command, "bufscope ") {
		t.Errorf("command %q", got.Command)
	}
}

func TestLabRunUsageErrors(t *testing.T) {
	s := ioStreams{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	cases := []struct {
		name  string
		fault string
		opts  labOptions
		want  string
	}{
		{"unknown fault", "meteor", labOptions{Output: "x"}, "not in the catalog"},
		{"no output", "incast", labOptions{}, "-o TRACE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.IO = s
			err := runLabRun(context.Background(), &c.opts, c.fault)
			if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v (exit %d), want a usage error mentioning %q", err, exitCode(err), c.want)
			}
		})
	}
	err := runLabBench(context.Background(), &labOptions{IO: s, Runs: 0})
	if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--runs") {
		t.Fatalf("bench --runs 0: %v", err)
	}
}

func TestLabErrorCodes(t *testing.T) {
	if labError(nil) != nil {
		t.Fatal("labError(nil) is not nil")
	}
	cases := []struct {
		err  error
		code int
	}{
		{fmt.Errorf("lab: %w", os.ErrPermission), exitPrivilege},
		{errors.New("--clients 30: use 1 to 20"), exitUsage},
		{errors.New("-o x: file exists"), exitUsage},
		{errors.New("agent s1: exit status 1"), exitFailure},
	}
	for _, c := range cases {
		if got := exitCode(labError(c.err)); got != c.code {
			t.Errorf("%v: exit %d, want %d", c.err, got, c.code)
		}
	}
}
