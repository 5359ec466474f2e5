//go:build linux

package hwprobe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

const (
	disTagger   = "request tagger (RPC messages go untagged)"
	disMonitors = "buffer monitors (no host-buffer events)"
)

func kernelInfo(r *Report) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return fmt.Errorf("probe: uname: %w", err)
	}
	r.KernelRelease = unix.ByteSliceToString(u.Release[:])
	r.KernelVersion = unix.ByteSliceToString(u.Version[:])
	r.Machine = unix.ByteSliceToString(u.Machine[:])
	return nil
}

func kernelCaps(r *Report) []Capability {
	_, btfErr := os.Stat("/sys/kernel/btf/vmlinux")
	caps := []Capability{{
		Group: "kernel", Name: "BTF", Status: yesNo(btfErr == nil),
		Detail: errDetail(btfErr), How: "stat /sys/kernel/btf/vmlinux",
		Disables: "buffer monitors and request tagger (no CO-RE, no tp_btf)",
	}, {
		Group: "kernel", Name: "cgroup v2", Status: yesNo(len(r.Cgroup2Mounts) > 0),
		Detail: strings.Join(r.Cgroup2Mounts, " "), How: "cgroup2 entries in /proc/self/mountinfo",
		Disables: disTagger + ": sockops attaches to a cgroup v2 directory",
	}, {
		Group: "kernel", Name: "BPF file system", Status: yesNo(len(r.BPFFSMounts) > 0),
		Detail: bpffsDetail(r.BPFFSMounts), How: "bpf entries in /proc/self/mountinfo",
		Disables: "sharing the tags map with RPC processes by pin (the tagger mounts one at /sys/fs/bpf when it can)",
	}}
	stats, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled")
	st := Unknown
	if err == nil {
		st = yesNo(strings.TrimSpace(string(stats)) == "1")
	}
	caps = append(caps, Capability{
		Group: "kernel", Name: "BPF run-time statistics", Status: st,
		Detail: "sysctl kernel.bpf_stats_enabled=1 turns them on (small cost per program run)",
		How:    "read /proc/sys/kernel/bpf_stats_enabled", Disables: "measuring the tagger's and monitors' CPU cost",
	})
	return caps
}

func bpffsDetail(m []string) string {
	if len(m) == 0 {
		return "not mounted"
	}
	return strings.Join(m, " ")
}

func errDetail(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func bpfCaps(root bool) []Capability {
	type check struct {
		name, how, disables string
		fn                  func() error
	}
	checks := []check{
		{"program type sockops", "features.HaveProgramType(SockOps)", disTagger, func() error { return features.HaveProgramType(ebpf.SockOps) }},
		{"program type tracing (tp_btf)", "load an empty tp_btf/kfree_skb program", disMonitors, haveTpBTF},
		{"program type sched_cls (tc)", "features.HaveProgramType(SchedCLS)", "tc programs: lab loss injection and tc-based exporters", func() error { return features.HaveProgramType(ebpf.SchedCLS) }},
		{"map type ringbuf", "features.HaveMapType(RingBuf)", disMonitors + ": event transport", func() error { return features.HaveMapType(ebpf.RingBuf) }},
		{"map type sk_storage", "features.HaveMapType(SkStorage)", disTagger + ": per-socket ISN", func() error { return features.HaveMapType(ebpf.SkStorage) }},
		{"map type lru_hash", "features.HaveMapType(LRUHash)", disTagger + ": message table", func() error { return features.HaveMapType(ebpf.LRUHash) }},
		{"helper bpf_reserve_hdr_opt", "features.HaveProgramHelper(SockOps, ...)", disTagger, func() error { return features.HaveProgramHelper(ebpf.SockOps, asm.FnReserveHdrOpt) }},
		{"helper bpf_store_hdr_opt", "features.HaveProgramHelper(SockOps, ...)", disTagger, func() error { return features.HaveProgramHelper(ebpf.SockOps, asm.FnStoreHdrOpt) }},
		{"helper bpf_sk_storage_get", "features.HaveProgramHelper(SockOps, ...)", disTagger, func() error { return features.HaveProgramHelper(ebpf.SockOps, asm.FnSkStorageGet) }},
		{"helper bpf_get_socket_cookie", "features.HaveProgramHelper(SockOps, ...)", disTagger, func() error { return features.HaveProgramHelper(ebpf.SockOps, asm.FnGetSocketCookie) }},
		{"helper bpf_ringbuf_reserve", "features.HaveProgramHelper(Kprobe, ...)", disMonitors, func() error { return features.HaveProgramHelper(ebpf.Kprobe, asm.FnRingbufReserve) }},
		{"helper bpf_probe_read_kernel", "features.HaveProgramHelper(Kprobe, ...)", disMonitors + " and " + disTagger, func() error { return features.HaveProgramHelper(ebpf.Kprobe, asm.FnProbeReadKernel) }},
	}
	var caps []Capability
	for _, c := range checks {
		cp := Capability{Group: "bpf", Name: c.name, How: c.how, Disables: c.disables}
		if !root {
			cp.Status, cp.Detail = Unknown, "needs root to load test programs"
		} else {
			cp.Status, cp.Detail = errStatus(c.fn(), ebpf.ErrNotSupported)
		}
		caps = append(caps, cp)
	}
	kf := Capability{Group: "bpf", Name: "kfunc bpf_cast_to_kern_ctx", How: "function in kernel BTF",
		Disables: disTagger + ": it reads the sequence number of the segment being sized"}
	if spec, err := btf.LoadKernelSpec(); err != nil {
		kf.Status, kf.Detail = Unknown, err.Error()
	} else {
		var fn *btf.Func
		kf.Status = yesNo(spec.TypeByName("bpf_cast_to_kern_ctx", &fn) == nil)
	}
	return append(caps, kf)
}

// haveTpBTF loads (without attaching) the smallest tp_btf program.
// features.HaveProgramType cannot answer for Tracing, which needs a BTF
// attach target.
func haveTpBTF() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     "kfree_skb",
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if errors.Is(err, btf.ErrNotFound) {
		return fmt.Errorf("no BTF attach target kfree_skb: %w", errors.Join(err, ebpf.ErrNotSupported))
	}
	if err != nil {
		return err
	}
	return prog.Close()
}

