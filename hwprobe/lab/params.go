package lab

import (
	"cmp"
	"fmt"
	"time"
)

// Sizes of the workload's messages (see workload.go): a 32-byte header,
// and at most 64 MiB in all.
const (
	headerLen = 32
	maxMsg    = 64 << 20
)

// Params are the knobs of a lab run; every one is a flag of
// `bufscope lab run`, so new variants of a fault need no code. Zero fields
// take the catalog entry's defaults (Fault.Defaults).
type Params struct {
	Clients  int           `json:"clients,omitempty"`
	Servers  int           `json:"servers,omitempty"`
	Duration time.Duration `json:"duration,omitempty"` // workload length

	// Workload.
	Mode        string  `json:"mode,omitempty"`        // closed | open | fanout
	Rate        float64 `json:"rate,omitempty"`        // arrivals per second per client (open, fanout)
	Concurrency int     `json:"concurrency,omitempty"` // connections per client and server
	ReqBytes    int     `json:"req_bytes,omitempty"`
	RespBytes   int     `json:"resp_bytes,omitempty"`

	// Bottleneck: the router's egress queue towards the fault's victim,
	// a tbf shaper with a byte-limited FIFO.
	LinkRate   string `json:"link_rate,omitempty"`   // tc rate, e.g. 20mbit
	QueueBytes int    `json:"queue_bytes,omitempty"` // bfifo limit inside the shaper

	// When the fault acts, relative to the workload's start.
	FaultAt  time.Duration `json:"fault_at,omitempty"`
	FaultFor time.Duration `json:"fault_for,omitempty"`

	LossPercent float64       `json:"loss_percent,omitempty"` // lossy-link
	AppDelay    time.Duration `json:"app_delay,omitempty"`    // slow-app
	ReadPause   time.Duration `json:"read_pause,omitempty"`   // slow-reader: sleep before each request body
	RcvBuf      int           `json:"rcvbuf,omitempty"`       // slow-reader: server SO_RCVBUF
	SndBuf      int           `json:"sndbuf,omitempty"`       // small-sndbuf: client SO_SNDBUF
	HostRate    string        `json:"host_rate,omitempty"`    // host-qdisc: tbf rate on the client
	MTU         int           `json:"mtu,omitempty"`          // of every data link and the mirror

	SLO  time.Duration `json:"slo,omitempty"`
	Seed uint64        `json:"seed,omitempty"`
}

// merge returns p with its zero fields taken from d.
func (p Params) merge(d Params) Params {
	p.Clients = cmp.Or(p.Clients, d.Clients)
	p.Servers = cmp.Or(p.Servers, d.Servers)
	p.Duration = cmp.Or(p.Duration, d.Duration)
	p.Mode = cmp.Or(p.Mode, d.Mode)
	p.Rate = cmp.Or(p.Rate, d.Rate)
	p.Concurrency = cmp.Or(p.Concurrency, d.Concurrency)
	p.ReqBytes = cmp.Or(p.ReqBytes, d.ReqBytes)
	p.RespBytes = cmp.Or(p.RespBytes, d.RespBytes)
	p.LinkRate = cmp.Or(p.LinkRate, d.LinkRate)
	p.QueueBytes = cmp.Or(p.QueueBytes, d.QueueBytes)
	p.FaultAt = cmp.Or(p.FaultAt, d.FaultAt)
	p.FaultFor = cmp.Or(p.FaultFor, d.FaultFor)
	p.LossPercent = cmp.Or(p.LossPercent, d.LossPercent)
	p.AppDelay = cmp.Or(p.AppDelay, d.AppDelay)
	p.ReadPause = cmp.Or(p.ReadPause, d.ReadPause)
	p.RcvBuf = cmp.Or(p.RcvBuf, d.RcvBuf)
	p.SndBuf = cmp.Or(p.SndBuf, d.SndBuf)
	p.HostRate = cmp.Or(p.HostRate, d.HostRate)
	p.MTU = cmp.Or(p.MTU, d.MTU)
	p.SLO = cmp.Or(p.SLO, d.SLO)
	p.Seed = cmp.Or(p.Seed, d.Seed)
	return p
}

// check validates the merged parameters; errors name the flag.
func (p Params) check() error {
	switch {
	case p.Duration < 500*time.Millisecond || p.Duration > time.Hour:
		return fmt.Errorf("--duration %s: use 500ms to 1h", p.Duration)
	case p.Concurrency < 1 || p.Concurrency > 256:
		return fmt.Errorf("--concurrency %d: use 1 to 256", p.Concurrency)
	case p.ReqBytes < headerLen || p.ReqBytes > maxMsg:
		return fmt.Errorf("--req-bytes %d: use %d to %d", p.ReqBytes, headerLen, maxMsg)
	case p.RespBytes < headerLen || p.RespBytes > maxMsg:
		return fmt.Errorf("--resp-bytes %d: use %d to %d", p.RespBytes, headerLen, maxMsg)
	case p.Mode != "closed" && p.Mode != "open" && p.Mode != "fanout":
		return fmt.Errorf("--mode %q: want closed, open or fanout", p.Mode)
	case p.Mode != "closed" && p.Rate <= 0:
		return fmt.Errorf("--rate %g: must be positive in %s mode", p.Rate, p.Mode)
	case p.LossPercent < 0 || p.LossPercent > 50:
		return fmt.Errorf("--loss %g: use 0 to 50 (percent)", p.LossPercent)
	case p.QueueBytes < 0:
		return fmt.Errorf("--queue-bytes %d: must not be negative", p.QueueBytes)
	case p.FaultAt < 0 || p.FaultFor < 0:
		return fmt.Errorf("--fault-at/--fault-for: must not be negative")
	case p.MTU != 0 && (p.MTU < 576 || p.MTU > 65535):
		// 65535 is the largest MTU a veth takes.
		return fmt.Errorf("--mtu %d: use 576 to 65535 (bytes)", p.MTU)
	case p.SLO <= 0:
		return fmt.Errorf("--slo %s: must be positive", p.SLO)
	}
	return nil
}
