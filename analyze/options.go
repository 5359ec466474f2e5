package analyze

import "time"

// Options configures an Analyzer. The zero value is usable: zero fields
// take the defaults documented on each field.
type Options struct {
	// SLO flags every request slower than this as an RLA (rule "slo").
	// Zero disables the rule.
	SLO time.Duration
	// BaselineMADs flags an RPC slower than its class median plus this many
	// scaled median absolute deviations (rule "baseline"). Default 6;
	// negative disables the rule.
	BaselineMADs float64
	// BaselineRatio additionally requires the latency to exceed the class
	// median by this factor, so that a class with almost no spread does
	// not flag noise. Default 1.5.
	BaselineRatio float64
	// BaselinePercentile, when in (0, 100), also flags RPCs above this
	// percentile of their class (rule "pNN"). Default 0 (off).
	BaselinePercentile float64
	// BaselineMin is how many RPCs of a class must have completed before
	// the baseline rules apply to it. Default 20.
	BaselineMin int
	// Window is how long (in trace time) completed requests, idle
	// connections, events and byte counts are kept. It bounds memory and
	// must exceed the longest request. Default 10 s.
	Window time.Duration
	// Settle is how long after a response's last byte the analyzer keeps
	// collecting observations of it (later capture points, late reports,
	// retransmissions) before it finalizes the RPC. Default 300 ms: a
	// lost last segment is sent again only when the retransmission timer
	// fires, at least 200 ms later on Linux (TCP_RTO_MIN), and the
	// response ends with that copy, not with the one the capture saw
	// before the loss.
	Settle time.Duration
	// TraceIdle closes an end-user request (trace ID) when none of its
	// RPCs has been active for this long. Default 1 s.
	TraceIdle time.Duration
	// QueueResidence is the residence above which a message-start report
	// counts as queuing evidence on its own. Default 1 ms.
	QueueResidence time.Duration
	// From and To restrict the requests reported to those starting in
	// [From, To); zero leaves a side open.
	From, To time.Time
	// Topology documents (capture.Reader.Topology()) name nodes and
	// addresses. Optional.
	Topology [][]byte
}

func (o Options) withDefaults() Options {
	if o.BaselineMADs == 0 {
		o.BaselineMADs = 6
	}
	if o.BaselineRatio == 0 {
		o.BaselineRatio = 1.5
	}
	if o.BaselineMin == 0 {
		o.BaselineMin = 20
	}
	if o.Window == 0 {
		o.Window = 10 * time.Second
	}
	if o.Settle == 0 {
		o.Settle = 300 * time.Millisecond
	}
	if o.TraceIdle == 0 {
		o.TraceIdle = time.Second
	}
	if o.QueueResidence == 0 {
		o.QueueResidence = time.Millisecond
	}
	return o
}
