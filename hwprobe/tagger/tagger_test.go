//go:build linux

package tagger_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"

	"github.com/bufscope/bufscope/hwprobe/rpctag"
	"github.com/bufscope/bufscope/hwprobe/tagger"
)

// The client side of the lab runs as a child process (this test binary
// again) so that it can live in the tagged cgroup and the client netns
// while the test itself stays outside both.
func TestMain(m *testing.M) {
	if os.Getenv("BST_TAGGER_SERVER") != "" {
		if err := serverMain(os.Getenv("BST_NETNS"), os.Getenv("BST_PIN"), os.Getenv("BST_ADDR"), os.Getenv("BST_PLAN")); err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("BST_TAGGER_CLIENT") != "" {
		if err := clientMain(os.Getenv("BST_NETNS"), os.Getenv("BST_PIN"), os.Getenv("BST_ADDR"), os.Getenv("BST_PLAN")); err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// message is one RPC message as the client announced and sent it.
type message struct {
	port    uint16
	offset  uint64
	size    uint32
	rpcID   uint64
	traceID uint64
	kind    rpctag.Kind
}

func rpcIDFor(conn, idx int) uint64   { return 0x5EED_0000_0000_0000 | uint64(conn)<<20 | uint64(idx) }
func traceIDFor(conn, idx int) uint64 { return 0x7A_CE00_0000_0000 + uint64(conn)*1000 + uint64(idx) }

// payload is the deterministic content of a message, so the server side
// can check the byte stream.
func payload(rpcID uint64, size uint32) []byte {
	b := make([]byte, size)
	x := uint32(rpcID) | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// clientMain plays a plan: connections separated by ';', each a comma list
// of message sizes, or "w" to print WAIT and block until a line arrives on
// stdin. It prints one MSG line per message.
func clientMain(netns, pin, addr, plan string) error {
	table, err := rpctag.Open(pin)
	if err != nil {
		return err
	}
	defer table.Close()
	// `ip netns exec` would hide the BPF file system behind a fresh /sys,
	// so the client enters the netns itself, on the thread that dials.
	runtime.LockOSThread()
	ns, err := os.Open(netns)
	if err != nil {
		return err
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", netns, err)
	}
	ns.Close()
	stdin := bufio.NewReader(os.Stdin)
	quiet := os.Getenv("BST_QUIET") != ""
	for ci, connPlan := range strings.Split(plan, ";") {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conn, err := table.Wrap(c.(*net.TCPConn))
		if err != nil {
			return err
		}
		port := c.LocalAddr().(*net.TCPAddr).Port
		toks := strings.Split(connPlan, ",")
		// "rNxS" stands for N messages of S bytes.
		if len(toks) == 1 && strings.HasPrefix(toks[0], "r") {
			var n, size int
			if _, err := fmt.Sscanf(toks[0], "r%dx%d", &n, &size); err != nil {
				return err
			}
			toks = make([]string, n)
			for i := range toks {
				toks[i] = strconv.Itoa(size)
			}
		}
		for mi, tok := range toks {
			if tok == "w" {
				fmt.Println("WAIT")
				if _, err := stdin.ReadString('\n'); err != nil {
					return err
				}
				continue
			}
			size, err := strconv.ParseUint(tok, 10, 32)
			if err != nil {
				return err
			}
			kind := rpctag.Request
			if mi%2 == 1 {
				kind = rpctag.Response
			}
			rpc, trace := rpcIDFor(ci, mi), traceIDFor(ci, mi)
			off := conn.Offset()
			if err := conn.BeginMessage(kind, rpc, trace, uint32(size)); err != nil {
				return err
			}
			data := payload(rpc, uint32(size))
			// Every third message goes out in three writes: a message
			// need not be one write.
			if mi%3 == 2 && size >= 3 {
				for _, part := range [][]byte{data[:size/3], data[size/3 : 2*size/3], data[2*size/3:]} {
					if _, err := conn.Write(part); err != nil {
						return err
					}
				}
			} else if _, err := conn.Write(data); err != nil {
				return err
			}
			if !quiet {
				fmt.Printf("MSG %d %d %d %d %d %d\n", port, off, size, rpc, trace, kind)
			}
		}
		if err := conn.Close(); err != nil {
			return err
		}
	}
	fmt.Println("DONE")
	return nil
}

// server accepts connections in the server netns and keeps what each
// client port sent.
type server struct {
	ln   net.Listener
	mu   sync.Mutex
	got  map[uint16]*bytes.Buffer
	cond *sync.Cond
	wg   sync.WaitGroup
}

func newServer(t testing.TB, l *lab, ip string) *server {
	s := &server{got: map[uint16]*bytes.Buffer{}}
	s.cond = sync.NewCond(&s.mu)
	inNetns(t, l.srvNS, func() {
		var err error
		s.ln, err = net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Errorf("listen: %v", err)
		}
	})
	if s.ln == nil {
		t.FailNow()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				port := uint16(c.RemoteAddr().(*net.TCPAddr).Port)
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					s.mu.Lock()
					if s.got[port] == nil {
						s.got[port] = &bytes.Buffer{}
					}
					s.got[port].Write(buf[:n])
					s.cond.Broadcast()
					s.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { s.ln.Close(); s.wg.Wait() })
	return s
}

// waitBytes blocks until the server holds n bytes in total.
func (s *server) waitBytes(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	timer := time.AfterFunc(timeout, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		total := 0
		for _, b := range s.got {
			total += b.Len()
		}
		if total >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server got %d of %d bytes within %v: connection stalled", total, n, timeout)
		}
		s.cond.Wait()
	}
}

// client runs the client process in cgroup cg and the client netns. The
// onWait callback is called for each WAIT line; the client continues when
// it returns.
type clientResult struct {
	msgs []message
}

func runClient(t testing.TB, l *lab, cg, pin string, addr net.Addr, plan string, onWait func(i int)) clientResult {
	t.Helper()
	cgfd, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cgfd)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BST_TAGGER_CLIENT=1", "BST_NETNS=/run/netns/"+l.cliNS, "BST_PIN="+pin, "BST_ADDR="+addr.String(), "BST_PLAN="+plan)
	cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var res clientResult
	sc := bufio.NewScanner(stdout)
	waits := 0
	done := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 7 && f[0] == "MSG":
			var v [6]uint64
			for i := range v {
				v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
			}
			res.msgs = append(res.msgs, message{port: uint16(v[0]), offset: v[1], size: uint32(v[2]), rpcID: v[3], traceID: v[4], kind: rpctag.Kind(v[5])})
		case len(f) == 1 && f[0] == "WAIT":
			onWait(waits)
			waits++
			io.WriteString(stdin, "go\n")
		case len(f) == 1 && f[0] == "DONE":
			done = true
		}
	}
	if err := cmd.Wait(); err != nil || !done {
		t.Fatalf("client failed: %v\n%s", err, stderr.String())
	}
	return res
}

