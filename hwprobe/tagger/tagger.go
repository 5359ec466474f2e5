//go:build linux

package tagger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/bufscope/bufscope/decode"
)

// ErrNotSupported is wrapped by Load when the kernel lacks a feature the
// tagger needs (sockops programs, socket storage, TCP header option helpers,
// BTF). It is cilium/ebpf's sentinel, so errors.Is works with either name.
var ErrNotSupported = ebpf.ErrNotSupported

// DefaultExID is the RFC 6994 experiment ID of the request tag: the one
// the wire format (docs/wire-format.md §1) and package decode define.
const DefaultExID = decode.TagExID

// DefaultPinDir is where taggers pin their tags maps.
const DefaultPinDir = "/sys/fs/bpf/bufscope"

// bpffsRoot is where the BPF file system is conventionally mounted.
const bpffsRoot = "/sys/fs/bpf"

// Options configures Load.
type Options struct {
	// CgroupPath is a cgroup v2 directory; sockets created by its tasks
	// (and those of its descendants) are tagged. Required.
	CgroupPath string
	// Name distinguishes taggers loaded at the same time: the tags map is
	// pinned at PinDir/Name. Default "tags".
	Name string
	// PinDir is a directory on a BPF file system. Default DefaultPinDir.
	// If nothing is mounted at /sys/fs/bpf, Load mounts a BPF file system
	// there (as systemd does at boot) and leaves it mounted.
	PinDir string
	// ExID is the experiment ID written into the tag. Default DefaultExID.
	ExID uint16
	// MaxMessages sizes the tags map: the number of announced messages the
	// kernel remembers at once (least recently used go first). Default
	// 65536.
	MaxMessages uint32
}

// Tagger is a loaded and attached request tagger. Its methods are safe for
// concurrent use; Close must be called exactly once to detach it.
type Tagger struct {
	objs    taggerObjects
	link    link.Link
	pinPath string
	pinDir  string
}

// Load checks the kernel, loads the tagger, pins its tags map and attaches
// the program to opts.CgroupPath. Missing kernel features give errors that
// wrap ErrNotSupported; running without root gives one that wraps
// os.ErrPermission.
func Load(opts Options) (*Tagger, error) {
	if opts.CgroupPath == "" {
		return nil, errors.New("tagger: no cgroup given: set a cgroup v2 directory (e.g. /sys/fs/cgroup/unified/<group>)")
	}
	if opts.Name == "" {
		opts.Name = "tags"
	}
	if opts.PinDir == "" {
		opts.PinDir = DefaultPinDir
	}
	if opts.ExID == 0 {
		opts.ExID = DefaultExID
	}
	if opts.MaxMessages == 0 {
		opts.MaxMessages = 65536
	}
	if filepath.Base(opts.Name) != opts.Name || opts.Name == "." || opts.Name == ".." {
		return nil, fmt.Errorf("tagger: name %q must be a plain file name", opts.Name)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("tagger: loading eBPF programs needs root (CAP_BPF, CAP_NET_ADMIN), run as root: %w", os.ErrPermission)
	}
	if err := CheckKernel(); err != nil {
		return nil, err
	}
	if err := isCgroup2(opts.CgroupPath); err != nil {
		return nil, err
	}
	if err := ensurePinDir(opts.PinDir); err != nil {
		return nil, err
	}
	pinPath := filepath.Join(opts.PinDir, opts.Name)
	if _, err := os.Lstat(pinPath); err == nil {
		return nil, fmt.Errorf("tagger: %s already exists: another tagger named %q is loaded, or one exited without Close (remove the file if no tagger runs)", pinPath, opts.Name)
	}

	spec, err := loadTagger()
	if err != nil {
		return nil, fmt.Errorf("tagger: parsing embedded object: %w", err)
	}
	if err := spec.Variables["tag_exid"].Set(opts.ExID); err != nil {
		return nil, fmt.Errorf("tagger: setting ExID: %w", err)
	}
	spec.Maps["tags"].MaxEntries = opts.MaxMessages

	t := &Tagger{pinPath: pinPath, pinDir: opts.PinDir}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("tagger: kernel rejected the program: %w (%+v)", err, verr)
		}
		return nil, fmt.Errorf("tagger: loading: %w", err)
	}
	if err := pin(t.objs.Tags, opts.PinDir, pinPath); err != nil {
		t.objs.Close()
		return nil, fmt.Errorf("tagger: pinning tags map at %s: %w", pinPath, err)
	}
	t.link, err = link.AttachCgroup(link.CgroupOptions{
		Path:    opts.CgroupPath,
		Attach:  ebpf.AttachCGroupSockOps,
		Program: t.objs.BufscopeTagger,
	})
	if err != nil {
		t.objs.Tags.Unpin()
		t.objs.Close()
		removeIfEmpty(opts.PinDir)
		return nil, fmt.Errorf("tagger: attaching to cgroup %s: %w", opts.CgroupPath, err)
	}
	return t, nil
}

