package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/decode"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/bufscope -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it after review):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func decodeRun(t *testing.T, o decodeOptions) (string, error) {
	t.Helper()
	s, out, _ := testStreams()
	o.IO = s
	err := runDecode(context.Background(), &o)
	return out.String(), err
}

// decodeFixtures are the files the golden tests decode: the tcpdump
// capture made on loopback for these tests, and the interop corpus.
func decodeFixtures(t *testing.T) map[string]string {
	files := map[string]string{"lo_tcpdump.pcap": filepath.Join("testdata", "lo_tcpdump.pcap")}
	dir := filepath.Join(moduleRoot(t), "..", "shared", "captures")
	for _, sub := range []string{"tcp", "report", "int", "ifa", "negative"} {
		m, _ := filepath.Glob(filepath.Join(dir, sub, "*.pcap*"))
		for _, f := range m {
			files["shared_"+sub+"_"+filepath.Base(f)] = f
		}
	}
	return files
}

func TestDecodeGolden(t *testing.T) {
	files := decodeFixtures(t)
	if len(files) == 1 {
		t.Log("interop corpus not found at ../shared/captures: only the local fixture is decoded")
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			out, err := decodeRun(t, decodeOptions{Files: []string{files[name]}})
			if err != nil {
				t.Fatal(err)
			}
			// The file column names the input path, which differs between
			// machines; the golden holds the base name.
			out = strings.ReplaceAll(out, files[name], filepath.Base(files[name]))
			golden(t, name+".txt", []byte(out))
		})
	}
}

func TestDecodeVerboseAndJSONGolden(t *testing.T) {
	f := filepath.Join("testdata", "lo_tcpdump.pcap")
	out, err := decodeRun(t, decodeOptions{Files: []string{f}, Verbose: true, Count: 4})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "lo_tcpdump.pcap.V.txt", []byte(out))
	out, err = decodeRun(t, decodeOptions{Files: []string{f}, JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "lo_tcpdump.pcap.json", []byte(out))
}

