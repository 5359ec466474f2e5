//go:build linux

package lab

import (
	"syscall"

	"golang.org/x/sys/unix"
)

type syscallRawConn = syscall.RawConn

const (
	soRcvbuf = unix.SO_RCVBUF
	soSndbuf = unix.SO_SNDBUF
)

func setsockoptInt(fd uintptr, opt, v int) error {
	return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, v)
}
