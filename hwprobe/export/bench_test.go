package export

import (
	"net"
	"testing"
	"time"

	"github.com/bufscope/bufscope/decode"
	"github.com/bufscope/bufscope/hwprobe/monitor"
)

// BenchmarkConvertEncode is the CPU cost of one event: conversion and
// serialization into a batch of 8 (no socket).
func BenchmarkConvertEncode(b *testing.B) {
	ev := qdiscEvent()
	hes := make([]decode.HostEvent, 8)
	var hdrs [8][monitor.HeaderMax]byte
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		n := i % 8
		Convert(&ev, nil, &hes[n], hdrs[n][:0])
		if n == 7 {
			var err error
			if buf, err = decode.AppendHostReport(buf[:0], 1, 0, uint32(i), hes); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// BenchmarkExportUDP is the exporter's path per event up to the socket:
// batching, serialization and one UDP send per full packet to a loopback
// collector.
func BenchmarkExportUDP(b *testing.B) {
	col, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer col.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := col.Read(buf); err != nil {
				return
			}
		}
	}()
	x, err := New(Options{Collector: col.LocalAddr().String(), NodeID: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	ev := qdiscEvent()
	b.ReportAllocs()
	for b.Loop() {
		x.add(&ev, nil)
	}
	x.flushAll()
	c := x.Counters()
	b.ReportMetric(float64(c.Reports)/b.Elapsed().Seconds(), "reports/s")
	b.ReportMetric(float64(c.Reports)/float64(c.Packets), "reports/packet")
	if c.SendErrors > 0 {
		b.ReportMetric(float64(c.SendErrors), "send-errors")
	}
}

func TestExporterHostPathAllocs(t *testing.T) {
	col, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	x, err := New(Options{Collector: col.LocalAddr().String(), NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ev := qdiscEvent()
	n := testing.AllocsPerRun(200, func() {
		for i := 0; i < 8; i++ {
			x.add(&ev, nil)
		}
		x.flushHost(x.nodes[0])
	})
	if n != 0 {
		t.Errorf("batching and sending 8 host reports allocates %v times", n)
	}
	if c := x.Counters(); c.SendErrors != 0 || c.Reports == 0 {
		t.Errorf("counters %+v", c)
	}
}

// TestExporterToCollectorWithoutSocket: a collector that captures with
// AF_PACKET (bufscope record) has no socket on the report port, so the
// kernel answers each datagram with ICMP port unreachable, which a connected
// UDP socket reports on the next send. No report may be lost to that.
func TestExporterToCollectorWithoutSocket(t *testing.T) {
	col, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := col.LocalAddr().String()
	col.Close() // nobody listens there now
	x, err := New(Options{Collector: addr, NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ev := qdiscEvent()
	const packets = 50
	for i := 0; i < packets; i++ {
		x.add(&ev, nil)
		x.flushHost(x.nodes[0])
		time.Sleep(time.Millisecond) // let the ICMP error arrive
	}
	if c := x.Counters(); c.SendErrors != 0 || c.Packets != packets {
		t.Errorf("%d packets sent, %d send errors; want %d and 0", c.Packets, c.SendErrors, packets)
	}
}
