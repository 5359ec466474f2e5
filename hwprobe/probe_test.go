//go:build linux

package hwprobe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestProbeKernelFacts(t *testing.T) {
	r, err := Probe(context.Background(), ProbeOptions{SkipQdiscs: true})
	if err != nil {
		t.Fatal(err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	if want := unix.ByteSliceToString(u.Release[:]); r.KernelRelease != want {
		t.Errorf("kernel release %q, uname says %q", r.KernelRelease, want)
	}
	if r.Root != (os.Geteuid() == 0) {
		t.Errorf("Root = %v as euid %d", r.Root, os.Geteuid())
	}
	_, statErr := os.Stat("/sys/kernel/btf/vmlinux")
	btfCap, ok := r.Capability("kernel", "BTF")
	if !ok || (btfCap.Status == Yes) != (statErr == nil) {
		t.Errorf("BTF capability %+v, but stat says %v", btfCap, statErr)
	}
	// Every reported mount point is what it claims to be.
	for _, m := range r.Cgroup2Mounts {
		var st unix.Statfs_t
		if err := unix.Statfs(m, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			t.Errorf("cgroup2 mount %s: statfs type %#x, %v", m, st.Type, err)
		}
	}
	for _, m := range r.BPFFSMounts {
		var st unix.Statfs_t
		if err := unix.Statfs(m, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
			t.Errorf("bpffs mount %s: statfs type %#x, %v", m, st.Type, err)
		}
	}
	for _, c := range r.Capabilities {
		if c.How == "" || c.Disables == "" || c.Status == "" {
			t.Errorf("capability %s/%s lacks how, status or what it disables: %+v", c.Group, c.Name, c)
		}
		if c.Group == "qdisc" {
			t.Errorf("qdisc %s probed although SkipQdiscs was set", c.Name)
		}
	}
	lo := false
	for _, it := range r.Interfaces {
		lo = lo || it.Name == "lo"
	}
	if !lo {
		t.Errorf("no lo among %d interfaces", len(r.Interfaces))
	}
}

func TestProbeBPFAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: BPF feature probes load programs (CI runs as root)")
	}
	r, err := Probe(context.Background(), ProbeOptions{SkipQdiscs: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Capabilities {
		if c.Group == "bpf" && c.Status == Unknown {
			t.Errorf("as root, %s is still unknown: %s", c.Name, c.Detail)
		}
	}
}

func TestProbeQdiscs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the qdisc probe creates a network namespace (CI runs as root)")
	}
	const bogus = "bstnosuchqdisc"
	r, err := Probe(context.Background(), ProbeOptions{Qdiscs: []string{"pfifo", "tbf", "clsact", bogus}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{"pfifo": Yes, "tbf": Yes, "clsact": Yes, bogus: No}
	for name, st := range want {
		c, ok := r.Capability("qdisc", name)
		// pfifo is part of the scheduler core; tbf and clsact are what
		// the lab uses, so a host that runs these tests has them.
		if !ok || c.Status != st {
			t.Errorf("qdisc %s: %+v, want %s", name, c, st)
		}
	}
	// The probe's namespace is anonymous and died with its thread: the
	// host's lo still has its default qdisc.
	out, err := exec.Command("tc", "qdisc", "show", "dev", "lo").CombinedOutput()
	if err == nil && len(out) > 0 && !strings.Contains(string(out), "noqueue") {
		t.Errorf("host lo qdisc changed: %s", out)
	}
}

func TestProbeVethInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a veth pair (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs ip: %v", err)
	}
	ns := fmt.Sprintf("bst-probe-%d", os.Getpid())
	a, b := fmt.Sprintf("bst-pa%d", os.Getpid()%100000), fmt.Sprintf("bst-pb%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v %s", err, out)
	}
	r, err := Probe(context.Background(), ProbeOptions{SkipQdiscs: true, Netns: filepath.Join("/run/netns", ns)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Interface{}
	for _, it := range r.Interfaces {
		got[it.Name] = it
	}
	if len(got) != 3 {
		t.Errorf("interfaces in the new netns: %v, want lo, %s, %s", got, a, b)
	}
	for _, name := range []string{a, b} {
		it, ok := got[name]
		if !ok || it.Driver != "veth" || it.SmartNICVendor || it.VendorID != "" || it.TSO == Unknown || it.HWTimestamps != No {
			t.Errorf("%s: %+v, want driver veth, no PCI vendor, known TSO, no hardware timestamps", name, it)
		}
	}
	if _, err := Probe(context.Background(), ProbeOptions{SkipQdiscs: true, Netns: "/run/netns/bst-does-not-exist"}); err == nil {
		t.Error("probing a missing netns succeeded")
	}
}

func TestReadMounts(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "mountinfo")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, err := readMounts(write("35 24 0:30 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n" +
		"36 24 0:31 / /sys/fs/bpf rw - bpf bpffs rw,mode=700\n" +
		"37 24 0:32 / /mnt/with\\040space rw - cgroup2 cgroup2 rw\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m["cgroup2"]; len(got) != 2 || got[0] != "/sys/fs/cgroup/unified" || got[1] != "/mnt/with space" {
		t.Errorf("cgroup2 mounts %q", got)
	}
	if got := m["bpf"]; len(got) != 1 || got[0] != "/sys/fs/bpf" {
		t.Errorf("bpf mounts %q", got)
	}
	for _, bad := range []string{"garbage\n", "1 2 3 4\n", "1 2 3 4 5 -\n", "1 2 3 4 5 - \n"} {
		if _, err := readMounts(write(bad)); err == nil {
			t.Errorf("readMounts(%q) succeeded", bad)
		}
	}
	if _, err := readMounts(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:        "/plain",
		`/a\040b`:       "/a b",
		`/tab\011x`:     "/tab\tx",
		`/trail\04`:     `/trail\04`,
		`/notoct\089`:   `/notoct\089`,
		`\134backslash`: `\backslash`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// An acknowledgement as the kernel sends it for request 7 (host byte
// order, little-endian here):
//
//	24 00 00 00  02 00  00 01  07 00 00 00  00 00 00 00   nlmsghdr: len 36, NLMSG_ERROR, seq 7
//	fe ff ff ff                                           error -2 (ENOENT)
//	10 00 00 00  24 00  05 00  07 00 00 00  00 00 00 00   the request's header
func TestParseNlAck(t *testing.T) {
	if !isLittleEndian() {
		t.Skip("vectors are little-endian")
	}
	enoent := []byte{
		0x24, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x01, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xfe, 0xff, 0xff, 0xff,
		0x10, 0x00, 0x00, 0x00, 0x24, 0x00, 0x05, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	}
	if done, err := parseNlAck(enoent, 7); !done || err != unix.ENOENT {
		t.Errorf("ENOENT ack: done %v err %v", done, err)
	}
	if done, err := parseNlAck(enoent, 8); done || err != nil {
		t.Errorf("ack for another request: done %v err %v", done, err)
	}
	ok := append([]byte(nil), enoent...)
	copy(ok[16:20], []byte{0, 0, 0, 0})
	if done, err := parseNlAck(ok, 7); !done || err != nil {
		t.Errorf("success ack: done %v err %v", done, err)
	}
	for i := 0; i < len(enoent); i++ {
		done, err := parseNlAck(enoent[:i], 7) // must not panic
		if done && err == nil {
			t.Errorf("truncated to %d bytes: reported success", i)
		}
	}
}

func isLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

func FuzzParseNlAck(f *testing.F) {
	f.Add([]byte{0x24, 0, 0, 0, 2, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff}, uint32(7))
	f.Add([]byte{0x10, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0}, uint32(7))
	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		_, _ = parseNlAck(b, seq)
	})
}

func FuzzParseMounts(f *testing.F) {
	f.Add([]byte("35 24 0:30 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n"))
	f.Add([]byte("37 24 0:32 / /mnt/with\\040space rw - bpf bpffs rw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMounts("fuzz", b)
		if err != nil {
			return
		}
		for typ, points := range m {
			if typ == "" || len(points) == 0 {
				t.Fatalf("empty type or mount list: %q", m)
			}
		}
	})
}
