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