// TestDecodeJSONEnvelope checks every --json line against the tab output
// of the same packet.
func TestDecodeJSONEnvelope(t *testing.T) {
	f := filepath.Join("testdata", "lo_tcpdump.pcap")
	tab, err := decodeRun(t, decodeOptions{Files: []string{f}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := decodeRun(t, decodeOptions{Files: []string{f}, JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	tabLines := strings.Split(strings.TrimSuffix(tab, "\n"), "\n")
	sc := bufio.NewScanner(strings.NewReader(js))
	i := 0
	for sc.Scan() {
		var p jsonPacket
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, sc.Bytes())
		}
		cols := strings.Split(tabLines[i], "\t")
		if p.Frame != int64(i+1) || cols[0] != strconv.Itoa(i+1) || cols[2] != p.Point || cols[6] != strconv.Itoa(p.Length) ||
			p.File != f || p.CapLen > p.Length || p.Records == nil || p.Summary != cols[7] || p.Schema != decode.JSONSchema {
			t.Errorf("line %d: %+v does not match %q", i+1, p, tabLines[i])
		}
		if _, err := time.Parse(time.RFC3339Nano, p.Time); err != nil {
			t.Errorf("line %d: time %q: %v", i+1, p.Time, err)
		}
		i++
	}
	if i != 13 || len(tabLines) != 13 {
		t.Errorf("%d JSON lines and %d tab lines, want 13 (the capture's packets)", i, len(tabLines))
	}
}

// makeTrace writes pkts (from the tcpdump fixture) into a bufscope trace
// with one interface named point.
func makeTrace(t *testing.T, path, point string, shift time.Duration) int {
	t.Helper()
	r, err := capture.Open(filepath.Join("testdata", "lo_tcpdump.pcap"), capture.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := capture.Create(path, capture.WriterOptions{
		Interfaces: []capture.Interface{{Name: point, LinkType: layers.LinkTypeEthernet, SnapLen: 65535}},
		// One packet per frame, so a cut file still has intact frames.
		FrameBytes: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ci := gopacket.CaptureInfo{Timestamp: p.Timestamp.Add(shift), CaptureLength: p.CaptureLength, Length: p.Length}
		if err := w.WritePacket(ci, p.Data); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

func column(out string, col int) []string {
	var vals []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		vals = append(vals, strings.Split(l, "\t")[col])
	}
	return vals
}

func TestDecodeMergesFilesByTime(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.zst"), filepath.Join(dir, "b.zst")
	n := makeTrace(t, a, "hostA/eth0", 0)
	// b is a's packets 1 µs later: merged, they must alternate a, b, a, b.
	makeTrace(t, b, "hostB/eth0", time.Microsecond)
	out, err := decodeRun(t, decodeOptions{Files: []string{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	points := column(out, 2)
	if len(points) != 2*n {
		t.Fatalf("%d packets, want %d", len(points), 2*n)
	}
	for i, p := range points {
		want := "hostA/eth0"
		if i%2 == 1 {
			want = "hostB/eth0"
		}
		if p != want {
			t.Fatalf("packet %d from %s, want %s:\n%s", i+1, p, want, out)
		}
	}
}

func TestDecodeCountAndTimeRange(t *testing.T) {
	f := filepath.Join("testdata", "lo_tcpdump.pcap")
	all, err := decodeRun(t, decodeOptions{Files: []string{f}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	out, err := decodeRun(t, decodeOptions{Files: []string{f}, Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(lines[:3], "\n") + "\n"; out != want {
		t.Errorf("-c 3 printed\n%s\nwant\n%s", out, want)
	}
	// The fixture's server answers 50 ms after the request: packets 1-5
	// are before +10ms, 6-13 after.
	out, err = decodeRun(t, decodeOptions{Files: []string{f}, From: "+10ms"})
	if err != nil {
		t.Fatal(err)
	}
	if got := column(out, 6); len(got) != 8 || column(out, 5)[0] != "TCP" {
		t.Errorf("--from +10ms printed %d packets, want 8:\n%s", len(got), out)
	}
	out, err = decodeRun(t, decodeOptions{Files: []string{f}, To: "+10ms"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out, "\n"); got != 5 {
		t.Errorf("--to +10ms printed %d packets, want 5", got)
	}
	// The same cut as an absolute time.
	r, err := capture.Open(f, capture.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	abs := p.Timestamp.Add(10 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	out2, err := decodeRun(t, decodeOptions{Files: []string{f}, From: abs})
	if err != nil {
		t.Fatal(err)
	}
	if column(out2, 6) == nil || len(column(out2, 6)) != 8 {
		t.Errorf("--from %s printed\n%s", abs, out2)
	}
	if _, err := decodeRun(t, decodeOptions{Files: []string{f}, From: "+1s", To: "+1s"}); exitCode(err) != exitUsage {
		t.Errorf("empty range: %v", err)
	}
}

// TestDecodeDamagedTrace cuts a trace in the middle of a frame: the intact
// packets are printed, then a one-line error names the file and offset.
func TestDecodeDamagedTrace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cut.zst")
	n := makeTrace(t, path, "h/lo", 0)
	full, err := decodeRun(t, decodeOptions{Files: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Drop the seek table, the index and the last frame's tail.
	if err := os.WriteFile(path, b[:len(b)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := decodeRun(t, decodeOptions{Files: []string{path}})
	if exitCode(err) != exitBadInput {
		t.Fatalf("exit %d (%v), want %d", exitCode(err), err, exitBadInput)
	}
	got := strings.Count(out, "\n")
	if got == 0 || got >= n || !strings.HasPrefix(full, out) {
		t.Errorf("printed %d of %d packets before the damage; want a non-empty prefix of the full output", got, n)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, "offset") || !strings.Contains(msg, strconv.Itoa(got)+" packets read before it") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line naming %s, an offset and %d packets read", msg, path, got)
	}
}

func TestDecodeBadFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.zst")
	if err := os.WriteFile(junk, []byte("this is not a trace at all, just text\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{junk, filepath.Join(dir, "missing.zst"), dir} {
		_, err := decodeRun(t, decodeOptions{Files: []string{f}})
		if exitCode(err) != exitBadInput || !strings.Contains(err.Error(), filepath.Base(f)) {
			t.Errorf("%s: exit %d, error %v: want %d naming the file", f, exitCode(err), err, exitBadInput)
		}
	}
}

// TestDecodeTwoDamagedFiles: both files' damage is reported, on one line.
func TestDecodeTwoDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, name := range []string{"a.zst", "b.zst"} {
		path := filepath.Join(dir, name)
		makeTrace(t, path, "h/"+name, 0)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b[:len(b)*2/3], 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	out, err := decodeRun(t, decodeOptions{Files: files})
	if exitCode(err) != exitBadInput {
		t.Fatalf("exit %d (%v)", exitCode(err), err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, files[0]) || !strings.Contains(msg, files[1]) {
		t.Errorf("error %q: want one line naming both files", msg)
	}
	if strings.Count(out, "\n") == 0 {
		t.Error("no intact packets printed")
	}
}

// TestDecodeTerminalOutput: on a terminal the columns are aligned and the
// protocol coloured; the same packet's fields appear as when piped.
func TestDecodeTerminalOutput(t *testing.T) {
	f := filepath.Join("testdata", "lo_tcpdump.pcap")
	s, out, _ := testStreams()
	s.OutTTY = true
	if err := runDecode(context.Background(), &decodeOptions{IO: s, Files: []string{f}, Count: 1}); err != nil {
		t.Fatal(err)
	}
	want := "     1   0.000000000 lo_tcpdump.pcap       127.0.0.1 → 127.0.0.1       \x1b[36mTCP     \x1b[0m    74 " +
		"TCP 127.0.0.1:59480 → 127.0.0.1:47001 [SYN] seq=1242586482 ack=0 win=65495 len=0\n"
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
}

// TestDecodeSameCaptureInOtherContainers: the tcpdump capture compressed
// by the zstd tool and rewritten as pcapng by tshark decodes to the same
// lines (the capture-point column aside, which names the pcap file or the
// pcapng interface).
func TestDecodeSameCaptureInOtherContainers(t *testing.T) {
	src := filepath.Join("testdata", "lo_tcpdump.pcap")
	want, err := decodeRun(t, decodeOptions{Files: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conversions := map[string][]string{
		"lo.pcap.zst": {"zstd", "-q", "-19", src, "-o"},
		"lo.pcapng":   {"tshark", "-r", src, "-F", "pcapng", "-w"},
	}
	for name, argv := range conversions {
		t.Run(name, func(t *testing.T) {
			if _, err := exec.LookPath(argv[0]); err != nil {
				t.Skipf("%s not installed", argv[0])
			}
			out := filepath.Join(dir, name)
			if b, err := exec.Command(argv[0], append(argv[1:], out)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v: %s", argv[0], err, b)
			}
			got, err := decodeRun(t, decodeOptions{Files: []string{out}})
			if err != nil {
				t.Fatal(err)
			}
			for _, col := range []int{0, 1, 3, 4, 5, 6, 7} {
				if g, w := column(got, col), column(want, col); strings.Join(g, "\n") != strings.Join(w, "\n") {
					t.Errorf("column %d differs:\n%v\nwant\n%v", col+1, g, w)
				}
			}
		})
	}
}
