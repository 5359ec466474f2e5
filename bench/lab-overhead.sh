#!/bin/sh
# Measure bufscope's overhead in the lab and append the results to
# docs/overhead.md (section "Lab overhead"), the five cases of its
# "Targets": the closed loop bound by the CPUs (every message start at
# every hop, with the kernel's BPF run-time accounting), the same bound by
# a 100 Mbit/s link, the open loop, and 1 MiB responses with message starts
# of 1 RPC in 16 (every hop), bound by the CPUs and by the link.
# Needs root; about 4 minutes. On a shared machine compare only runs made
# in the same time window, and run nothing else meanwhile.
#
#   sudo bench/lab-overhead.sh
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/bufscope
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/bufscope
bench() { "$bin" lab bench --duration 5s --runs 3 "$@" --doc docs/overhead.md; }
bench --bpf-stats
bench --bottleneck --link-rate 100mbit --bpf-stats
bench --mode open --rate 500
bench --concurrency 2 --resp-bytes 1048576 --message-start-every 16
bench --bottleneck --link-rate 100mbit --concurrency 2 --resp-bytes 1048576 --message-start-every 16
