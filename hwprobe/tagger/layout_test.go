//go:build linux

package tagger

import (
	"testing"
	"unsafe"

	"github.com/bufscope/bufscope/hwprobe/rpctag"
)

// rpctag writes the tags map without importing this package; its Key and
// Body must match what the compiled program declares.
func TestTagsMapLayoutMatchesRPCTag(t *testing.T) {
	spec, err := loadTagger()
	if err != nil {
		t.Fatal(err)
	}
	m := spec.Maps["tags"]
	if m.KeySize != uint32(unsafe.Sizeof(rpctag.Key{})) || m.ValueSize != rpctag.BodyLen {
		t.Fatalf("tags map key/value %d/%d bytes, rpctag has %d/%d", m.KeySize, m.ValueSize, unsafe.Sizeof(rpctag.Key{}), rpctag.BodyLen)
	}
	var gk taggerTagKey
	var rk rpctag.Key
	if unsafe.Offsetof(gk.Cookie) != unsafe.Offsetof(rk.Cookie) || unsafe.Offsetof(gk.Offset) != unsafe.Offsetof(rk.Offset) {
		t.Errorf("key field offsets differ: BPF cookie %d offset %d, rpctag %d %d",
			unsafe.Offsetof(gk.Cookie), unsafe.Offsetof(gk.Offset), unsafe.Offsetof(rk.Cookie), unsafe.Offsetof(rk.Offset))
	}
	var exid uint16
	if err := spec.Variables["tag_exid"].Get(&exid); err != nil || exid != DefaultExID {
		t.Errorf("compiled default ExID %#x (%v), want %#x", exid, err, DefaultExID)
	}
}
