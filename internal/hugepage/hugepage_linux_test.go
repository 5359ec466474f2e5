package hugepage

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestAdviseFlagsTheHeap checks with the kernel that the mapping Advise
// advised carries the huge-page flag ("hg" in /proc/self/smaps VmFlags).
func TestAdviseFlagsTheHeap(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || bytes.Contains(mode, []byte("[never]")) {
		t.Skipf("transparent huge pages unavailable here (%q, %v): nothing to ask for", bytes.TrimSpace(mode), err)
	}
	lo, hi, err := adviseRange(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if hi-lo < 64<<20 {
		t.Fatalf("advised %#x-%#x, %d bytes; the block alone was 64 MiB", lo, hi, hi-lo)
	}
	flags := vmFlags(t, lo)
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("mapping at %#x has VmFlags %q, without hg (MADV_HUGEPAGE)", lo, flags)
	}
}

// vmFlags returns the VmFlags line of the smaps entry that starts at lo.
func vmFlags(t *testing.T, lo uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	in := false
	for s.Scan() {
		line := s.Bytes()
		if a, _, ok := parseRange(line); ok {
			in = a == lo
			continue
		}
		if in && bytes.HasPrefix(line, []byte("VmFlags:")) {
			return strings.TrimSpace(string(line[len("VmFlags:"):]))
		}
	}
	t.Fatalf("no smaps entry starts at %#x", lo)
	return ""
}

func TestParseRange(t *testing.T) {
	for _, c := range []struct {
		line   string
		lo, hi uintptr
		ok     bool
	}{
		{"00400000-004ac000 r-xp 00000000 fe:00 10076373   /bin/x", 0x400000, 0x4ac000, true},
		{"217364c00000-217371800000 rw-p 00000000 00:00 0", 0x217364c00000, 0x217371800000, true},
		{"Rss:                3640 kB", 0, 0, false},
		{"VmFlags: rd wr mr mw me ac hg", 0, 0, false},
		{"5000-4000 rw-p 0 0:0 0", 0, 0, false},
		{"-", 0, 0, false},
	} {
		lo, hi, ok := parseRange([]byte(c.line))
		if lo != c.lo || hi != c.hi || ok != c.ok {
			t.Errorf("parseRange(%q) = %#x, %#x, %v; want %#x, %#x, %v", c.line, lo, hi, ok, c.lo, c.hi, c.ok)
		}
	}
}
