package monitor

import (
	"testing"
	"unsafe"
)

// The Go decoder walks the record by hand; it must agree with the C layout
// bpf2go saw.
func TestEventSizeMatchesObject(t *testing.T) {
	if got := int(unsafe.Sizeof(monitorEvent{})); got != eventSize {
		t.Fatalf("sizeof(struct event) = %d, decoder expects %d", got, eventSize)
	}
	var e monitorEvent
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"since_ns", unsafe.Offsetof(e.SinceNs), 16},
		{"netns", unsafe.Offsetof(e.Netns), 24},
		{"queue_id", unsafe.Offsetof(e.QueueId), 72},
		{"buffer", unsafe.Offsetof(e.Buffer), 84},
		{"saddr", unsafe.Offsetof(e.Saddr), 88},
		{"qdisc_kind", unsafe.Offsetof(e.QdiscKind), 120},
		{"hdr", unsafe.Offsetof(e.Hdr), 128},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("offset of %s = %d, decoder expects %d", c.name, c.got, c.want)
		}
	}
}
