package montest

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// Listen opens a TCP listener on ip:0 inside ns and closes it at cleanup.
func Listen(t testing.TB, ns, ip string) *net.TCPListener {
	t.Helper()
	var ln *net.TCPListener
	In(t, ns, func() error {
		l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.ParseIP(ip)})
		ln = l
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

// DialOptions shape the client socket.
type DialOptions struct {
	SndBuf int // SO_SNDBUF before connect; 0 keeps the kernel's autotuning
}

// Dial connects from inside ns to addr and closes the connection at cleanup.
func Dial(t testing.TB, ns string, addr net.Addr, o DialOptions) *net.TCPConn {
	t.Helper()
	var c *net.TCPConn
	In(t, ns, func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		if o.SndBuf > 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, o.SndBuf)
				})
				if err != nil {
					return err
				}
				return serr
			}
		}
		conn, err := d.Dial("tcp4", addr.String())
		if err != nil {
			return err
		}
		c = conn.(*net.TCPConn)
		return nil
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// Sink accepts one connection on ln and reads it to EOF in the background,
// sleeping pause before its first read (a receiver that is not reading).
// The returned channel yields the byte count when the peer closes.
func Sink(t testing.TB, ln *net.TCPListener, pause time.Duration) <-chan int64 {
	t.Helper()
	done := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- -1
			return
		}
		defer c.Close()
		time.Sleep(pause)
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}()
	return done
}

// Push writes n bytes to c in 64 KiB writes, failing t on a write error
// other than the deadline passing.
func Push(t testing.TB, c *net.TCPConn, n int, deadline time.Time) int {
	t.Helper()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	_ = c.SetWriteDeadline(deadline)
	sent := 0
	for sent < n {
		k := min(len(buf), n-sent)
		w, err := c.Write(buf[:k])
		sent += w
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return sent
			}
			t.Fatalf("push after %d bytes: %v", sent, err)
		}
	}
	return sent
}
