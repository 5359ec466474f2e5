package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Request tag constants (docs/wire-format.md §1).
const (
	// TagOptionKind is the TCP option kind of the request tag: the RFC 4727
	// experimental kind that RFC 6994 shares out by ExID.
	TagOptionKind = 253
	// TagExID is the RFC 6994 experiment identifier that marks a bufscope tag.
	TagExID = 0xBF5C
	// TagOptionLen is the length of the whole option, kind and length bytes
	// included.
	TagOptionLen = 28
	// TagVersion is the only tag layout version this package writes and reads.
	TagVersion = 1
)

// MessageKind says whether a tagged RPC message is the request or the response.
type MessageKind uint8

// Message kinds (the MKind nibble).
const (
	MessageRequest  MessageKind = 1
	MessageResponse MessageKind = 2
)

// String returns "request", "response" or "kind(N)".
func (k MessageKind) String() string {
	switch k {
	case MessageRequest:
		return "request"
	case MessageResponse:
		return "response"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// TagFlagRetransmit is flag bit 0 (0x80): the sender knew this was a
// retransmission.
const TagFlagRetransmit = 0x80

// RequestTag is the decoded request tag option. It is a plain value and owns
// no memory.
type RequestTag struct {
	Version       uint8
	Kind          MessageKind
	Flags         uint8
	RPCID         uint64
	TraceID       uint64
	MessageLength uint32
}

// ErrNotTag is wrapped by ParseRequestTag when the option is a kind-253
// option of some other experiment (different ExID). Callers treat such an
// option as opaque rather than as a broken tag.
var ErrNotTag = errors.New("not a bufscope request tag")

// AppendOption appends the complete 28-byte option (kind, length, ExID, body)
// to dst and returns the extended slice. It allocates only when dst lacks
// capacity. The fields are written as they are: the caller sets Version to
// TagVersion.
func (t RequestTag) AppendOption(dst []byte) []byte {
	var b [TagOptionLen]byte
	b[0] = TagOptionKind
	b[1] = TagOptionLen
	binary.BigEndian.PutUint16(b[2:], TagExID)
	b[4] = t.Version<<4 | uint8(t.Kind)&0x0f
	b[5] = t.Flags
	binary.BigEndian.PutUint64(b[6:], t.RPCID)
	binary.BigEndian.PutUint64(b[14:], t.TraceID)
	binary.BigEndian.PutUint32(b[22:], t.MessageLength)
	// b[26:28] reserved, zero.
	return append(dst, b[:]...)
}

// ParseRequestTag decodes a request tag. It accepts either the whole option
// (28 bytes starting with kind 253 and length 28) or the option data as
// gopacket's layers.TCPOption.OptionData holds it (26 bytes starting at the
// ExID). Options with another ExID return an error wrapping ErrNotTag; a tag
// with our ExID but a bad length, version or message kind returns a plain
// error naming the offending byte offset (relative to the option kind byte).
// The result copies everything it needs; opt is not retained.
func ParseRequestTag(opt []byte) (RequestTag, error) {
	if len(opt) >= 2 && opt[0] == TagOptionKind && opt[1] == TagOptionLen && len(opt) == TagOptionLen {
		opt = opt[2:]
	}
	if len(opt) < 2 {
		return RequestTag{}, fmt.Errorf("tcp option 253: %d bytes of data, need at least the 2-byte exid", len(opt))
	}
	if exid := binary.BigEndian.Uint16(opt); exid != TagExID {
		return RequestTag{}, fmt.Errorf("tcp option 253 exid %#04x: %w", exid, ErrNotTag)
	}
	if len(opt) != TagOptionLen-2 {
		return RequestTag{}, fmt.Errorf("request tag: option length %d, want %d (check the tagger's option length)", len(opt)+2, TagOptionLen)
	}
	t := RequestTag{
		Version:       opt[2] >> 4,
		Kind:          MessageKind(opt[2] & 0x0f),
		Flags:         opt[3],
		RPCID:         binary.BigEndian.Uint64(opt[4:]),
		TraceID:       binary.BigEndian.Uint64(opt[12:]),
		MessageLength: binary.BigEndian.Uint32(opt[20:]),
	}
	if t.Version != TagVersion {
		return t, fmt.Errorf("request tag at offset 4: version %d, this build reads version %d", t.Version, TagVersion)
	}
	if t.Kind != MessageRequest && t.Kind != MessageResponse {
		return t, fmt.Errorf("request tag at offset 4: message kind %d is neither 1 (request) nor 2 (response)", t.Kind)
	}
	return t, nil
}
