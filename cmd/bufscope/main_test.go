package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

// testStreams returns piped (non-terminal) streams over buffers.
func testStreams() (ioStreams, *bytes.Buffer, *bytes.Buffer) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	return ioStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut}, out, errOut
}

// execute runs the root command with args as main would (minus os.Exit)
// and returns stdout, stderr and the exit code.
func execute(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	s, out, errOut := testStreams()
	root := newRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("bufscope: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), exitCode(err)
}

// moduleRoot finds the directory holding go.mod above the test's package.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// sharedCaptures is the interop corpus beside the repository, or a skip.
func sharedCaptures(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(moduleRoot(t), "..", "shared", "captures")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("interop corpus not found at ../shared/captures (relative to the module root): %v", err)
	}
	return dir
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("x"), exitFailure},
		{usageError{errors.New("x")}, exitUsage},
		{inputError{errors.New("x")}, exitBadInput},
		{privilegeError{errors.New("x")}, exitPrivilege},
		{os.ErrPermission, exitPrivilege},
		{errors.Join(errors.New("a"), inputError{errors.New("b")}), exitBadInput},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"decdoe", "x"},
		{"decode"},
		{"decode", "--no-such-flag", "x"},
		{"decode", "-c", "-1", "x"},
		{"decode", "--from", "yesterday", "x"},
		{"decode", "--to", "+-1s", "x"},
		{"decode", "-V", "--json", "x"},
		{"record", "-o", "x.zst"},
		{"record", "-i", "lo"},
		{"record", "-i", "lo", "-o", "x.zst", "--snap-len", "20"},
		{"record", "-i", "lo", "-o", "x.zst", "--rotate-size", "lots"},
		{"record", "-i", "lo", "-o", "x.zst", "--rotate-size", "10kB"},
		{"version", "extra"},
		{"completion", "powershell"},
		{"man"},
	} {
		_, stderr, code := execute(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr)
		}
		if lines := strings.Count(strings.TrimSpace(stderr), "\n"); !strings.HasPrefix(stderr, "bufscope: ") || lines != 0 {
			t.Errorf("%q: want one 'bufscope: ' line on stderr, got %q", args, stderr)
		}
	}
	_, stderr, _ := execute(t, "decdoe", "x")
	if !strings.Contains(stderr, `did you mean decode`) {
		t.Errorf("no suggestion for a misspelled command: %q", stderr)
	}
}

func TestHelpListsExitCodesAndExamples(t *testing.T) {
	out, _, code := execute(t, "--help")
	if code != 0 || !strings.Contains(out, exitCodesHelp) {
		t.Errorf("--help (exit %d) lacks the exit codes:\n%s", code, out)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			if sub.Example == "" {
				t.Errorf("command %q has no examples in --help", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(newRootCmd(ioStreams{}))
}

func TestVersion(t *testing.T) {
	s, out, _ := testStreams()
	opts := &versionOptions{IO: s, buildInfo: func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			GoVersion: "go1.26.8",
			Main:      debug.Module{Path: "github.com/bufscope/bufscope", Version: "v0.3.1"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
				{Key: "vcs.time", Value: "2026-11-25T19:00:00Z"},
				{Key: "vcs.modified", Value: "true"},
			},
		}, true
	}}
	if err := runVersion(opts); err != nil {
		t.Fatal(err)
	}
	want := "bufscope v0.3.1\ncommit 0123456789abcdef0123456789abcdef01234567 (modified) 2026-11-25T19:00:00Z\ngo1.26.8\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out, want)
	}
	out.Reset()
	opts.buildInfo = func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true
	}
	if err := runVersion(opts); err != nil {
		t.Fatal(err)
	}
	if want := "bufscope (devel)\ncommit unknown (not built with 'go build' from a checkout)\ngo1.26.8\n"; out.String() != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_bufscope",
		"zsh":  "#compdef bufscope",
		"fish": "complete -c bufscope",
	} {
		out, _, code := execute(t, "completion", shell)
		if code != 0 || !strings.Contains(out, marker) {
			t.Errorf("completion %s: exit %d, output lacks %q", shell, code, marker)
		}
	}
}

func TestManPages(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := execute(t, "man", "--dir", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, name := range []string{"bufscope.1", "bufscope-decode.1", "bufscope-record.1", "bufscope-version.1", "bufscope-completion.1"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("missing %s: %v", name, err)
			continue
		}
		if !bytes.Contains(b, []byte(".SH EXAMPLE")) {
			t.Errorf("%s has no EXAMPLE section", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bufscope-man.1")); err == nil {
		t.Error("the hidden man command got a page")
	}
}

// TestCommittedManPagesAreCurrent fails when a command's help changed
// without regenerating docs/man (see docs/cli.md).
func TestCommittedManPagesAreCurrent(t *testing.T) {
	committed := filepath.Join(moduleRoot(t), "docs", "man")
	entries, err := os.ReadDir(committed)
	if err != nil {
		t.Fatalf("docs/man: %v", err)
	}
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "0")
	if _, stderr, code := execute(t, "man", "--dir", dir); code != 0 {
		t.Fatal(stderr)
	}
	fresh, _ := os.ReadDir(dir)
	if len(fresh) != len(entries) {
		t.Errorf("docs/man has %d pages, the commands make %d", len(entries), len(fresh))
	}
	for _, e := range fresh {
		want, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		got, err := os.ReadFile(filepath.Join(committed, e.Name()))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("docs/man/%s is stale: run SOURCE_DATE_EPOCH=0 go run ./cmd/bufscope man --dir docs/man", e.Name())
		}
	}
}
