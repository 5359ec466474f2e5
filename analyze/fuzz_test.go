package analyze

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/bufscope/bufscope/decode"
)

// recordsFrom turns fuzz bytes into a time-ordered Record stream over a
// few flows, so that tags, sequence numbers, lengths, reports and drops
// collide in every order the analyzer must survive. 24 bytes per record.
func recordsFrom(b []byte) []decode.Record {
	flows := []decode.Flow{
		flow("10.77.1.2", 40000, "10.77.3.2", 9000), reverse(flow("10.77.1.2", 40000, "10.77.3.2", 9000)),
		flow("10.77.1.3", 40001, "10.77.3.2", 9000), reverse(flow("10.77.1.3", 40001, "10.77.3.2", 9000)),
	}
	var out []decode.Record
	t := t0
	for len(b) >= 24 {
		c := b[:24]
		b = b[24:]
		t += int64(binary.BigEndian.Uint16(c[0:])) * 1000
		r := decode.Record{Time: t, HasFlow: true, Flow: flows[c[2]%4], TCPSeq: binary.BigEndian.Uint32(c[3:]) % 200000,
			PayloadLen: uint32(binary.BigEndian.Uint16(c[7:]) % 3000), TCPFlags: uint16(c[9]), Window: uint16(c[10]) % 4,
			TCPAck: uint32(c[11]), Latency: binary.BigEndian.Uint32(c[12:]) % 100_000_000, Occupancy: uint32(c[16]) << 8}
		switch c[17] % 8 {
		case 0, 1, 2:
			r.Kind = decode.RecordPacket
		case 3:
			r.Kind = decode.RecordHop
		case 4:
			r.Kind = decode.RecordQueue
		case 5:
			r.Kind = decode.RecordDrop
		case 6:
			r.Kind = decode.RecordHostEvent
			r.Buffer, r.Event, r.EventFlags = decode.BufferKind(c[18]%9), decode.EventKind(c[19]%6), uint16(c[20])<<8
			r.Duration = uint32(c[21]) * 1_000_000
		default:
			r.Kind = decode.RecordOpaque
		}
		if r.Kind != decode.RecordPacket {
			r.HasNode, r.Node, r.EgressPort, r.QueueID = true, uint32(c[18]%3)+1, uint32(c[19]%2), c[20]%2
			if c[22]&1 != 0 {
				r.EgressTS = uint64(t - int64(c[22])*1000)
				r.IngressTS = r.EgressTS - uint64(r.Latency)
			}
		}
		if c[23]%3 == 0 {
			r.HasTag = true
			r.Tag = decode.RequestTag{Version: 1, Kind: decode.MessageKind(c[23] % 4), RPCID: uint64(c[21] % 4), TraceID: uint64(c[22] % 2),
				MessageLength: uint32(c[8]) * 100}
		}
		out = append(out, r)
	}
	return out
}

func FuzzFeed(f *testing.F) {
	s := newScenario()
	s.baseline(t0, 3, 1)
	var seed bytes.Buffer
	for _, r := range s.recs[:min(len(s.recs), 40)] {
		var c [24]byte
		binary.BigEndian.PutUint16(c[0:], 50)
		binary.BigEndian.PutUint32(c[3:], r.TCPSeq%200000)
		binary.BigEndian.PutUint16(c[7:], uint16(r.PayloadLen))
		c[17] = byte(r.Kind % 8)
		if r.HasTag {
			c[23] = 3 + byte(r.Tag.Kind)
		}
		seed.Write(c[:])
	}
	f.Add(seed.Bytes())
	f.Add(bytes.Repeat([]byte{0, 10, 1, 0, 0, 0, 1, 5, 0xb4, 0x18, 0, 7, 0, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 3}, 8))
	f.Add(thinnedSeed())
	f.Fuzz(func(t *testing.T, b []byte) {
		recs := recordsFrom(b)
		a := New(Options{SLO: time.Millisecond, BaselineMin: 2, Window: time.Second, TraceIdle: 10 * time.Millisecond})
		for i := range recs {
			a.Feed(&recs[i])
			if err := a.keysInSync(); err != nil {
				t.Fatalf("after Record %d: %v", i, err)
			}
		}
		res := a.Finish()
		if res.Stats.Records != int64(len(recs)) {
			t.Fatalf("%d records counted, %d fed", res.Stats.Records, len(recs))
		}
		for _, q := range res.RLAs {
			if q.Latency < 0 || q.End < q.Start || len(q.RPCs) == 0 || len(q.Rules) == 0 {
				t.Fatalf("bad RLA %+v", q)
			}
			if d := q.Diagnosis; d != nil && (d.Confidence < 0 || d.Confidence > 1) {
				t.Fatalf("confidence %v", d.Confidence)
			}
			for _, r := range q.RPCs {
				if r.Latency < 0 || r.ServerTime < 0 {
					t.Fatalf("negative time in %+v", r)
				}
			}
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatal(err)
		}
	})
}

// thinnedSeed is fuzz input whose message starts are sampled (RPC IDs 0
// and 2 only, whose hashes are even) and whose router reports queuing
// and hops without message starts: the estimation of sampled.go runs on
// it (TestThinnedFuzzSeed).
func thinnedSeed() []byte {
	var out []byte
	for i := range 40 {
		id := byte(2 * (i % 2))
		recs := [][24]byte{
			// host qdisc message start (node 1), tagged
			{0, 20, byte(i % 4), 0, 0, byte(i), 0, 0, 32, 0, 0, 0, 0, 0, 0x13, 0x88, 0, 6, 3, 4, 0, id, 1, 9},
			// the tagged segment captured, then its response
			{0, 30, byte(i % 4), 0, 0, byte(i), 0, 1, 44, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, id, 0, 9},
			{0, 60, byte(i%4) | 1, 0, 0, byte(i), 0, 5, 0xa0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, id, 0, 6},
			// router queue report (node 2), residence 3 ms
			{0, 10, byte(i%4) | 1, 0, 0, byte(i), 0, 5, 0xa0, 0x18, 0, 0, 0, 0x2d, 0xc6, 0xc0, 40, 4, 1, 1, 0, 0, 1, 1},
		}
		for _, c := range recs {
			out = append(out, c[:]...)
		}
	}
	return out
}

// FuzzTopology: the topology document comes from the trace file, so any
// bytes must leave the analyzer usable.
func FuzzTopology(f *testing.F) {
	f.Add(topology)
	f.Add([]byte(`{"hostname":"h","interfaces":[{"point":"h/eth0","addresses":["10.0.0.1/24"]}]}`))
	f.Add([]byte(`{"nodes":[{"name":"x","node_id":1,"addrs":["::1","10.0.0.0/8","bogus"]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a := New(Options{Topology: [][]byte{b}})
		_ = a.nodeName(1)
		_ = a.bufferName(BufferID{Node: 1, Kind: ElemApplication})
	})
}
