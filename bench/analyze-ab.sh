#!/usr/bin/env bash
# Compare bufscope analyze as built from two revisions on one trace, runs
# alternating so both see the same machine. Prints, per revision, the
# median and best wall time, Records per second (the trace's Records over
# wall time) and CPU seconds (user + system, all threads).
#
# Usage: bench/analyze-ab.sh OLD_REV NEW_REV TRACE [RUNS] [ANALYZE FLAGS...]
#   e.g. bench/analyze-ab.sh HEAD~3 HEAD bench/large.trace.zst 8 --slo 20ms
# RUNS defaults to 8; the flags default to --slo 20ms. --top 0 is always
# passed, so rendering is the same small cost for both.
#
# Needs go, git, jq and /usr/bin/time. Benchmarks need a quiet machine:
# on 2 CPUs any other work shows up in the wall time (docs/performance.md).
set -euo pipefail

[ $# -ge 3 ] || { sed -n 2,12p "$0" >&2; exit 2; }
old=$1 new=$2 trace=$3
runs=${4:-8}
shift $(( $# >= 4 ? 4 : 3 ))
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--slo 20ms)

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
tmp=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
for tool in go git jq /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "analyze-ab: $tool not found" >&2; exit 2; }
done

build() { # build REV OUT
	git -C "$root" worktree add --detach --force "$tmp/src" "$1" >/dev/null 2>&1
	(cd "$tmp/src" && go build -o "$2" ./cmd/bufscope)
	git -C "$root" worktree remove --force "$tmp/src" >/dev/null
}
build "$old" "$tmp/old"
build "$new" "$tmp/new"

records=$("$tmp/new" analyze --json --top 0 "${flags[@]}" "$trace" | jq .stats.records)
for _ in $(seq "$runs"); do
	for v in old new; do
		/usr/bin/time -f "$v %e %U %S" -a -o "$tmp/times" "$tmp/$v" analyze --top 0 "${flags[@]}" "$trace" >/dev/null
	done
done
echo "$trace: $records Records, $runs runs each, alternating; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| revision | wall, median (best) | Records/s, median (best) | CPU s, median (best) |\n|---|---|---|---|\n'
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for v in old new; do
	rev=$old; [ $v = new ] && rev=$new
	wall=$(awk -v v=$v '$1 == v { print $2 }' "$tmp/times" | median)
	best=$(awk -v v=$v '$1 == v { print $2 }' "$tmp/times" | sort -n | head -1)
	cpu=$(awk -v v=$v '$1 == v { print $3 + $4 }' "$tmp/times" | median)
	cbest=$(awk -v v=$v '$1 == v { print $3 + $4 }' "$tmp/times" | sort -n | head -1)
	awk -v rev="$rev" -v n="$records" -v w="$wall" -v b="$best" -v c="$cpu" -v cb="$cbest" 'BEGIN {
		printf "| %s | %.2f s (%.2f) | %.2f M (%.2f) | %.2f (%.2f) |\n", rev, w, b, n / w / 1e6, n / b / 1e6, c, cb }'
done
