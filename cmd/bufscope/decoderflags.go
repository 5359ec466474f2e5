package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/bufscope/bufscope/decode"
)

// decoderFlags are the flags that say how to recognise telemetry in
// packets, shared by every command that decodes traces.
type decoderFlags struct {
	// ReportPorts are UDP ports decoded as Telemetry Reports; nil keeps
	// decode's defaults.
	ReportPorts []uint
	INTPorts    []uint
	INTDSCPs    []uint
	TagExID     uint // 0 selects decode.TagExID
}

func (d *decoderFlags) bind(f *pflag.FlagSet) {
	f.UintSliceVar(&d.ReportPorts, "report-port", nil, "UDP port carrying Telemetry Reports; repeat for several (default: 32766, 5900, 1234, 54321, 556, 3933)")
	f.UintSliceVar(&d.INTPorts, "int-port", nil, "UDP destination port that signals INT over UDP; repeat for several (default: none)")
	f.UintSliceVar(&d.INTDSCPs, "int-dscp", nil, "DSCP value that signals INT over TCP/UDP; repeat for several (default: 0x17, 0x20)")
	f.UintVar(&d.TagExID, "tag-exid", decode.TagExID, "RFC 6994 ExID of the request tag option (0 selects the default)")
}

func (d *decoderFlags) validate() error {
	if err := checkPorts("report-port", d.ReportPorts); err != nil {
		return err
	}
	if err := checkPorts("int-port", d.INTPorts); err != nil {
		return err
	}
	for _, v := range d.INTDSCPs {
		if v > 63 {
			return usageError{fmt.Errorf("--int-dscp %d: a DSCP is 0 to 63", v)}
		}
	}
	if d.TagExID > 0xffff {
		return usageError{fmt.Errorf("--tag-exid %d: an ExID is 16 bits (0 selects the default 0xBF5C)", d.TagExID)}
	}
	return nil
}

// options converts validated flags.
func (d *decoderFlags) options() decode.DecoderOptions {
	opts := decode.DecoderOptions{TagExID: uint16(d.TagExID)}
	if d.ReportPorts != nil {
		opts.ReportPorts = []uint16{}
		for _, p := range d.ReportPorts {
			opts.ReportPorts = append(opts.ReportPorts, uint16(p))
		}
	}
	for _, p := range d.INTPorts {
		opts.INTPorts = append(opts.INTPorts, uint16(p))
	}
	if d.INTDSCPs != nil {
		opts.INTDSCPs = []uint8{}
		for _, v := range d.INTDSCPs {
			opts.INTDSCPs = append(opts.INTDSCPs, uint8(v))
		}
	}
	return opts
}
