package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/hwprobe/monitor/montest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// bufscopeBinary builds the command once per test run, for tests that need
// a real process to signal.
func bufscopeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bst-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "bufscope")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	// A child of TestDeployRecordDecode: the tagged RPC client.
	montest.RunTaggedClientIfChild()
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func TestRecordRefusesWithoutPrivilege(t *testing.T) {
	if os.Geteuid() != 0 {
		// Already unprivileged: run the command in process.
		_, stderr, code := execute(t, "record", "-i", "lo", "-o", filepath.Join(t.TempDir(), "x.zst"))
		if code != exitPrivilege || !strings.Contains(stderr, "CAP_NET_RAW") {
			t.Errorf("exit %d, stderr %q: want %d naming CAP_NET_RAW", code, stderr, exitPrivilege)
		}
		return
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to drop root for the check")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := bufscopeBinary(t)
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		bin, "record", "-i", "lo", "-o", filepath.Join(dir, "x.zst"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitPrivilege {
		t.Fatalf("%v, stderr %q: want exit %d", err, stderr.String(), exitPrivilege)
	}
	if want := "CAP_NET_RAW"; !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("stderr %q: want one line naming %s", stderr.String(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.zst")); err == nil {
		t.Error("an output file was created although recording was refused")
	}
}

// lab is a namespace with one end of a veth pair; the test sends from the
// other end, which the recorder captures.
type lab struct {
	ns, host string
	src, dst net.IP
}

func newLab(t *testing.T, n byte) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair and captures with AF_PACKET")
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("needs tcpdump to compile the capture filter (apt-get install tcpdump)")
	}
	id := fmt.Sprintf("%d%d", os.Getpid()%100000, n)
	l := &lab{ns: "bst-cli" + id, host: "bstc" + id + "h", src: net.IPv4(10, 214, n, 1), dst: net.IPv4(10, 214, n, 2)}
	inner := "bstc" + id + "n"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", l.ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.ns).Run() })
	ip("link", "add", l.host, "type", "veth", "peer", "name", inner)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", l.host).Run() })
	ip("link", "set", inner, "netns", l.ns)
	ip("addr", "add", l.src.String()+"/24", "dev", l.host)
	ip("link", "set", l.host, "up")
	ip("-n", l.ns, "addr", "add", l.dst.String()+"/24", "dev", inner)
	ip("-n", l.ns, "link", "set", inner, "up")
	// A permanent neighbour entry: no ARP round trip delays the first packets.
	ip("neigh", "replace", l.dst.String(), "lladdr", "02:00:00:00:00:02", "dev", l.host, "nud", "permanent")
	return l
}

// startRecorder runs the built binary and waits until its file exists,
// which happens after the ring is bound.
func startRecorder(t *testing.T, l *lab, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bufscopeBinary(t), "record", "-i", l.host, "-f", "udp dst port 9999", "-o", path, "--hostname", "lab")
	cmd.Stderr = &bytes.Buffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("recorder did not create %s: %s", path, cmd.Stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sender sends numbered datagrams and remembers when each left.
type sender struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
	sent []time.Time
}

func newSender(t *testing.T, l *lab) *sender {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: l.src})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &sender{conn: c, dst: &net.UDPAddr{IP: l.dst, Port: 9999}}
}

func (s *sender) send(t *testing.T, n int) {
	buf := make([]byte, 64)
	for range n {
		binary.BigEndian.PutUint32(buf, uint32(len(s.sent)))
		if _, err := s.conn.WriteTo(buf, s.dst); err != nil {
			t.Fatal(err)
		}
		s.sent = append(s.sent, time.Now())
	}
}

// recordedSeqs reads the numbers of the datagrams in a trace and the error
// that ended reading (nil for a clean end), and names the container format.
func recordedSeqs(t *testing.T, path string) (map[uint32]bool, string, error) {
	t.Helper()
	r, err := capture.Open(path, capture.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	seqs := map[uint32]bool{}
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return seqs, r.Format(), nil
		}
		if err != nil {
			return seqs, r.Format(), err
		}
		const payload = 14 + 20 + 8
		if len(p.Data) < payload+4 {
			t.Fatalf("packet of %d bytes has no sequence number", len(p.Data))
		}
		seqs[binary.BigEndian.Uint32(p.Data[payload:])] = true
	}
}

