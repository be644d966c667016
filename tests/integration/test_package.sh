#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package: scripts/package.sh builds it from a copy of the tree (lintian: no errors),
# then it is installed with `dpkg --root` into an empty directory (maintainer scripts run
# chrootless: the idnode user and the directories are made there), checked (its files, the
# unit with systemd-analyze verify and security, the man pages, the bash completion), the
# node is run from the installed paths on loopback with the demo data (resolve over UDP, TCP
# and REST; status and reload over the control socket), stopped by its PID, and the package
# purged (configuration gone, a store with data kept).
#
# Skips (77) without root, without the Debian packaging tools, and in a sanitizer build (the
# package is built from the source, not from that build: the plain build's run covers it).
set -u

SRC=${HDL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${HDL_BUILD_DIR:-$SRC/build}
FAILS=0
fail() {
	echo "FAIL: $*"
	FAILS=$((FAILS + 1))
}

if [ "$(id -u)" != 0 ]; then
	echo "skip: dpkg --root installs need root"
	exit 77
fi
for t in dpkg dpkg-deb dpkg-buildpackage dh lintian; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "skip: $t not installed (HDL_PACKAGE_DEPS=1 scripts/install-deps.sh)"
		exit 77
	fi
done
if grep -q '^HDL_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
	echo "skip: sanitizer build (the package test runs with the plain build)"
	exit 77
fi

TMP=$(mktemp -d /tmp/idnode-test-package.XXXXXX)
R=$TMP/root
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID"
		for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- build -------------------------------------------------------------------------------------
if [ -n "${HDL_PACKAGE_DEB:-}" ]; then
	DEB=$HDL_PACKAGE_DEB
else
	if ! bash "$SRC/scripts/package.sh" --out "$TMP/dist" >"$TMP/package.log" 2>&1; then
		tail -40 "$TMP/package.log"
		fail "scripts/package.sh"
		exit 1
	fi
	grep -q "lintian: no errors" "$TMP/package.log" || fail "lintian ran without errors"
	DEB=$(ls "$TMP"/dist/idnode_*.deb)
fi
echo "package: $DEB"

# ---- contents -----------------------------------------------------------------------------------
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$TMP/files"
for f in /usr/sbin/idnoded /usr/bin/idnode /usr/bin/idnode-bench /lib/systemd/system/idnoded.service \
	/usr/lib/sysusers.d/idnode.conf /usr/lib/tmpfiles.d/idnode.conf /etc/idnode/idnode.conf \
	/usr/share/man/man8/idnoded.8.gz /usr/share/man/man1/idnode.1.gz \
	/usr/share/man/man1/idnode-bench.1.gz /usr/share/man/man5/idnode.conf.5.gz \
	/usr/share/bash-completion/completions/idnode /usr/share/bash-completion/completions/idnoded \
	/usr/share/idnode/demo.jsonl /usr/share/doc/idnode/copyright \
	/usr/share/doc/idnode/examples/idnode.conf.sample; do
	grep -qx "$f" "$TMP/files" || fail "package holds $f"
done
mkdir -p "$TMP/ctl"
dpkg-deb -e "$DEB" "$TMP/ctl"
grep -qx /etc/idnode/idnode.conf "$TMP/ctl/conffiles" || fail "/etc/idnode/idnode.conf is a conffile"

# ---- install into an empty root -------------------------------------------------------------------
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
touch "$R/var/lib/dpkg/status"
if ! dpkg --root="$R" --force-depends --force-script-chrootless -i "$DEB" >"$TMP/install.log" 2>&1; then
	cat "$TMP/install.log"
	fail "dpkg -i"
	exit 1
fi
dpkg --root="$R" -s idnode 2>/dev/null | grep -q '^Status: install ok installed' ||
	fail "installed state"
grep -q '^idnode:x:[0-9]*:[0-9]*:.*:/var/lib/idnode:/usr/sbin/nologin$' "$R/etc/passwd" ||
	fail "the idnode system user (sysusers.d): $(cat "$R/etc/passwd" 2>/dev/null)"
uid=$(awk -F: '$1 == "idnode" {print $3}' "$R/etc/passwd")
for d in /var/lib/idnode /var/lib/idnode/db /var/log/idnode; do
	[ "$(stat -c '%u %a' "$R$d" 2>/dev/null)" = "$uid 750" ] ||
		fail "$d made by tmpfiles.d, idnode's, 0750: $(stat -c '%u %a' "$R$d" 2>&1)"
done
grep -qx 'control_socket = /run/idnode/control.sock' "$R/etc/idnode/idnode.conf" ||
	fail "installed configuration sets the control socket ExecReload= uses"
"$R/usr/sbin/idnoded" -t -c "$R/etc/idnode/idnode.conf" >/dev/null ||
	fail "the installed configuration checks (idnoded -t, the unit's ExecStartPre)"

# ---- the unit ------------------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
	# the host's units for the dependencies (sysinit.target, network-online.target, ...)
	cp -an /lib/systemd/system/. "$R/lib/systemd/system/" 2>/dev/null
	out=$(MANPATH=$R/usr/share/man systemd-analyze verify --root="$R" idnoded.service 2>&1)
	rc=$?
	[ "$rc" = 0 ] && [ -z "$out" ] || fail "systemd-analyze verify: rc $rc: $out"
	# the same check sees a broken copy (it is not a check that cannot fail)
	sed 's/^Type=notify$/Tipe=notify/' "$R/lib/systemd/system/idnoded.service" \
		>"$R/lib/systemd/system/idnoded-broken.service"
	out=$(systemd-analyze verify --root="$R" --man=no idnoded-broken.service 2>&1)
	echo "$out" | grep -q "Unknown key 'Tipe'" || fail "verify reports a broken unit: $out"
	score=$(systemd-analyze security --offline=true --root="$R" idnoded.service 2>/dev/null |
		sed -n 's/.*Overall exposure level for idnoded.service: \([0-9.]*\).*/\1/p')
	echo "systemd-analyze security: $score"
	python3 -c "import sys; sys.exit(0 if 0 < float('$score') <= 2.0 else 1)" 2>/dev/null ||
		fail "exposure $score over 2.0 (docs/operations.md: knot 7.0, unbound 9.6)"
else
	echo "note: no systemd-analyze; unit checks skipped"
fi

# ---- man pages and completion --------------------------------------------------------------------
for m in man8/idnoded.8 man1/idnode.1 man1/idnode-bench.1 man5/idnode.conf.5; do
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$R/usr/share/man/$m.gz" 2>&1 >/dev/null)
	[ -z "$w" ] || fail "man $m: $w"
done
comp=$(PATH=$R/usr/bin:$PATH bash -c '
	. "$1/usr/share/bash-completion/completions/idnode"
	COMP_WORDS=(idnode rel); COMP_CWORD=1; _idnode; echo "${COMPREPLY[*]}"
	COMP_WORDS=(idnode reload --so); COMP_CWORD=2; _idnode; echo "${COMPREPLY[*]}"' _ "$R")
[ "$comp" = "$(printf 'reload\n--socket')" ] || fail "bash completion: $comp"

# ---- run from the installed paths ---------------------------------------------------------------
P=$(free_port)
H=$(free_port)
DB=$R/var/lib/idnode/db
"$R/usr/bin/idnode" import --db "$DB" --home 88.100.1 "$R/usr/share/idnode/demo.jsonl" \
	>"$TMP/import.log" 2>&1 || fail "import the demo data: $(tail -3 "$TMP/import.log")"
sed -e "s|^listen = .*|listen = 127.0.0.1:$P|" -e "s|^http = .*|http = 127.0.0.1:$H|" \
	-e "s|^db = .*|db = $DB|" -e "s|^control_socket = .*|control_socket = $TMP/ctl.sock|" \
	-e "s|^workers = .*|workers = 2|" "$R/etc/idnode/idnode.conf" >"$TMP/idnode.conf"
"$R/usr/sbin/idnoded" -c "$TMP/idnode.conf" >"$TMP/idnoded.log" 2>&1 &
PID=$!
for _ in $(seq 150); do
	grep -q "idnoded ready" "$TMP/idnoded.log" && break
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
grep -q "idnoded ready" "$TMP/idnoded.log" || fail "installed idnoded starts: $(tail -5 "$TMP/idnoded.log")"
for tr in --udp --tcp; do
	out=$("$R/usr/bin/idnode" resolve -s "127.0.0.1:$P" $tr 88.100.1/PUMP-2024-000123 2>&1) ||
		fail "resolve $tr: $out"
	echo "$out" | grep -q "URL" || fail "resolve $tr shows the URL value: $out"
done
if command -v curl >/dev/null 2>&1; then
	out=$(curl -s --max-time 10 "http://127.0.0.1:$H/api/handles/88.100.1/PUMP-2024-000123")
	echo "$out" | grep -q '"responseCode":1' || fail "REST: $out"
fi
"$R/usr/bin/idnode" status --socket "$TMP/ctl.sock" | grep -q '^handles [1-9]' ||
	fail "idnode status over the control socket"
"$R/usr/bin/idnode" reload --socket "$TMP/ctl.sock" | grep -q '^reloaded ' ||
	fail "idnode reload (the unit's ExecReload)"
kill -TERM "$PID"
rc=
for _ in $(seq 150); do
	if ! kill -0 "$PID" 2>/dev/null; then
		wait "$PID"
		rc=$?
		break
	fi
	sleep 0.1
done
[ "$rc" = 0 ] || fail "installed idnoded stops cleanly (exit $rc)"
PID=

# ---- purge ---------------------------------------------------------------------------------------
dpkg --root="$R" --force-depends --force-script-chrootless --purge idnode >"$TMP/purge.log" 2>&1 ||
	fail "dpkg --purge: $(tail -5 "$TMP/purge.log")"
for f in /usr/sbin/idnoded /usr/bin/idnode /lib/systemd/system/idnoded.service /etc/idnode/idnode.conf; do
	[ ! -e "$R$f" ] || fail "purge removes $f"
done
[ ! -e "$R/var/log/idnode" ] || fail "purge removes /var/log/idnode"
[ -s "$DB/data.mdb" ] || fail "purge keeps a store that holds data"
dpkg --root="$R" -s idnode >/dev/null 2>&1 && fail "package still known after purge"

if [ "$FAILS" != 0 ]; then
	echo "---- idnoded log ----"
	tail -20 "$TMP/idnoded.log" 2>/dev/null
	echo "$FAILS check(s) failed"
	exit 1
fi
echo "test_package: all checks passed"
