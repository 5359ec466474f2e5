//go:build linux

package lab

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Evidence is an event a catalog entry's fault must leave in the trace:
// the lab tests look for it with package decode. Buffer and Event are
// decode.BufferKind and decode.EventKind names; at a router, Event is
// "drop" for a drop report and "queuing" for a queue (Q) report, which
// also carries stalls.
type Evidence struct {
	Node   string
	Buffer string
	Event  string
}

// Fault is one entry of the catalog.
type Fault struct {
	Name     string
	Summary  string
	Defaults Params
	Evidence []Evidence
	setup    func(r *runner) error
}

// base is the workload most entries start from.
var base = Params{Clients: 1, Servers: 1, Duration: 4 * time.Second, Mode: "closed", Rate: 100, Concurrency: 2,
	ReqBytes: 200, RespBytes: 4096, LinkRate: "100mbit", QueueBytes: 200000, SLO: 20 * time.Millisecond, Seed: 1}

func with(f func(*Params)) Params {
	p := base
	f(&p)
	return p
}

// Catalog lists the faults the lab injects, in the order `lab list` prints.
var Catalog = []*Fault{
	{
		Name:     "none",
		Summary:  "no fault: the workload alone (a quiet control, and the overhead benchmark's workload)",
		Defaults: with(func(p *Params) { p.Clients, p.Servers, p.Concurrency, p.ReqBytes, p.RespBytes = 2, 2, 4, 1024, 16384 }),
		Evidence: []Evidence{{"c1", "qdisc", "message-start"}, {"s1", "qdisc", "message-start"}},
		setup:    func(r *runner) error { return nil },
	},
	{
		Name:    "incast",
		Summary: "a frontend calls every server at once (fan-out); their responses meet in the router queue towards the client",
		Defaults: with(func(p *Params) {
			p.Servers, p.Mode, p.Rate, p.RespBytes, p.LinkRate, p.QueueBytes, p.SLO = 6, "fanout", 8, 64<<10, "100mbit", 1000000, 15*time.Millisecond
		}),
		Evidence: []Evidence{{"r1", "switch-egress-queue", "queuing"}},
		setup: func(r *runner) error {
			c := r.topo.ByRole(RoleClient)[0]
			if err := r.shape(c.Name); err != nil {
				return err
			}
			var culprits []string
			for _, s := range r.topo.ByRole(RoleServer) {
				culprits = append(culprits, fmt.Sprintf("%s:%d->%s:0", s.Addrs[0], ServerPort, c.Addrs[0]))
			}
			r.addTruth(r.routerBuffer(c.Name), "queuing", r.window(), culprits, byClient(c.Name), 100*time.Millisecond,
				fmt.Sprintf("%d servers answer %s at once through a %s tbf with a %d-byte FIFO", len(culprits), sizeStr(r.p.RespBytes), r.p.LinkRate, r.p.QueueBytes))
			return nil
		},
	},
	{
		Name:    "overflow",
		Summary: "clients push large requests into a router queue too small for them: tail drops at the router",
		Defaults: with(func(p *Params) {
			p.Clients, p.ReqBytes, p.RespBytes, p.LinkRate, p.QueueBytes = 3, 64<<10, 200, "50mbit", 30000
		}),
		Evidence: []Evidence{{"r1", "switch-egress-queue", "drop"}},
		setup: func(r *runner) error {
			s := r.topo.ByRole(RoleServer)[0]
			if err := r.shape(s.Name); err != nil {
				return err
			}
			var culprits []string
			for _, c := range r.topo.ByRole(RoleClient) {
				culprits = append(culprits, fmt.Sprintf("%s:0->%s:%d", c.Addrs[0], s.Addrs[0], ServerPort))
			}
			r.addTruth(r.routerBuffer(s.Name), "drop", r.window(), culprits, byServer(s.Name), 300*time.Millisecond,
				fmt.Sprintf("%d clients send %s requests through a %s tbf with a %d-byte FIFO", len(culprits), sizeStr(r.p.ReqBytes), r.p.LinkRate, r.p.QueueBytes))
			return nil
		},
	},
	{
		Name:    "elephant",
		Summary: "a bulk transfer (untagged) shares the bottleneck towards the client with its RPCs and fills the router queue",
		Defaults: with(func(p *Params) {
			// The RPCs alone see 1-3 ms; behind the elephant 5-40 ms
			// (cubic leaves slow start early on this short path, so the
			// bulk flow keeps tens of KB queued, not the whole FIFO).
			p.Servers, p.Mode, p.Rate, p.RespBytes, p.LinkRate, p.QueueBytes, p.FaultAt, p.FaultFor, p.SLO = 2, "open", 100, 8192, "50mbit", 500000, time.Second, 2*time.Second, 5*time.Millisecond
		}),
		Evidence: []Evidence{{"r1", "switch-egress-queue", "queuing"}},
		setup: func(r *runner) error {
			servers := r.topo.ByRole(RoleServer)
			if len(servers) < 2 {
				return fmt.Errorf("--servers %d: the elephant needs 2 (one sends the bulk flow)", len(servers))
			}
			c, e := r.topo.ByRole(RoleClient)[0], servers[len(servers)-1]
			if err := r.shape(c.Name); err != nil {
				return err
			}
			r.clients[c.Name].Servers = r.clients[c.Name].Servers[:len(servers)-1]
			w := r.window()
			r.elephant(e, c, w)
			r.addTruth(r.routerBuffer(c.Name), "queuing", w, []string{fmt.Sprintf("%s:0->%s:%d", e.Addrs[0], c.Addrs[0], BulkPort)},
				byClient(c.Name), 200*time.Millisecond,
				fmt.Sprintf("bulk TCP flow %s->%s through a %s tbf with a %d-byte FIFO", e.Name, c.Name, r.p.LinkRate, r.p.QueueBytes))
			return nil
		},
	},
	{
		Name:    "slow-reader",
		Summary: "the server stops reading each request for a while: its receive queue fills and it advertises a zero window",
		Defaults: with(func(p *Params) {
			// The monitor calls unread data a stall after 100 ms
			// (docs/monitors.md), counted from the last read or from the
			// first segment to reach an empty queue. A body segment that
			// arrives some time after the header was read shortens the
			// stall by that much: 150 ms pauses on a loaded machine
			// sometimes stayed under the threshold. 300 ms leave 200 ms
			// of margin.
			p.Concurrency, p.ReqBytes, p.RespBytes, p.ReadPause, p.RcvBuf, p.FaultAt, p.FaultFor, p.SLO = 2, 256<<10, 200, 300*time.Millisecond, 65536, time.Second, 2*time.Second, 50*time.Millisecond
		}),
		Evidence: []Evidence{{"s1", "sock-recv", "stall"}},
		setup: func(r *runner) error {
			s := r.topo.ByRole(RoleServer)[0]
			w := r.window()
			cfg := r.servers[s.Name]
			cfg.ReadPause, cfg.ReadWindow, cfg.RcvBuf = r.p.ReadPause, w, r.p.RcvBuf
			r.addTruth(TruthBuffer{Node: s.Name, NodeID: s.NodeID, Kind: "sock-recv"}, "stall", w, []string{}, byServer(s.Name), 2*r.p.ReadPause,
				fmt.Sprintf("server pauses %s before reading each %s request; SO_RCVBUF %d (0: kernel default)", r.p.ReadPause, sizeStr(r.p.ReqBytes), r.p.RcvBuf))
			return nil
		},
	},
	{
		Name:    "small-sndbuf",
		Summary: "the client's socket send buffer holds less than two segments: each waits for the server's delayed ACK",
		Defaults: with(func(p *Params) {
			// On the lab's sub-millisecond path no send buffer the kernel
			// accepts (4608 bytes at least) is smaller than the path's
			// bandwidth-delay product at 1500 bytes MTU: several
			// segments fit, the receiver ACKs every second one at once,
			// and the link sets the pace whatever the buffer. With jumbo
			// frames (9000, common in data centres) an 8 KiB buffer
			// (SO_SNDBUF 4096, doubled by the kernel) holds one segment:
			// the server ACKs a lone full segment only when its
			// delayed-ACK timer fires, 40 ms later, so a 32 KiB request
			// takes ~90 ms instead of ~3 ms (docs/lab.md).
			p.Concurrency, p.ReqBytes, p.RespBytes, p.SndBuf, p.MTU, p.LinkRate, p.SLO = 1, 32<<10, 200, 4096, 9000, "100mbit", 40*time.Millisecond
		}),
		Evidence: []Evidence{{"c1", "sock-send", "queuing"}},
		setup: func(r *runner) error {
			c, s := r.topo.ByRole(RoleClient)[0], r.topo.ByRole(RoleServer)[0]
			if err := r.shape(s.Name); err != nil {
				return err
			}
			r.clients[c.Name].SndBuf = r.p.SndBuf
			r.addTruth(TruthBuffer{Node: c.Name, NodeID: c.NodeID, Kind: "sock-send"}, "queuing", r.window(), []string{}, byClient(c.Name), 0,
				fmt.Sprintf("SO_SNDBUF %d for %s requests over a %s path with MTU %d", r.p.SndBuf, sizeStr(r.p.ReqBytes), r.p.LinkRate, cmp.Or(r.p.MTU, 1500)))
			return nil
		},
	},
	{
		Name:    "host-qdisc",
		Summary: "a rate limit on the client's own egress qdisc: requests queue in the host before the network",
		Defaults: with(func(p *Params) {
			p.Mode, p.Rate, p.ReqBytes, p.RespBytes, p.HostRate, p.QueueBytes, p.SLO = "open", 30, 32<<10, 200, "10mbit", 500000, 40*time.Millisecond
		}),
		Evidence: []Evidence{{"c1", "qdisc", "queuing"}},
		setup: func(r *runner) error {
			c := r.topo.ByRole(RoleClient)[0]
			if err := tcn(c.Netns, "qdisc", "replace", "dev", c.Ifname, "root", "tbf", "rate", r.p.HostRate, "burst", "15000", "limit", fmt.Sprint(r.p.QueueBytes)); err != nil {
				return err
			}
			r.addTruth(TruthBuffer{Node: c.Name, NodeID: c.NodeID, Kind: "qdisc", Ifname: c.Ifname}, "queuing", r.window(), []string{fmt.Sprintf("%s:0->0.0.0.0:0", c.Addrs[0])},
				byClient(c.Name), 200*time.Millisecond, fmt.Sprintf("tbf %s with a %d-byte FIFO on %s's egress; %s requests at %g/s", r.p.HostRate, r.p.QueueBytes, c.Name, sizeStr(r.p.ReqBytes), r.p.Rate))
			return nil
		},
	},
	{
		Name:    "lossy-link",
		Summary: "random loss on the link from the server to the router, with no buffer overflowing: retransmissions",
		Defaults: with(func(p *Params) {
			p.RespBytes, p.LossPercent = 64<<10, 2
		}),
		Evidence: []Evidence{{"s1", "", "retransmit"}},
		setup: func(r *runner) error {
			s := r.topo.ByRole(RoleServer)[0]
			rt := r.topo.Router()
			rif := rt.RouterIfs[s.Name]
			w := r.window()
			if err := r.lossy(rt.Netns, rif, r.p.LossPercent, w); err != nil {
				return err
			}
			r.addTruth(TruthBuffer{Node: rt.Name, NodeID: rt.NodeID, Kind: "link", Ifname: rif}, "loss", w, []string{}, r.lostResponse(s), 500*time.Millisecond,
				fmt.Sprintf("%g%% of TCP packets from %s dropped at random entering %s (tcx program), no queue involved", r.p.LossPercent, s.Name, rif))
			r.truth[len(r.truth)-1].notes = func() string {
				if !r.drops.complete() {
					return "; the drop log is incomplete: affected are all slow requests to " + s.Name
				}
				return fmt.Sprintf("; affected: slow requests whose response lost a data segment (%d drops logged)", r.drops.count())
			}
			return nil
		},
	},
	{
		Name:    "slow-app",
		Summary: "control: one server takes longer to process requests; the network is fine",
		Defaults: with(func(p *Params) {
			p.Servers, p.Mode, p.Rate, p.AppDelay, p.FaultAt, p.FaultFor = 2, "open", 100, 30*time.Millisecond, time.Second, 2*time.Second
		}),
		Evidence: []Evidence{{"s1", "qdisc", "message-start"}},
		setup: func(r *runner) error {
			s := r.topo.ByRole(RoleServer)[0]
			w := r.window()
			r.servers[s.Name].AppDelay, r.servers[s.Name].AppWindow = r.p.AppDelay, w
			r.addTruth(TruthBuffer{Node: s.Name, NodeID: s.NodeID, Kind: "application"}, "slow-app", w, []string{}, byServer(s.Name), r.p.AppDelay,
				fmt.Sprintf("server %s sleeps %s before answering each request", s.Name, r.p.AppDelay))
			return nil
		},
	},
	{
		Name:    "stall",
		Summary: "the router's queue towards the client stops draining for tens of ms (a pause), then resumes",
		Defaults: with(func(p *Params) {
			p.Mode, p.Rate, p.RespBytes, p.LinkRate, p.QueueBytes, p.FaultAt, p.FaultFor = "open", 200, 16384, "200mbit", 2000000, 1500*time.Millisecond, 80*time.Millisecond
		}),
		Evidence: []Evidence{{"r1", "switch-egress-queue", "queuing"}},
		setup: func(r *runner) error {
			c := r.topo.ByRole(RoleClient)[0]
			if err := r.shape(c.Name); err != nil {
				return err
			}
			w := r.window()
			r.stall(c.Name, w)
			r.addTruth(r.routerBuffer(c.Name), "stall", w, []string{}, byClient(c.Name), 100*time.Millisecond,
				fmt.Sprintf("tbf on %s changed from %s to 8kbit for %s", r.topo.Router().RouterIfs[c.Name], r.p.LinkRate, r.p.FaultFor))
			return nil
		},
	},
	{
		Name:    "mixed",
		Summary: "several faults at different times: an elephant towards c1, a stall towards c2, then a slow server s1",
		Defaults: with(func(p *Params) {
			p.Clients, p.Servers, p.Duration, p.Mode, p.Rate, p.RespBytes, p.LinkRate, p.QueueBytes, p.FaultFor, p.AppDelay, p.SLO =
				2, 2, 5*time.Second, "open", 50, 16384, "50mbit", 500000, 80*time.Millisecond, 30*time.Millisecond, 8*time.Millisecond
		}),
		Evidence: []Evidence{{"r1", "switch-egress-queue", "queuing"}},
		setup: func(r *runner) error {
			cs, ss := r.topo.ByRole(RoleClient), r.topo.ByRole(RoleServer)
			if len(cs) < 2 || len(ss) < 2 {
				return fmt.Errorf("--clients/--servers: mixed needs at least 2 of each")
			}
			D := r.p.Duration
			for _, c := range cs[:2] {
				if err := r.shape(c.Name); err != nil {
					return err
				}
			}
			e := ss[len(ss)-1]
			we := r.at(D/10, D/5)
			r.elephant(e, cs[0], we)
			r.addTruth(r.routerBuffer(cs[0].Name), "queuing", we, []string{fmt.Sprintf("%s:0->%s:%d", e.Addrs[0], cs[0].Addrs[0], BulkPort)},
				byClient(cs[0].Name), 200*time.Millisecond, fmt.Sprintf("bulk TCP flow %s->%s through a %s tbf", e.Name, cs[0].Name, r.p.LinkRate))
			ws := r.at(D*45/100, r.p.FaultFor)
			r.stall(cs[1].Name, ws)
			r.addTruth(r.routerBuffer(cs[1].Name), "stall", ws, []string{}, byClient(cs[1].Name), 100*time.Millisecond,
				fmt.Sprintf("tbf towards %s held at 8kbit for %s", cs[1].Name, r.p.FaultFor))
			wa := r.at(D*6/10, D/5)
			r.servers[ss[0].Name].AppDelay, r.servers[ss[0].Name].AppWindow = r.p.AppDelay, wa
			r.addTruth(TruthBuffer{Node: ss[0].Name, NodeID: ss[0].NodeID, Kind: "application"}, "slow-app", wa, []string{}, byServer(ss[0].Name), r.p.AppDelay,
				fmt.Sprintf("server %s sleeps %s before answering", ss[0].Name, r.p.AppDelay))
			return nil
		},
	},
}

