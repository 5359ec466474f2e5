package monitor_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/bufscope/bufscope/hwprobe/monitor"
	"github.com/bufscope/bufscope/hwprobe/monitor/montest"
)

// BenchmarkProgramCost measures what each monitor program costs per run
// with the kernel's own accounting (kernel.bpf_stats_enabled): run_time_ns
// / run_cnt, reported as <program>-ns/run. One benchmark iteration pushes
// 1 MiB over TCP between two namespaces through a root qdisc.
//
//	quiet:     a shaper far above the veth's speed: the qdisc is in the
//	           path, nothing crosses a threshold (the per-packet cost).
//	unwatched: the same traffic in a namespace the monitors do not watch
//	           (what the netns filter costs other namespaces' packets).
//	dropping: 10mbit shaper in front of a 3000-byte bfifo: drops and
//	          queuing events (the per-event cost).
func BenchmarkProgramCost(b *testing.B) {
	for _, sc := range []struct {
		name      string
		tc        [][]string
		unwatched bool
	}{
		{"quiet", [][]string{{"root", "tbf", "rate", "40gbit", "burst", "4mb", "latency", "50ms"}}, false},
		{"unwatched", [][]string{{"root", "tbf", "rate", "40gbit", "burst", "4mb", "latency", "50ms"}}, true},
		{"dropping", [][]string{
			{"root", "handle", "1:", "tbf", "rate", "10mbit", "burst", "5k", "latency", "200ms"},
			{"parent", "1:1", "handle", "10:", "bfifo", "limit", "3000"},
		}, false},
	} {
		b.Run(sc.name, func(b *testing.B) {
			montest.RequireRoot(b)
			p := montest.NewPair(b)
			for _, args := range sc.tc {
				montest.Tc(b, p.Client.NS, append([]string{"qdisc", "add", "dev", p.Client.Dev}, args...)...)
			}
			stats, err := monitor.EnableKernelStats()
			if err != nil {
				b.Skipf("kernel BPF statistics unavailable: %v", err)
			}
			defer stats.Close()
			ino, err := monitor.NetnsInode(montest.Path(p.Client.NS))
			if err != nil {
				b.Fatal(err)
			}
			sino, _ := monitor.NetnsInode(montest.Path(p.Server.NS))
			watch := []monitor.Netns{{Inode: ino}, {Inode: sino}}
			if sc.unwatched {
				// Watch only the test's own namespace: the lab's packets
				// show what the filter costs everyone else's traffic.
				self, err := monitor.NetnsInode("/proc/self/ns/net")
				if err != nil {
					b.Fatal(err)
				}
				watch = []monitor.Netns{{Inode: self}}
			}
			m, err := monitor.Load(monitor.Options{Netns: watch})
			if errors.Is(err, monitor.ErrNotSupported) {
				b.Skip(err)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			// Drain the ring so it never fills.
			done := make(chan struct{})
			go func() {
				defer close(done)
				var ev monitor.Event
				for {
					if err := m.ReadEvent(&ev, time.Now().Add(20*time.Millisecond)); err != nil && !isDeadline(err) {
						return
					}
				}
			}()
			ln := montest.Listen(b, p.Server.NS, p.Server.IP)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				got := montest.Sink(b, ln, 0)
				c := montest.Dial(b, p.Client.NS, ln.Addr(), montest.DialOptions{})
				montest.Push(b, c, 1<<20, time.Now().Add(time.Minute))
				c.CloseWrite()
				<-got
				c.Close()
			}
			b.StopTimer()
			ps, err := m.ProgramStats()
			if err != nil {
				b.Fatal(err)
			}
			for _, s := range ps {
				if s.RunCount == 0 {
					continue
				}
				b.ReportMetric(float64(s.Runtime.Nanoseconds())/float64(s.RunCount), s.Program+"-ns/run")
				b.ReportMetric(float64(s.RunCount)/float64(b.N), s.Program+"-runs/op")
			}
			st, _ := m.Stats()
			b.ReportMetric(float64(st.Emitted)/float64(b.N), "events/op")
			m.Close()
			<-done
		})
	}
}

func isDeadline(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
