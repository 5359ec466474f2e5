#!/usr/bin/env bash
# bufscope record against tcpdump -w, capturing the same traffic in the same
# run: two namespaces joined by a veth (offloads off), iperf3 sending small
# UDP datagrams at each offered rate for a few seconds, and both recorders
# on the receiving veth at once with the same 192-byte snap length. Prints
# one line per rate: datagrams sent, and for each recorder the packets in
# its file and the kernel's drop count. Needs root; removes what it made.
#
#   sudo bench/record-vs-tcpdump.sh [SECONDS] [RATE_PPS...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, AF_PACKET)" >&2; exit 1; }
for tool in iperf3 tcpdump; do
	command -v $tool >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 1; }
done
secs=${1:-4}
shift || true
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(20000 50000 100000 200000)

tag=bst-rvt$$
tmp=$(mktemp -d)
cleanup() {
	ip netns del ${tag}a 2>/dev/null || true
	ip netns del ${tag}b 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add ${tag}a
ip netns add ${tag}b
ip link add ${tag}x netns ${tag}a type veth peer name ${tag}y netns ${tag}b
ip -n ${tag}a addr add 10.251.0.1/24 dev ${tag}x
ip -n ${tag}b addr add 10.251.0.2/24 dev ${tag}y
for n in a:${tag}x b:${tag}y; do
	ns=${tag}${n%%:*} dev=${n#*:}
	ip -n $ns link set lo up
	ip -n $ns link set $dev up gso_max_segs 1 gro_max_size 1500 2>/dev/null || ip -n $ns link set $dev up
done
go build -o "$tmp/bufscope" ./cmd/bufscope

printf '%-10s %-10s %-12s %-10s %-12s %-10s\n' rate_pps sent bufscope bs_drops tcpdump td_drops
for rate in "${rates[@]}"; do
	ip netns exec ${tag}b "$tmp/bufscope" record -i ${tag}y -o "$tmp/r.zst" --overwrite -s 192 -f udp 2>"$tmp/r.err" &
	rpid=$!
	ip netns exec ${tag}b tcpdump -q -i ${tag}y -s 192 -B 4096 -w "$tmp/t.pcap" udp 2>"$tmp/t.err" &
	tpid=$!
	ip netns exec ${tag}b iperf3 -s -1 -B 10.251.0.2 >/dev/null 2>&1 &
	spid=$!
	sleep 1
	# -l 64: small datagrams, the worst case for a recorder; -b in bits/s.
	ip netns exec ${tag}a iperf3 -c 10.251.0.2 -u -l 64 -b $((rate * 64 * 8)) -t "$secs" --json >"$tmp/c.json" 2>/dev/null || true
	sleep 1
	kill -INT $rpid $tpid 2>/dev/null || true
	wait $rpid $tpid 2>/dev/null || true
	wait $spid 2>/dev/null || true
	sent=$(jq '.end.sum.packets // .end.streams[0].udp.packets // 0' "$tmp/c.json")
	bs=$("$tmp/bufscope" decode "$tmp/r.zst" 2>/dev/null | wc -l)
	bsd=$(grep -o '[0-9]* dropped by the kernel' "$tmp/r.err" | grep -o '^[0-9]*' || echo '?')
	td=$(tcpdump -r "$tmp/t.pcap" 2>/dev/null | wc -l)
	tdd=$(grep -o '[0-9]* packets dropped by kernel' "$tmp/t.err" | grep -o '^[0-9]*' || echo '?')
	printf '%-10s %-10s %-12s %-10s %-12s %-10s\n' "$rate" "$sent" "$bs" "$bsd" "$td" "$tdd"
	rm -f "$tmp/r.zst" "$tmp/t.pcap"
done