// segment is a captured TCP segment from client to server.
type segment struct {
	port    uint16
	seq     uint32
	payload int
	ipLen   int
	tag     []byte // option data after kind and length, nil if untagged
	syn     bool
}

func readCapture(t testing.TB, file string, serverPort uint16) []segment {
	return readCaptureDir(t, file, serverPort, false)
}

// readCaptureDir returns the segments sent to port, or sent from it if
// fromPort is set.
func readCaptureDir(t testing.TB, file string, port uint16, fromPort bool) []segment {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var segs []segment
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		tcp, _ := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil {
			continue
		}
		// ipLen is the IP packet's length; ipHdr its header length.
		var ipLen, ipHdr int
		if ip, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			ipLen, ipHdr = int(ip.Length), int(ip.IHL)*4
		} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
			ipLen, ipHdr = 40+int(ip6.Length), 40
		} else {
			continue
		}
		p := tcp.DstPort
		if fromPort {
			p = tcp.SrcPort
		}
		if uint16(p) != port {
			continue
		}
		s := segment{port: uint16(tcp.SrcPort), seq: tcp.Seq, ipLen: ipLen, syn: tcp.SYN,
			payload: ipLen - ipHdr - int(tcp.DataOffset)*4}
		for _, o := range tcp.Options {
			if o.OptionType == 253 {
				if s.tag != nil {
					t.Errorf("segment seq %d carries two kind-253 options", tcp.Seq)
				}
				s.tag = append([]byte(nil), o.OptionData...)
			}
		}
		segs = append(segs, s)
	}
	return segs
}

// decodedTag holds the fields of a captured tag, decoded here from the
// layout in docs/wire-format.md independently of rpctag's encoder.
type decodedTag struct {
	exid           uint16
	version, kind  uint8
	flags          uint8
	rpcID, traceID uint64
	length         uint32
	reserved       uint16
}

func decodeTag(t *testing.T, b []byte) decodedTag {
	t.Helper()
	if len(b) != 26 {
		t.Fatalf("tag option has %d data bytes, want 26 (length 28)", len(b))
	}
	return decodedTag{
		exid:    binary.BigEndian.Uint16(b[0:2]),
		version: b[2] >> 4, kind: b[2] & 0x0f, flags: b[3],
		rpcID:    binary.BigEndian.Uint64(b[4:12]),
		traceID:  binary.BigEndian.Uint64(b[12:20]),
		length:   binary.BigEndian.Uint32(b[20:24]),
		reserved: binary.BigEndian.Uint16(b[24:26]),
	}
}

