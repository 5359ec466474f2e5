package capture

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s): skipping the interop check", name, map[string]string{"tshark": "tshark", "zstd": "zstd"}[name])
	}
	return p
}

// tsharkFields runs tshark over path and returns one "epoch<TAB>len<TAB>caplen<TAB>ifname" line per packet.
func tsharkFields(t *testing.T, tshark, path string) []string {
	t.Helper()
	cmd := exec.Command(tshark, "-n", "-r", path, "-T", "fields", "-E", "separator=/t",
		"-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.interface_name")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", filepath.Base(path), err, stderr.String())
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

func wantFields(pkts []testPacket, ifaces []Interface) []string {
	lines := make([]string, len(pkts))
	for i, p := range pkts {
		ts := p.ci.Timestamp
		lines[i] = fmt.Sprintf("%d.%09d\t%d\t%d\t%s", ts.Unix(), ts.Nanosecond(),
			max(p.ci.Length, len(p.data)), len(p.data), ifaces[p.ci.InterfaceIndex].Name)
	}
	return lines
}

func compareLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d packets, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: packet %d is %q, want %q", what, i+1, got[i], want[i])
		}
	}
}

// TestInteropZstdTshark checks that the standard tools read a multi-frame
// trace: `zstd -d` gives a pcapng in which tshark sees every packet with its
// nanosecond timestamp, lengths and capture-point name.
func TestInteropZstdTshark(t *testing.T) {
	zstdBin, tshark := needTool(t, "zstd"), needTool(t, "tshark")
	dir := t.TempDir()
	path := filepath.Join(dir, "trace.pcapng.zst")
	pkts := genPackets(4000, 2, 3)
	st := writeTrace(t, path, WriterOptions{Interfaces: testIfaces, FrameBytes: 64 << 10}, pkts)
	if st.Frames < 5 {
		t.Fatalf("only %d frames: the test needs several", st.Frames)
	}
	out := filepath.Join(dir, "trace.pcapng")
	if b, err := exec.Command(zstdBin, "-q", "-d", path, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("zstd -d: %v\n%s", err, b)
	}
	compareLines(t, "zstd -d + tshark", tsharkFields(t, tshark, out), wantFields(pkts, testIfaces))

	// Our reader must agree on the decompressed file too (plain pcapng with
	// one section per frame).
	r, err := Open(out, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Format() != "pcapng" {
		t.Errorf("Format = %q, want pcapng", r.Format())
	}
	got, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	comparePackets(t, got, pkts)
}

// TestInteropTsharkDirect has tshark read the .pcapng.zst itself. Wireshark
// (4.0 at least) re-detects the compression after each zstd frame by looking
// at the start of its 128 KiB input buffer instead of the current position,
// so it misreads multi-frame files once a frame ends past the first buffer
// (docs/trace-format.md). Traces that fit one buffer, like this one, read
// correctly; larger ones need `zstd -d` first.
func TestInteropTsharkDirect(t *testing.T) {
	tshark := needTool(t, "tshark")
	path := filepath.Join(t.TempDir(), "small.pcapng.zst")
	pkts := genPackets(1500, 2, 4)
	st := writeTrace(t, path, WriterOptions{Interfaces: testIfaces, FrameBytes: 32 << 10}, pkts)
	if st.Frames < 3 || st.CompressedBytes > 120<<10 {
		t.Fatalf("%d frames in %d bytes: want several frames within one 128 KiB buffer", st.Frames, st.CompressedBytes)
	}
	compareLines(t, "tshark -r .pcapng.zst", tsharkFields(t, tshark, path), wantFields(pkts, testIfaces))
}
