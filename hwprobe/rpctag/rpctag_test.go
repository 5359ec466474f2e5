//go:build linux

package rpctag

import (
	"bytes"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// A request tag as docs/wire-format.md lays it out, bytes 4..27 (after
// kind 253, length 28, ExID 0xBF5C):
//
//	11                         Ver 1, MKind 1 (request)
//	00                         Flags
//	01 23 45 67 89 ab cd ef    RPC ID
//	fe dc ba 98 76 54 32 10    Trace ID
//	00 01 11 70                Message length 70000
//	00 00                      Reserved
var requestBody = []byte{
	0x11, 0x00,
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
	0x00, 0x01, 0x11, 0x70,
	0x00, 0x00,
}

var requestTag = Tag{Kind: Request, RPCID: 0x0123456789abcdef, TraceID: 0xfedcba9876543210, Length: 70000}

// A retransmitted response: Ver 1, MKind 2, Flags 0x80 (R).
//
//	12 80 00 00 00 00 00 00 00 07 00 00 00 00 00 00
//	00 09 00 00 00 01 00 00
var responseBody = []byte{
	0x12, 0x80,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
	0x00, 0x00, 0x00, 0x01,
	0x00, 0x00,
}

var responseTag = Tag{Kind: Response, Flags: 0x80, RPCID: 7, TraceID: 9, Length: 1}

func TestBodyRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name string
		wire []byte
		tag  Tag
	}{
		{"request", requestBody, requestTag},
		{"retransmitted response", responseBody, responseTag},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseBody(c.wire)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.tag {
				t.Errorf("ParseBody = %+v, want %+v", got, c.tag)
			}
			b := got.Body()
			if !bytes.Equal(b[:], c.wire) {
				t.Errorf("Body() = % x, want % x", b[:], c.wire)
			}
		})
	}
}

func TestParseBodyRejects(t *testing.T) {
	for i := 0; i < BodyLen; i++ {
		if _, err := ParseBody(requestBody[:i]); err == nil {
			t.Errorf("ParseBody of %d bytes succeeded", i)
		}
	}
	for _, first := range []byte{0x01, 0x21, 0x10, 0x13, 0x1f} {
		b := append([]byte{first}, requestBody[1:]...)
		if _, err := ParseBody(b); err == nil {
			t.Errorf("ParseBody accepted first byte %#x", first)
		}
	}
	// Reserved bits and bytes are ignored on receipt.
	b := append([]byte(nil), requestBody...)
	b[22], b[23] = 0xff, 0xff
	if got, err := ParseBody(b); err != nil || got != requestTag {
		t.Errorf("reserved bytes set: %+v, %v", got, err)
	}
}

func FuzzParseBody(f *testing.F) {
	f.Add(requestBody)
	f.Add(responseBody)
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := ParseBody(b)
		if err != nil {
			return
		}
		// What parses serializes back to the same bytes, reserved bytes
		// and flags aside.
		out := tag.Body()
		if !bytes.Equal(out[:22], b[:22]) {
			t.Fatalf("round trip % x -> %+v -> % x", b[:BodyLen], tag, out)
		}
	})
}

func TestEncodeBodyAllocs(t *testing.T) {
	var sink Body
	if n := testing.AllocsPerRun(100, func() { sink = EncodeBody(Request, 0, 1, 2, 3) }); n != 0 {
		t.Errorf("EncodeBody allocates %v times", n)
	}
	_ = sink
}

// newTestMap creates a map with the tagger's tags layout, so Conn can be
// tested on loopback without attaching anything.
func newTestMap(t testing.TB) *Table {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create BPF maps (CI runs as root)")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.LRUHash, KeySize: 16, ValueSize: BodyLen, MaxEntries: 1024})
	if err != nil {
		t.Fatalf("creating map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	tb, err := NewTable(m)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// loopbackPair returns a connected client and the server side, which
// discards what it reads.
func loopbackPair(t testing.TB) (*net.TCPConn, <-chan int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	read := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			read <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		read <- n
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn), read
}

func TestConnAnnouncesOffsets(t *testing.T) {
	table := newTestMap(t)
	c, read := loopbackPair(t)
	conn, err := table.Wrap(c)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Cookie() == 0 {
		t.Fatal("socket cookie 0")
	}
	msgs := []Tag{
		{Kind: Request, RPCID: 1, TraceID: 10, Length: 5},
		{Kind: Response, RPCID: 2, TraceID: 10, Length: 100000},
		{Kind: Request, RPCID: 3, TraceID: 11, Length: 1},
	}
	off := uint64(0)
	for _, m := range msgs {
		if err := conn.BeginMessage(m.Kind, m.RPCID, m.TraceID, m.Length); err != nil {
			t.Fatal(err)
		}
		// Announcing the next message before this one is written is a
		// framing error.
		if err := conn.BeginMessage(Request, 99, 99, 1); err == nil {
			t.Fatal("BeginMessage inside an unfinished message succeeded")
		}
		half := m.Length / 2
		if _, err := conn.Write(make([]byte, half)); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(make([]byte, m.Length-half)); err != nil {
			t.Fatal(err)
		}
		var got Body
		if err := table.m.Lookup(&Key{Cookie: conn.Cookie(), Offset: uint32(off)}, &got); err != nil {
			t.Fatalf("no entry at offset %d: %v", off, err)
		}
		if got != m.Body() {
			t.Errorf("entry at offset %d = % x, want % x", off, got, m.Body())
		}
		off += uint64(m.Length)
		if conn.Offset() != off {
			t.Errorf("Offset() = %d, want %d", conn.Offset(), off)
		}
	}
	if n := countEntries(t, table); n != len(msgs) {
		t.Errorf("%d entries in the map, want %d", n, len(msgs))
	}
	conn.Close()
	if n := <-read; n != int64(off) {
		t.Errorf("peer read %d bytes, want %d", n, off)
	}
}

func countEntries(t *testing.T, table *Table) int {
	var k Key
	var v Body
	n := 0
	it := table.m.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConnPrunesAcknowledged(t *testing.T) {
	table := newTestMap(t)
	c, _ := loopbackPair(t)
	conn, err := table.Wrap(c)
	if err != nil {
		t.Fatal(err)
	}
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if err := conn.BeginMessage(Request, uint64(i), 1, 10); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 3*pruneEvery)
	// Wait until the peer has acknowledged all of it (delayed ACKs, and a
	// loaded machine, can hold that back), then announce enough messages
	// to pass the next prune point: that prune must remove every entry of
	// the first batch, so at most the second batch remains.
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var acked uint64
		raw.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				acked = info.Bytes_acked
			}
		})
		if acked >= 10*3*pruneEvery {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer acknowledged %d of %d bytes in 5 s", acked, 10*3*pruneEvery)
		}
	}
	send(3*pruneEvery, 4*pruneEvery+1)
	if n := countEntries(t, table); n > pruneEvery+1 || n == 0 {
		t.Errorf("%d entries after %d messages: acknowledged ones were not pruned", n, 4*pruneEvery+1)
	}
}