type fixture struct {
	lab    *lab
	cg     string
	tg     *tagger.Tagger
	srv    *server
	stop   func() string
	srvTCP *net.TCPAddr
}

func setup(t testing.TB, gsoMaxSegs int, captureOnClient bool) *fixture {
	return setupExID(t, gsoMaxSegs, captureOnClient, 0)
}

func setupExID(t testing.TB, gsoMaxSegs int, captureOnClient bool, exid uint16) *fixture {
	requireRoot(t)
	l := newLab(t, gsoMaxSegs)
	cg := newCgroup(t)
	tg, err := tagger.Load(tagger.Options{CgroupPath: cg, Name: fmt.Sprintf("bst-test-%d", os.Getpid()), ExID: exid})
	if errors.Is(err, tagger.ErrNotSupported) {
		t.Skipf("kernel cannot run the tagger: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	srv := newServer(t, l, l.srvIP)
	var stop func() string
	if captureOnClient {
		stop = capture(t, l.cliNS, l.cliDev)
	} else {
		stop = capture(t, l.srvNS, l.srvDev)
	}
	return &fixture{lab: l, cg: cg, tg: tg, srv: srv, stop: stop, srvTCP: srv.ln.Addr().(*net.TCPAddr)}
}

// checkStreams compares what the server received per connection with the
// messages the client reports having sent.
func checkStreams(t *testing.T, srv *server, msgs []message) {
	t.Helper()
	want := map[uint16]*bytes.Buffer{}
	for _, m := range msgs {
		if want[m.port] == nil {
			want[m.port] = &bytes.Buffer{}
		}
		if uint64(want[m.port].Len()) != m.offset {
			t.Fatalf("port %d: message at offset %d, but %d bytes were sent before", m.port, m.offset, want[m.port].Len())
		}
		want[m.port].Write(payload(m.rpcID, m.size))
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for port, w := range want {
		got := srv.got[port]
		if got == nil || !bytes.Equal(got.Bytes(), w.Bytes()) {
			n := 0
			if got != nil {
				n = got.Len()
			}
			t.Errorf("port %d: server received %d bytes that differ from the %d sent", port, n, w.Len())
		}
	}
}

// starts maps (client port, sequence number) to the message starting there,
// using the ISN from each connection's SYN.
func starts(t *testing.T, segs []segment, msgs []message) map[[2]uint32]message {
	t.Helper()
	isn := map[uint16]uint32{}
	for _, s := range segs {
		if s.syn {
			isn[s.port] = s.seq
		}
	}
	out := map[[2]uint32]message{}
	for _, m := range msgs {
		i, ok := isn[m.port]
		if !ok {
			t.Fatalf("no SYN captured for client port %d (%d segments, ISNs %v)", m.port, len(segs), isn)
		}
		out[[2]uint32{uint32(m.port), i + 1 + uint32(m.offset)}] = m
	}
	return out
}

func checkTag(t *testing.T, s segment, m message, wantExID uint16) decodedTag {
	t.Helper()
	got := decodeTag(t, s.tag)
	want := decodedTag{exid: wantExID, version: 1, kind: uint8(m.kind), flags: got.flags & 0x80,
		rpcID: m.rpcID, traceID: m.traceID, length: m.size}
	if got != want {
		t.Errorf("segment port %d seq %d: tag %+v, want %+v", s.port, s.seq, got, want)
	}
	return got
}

// Sizes cover one byte, less than an MSS, exactly around the MSS with the
// tag, several MSS and a message larger than a GSO super-packet.
const plan = "1,100,1420,1421,1448,5000,70000,3;200000,17,2896"

func TestTagOnMessageStartsOnly(t *testing.T) {
	f := setup(t, 1, false)
	res := runClient(t, f.lab, f.cg, f.tg.PinPath(), f.srvTCP, plan, nil)
	total := 0
	for _, m := range res.msgs {
		total += int(m.size)
	}
	f.srv.waitBytes(t, total, 20*time.Second)
	segs := readCapture(t, f.stop(), uint16(f.srvTCP.Port))
	checkStreams(t, f.srv, res.msgs)
	if len(res.msgs) != 11 {
		t.Fatalf("client reported %d messages, want 11", len(res.msgs))
	}

	st := starts(t, segs, res.msgs)
	seen := map[[2]uint32]bool{}
	tagged := 0
	for _, s := range segs {
		if s.ipLen > 1500 {
			t.Errorf("segment seq %d is %d bytes on a 1500-byte MTU", s.seq, s.ipLen)
		}
		m, isStart := st[[2]uint32{uint32(s.port), s.seq}]
		if s.payload > 0 && isStart {
			seen[[2]uint32{uint32(s.port), s.seq}] = true
			if s.tag == nil {
				t.Errorf("segment port %d seq %d starts message %x but has no tag", s.port, s.seq, m.rpcID)
				continue
			}
			tagged++
			if got := checkTag(t, s, m, tagger.DefaultExID); got.flags != 0 {
				t.Logf("message %x start sent with flags %#x (a retransmission)", m.rpcID, got.flags)
			}
		} else if s.tag != nil {
			t.Errorf("segment port %d seq %d (payload %d) is tagged but starts no message", s.port, s.seq, s.payload)
		}
	}
	if len(seen) != len(res.msgs) {
		t.Errorf("saw %d of %d message starts on the wire", len(seen), len(res.msgs))
	}
	stats, err := f.tg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Tagged != uint64(tagged) || stats.Sockets != 2 || stats.Errors != 0 || stats.NoSpace != 0 {
		t.Errorf("stats %+v: want Tagged=%d (captured), Sockets=2, no errors", stats, tagged)
	}
	if stats.MSSReserved == 0 {
		t.Errorf("stats %+v: the MSS computation never reserved the tag's space", stats)
	}
	t.Logf("%d segments, %d tagged; stats %+v", len(segs), tagged, stats)
}

// TestTsharkAgrees has Wireshark's dissector, which knows nothing of
// bufscope, read the same kind of capture: the experimental option must be
// well-formed enough for it to find the ExID and data on the same segments.
// It also runs the tagger with a non-default ExID (--tag-exid).
func TestTsharkAgrees(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skipf("tshark not installed: %v", err)
	}
	const exid = 0xB5F1
	f := setupExID(t, 1, false, exid)
	res := runClient(t, f.lab, f.cg, f.tg.PinPath(), f.srvTCP, "3000,10,1448", nil)
	f.srv.waitBytes(t, 4458, 20*time.Second)
	file := f.stop()
	segs := readCapture(t, file, uint16(f.srvTCP.Port))
	want := map[string]bool{}
	st := starts(t, segs, res.msgs)
	for _, s := range segs {
		if s.tag != nil {
			checkTag(t, s, st[[2]uint32{uint32(s.port), s.seq}], exid)
			want[fmt.Sprintf("%d\t0x%x\t%x", s.seq, binary.BigEndian.Uint16(s.tag), s.tag[2:])] = true
		}
	}
	if len(want) != len(res.msgs) {
		t.Fatalf("gopacket found %d tagged segments, want %d", len(want), len(res.msgs))
	}
	out, err := exec.Command("tshark", "-n", "-r", file, "-Y", "tcp.options.experimental", "-T", "fields",
		"-e", "tcp.seq_raw", "-e", "tcp.options.experimental.exid", "-e", "tcp.options.experimental.data").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		got[strings.ReplaceAll(line, ":", "")] = true
	}
	for k := range want {
		if !got[k] {
			t.Errorf("tshark does not show %q; it shows %q", k, out)
		}
	}
	if len(got) != len(want) {
		t.Errorf("tshark shows %d tagged segments, gopacket %d:\n%s", len(got), len(want), out)
	}
}

// TestGSOLowestSequenceIsStart runs with segmentation offload on: a
// super-packet starting a message carries the tag, and when it is split
// every piece carries a copy. The rule the analyzer relies on must hold: a
// tag only appears inside the message it names, and the lowest sequence
// carrying it is the message start.
//
// With the veth's default TSO the capture sees the super-packets whole; with
// TSO turned off (ethtool) the stack segments in software before the
// capture point, so the copies are on the wire and the test sees them.
func TestGSOLowestSequenceIsStart(t *testing.T) {
	t.Run("tso", func(t *testing.T) { testGSO(t, false) })
	t.Run("software-gso", func(t *testing.T) { testGSO(t, true) })
}

func testGSO(t *testing.T, softwareGSO bool) {
	f := setup(t, 0, false)
	if softwareGSO {
		if _, err := exec.LookPath("ethtool"); err != nil {
			t.Skipf("needs ethtool to turn TSO off: %v", err)
		}
		run(t, "ip", "netns", "exec", f.lab.cliNS, "ethtool", "-K", f.lab.cliDev, "tso", "off")
	}
	res := runClient(t, f.lab, f.cg, f.tg.PinPath(), f.srvTCP, plan, nil)
	total := 0
	for _, m := range res.msgs {
		total += int(m.size)
	}
	f.srv.waitBytes(t, total, 20*time.Second)
	segs := readCapture(t, f.stop(), uint16(f.srvTCP.Port))
	checkStreams(t, f.srv, res.msgs)

	st := starts(t, segs, res.msgs)
	byID := map[uint64][2]uint32{} // rpc id -> (port, start seq)
	for k, m := range st {
		byID[m.rpcID] = k
	}
	lowest := map[uint64]uint32{}
	copies := map[uint64]int{}
	for _, s := range segs {
		if softwareGSO && s.ipLen > 1500 {
			t.Errorf("segment seq %d is %d bytes on a 1500-byte MTU", s.seq, s.ipLen)
		}
		if s.tag == nil {
			continue
		}
		tag := decodeTag(t, s.tag)
		k, ok := byID[tag.rpcID]
		if !ok {
			t.Errorf("segment seq %d carries unknown RPC ID %x", s.seq, tag.rpcID)
			continue
		}
		m := st[k]
		checkTag(t, s, m, tagger.DefaultExID)
		if rel := s.seq - k[1]; uint32(s.port) != k[0] || rel >= m.size {
			t.Errorf("tag of message %x (start %d, %d bytes) on segment port %d seq %d, outside the message", m.rpcID, k[1], m.size, s.port, s.seq)
			continue
		}
		if s.seq != k[1] {
			copies[tag.rpcID]++
		}
		if l, ok := lowest[tag.rpcID]; !ok || s.seq-k[1] < l-k[1] {
			lowest[tag.rpcID] = s.seq
		}
	}
	for id, k := range byID {
		if l, ok := lowest[id]; !ok || l != k[1] {
			t.Errorf("message %x: lowest tagged sequence %d (found %v), want its start %d", id, l, ok, k[1])
		}
	}
	n := 0
	for _, c := range copies {
		n += c
	}
	// The 200000-byte message starts with a super-packet of several
	// segments whenever the congestion window allows, which after the
	// earlier messages it does.
	if softwareGSO && n == 0 {
		t.Error("no tag copies on the wire: software GSO did not split a tagged super-packet")
	}
	t.Logf("%d tag copies beyond message starts", n)
}

// TestRetransmissionTagged makes the message start get lost: the server's
// address is removed while the client sends, so the server's kernel drops
// the segment after the client's TCP counted it as sent, and TCP
// retransmits it until the address is back. (Taking a veth down instead
// makes the client's own transmit fail; TCP then sends the segment again
// as new data, which is not a retransmission.) Every retransmission must
// carry the same tag, with the R flag. Captured on the client's device.
func TestRetransmissionTagged(t *testing.T) {
	f := setup(t, 1, true)
	const first, second = 200, 3000
	res := runClient(t, f.lab, f.cg, f.tg.PinPath(), f.srvTCP, fmt.Sprintf("%d,w,%d,w", first, second), func(i int) {
		switch i {
		case 0:
			f.srv.waitBytes(t, first, 10*time.Second)
			run(t, "ip", "-n", f.lab.srvNS, "addr", "del", f.lab.srvIP+"/24", "dev", f.lab.srvDev)
		case 1:
			// At least one retransmission timeout (200 ms minimum) passes
			// with the link down.
			time.Sleep(700 * time.Millisecond)
			run(t, "ip", "-n", f.lab.srvNS, "addr", "add", f.lab.srvIP+"/24", "dev", f.lab.srvDev)
			f.srv.waitBytes(t, first+second, 20*time.Second)
		}
	})
	segs := readCapture(t, f.stop(), uint16(f.srvTCP.Port))
	checkStreams(t, f.srv, res.msgs)
	st := starts(t, segs, res.msgs)
	var m2 message
	var k2 [2]uint32
	for k, m := range st {
		if m.size == second {
			m2, k2 = m, k
		}
	}
	retrans := 0
	for _, s := range segs {
		if s.seq != k2[1] || s.payload == 0 {
			if s.tag != nil && st[[2]uint32{uint32(s.port), s.seq}].size == 0 {
				t.Errorf("segment seq %d tagged but starts no message", s.seq)
			}
			continue
		}
		if s.tag == nil {
			t.Errorf("segment seq %d starting message %x sent without tag", s.seq, m2.rpcID)
			continue
		}
		tag := checkTag(t, s, m2, tagger.DefaultExID)
		if tag.flags&0x80 != 0 {
			retrans++
		} else if retrans > 0 {
			t.Errorf("segment seq %d sent without R after a retransmission of it", s.seq)
		}
	}
	stats, err := f.tg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if retrans == 0 || stats.RetransmitTagged == 0 {
		t.Errorf("no retransmitted tag captured (%d on the wire, stats %+v)", retrans, stats)
	}
	t.Logf("%d retransmissions of the message start captured with R; stats %+v", retrans, stats)
}

// TestCloseLeavesNothing checks in the kernel, by ID, that Close detaches
// the program and frees program and maps, and that the pin is gone.
func TestCloseLeavesNothing(t *testing.T) {
	requireRoot(t)
	cg := newCgroup(t)
	tg, err := tagger.Load(tagger.Options{CgroupPath: cg, Name: "bst-close-test"})
	if errors.Is(err, tagger.ErrNotSupported) {
		t.Skipf("kernel cannot run the tagger: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	pin := tg.PinPath()
	pinfo, err := tg.Program().Info()
	if err != nil {
		t.Fatal(err)
	}
	progID, _ := pinfo.ID()
	minfo, err := tg.Tags().Info()
	if err != nil {
		t.Fatal(err)
	}
	mapID, _ := minfo.ID()
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("pin missing while loaded: %v", err)
	}
	if n := attachedSockops(t, cg); n != 1 {
		t.Fatalf("%d sockops programs attached to %s while loaded, want 1", n, cg)
	}
	// A second tagger with the same name must not steal the pin.
	if tg2, err := tagger.Load(tagger.Options{CgroupPath: cg, Name: "bst-close-test"}); err == nil {
		tg2.Close()
		t.Error("second Load with the same name succeeded")
	}

	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(pin); !os.IsNotExist(err) {
		t.Errorf("pin %s still there after Close (%v)", pin, err)
	}
	if n := attachedSockops(t, cg); n != 0 {
		t.Errorf("%d sockops programs still attached after Close", n)
	}
	// Programs and maps are freed after an RCU grace period.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, perr := ebpf.NewProgramFromID(progID)
		m, merr := ebpf.NewMapFromID(mapID)
		if perr != nil && merr != nil {
			break
		}
		if perr == nil {
			p.Close()
		}
		if merr == nil {
			m.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close: program %d alive=%v, tags map %d alive=%v", progID, perr == nil, mapID, merr == nil)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func attachedSockops(t *testing.T, cg string) int {
	t.Helper()
	fd, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupSockOps})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Programs)
}

