package analyze

import "github.com/bufscope/bufscope/decode"

// SchemaVersion names the JSON layout of Result (docs/analyze-json.md).
const SchemaVersion = "bufscope.analyze/v1"

// Result is everything an analysis found. It owns its data; it is not
// modified after Finish returns and may be read from several goroutines.
type Result struct {
	Schema  string     `json:"schema"`
	Inputs  []string   `json:"inputs,omitempty"`
	SLO     int64      `json:"slo_ns"`
	Stats   Stats      `json:"stats"`
	RLAs    []*Request `json:"rlas"`
	Summary []Cause    `json:"summary"`
}

// Request is an end-user request (all RPCs sharing a trace ID, or one RPC
// when the trace ID is 0) flagged as a request latency anomaly.
type Request struct {
	ID        string     `json:"id"`       // trace ID, or RPC ID when untraced
	TraceID   string     `json:"trace_id"` // "" when untraced
	Start     int64      `json:"start_ns"`
	End       int64      `json:"end_ns"`
	Latency   int64      `json:"latency_ns"`
	Excess    int64      `json:"excess_ns"` // latency above what was expected
	Rules     []Rule     `json:"rules"`
	RPCs      []*RPC     `json:"rpcs"`
	Critical  string     `json:"critical_rpc"` // RPC ID on the critical path with the most excess
	Diagnosis *Diagnosis `json:"diagnosis"`
}

// Rule is one reason a request was flagged.
type Rule struct {
	Name      string `json:"name"`         // "slo", "baseline-mad", "baseline-pNN"
	RPC       string `json:"rpc"`          // the RPC the rule fired on ("" for the request)
	Threshold int64  `json:"threshold_ns"` // latency above which the rule fires
	Detail    string `json:"detail"`
}

// RPC is one request/response exchange with its timing and chain.
type RPC struct {
	ID           string        `json:"rpc_id"`
	TraceID      string        `json:"trace_id"`
	Client       string        `json:"client"`
	Server       string        `json:"server"`
	Class        string        `json:"class"`
	Start        int64         `json:"start_ns"` // client's first request byte out
	End          int64         `json:"end_ns"`   // client's last response byte in
	Latency      int64         `json:"latency_ns"`
	ServerTime   int64         `json:"server_time_ns"` // last request byte in to first response byte out
	Baseline     int64         `json:"baseline_ns"`    // median latency of the class when judged
	Excess       int64         `json:"excess_ns"`
	Incomplete   bool          `json:"incomplete"` // the response never completed in the trace
	Request      MessageTiming `json:"request"`
	Response     MessageTiming `json:"response"`
	Chain        []Element     `json:"chain"`
	Effects      []Consequence `json:"consequences"`
	rules        []Rule
	reqFlow      decode.Flow
	serverNode   uint32
	hol          int64 // server time spent behind the previous response still in transit
	id, trace    uint64
	cls          classKey
	coarseK      classKey // the server endpoint alone, used until the sized class has a baseline
	judgedCoarse bool
	// The classes of cls and coarseK, set when a complete RPC was added
	// to them (classes are never removed, so the map would give the
	// same): judging and its readiness check run for every RPC.
	clsC, coarseC *class
	// The RPC's messages, from which name lays out Chain: only reported
	// RPCs need one. They stay valid while the RPC is (its trace group
	// owns them, or they are shared and never recycled).
	req, resp *message
}

// MessageTiming is one message's timing.
type MessageTiming struct {
	Bytes       uint32 `json:"bytes"`
	Start       int64  `json:"start_ns"` // first byte observed entering the path
	End         int64  `json:"end_ns"`   // last byte last observed
	Inferred    bool   `json:"inferred"` // first segment not captured: attributed by range continuity
	Retransmits int    `json:"retransmits"`
	// SpuriousRetransmits counts the retransmitted segments the receiver
	// reported receiving twice (D-SACK): their originals were late, not
	// lost. (Retransmits counts sightings: every capture point that saw a
	// retransmission counts it.)
	SpuriousRetransmits int   `json:"spurious_retransmits,omitempty"`
	RetransmitWait      int64 `json:"retransmit_wait_ns"`
	Drops               int   `json:"drops_reported"`

	lossless bool // every retransmitted segment was reported a duplicate
}

