package decode

import (
	"testing"
	"unsafe"
)

// TestRecordLayout pins what the analyzer's reading of Records relies on
// (analyze/run.go, warm): every field a captured data segment fills lies
// in a Record's first two 64-byte cache lines, and a Record stays 256
// bytes, four lines, so that Records in a slice start on line boundaries.
func TestRecordLayout(t *testing.T) {
	var r Record
	const lines = 128
	fields := map[string]uintptr{
		"Time":       unsafe.Offsetof(r.Time) + unsafe.Sizeof(r.Time),
		"Interface":  unsafe.Offsetof(r.Interface) + unsafe.Sizeof(r.Interface),
		"Kind":       unsafe.Offsetof(r.Kind) + unsafe.Sizeof(r.Kind),
		"Source":     unsafe.Offsetof(r.Source) + unsafe.Sizeof(r.Source),
		"HasFlow":    unsafe.Offsetof(r.HasFlow) + unsafe.Sizeof(r.HasFlow),
		"HasTag":     unsafe.Offsetof(r.HasTag) + unsafe.Sizeof(r.HasTag),
		"HasDSACK":   unsafe.Offsetof(r.HasDSACK) + unsafe.Sizeof(r.HasDSACK),
		"DSCP":       unsafe.Offsetof(r.DSCP) + unsafe.Sizeof(r.DSCP),
		"TCPFlags":   unsafe.Offsetof(r.TCPFlags) + unsafe.Sizeof(r.TCPFlags),
		"TCPSeq":     unsafe.Offsetof(r.TCPSeq) + unsafe.Sizeof(r.TCPSeq),
		"TCPAck":     unsafe.Offsetof(r.TCPAck) + unsafe.Sizeof(r.TCPAck),
		"PayloadLen": unsafe.Offsetof(r.PayloadLen) + unsafe.Sizeof(r.PayloadLen),
		"Window":     unsafe.Offsetof(r.Window) + unsafe.Sizeof(r.Window),
		"Flow":       unsafe.Offsetof(r.Flow) + unsafe.Sizeof(r.Flow),
		"DSACKLeft":  unsafe.Offsetof(r.DSACKLeft) + unsafe.Sizeof(r.DSACKLeft),
		"Tag":        unsafe.Offsetof(r.Tag) + unsafe.Sizeof(r.Tag),
	}
	for name, end := range fields {
		if end > lines {
			t.Errorf("Record.%s ends at byte %d, past the first two cache lines (%d bytes)", name, end, lines)
		}
	}
	if n := unsafe.Sizeof(r); n != 256 {
		t.Errorf("a Record is %d bytes, want 256", n)
	}
}