func TestRecordSIGINTLosesNothing(t *testing.T) {
	l := newLab(t, 1)
	path := filepath.Join(t.TempDir(), "int.zst")
	cmd := startRecorder(t, l, path)
	s := newSender(t, l)
	for range 10 {
		s.send(t, 100)
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("recorder after SIGINT: %v: %s", err, cmd.Stderr)
	}
	seqs, format, err := recordedSeqs(t, path)
	if err != nil {
		t.Fatalf("trace written up to SIGINT does not read cleanly: %v", err)
	}
	if format != "bufscope seekable zstd pcapng" {
		t.Errorf("format %q: a cleanly stopped recorder writes the index and seek table", format)
	}
	if len(seqs) != len(s.sent) {
		t.Fatalf("%d of %d datagrams in the trace", len(seqs), len(s.sent))
	}
	if !strings.Contains(cmd.Stderr.(*bytes.Buffer).String(), fmt.Sprintf("recorded %d packets", len(s.sent))) {
		t.Errorf("summary on stderr does not count %d packets: %s", len(s.sent), cmd.Stderr)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("trace mode: %v %v, want 0600", fi.Mode(), err)
	}
	// Wireshark's reader must see the same packets, cut to the snap
	// length, on the named capture point.
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Log("tshark not installed: interop check skipped")
		return
	}
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-e", "udp.dstport", "-e", "frame.cap_len", "-e", "frame.interface_name").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := "9999\t106\tlab/" + l.host // 14+20+8+64 bytes: below the snap length
	if len(lines) != len(s.sent) || lines[0] != want || lines[len(lines)-1] != want {
		t.Errorf("tshark read %d packets (first %q), want %d like %q", len(lines), lines[0], len(s.sent), want)
	}
}

func TestRecordSIGKILLLosesAtMostOneSecond(t *testing.T) {
	l := newLab(t, 2)
	path := filepath.Join(t.TempDir(), "kill.zst")
	cmd := startRecorder(t, l, path)
	s := newSender(t, l)
	for range 25 {
		s.send(t, 40)
		time.Sleep(100 * time.Millisecond)
	}
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	seqs, format, err := recordedSeqs(t, path)
	var lost []int
	for i, at := range s.sent {
		if killed.Sub(at) > time.Second && !seqs[uint32(i)] {
			lost = append(lost, i)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d datagrams sent more than 1 s before SIGKILL are missing (first %d)", len(lost), lost[0])
	}
	if len(seqs) == 0 || len(seqs) > len(s.sent) {
		t.Errorf("%d datagrams in the trace, %d sent", len(seqs), len(s.sent))
	}
	// A killed recorder never wrote the index and seek table. Killed in
	// the middle of a frame write, the reader reports the cut frame; killed
	// between frames, it reports the missing seek table. Either way the
	// reader must not present the trace as complete.
	var de *capture.DamageError
	if !errors.As(err, &de) || strings.Contains(format, "seekable") {
		t.Errorf("killed recorder's trace (%s) ends with %v, want a damage error", format, err)
	}
	t.Logf("read %d of %d datagrams (%s); end: %v", len(seqs), len(s.sent), format, err)
}

// recordInProcess runs the record command's run function with in-memory
// streams, as the tests of other commands do.
// Read the returned stderr buffer only after done delivered the result.
func recordInProcess(t *testing.T, o recordOptions) (*bytes.Buffer, chan error) {
	t.Helper()
	s, _, errOut := testStreams()
	o.IO = s
	if o.FrameInterval == 0 {
		o.FrameInterval = 500 * time.Millisecond
	}
	done := make(chan error, 1)
	go func() { done <- runRecord(t.Context(), &o) }()
	return errOut, done
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not created", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRecordRunCountAndRotation(t *testing.T) {
	l := newLab(t, 3)
	dir := t.TempDir()
	out := filepath.Join(dir, "rot.pcapng.zst")
	stderr, done := recordInProcess(t, recordOptions{
		Interfaces: []string{l.host}, Output: out, Filter: "udp dst port 9999", SnapLen: 192, ReportPort: 32766,
		RotateEvery: 150 * time.Millisecond, Count: 300, Hostname: "lab",
	})
	waitFile(t, capture.RotatedName(out, 1))
	s := newSender(t, l)
	for range 10 {
		s.send(t, 40) // 400 in all: the recorder stops at 300
		time.Sleep(60 * time.Millisecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("record --count 300 did not stop after 400 packets")
	}
	if sum := stderr.String(); !strings.HasPrefix(sum, "recorded 300 packets") || strings.Count(sum, "\n") != 1 {
		t.Errorf("summary %q: want one line starting 'recorded 300 packets'", sum)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "rot-*.pcapng.zst"))
	if len(files) < 2 {
		t.Fatalf("files %v: want several with --rotate-every 150ms over 600 ms", files)
	}
	total := 0
	for i, f := range files {
		if want := capture.RotatedName(out, i+1); f != want {
			t.Errorf("file %d is %s, want %s", i, f, want)
		}
		seqs, format, err := recordedSeqs(t, f)
		if err != nil || format != "bufscope seekable zstd pcapng" {
			t.Errorf("%s: %s, %v: want a complete trace", f, format, err)
		}
		total += len(seqs)
	}
	if total != 300 {
		t.Errorf("%d packets in %d files, want exactly 300", total, len(files))
	}
}

func TestRecordRunDurationWithoutTraffic(t *testing.T) {
	l := newLab(t, 4)
	out := filepath.Join(t.TempDir(), "quiet.zst")
	start := time.Now()
	_, done := recordInProcess(t, recordOptions{Interfaces: []string{l.host}, Output: out, Filter: "udp dst port 9999", SnapLen: 192, Duration: 300 * time.Millisecond})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("--duration 300ms took %s", d)
	}
	seqs, format, err := recordedSeqs(t, out)
	if err != nil || len(seqs) != 0 || format != "bufscope seekable zstd pcapng" {
		t.Errorf("%d packets, %s, %v: want an empty complete trace", len(seqs), format, err)
	}
	// The same name again without --overwrite is refused as a usage error.
	_, done = recordInProcess(t, recordOptions{Interfaces: []string{l.host}, Output: out, SnapLen: 192, Duration: time.Millisecond})
	if err := <-done; exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("existing output: %v, want a usage error suggesting --overwrite", err)
	}
}