func TestLoadErrors(t *testing.T) {
	if _, err := tagger.Load(tagger.Options{}); err == nil || !strings.Contains(err.Error(), "cgroup") {
		t.Errorf("Load without cgroup: %v, want an error naming the cgroup", err)
	}
	if _, err := tagger.Load(tagger.Options{CgroupPath: "/x", Name: "../evil"}); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("Load with a path as name: %v", err)
	}
	if os.Geteuid() != 0 {
		if _, err := tagger.Load(tagger.Options{CgroupPath: "/sys/fs/cgroup"}); !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "root") {
			t.Errorf("Load as non-root: %v, want an error saying root is needed", err)
		}
		return
	}
	if _, err := tagger.Load(tagger.Options{CgroupPath: os.TempDir(), Name: "bst-err"}); err == nil || !strings.Contains(err.Error(), "cgroup v2") {
		t.Errorf("Load on a non-cgroup directory: %v", err)
	}
}

// BenchmarkTaggerCost measures the kernel-side cost of the tagger with the
// kernel's BPF run-time statistics while the client sends b.N messages of
// 1000 bytes (one segment each) over the lab's veth. Reported: ns per
// program run, program runs per message, kernel ns per message.
func BenchmarkTaggerCost(b *testing.B) {
	f := setup(b, 1, false)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Skipf("cannot enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	before, err := f.tg.Program().Stats()
	if err != nil {
		b.Fatal(err)
	}
	os.Setenv("BST_QUIET", "1")
	defer os.Unsetenv("BST_QUIET")
	b.ResetTimer()
	runClient(b, f.lab, f.cg, f.tg.PinPath(), f.srvTCP, fmt.Sprintf("r%dx1000", b.N), nil)
	f.srv.waitBytes(b, b.N*1000, time.Minute)
	b.StopTimer()
	after, err := f.tg.Program().Stats()
	if err != nil {
		b.Fatal(err)
	}
	runs := after.RunCount - before.RunCount
	rt := after.Runtime - before.Runtime
	if runs == 0 {
		b.Fatal("the program never ran")
	}
	ts, _ := f.tg.Stats()
	if ts.Tagged < uint64(b.N) {
		b.Errorf("%d tags for %d messages", ts.Tagged, b.N)
	}
	b.ReportMetric(float64(rt.Nanoseconds())/float64(runs), "ns/prog-run")
	b.ReportMetric(float64(runs)/float64(b.N), "prog-runs/msg")
	b.ReportMetric(float64(rt.Nanoseconds())/float64(b.N), "bpf-ns/msg")
}

// requestLen is the size of the untagged requests the test sends to the
// tagged server of TestResponsesTagged.
const requestLen = 10

// serverMain accepts one connection on addr in netns and answers each
// request with a tagged response of the next size in plan. It prints the
// listening address, then one MSG line per response.
func serverMain(netns, pin, addr, plan string) error {
	table, err := rpctag.Open(pin)
	if err != nil {
		return err
	}
	defer table.Close()
	runtime.LockOSThread()
	ns, err := os.Open(netns)
	if err != nil {
		return err
	}
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", netns, err)
	}
	ns.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	fmt.Printf("LISTEN %d\n", port)
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	ln.Close()
	conn, err := table.Wrap(c.(*net.TCPConn))
	if err != nil {
		return err
	}
	req := make([]byte, requestLen)
	for mi, tok := range strings.Split(plan, ",") {
		size, err := strconv.ParseUint(tok, 10, 32)
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, req); err != nil {
			return err
		}
		rpc, trace := rpcIDFor(9, mi), traceIDFor(9, mi)
		off := conn.Offset()
		if err := conn.BeginMessage(rpctag.Response, rpc, trace, uint32(size)); err != nil {
			return err
		}
		if _, err := conn.Write(payload(rpc, uint32(size))); err != nil {
			return err
		}
		fmt.Printf("MSG %d %d %d %d %d %d\n", port, off, size, rpc, trace, rpctag.Response)
	}
	// Wait for the client to close, so every response is acknowledged.
	io.Copy(io.Discard, conn)
	conn.Close()
	fmt.Println("DONE")
	return nil
}

