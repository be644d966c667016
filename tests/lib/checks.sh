# SPDX-License-Identifier: Apache-2.0
# Helpers of the shell integration tests (source it): check "what" cmd... runs cmd and reports
# ok/FAIL, status cmd... prints cmd's exit status, checks_done ends the script (exit 1 on any
# failure).
fails=0
ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # check "description" command...
	local d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}
status() {
	set +e
	"$@" >/dev/null 2>&1
	echo $?
	set -e
}
checks_done() {
	if [ "$fails" -ne 0 ]; then
		echo "$fails check(s) failed"
		exit 1
	fi
	echo "all checks passed"
	exit 0
}
