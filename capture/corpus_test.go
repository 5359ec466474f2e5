package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusDir finds the shared interop corpus at ../shared/captures relative
// to the module root.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root not found")
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "captures")
	if _, err := os.Stat(c); err != nil {
		t.Skipf("interop corpus %s absent: skipping", c)
	}
	return c
}

// TestCorpusAgainstTshark reads every capture of the interop corpus (pcap
// and pcapng written by other tools) and compares each packet's timestamp
// and lengths with what tshark reports.
func TestCorpusAgainstTshark(t *testing.T) {
	dir := corpusDir(t)
	tshark := needTool(t, "tshark")
	var files []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*", pat))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Skip("no captures in the corpus")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := Open(f, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			pkts, err := readAll(t, r)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(pkts))
			for i, p := range pkts {
				name := r.Interfaces()[p.Interface].Name
				switch {
				case strings.HasSuffix(f, ".pcap"):
					name = "" // tshark has no interface name for pcap
				case name == "":
					name = "unknown" // tshark's word for an IDB without if_name
				}
				got[i] = fmt.Sprintf("%d.%09d\t%d\t%d\t%s", p.Timestamp.Unix(), p.Timestamp.Nanosecond(), p.Length, p.CaptureLength, name)
			}
			compareLines(t, "reader vs tshark", got, tsharkFields(t, tshark, f))
		})
	}
}
