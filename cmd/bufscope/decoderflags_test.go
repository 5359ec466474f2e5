package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDecoderFlagsSelectWhatIsTelemetry(t *testing.T) {
	demo := filepath.Join(moduleRoot(t), "fixtures", "demo.trace.zst")
	count := func(args ...string) (tags, reports int) {
		t.Helper()
		out, errOut, code := execute(t, append([]string{"decode", "--json"}, append(args, demo)...)...)
		if code != 0 {
			t.Fatalf("decode %v: exit %d: %s", args, code, errOut)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.Contains(line, `"tag":{`) {
				tags++
			}
			if strings.Contains(line, `"kind":"host-event"`) {
				reports++
			}
		}
		return tags, reports
	}
	tags, reports := count()
	if tags == 0 || reports == 0 {
		t.Fatalf("defaults: %d tagged packets and %d host-event packets; the demo trace has both", tags, reports)
	}
	if got, _ := count("--tag-exid", "0x1234"); got != 0 {
		t.Errorf("--tag-exid 0x1234: %d packets still decode the 0xBF5C tag", got)
	}
	if _, got := count("--report-port", "1"); got != 0 {
		t.Errorf("--report-port 1: %d packets still decode as reports on 32766", got)
	}
	if got, gotReports := count("--report-port", "32766", "--tag-exid", "0xbf5c"); got != tags || gotReports != reports {
		t.Errorf("explicit defaults: %d tags, %d reports; want %d, %d", got, gotReports, tags, reports)
	}
}

func TestDecoderFlagsRejectBadValues(t *testing.T) {
	demo := filepath.Join(moduleRoot(t), "fixtures", "demo.trace.zst")
	for _, tc := range []struct{ flag, value string }{
		{"--tag-exid", "70000"},
		{"--int-dscp", "64"},
		{"--int-port", "0"},
		{"--report-port", "65536"},
	} {
		_, errOut, code := execute(t, "decode", tc.flag, tc.value, demo)
		if code != exitUsage || !strings.Contains(errOut, tc.flag) {
			t.Errorf("%s %s: exit %d, stderr %q; want exit %d naming the flag", tc.flag, tc.value, code, errOut, exitUsage)
		}
	}
}
