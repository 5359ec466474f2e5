package capture

import (
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
)

func TestRotatedName(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"trace.zst", 1, "trace-0001.zst"},
		{"dir/trace.pcapng.zst", 12, "dir/trace-0012.pcapng.zst"},
		{"/a.b/trace", 3, "/a.b/trace-0003"},
		{".hidden.zst", 1, ".hidden-0001.zst"},
		{"t.zst", 10000, "t-10000.zst"},
	} {
		if got := RotatedName(c.in, c.n); got != c.want {
			t.Errorf("RotatedName(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// readFiles concatenates the packets of files in order.
func readFiles(t *testing.T, files []string) []Packet {
	t.Helper()
	var all []Packet
	for _, f := range files {
		r, err := Open(f, ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pkts, err := readAll(t, r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		all = append(all, pkts...)
	}
	return all
}

func TestRotateBySize(t *testing.T) {
	dir := t.TempDir()
	pkts := genPackets(8000, 2, 11)
	// Small frames, so several close before the size limit.
	r, err := NewRotator(RotateOptions{
		Path: filepath.Join(dir, "trace.zst"), MaxBytes: 16 << 10,
		Writer: WriterOptions{Interfaces: testIfaces, FrameBytes: 8 << 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := r.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	files := r.Files()
	if len(files) < 3 {
		t.Fatalf("%d files, want several at 16 KiB each", len(files))
	}
	for i, f := range files {
		if want := filepath.Join(dir, RotatedName("trace.zst", i+1)); f != want {
			t.Errorf("file %d is %s, want %s", i, f, want)
		}
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		// A file ends at the first frame boundary past the limit, plus
		// the index and seek table.
		if i < len(files)-1 && (fi.Size() < 16<<10 || fi.Size() > 16<<10+8<<10+4<<10) {
			t.Errorf("%s: %d bytes, want 16 KiB up to one frame more", f, fi.Size())
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	comparePackets(t, readFiles(t, files), pkts)
	if st := r.Stats(); st.Packets != int64(len(pkts)) {
		t.Errorf("stats count %d packets, wrote %d", st.Packets, len(pkts))
	}
}

func TestRotateByTime(t *testing.T) {
	dir := t.TempDir()
	now := testEpoch
	r, err := NewRotator(RotateOptions{
		Path: filepath.Join(dir, "t.zst"), Every: time.Minute,
		Writer: WriterOptions{Interfaces: testIfaces},
		now:    func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	pkts := genPackets(300, 2, 5)
	for i, p := range pkts {
		now = testEpoch.Add(time.Duration(i) * time.Second) // 100 per file
		if err := r.WritePacket(p.ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(r.Files()); got != 5 {
		// 0-59, 60-119, 120-179, 180-239, 240-299
		t.Fatalf("%d files, want 5 at one per minute over 300 s", got)
	}
	comparePackets(t, readFiles(t, r.Files()), pkts)
}

func TestRotatorWithoutLimitsUsesPathAndRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "one.zst")
	r, err := NewRotator(RotateOptions{Path: path, Writer: WriterOptions{Interfaces: testIfaces}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if f := r.Files(); len(f) != 1 || f[0] != path {
		t.Errorf("files %v, want [%s]", f, path)
	}
	if _, err := NewRotator(RotateOptions{Path: path}); err == nil {
		t.Error("existing file replaced without Overwrite")
	}
	if _, err := NewRotator(RotateOptions{Path: path, MaxBytes: -1}); err == nil {
		t.Error("negative limit accepted")
	}
}

// TestRotatorDiskFull fills a small tmpfs: the error names the file and
// the number of packets that survive, and those packets read back intact.
func TestRotatorDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "bst-full", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	path := filepath.Join(dir, "full.zst")
	r, err := NewRotator(RotateOptions{Path: path, Writer: WriterOptions{Interfaces: testIfaces, FrameBytes: 32 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes do not compress, so the disk fills after ~256 KiB.
	data := make([]byte, 200)
	var written []testPacket
	var werr error
	for i := 0; i < 100000 && werr == nil; i++ {
		_, _ = rand.Read(data)
		ci := gopacket.CaptureInfo{Timestamp: testEpoch.Add(time.Duration(i) * time.Microsecond), CaptureLength: len(data), Length: len(data)}
		werr = r.WritePacket(ci, data)
		if werr == nil {
			written = append(written, testPacket{ci: ci, data: append([]byte(nil), data...)})
		}
	}
	if werr == nil {
		werr = r.Close()
	} else {
		_ = r.Close()
	}
	var full *ErrDiskFull
	if !errors.As(werr, &full) {
		t.Fatalf("got %v, want ErrDiskFull", werr)
	}
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Error("ErrDiskFull does not unwrap to ENOSPC")
	}
	if full.File != path || !strings.Contains(werr.Error(), path) || !strings.Contains(werr.Error(), "disk full") {
		t.Errorf("message %q does not name %s and the disk", werr, path)
	}
	if full.Safe <= 0 || full.Safe > int64(len(written)) {
		t.Fatalf("%d packets safe of %d written", full.Safe, len(written))
	}
	rd, err := Open(path, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got, _ := readAll(t, rd) // the file ends in a truncated frame: an error is expected
	if int64(len(got)) != full.Safe {
		t.Fatalf("read back %d packets, error said %d are safe", len(got), full.Safe)
	}
	comparePackets(t, got, written[:len(got)])
}
