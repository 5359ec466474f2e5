//go:build linux

package capture

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestLiveRecordAllocations pins that recording does not allocate per
// packet: the ring is read in place and the writer copies into its frame
// buffer. The datagrams are sent with raw syscalls on a prepared address,
// which do not allocate, so the process-wide malloc count is the
// recorder's. What remains is per frame (compression output, timers), a
// few allocations per thousands of packets.
func TestLiveRecordAllocations(t *testing.T) {
	l, live, _, stop := recordPort9999(t)

	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	var src, dst syscall.SockaddrInet4
	copy(src.Addr[:], l.HostIP.To4())
	copy(dst.Addr[:], l.Peer.To4())
	dst.Port = 9999
	if err := syscall.Bind(fd, &src); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	// Paced, because on a loaded machine a burst overflows the kernel's
	// per-CPU backlog before the packets reach the ring; this test is
	// about allocations, not about loss.
	send := func(n int) {
		for i := range n {
			buf[0] = byte(i)
			if err := syscall.Sendto(fd, buf, 0, &dst); err != nil {
				t.Fatal(err)
			}
			if i%200 == 199 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	// settle waits until the recorder has seen no packet for 200 ms.
	settle := func() uint64 {
		last, since := live.Stats().Packets, time.Now()
		for time.Since(since) < 200*time.Millisecond {
			time.Sleep(5 * time.Millisecond)
			if n := live.Stats().Packets; n != last {
				last, since = n, time.Now()
			}
		}
		return last
	}
	// Warm up: first frame, encoder state, ring pages.
	send(2000)
	warm := settle()

	const n = 20000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	send(n)
	recorded := settle() - warm
	runtime.ReadMemStats(&after)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if recorded < n*9/10 {
		t.Fatalf("recorded %d of %d packets: too few to measure", recorded, n)
	}
	perPacket := float64(after.Mallocs-before.Mallocs) / float64(recorded)
	t.Logf("%d allocations for %d packets (%.4f per packet)", after.Mallocs-before.Mallocs, recorded, perPacket)
	if perPacket > 0.05 {
		t.Errorf("%.3f allocations per recorded packet, want none per packet (< 0.05 including per-frame work)", perPacket)
	}
}
