#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# B6 support: durable creates through the writer (bench/writer_bench.c) beside LMDB's own
# one-commit-per-write rate (bench/lmdb_commit.c) on the same disk, in the same run, interleaved
# over --runs rounds; prints the median of each cell and the ratio to lmdb_commit.
#
# usage: bench/writer.sh [--runs N] [--count N] [--dir DIR] [--build DIR] [--subs "1 8 64"]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
count=3000
dir=/tmp
build="${HDL_BUILD_DIR:-build}"
subs="1 8 64"
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) runs="$2"; shift 2 ;;
	--count) count="$2"; shift 2 ;;
	--dir) dir="$2"; shift 2 ;;
	--build) build="$2"; shift 2 ;;
	--subs) subs="$2"; shift 2 ;;
	*) echo "usage: $0 [--runs N] [--count N] [--dir DIR] [--build DIR] [--subs LIST]" >&2; exit 2 ;;
	esac
done
for b in lmdb_commit writer_bench; do
	[ -x "$build/$b" ] || { echo "$0: $build/$b not built" >&2; exit 2; }
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$runs"); do
	"$build/lmdb_commit" --dir "$dir" --count "$count" --json >>"$out"
	for s in $subs; do
		"$build/writer_bench" --dir "$dir" --submitters "$s" --count "$count" --json >>"$out"
	done
done

python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(xs): return statistics.median(xs)
base = [r for r in rows if r["bench"] == "lmdb_commit"]
b = med([r["commits_per_s"] for r in base])
print("| cell | rate /s (median) | vs lmdb_commit | ack p50 us | ack p99 us | avg batch | max batch |")
print("|---|---|---|---|---|---|---|")
print("| lmdb_commit, 1 put per fsync'ed commit | %.0f | 1.00 | %.0f | %.0f | 1 | 1 |" % (
    b, med([r["p50_us"] for r in base]), med([r["p99_us"] for r in base])))
subs = sorted({r["submitters"] for r in rows if r["bench"] == "writer"})
for s in subs:
    w = [r for r in rows if r["bench"] == "writer" and r["submitters"] == s]
    rate = med([r["creates_per_s"] for r in w])
    print("| writer, %d submitter%s | %.0f | %.2f | %.0f | %.0f | %.1f | %d |" % (
        s, "" if s == 1 else "s", rate, rate / b, med([r["p50_us"] for r in w]),
        med([r["p99_us"] for r in w]), med([r["avg_batch"] for r in w]),
        max(r["max_batch"] for r in w)))
print("(%d rounds, %d writes per cell, medians)" % (len(base), base[0]["count"]))
EOF
