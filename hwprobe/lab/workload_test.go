//go:build linux

package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A request header as it goes on the wire:
//
//	42 53 4c 31  01 02 00 00  00 00 01 00  00 00 40 00   "BSL1" request fanout, 256 B, reply 16 KiB
//	0a 0b 0c 0d  0e 0f 10 11  a1 a2 a3 a4  a5 a6 a7 a8   RPC ID, trace ID
var requestHeader = []byte{
	0x42, 0x53, 0x4c, 0x31, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x40, 0x00,
	0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
}

func TestHeaderVector(t *testing.T) {
	h, err := parseHeader(requestHeader)
	if err != nil {
		t.Fatal(err)
	}
	want := header{kind: 1, method: 2, length: 256, reply: 16384, rpcID: 0x0a0b0c0d0e0f1011, trace: 0xa1a2a3a4a5a6a7a8}
	if h != want {
		t.Fatalf("parsed %+v, want %+v", h, want)
	}
	b := make([]byte, headerLen)
	h.put(b)
	if !bytes.Equal(b, requestHeader) {
		t.Fatalf("serialized\n% x\nwant\n% x", b, requestHeader)
	}
}

func TestHeaderRejects(t *testing.T) {
	cases := map[string]func(b []byte){
		"bad magic":        func(b []byte) { b[0] = 'X' },
		"length below hdr": func(b []byte) { copy(b[8:12], []byte{0, 0, 0, 31}) },
		"length too big":   func(b []byte) { copy(b[8:12], []byte{0x10, 0, 0, 0}) },
		"reply too big":    func(b []byte) { copy(b[12:16], []byte{0x10, 0, 0, 0}) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(requestHeader)
			mutate(b)
			if _, err := parseHeader(b); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	// Truncated messages end in an error from readMessage, never a panic.
	for n := 0; n < headerLen+10; n++ {
		msg := append(bytes.Clone(requestHeader), make([]byte, 256)...)
		_, err := readMessage(bytes.NewReader(msg[:n]), make([]byte, readScratch), nil)
		if err == nil {
			t.Fatalf("message cut at %d bytes read without error", n)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(requestHeader)
	f.Add(make([]byte, headerLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < headerLen {
			return
		}
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		if h.length < headerLen || h.length > maxMsg || h.reply > maxMsg {
			t.Fatalf("accepted out-of-range header %+v", h)
		}
		out := make([]byte, headerLen)
		h.put(out)
		if h2, err := parseHeader(out); err != nil || h2 != h {
			t.Fatalf("round trip: %+v %v, want %+v", h2, err, h)
		}
	})
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runLoopback runs an untagged server and a client over loopback and
// returns the client's requests.
func runLoopback(t *testing.T, scfg ServerConfig, ccfg ClientConfig) []RequestLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scfg.Listen = freeAddr(t)
	ready := make(chan struct{})
	serr := make(chan error, 1)
	go func() { serr <- runServer(ctx, scfg, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-serr:
		t.Fatal(err)
	}
	ccfg.Servers = []string{"s1=" + scfg.Listen}
	ccfg.Output = filepath.Join(t.TempDir(), "c1.jsonl")
	ccfg.Start = time.Now()
	if err := runClient(ctx, ccfg, func() {}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-serr; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ccfg.Output)
	if err != nil {
		t.Fatal(err)
	}
	var out []RequestLog
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		var rl RequestLog
		if err := json.Unmarshal(s.Bytes(), &rl); err != nil {
			t.Fatalf("requests line %q: %v", s.Text(), err)
		}
		out = append(out, rl)
	}
	return out
}

func TestWorkloadClosedLoop(t *testing.T) {
	reqs := runLoopback(t, ServerConfig{}, ClientConfig{Name: "c1", Mode: "closed", Concurrency: 2,
		ReqBytes: 1000, RespBytes: 70000, Duration: 300 * time.Millisecond, Seed: 7})
	if len(reqs) < 10 {
		t.Fatalf("%d requests in 300 ms over loopback, want at least 10", len(reqs))
	}
	ids := map[string]bool{}
	for _, r := range reqs {
		if r.Err != "" || r.Client != "c1" || r.Server != "s1" || r.Method != "get" || r.ReqBytes != 1000 || r.RespBytes != 70000 {
			t.Fatalf("request %+v", r)
		}
		if !r.End.After(r.Start) {
			t.Fatalf("request ends %s before it starts %s", r.End, r.Start)
		}
		if ids[r.RPCID] || !strings.HasPrefix(r.RPCID, "0x") || len(r.RPCID) != 18 {
			t.Fatalf("RPC ID %q duplicate or malformed", r.RPCID)
		}
		ids[r.RPCID] = true
	}
}

func TestWorkloadSlowAppAndFanout(t *testing.T) {
	now := time.Now()
	delay := 15 * time.Millisecond
	reqs := runLoopback(t, ServerConfig{AppDelay: delay, AppWindow: Window{Start: now, End: now.Add(time.Hour)}},
		ClientConfig{Name: "c1", Mode: "fanout", Rate: 50, Concurrency: 1, ReqBytes: 64, RespBytes: 64, Duration: 400 * time.Millisecond, Seed: 3})
	if len(reqs) < 3 {
		t.Fatalf("%d fan-out requests in 400 ms at 50/s", len(reqs))
	}
	for _, r := range reqs {
		if r.Method != "fanout" || r.Err != "" {
			t.Fatalf("request %+v", r)
		}
		if r.Latency() < delay {
			t.Fatalf("latency %s below the server's %s processing delay", r.Latency(), delay)
		}
	}
}

func TestWorkloadOpenLoopRate(t *testing.T) {
	reqs := runLoopback(t, ServerConfig{}, ClientConfig{Name: "c1", Mode: "open", Rate: 400, Concurrency: 4,
		ReqBytes: 100, RespBytes: 100, Duration: time.Second, Seed: 11})
	// Poisson arrivals at 400/s for 1 s: 400 ± a few standard deviations (20).
	if n := len(reqs); n < 300 || n > 500 {
		t.Fatalf("%d arrivals in 1 s at 400/s", n)
	}
}

func TestWorkloadBadMode(t *testing.T) {
	err := runClient(context.Background(), ClientConfig{Mode: "burst", Output: filepath.Join(t.TempDir(), "x")}, func() {})
	if err == nil || !strings.Contains(err.Error(), "--mode") {
		t.Fatalf("error %v, want one naming --mode", err)
	}
}

// The workload's message path allocates nothing per message, so the
// workload itself does not add garbage-collector noise to the latencies
// the lab measures.
func TestMessagePathAllocs(t *testing.T) {
	var wire bytes.Buffer
	hb := make([]byte, readScratch)
	h := header{kind: 1, length: 40000, reply: 100, rpcID: 1, trace: 2}
	rd := bytes.NewReader(nil)
	allocs := testing.AllocsPerRun(100, func() {
		wire.Reset()
		if err := writeMessage(&wire, nil, h, hb); err != nil {
			t.Fatal(err)
		}
		rd.Reset(wire.Bytes())
		if got, err := readMessage(rd, hb, nil); err != nil || got != h {
			t.Fatalf("read %+v %v", got, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per message, want 0", allocs)
	}
}
