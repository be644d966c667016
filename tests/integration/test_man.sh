#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages (docs/man) and the bash completion (deploy/completion/idnode) against the
# programs: each page renders without groff warnings; idnode.conf(5) is what
# scripts/gen-conf-man.py makes of deploy/idnode.conf.sample; every command of `idnode --help`
# has its entry in idnode(1), every option of `idnoded --help` and `idnode-bench --help` is in
# idnoded(8) and idnode-bench(1); the completion offers every command and a command's options.
set -u

SRC=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${HDL_BUILD_DIR:-$SRC/build}
MAN=$SRC/docs/man
FAILS=0
fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}
for p in idnoded idnode idnode-bench; do
	[ -x "$BUILD/$p" ] || { echo "skip: $BUILD/$p not built"; exit 77; }
done

if command -v groff >/dev/null 2>&1; then
	for m in idnoded.8 idnode.1 idnode-bench.1 idnode.conf.5; do
		w=$(groff -man -ww -z "$MAN/$m" 2>&1)
		[ -z "$w" ] || fail "groff warnings in $m: $w"
	done
else
	echo "note: no groff; rendering not checked"
fi
python3 "$SRC/scripts/gen-conf-man.py" --check || fail "idnode.conf.5 is stale"

# long options as a man page writes them: --x-y -> \-\-x\-y
in_page() {
	local opt=${1//-/\\-}
	grep -qF -- "$opt" "$2"
}
for o in $("$BUILD/idnoded" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
	in_page "$o" "$MAN/idnoded.8" || fail "idnoded.8 lacks $o"
done
for o in $("$BUILD/idnode-bench" --help 2>&1 | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
	in_page "$o" "$MAN/idnode-bench.1" || fail "idnode-bench.1 lacks $o"
done
cmds=$("$BUILD/idnode" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[ "$(echo "$cmds" | wc -l)" -ge 19 ] || fail "idnode --help lists its commands: $cmds"
for c in $cmds; do
	grep -qE "^\.B $c( |\\\\|$)|\\\\fB$c( |\\\\)" "$MAN/idnode.1" || fail "idnode.1 lacks command $c"
	for o in $("$BUILD/idnode" "$c" --help 2>&1 | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
		case $o in --help | --slow-json | --db) continue ;; esac
		in_page "$o" "$MAN/idnode.1" || fail "idnode.1 lacks $c $o"
	done
done
for k in $(sed -nE 's/^(# )?([a-z][a-z0-9_]*) = .*/\2/p' "$SRC/deploy/idnode.conf.sample"); do
	grep -q "^\.B ${k//_/_} = " "$MAN/idnode.conf.5" || fail "idnode.conf.5 lacks key $k"
done

# completion, with the built programs first on PATH
out=$(PATH=$BUILD:$PATH bash -c '
	. "$1/deploy/completion/idnode"
	c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _idnode; echo "${COMPREPLY[*]}"; }
	c idnode ""
	c idnode resolve --t
	c idnode cache ""
	c idnode import --db /tmp/x --no
	COMP_WORDS=(idnoded --ch); COMP_CWORD=1; _idnoded; echo "${COMPREPLY[*]}"' _ "$SRC")
want="$(echo $cmds)
--tcp --timeout --type
stats dump flush
--no-overwrite
--check"
[ "$out" = "$want" ] || fail "completion: got
$out
want
$want"

if [ "$FAILS" != 0 ]; then
	echo "$FAILS check(s) failed"
	exit 1
fi
echo "test_man: all checks passed"
