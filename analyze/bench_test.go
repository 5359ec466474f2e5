package analyze

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/internal/hugepage"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	benchTrace   = flag.String("benchtrace", "", "TestWriteBenchTrace writes a synthetic trace here (for bench/analyze-vs-tshark.sh)")
	benchPackets = flag.Int("benchpackets", 1_000_000, "packets in the synthetic benchmark trace")
	benchFileIn  = flag.String("benchfile", "", "BenchmarkRunFile and BenchmarkFeedFile analyze this trace (e.g. bench/large.trace.zst)")
)

// cpuTime is the CPU time the process has used, all threads: on a shared
// machine it is steadier than wall time, which waits for other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRates reports records per wall second, and the process's CPU
// seconds per op and records per CPU second since cpu0.
func reportRates(b *testing.B, records int64, cpu0 time.Duration) {
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		b.ReportMetric(float64(records)*float64(b.N)/cpu.Seconds(), "records/cpu-s")
	}
}

// synthTrace writes a SYNTHETIC trace of about n packets: 64 client
// connections to 4 servers carrying about 1000 tagged RPCs per second (300 B requests, 8 KiB
// responses, ACKs), captured at one point with a 128-byte snap length as
// bufscope record keeps them, plus one host qdisc message-start report per
// message and a queuing report every 1000th message. It stands in for a
// large lab trace in benchmarks; its shape (packet mix, report share)
// follows the lab's RPC workload.
func synthTrace(path string, n int) error {
	w, err := capture.Create(path, capture.WriterOptions{
		Interfaces: []capture.Interface{
			{Name: "bench/eth0", LinkType: layers.LinkTypeEthernet, SnapLen: 128},
			{Name: "collector/eth0", LinkType: layers.LinkTypeEthernet, SnapLen: 262144},
		},
		Hardware: "synthetic", OS: "synthetic", Application: "bufscope analyze benchmark",
		Overwrite: true, WiresharkReadable: true,
	})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(7, 11))
	type conn struct {
		c, s       net.IP
		cport      uint16
		cseq, sseq uint32
	}
	conns := make([]*conn, 64)
	for i := range conns {
		conns[i] = &conn{c: net.IPv4(10, 77, 1, byte(2+i%16)).To4(), s: net.IPv4(10, 77, 101, byte(2+i%4)).To4(),
			cport: uint16(40000 + i), cseq: rng.Uint32(), sseq: rng.Uint32()}
	}
	t := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	written, reports := 0, uint32(0)
	write := func(iface int, data []byte, length int) error {
		written++
		capLen := len(data)
		if iface == 0 && capLen > 128 {
			capLen = 128
		}
		return w.WritePacket(gopacket.CaptureInfo{Timestamp: t, CaptureLength: capLen, Length: length, InterfaceIndex: iface}, data[:capLen])
	}
	seg := func(src, dst net.IP, sport, dport uint16, seq, ack uint32, payload int, tag *decode.RequestTag) ([]byte, error) {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, Ack: ack, ACK: true, PSH: payload > 0, Window: 512}
		if tag != nil {
			opt := tag.AppendOption(nil)
			tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKind(opt[0]), OptionLength: opt[1], OptionData: opt[2:]}}
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			return nil, err
		}
		eth := &layers.Ethernet{SrcMAC: make(net.HardwareAddr, 6), DstMAC: make(net.HardwareAddr, 6), EthernetType: layers.EthernetTypeIPv4}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, tcp, gopacket.Payload(make([]byte, payload))); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	report := func(c *conn, tag *decode.RequestTag, ev decode.EventKind, res uint32, hdr []byte) error {
		reports++
		he := decode.HostEvent{Buffer: decode.BufferQdisc, Event: ev, IfIndex: 3, HopLatency: res,
			IngressTime: uint64(t.UnixNano()) - uint64(res), EgressTime: uint64(t.UnixNano()), OccupancyBytes: res / 10, Inner: hdr}
		p, err := decode.AppendHostReport(nil, 1001, 1, reports, []decode.HostEvent{he})
		if err != nil {
			return err
		}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(10, 77, 250, 10).To4(), DstIP: net.IPv4(10, 77, 250, 1).To4()}
		udp := &layers.UDP{SrcPort: 41000, DstPort: decode.DefaultReportPort}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			return err
		}
		eth := &layers.Ethernet{SrcMAC: make(net.HardwareAddr, 6), DstMAC: make(net.HardwareAddr, 6), EthernetType: layers.EthernetTypeIPv4}
		if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(p)); err != nil {
			return err
		}
		return write(1, buf.Bytes(), len(buf.Bytes()))
	}
	var msgs int
	for id := uint64(1); written < n; id++ {
		c := conns[rng.IntN(len(conns))]
		tag := decode.RequestTag{Version: 1, Kind: decode.MessageRequest, RPCID: id<<8 | 1, TraceID: id, MessageLength: 300}
		b, err := seg(c.c, c.s, c.cport, 9000, c.cseq, c.sseq, 300, &tag)
		if err != nil {
			return err
		}
		hdr := append([]byte(nil), b[14:14+20+20+28]...)
		if err := write(0, b, len(b)); err != nil {
			return err
		}
		msgs++
		ev, res := decode.EventMessageStart, uint32(2000+rng.IntN(3000))
		if msgs%1000 == 0 {
			ev, res = decode.EventQueuing, 3_000_000
		}
		if err := report(c, &tag, ev, res, hdr); err != nil {
			return err
		}
		c.cseq += 300
		t = t.Add(time.Duration(20+rng.IntN(40)) * time.Microsecond)
		resp := decode.RequestTag{Version: 1, Kind: decode.MessageResponse, RPCID: id<<8 | 1, TraceID: id, MessageLength: 8192}
		for off := 0; off < 8192; off += 1448 {
			sz := min(1448, 8192-off)
			var tg *decode.RequestTag
			if off == 0 {
				tg = &resp
			}
			b, err := seg(c.s, c.c, 9000, c.cport, c.sseq, c.cseq, sz, tg)
			if err != nil {
				return err
			}
			l := len(b)
			if err := write(0, b, l); err != nil {
				return err
			}
			c.sseq += uint32(sz)
			t = t.Add(3 * time.Microsecond)
			if off/1448%2 == 1 {
				a, err := seg(c.c, c.s, c.cport, 9000, c.cseq, c.sseq, 0, nil)
				if err != nil {
					return err
				}
				if err := write(0, a, len(a)); err != nil {
					return err
				}
			}
		}
		// About 1000 RPCs per second: a 1e6-packet trace spans ~80 s,
		// far beyond the analyzer's 10 s window, so memory must stay flat.
		t = t.Add(time.Duration(800+rng.IntN(400)) * time.Microsecond)
	}
	return w.Close()
}