// Lookup returns the catalog entry of that name, or nil.
func Lookup(name string) *Fault {
	for _, f := range Catalog {
		if f.Name == name {
			return f
		}
	}
	return nil
}

func byClient(name string) func(RequestLog) bool {
	return func(rl RequestLog) bool { return rl.Client == name }
}

func byServer(name string) func(RequestLog) bool {
	return func(rl RequestLog) bool { return rl.Server == name }
}

// lostResponse picks the requests to server s that the lossy link slowed:
// those on whose connection it dropped a data segment from s while they
// were in flight. Only packets from s cross the lossy ingress, and in
// closed and open loops alike a connection carries one request at a
// time, so such a segment belonged to the request's response. A slow
// request that lost nothing was slowed by something else (on a loaded
// 2-CPU machine, mostly a server not scheduled in time), which the truth
// must not claim. Without a complete drop log every slow request to s is
// taken, as for the other faults.
func (r *runner) lostResponse(s *Node) func(RequestLog) bool {
	srv := netip.AddrPortFrom(netip.MustParseAddr(s.Addrs[0]), ServerPort)
	return func(rl RequestLog) bool {
		if rl.Server != s.Name {
			return false
		}
		conn, err := netip.ParseAddrPort(rl.Conn)
		if r.drops == nil || !r.drops.complete() || err != nil {
			return true
		}
		return r.drops.lostData(srv, conn, rl.Start, rl.End)
	}
}