// TestResponsesTagged puts the server in the cgroup instead: its sockets
// come from accept (the passive-open callback), and its responses must be
// tagged like requests. The client is this test, untagged.
func TestResponsesTagged(t *testing.T) {
	requireRoot(t)
	l := newLab(t, 1)
	// The responses leave through the server's device.
	run(t, "ip", "-n", l.srvNS, "link", "set", l.srvDev, "gso_max_segs", "1")
	cg := newCgroup(t)
	tg, err := tagger.Load(tagger.Options{CgroupPath: cg, Name: fmt.Sprintf("bst-test-srv-%d", os.Getpid())})
	if errors.Is(err, tagger.ErrNotSupported) {
		t.Skipf("kernel cannot run the tagger: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	stop := capture(t, l.cliNS, l.cliDev)

	sizes := []uint32{1, 5000, 70000, 1420, 100}
	var plan []string
	for _, n := range sizes {
		plan = append(plan, strconv.Itoa(int(n)))
	}
	cgfd, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cgfd)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BST_TAGGER_SERVER=1", "BST_NETNS=/run/netns/"+l.srvNS, "BST_PIN="+tg.PinPath(),
		"BST_ADDR="+l.srvIP+":0", "BST_PLAN="+strings.Join(plan, ","))
	cmd.SysProcAttr = &unix.SysProcAttr{UseCgroupFD: true, CgroupFD: cgfd}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var port int
	if !sc.Scan() {
		t.Fatalf("server did not start: %s", stderr.String())
	}
	if _, err := fmt.Sscanf(sc.Text(), "LISTEN %d", &port); err != nil {
		t.Fatalf("server said %q: %v", sc.Text(), err)
	}

	var c net.Conn
	inNetns(t, l.cliNS, func() { c, err = net.Dial("tcp", net.JoinHostPort(l.srvIP, strconv.Itoa(port))) })
	if err != nil {
		t.Fatal(err)
	}
	var msgs []message
	for _, n := range sizes {
		if _, err := c.Write(make([]byte, requestLen)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got := make([]byte, n)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("reading a %d-byte response: %v", n, err)
		}
		if !sc.Scan() {
			t.Fatalf("server stopped: %s", stderr.String())
		}
		var m message
		var kind uint64
		if _, err := fmt.Sscanf(sc.Text(), "MSG %d %d %d %d %d %d", &m.port, &m.offset, &m.size, &m.rpcID, &m.traceID, &kind); err != nil {
			t.Fatalf("server said %q: %v", sc.Text(), err)
		}
		m.kind = rpctag.Kind(kind)
		if !bytes.Equal(got, payload(m.rpcID, m.size)) {
			t.Errorf("response %x: bytes differ from what the server sent", m.rpcID)
		}
		msgs = append(msgs, m)
	}
	c.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("server: %v: %s", err, stderr.String())
	}

	segs := readCaptureDir(t, stop(), uint16(port), true)
	st := starts(t, segs, msgs)
	tagged := 0
	for _, s := range segs {
		m, isStart := st[[2]uint32{uint32(s.port), s.seq}]
		switch {
		case s.payload > 0 && isStart && s.tag == nil:
			t.Errorf("response segment seq %d starts %x but has no tag", s.seq, m.rpcID)
		case s.payload > 0 && isStart:
			tagged++
			checkTag(t, s, m, tagger.DefaultExID)
		case s.tag != nil:
			t.Errorf("response segment seq %d (payload %d) tagged but starts no message", s.seq, s.payload)
		}
		if s.ipLen > 1500 {
			t.Errorf("segment seq %d is %d bytes on a 1500-byte MTU", s.seq, s.ipLen)
		}
	}
	if tagged < len(sizes) {
		t.Errorf("%d tagged response starts, want %d", tagged, len(sizes))
	}
}