// CheckKernel reports, as an error wrapping ErrNotSupported, the first
// kernel feature the tagger needs and this kernel lacks. It needs root.
func CheckKernel() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("tagger: kernel has no BTF (/sys/kernel/btf/vmlinux): %w", ErrNotSupported)
	}
	checks := []struct {
		what string
		err  func() error
	}{
		{"sockops programs", func() error { return features.HaveProgramType(ebpf.SockOps) }},
		{"socket local storage maps", func() error { return features.HaveMapType(ebpf.SkStorage) }},
		{"LRU hash maps", func() error { return features.HaveMapType(ebpf.LRUHash) }},
		{"helper bpf_reserve_hdr_opt", func() error { return features.HaveProgramHelper(ebpf.SockOps, asm.FnReserveHdrOpt) }},
		{"helper bpf_store_hdr_opt", func() error { return features.HaveProgramHelper(ebpf.SockOps, asm.FnStoreHdrOpt) }},
		{"helper bpf_sk_storage_get", func() error { return features.HaveProgramHelper(ebpf.SockOps, asm.FnSkStorageGet) }},
	}
	for _, c := range checks {
		if err := c.err(); err != nil {
			if errors.Is(err, ErrNotSupported) {
				return fmt.Errorf("tagger: kernel lacks %s: %w", c.what, err)
			}
			return fmt.Errorf("tagger: probing %s: %w", c.what, err)
		}
	}
	return nil
}

// PinPath is the file under which the tags map is pinned; hand it to
// rpctag.Open in processes that did not load the tagger.
func (t *Tagger) PinPath() string { return t.pinPath }

// Tags is the tags map, owned by the Tagger: do not close it. Valid until
// Close.
func (t *Tagger) Tags() *ebpf.Map { return t.objs.Tags }

// Program is the loaded sockops program, owned by the Tagger (for stats
// and inspection). Valid until Close.
func (t *Tagger) Program() *ebpf.Program { return t.objs.BufscopeTagger }

// Close detaches the program from the cgroup, removes the pin (and the pin
// directory when it becomes empty) and releases the program and maps. After
// Close no program, link, map or pin of this tagger remains in the kernel
// (maps stay alive only while another process holds them open).
func (t *Tagger) Close() error {
	var errs []error
	if t.link != nil {
		if err := t.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detaching: %w", err))
		}
	}
	if err := t.objs.Tags.Unpin(); err != nil {
		errs = append(errs, fmt.Errorf("unpinning %s: %w", t.pinPath, err))
	}
	if err := t.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	removeIfEmpty(t.pinDir)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tagger: close: %w", err)
	}
	return nil
}

// Stats are the tagger's counters since Load, summed over CPUs.
type Stats struct {
	Sockets          uint64 // connections that got header-option callbacks
	MSSReserved      uint64 // MSS computations that reserved the tag's space
	Reserved         uint64 // segments that reserved space for a tag
	Tagged           uint64 // tags written into segments
	RetransmitTagged uint64 // of which on retransmitted segments
	Lost             uint64 // reserved, but the entry was gone at write time
	NoSpace          uint64 // message starts that found no option space (SACK)
	Errors           uint64 // helper failures
}

// Stats reads the counters. Safe for concurrent use.
func (t *Tagger) Stats() (Stats, error) {
	var s Stats
	fields := []*uint64{&s.Sockets, &s.MSSReserved, &s.Reserved, &s.Tagged,
		&s.RetransmitTagged, &s.Lost, &s.NoSpace, &s.Errors}
	for i, f := range fields {
		var per []uint64
		if err := t.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return Stats{}, fmt.Errorf("tagger: reading counter %d: %w", i, err)
		}
		for _, v := range per {
			*f += v
		}
	}
	// Lost is not counted in the kernel: a reservation whose write found
	// nothing leaves NOP padding behind.
	if s.Reserved > s.Tagged {
		s.Lost = s.Reserved - s.Tagged
	}
	return s, nil
}

func isCgroup2(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("tagger: cgroup %s: %w", path, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("tagger: %s is not on a cgroup v2 file system (sockops attaches to cgroup v2 only; see `bufscope probe` for its mount point)", path)
	}
	return nil
}

// ensurePinDir makes dir on a BPF file system, mounting one at /sys/fs/bpf
// when nothing is mounted there yet and dir lies below it.
func ensurePinDir(dir string) error {
	if onBPFFS(filepath.Dir(dir)) {
		return mkdirBPF(dir)
	}
	if rel, err := filepath.Rel(bpffsRoot, dir); err == nil && filepath.IsLocal(rel) && !onBPFFS(bpffsRoot) {
		if err := unix.Mount("bpffs", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("tagger: mounting a BPF file system at %s: %w", bpffsRoot, err)
		}
		return mkdirBPF(dir)
	}
	if onBPFFS(dir) {
		return nil
	}
	return fmt.Errorf("tagger: pin directory %s is not on a BPF file system (mount one with `mount -t bpf bpffs %s`)", dir, filepath.Dir(dir))
}

// pin pins m at path, recreating dir if a tagger in another process
// removed it between ensurePinDir and now (Close removes it when empty).
func pin(m *ebpf.Map, dir, path string) error {
	var err error
	for range 5 {
		if err = m.Pin(path); !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := mkdirBPF(dir); err != nil {
			return err
		}
	}
	return err
}

func mkdirBPF(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tagger: creating pin directory: %w", err)
	}
	return nil
}

func onBPFFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

// removeIfEmpty drops the pin directory once the last tagger has gone, so
// nothing is left behind; os.Remove refuses non-empty directories.
func removeIfEmpty(dir string) { _ = os.Remove(dir) }
