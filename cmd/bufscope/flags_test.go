package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"100MB": 100e6, "1GiB": 1 << 30, "1.5GiB": 3 << 29, "4096": 4096, "512KiB": 512 << 10,
		"10 MB": 10e6, "2G": 2e9, "7B": 7, "0": 0, "1kB": 1000,
	} {
		var b byteSize
		if err := b.Set(in); err != nil {
			t.Errorf("Set(%q): %v", in, err)
			continue
		}
		if int64(b) != want {
			t.Errorf("Set(%q) = %d, want %d", in, int64(b), want)
		}
	}
	for _, in := range []string{"", "MB", "-1MB", "ten", "1XB", "1e30GB", "NaN"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) accepted as %d", in, int64(b))
		}
	}
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"100MB", "1.5GiB", "4096", "-1", "1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b byteSize
		if err := b.Set(s); err == nil && b < 0 {
			t.Fatalf("%q parsed to negative %d", s, int64(b))
		}
	})
}

func TestParseTimeBound(t *testing.T) {
	first := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"+2.5s":                          first.Add(2500 * time.Millisecond),
		"+1m30s":                         first.Add(90 * time.Second),
		"+0s":                            first,
		"2026-11-25T19:00:01.5Z":         first.Add(1500 * time.Millisecond),
		"2026-11-25T20:00:01+01:00":      first.Add(time.Second),
		"":                               {},
		"2026-11-25T19:00:00.000000001Z": first.Add(1),
	} {
		b, err := parseTimeBound("from", in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := b.resolve(first); !got.Equal(want) {
			t.Errorf("%q resolved to %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"+", "+-1s", "+2", "2.5s", "yesterday", "2026-11-25 19:00:00"} {
		_, err := parseTimeBound("to", in)
		if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--to "+in) {
			t.Errorf("%q: %v: want a usage error naming --to", in, err)
		}
	}
}

func FuzzParseTimeBound(f *testing.F) {
	for _, s := range []string{"+2.5s", "2026-11-25T19:00:01.5Z", "+", "+9999999999h"} {
		f.Add(s)
	}
	first := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseTimeBound("from", s)
		if err != nil {
			return
		}
		if b.isRel && b.resolve(first).Before(first) {
			t.Fatalf("%q: relative bound before the first packet", s)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for the status goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStatusLineRedrawsAndClears(t *testing.T) {
	var buf syncBuffer
	n := 0
	stop := startStatusLine(&buf, time.Millisecond, func() string { n++; return "status" })
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(buf.String(), "status") < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	out := buf.String()
	if strings.Count(out, "\r\x1b[Kstatus") < 3 {
		t.Fatalf("status line not redrawn in place: %q", out)
	}
	if !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("status line not cleared at the end: %q", out)
	}
	if strings.Contains(out, "\n") {
		t.Errorf("status line wrote a newline: %q", out)
	}
}