// tracepoints bufscope's monitors attach to, and what each provides.
var tracepoints = []struct{ name, disables string }{
	{"qdisc_enqueue", "qdisc residence time and occupancy (queuing events)"},
	{"qdisc_dequeue", "qdisc residence time and stalls of throttled shapers"},
	{"kfree_skb", "drop events with kernel drop reasons"},
	{"tcp_retransmit_skb", "retransmission events"},
	{"sock_rcvqueue_full", "socket receive queue overflow events"},
	{"sock_exceed_buf_limit", "socket buffer memory pressure events"},
	{"tcp_probe", "send/receive window and receive-stall events"},
	{"sock_send_length", "application send timing"},
	{"sock_recv_length", "application receive timing"},
	{"net_dev_xmit", "NIC TX hand-off timing"},
	{"tcp_cong_state_set", "congestion state changes"},
}

func tracepointCaps() []Capability {
	spec, err := btf.LoadKernelSpec()
	var caps []Capability
	for _, tp := range tracepoints {
		c := Capability{Group: "tracepoint", Name: tp.name, Disables: tp.disables,
			How: "BTF type btf_trace_" + tp.name + " (what tp_btf attaches to)"}
		if err != nil {
			c.Status, c.Detail = Unknown, err.Error()
		} else {
			var td *btf.Typedef
			c.Status = yesNo(spec.TypeByName("btf_trace_"+tp.name, &td) == nil)
		}
		caps = append(caps, c)
	}
	return caps
}

// qdiscCaps asks the kernel to create each qdisc kind on the loopback
// device of a fresh, anonymous network namespace. The kernel answers
// ENOENT only for kinds it does not know (after trying to load the module);
// any other answer, including a refusal of the missing parameters, means the
// kind exists. The namespace belongs to one OS thread and disappears with
// it, so nothing is left behind even if the process dies.
func qdiscCaps(ctx context.Context, root bool, kinds []string) []Capability {
	caps := make([]Capability, len(kinds))
	for i, k := range kinds {
		caps[i] = Capability{Group: "qdisc", Name: k, Disables: qdiscDisables(k)}
	}
	if !root {
		for i, k := range kinds {
			caps[i].How = "/sys/module/sch_" + k + " (the netns probe needs root)"
			if _, err := os.Stat("/sys/module/sch_" + k); err == nil {
				caps[i].Status, caps[i].Detail = Yes, "module loaded or built in"
			} else {
				caps[i].Status, caps[i].Detail = Unknown, "not loaded; may be built in or load on demand"
			}
		}
		return caps
	}
	errs, err := inThrowawayNetns(func() ([]error, error) {
		nl, err := newRtnl()
		if err != nil {
			return nil, err
		}
		defer nl.close()
		out := make([]error, len(kinds))
		for i, k := range kinds {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			out[i] = nl.tryQdisc(k)
		}
		return out, nil
	})
	for i := range caps {
		caps[i].How = "create on lo in a throwaway netns (netlink RTM_NEWQDISC)"
		switch {
		case err != nil:
			caps[i].Status, caps[i].Detail = Unknown, err.Error()
		case errs[i] == nil:
			caps[i].Status = Yes
		case errors.Is(errs[i], unix.ENOENT):
			caps[i].Status, caps[i].Detail = No, "kernel: unknown qdisc kind"
		default:
			caps[i].Status, caps[i].Detail = Yes, fmt.Sprintf("exists (probe without parameters refused: %v)", errs[i])
		}
	}
	return caps
}