func sizeStr(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// window is the fault's interval: --fault-at/--fault-for, or the whole
// workload when --fault-for is 0.
func (r *runner) window() Window {
	if r.p.FaultFor == 0 {
		return Window{Start: r.t0, End: r.t0.Add(r.p.Duration)}
	}
	return r.at(r.p.FaultAt, r.p.FaultFor)
}

func (r *runner) at(off, d time.Duration) Window {
	return Window{Start: r.t0.Add(off), End: r.t0.Add(off + d)}
}

func (r *runner) addTruth(b TruthBuffer, event string, w Window, culprits []string, victim func(RequestLog) bool, grace time.Duration, notes string) {
	r.truth = append(r.truth, truthSpec{
		fault:  TruthFault{Buffer: b, Event: event, Start: w.Start, End: w.End, CulpritFlows: culprits, Notes: notes},
		victim: victim, grace: grace,
	})
}

// routerBuffer names the router's egress queue towards host.
func (r *runner) routerBuffer(host string) TruthBuffer {
	rt := r.topo.Router()
	return TruthBuffer{Node: rt.Name, NodeID: rt.NodeID, Kind: "switch-egress-queue", Ifname: rt.RouterIfs[host]}
}

// shape makes the router's egress towards host a bottleneck: a tbf
// shaper at --link-rate whose inner FIFO holds --queue-bytes.
func (r *runner) shape(host string) error {
	rt := r.topo.Router()
	return tcn(rt.Netns, "qdisc", "replace", "dev", rt.RouterIfs[host], "root", "tbf",
		"rate", r.p.LinkRate, "burst", "15000", "limit", fmt.Sprint(r.p.QueueBytes))
}

// stall holds the shaper towards host at 8 kbit/s during w: packets stay
// queued and almost none leave, as behind a PFC pause.
func (r *runner) stall(host string, w Window) {
	rt := r.topo.Router()
	set := func(rate string) func() error {
		return func() error {
			return tcn(rt.Netns, "qdisc", "change", "dev", rt.RouterIfs[host], "root", "tbf",
				"rate", rate, "burst", "15000", "limit", fmt.Sprint(r.p.QueueBytes))
		}
	}
	r.actions = append(r.actions, action{w.Start.Sub(r.t0), set("8kbit")}, action{w.End.Sub(r.t0), set(r.p.LinkRate)})
}

// elephant adds a bulk flow from node from to node to during w.
func (r *runner) elephant(from, to *Node, w Window) {
	r.bulk = append(r.bulk,
		struct {
			node string
			cfg  BulkConfig
		}{to.Name, BulkConfig{Listen: fmt.Sprintf("%s:%d", to.Addrs[0], BulkPort)}},
		struct {
			node string
			cfg  BulkConfig
		}{from.Name, BulkConfig{Dest: fmt.Sprintf("%s:%d", to.Addrs[0], BulkPort), Window: w}})
}

// lossy attaches the lossy-link program to ifname's ingress in netns ns
// during w: a tcx link, detached at w's end (or at the end of the run).
func (r *runner) lossy(ns, ifname string, percent float64, w Window) error {
	spec, err := loadLoss()
	if err != nil {
		return fmt.Errorf("lossy link: %w", err)
	}
	thr := uint32(percent / 100 * float64(1<<32-1))
	if err := spec.Variables["drop_threshold"].Set(thr); err != nil {
		return fmt.Errorf("lossy link: %w", err)
	}
	var objs lossObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return fmt.Errorf("lossy link: loading: %w", err)
	}
	if info, err := objs.LossyLink.Info(); err == nil {
		if id, ok := info.ID(); ok {
			r.programs = append(r.programs, id)
		}
	}
	r.cleanup = append(r.cleanup, func() { objs.Close() })
	// Cleanups run last first: the reader stops before the maps close.
	if r.drops, err = newDropLog(objs.Drops, objs.Counters); err != nil {
		return err
	}
	r.cleanup = append(r.cleanup, func() { r.drops.close() })
	var l link.Link
	attach := func() error {
		return inNetns(ns, func() error {
			ifc, err := net.InterfaceByName(ifname)
			if err != nil {
				return err
			}
			l, err = link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: objs.LossyLink, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return fmt.Errorf("lossy link: attaching tcx to %s in %s (needs kernel 6.6+): %w", ifname, ns, err)
			}
			return nil
		})
	}
	detach := func() error {
		if l != nil {
			err := l.Close()
			l = nil
			return err
		}
		return nil
	}
	r.cleanup = append(r.cleanup, func() { detach() })
	r.actions = append(r.actions, action{w.Start.Sub(r.t0), attach}, action{w.End.Sub(r.t0), detach})
	return nil
}
