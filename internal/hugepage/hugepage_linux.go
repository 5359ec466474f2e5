package hugepage

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// madvHugepage is MADV_HUGEPAGE (include/uapi/asm-generic/mman-common.h).
const madvHugepage = 14

func advise(size int) error {
	_, _, err := adviseRange(size)
	return err
}

// adviseRange does Advise's work and returns the mapping it advised.
func adviseRange(size int) (lo, hi uintptr, err error) {
	if size <= 0 {
		return 0, 0, nil
	}
	// A block this large is a span of its own, mapped but not touched
	// (fresh heap memory is known to be zero). The heap's anonymous
	// mapping around it is advised whole: what the program allocated
	// before sits in it too.
	b := make([]byte, size)
	lo, hi, err = mappingOf(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	if err == nil {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, madvHugepage); e != 0 {
			err = fmt.Errorf("madvise(MADV_HUGEPAGE) of the heap at %#x-%#x: %w", lo, hi, e)
		}
	}
	runtime.KeepAlive(b)
	b = nil
	// Free the block now, so that the allocator reuses its pages instead
	// of mapping new ones, which would not be advised.
	runtime.GC()
	return lo, hi, err
}

// mappingOf returns the bounds of the mapping that holds p, as
// /proc/self/maps lists them.
func mappingOf(p uintptr) (lo, hi uintptr, err error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		a, z, ok := parseRange(s.Bytes())
		if ok && a <= p && p < z {
			return a, z, nil
		}
	}
	if err := s.Err(); err != nil {
		return 0, 0, fmt.Errorf("/proc/self/maps: %w", err)
	}
	return 0, 0, fmt.Errorf("address %#x is in no mapping of /proc/self/maps", p)
}

// parseRange reads the "start-end" field that opens a line of
// /proc/PID/maps or /proc/PID/smaps.
func parseRange(line []byte) (lo, hi uintptr, ok bool) {
	dash := bytes.IndexByte(line, '-')
	sp := bytes.IndexByte(line, ' ')
	if dash <= 0 || sp <= dash+1 {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(string(line[:dash]), 16, 64)
	z, err2 := strconv.ParseUint(string(line[dash+1:sp]), 16, 64)
	if err1 != nil || err2 != nil || z <= a {
		return 0, 0, false
	}
	return uintptr(a), uintptr(z), true
}
