#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# idnode import: a byte order mark, handles given twice (counted, listed, last wins, bounded),
# {"home":...} lines, the "no prefix homed" warning, the mark of an import killed half-way
# (reported by the next import and by `idnode prefixes`), `idnode home/unhome/prefixes`, and a
# full disk reported as "disk full" (tests/integration/diskfull_shim.c). Every wait is bounded;
# the one process started in the background is stopped by PID.
set -euo pipefail

src=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bld=${HDL_BUILD_DIR:-$src/build}
idnode=$bld/idnode
[ -x "$idnode" ] || { echo "missing $idnode" >&2; exit 1; }

tmp=$(mktemp -d /tmp/test_import_marks.XXXXXX)
imp_pid=
cleanup() {
	if [ -n "$imp_pid" ]; then
		kill -KILL "$imp_pid" 2>/dev/null || true
		wait "$imp_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
. "$src/tests/lib/checks.sh"
run() { # run OUT ERR cmd... : exit status in $rc, never trips set -e
	local out=$1 err=$2
	shift 2
	set +e
	"$@" >"$out" 2>"$err"
	rc=$?
	set -e
}
rec() { # rec HANDLE DATA : one import line
	printf '{"handle":"%s","values":[{"index":1,"type":"URL","data":"%s"}]}\n' "$1" "$2"
}

# --- a UTF-8 byte order mark on the first line ----------------------------------------------------
{ printf '\xef\xbb\xbf'; rec 88.100.1/BOM first; rec 88.100.1/BOM2 second; } >"$tmp/bom.jsonl"
run "$tmp/o" "$tmp/bom.err" "$idnode" import --db "$tmp/bom" --home 88.100.1 "$tmp/bom.jsonl"
check "a BOM before the first line is accepted (exit $rc)" test "$rc" -eq 0
check "both records imported" grep -q "import: 2 records imported, 0 rejected" "$tmp/bom.err"
printf '\xef\xbb\xbf\xef\xbb\xbf{}\n' >"$tmp/bom2.jsonl"
run "$tmp/o" "$tmp/bom2.err" "$idnode" import --db "$tmp/bom" "$tmp/bom2.jsonl"
check "only one BOM, only on the first line, is skipped" grep -q "^line 1: invalid JSON" "$tmp/bom2.err"

# --- a handle given twice ------------------------------------------------------------------------
{
	rec 88.100.1/DUP one
	rec 88.100.1/OTHER x
	rec 88.100.1/dup two # the same handle (suffixes fold by default)
	rec 88.100.1/DUP three
} >"$tmp/dup.jsonl"
run "$tmp/o" "$tmp/dup.err" "$idnode" import --db "$tmp/dup" --home 88.100.1 "$tmp/dup.jsonl"
check "repeated handles are no error (exit $rc)" test "$rc" -eq 0
check "each repeat is listed with its line" \
	bash -c "grep -q '^line 3: handle 88.100.1/dup was given before in this input; the last line wins' '$tmp/dup.err' &&
	         grep -q '^line 4: handle 88.100.1/DUP was given before' '$tmp/dup.err'"
check "the first occurrence is not listed" bash -c "! grep -qE '^line (1|2):' '$tmp/dup.err'"
check "imported counts distinct handles, duplicates counted" \
	grep -q "import: 2 records imported, 0 rejected, 2 duplicates (the last line wins)" "$tmp/dup.err"
"$idnode" export --db "$tmp/dup" >"$tmp/dup.out"
check "the last line wins" grep -q '"handle":"88.100.1/DUP".*"value":"three"' "$tmp/dup.out"
check "stored = imported" test "$(grep -c '^{"handle"' "$tmp/dup.out")" -eq 2
# across batches (one record per batch) too
run "$tmp/o" "$tmp/dupb.err" "$idnode" import --db "$tmp/dupb" --batch 1 "$tmp/dup.jsonl"
check "duplicates across batches are counted" \
	grep -q "import: 2 records imported, 0 rejected, 2 duplicates" "$tmp/dupb.err"
check "and the last line wins there too" \
	bash -c "\"$idnode\" export --db '$tmp/dupb' | grep -q '\"value\":\"three\"'"
# the memory for it is bounded: --dup-check N remembers N handles, then says it stopped
{ rec 88.100.1/A 1; rec 88.100.1/B 2; rec 88.100.1/A 3; rec 88.100.1/B 4; } >"$tmp/cap.jsonl"
run "$tmp/o" "$tmp/cap.err" "$idnode" import --db "$tmp/cap" --dup-check 1 "$tmp/cap.jsonl"
check "--dup-check 1: exit 0" test "$rc" -eq 0
check "--dup-check 1: the remembered handle is still recognized" grep -q "^line 3: handle 88.100.1/A was given before" "$tmp/cap.err"
check "--dup-check 1: says once that it stopped remembering" \
	test "$(grep -c "remembered 1 handles (--dup-check 1)" "$tmp/cap.err")" -eq 1
check "--dup-check 1: counts what it could see" grep -q " 1 duplicate (the last line wins)" "$tmp/cap.err"
run "$tmp/o" "$tmp/off.err" "$idnode" import --db "$tmp/off" --dup-check 0 "$tmp/cap.jsonl"
check "--dup-check 0: off" grep -q "import: 4 records imported, 0 rejected, 0 duplicates" "$tmp/off.err"
run "$tmp/o" "$tmp/o2" "$idnode" import --db "$tmp/off" --dup-check x "$tmp/cap.jsonl"
check "--dup-check x: usage (2)" test "$rc" -eq 2
# 150 repeats: 100 listed, then a count
{ for i in $(seq 151); do rec 88.100.1/SAME "$i"; done; } >"$tmp/many.jsonl"
run "$tmp/o" "$tmp/many.err" "$idnode" import --db "$tmp/many" "$tmp/many.jsonl"
check "the list of repeats stops at 100" test "$(grep -c 'was given before' "$tmp/many.err")" -eq 100
check "then a count of the rest" grep -q "^\.\.\. 50 more repeated handles not listed" "$tmp/many.err"

# --- {"home":...} lines and the "no prefix homed" warning -------------------------------------------
{
	echo '{"home":"20.500.7"}'
	echo '{"home":"a/b"}'
	echo '{"home":"20.500.8","extra":1}'
	echo '{"home":5}'
	rec 20.500.7/X y
} >"$tmp/home.jsonl"
run "$tmp/o" "$tmp/home.err" "$idnode" import --db "$tmp/home" "$tmp/home.jsonl"
check "bad home lines make the import exit 4" test "$rc" -eq 4
for n in 2 3 4; do
	check "home line $n is rejected with the reason" grep -q "^line $n: \"home\" must be the only key" "$tmp/home.err"
done
check "the good home line homes its prefix (source import)" \
	bash -c "\"$idnode\" prefixes --db '$tmp/home' | grep -qE '^20\.500\.7 +import +20[0-9]{2}-'"
check "no warning when a prefix is homed" bash -c "! grep -q 'no prefix homed' '$tmp/home.err'"
# the list of prefixes to home is bounded (100000): one more is rejected, the rest homed
python3 -c 'import sys
for i in range(100001): sys.stdout.write("{\"home\":\"20.%d\"}\n" % i)' >"$tmp/homes.jsonl"
run "$tmp/o" "$tmp/homes.err" "$idnode" import --db "$tmp/homes" "$tmp/homes.jsonl"
check "100001 home lines: exit 4" test "$rc" -eq 4
check "the one over the bound is rejected" grep -q "^line 100001: more than 100000 prefixes to home" "$tmp/homes.err"
check "100000 are homed" test "$("$idnode" prefixes --db "$tmp/homes" | grep -c ' import ')" -eq 100000
rec 20.500.9/X y >"$tmp/nohome.jsonl"
run "$tmp/o" "$tmp/nohome.err" "$idnode" import --db "$tmp/nohome" "$tmp/nohome.jsonl"
check "import without a homed prefix exits 0" test "$rc" -eq 0
check "and warns that the node would answer RC 301" \
	grep -q "idnode import: warning: no prefix homed in $tmp/nohome: the node will answer RC 301" "$tmp/nohome.err"

# --- an import killed half-way -----------------------------------------------------------------------
"$idnode" gen --count 300 >"$tmp/g300.jsonl"
mkfifo "$tmp/feed"
"$idnode" import --db "$tmp/part" --batch 100 --home 88.100.1 "$tmp/feed" 2>"$tmp/part.err" &
imp_pid=$!
exec 7>"$tmp/feed"        # the importer blocks on the FIFO until this end is open
head -n 250 "$tmp/g300.jsonl" >&7 # two batches of 100 go to the store, 50 lines wait
committed=0
for _ in $(seq 200); do # up to 20 s
	"$idnode" prefixes --db "$tmp/part" >/dev/null 2>"$tmp/mark.err" || true
	committed=$(sed -n 's/.*stopped after \([0-9]*\) records.*/\1/p' "$tmp/mark.err")
	[ "${committed:-0}" -ge 200 ] && break
	sleep 0.1
done
check "while it runs, the store says how far it got ($committed records)" test "${committed:-0}" -ge 200
exec 3>&2 2>/dev/null # bash reports the killed job on its stderr: not here
kill -KILL "$imp_pid"
wait "$imp_pid" || true
exec 2>&3 3>&-
imp_pid=
exec 7>&-
check "the killed import homed nothing" bash -c "\"$idnode\" prefixes --db '$tmp/part' 2>&1 | grep -q 'no prefix homed'"
"$idnode" prefixes --db "$tmp/part" >/dev/null 2>"$tmp/mark.err" || true
check "idnode prefixes names the unfinished import: file, start time, records" \
	grep -qE "warning: $tmp/part holds an unfinished import: $tmp/feed, started 20[0-9-]+ [0-9:]+ UTC by pid [0-9]+, stopped after 200 records" "$tmp/mark.err"
# another file: its import reports the old mark and, finished, leaves it (it is still true)
rec 88.100.1/EXTRA x >"$tmp/extra.jsonl"
run "$tmp/o" "$tmp/next.err" "$idnode" import --db "$tmp/part" --home 88.100.1 "$tmp/extra.jsonl"
check "the next import exits 0" test "$rc" -eq 0
check "the next import reports the unfinished one" grep -q "holds an unfinished import: $tmp/feed" "$tmp/next.err"
check "an import of another file keeps the mark" \
	bash -c "\"$idnode\" prefixes --db '$tmp/part' 2>&1 >/dev/null | grep -q 'unfinished import: $tmp/feed'"
# the same file again, to the end: the mark goes
rm -f "$tmp/feed"
mkfifo "$tmp/feed"
"$idnode" import --db "$tmp/part" --batch 100 --home 88.100.1 "$tmp/feed" 2>"$tmp/again.err" &
imp_pid=$!
cat "$tmp/g300.jsonl" >"$tmp/feed"
set +e
for _ in $(seq 300); do kill -0 "$imp_pid" 2>/dev/null || break; sleep 0.1; done
wait "$imp_pid"
rc=$?
set -e
imp_pid=
check "running the same import again to the end exits 0" test "$rc" -eq 0
"$idnode" prefixes --db "$tmp/part" >"$tmp/pfx.out" 2>"$tmp/mark.err"
check "then the mark is gone" bash -c "! grep -q unfinished '$tmp/mark.err'"
check "and the prefix is homed (import)" grep -qE '^88\.100\.1 +import ' "$tmp/pfx.out"

# --- idnode prefixes / home / unhome -----------------------------------------------------------------
db=$tmp/dup # homed 88.100.1 by its import
check "home: two prefixes" bash -c "\"$idnode\" home --db '$db' 88.100.1 20.500.x | grep -q '^homed 20.500.x'"
"$idnode" prefixes --db "$db" >"$tmp/p.out"
check "prefixes lists the sources of each" \
	bash -c "grep -qE '^88\.100\.1 +cli,import ' '$tmp/p.out' && grep -qE '^20\.500\.X +cli ' '$tmp/p.out'"
check "prefixes has a header and one line per prefix" test "$(wc -l <"$tmp/p.out")" -eq 3
check "unhome removes a prefix whoever homed it" \
	bash -c "\"$idnode\" unhome --db '$db' 88.100.1 | grep -q 'unhomed 88.100.1 (it was homed by: cli,import)'"
check "unhome of a prefix not homed: exit 1" test "$(status "$idnode" unhome --db "$db" 88.100.1)" -eq 1
check "home of a bad prefix: exit 2" test "$(status "$idnode" home --db "$db" a/b)" -eq 2
check "home without a prefix: exit 2" test "$(status "$idnode" home --db "$db")" -eq 2
check "home without --db: exit 2" test "$(status "$idnode" home 88.100.1)" -eq 2
check "home on a missing store: exit 3" test "$(status "$idnode" home --db "$tmp/none" 88.100.1)" -eq 3
check "prefixes on a missing store: exit 3" test "$(status "$idnode" prefixes --db "$tmp/none")" -eq 3
check "home on a missing store does not create one" test ! -e "$tmp/none"
"$idnode" unhome --db "$db" 20.500.x >/dev/null 2>"$tmp/un.err"
check "unhoming the last prefix warns" grep -q "no prefix homed in $db" "$tmp/un.err"

# --- a full disk ---------------------------------------------------------------------------------------
shim=$bld/libdiskfull_shim.so
if [ -f "$shim" ]; then
	"$idnode" gen --count 3000 >"$tmp/g3k.jsonl"
	# under ASan the preloaded library comes before the sanitizer runtime
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	run "$tmp/o" "$tmp/full.err" env IDNODE_DISKFULL_BYTES=300000 LD_PRELOAD="$shim" \
		"$idnode" import --db "$tmp/full" --batch 500 "$tmp/g3k.jsonl"
	check "import on a disk that fills up: I/O (3), got $rc" test "$rc" -eq 3
	check "it says 'disk full'" grep -q "idnode import: commit: disk full (no space left on the device)" "$tmp/full.err"
	check "never 'Input/output error'" bash -c "! grep -qi 'input/output error' '$tmp/full.err'"
	check "the store keeps the mark of the unfinished import" \
		bash -c "\"$idnode\" prefixes --db '$tmp/full' 2>&1 | grep -q 'unfinished import: $tmp/g3k.jsonl'"
	run "$tmp/o" "$tmp/full0.err" env IDNODE_DISKFULL_BYTES=0 LD_PRELOAD="$shim" \
		"$idnode" import --db "$tmp/full0" "$tmp/g3k.jsonl"
	check "a new store on a full disk: I/O (3), got $rc" test "$rc" -eq 3
	check "'cannot open store: disk full'" grep -q "cannot open store $tmp/full0: disk full" "$tmp/full0.err"
else
	echo "skip - $shim not built: no disk-full check"
fi

checks_done
