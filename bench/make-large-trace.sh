#!/bin/sh
# Record a large lab trace (about a million packets) for the decode and
# analyze benchmarks. It is regenerated, never committed (see .gitignore).
#
# Needs root, a kernel with BTF, ip, tc and tcpdump. About 30 s. Measured:
# 30 s of this workload gave 1.74 million packets (96k requests, 47 MB),
# so the default 18 s gives about a million.
#
#   sudo bench/make-large-trace.sh                 # -> bench/large.trace.zst
#   sudo bench/make-large-trace.sh OTHER.trace.zst 60s
set -eu
cd "$(dirname "$0")/.."
out=${1:-bench/large.trace.zst}
duration=${2:-18s}
bin=$(mktemp -d)/bufscope
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/bufscope
# The none entry, closed loop: 2 clients x 2 servers, 4 connections each,
# 1 KiB requests and 16 KiB responses as fast as the machine goes. The
# mirrored data plane makes up most of the packets, reports the rest.
"$bin" lab run none --duration "$duration" --concurrency 4 -o "$out" --overwrite