func TestBeginMessageRejects(t *testing.T) {
	table := newTestMap(t)
	c, _ := loopbackPair(t)
	conn, err := table.Wrap(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.BeginMessage(0, 1, 1, 1); err == nil {
		t.Error("kind 0 accepted")
	}
	if err := conn.BeginMessage(3, 1, 1, 1); err == nil {
		t.Error("kind 3 accepted")
	}
	if err := conn.BeginMessage(Request, 1, 1, 0); err == nil {
		t.Error("length 0 accepted")
	}
}

func TestNewTableRejectsOtherMaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create BPF maps (CI runs as root)")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: BodyLen, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := NewTable(m); err == nil {
		t.Error("NewTable accepted a map with 8-byte keys")
	}
	if _, err := Open("/sys/fs/bpf/bufscope/bst-does-not-exist"); err == nil {
		t.Error("Open of a missing pin succeeded")
	}
}

func TestBeginMessageWriteAllocs(t *testing.T) {
	table := newTestMap(t)
	c, _ := loopbackPair(t)
	conn, err := table.Wrap(c)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n := testing.AllocsPerRun(200, func() {
		if err := conn.BeginMessage(Request, 1, 2, uint32(len(buf))); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(buf); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("BeginMessage+Write allocates %v times per message", n)
	}
}

func BenchmarkBeginMessageWrite(b *testing.B) {
	table := newTestMap(b)
	c, _ := loopbackPair(b)
	conn, err := table.Wrap(c)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := conn.BeginMessage(Request, 1, 2, uint32(len(buf))); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainWrite is the baseline for BenchmarkBeginMessageWrite: the
// same writes on an unwrapped connection.
func BenchmarkPlainWrite(b *testing.B) {
	c, _ := loopbackPair(b)
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteUnannounced isolates the cost of Conn's write path: no
// message announced, so no map update and no MSG_EOR.
func BenchmarkWriteUnannounced(b *testing.B) {
	table := newTestMap(b)
	c, _ := loopbackPair(b)
	conn, err := table.Wrap(c)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapUpdate is the kernel cost of announcing one message.
func BenchmarkMapUpdate(b *testing.B) {
	table := newTestMap(b)
	key := Key{Cookie: 1}
	body := EncodeBody(Request, 0, 1, 2, 3)
	b.ReportAllocs()
	for b.Loop() {
		key.Offset++
		if err := table.m.Update(&key, &body, ebpf.UpdateAny); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEORWrite sends each 256-byte write with MSG_EOR and nothing
// else: the cost of keeping one message per segment, without the map.
func BenchmarkEORWrite(b *testing.B) {
	table := newTestMap(b)
	c, _ := loopbackPair(b)
	conn, err := table.Wrap(c)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := conn.send(buf, unix.MSG_EOR); err != nil {
			b.Fatal(err)
		}
	}
}

// io.Copy must count the bytes it writes: Conn offers no ReadFrom that
// would bypass Write.
func TestIOCopyCounts(t *testing.T) {
	table := newTestMap(t)
	c, read := loopbackPair(t)
	conn, err := table.Wrap(c)
	if err != nil {
		t.Fatal(err)
	}
	var _ net.Conn = conn
	if _, ok := any(conn).(io.ReaderFrom); ok {
		t.Fatal("Conn implements io.ReaderFrom")
	}
	if err := conn.BeginMessage(Request, 1, 1, 100000); err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(conn, bytes.NewReader(make([]byte, 100000))); err != nil || n != 100000 {
		t.Fatalf("io.Copy: %d, %v", n, err)
	}
	if conn.Offset() != 100000 {
		t.Errorf("Offset() = %d after io.Copy of 100000 bytes", conn.Offset())
	}
	if err := conn.BeginMessage(Request, 2, 1, 10); err != nil {
		t.Errorf("next message after io.Copy: %v", err)
	}
	conn.Close()
	<-read
}
