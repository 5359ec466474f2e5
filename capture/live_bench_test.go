//go:build linux

package capture

import (
	"net"
	"testing"
	"time"
)

// BenchmarkLiveRecord measures the whole recording path on a veth: kernel
// filter and truncation, the TPACKET_V3 ring, the Record loop and a
// Rotator writing zstd frames to a file. b.N datagrams of 200 bytes are
// sent from the test's namespace as fast as one goroutine can; the sender
// shares the machine's cores with the recorder, so the rate is a lower
// bound of what the recorder sustains. Reported: recorded packets/s and
// kernel drops (which must stay 0 for the rate to count).
func BenchmarkLiveRecord(b *testing.B) {
	l, live, rot, stop := recordPort9999(b)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: l.HostIP})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	dst := &net.UDPAddr{IP: l.Peer, Port: 9999}
	buf := make([]byte, 200)

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		buf[0], buf[1], buf[2] = byte(i>>16), byte(i>>8), byte(i)
		if _, err := c.WriteTo(buf, dst); err != nil {
			b.Fatal(err)
		}
	}
	// Wait for the recorder to catch up (or give up after a quiet second).
	last, lastChange := uint64(0), time.Now()
	for {
		n := live.Stats().Packets
		if n >= uint64(b.N) || time.Since(lastChange) > time.Second {
			break
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	if err := rot.Close(); err != nil {
		b.Fatal(err)
	}
	st, ws := live.Stats(), rot.Stats()
	if st.Packets+st.Drops < uint64(b.N) {
		b.Logf("%d sent, %d recorded, %d dropped by the kernel: the rest was lost before the ring (veth backlog)", b.N, st.Packets, st.Drops)
	}
	b.ReportMetric(float64(st.Packets)/elapsed.Seconds(), "pkts/s")
	b.ReportMetric(float64(st.Drops), "drops")
	b.ReportMetric(ws.Ratio(), "compression")
}
