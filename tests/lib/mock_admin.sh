# SPDX-License-Identifier: Apache-2.0
# Sourced by the shell tests that drive tests/lib/mock_admin.py (SRC must be set): a temporary
# directory $TMP, a failure counter with fail(), the EXIT trap that stops the mock by its PID and
# removes $TMP, mock_start ARGS... (starts the mock on a free loopback port, sets MOCK_ADDR) and
# finish NAME (the exit status).
TMP=$(mktemp -d)
MOCK_PID=
fails=0

cleanup() {
	if [ -n "$MOCK_PID" ]; then
		kill "$MOCK_PID" 2>/dev/null
		wait "$MOCK_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

mock_start() {
	python3 "$SRC/tests/lib/mock_admin.py" "$@" --port-file "$TMP/port" &
	MOCK_PID=$!
	for _ in $(seq 100); do
		[ -s "$TMP/port" ] && break
		sleep 0.1
	done
	if [ ! -s "$TMP/port" ]; then
		echo "FAIL: the mock server did not start" >&2
		exit 1
	fi
	MOCK_ADDR=127.0.0.1:$(cat "$TMP/port")
}

finish() {
	if [ "$fails" -ne 0 ]; then
		echo "$1: $fails failure(s)" >&2
		exit 1
	fi
	echo "$1: all passed"
	exit 0
}
