#!/usr/bin/env bash
# Throughput of the recording path (AF_PACKET ring -> zstd trace, on a veth
# in a throwaway bst- namespace; needs root) and of `bufscope decode` on the
# shipped demo trace. Prints go test's benchmark lines; the numbers to read
# are pkts/s and, for recording, drops (must be 0).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
	go test ./capture -run '^$' -bench 'BenchmarkLiveRecord$' -benchtime 300000x -count 3
else
	echo "not root: skipping the live recording benchmark"
fi
go test ./cmd/bufscope -run '^$' -bench 'BenchmarkDecode' -benchmem -count 3
