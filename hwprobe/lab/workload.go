//go:build linux

package lab

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/bufscope/bufscope/hwprobe/rpctag"
	"github.com/cilium/ebpf"
)

// The workload's wire protocol: every message is a 32-byte header and a
// body. The header says how long the whole message is, so the receiver
// frames it, and (on requests) how long the response must be, so the
// client controls both sizes.
//
//	0  magic "BSL1"    4  kind (1 request, 2 response)   5 method   6 flags
//	8  message length (header included)    12  response length wanted
//	16 RPC ID (64)     24  trace ID (64)
const magic = 0x42534c31 // "BSL1"

// Methods name what a request is for; the fault catalog uses them to tell
// the workload's requests apart in the requests file.
var methods = []string{"get", "put", "fanout"}

type header struct {
	kind, method  uint8
	length, reply uint32
	rpcID, trace  uint64
}

func (h header) put(b []byte) {
	binary.BigEndian.PutUint32(b[0:], magic)
	b[4], b[5], b[6], b[7] = h.kind, h.method, 0, 0
	binary.BigEndian.PutUint32(b[8:], h.length)
	binary.BigEndian.PutUint32(b[12:], h.reply)
	binary.BigEndian.PutUint64(b[16:], h.rpcID)
	binary.BigEndian.PutUint64(b[24:], h.trace)
}

func parseHeader(b []byte) (header, error) {
	if binary.BigEndian.Uint32(b) != magic {
		return header{}, fmt.Errorf("bad magic %#x at offset 0 of a message", binary.BigEndian.Uint32(b))
	}
	h := header{kind: b[4], method: b[5], length: binary.BigEndian.Uint32(b[8:]), reply: binary.BigEndian.Uint32(b[12:]),
		rpcID: binary.BigEndian.Uint64(b[16:]), trace: binary.BigEndian.Uint64(b[24:])}
	if h.length < headerLen || h.length > maxMsg || h.reply > maxMsg {
		return header{}, fmt.Errorf("message length %d / reply %d out of range %d-%d", h.length, h.reply, headerLen, maxMsg)
	}
	return h, nil
}

// readScratch is the size of a connection's scratch buffer: a header and
// a chunk of body.
const readScratch = headerLen + 16<<10

// zeros is the body of every message: read-only, shared by all writers.
var zeros = make([]byte, 1<<20)