func qdiscDisables(kind string) string {
	switch kind {
	case "tbf", "htb":
		return "lab rate limits and stalls"
	case "bfifo", "pfifo":
		return "lab queues with small limits (overflow drops)"
	case "netem":
		return "nothing: lab delay and loss use tc BPF and shapers instead"
	case "clsact":
		return "tc BPF programs (lab loss injection)"
	}
	return "nothing bufscope needs; listed to describe the host"
}

// inThrowawayNetns runs fn on a locked OS thread moved into a new network
// namespace. The thread is never unlocked, so Go discards it afterwards
// and no other goroutine ever runs in that namespace.
func inThrowawayNetns[T any](fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			var zero T
			ch <- result{zero, fmt.Errorf("unshare(CLONE_NEWNET): %w", err)}
			return
		}
		v, err := fn()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// rtnl is a minimal rtnetlink client for the qdisc probe.
type rtnl struct {
	fd  int
	seq uint32
}

func newRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &rtnl{fd: fd}, nil
}

func (n *rtnl) close() { unix.Close(n.fd) }

const (
	sizeofTcMsg = 20 // struct tcmsg
	tcHRoot     = 0xFFFFFFFF
	tcHClsact   = 0xFFFFFFF1 // TC_H_CLSACT == TC_H_INGRESS
)

// tryQdisc creates a qdisc of the given kind on lo (ifindex 1) and deletes
// it again; the error is the kernel's answer to the creation.
func (n *rtnl) tryQdisc(kind string) error {
	parent, handle := uint32(tcHRoot), uint32(0)
	if kind == "clsact" || kind == "ingress" {
		parent, handle = tcHClsact, 0xFFFF0000
	}
	err := n.request(unix.RTM_NEWQDISC, unix.NLM_F_CREATE|unix.NLM_F_EXCL, kind, parent, handle)
	if err == nil {
		// Leave lo as it was for the next kind.
		_ = n.request(unix.RTM_DELQDISC, 0, "", parent, handle)
	}
	return err
}

func (n *rtnl) request(typ uint16, flags uint16, kind string, parent, handle uint32) error {
	n.seq++
	var attr []byte
	if kind != "" {
		alen := unix.SizeofRtAttr + len(kind) + 1
		attr = make([]byte, (alen+3)&^3)
		binary.NativeEndian.PutUint16(attr[0:], uint16(alen))
		binary.NativeEndian.PutUint16(attr[2:], unix.TCA_KIND)
		copy(attr[4:], kind)
	}
	msg := make([]byte, unix.SizeofNlMsghdr+sizeofTcMsg+len(attr))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], n.seq)
	tc := msg[unix.SizeofNlMsghdr:]
	tc[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(tc[4:], 1) // ifindex of lo
	binary.NativeEndian.PutUint32(tc[8:], handle)
	binary.NativeEndian.PutUint32(tc[12:], parent)
	copy(msg[unix.SizeofNlMsghdr+sizeofTcMsg:], attr)
	if err := unix.Sendto(n.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		nr, _, err := unix.Recvfrom(n.fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		if done, err := parseNlAck(buf[:nr], n.seq); done {
			return err
		}
	}
}

// parseNlAck looks for the acknowledgement of request seq among the
// netlink messages in b. done is false if b holds none (keep reading);
// otherwise err is the kernel's answer, or a description of a malformed
// message.
func parseNlAck(b []byte, seq uint32) (done bool, err error) {
	for len(b) >= unix.SizeofNlMsghdr {
		mlen := int(binary.NativeEndian.Uint32(b[0:]))
		if mlen < unix.SizeofNlMsghdr || mlen > len(b) {
			return true, fmt.Errorf("netlink: message length %d with %d bytes left", mlen, len(b))
		}
		typ, mseq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
		if mseq == seq && typ == unix.NLMSG_ERROR {
			if mlen < unix.SizeofNlMsghdr+4 {
				return true, errors.New("netlink: error message without error code")
			}
			if code := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:])); code != 0 {
				if code > 0 || code < -4095 {
					return true, fmt.Errorf("netlink: error code %d out of range", code)
				}
				return true, unix.Errno(-code)
			}
			return true, nil
		}
		b = b[min((mlen+3)&^3, len(b)):]
	}
	return false, nil
}

