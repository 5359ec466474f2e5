package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a pflag.Value for sizes such as "100MB", "1.5GiB" or "4096".
// Decimal (kB, MB, GB) and binary (KiB, MiB, GiB) suffixes mean what they
// say, so --rotate-size 100MB gives files of about 10^8 bytes.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1},
}

func (b *byteSize) Set(s string) error {
	str := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(str, u.suffix) {
			str, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(str, 64)
	// Written as a positive check so that NaN, which compares false with
	// everything, is rejected too.
	if err != nil || !(v >= 0 && v*mult <= float64(1<<62)) {
		return fmt.Errorf("%q is not a size: use a number with an optional unit such as 100MB or 1GiB", s)
	}
	*b = byteSize(v * mult)
	return nil
}

func (b *byteSize) String() string {
	if *b == 0 {
		return "0"
	}
	return humanBytes(uint64(*b))
}

func (b *byteSize) Type() string { return "size" }

// humanBytes formats n with a decimal unit, as a status line shows it.
func humanBytes(n uint64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.1fTB", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.1fGB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fMB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fkB", float64(n)/1e3)
	}
	return fmt.Sprintf("%dB", n)
}