// writeMessage announces the message to the tagger (when tags is non-nil)
// and writes header and body.
func writeMessage(w io.Writer, tc *rpctag.Conn, h header, hb []byte) error {
	if tc != nil {
		kind := rpctag.Request
		if h.kind == 2 {
			kind = rpctag.Response
		}
		// A refused announcement leaves the message untagged; the
		// workload goes on, as a real framework would.
		_ = tc.BeginMessage(kind, h.rpcID, h.trace, h.length)
	}
	h.put(hb)
	if _, err := w.Write(hb[:headerLen]); err != nil {
		return err
	}
	for left := int(h.length) - headerLen; left > 0; {
		n := min(left, len(zeros))
		if _, err := w.Write(zeros[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// readMessage reads one message and discards its body; hb is scratch space
// of at least readScratch bytes, owned by the caller's connection, so
// reading allocates nothing.
func readMessage(r io.Reader, hb []byte, pause func()) (header, error) {
	if _, err := io.ReadFull(r, hb[:headerLen]); err != nil {
		return header{}, err
	}
	h, err := parseHeader(hb)
	if err != nil {
		return h, err
	}
	if pause != nil && h.length > headerLen {
		pause()
	}
	buf := hb[headerLen:]
	for left := int(h.length) - headerLen; left > 0; {
		n, err := r.Read(buf[:min(left, len(buf))])
		left -= n
		if err != nil {
			return h, err
		}
	}
	return h, nil
}

// Window is a time interval, absolute, in which a fault acts.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func (w Window) active(t time.Time) bool {
	return !w.Start.IsZero() && !t.Before(w.Start) && t.Before(w.End)
}

// ServerConfig configures a server agent.
type ServerConfig struct {
	Listen  string `json:"listen"`
	TagsPin string `json:"tags_pin,omitempty"` // pinned tags map, "fd" for descriptor 3, "" untagged
	RcvBuf  int    `json:"rcvbuf,omitempty"`   // SO_RCVBUF of accepted sockets; 0 = kernel default
	// AppDelay is added between reading a request and answering it while
	// AppWindow is active: slow processing, not the network.
	AppDelay  time.Duration `json:"app_delay,omitempty"`
	AppWindow Window        `json:"app_window"`
	// ReadPause is slept before reading each request body while
	// ReadWindow is active: the server stops reading, so its receive
	// queue fills and it advertises a zero window.
	ReadPause  time.Duration `json:"read_pause,omitempty"`
	ReadWindow Window        `json:"read_window"`
}

// runServer answers requests until ctx is done.
func runServer(ctx context.Context, cfg ServerConfig, ready func()) error {
	tags, err := openTags(cfg.TagsPin)
	if err != nil {
		return err
	}
	if tags != nil {
		defer tags.Close()
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp4", cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if cfg.RcvBuf > 0 {
		// Accepted sockets inherit the listener's buffer size, and it
		// must be set before the handshake to fix the window scale.
		raw, _ := ln.(*net.TCPListener).SyscallConn()
		_ = raw.Control(func(fd uintptr) { _ = setsockoptInt(fd, soRcvbuf, cfg.RcvBuf) })
	}
	go func() { <-ctx.Done(); ln.Close() }()
	ready()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("server: accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(ctx, c.(*net.TCPConn), tags, cfg)
		}()
	}
}

func serveConn(ctx context.Context, c *net.TCPConn, tags *rpctag.Table, cfg ServerConfig) {
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	var w io.Writer = c
	var tc *rpctag.Conn
	if tags != nil {
		var err error
		if tc, err = tags.Wrap(c); err == nil {
			w = tc
		}
	}
	r := bufio.NewReaderSize(c, 4096)
	hb := make([]byte, readScratch)
	pause := func() {
		if cfg.ReadPause > 0 && cfg.ReadWindow.active(time.Now()) {
			time.Sleep(cfg.ReadPause)
		}
	}
	for {
		h, err := readMessage(r, hb, pause)
		if err != nil {
			return
		}
		if cfg.AppDelay > 0 && cfg.AppWindow.active(time.Now()) {
			time.Sleep(cfg.AppDelay)
		}
		resp := header{kind: 2, method: h.method, length: max(h.reply, headerLen), rpcID: h.rpcID, trace: h.trace}
		if err := writeMessage(w, tc, resp, hb); err != nil {
			return
		}
	}
}

// tagsFD is the descriptor on which the lab hands its agents the tagger's
// map (exec.Cmd.ExtraFiles[0]). A pin would not do: `ip netns exec`
// remounts /sys in the child, hiding the BPF file system below it.
const tagsFD = 3

func openTags(pin string) (*rpctag.Table, error) {
	switch pin {
	case "":
		return nil, nil
	case "fd":
		m, err := ebpf.NewMapFromFD(tagsFD)
		if err != nil {
			return nil, fmt.Errorf("workload: tags map on descriptor %d: %w", tagsFD, err)
		}
		t, err := rpctag.NewTable(m)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("workload: %w", err)
		}
		return t, nil
	}
	t, err := rpctag.Open(pin)
	if err != nil {
		return nil, fmt.Errorf("workload: %w", err)
	}
	return t, nil
}

// ClientConfig configures a client agent.
type ClientConfig struct {
	Name    string   `json:"name"`
	Servers []string `json:"servers"` // name=addr:port
	TagsPin string   `json:"tags_pin,omitempty"`
	// Mode: "closed" (Concurrency requests outstanding per server, back
	// to back), "open" (Poisson arrivals at Rate per second, spread over
	// the servers round-robin) or "fanout" (Poisson arrivals at Rate; each
	// calls every server at once under one trace ID).
	Mode        string        `json:"mode"`
	Rate        float64       `json:"rate"`
	Concurrency int           `json:"concurrency"` // connections per server
	ReqBytes    int           `json:"req_bytes"`
	RespBytes   int           `json:"resp_bytes"`
	Start       time.Time     `json:"start"` // first arrival; all clients share it
	Duration    time.Duration `json:"duration"`
	SndBuf      int           `json:"sndbuf,omitempty"` // SO_SNDBUF; 0 = kernel default
	Seed        uint64        `json:"seed"`
	Output      string        `json:"output"` // requests JSONL file
}

// RequestLog is the workload's own view of one RPC: one line of
// <trace>.requests.jsonl.
type RequestLog struct {
	TraceID   string    `json:"trace_id"`
	RPCID     string    `json:"rpc_id"`
	Client    string    `json:"client"`
	Server    string    `json:"server"`
	Conn      string    `json:"conn,omitempty"` // the client's end of the connection, addr:port
	Method    string    `json:"method"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	ReqBytes  int       `json:"req_bytes"`
	RespBytes int       `json:"resp_bytes"`
	Err       string    `json:"err"`
}

// Latency is End - Start.
func (r RequestLog) Latency() time.Duration { return r.End.Sub(r.Start) }

type clientConn struct {
	c     *net.TCPConn
	w     io.Writer
	tc    *rpctag.Conn
	r     *bufio.Reader
	hb    []byte
	name  string
	local string // LocalAddr, for the requests file
}

type client struct {
	cfg   ClientConfig
	pools map[string]chan *clientConn
	names []string
	rng   *rand.Rand
	mu    sync.Mutex
	enc   *json.Encoder
	count int
}

// runClient drives the workload and writes every request to cfg.Output.
func runClient(ctx context.Context, cfg ClientConfig, ready func()) error {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.ReqBytes < headerLen {
		cfg.ReqBytes = headerLen
	}
	if cfg.RespBytes < headerLen {
		cfg.RespBytes = headerLen
	}
	tags, err := openTags(cfg.TagsPin)
	if err != nil {
		return err
	}
	if tags != nil {
		defer tags.Close()
	}
	out, err := os.Create(cfg.Output)
	if err != nil {
		return fmt.Errorf("client: requests file: %w", err)
	}
	defer out.Close()
	bw := bufio.NewWriter(out)
	defer bw.Flush()
	cl := &client{cfg: cfg, pools: map[string]chan *clientConn{}, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), enc: json.NewEncoder(bw)}
	var all []*clientConn
	defer func() {
		for _, c := range all {
			c.c.Close()
		}
	}()
	for _, s := range cfg.Servers {
		name, addr, ok := cut(s)
		if !ok {
			return fmt.Errorf("client: server %q: want name=addr:port", s)
		}
		pool := make(chan *clientConn, cfg.Concurrency)
		for range cfg.Concurrency {
			c, err := dialTagged(ctx, addr, tags, cfg.SndBuf)
			if err != nil {
				return fmt.Errorf("client %s: %w", cfg.Name, err)
			}
			c.name = name
			all = append(all, c)
			pool <- c
		}
		cl.pools[name] = pool
		cl.names = append(cl.names, name)
	}
	ready()
	if d := time.Until(cfg.Start); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil
		}
	}
	end := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	switch cfg.Mode {
	case "closed":
		for _, name := range cl.names {
			for range cfg.Concurrency {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(end) && ctx.Err() == nil {
						cl.call(ctx, name, cl.newID(), 0, time.Now())
					}
				}()
			}
		}
	case "open", "fanout":
		if cfg.Rate <= 0 {
			return fmt.Errorf("client: --rate %g: must be positive in %s mode", cfg.Rate, cfg.Mode)
		}
		next := time.Now()
		for i := 0; ctx.Err() == nil; i++ {
			next = next.Add(cl.interarrival())
			if !next.Before(end) {
				break
			}
			time.Sleep(time.Until(next))
			at := next
			trace := cl.newID()
			if cfg.Mode == "fanout" {
				for _, name := range cl.names {
					wg.Add(1)
					go func() { defer wg.Done(); cl.call(ctx, name, trace, 2, at) }()
				}
			} else {
				name := cl.names[i%len(cl.names)]
				wg.Add(1)
				go func() { defer wg.Done(); cl.call(ctx, name, trace, 0, at) }()
			}
		}
	default:
		return fmt.Errorf("client: --mode %q: want closed, open or fanout", cfg.Mode)
	}
	wg.Wait()
	return nil
}

func cut(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// interarrival draws the gap to the next Poisson arrival.
func (cl *client) interarrival() time.Duration {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return time.Duration(cl.rng.ExpFloat64() / cl.cfg.Rate * float64(time.Second))
}

func (cl *client) newID() uint64 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for {
		if v := cl.rng.Uint64(); v != 0 {
			return v
		}
	}
}

// call performs one RPC on a free connection to server name. start is the
// arrival time: waiting for a free connection counts into the latency, as
// it does for an open-loop user.
func (cl *client) call(ctx context.Context, name string, trace uint64, method uint8, start time.Time) {
	rec := RequestLog{Client: cl.cfg.Name, Server: name, Method: methods[method], Start: start.UTC(),
		ReqBytes: cl.cfg.ReqBytes, RespBytes: cl.cfg.RespBytes}
	rpc := cl.newID()
	rec.TraceID, rec.RPCID = fmt.Sprintf("%#016x", trace), fmt.Sprintf("%#016x", rpc)
	var c *clientConn
	select {
	case c = <-cl.pools[name]:
	case <-ctx.Done():
		return
	}
	rec.Conn = c.local
	h := header{kind: 1, method: method, length: uint32(cl.cfg.ReqBytes), reply: uint32(cl.cfg.RespBytes), rpcID: rpc, trace: trace}
	err := writeMessage(c.w, c.tc, h, c.hb)
	if err == nil {
		var resp header
		resp, err = readMessage(c.r, c.hb, nil)
		if err == nil && resp.rpcID != rpc {
			err = fmt.Errorf("response for RPC %#x, want %#x", resp.rpcID, rpc)
		}
	}
	rec.End = time.Now().UTC()
	cl.pools[name] <- c
	if err != nil {
		if ctx.Err() != nil {
			return // stopped from outside: not a request the workload completed
		}
		rec.Err = err.Error()
	}
	cl.mu.Lock()
	_ = cl.enc.Encode(rec)
	cl.count++
	cl.mu.Unlock()
}

func dialTagged(ctx context.Context, addr string, tags *rpctag.Table, sndbuf int) (*clientConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if sndbuf > 0 {
		d.Control = func(_, _ string, raw syscallRawConn) error {
			return raw.Control(func(fd uintptr) { _ = setsockoptInt(fd, soSndbuf, sndbuf) })
		}
	}
	nc, err := d.DialContext(ctx, "tcp4", addr)
	if err != nil {
		return nil, err
	}
	c := &clientConn{c: nc.(*net.TCPConn), w: nc, r: bufio.NewReaderSize(nc, 4096), hb: make([]byte, readScratch), local: nc.LocalAddr().String()}
	if tags != nil {
		tc, err := tags.Wrap(c.c)
		if err != nil {
			nc.Close()
			return nil, err
		}
		c.tc, c.w = tc, tc
	}
	return c, nil
}

// BulkConfig configures an elephant flow: Sender writes as fast as TCP
// lets it to Sink during Window. Its bytes are not RPC messages and carry
// no tag.
type BulkConfig struct {
	Listen string `json:"listen,omitempty"` // sink
	Dest   string `json:"dest,omitempty"`   // sender
	Window Window `json:"window"`
}

func runBulk(ctx context.Context, cfg BulkConfig, ready func()) error {
	if cfg.Listen != "" {
		// A large receive buffer, set before the handshake so the window
		// scale allows it, lets the sender's window grow until the
		// bottleneck queue, not the receiver, limits it: a real elephant.
		lc := net.ListenConfig{Control: func(_, _ string, raw syscallRawConn) error {
			return raw.Control(func(fd uintptr) { _ = setsockoptInt(fd, soRcvbuf, 4<<20) })
		}}
		ln, err := lc.Listen(ctx, "tcp4", cfg.Listen)
		if err != nil {
			return fmt.Errorf("bulk sink: %w", err)
		}
		go func() { <-ctx.Done(); ln.Close() }()
		ready()
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil
			}
			go func() {
				defer c.Close()
				go func() { <-ctx.Done(); c.Close() }()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}
	ready()
	select {
	case <-time.After(time.Until(cfg.Window.Start)):
	case <-ctx.Done():
		return nil
	}
	c, err := net.DialTimeout("tcp4", cfg.Dest, 5*time.Second)
	if err != nil {
		return fmt.Errorf("bulk sender: %w", err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(cfg.Window.End)
	for ctx.Err() == nil && time.Now().Before(cfg.Window.End) {
		if _, err := c.Write(zeros[:64<<10]); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return fmt.Errorf("bulk sender: %w", err)
		}
	}
	return nil
}
