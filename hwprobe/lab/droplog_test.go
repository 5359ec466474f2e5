//go:build linux

package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseDrop(t *testing.T) {
	// struct drop of bpf/loss.bpf.c, little-endian host:
	// 00  ts_ns 1_000_000_123 (u64)      00 00 00 00 3b 9a ca 7b
	// 08  saddr 10.77.101.2 (net order)  0a 4d 65 02
	// 12  daddr 10.77.1.2                0a 4d 01 02
	// 16  sport 9000, dport 45874 (net)  23 28 b3 32
	// 20  seq 0x01020304 (host order)    04 03 02 01
	// 24  payload 1420                   8c 05 00 00
	// 28  pad                            00 00 00 00
	b := []byte{
		0x7b, 0xca, 0x9a, 0x3b, 0x00, 0x00, 0x00, 0x00,
		0x0a, 0x4d, 0x65, 0x02,
		0x0a, 0x4d, 0x01, 0x02,
		0x23, 0x28, 0xb3, 0x32,
		0x04, 0x03, 0x02, 0x01,
		0x8c, 0x05, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,
	}
	clock := int64(1_700_000_000) * 1e9
	got, err := parseDrop(b, clock)
	if err != nil {
		t.Fatal(err)
	}
	want := lostSegment{
		at:      time.Unix(1_700_000_001, 123).UTC(),
		src:     netip.MustParseAddrPort("10.77.101.2:9000"),
		dst:     netip.MustParseAddrPort("10.77.1.2:45874"),
		seq:     0x01020304,
		payload: 1420,
	}
	if got != want {
		t.Errorf("parseDrop:\n got %+v\nwant %+v", got, want)
	}
	if _, err := parseDrop(b[:31], clock); err == nil || !strings.Contains(err.Error(), "31 bytes") {
		t.Errorf("short record: error %v, want one naming its 31 bytes", err)
	}
}

func TestDropLogLostData(t *testing.T) {
	srv := netip.MustParseAddrPort("10.77.101.2:9000")
	conn := netip.MustParseAddrPort("10.77.1.2:45874")
	other := netip.MustParseAddrPort("10.77.1.2:45880")
	t0 := time.Unix(1_700_000_000, 0)
	l := &dropLog{segs: []lostSegment{
		{at: t0.Add(10 * time.Millisecond), src: srv, dst: conn, payload: 1420},
		{at: t0.Add(50 * time.Millisecond), src: srv, dst: other, payload: 0}, // a pure ACK
	}}
	cases := []struct {
		name     string
		dst      netip.AddrPort
		from, to time.Duration
		want     bool
	}{
		{"data segment in flight", conn, 5 * time.Millisecond, 20 * time.Millisecond, true},
		{"at the request's end", conn, 0, 10 * time.Millisecond, true},
		{"before the request", conn, 11 * time.Millisecond, 30 * time.Millisecond, false},
		{"another connection", other, 0, 30 * time.Millisecond, false},
		{"only an ACK lost", other, 40 * time.Millisecond, 60 * time.Millisecond, false},
	}
	for _, c := range cases {
		if got := l.lostData(srv, c.dst, t0.Add(c.from), t0.Add(c.to)); got != c.want {
			t.Errorf("%s: lostData = %v, want %v", c.name, got, c.want)
		}
	}
	if !l.complete() {
		t.Error("a log with no error and nothing unlogged is complete")
	}
	l.unlogged = 1
	if l.complete() {
		t.Error("a log the kernel could not write to is incomplete")
	}
}
