//go:build linux

package rpctag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Kind is the message kind carried in the tag.
type Kind uint8

// Message kinds (docs/wire-format.md, MKind).
const (
	Request  Kind = 1
	Response Kind = 2
)

// Version is the tag layout version rpctag writes.
const Version = 1

// BodyLen is the size of the tag after kind, length and ExID: the part the
// tags map stores (the kernel prepends the other four bytes).
const BodyLen = 24

// Key is the tags map key; its layout matches struct tag_key in
// hwprobe/tagger/bpf/tagger.bpf.c.
type Key struct {
	Cookie uint64 // SO_COOKIE of the sending socket
	Offset uint32 // stream offset of the message's first byte, modulo 2^32
	_      uint32
}

// Body is a tags map value: wire bytes 4..27 of the request tag.
type Body [BodyLen]byte

// EncodeBody lays out the tag fields after the ExID as they go on the wire.
// Flags is normally 0: the kernel sets the retransmission flag itself.
func EncodeBody(kind Kind, flags uint8, rpcID, traceID uint64, length uint32) Body {
	var b Body
	b[0] = Version<<4 | uint8(kind)&0x0f
	b[1] = flags
	binary.BigEndian.PutUint64(b[2:10], rpcID)
	binary.BigEndian.PutUint64(b[10:18], traceID)
	binary.BigEndian.PutUint32(b[18:22], length)
	// b[22:24] reserved, zero.
	return b
}

// Tag is the content of a tags map value.
type Tag struct {
	Kind    Kind
	Flags   uint8 // 0x80: retransmission (set by the kernel on the wire)
	RPCID   uint64
	TraceID uint64
	Length  uint32
}

// Body lays the tag out as the map stores it.
func (t Tag) Body() Body { return EncodeBody(t.Kind, t.Flags, t.RPCID, t.TraceID, t.Length) }

// ParseBody reads a map value (or wire bytes 4..27 of a tag). It rejects
// other versions and invalid kinds; reserved bits are ignored as the wire
// format asks.
func ParseBody(b []byte) (Tag, error) {
	if len(b) < BodyLen {
		return Tag{}, fmt.Errorf("rpctag: tag body of %d bytes, want %d", len(b), BodyLen)
	}
	if v := b[0] >> 4; v != Version {
		return Tag{}, fmt.Errorf("rpctag: tag version %d at offset 0, want %d", v, Version)
	}
	k := Kind(b[0] & 0x0f)
	if k != Request && k != Response {
		return Tag{}, fmt.Errorf("rpctag: message kind %d at offset 0, want 1 or 2", k)
	}
	return Tag{
		Kind:    k,
		Flags:   b[1],
		RPCID:   binary.BigEndian.Uint64(b[2:10]),
		TraceID: binary.BigEndian.Uint64(b[10:18]),
		Length:  binary.BigEndian.Uint32(b[18:22]),
	}, nil
}

// Table is a handle on a tagger's tags map. Safe for concurrent use.
type Table struct {
	m     *ebpf.Map
	owned bool
}

// Open opens the tags map a tagger pinned at pinPath (tagger.Tagger.PinPath,
// by default /sys/fs/bpf/bufscope/tags). Needs the permission to open BPF
// objects (root). Close the Table when done.
func Open(pinPath string) (*Table, error) {
	m, err := ebpf.LoadPinnedMap(pinPath, nil)
	if err != nil {
		return nil, fmt.Errorf("rpctag: opening tags map %s (is a tagger loaded? see `bufscope deploy`): %w", pinPath, err)
	}
	if err := checkLayout(m); err != nil {
		m.Close()
		return nil, fmt.Errorf("rpctag: %s: %w", pinPath, err)
	}
	return &Table{m: m, owned: true}, nil
}

// NewTable uses a map the caller owns (tagger.Tagger.Tags); Close then
// leaves it open.
func NewTable(m *ebpf.Map) (*Table, error) {
	if err := checkLayout(m); err != nil {
		return nil, fmt.Errorf("rpctag: %w", err)
	}
	return &Table{m: m}, nil
}

func checkLayout(m *ebpf.Map) error {
	if m.KeySize() != 16 || m.ValueSize() != BodyLen {
		return fmt.Errorf("map has key/value sizes %d/%d, want 16/%d: not a tags map of this version", m.KeySize(), m.ValueSize(), BodyLen)
	}
	return nil
}

// Close releases the map if Open created the handle.
func (t *Table) Close() error {
	if t.owned {
		return t.m.Close()
	}
	return nil
}

// Wrap takes over writing to c. It must be called before any byte is
// written to c, because stream offsets are counted from the first byte;
// afterwards all writes must go through the returned Conn. Wrap turns on
// TCP_NODELAY (Go's default anyway): with Nagle, a message could start in
// the middle of a segment, where no tag can mark it.
func (t *Table) Wrap(c *net.TCPConn) (*Conn, error) {
	if err := c.SetNoDelay(true); err != nil {
		return nil, fmt.Errorf("rpctag: setting TCP_NODELAY: %w", err)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("rpctag: %w", err)
	}
	var cookie uint64
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cookie, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	}); err != nil {
		return nil, fmt.Errorf("rpctag: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("rpctag: reading SO_COOKIE: %w", serr)
	}
	cn := &Conn{tcp: c, raw: raw, table: t, cookie: cookie, pending: make([]uint64, 0, pruneEvery), pruneAt: pruneEvery}
	cn.sendFn = cn.sendOnce
	return cn, nil
}

// pruneEvery is how many announced messages accumulate before Conn asks the
// kernel which of them are acknowledged and removes their entries.
const pruneEvery = 256

