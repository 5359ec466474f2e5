package monitor

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/bufscope/bufscope/decode"
)

// ErrNotSupported is the sentinel every "this host cannot run the
// monitors" error wraps (not root, no BTF, a tracepoint missing). It is
// cilium/ebpf's sentinel, so kernel feature errors from the library match
// it too.
var ErrNotSupported = ebpf.ErrNotSupported

// Thresholds decide when a buffer's state is abnormal enough to report.
// Zero fields take the defaults documented in docs/monitors.md.
type Thresholds struct {
	// QdiscResidence: a packet that spent longer than this in a root qdisc
	// starts a queuing event. Default 1 ms.
	QdiscResidence time.Duration
	// QdiscBacklogBytes: a backlog above this starts a queuing event too.
	// Default 0 (off): residence time is what a request feels.
	QdiscBacklogBytes uint32
	// QdiscStall: packets queued and none released for this long is a
	// stall. Default 50 ms.
	QdiscStall time.Duration
	// Repeat: a lasting condition is re-reported this often. Default 100 ms.
	Repeat time.Duration
	// SendQueuePercent: sk_wmem_queued at or above this share of sk_sndbuf
	// starts a send-queue queuing event. Default 90.
	SendQueuePercent uint32
	// ReceiveStall: unread bytes in a receive queue with no read for this
	// long is a stall. Default 100 ms.
	ReceiveStall time.Duration
}

// DefaultThresholds returns the values zero fields of Thresholds take.
func DefaultThresholds() Thresholds {
	return Thresholds{
		QdiscResidence:   time.Millisecond,
		QdiscStall:       50 * time.Millisecond,
		Repeat:           100 * time.Millisecond,
		SendQueuePercent: 90,
		ReceiveStall:     100 * time.Millisecond,
	}
}

func (t Thresholds) withDefaults() Thresholds {
	d := DefaultThresholds()
	if t.QdiscResidence <= 0 {
		t.QdiscResidence = d.QdiscResidence
	}
	if t.QdiscStall <= 0 {
		t.QdiscStall = d.QdiscStall
	}
	if t.Repeat <= 0 {
		t.Repeat = d.Repeat
	}
	if t.SendQueuePercent == 0 {
		t.SendQueuePercent = d.SendQueuePercent
	}
	if t.ReceiveStall <= 0 {
		t.ReceiveStall = d.ReceiveStall
	}
	return t
}

// Netns selects a network namespace to watch.
type Netns struct {
	// Inode of the namespace (see NetnsInode).
	Inode uint32
	// Router: the namespace forwards, so its egress qdiscs are reported as
	// switch queues (buffer kind 8) with INT baseline fields only.
	Router bool
}

// Options configure Load.
type Options struct {
	// Netns lists the namespaces to watch. Empty watches every namespace:
	// the tracepoints are global.
	Netns []Netns
	// Thresholds; zero fields take defaults.
	Thresholds Thresholds
	// NoMessageStart turns off the per-tagged-segment events at the qdisc.
	NoMessageStart bool
	// MessageStartEvery reports the start of one tagged message in this
	// many: those whose RPC ID hashes to 0 modulo the value, so every hop
	// (and every host running the monitors with the same value) reports
	// the same messages and a sampled message keeps its timing at each
	// buffer. 0 or 1 reports every message. Abnormal events are never
	// sampled.
	MessageStartEvery uint32
	// MessageStartFirstHop reports a message start only where the segment
	// enters the network: at a qdisc of the host that sent it (the skb has
	// no ingress interface), not again at each namespace that forwards it.
	MessageStartFirstHop bool
	// TagExID is the RFC 6994 ExID that marks the request tag; 0 means
	// decode.TagExID (0xBF5C).
	TagExID uint16
	// IgnoreDrops names kfree_skb reasons (as in the kernel's enum
	// skb_drop_reason, without the SKB_DROP_REASON_ prefix) not to report.
	// Nil means DefaultIgnoredDrops; an empty non-nil slice reports all.
	IgnoreDrops []string
	// WakeupEvery: the ring buffer wakes the reader every this many events
	// per CPU; in between the reader polls. Default 64.
	WakeupEvery uint32
}

