#!/bin/sh
# Measure bufscope's overhead in the lab and append the results to
# docs/overhead.md (section "Lab overhead"): the default deployment (every
# message start at every hop) with the kernel's BPF run-time accounting,
# then message starts of 1 RPC in 16 at the sender only, then the open loop.
# Needs root; about 3 minutes. On a shared machine compare only runs made in
# the same time window.
#
#   sudo bench/lab-overhead.sh
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/bufscope
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/bufscope
"$bin" lab bench --duration 5s --runs 3 --bpf-stats --doc docs/overhead.md
"$bin" lab bench --duration 5s --runs 3 --message-start-every 16 --message-start-first-hop --doc docs/overhead.md
"$bin" lab bench --duration 5s --runs 3 --mode open --rate 500 --doc docs/overhead.md
