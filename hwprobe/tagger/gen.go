package tagger

// The generated files are committed so building needs no clang. Only the
// little-endian (amd64, arm64) object is generated: the program has no
// architecture-specific code, but vmlinux.h was dumped on x86-64.
//go:generate go tool bpf2go -tags linux -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86 -I../bpf/headers" tagger bpf/tagger.bpf.c
