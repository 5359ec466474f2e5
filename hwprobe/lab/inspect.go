package lab

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/bufscope/bufscope/capture"
	"github.com/bufscope/bufscope/decode"
)

// TraceSummary counts what a lab trace holds, for the lab's own checks:
// which events came from which buffer, and which requests the trace saw
// start. It is no diagnosis.
type TraceSummary struct {
	Packets int
	// Events counts records by "node/buffer/event": host events by their
	// buffer and event names; router reports as
	// "r1/switch-egress-queue/drop|queuing|hop".
	Events map[string]int
	// RequestStarts holds the RPC IDs of request messages whose start a
	// host reported: host events whose inner packet carries the tag
	// (message-start events, and threshold events raised by that segment).
	RequestStarts map[uint64]bool
	// WireRequests holds the RPC IDs of tagged request segments seen in
	// the mirrored data plane.
	WireRequests map[uint64]bool
	// RouterDropReasons counts router drop reports by the drop reason
	// they carry (the kernel's reason, low 8 bits): a queue overflow is
	// QDISC_DROP, a packet the lossy link discarded is a TC drop.
	RouterDropReasons map[uint32]int
}

// Keys lists the event keys in order.
func (s *TraceSummary) Keys() []string {
	var k []string
	for key := range s.Events {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// Inspect reads a lab trace; names maps node IDs to node names (from the
// truth file's topology).
func Inspect(path string, names map[uint32]string) (*TraceSummary, error) {
	rr, err := decode.OpenRecords(path, capture.ReaderOptions{}, decode.DecoderOptions{})
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	s := &TraceSummary{Events: map[string]int{}, RequestStarts: map[uint64]bool{}, WireRequests: map[uint64]bool{}, RouterDropReasons: map[uint32]int{}}
	for {
		_, recs, err := rr.NextPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return s, err
		}
		s.Packets++
		for i := range recs {
			r := &recs[i]
			node := names[r.Node]
			if node == "" {
				node = fmt.Sprint(r.Node)
			}
			switch r.Kind {
			case decode.RecordPacket:
				if r.HasTag && r.Tag.Kind == decode.MessageRequest {
					s.WireRequests[r.Tag.RPCID] = true
				}
			case decode.RecordHostEvent:
				s.Events[node+"/"+r.Buffer.String()+"/"+r.Event.String()]++
				// A queuing event raised by a tagged segment carries the
				// tag too, and the monitor sends it instead of the
				// message-start event for that segment.
				if r.HasTag && r.Tag.Kind == decode.MessageRequest {
					s.RequestStarts[r.Tag.RPCID] = true
				}
			case decode.RecordDrop:
				s.Events[node+"/switch-egress-queue/drop"]++
				s.RouterDropReasons[r.DropReason]++
			case decode.RecordQueue:
				s.Events[node+"/switch-egress-queue/queuing"]++
			case decode.RecordHop:
				s.Events[node+"/switch-egress-queue/hop"]++
			}
		}
	}
	return s, nil
}
