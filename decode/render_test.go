package decode

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// renderFixtures are packets whose rendering is pinned by golden files.
func renderFixtures(t *testing.T) map[string][]byte {
	udp := func(payload []byte) []byte {
		eth, ip := ethIPv4(layers.IPProtocolUDP, 0)
		u := &layers.UDP{SrcPort: 7, DstPort: DefaultReportPort}
		_ = u.SetNetworkLayerForChecksum(ip)
		return mustSerialize(t, eth, ip, u, gopacket.Payload(payload))
	}
	return map[string][]byte{
		"tagged-tcp":      taggedTCPFrame(t),
		"int-report":      intReportFrame(t, 3),
		"host-report":     hostReportFrame(t),
		"report-v2-multi": udp(reportV2Multi),
		"report-v1":       udp(reportV1Vector),
		"report-v0.5":     udp(reportV05Drop),
	}
}

func TestRenderGolden(t *testing.T) {
	for name, frame := range renderFixtures(t) {
		t.Run(name, func(t *testing.T) {
			d := NewDecoder(DecoderOptions{})
			var out bytes.Buffer
			out.WriteString("summary: " + d.Summary(layers.LinkTypeEthernet, frame) + "\n\n")
			if err := d.WriteTree(&out, layers.LinkTypeEthernet, frame); err != nil {
				t.Fatal(err)
			}
			out.WriteString("\n")
			pj := d.PacketJSON(1, time.Unix(1700000000, 123).UTC(), 0, layers.LinkTypeEthernet, frame, len(frame))
			b, err := json.MarshalIndent(pj, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
			out.WriteString("\n")
			golden := filepath.Join("testdata", "golden", name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRenderGolden -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("rendering changed; diff against %s:\n%s", golden, out.String())
			}
		})
	}
}

// The JSON form must parse back and carry the schema tag.
func TestPacketJSONSchema(t *testing.T) {
	d := NewDecoder(DecoderOptions{})
	frame := taggedTCPFrame(t)
	b, err := json.Marshal(d.PacketJSON(7, time.Unix(1, 0), 2, layers.LinkTypeEthernet, frame, len(frame)))
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	recs := back["records"].([]any)
	tag := recs[0].(map[string]any)["tag"].(map[string]any)
	if back["schema"] != JSONSchema || back["frame"].(float64) != 7 || back["interface"].(float64) != 2 ||
		tag["rpc_id"] != "1122334455667788" || tag["kind"] != "request" {
		t.Fatalf("json %s", b)
	}
}

func TestSummaryOpaqueAndEmpty(t *testing.T) {
	if s := SummaryOf(nil); s != "no IP packet" {
		t.Fatalf("empty: %q", s)
	}
	r := []Record{{Kind: RecordOpaque, Source: SourceINT, Reason: reasonINTVersion}}
	if s := SummaryOf(r); s != "int not decoded: "+reasonINTVersion {
		t.Fatalf("opaque: %q", s)
	}
}
