package decode

import (
	"errors"
	"testing"
)

// tagVector is a request tag written by hand from docs/wire-format.md §1:
//
//	fd 1c bf 5c   kind 253, length 28, ExID 0xBF5C
//	11 80         Ver 1, MKind 1 (request), Flags 0x80 (R)
//	01 02 03 04 05 06 07 08   RPC ID
//	a1 a2 a3 a4 a5 a6 a7 a8   Trace ID
//	00 01 00 00   message length 65536
//	00 00         reserved
var tagVector = []byte{
	0xfd, 0x1c, 0xbf, 0x5c,
	0x11, 0x80,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
	0x00, 0x01, 0x00, 0x00,
	0x00, 0x00,
}

var tagVectorWant = RequestTag{
	Version: 1, Kind: MessageRequest, Flags: TagFlagRetransmit,
	RPCID: 0x0102030405060708, TraceID: 0xa1a2a3a4a5a6a7a8, MessageLength: 65536,
}

func TestRequestTagRoundTrip(t *testing.T) {
	for _, in := range [][]byte{tagVector, tagVector[2:]} {
		got, err := ParseRequestTag(in)
		if err != nil {
			t.Fatalf("ParseRequestTag(% x): %v", in, err)
		}
		if got != tagVectorWant {
			t.Fatalf("ParseRequestTag = %+v, want %+v", got, tagVectorWant)
		}
	}
	out := tagVectorWant.AppendOption(nil)
	if string(out) != string(tagVector) {
		t.Fatalf("AppendOption =\n% x\nwant\n% x", out, tagVector)
	}
}

func TestRequestTagErrors(t *testing.T) {
	other := append([]byte(nil), tagVector...)
	other[2], other[3] = 0x12, 0x34
	if _, err := ParseRequestTag(other); !errors.Is(err, ErrNotTag) {
		t.Fatalf("other exid: err = %v, want ErrNotTag", err)
	}
	badVer := append([]byte(nil), tagVector...)
	badVer[4] = 0x21
	if _, err := ParseRequestTag(badVer); err == nil || errors.Is(err, ErrNotTag) {
		t.Fatalf("version 2: err = %v, want a version error", err)
	}
	badKind := append([]byte(nil), tagVector...)
	badKind[4] = 0x13
	if _, err := ParseRequestTag(badKind); err == nil {
		t.Fatal("message kind 3 accepted")
	}
	for n := 0; n < len(tagVector); n++ {
		if _, err := ParseRequestTag(tagVector[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
}

func TestRequestTagAppendNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { _ = tagVectorWant.AppendOption(buf[:0]) }); n != 0 {
		t.Fatalf("AppendOption allocates %v times", n)
	}
}