// TestIPv6 runs the exact-placement check over IPv6: sockops and the
// header-option callbacks do not depend on the address family, and the
// tag must fit the same 28 bytes.
func TestIPv6(t *testing.T) {
	requireRoot(t)
	l := newLab(t, 1)
	cli6, srv6 := "fd00:b5c0:0:1::1", "fd00:b5c0:0:1::2"
	run(t, "ip", "-n", l.cliNS, "addr", "add", cli6+"/64", "dev", l.cliDev, "nodad")
	run(t, "ip", "-n", l.srvNS, "addr", "add", srv6+"/64", "dev", l.srvDev, "nodad")
	cg := newCgroup(t)
	tg, err := tagger.Load(tagger.Options{CgroupPath: cg, Name: fmt.Sprintf("bst-test-v6-%d", os.Getpid())})
	if errors.Is(err, tagger.ErrNotSupported) {
		t.Skipf("kernel cannot run the tagger: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	srv := newServer(t, l, srv6)
	stop := capture(t, l.srvNS, l.srvDev)
	addr := srv.ln.Addr().(*net.TCPAddr)
	res := runClient(t, l, cg, tg.PinPath(), addr, "1,1400,1401,5000,70000", nil)
	total := 0
	for _, m := range res.msgs {
		total += int(m.size)
	}
	srv.waitBytes(t, total, 20*time.Second)
	segs := readCapture(t, stop(), uint16(addr.Port))
	checkStreams(t, srv, res.msgs)
	st := starts(t, segs, res.msgs)
	tagged := 0
	for _, s := range segs {
		if s.ipLen > 1500 {
			t.Errorf("segment seq %d is %d bytes on a 1500-byte MTU", s.seq, s.ipLen)
		}
		m, isStart := st[[2]uint32{uint32(s.port), s.seq}]
		switch {
		case s.payload > 0 && isStart && s.tag == nil:
			t.Errorf("segment seq %d starts %x but has no tag", s.seq, m.rpcID)
		case s.payload > 0 && isStart:
			tagged++
			checkTag(t, s, m, tagger.DefaultExID)
		case s.tag != nil:
			t.Errorf("segment seq %d tagged but starts no message", s.seq)
		}
	}
	if tagged < len(res.msgs) {
		t.Errorf("%d tagged message starts, want %d", tagged, len(res.msgs))
	}
}

// BenchmarkBulk compares throughput of 64 KiB messages from a tagged
// cgroup with the same client in a cgroup without the tagger (the tagger
// is then attached to another, empty cgroup, so the client still finds
// the map). Default TSO; one veth pair; throughput is reported by -bench
// as MB/s.
func BenchmarkBulk(b *testing.B) {
	for _, tagged := range []bool{false, true} {
		name := "untagged"
		if tagged {
			name = "tagged"
		}
		b.Run(name, func(b *testing.B) {
			f := setup(b, 0, false)
			f.stop()
			cg := f.cg
			if !tagged {
				cg = newCgroup(b)
			}
			os.Setenv("BST_QUIET", "1")
			defer os.Unsetenv("BST_QUIET")
			const size = 64 << 10
			b.SetBytes(size)
			b.ResetTimer()
			runClient(b, f.lab, cg, f.tg.PinPath(), f.srvTCP, fmt.Sprintf("r%dx%d", b.N, size), nil)
			f.srv.waitBytes(b, b.N*size, time.Minute)
			b.StopTimer()
			st, _ := f.tg.Stats()
			if tagged != (st.Tagged >= uint64(b.N)) {
				b.Errorf("tagged=%v but stats %+v for %d messages", tagged, st, b.N)
			}
		})
	}
}
