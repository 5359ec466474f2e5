package capture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Filters are compiled by running `tcpdump -ddd -y DLT EXPR`, which prints
// the classic BPF program libpcap builds for that link type without opening
// a device, so compiling needs no privilege.
// That keeps the full pcap-filter language (and libpcap's optimiser) while
// bufscope itself stays pure Go with CGO_ENABLED=0: linking libpcap through
// gopacket/pcap would need cgo, and a hand-written compiler over
// golang.org/x/net/bpf would support only a subset of the language that
// operators already know. The price is a runtime dependency on tcpdump
// when a filter is used; ErrNoFilterCompiler says so.

// ErrNoFilterCompiler is returned when a capture filter is needed but
// tcpdump, which compiles it, is not installed.
var ErrNoFilterCompiler = errors.New("tcpdump not found in PATH: it compiles capture filters (apt-get install tcpdump)")

// ErrBadFilter wraps tcpdump's complaint about a filter expression.
var ErrBadFilter = errors.New("bad capture filter")

// maxKeep is what "keep the whole packet" returns from the kernel filter:
// the largest packet a TPACKET_V3 frame of liveFrameSize holds.
const maxKeep = 65535

// maxInstructions is the kernel's BPF_MAXINSNS for classic socket filters.
const maxInstructions = 4096

// compileExpr compiles a pcap-filter expression for a link type given by
// its libpcap name (EN10MB, RAW). It returns the raw program exactly as
// tcpdump printed it; errors name iface.
func compileExpr(tcpdump, iface, dlt, expr string) ([]bpf.RawInstruction, error) {
	if tcpdump == "" {
		p, err := exec.LookPath("tcpdump")
		if err != nil {
			return nil, ErrNoFilterCompiler
		}
		tcpdump = p
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tcpdump, "-ddd", "-y", dlt, expr)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = strings.TrimPrefix(msg, "tcpdump: ")
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("filter %q on %s: %w: %s", expr, iface, ErrBadFilter, msg)
	}
	return parseDDD(out)
}

// parseDDD parses tcpdump's -ddd output: a count line, then one
// "code jt jf k" line (decimal) per instruction.
func parseDDD(out []byte) ([]bpf.RawInstruction, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	if !sc.Scan() {
		return nil, errors.New("tcpdump -ddd printed nothing")
	}
	n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || n <= 0 || n > maxInstructions {
		return nil, fmt.Errorf("tcpdump -ddd: bad instruction count %q", sc.Text())
	}
	prog := make([]bpf.RawInstruction, 0, n)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("tcpdump -ddd: line %d: want 4 fields, got %q", len(prog)+2, line)
		}
		var v [4]uint64
		for i, s := range f {
			bits := 8
			switch i {
			case 0:
				bits = 16
			case 3:
				bits = 32
			}
			x, err := strconv.ParseUint(s, 10, bits)
			if err != nil {
				return nil, fmt.Errorf("tcpdump -ddd: line %d: %w", len(prog)+2, err)
			}
			v[i] = x
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if len(prog) != n {
		return nil, fmt.Errorf("tcpdump -ddd: announced %d instructions, printed %d", n, len(prog))
	}
	return prog, nil
}

const (
	opRetK = 0x06 // BPF_RET | BPF_K
	opRetA = 0x16 // BPF_RET | BPF_A
	opJA   = 0x05 // BPF_JMP | BPF_JA
)

// snapProgram builds the socket filter a live capture attaches: packets the
// user's filter rejects are dropped; accepted packets that match keepWhole
// are kept up to maxKeep bytes and all others are truncated to snap bytes.
// Truncating in the kernel matters on veth and loopback, where GSO hands
// the socket super-packets of up to 64 KiB that would otherwise be copied
// whole into the ring.
//
// filter and keepWhole are classic BPF programs as tcpdump prints them
// (nil means "accept everything" and "keep nothing whole"). snap <= 0 keeps
// every packet whole. The programs are chained by replacing each accepting
// RET of the first with a jump to the start of the next; cBPF jumps are
// relative and forward-only, so replacing instructions in place keeps
// every other offset valid.
func snapProgram(filter, keepWhole []bpf.RawInstruction, snap int) ([]bpf.RawInstruction, error) {
	if snap <= 0 || snap > maxKeep {
		snap = maxKeep
	}
	var prog []bpf.RawInstruction
	prog = append(prog, filter...)
	tailStart := len(prog)
	for i := range prog {
		switch prog[i].Op {
		case opRetK:
			if prog[i].K != 0 {
				prog[i] = bpf.RawInstruction{Op: opJA, K: uint32(tailStart - i - 1)}
			}
		case opRetA:
			return nil, errors.New("filter returns the accumulator; bufscope only chains programs that return constants")
		}
	}
	if keepWhole == nil || snap == maxKeep {
		return append(prog, bpf.RawInstruction{Op: opRetK, K: uint32(snap)}), nil
	}
	for _, ins := range keepWhole {
		switch ins.Op {
		case opRetK:
			if ins.K == 0 {
				ins.K = uint32(snap)
			} else {
				ins.K = maxKeep
			}
		case opRetA:
			return nil, errors.New("keep-whole program returns the accumulator")
		}
		prog = append(prog, ins)
	}
	if len(prog) > maxInstructions {
		return nil, fmt.Errorf("combined filter has %d instructions, the kernel takes at most %d", len(prog), maxInstructions)
	}
	return prog, nil
}