// Attachment names one program attached by Load.
type Attachment struct {
	Program string
	Hook    string // e.g. "tp_btf/qdisc_enqueue"
	ID      ebpf.ProgramID
	LinkID  link.ID
}

// Monitor is a set of loaded and attached monitor programs. ReadEvent may
// be called from one goroutine at a time; Stats, ProgramStats and Close are
// safe to call concurrently with it.
type Monitor struct {
	objs     monitorObjects
	links    []link.Link
	attached []Attachment
	reader   *ringbuf.Reader
	reasons  *DropReasons
	clock    int64 // CLOCK_REALTIME - CLOCK_MONOTONIC at load, ns

	closeOnce sync.Once
	closeErr  error
	rec       ringbuf.Record
}

// hooks maps each program to the tracepoint it attaches to. Order is the
// order Attached reports.
var hooks = []struct{ prog, tp string }{
	{"qdisc_enqueue", "qdisc_enqueue"},
	{"qdisc_dequeue", "qdisc_dequeue"},
	{"kfree_skb", "kfree_skb"},
	{"tcp_retransmit_skb", "tcp_retransmit_skb"},
	{"sock_send_length", "sock_send_length"},
	{"tcp_probe", "tcp_probe"},
	{"sock_recv_length", "sock_recv_length"},
	{"sock_rcvqueue_full", "sock_rcvqueue_full"},
	{"sock_exceed_buf_limit", "sock_exceed_buf_limit"},
}

// Load checks the host, loads the monitor programs with opts applied and
// attaches them. Errors for a host that cannot run them wrap
// ErrNotSupported and say what is missing. The caller must Close the
// Monitor; Close detaches everything Load attached.
func Load(opts Options) (*Monitor, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("loading buffer monitors: need root (CAP_BPF and CAP_PERFMON): run as root: %w", ErrNotSupported)
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("loading buffer monitors: /sys/kernel/btf/vmlinux missing: use a kernel built with CONFIG_DEBUG_INFO_BTF=y: %w", ErrNotSupported)
	}
	reasons, err := LoadDropReasons()
	if err != nil {
		return nil, err
	}
	spec, err := loadMonitor()
	if err != nil {
		return nil, fmt.Errorf("loading buffer monitors: parsing embedded object: %w", err)
	}
	if err := configure(spec, opts); err != nil {
		return nil, err
	}
	m := &Monitor{reasons: reasons}
	if err := spec.LoadAndAssign(&m.objs, nil); err != nil {
		// A verifier rejection is a bug in the programs or a kernel too
		// different from the one they were built for, never a reason to
		// skip: it is not wrapped in ErrNotSupported.
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading buffer monitors: kernel verifier rejected a program: %+v", ve)
		}
		return nil, fmt.Errorf("loading buffer monitors: %w", err)
	}
	ignore := opts.IgnoreDrops
	if ignore == nil {
		ignore = DefaultIgnoredDrops
	}
	for _, name := range ignore {
		v, ok := reasons.Value(name)
		if !ok {
			// Older kernels lack some of the default names; a name the
			// user gave must exist.
			if opts.IgnoreDrops == nil {
				continue
			}
			m.Close()
			return nil, fmt.Errorf("loading buffer monitors: ignored drop reason %q is not in this kernel's enum skb_drop_reason", name)
		}
		if err := m.objs.DropIgnore.Put(v, uint8(1)); err != nil {
			m.Close()
			return nil, fmt.Errorf("loading buffer monitors: ignoring drop reason %s: %w", name, err)
		}
	}
	for _, ns := range opts.Netns {
		flags := uint8(1)
		if ns.Router {
			flags |= 2
		}
		if err := m.objs.NetnsFilter.Put(ns.Inode, flags); err != nil {
			m.Close()
			return nil, fmt.Errorf("loading buffer monitors: adding netns %d to the filter: %w", ns.Inode, err)
		}
	}
	if err := m.attach(); err != nil {
		m.Close()
		return nil, err
	}
	m.reader, err = ringbuf.NewReader(m.objs.Events)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("loading buffer monitors: opening ring buffer reader: %w", err)
	}
	m.clock = realtimeOffset()
	return m, nil
}

