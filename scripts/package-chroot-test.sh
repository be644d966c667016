#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install the Debian package into a clean Debian 12 chroot and serve the demo data from it
# (issue 9, acceptance a; docs/operations.md records a run). Needs root and a Debian mirror.
#   scripts/package-chroot-test.sh [--deb FILE] [--mirror URL] [--keep]
# Without --deb it runs scripts/package.sh first. Steps: debootstrap --variant=minbase bookworm;
# apt-get install ./idnode_*.deb (dependencies from the mirror); the idnode user and the
# directories exist; as that user, `idnode import` the demo data into /var/lib/idnode/db and
# start /usr/sbin/idnoded -c /etc/idnode/idnode.conf (free loopback ports given with --listen and
# --http: the chroot shares the host's network); resolve over UDP, TCP and REST; idnode status
# and idnode reload over the control socket; SIGTERM by PID; apt-get purge.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
deb=
mirror=http://deb.debian.org/debian
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--deb) deb=$(readlink -f "$2"); shift 2 ;;
	--mirror) mirror=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	*) echo "usage: $0 [--deb FILE] [--mirror URL] [--keep]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -qq --no-install-recommends debootstrap
if [ -z "$deb" ]; then
	bash scripts/package.sh
	deb=$(ls -t "$top"/dist/idnode_*.deb | head -1)
fi

root=$(mktemp -d /tmp/idnode-chroot.XXXXXX)
chmod 0755 "$root" # the chroot's / (mktemp makes it 0700)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
	fi
	umount "$root/proc" 2>/dev/null || true
	if [ "$keep" = 1 ]; then echo "chroot kept: $root"; else rm -rf "$root"; fi
}
trap cleanup EXIT
step() { echo "== $*"; }
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

step "debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
	{ tail -20 "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
mount -t proc proc "$root/proc"
echo "debian $(cat "$root/etc/debian_version")"

step "apt-get install ./$(basename "$deb")"
cp "$deb" "$root/tmp/"
in_root apt-get update -qq
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	"/tmp/$(basename "$deb")" >"$root/tmp/install.log" 2>&1 || { tail -30 "$root/tmp/install.log"; exit 1; }
grep -E "^(Setting up|Unpacking) idnode" "$root/tmp/install.log"
in_root getent passwd idnode
in_root ls -ld /var/lib/idnode /var/lib/idnode/db /var/log/idnode /etc/idnode/idnode.conf
in_root idnoded -t -c /etc/idnode/idnode.conf

step "import the demo data as idnode"
as_idnode() { in_root setpriv --reuid=idnode --regid=idnode --clear-groups "$@"; }
as_idnode idnode import --db /var/lib/idnode/db --home 88.100.1 /usr/share/idnode/demo.jsonl

step "start /usr/sbin/idnoded -c /etc/idnode/idnode.conf"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=$(port)
H=$(port)
install -d -m 0750 -o "$(in_root id -u idnode)" -g "$(in_root id -g idnode)" "$root/run/idnode"
# chroot, env and setpriv each exec the next: $! is idnoded's process id
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
	setpriv --reuid=idnode --regid=idnode --clear-groups \
	idnoded -c /etc/idnode/idnode.conf --listen "127.0.0.1:$P" --http "127.0.0.1:$H" \
	>"$root/tmp/idnoded.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	grep -q "idnoded ready" "$root/tmp/idnoded.log" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
cat "$root/tmp/idnoded.log"
grep -q "idnoded ready" "$root/tmp/idnoded.log"

step "resolve 88.100.1/PUMP-2024-000123 (UDP, TCP) in the chroot, REST from the host"
in_root idnode resolve -s "127.0.0.1:$P" --udp 88.100.1/PUMP-2024-000123
in_root idnode resolve -s "127.0.0.1:$P" --tcp -t URL 88.100.1/PUMP-2024-000123
curl -s --max-time 10 "http://127.0.0.1:$H/api/handles/88.100.1/PUMP-2024-000123" | head -c 300
echo
curl -s --max-time 10 "http://127.0.0.1:$H/api/handles/88.100.1/PUMP-2024-000123" |
	grep -q '"responseCode":1'

step "idnode status / reload (control socket /run/idnode/control.sock)"
as_idnode idnode status
as_idnode idnode reload

step "stop (SIGTERM to pid $pid)"
[ "$(cat "/proc/$pid/comm")" = idnoded ] || { echo "pid $pid is not idnoded" >&2; exit 1; }
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
echo "idnoded exit status $rc"
pid=
[ "$rc" = 0 ]

step "apt-get purge idnode"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq idnode >/dev/null
in_root sh -c '! dpkg -s idnode 2>/dev/null | grep -q installed && [ ! -e /etc/idnode/idnode.conf ] &&
	[ ! -e /usr/sbin/idnoded ] && echo "purged: /etc/idnode and the binaries are gone" &&
	ls /var/lib/idnode/db'
echo "chroot test: passed"