// lost says whether the message lost segments: some were dropped, or
// retransmitted without the receiver reporting them received twice.
func (t *MessageTiming) lost() bool {
	return t.Drops > 0 || t.Retransmits > 0 && !t.lossless
}

// Element is one link of a request's chain with the time it held the
// request, what that element normally holds, and the excess.
type Element struct {
	Dir      string `json:"dir"` // "request", "server", "response"
	Kind     string `json:"kind"`
	Buffer   string `json:"buffer"` // node/kind[:port][/qN]
	NodeID   uint32 `json:"node_id"`
	Port     uint32 `json:"port,omitempty"`
	Queue    uint8  `json:"queue,omitempty"`
	Start    int64  `json:"start_ns,omitempty"`
	End      int64  `json:"end_ns,omitempty"`
	Time     int64  `json:"time_ns"`
	Baseline int64  `json:"baseline_ns"`
	Excess   int64  `json:"excess_ns"`
	Reports  int    `json:"reports,omitempty"`
	// Estimate is set for a queue the trace did not report the message at
	// (thinned message starts): Time is the residence the queue's reports
	// around that moment show.
	Estimate *Estimate `json:"estimate,omitempty"`
	id       BufferID
	ev       *Evidence
}

// Consequence is a symptom (retransmission timeout, duplicate ACKs, window
// shrink) linked to the event that caused it. Never a root cause.
type Consequence struct {
	Kind     string     `json:"kind"`
	Dir      string     `json:"dir"`
	Count    int        `json:"count"`
	Wait     int64      `json:"wait_ns,omitempty"`
	CausedBy int        `json:"caused_by_event,omitempty"`
	Evidence []Evidence `json:"evidence"`
}

// Diagnosis names the root cause of an RLA.
type Diagnosis struct {
	Buffer     string     `json:"buffer"`
	Kind       string     `json:"kind"`
	NodeID     uint32     `json:"node_id"`
	Port       uint32     `json:"port,omitempty"`
	Queue      uint8      `json:"queue,omitempty"`
	Event      string     `json:"event"`
	EventID    int        `json:"event_id,omitempty"`
	Start      int64      `json:"start_ns,omitempty"`
	End        int64      `json:"end_ns,omitempty"`
	Magnitude  int64      `json:"magnitude,omitempty"` // ns of residence/stall, or drops
	Explained  int64      `json:"explained_ns"`
	Confidence float64    `json:"confidence"` // share of the excess this element holds
	Evidence   []Evidence `json:"evidence"`
	Culprits   []Culprit  `json:"culprits"`
	Pattern    string     `json:"pattern,omitempty"`
	// Estimated: the cause's time was estimated (Element.Estimate), and
	// Confidence is lowered by how far the reports it came from were.
	Estimated bool `json:"estimated,omitempty"`
}

// Culprit is another flow present in the root-cause buffer during the event.
type Culprit struct {
	Flow     string   `json:"flow"`
	Bytes    uint64   `json:"bytes"`
	Share    float64  `json:"share"`
	Self     bool     `json:"self"` // the victim's own connection
	Requests []string `json:"rpcs,omitempty"`
}

// Cause is one line of the summary: RLAs grouped by root cause.
type Cause struct {
	Buffer string `json:"buffer"`
	Event  string `json:"event"`
	RLAs   int    `json:"rlas"`
	Excess int64  `json:"excess_ns"`
}

func summarize(rlas []*Request) []Cause {
	idx := map[[2]string]int{}
	var out []Cause
	for _, r := range rlas {
		k := [2]string{"-", "-"}
		if r.Diagnosis != nil {
			k = [2]string{r.Diagnosis.Buffer, r.Diagnosis.Event}
		}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Cause{Buffer: k[0], Event: k[1]})
		}
		out[i].RLAs++
		out[i].Excess += r.Excess
	}
	// Most RLAs first, then most excess.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].RLAs > out[j-1].RLAs || out[j].RLAs == out[j-1].RLAs && out[j].Excess > out[j-1].Excess); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
