#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The exposure of deploy/idnoded.service next to the units Debian 12 ships with knot and
# unbound, all measured the same way: `systemd-analyze security --offline=true FILE` (lower is
# better). The packages are downloaded (apt-get download), not installed; their unit files are
# read from the .deb. Prints one line per unit and exits 1 when idnoded's is not the lowest.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
work=$(mktemp -d /tmp/idnode-unit-security.XXXXXX)
trap 'rm -rf "$work"' EXIT
score() {
	systemd-analyze security --offline=true "$1" 2>/dev/null |
		sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p'
}
ours=$(score "$top/deploy/idnoded.service")
printf '%-34s %s\n' "idnoded.service (deploy/)" "$ours"
worst=1
cd "$work"
for pkg in knot unbound; do
	apt-get download -q "$pkg" >/dev/null 2>&1
	deb=$(ls "$work"/${pkg}_*.deb)
	dpkg-deb -x "$deb" "$work/x-$pkg"
	unit=$(find "$work/x-$pkg" -path "*/systemd/system/$pkg.service" | head -1)
	s=$(score "$unit")
	printf '%-34s %s\n' "$pkg.service ($(dpkg-deb -f "$deb" Version))" "$s"
	python3 -c "import sys; sys.exit(0 if float('$ours') <= float('$s') else 1)" || worst=0
done
[ "$worst" = 1 ] && echo "idnoded.service: lowest exposure" || { echo "idnoded.service: not the lowest" >&2; exit 1; }