func TestRecordRunBadInterfaceAndFilter(t *testing.T) {
	l := newLab(t, 5)
	out := filepath.Join(t.TempDir(), "x.zst")
	for _, o := range []recordOptions{
		{Interfaces: []string{"bst-nope0"}, Output: out, SnapLen: 192},
		{Interfaces: []string{l.host}, Output: out, SnapLen: 192, Filter: "udp port"},
	} {
		_, done := recordInProcess(t, o)
		err := <-done
		if exitCode(err) != exitUsage || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v: want a one-line usage error", o.Interfaces, err)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused recording created its output file")
	}
}

// TestRecordRunDiskFull records whole, incompressible packets onto a small
// tmpfs: the command fails with the file and the safe packet count.
func TestRecordRunDiskFull(t *testing.T) {
	l := newLab(t, 6)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "bst-full", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	out := filepath.Join(dir, "full.zst")
	_, done := recordInProcess(t, recordOptions{
		Interfaces: []string{l.host}, Output: out, Filter: "udp dst port 9999", FrameInterval: 50 * time.Millisecond,
	})
	waitFile(t, out)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: l.src})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1400)
	var recErr error
	for i := 0; i < 2000 && recErr == nil; i++ {
		_, _ = rand.Read(buf)
		if _, err := c.WriteTo(buf, &net.UDPAddr{IP: l.dst, Port: 9999}); err != nil {
			t.Fatal(err)
		}
		if i%20 == 19 {
			select {
			case recErr = <-done:
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	if recErr == nil {
		select {
		case recErr = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("recording onto a full disk did not stop")
		}
	}
	msg := recErr.Error()
	if exitCode(recErr) != exitFailure || !strings.Contains(msg, out) || !strings.Contains(msg, "disk full") ||
		!strings.Contains(msg, "packets before the failed write are safe") {
		t.Errorf("exit %d: %q: want a disk-full error naming %s and the safe packets", exitCode(recErr), msg, out)
	}
}
