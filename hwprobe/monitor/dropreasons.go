package monitor

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// DropReasons maps the kernel's enum skb_drop_reason values to their names
// without the SKB_DROP_REASON_ prefix ("QDISC_DROP"). The names are read
// from the running kernel's BTF because the numbering changes between
// kernel versions. Safe for concurrent use after construction.
type DropReasons struct {
	names map[uint32]string
}

// LoadDropReasons reads enum skb_drop_reason from the kernel's BTF.
func LoadDropReasons() (*DropReasons, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("reading kernel BTF for drop reasons: %w (need /sys/kernel/btf/vmlinux)", errors.Join(err, ErrNotSupported))
	}
	return dropReasonsFromSpec(spec)
}

func dropReasonsFromSpec(spec *btf.Spec) (*DropReasons, error) {
	var enum *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &enum); err != nil {
		return nil, fmt.Errorf("kernel BTF has no enum skb_drop_reason (kernel older than 5.17?): %w", errors.Join(err, ErrNotSupported))
	}
	d := &DropReasons{names: make(map[uint32]string, len(enum.Values))}
	for _, v := range enum.Values {
		name := strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
		d.names[uint32(v.Value)] = name
	}
	return d, nil
}

// Name returns the reason's name, or "" when the kernel does not define it.
func (d *DropReasons) Name(reason uint32) string { return d.names[reason] }

// Value returns the numeric value of a named reason on this kernel.
func (d *DropReasons) Value(name string) (uint32, bool) {
	for v, n := range d.names {
		if n == name {
			return v, true
		}
	}
	return 0, false
}

// Len is the number of reasons the kernel defines.
func (d *DropReasons) Len() int { return len(d.names) }

// DefaultIgnoredDrops are the drop reasons the monitors do not report by
// default: TCP discarding a duplicate or stale segment (the consequence of
// a retransmission, not a buffer losing data), and packets nobody was
// listening for. docs/monitors.md explains each.
var DefaultIgnoredDrops = []string{
	"TCP_OLD_DATA", "TCP_OLD_ACK", "TCP_TOO_OLD_ACK", "TCP_OLD_SEQUENCE",
	"TCP_OFOMERGE", "DUP_FRAG", "NO_SOCKET", "TCP_RESET", "TCP_CLOSE",
	"SOCKET_CLOSE", "QUEUE_PURGE",
}

// BufferOf returns the buffer kind a drop with the given reason name
// belongs to (docs/wire-format.md §2), or 0 when the reason names no
// buffer. router reports qdisc drops as switch queue drops.
func BufferOf(name string, router bool) uint8 {
	switch {
	case strings.HasPrefix(name, "QDISC_"), strings.HasPrefix(name, "FQ_"),
		strings.HasPrefix(name, "CAKE_"), strings.HasPrefix(name, "DUALPI2_"):
		if router {
			return BufferSwitch
		}
		return BufferQdisc
	}
	switch name {
	case "SOCKET_RCVBUFF", "SOCKET_BACKLOG", "PROTO_MEM", "TCP_ZEROWINDOW",
		"TCP_OFO_DROP", "TCP_OFO_QUEUE_PRUNE", "TCP_LISTEN_OVERFLOW":
		return BufferSocketReceive
	case "FULL_RING", "DEV_READY":
		return BufferNICTx
	case "CPU_BACKLOG":
		return BufferNICRx
	}
	return 0
}
