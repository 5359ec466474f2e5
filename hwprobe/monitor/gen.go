package monitor

// The generated bindings are committed so that building bufscope needs no
// clang. Only little-endian x86-64 objects are generated: the programs use
// BPF_CORE_READ throughout, but the tracepoint argument macros are built for
// __TARGET_ARCH_x86.

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -I../bpf/headers" -target amd64 -type event monitor bpf/monitor.bpf.c
