//go:build linux

package capture

import (
	"path/filepath"
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
	l := newVethLab(t)
	live, err := OpenLive(LiveOptions{Interfaces: []string{l.Host}, Filter: "udp dst port 9999", Hostname: "alloc"})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := NewRotator(RotateOptions{Path: filepath.Join(t.TempDir(), "alloc.zst"), Writer: WriterOptions{Interfaces: live.Interfaces()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rot.Close() })
	stop, _ := startRecord(t, live, rot, RecordLimits{})

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
	send := func(n int) {
		for i := range n {
			buf[0] = byte(i)
			if err := syscall.Sendto(fd, buf, 0, &dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor := func(n uint64) {
		deadline := time.Now().Add(10 * time.Second)
		for live.Stats().Packets < n {
			if time.Now().After(deadline) {
				t.Fatalf("recorded %d of %d packets", live.Stats().Packets, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// Warm up: first frame, encoder state, ring pages.
	send(2000)
	waitFor(2000)

	const n = 20000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	send(n)
	waitFor(2000 + n)
	runtime.ReadMemStats(&after)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	perPacket := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%d allocations for %d packets (%.4f per packet)", after.Mallocs-before.Mallocs, n, perPacket)
	if perPacket > 0.05 {
		t.Errorf("%.3f allocations per recorded packet, want none per packet (< 0.05 including per-frame work)", perPacket)
	}
}
