//go:build linux

package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// sh runs a command and returns an error carrying its output.
func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ipn runs `ip -n ns ...`.
func ipn(ns string, args ...string) error {
	return sh("ip", append([]string{"-n", ns}, args...)...)
}

// tcn runs tc inside ns.
func tcn(ns string, args ...string) error {
	return sh("ip", append([]string{"netns", "exec", ns, "tc"}, args...)...)
}

// netnsPath is the file `ip netns add` bind-mounts a namespace on.
func netnsPath(name string) string { return "/var/run/netns/" + name }

// inNetns runs f on a locked OS thread that has joined the namespace at
// path, then returns the thread to its own namespace. Sockets and BPF
// links f creates stay in the namespace for their whole life.
func inNetns(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is unlocked only once it is back in its namespace;
		// otherwise the runtime throws it away when this goroutine ends.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(netnsPath(name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering netns %s: %w", name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leaving netns %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// cgroup2Root finds where a cgroup v2 hierarchy is mounted (a hybrid
// system mounts it at /sys/fs/cgroup/unified).
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy is mounted (see /proc/self/mounts): mount one with `mount -t cgroup2 none /sys/fs/cgroup/unified`")
}

// cpuTicks reads the machine-wide CPU counters of /proc/stat: ticks
// spent busy (everything but idle and iowait; steal counts as busy, the
// CPU was not there for the workload) and in total, summed over all
// CPUs. Only the first eight fields count: guest and guest_nice, which
// follow, are already part of user and nice. Zero on error: the figure it
// feeds is context, not a result.
func cpuTicks() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total
}

// selfCPU is this process's user + system time so far.
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
