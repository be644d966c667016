#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`idnode resolve` against the wrong port and against servers that misbehave (python3 stdlib,
loopback only): the error names the likely cause (an HTTP resolve at the binary port, a binary
resolve at the HTTP port, a non-HTTP reply, a server that closes, resets or never answers: a
timeout, never "connection refused"); and its value lines are aligned in columns. Every server
thread here is bounded in time; the idnoded started is stopped by PID in a finally block.
"""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403  (shared helpers: Node, free_port, ...)


def resolve(*args, timeout=60):
    r = subprocess.run([IDNODE, "resolve"] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


class FakeServer:
    """A TCP server on loopback that answers every connection with behave(conn)."""

    def __init__(self, behave, life=30.0):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.behave = behave
        self.stop_at = time.time() + life
        self.done = False
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.done and time.time() < self.stop_at:
            try:
                c, _ = self.s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            c.settimeout(10)
            self.behave(c)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.done = True
        self.t.join(5)
        self.s.close()


def read_some(c):
    try:
        return c.recv(65536)
    except OSError:
        return b""


def handle_envelope_reply(c):
    read_some(c)
    c.sendall(struct.pack(">BBBBIIII", 2, 10, 0, 0, 0, 1, 0, 24) + b"\0" * 24)


def http_400(c):
    read_some(c)
    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def http_404(c):
    read_some(c)
    c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


def close_at_once(c):
    read_some(c)


def reset_at_once(c):
    read_some(c)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def never_answer(c):
    read_some(c)
    time.sleep(4)  # well past the client's 1 s timeout, then close


def test_wrong_ports_and_bad_servers():
    cases = [
        # (transport, behaviour, exit code, words the error must have)
        ("--http", handle_envelope_reply, 4,
         "is this the HTTP port? the server answered with a non-HTTP reply (it looks like the "
         "Handle protocol"),
        ("--http", close_at_once, 4, "is this the HTTP port? the server closed the connection "
                                     "without answering"),
        ("--http", http_404, 4, 'the server answered "HTTP/1.1 404 Not Found"'),
        ("--tcp", http_400, 4, "the server answered in HTTP: is this the HTTP port?"),
        ("--tcp", close_at_once, 4, "the server closed the connection without answering"),
        ("--http", reset_at_once, 3, "reset it without answering"),
        ("--http", never_answer, 3, "timed out (HDL_ETIMEDOUT): the server accepted the "
                                    "connection but sent no answer in time"),
        ("--tcp", never_answer, 3, "timed out (HDL_ETIMEDOUT)"),
    ]
    for tr, behave, want_rc, words in cases:
        srv = FakeServer(behave)
        try:
            rc, out, err = resolve(tr, "--timeout", "1000", "-s", "127.0.0.1:%d" % srv.port,
                                   "88.100.1/x")
        finally:
            srv.close()
        name = "%s against a server that does %s" % (tr, behave.__name__)
        check(rc == want_rc, "%s: exit %d (got %d: %s)" % (name, want_rc, rc, err.strip()))
        check(words in err, "%s: says %r: %s" % (name, words, err.strip()))
        check("connection refused" not in err, "%s: never 'connection refused'" % name)
    # nothing listening at all: that one is refused
    rc, out, err = resolve("--http", "--timeout", "1000", "-s", "127.0.0.1:%d" % free_port(),
                           "88.100.1/x")
    check(rc == 3 and "connection refused" in err, "nothing listening: connection refused: " + err)


def test_against_idnoded(tmp):
    db = os.path.join(tmp, "db")
    path = os.path.join(tmp, "d.jsonl")
    with open(path, "w") as f:
        f.write(json.dumps({"handle": "88.100.1/cols", "values": [
            {"index": 1, "type": "URL", "data": "https://x/1"},
            {"index": 22, "type": "PRODUCTION_DATE", "data": "2024-01-01", "ttl": 5},
            {"index": 300, "type": "EMAIL", "data": "a@b", "ttl": 86400},
            {"index": 4, "type": "说明", "data": "wide type name"},
        ]}) + "\n")
    imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", path],
                         capture_output=True, timeout=60)
    check(imp.returncode == 0, "import: %s" % imp.stderr)
    node = Node(tmp, db, workers=1)
    try:
        # HTTP resolve aimed at the binary port, binary resolve aimed at the HTTP port
        rc, out, err = resolve("--http", "--timeout", "3000", "-s", "127.0.0.1:%d" % node.port,
                               "88.100.1/cols")
        check(rc in (3, 4) and "is this the HTTP port?" in err,
              "--http at idnoded's UDP/TCP port names the likely cause: " + err)
        rc, out, err = resolve("--tcp", "--timeout", "3000", "-s", "127.0.0.1:%d" % node.http,
                               "88.100.1/cols")
        check(rc in (3, 4) and ("HTTP port" in err or "Handle protocol port" in err),
              "--tcp at idnoded's HTTP port names the likely cause: " + err)
        # aligned columns: type, TTL, perms and data start at the same place on each line
        # (in characters: a type in Chinese takes one column per character here, as in idnode)
        rc, out, err = resolve("--tcp", "-s", "127.0.0.1:%d" % node.port, "88.100.1/cols")
        lines = out.splitlines()
        check(rc == 0 and len(lines) == 4, "resolve: 4 lines: %r %s" % (lines, err))
        cols = [set(), set(), set(), set()]
        for ln in lines:
            m = re.match(r"^(\d+) +(\S+) +(@?\d+) +([rw-]{4})  (.*)$", ln)
            check(m is not None, "a value line: %r" % ln)
            if m:
                for k in range(4):
                    cols[k].add(m.start(k + 2))
        check(all(len(c) == 1 for c in cols), "type, TTL, perms and data columns aligned: %r"
              % lines)
        check(cols[1] == {4 + len("PRODUCTION_DATE") + 2}, "the type column is as wide as the "
              "widest type: %r" % lines)
    finally:
        check(node.stop() == 0, "node stops cleanly")


def main():
    for p in (IDNODED, IDNODE):
        if not os.access(p, os.X_OK):
            print("skip: %s not built" % p)
            return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-resolve-cli-")
    try:
        test_wrong_ports_and_bad_servers()
        test_against_idnoded(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("test_resolve_cli: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
