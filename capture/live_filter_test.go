package capture

import (
	"errors"
	"os/exec"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
)

func TestParseDDD(t *testing.T) {
	// What `tcpdump -ddd -i lo ip` prints: load the EtherType, compare with
	// 0x0800, return 262144 or 0.
	out := []byte("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n")
	want := []bpf.RawInstruction{
		{Op: 0x28, K: 12},
		{Op: 0x15, Jt: 0, Jf: 1, K: 2048},
		{Op: 0x06, K: 262144},
		{Op: 0x06, K: 0},
	}
	got, err := parseDDD(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d instructions, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("instruction %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseDDDRejectsBadOutput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"zero count":    "0\n",
		"short":         "2\n40 0 0 12\n",
		"long":          "1\n6 0 0 0\n6 0 0 0\n",
		"three fields":  "1\n6 0 0\n",
		"not a number":  "1\n6 x 0 0\n",
		"jump too wide": "1\n21 256 0 0\n",
		"k too wide":    "1\n6 0 0 4294967296\n",
		"huge count":    "99999\n",
		"negative":      "-1\n",
	} {
		if _, err := parseDDD([]byte(in)); err == nil {
			t.Errorf("%s: parseDDD(%q) succeeded", name, in)
		}
	}
}

// frame builds an Ethernet/IPv4 packet with the given transport layer and
// payload size.
func frame(t *testing.T, l4 gopacket.SerializableLayer, proto layers.IPProtocol, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: []byte{10, 0, 0, 1}, DstIP: []byte{10, 0, 0, 2}}
	if n, ok := l4.(interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}); ok {
		_ = n.SetNetworkLayerForChecksum(ip)
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, l4, gopacket.Payload(make([]byte, payload)))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnapProgramInVM compiles real expressions with tcpdump, chains them
// and runs the result in x/net/bpf's interpreter: the number it returns is
// how many bytes the kernel would keep.
func TestSnapProgramInVM(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed: it compiles capture filters (apt-get install tcpdump)")
	}
	filter, err := compileExpr("", "lo", "EN10MB", "udp or tcp")
	if err != nil {
		t.Fatal(err)
	}
	keep, err := compileExpr("", "lo", "EN10MB", "udp dst port 32766")
	if err != nil {
		t.Fatal(err)
	}
	report := frame(t, &layers.UDP{SrcPort: 40000, DstPort: 32766}, layers.IPProtocolUDP, 400)
	dns := frame(t, &layers.UDP{SrcPort: 40000, DstPort: 53}, layers.IPProtocolUDP, 400)
	bulk := frame(t, &layers.TCP{SrcPort: 40000, DstPort: 80, ACK: true, Window: 100}, layers.IPProtocolTCP, 1400)
	icmp := frame(t, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, layers.IPProtocolICMPv4, 56)

	cases := []struct {
		name         string
		filter, keep []bpf.RawInstruction
		snap         int
		pkt          []byte
		want         int
	}{
		{"report kept whole", filter, keep, 192, report, len(report)},
		{"other udp truncated", filter, keep, 192, dns, 192},
		{"tcp truncated", filter, keep, 192, bulk, 192},
		{"icmp rejected by filter", filter, keep, 192, icmp, 0},
		{"no filter: icmp truncated", nil, keep, 64, icmp, 64},
		{"no keep program: report truncated", filter, nil, 192, report, 192},
		{"snap off keeps all", filter, keep, -1, bulk, len(bulk)},
		{"short packet shorter than snap", nil, nil, 192, icmp, len(icmp)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := snapProgram(c.filter, c.keep, c.snap)
			if err != nil {
				t.Fatal(err)
			}
			insns, ok := bpf.Disassemble(raw)
			if !ok {
				t.Fatalf("program does not disassemble: %v", insns)
			}
			vm, err := bpf.NewVM(insns)
			if err != nil {
				t.Fatal(err)
			}
			got, err := vm.Run(c.pkt)
			if err != nil {
				t.Fatal(err)
			}
			// The kernel keeps min(return value, packet length); the VM
			// returns the filter's value as is.
			if kept := min(got, len(c.pkt)); kept != c.want {
				t.Errorf("kept %d bytes of %d (filter returned %d), want %d", kept, len(c.pkt), got, c.want)
			}
		})
	}
}

func TestSnapProgramRejectsReturnA(t *testing.T) {
	retA := []bpf.RawInstruction{{Op: opRetA}}
	if _, err := snapProgram(retA, nil, 192); err == nil {
		t.Error("filter returning A accepted")
	}
	if _, err := snapProgram(nil, retA, 192); err == nil {
		t.Error("keep program returning A accepted")
	}
}

func TestCompileExprReportsSyntaxError(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed")
	}
	_, err := compileExpr("", "lo", "EN10MB", "udp port")
	if err == nil {
		t.Fatal("bad expression compiled")
	}
	if !errors.Is(err, ErrBadFilter) {
		t.Errorf("%v does not wrap ErrBadFilter", err)
	}
	if want := `filter "udp port" on lo: bad capture filter: can't parse filter expression: syntax error`; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if _, err := compileExpr("/nonexistent/tcpdump", "lo", "EN10MB", "udp"); err == nil {
		t.Error("missing tcpdump binary not reported")
	}
}

func FuzzParseDDD(f *testing.F) {
	f.Add([]byte("4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n"))
	f.Add([]byte("1\n6 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		prog, err := parseDDD(b)
		if err == nil && len(prog) == 0 {
			t.Fatal("empty program without error")
		}
	})
}