// TestWriteBenchTrace writes the synthetic benchmark trace when
// -benchtrace is given (bench/analyze-vs-tshark.sh uses it).
func TestWriteBenchTrace(t *testing.T) {
	if *benchTrace == "" {
		t.Skip("no -benchtrace: nothing to write")
	}
	if err := synthTrace(*benchTrace, *benchPackets); err != nil {
		t.Fatal(err)
	}
}

func TestSyntheticTraceAnalyzes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "synth.zst")
	if err := synthTrace(path, 20_000); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), []string{path}, RunOptions{}, Options{SLO: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Every packet makes one Record; none may be lost between the reader,
	// the decoders and the analyzer.
	all, _ := traceRecords(t, path)
	if res.Stats.Records != int64(len(all)) {
		t.Fatalf("Run fed %d Records, the trace has %d", res.Stats.Records, len(all))
	}
	// Two inputs are merged: the same trace twice gives every Record twice.
	res2, err := Run(context.Background(), []string{path, path}, RunOptions{Workers: 3}, Options{SLO: time.Second})
	if err != nil || res2.Stats.Records != 2*int64(len(all)) {
		t.Fatalf("two inputs: %d Records (%v), want %d", res2.Stats.Records, err, 2*len(all))
	}
	// Every RPC of the generator is complete and attributed: 300 B
	// request, 8 KiB response; ~12 packets + 1 report each.
	if res.Stats.RPCs < 1400 || res.Stats.Incomplete != 0 || res.Stats.Unattributed != 0 || res.Stats.Inferred != 0 {
		t.Errorf("stats %+v", res.Stats)
	}
	// Every 1000th message start waited 3 ms in the client's qdisc: those
	// RPCs, and only those, stand out from their class.
	want := int(res.Stats.RPCs / 1000)
	if res.Stats.Requests != res.Stats.RPCs || len(res.RLAs) != want {
		t.Fatalf("%d requests for %d RPCs, %d RLAs (want %d)", res.Stats.Requests, res.Stats.RPCs, len(res.RLAs), want)
	}
	for _, q := range res.RLAs {
		if d := q.Diagnosis; d == nil || d.Kind != "qdisc" || d.Event != "queuing" || d.NodeID != 1001 || q.Rules[0].Name != "baseline-mad" {
			t.Errorf("RLA %s: rules %v diagnosis %+v", q.ID, q.Rules, d)
		}
	}
}