// smartNICVendors are PCI vendors that make SmartNICs, DPUs or
// programmable NICs.
var smartNICVendors = map[string]string{
	"0x15b3": "Mellanox/NVIDIA (ConnectX, BlueField)",
	"0x8086": "Intel (E810/IPU)",
	"0x19ee": "Netronome (Agilio)",
	"0x1dd8": "AMD Pensando (DSC)",
	"0x14e4": "Broadcom (Stingray/NetXtreme)",
	"0x10ee": "Xilinx/AMD (Alveo)",
	"0x177d": "Marvell/Cavium (LiquidIO, OCTEON)",
	"0x1924": "Solarflare/AMD (X2, XtremeScale)",
	"0x1d0f": "Amazon (ENA, Nitro)",
}

// interfaces lists the devices of netns (the caller's when "").
func interfaces(netns string) ([]Interface, error) {
	if netns == "" {
		return listInterfaces()
	}
	type result struct {
		ifs []Interface
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked and is discarded after the goroutine
		// ends, so it never runs other code in the wrong namespace.
		runtime.LockOSThread()
		f, err := os.Open(netns)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("entering netns %s: %w", netns, err)}
			return
		}
		ifs, err := listInterfaces()
		ch <- result{ifs, err}
	}()
	r := <-ch
	return r.ifs, r.err
}

// listInterfaces runs entirely on the calling thread, which matters when
// that thread was moved into another netns: the socket it opens and the
// sysfs it reads must be that namespace's.
func listInterfaces() ([]Interface, error) {
	nifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	out := make([]Interface, 0, len(nifs))
	for _, ni := range nifs {
		out = append(out, describe(fd, ni))
	}
	return out, nil
}

func describe(fd int, ni net.Interface) Interface {
	it := Interface{Name: ni.Name, Index: ni.Index, TSO: Unknown, GSO: Unknown, HWTimestamps: Unknown, PHCIndex: -1}
	var problems []string
	if di, err := unix.IoctlGetEthtoolDrvinfo(fd, ni.Name); err == nil {
		it.Driver = unix.ByteSliceToString(di.Driver[:])
		it.BusInfo = unix.ByteSliceToString(di.Bus_info[:])
	} else if l, lerr := os.Readlink(filepath.Join("/sys/class/net", ni.Name, "device/driver")); lerr == nil {
		it.Driver = filepath.Base(l)
	} else if ni.Flags&net.FlagLoopback == 0 {
		problems = append(problems, "driver: "+err.Error())
	}
	// sysfs shows the namespace the reading thread's mount namespace was
	// set up for; a device of another netns is absent there, which only
	// loses the PCI IDs.
	dev := filepath.Join("/sys/class/net", ni.Name, "device")
	it.VendorID = readTrim(filepath.Join(dev, "vendor"))
	it.DeviceID = readTrim(filepath.Join(dev, "device"))
	if v, ok := smartNICVendors[it.VendorID]; ok {
		it.Vendor, it.SmartNICVendor = v, true
	}
	if v, err := ethtoolValue(fd, ni.Name, unix.ETHTOOL_GTSO); err == nil {
		it.TSO = yesNo(v != 0)
	} else {
		problems = append(problems, "tso: "+err.Error())
	}
	if v, err := ethtoolValue(fd, ni.Name, unix.ETHTOOL_GGSO); err == nil {
		it.GSO = yesNo(v != 0)
	} else {
		problems = append(problems, "gso: "+err.Error())
	}
	if ts, err := ethtoolTsInfo(fd, ni.Name); err == nil {
		const hw = unix.SOF_TIMESTAMPING_TX_HARDWARE | unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE
		it.HWTimestamps = yesNo(ts.So_timestamping&hw == hw)
		it.PHCIndex = int(ts.Phc_index)
	} else {
		problems = append(problems, "timestamping: "+err.Error())
	}
	it.Error = strings.Join(problems, "; ")
	it.Effects = it.effects()
	return it
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ifreqData is struct ifreq with ifr_data, the pointer SIOCETHTOOL reads.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

func ethtool(fd int, name string, data unsafe.Pointer) error {
	var ifr ifreqData
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q too long", name)
	}
	copy(ifr.name[:], name)
	ifr.data = data
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if errno != 0 {
		return errno
	}
	return nil
}

func ethtoolValue(fd int, name string, cmd uint32) (uint32, error) {
	v := struct{ cmd, data uint32 }{cmd: cmd}
	err := ethtool(fd, name, unsafe.Pointer(&v))
	return v.data, err
}

func ethtoolTsInfo(fd int, name string) (unix.EthtoolTsInfo, error) {
	ts := unix.EthtoolTsInfo{Cmd: unix.ETHTOOL_GET_TS_INFO}
	err := ethtool(fd, name, unsafe.Pointer(&ts))
	return ts, err
}
