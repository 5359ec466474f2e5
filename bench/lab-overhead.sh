#!/bin/sh
# Measure bufscope's overhead in the lab and append the results to
# docs/overhead.md (section "Lab overhead"). Needs root; about 2 minutes.
#
#   sudo bench/lab-overhead.sh
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/bufscope
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/bufscope
"$bin" lab bench --duration 5s --runs 3 --doc docs/overhead.md