func configure(spec *ebpf.CollectionSpec, opts Options) error {
	t := opts.Thresholds.withDefaults()
	wake := opts.WakeupEvery
	if wake == 0 {
		wake = 64
	}
	set := []struct {
		name string
		v    any
	}{
		{"cfg_filter_netns", boolByte(len(opts.Netns) > 0)},
		{"cfg_qdisc_residence_ns", uint64(t.QdiscResidence)},
		{"cfg_qdisc_backlog_bytes", t.QdiscBacklogBytes},
		{"cfg_qdisc_stall_ns", uint64(t.QdiscStall)},
		{"cfg_repeat_ns", uint64(t.Repeat)},
		{"cfg_sndq_pct", t.SendQueuePercent},
		{"cfg_rcv_stall_ns", uint64(t.ReceiveStall)},
		{"cfg_msg_start", boolByte(!opts.NoMessageStart)},
		{"cfg_msg_start_every", max(opts.MessageStartEvery, 1)},
		{"cfg_msg_start_first_hop", boolByte(opts.MessageStartFirstHop)},
		{"cfg_tag_exid", cmp.Or(opts.TagExID, decode.TagExID)},
		{"cfg_wakeup_every", wake},
	}
	for _, s := range set {
		v, ok := spec.Variables[s.name]
		if !ok {
			return fmt.Errorf("loading buffer monitors: embedded object lacks variable %s (regenerate with go generate)", s.name)
		}
		if err := v.Set(s.v); err != nil {
			return fmt.Errorf("loading buffer monitors: setting %s: %w", s.name, err)
		}
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (m *Monitor) attach() error {
	progs := map[string]*ebpf.Program{
		"qdisc_enqueue":         m.objs.QdiscEnqueue,
		"qdisc_dequeue":         m.objs.QdiscDequeue,
		"kfree_skb":             m.objs.KfreeSkb,
		"tcp_retransmit_skb":    m.objs.TcpRetransmitSkb,
		"sock_send_length":      m.objs.SockSendLength,
		"tcp_probe":             m.objs.TcpProbe,
		"sock_recv_length":      m.objs.SockRecvLength,
		"sock_rcvqueue_full":    m.objs.SockRcvqueueFull,
		"sock_exceed_buf_limit": m.objs.SockExceedBufLimit,
	}
	for _, h := range hooks {
		p := progs[h.prog]
		l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return fmt.Errorf("attaching %s to tp_btf/%s: %w (the kernel lacks this tracepoint or BPF tracing links)", h.prog, h.tp, errors.Join(err, ErrNotSupported))
		}
		m.links = append(m.links, l)
		a := Attachment{Program: h.prog, Hook: "tp_btf/" + h.tp}
		if info, err := p.Info(); err == nil {
			a.ID, _ = info.ID()
		}
		if info, err := l.Info(); err == nil {
			a.LinkID = info.ID
		}
		m.attached = append(m.attached, a)
	}
	return nil
}

// Attached lists the programs Load attached. The slice is shared; do not
// modify it.
func (m *Monitor) Attached() []Attachment { return m.attached }

// DropReasons returns the kernel's drop reason names read at load.
func (m *Monitor) DropReasons() *DropReasons { return m.reasons }

// ReadEvent blocks until an event is available or deadline passes (zero:
// no deadline) and decodes it into ev, which the caller owns. It returns
// os.ErrDeadlineExceeded on timeout and ringbuf.ErrClosed after Close.
// It does not allocate.
func (m *Monitor) ReadEvent(ev *Event, deadline time.Time) error {
	m.reader.SetDeadline(deadline)
	if err := m.reader.ReadInto(&m.rec); err != nil {
		return err
	}
	if err := ev.unmarshal(m.rec.RawSample); err != nil {
		return err
	}
	ev.setClock(m.clock)
	return nil
}

// Stats are the monitors' own counters, summed over CPUs.
type Stats struct {
	Emitted          uint64 // events written to the ring buffer
	Lost             uint64 // events dropped because the ring buffer was full
	DequeueSeen      uint64 // packets seen leaving a watched qdisc
	DequeueUnmatched uint64 // of those, without a recorded enqueue
	HeaderFailures   uint64 // victim headers that could not be read
}

// Stats reads the BPF counter map.
func (m *Monitor) Stats() (Stats, error) {
	var s Stats
	read := func(idx uint32) (uint64, error) {
		var per []uint64
		if err := m.objs.Stats.Lookup(idx, &per); err != nil {
			return 0, fmt.Errorf("reading monitor counter %d: %w", idx, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		return sum, nil
	}
	var err error
	for _, f := range []struct {
		idx uint32
		dst *uint64
	}{{0, &s.Emitted}, {1, &s.Lost}, {2, &s.DequeueUnmatched}, {3, &s.HeaderFailures}, {4, &s.DequeueSeen}} {
		if *f.dst, err = read(f.idx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// ProgramStat is the kernel's accounting of one program (needs
// kernel.bpf_stats_enabled, see EnableKernelStats).
type ProgramStat struct {
	Program  string
	RunCount uint64
	Runtime  time.Duration
}

// ProgramStats returns run counts and run time per attached program.
func (m *Monitor) ProgramStats() ([]ProgramStat, error) {
	progs := []struct {
		name string
		p    *ebpf.Program
	}{
		{"qdisc_enqueue", m.objs.QdiscEnqueue},
		{"qdisc_dequeue", m.objs.QdiscDequeue},
		{"kfree_skb", m.objs.KfreeSkb},
		{"tcp_retransmit_skb", m.objs.TcpRetransmitSkb},
		{"sock_send_length", m.objs.SockSendLength},
		{"tcp_probe", m.objs.TcpProbe},
		{"sock_recv_length", m.objs.SockRecvLength},
		{"sock_rcvqueue_full", m.objs.SockRcvqueueFull},
		{"sock_exceed_buf_limit", m.objs.SockExceedBufLimit},
	}
	out := make([]ProgramStat, 0, len(progs))
	for _, p := range progs {
		st, err := p.p.Stats()
		if err != nil {
			return nil, fmt.Errorf("reading stats of program %s: %w", p.name, err)
		}
		out = append(out, ProgramStat{Program: p.name, RunCount: st.RunCount, Runtime: st.Runtime})
	}
	return out, nil
}

// EnableKernelStats turns on the kernel's per-program run time accounting
// until the returned Closer is closed. It costs a little on every program
// run, so it is for measurement, not for production.
func EnableKernelStats() (interface{ Close() error }, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enabling BPF run time statistics: %w", err)
	}
	return c, nil
}

// Close detaches and unloads everything Load created. Safe to call more
// than once and concurrently with ReadEvent, which then returns
// ringbuf.ErrClosed.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() {
		var errs []error
		if m.reader != nil {
			errs = append(errs, m.reader.Close())
		}
		for _, l := range m.links {
			errs = append(errs, l.Close())
		}
		errs = append(errs, m.objs.Close())
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// NetnsInode returns the inode number of the network namespace at path
// (e.g. /var/run/netns/NAME or /proc/PID/ns/net), which is what the
// programs compare against.
func NetnsInode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("netns %s: %w", path, err)
	}
	return uint32(st.Ino), nil
}

func realtimeOffset() int64 {
	var rt, mono unix.Timespec
	// Bracket the realtime read with two monotonic reads and take their
	// midpoint, so the offset is not skewed by a preemption in between.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	m1 := mono.Nano()
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	m2 := mono.Nano()
	return rt.Nano() - (m1+m2)/2
}