// maxLag bounds how far behind the write position an entry may stay: the
// kernel matches 32-bit offsets, so an entry must be gone long before the
// stream wraps onto it. No TCP send buffer holds a gigabyte unacknowledged.
const maxLag = 1 << 30

// Conn is a TCP connection whose messages are tagged; it is a net.Conn.
// Write and BeginMessage may be called from several goroutines, but a
// message's bytes must not be interleaved with another's, as with any
// framing.
//
// Conn deliberately does not embed *net.TCPConn: its ReadFrom (used by
// io.Copy) and the writev path of net.Buffers would write past Conn.Write
// and break the offset count.
type Conn struct {
	tcp    *net.TCPConn
	raw    syscall.RawConn
	table  *Table
	cookie uint64

	mu      sync.Mutex
	written uint64   // stream offset of the next byte written
	msgEnd  uint64   // stream offset just past the current message
	pending []uint64 // offsets of announced messages, oldest first
	pruneAt int      // prune when pending grows to this length

	// Scratch space for map updates and sendOnce state, kept here so that
	// announcing and writing a message allocates nothing.
	key       Key
	body      Body
	sendFn    func(fd uintptr) bool
	sendBuf   []byte
	sendFlags int
	sendN     int
	sendErr   error
}

// Read reads from the connection.
func (c *Conn) Read(p []byte) (int, error) { return c.tcp.Read(p) }

// Close closes the connection. The map entries of its messages stay until
// the LRU evicts them: data still queued in the kernel may be
// retransmitted after Close returns.
func (c *Conn) Close() error { return c.tcp.Close() }

// CloseWrite shuts down the sending side.
func (c *Conn) CloseWrite() error { return c.tcp.CloseWrite() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.tcp.LocalAddr() }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.tcp.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.tcp.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.tcp.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline; it applies to Write.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.tcp.SetWriteDeadline(t) }

// TCPConn is the wrapped connection, for reading and socket options.
// Writing to it directly breaks tagging of every later message.
func (c *Conn) TCPConn() *net.TCPConn { return c.tcp }

// Cookie is the socket cookie (SO_COOKIE) that keys this connection's
// entries.
func (c *Conn) Cookie() uint64 { return c.cookie }

// Offset is the stream offset of the next byte Write will send.
func (c *Conn) Offset() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written
}

// BeginMessage announces that the next length bytes written form one
// message. It returns an error if the previous message is not completely
// written, or if the kernel map refuses the entry (the message is then sent
// untagged if the caller goes on).
func (c *Conn) BeginMessage(kind Kind, rpcID, traceID uint64, length uint32) error {
	if kind != Request && kind != Response {
		return fmt.Errorf("rpctag: message kind %d: want Request (1) or Response (2)", kind)
	}
	if length == 0 {
		return errors.New("rpctag: message length 0: an empty message has no first byte to tag")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.written < c.msgEnd {
		return fmt.Errorf("rpctag: previous message at offset %d still has %d bytes to write", c.msgEnd, c.msgEnd-c.written)
	}
	if len(c.pending) >= c.pruneAt {
		c.prune()
		// While the peer lags, entries stay; asking again for every
		// message would cost a system call each.
		c.pruneAt = len(c.pending) + pruneEvery
	}
	c.key = Key{Cookie: c.cookie, Offset: uint32(c.written)}
	c.body = EncodeBody(kind, 0, rpcID, traceID, length)
	if err := c.table.m.Update(&c.key, &c.body, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("rpctag: announcing message at offset %d: %w", c.written, err)
	}
	c.pending = append(c.pending, c.written)
	c.msgEnd = c.written + uint64(length)
	return nil
}

// prune removes the entries of messages whose first byte the peer has
// acknowledged: they can no longer be retransmitted.
func (c *Conn) prune() {
	acked := uint64(0)
	_ = c.raw.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			acked = info.Bytes_acked
		}
	})
	i := 0
	for ; i < len(c.pending); i++ {
		off := c.pending[i]
		// bytes_acked may or may not count the SYN: allow for one byte.
		if off+1 >= acked && off+maxLag >= c.written {
			break
		}
		c.key = Key{Cookie: c.cookie, Offset: uint32(off)}
		_ = c.table.m.Delete(&c.key) // already evicted by the LRU is fine
	}
	c.pending = append(c.pending[:0], c.pending[i:]...)
}

// Write sends p. The write that completes the current message is sent with
// MSG_EOR, so the kernel never appends the next message to the same
// segment: its first byte then starts a segment and can carry the tag.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for len(p) > 0 {
		chunk, flags := p, 0
		if c.written < c.msgEnd && uint64(len(p)) >= c.msgEnd-c.written {
			chunk, flags = p[:c.msgEnd-c.written], unix.MSG_EOR
		}
		n, err := c.send(chunk, flags)
		total += n
		c.written += uint64(n)
		if err != nil {
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

func (c *Conn) send(p []byte, flags int) (int, error) {
	c.sendBuf, c.sendFlags, c.sendN, c.sendErr = p, flags, 0, nil
	err := c.raw.Write(c.sendFn)
	n, serr := c.sendN, c.sendErr
	c.sendBuf = nil
	if err == nil {
		err = serr
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	return n, nil
}

// sendOnce is the RawConn callback: it returns false to wait for the
// socket to become writable.
func (c *Conn) sendOnce(fd uintptr) bool {
	for c.sendN < len(c.sendBuf) {
		n, err := unix.SendmsgN(int(fd), c.sendBuf[c.sendN:], nil, nil, c.sendFlags|unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
		switch err {
		case nil:
			c.sendN += n
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			c.sendErr = err
			return true
		}
	}
	return true
}
