#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the Debian package of this tree: dist/idnode_<version>_<arch>.deb (idnoded, idnode,
# idnode-bench, the systemd unit, sysusers.d and tmpfiles.d files, man pages, bash completion,
# /etc/idnode/idnode.conf, the demo data), then check it with lintian (errors fail the build).
#   scripts/package.sh [--out DIR] [--no-lintian]
# The build runs in a temporary copy of the tree (the files git tracks plus untracked ones it
# does not ignore; every file when this is not a git checkout), so the tree stays clean.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
out=$top/dist
lintian=1
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$2; shift 2 ;;
	--no-lintian) lintian=0; shift ;;
	*) echo "usage: scripts/package.sh [--out DIR] [--no-lintian]" >&2; exit 2 ;;
	esac
done

HDL_PACKAGE_DEPS=1 bash scripts/install-deps.sh

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
work=$(mktemp -d /tmp/idnode-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/idnode-$version
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
		[ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
	done | tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude='./build*' --exclude=./dist --exclude=./var -cf - . | tar -xf - -C "$src"
fi

(cd "$src" && dpkg-buildpackage -b -us -uc -j"$(nproc)") >"$work/build.log" 2>&1 || {
	tail -50 "$work/build.log" >&2
	echo "package: dpkg-buildpackage failed (log above)" >&2
	exit 1
}
mkdir -p "$out"
deb=$(ls "$work"/idnode_"$version"_*.deb)
cp "$deb" "$out/"
deb=$out/$(basename "$deb")
echo "package: $deb"
if [ "$lintian" = 1 ]; then
	lintian --fail-on error --suppress-tags-from-file /dev/null "$deb"
	echo "package: lintian: no errors"
fi
