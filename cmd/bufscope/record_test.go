package main

import (
	"bytes"
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
	// between frames, the file is a valid zstd stream of complete frames,
	// and the missing seek table is what tells it apart.
	if err == nil && strings.Contains(format, "seekable") {
		t.Errorf("killed recorder's trace reads as complete (%s) without an error", format)
	}
	t.Logf("read %d of %d datagrams (%s); end: %v", len(seqs), len(s.sent), format, err)
}
