package lab

// The lossy-link program's bindings are committed so that building bufscope
// needs no clang; regenerate with `go generate ./hwprobe/lab`.

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I../bpf/headers" -target amd64 loss bpf/loss.bpf.c