func benchFile(b *testing.B, n int) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("bufscope-analyze-bench-%d.zst", n))
	if _, err := os.Stat(path); err != nil {
		if err := synthTrace(path, n); err != nil {
			b.Fatal(err)
		}
	}
	return path
}

var hugepageOnce sync.Once

// adviseHugepages does what bufscope analyze does at its start (unless
// BUFSCOPE_HUGEPAGES=0), so that the benchmarks measure what it runs.
func adviseHugepages() {
	if os.Getenv("BUFSCOPE_HUGEPAGES") != "0" {
		hugepageOnce.Do(func() { _ = hugepage.Advise(HugepageHeap) })
	}
}

// BenchmarkRun measures records per second end to end: read, decompress,
// decode in parallel, analyze.
func BenchmarkRun(b *testing.B) { benchRun(b, benchFile(b, 200_000)) }

// BenchmarkRunFile is BenchmarkRun on the trace named by -benchfile, such
// as the large lab trace of bench/make-large-trace.sh.
func BenchmarkRunFile(b *testing.B) { benchRun(b, benchFileArg(b)) }

// benchFileArg is the trace named by -benchfile, or skips the benchmark.
func benchFileArg(b *testing.B) string {
	if *benchFileIn == "" {
		b.Skip("no -benchfile: give a trace, e.g. -benchfile ../bench/large.trace.zst")
	}
	return *benchFileIn
}

func benchRun(b *testing.B, path string) {
	adviseHugepages()
	var recs int64
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := Run(context.Background(), []string{path}, RunOptions{}, Options{SLO: 20 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		recs = res.Stats.Records
	}
	reportRates(b, recs, cpu0)
}

// BenchmarkFeed measures the analyzer alone on decoded Records.
func BenchmarkFeed(b *testing.B) { benchFeed(b, benchFile(b, 200_000)) }

// BenchmarkFeedFile is BenchmarkFeed on the trace named by -benchfile.
func BenchmarkFeedFile(b *testing.B) { benchFeed(b, benchFileArg(b)) }

func benchFeed(b *testing.B, path string) {
	adviseHugepages()
	recs, topo := traceRecords(b, path)
	cpu0 := cpuTime()
	for b.Loop() {
		a := New(Options{SLO: 20 * time.Millisecond, Topology: topo})
		for i := range recs {
			a.Feed(&recs[i])
		}
		a.Finish()
	}
	reportRates(b, int64(len(recs)), cpu0)
}
