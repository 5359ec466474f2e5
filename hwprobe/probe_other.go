//go:build !linux

package hwprobe

import (
	"context"
	"errors"
)

var errNotLinux = errors.New("probe: bufscope's data plane needs Linux")

func kernelInfo(*Report) error { return errNotLinux }

func kernelCaps(*Report) []Capability { return nil }

func bpfCaps(bool) []Capability { return nil }

func tracepointCaps() []Capability { return nil }

func qdiscCaps(context.Context, bool, []string) []Capability { return nil }

func interfaces(string) ([]Interface, error) { return nil, errNotLinux }
