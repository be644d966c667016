#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The control socket of a running idnoded, through the `idnode cache` / `idnode status` client
(python3 stdlib only).

Starts the real daemon on loopback with control_socket in a temporary directory and checks: the
socket's mode, `idnode cache stats|dump|flush` and `idnode status` (output and exit codes), an
ERR answer, client usage and connection errors, a SIGHUP reload seen in `cache stats`, a second
node refused on a live socket, a stale socket file left by SIGKILL replaced at the next start,
and the file removed at a clean stop. Every process started here is stopped by PID in a finally
block; every wait is bounded.
"""
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403  (shared helpers: Node, check, ...)


def idnode(*args, timeout=20):
    p = subprocess.run([IDNODE] + list(args), capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def stats_of(sock):
    rc, out, err = idnode("cache", "stats", "--socket", sock)
    check(rc == 0, "cache stats rc 0 (rc %d, %s)" % (rc, err.strip()))
    d = {}
    for line in out.splitlines():
        k, _, v = line.partition(" ")
        d[k] = v
    return d


def write_conf(path, sock, cache_size="8m"):
    with open(path, "w") as f:
        f.write("control_socket = %s\ncontrol_socket_mode = 0640\n"
                "resolver_cache_size = %s\ncontrol_timeout_ms = 3000\n" % (sock, cache_size))


def test_commands(node, sock):
    st = os.lstat(sock)
    check(stat.S_ISSOCK(st.st_mode), "control socket is a socket")
    check(stat.S_IMODE(st.st_mode) == 0o640, "control socket mode 0640 (%o)" % stat.S_IMODE(st.st_mode))

    s = stats_of(sock)
    for k in ("entries", "bytes", "max_bytes", "hits", "misses", "stale_served", "prefetches",
              "evictions", "inserts", "inflight_keys", "inflight_waiters"):
        check(k in s, "cache stats has %s" % k)
    check(s.get("entries") == "0", "no entries yet")
    check(s.get("max_bytes") == str(8 << 20), "max_bytes from resolver_cache_size (%s)" % s.get("max_bytes"))

    rc, out, err = idnode("cache", "dump", "--socket", sock)
    check(rc == 0 and out == "# 0 entries\n", "cache dump of an empty cache (%d %r %r)" % (rc, out, err))
    rc, out, err = idnode("cache", "--socket", sock, "dump", "88.100.1")
    check(rc == 0 and out.endswith("# 0 entries\n"), "cache dump PREFIX")
    rc, out, err = idnode("cache", "flush", "88.100.1/Some-Handle", "--socket", sock)
    check(rc == 0 and out == "flushed 0 entries of 88.100.1/SOME-HANDLE\n",
          "cache flush HANDLE (%d %r %r)" % (rc, out, err))
    rc, out, err = idnode("cache", "flush", "--socket", sock)
    check(rc == 0 and out == "flushed 0 entries\n", "cache flush")
    check(stats_of(sock).get("flushes") == "1", "flush counted")

    rc, out, err = idnode("status", "--socket", sock)
    check(rc == 0, "status rc 0")
    check("pid %d\n" % node.proc.pid in out, "status names the node's pid")
    check("workers 2\n" in out, "status: workers")
    check("handles " in out and "uptime_s " in out, "status: handles, uptime")

    # the node refuses (ERR): exit 1 with the reason on stderr
    p = subprocess.run([IDNODE.encode(), b"cache", b"flush", b"88.100.1/\xff", b"--socket",
                        sock.encode()], capture_output=True, timeout=20)
    check(p.returncode == 1 and b"not a valid handle" in p.stderr,
          "ERR answer -> exit 1 (%d %r)" % (p.returncode, p.stderr))
    # client-side usage errors and a missing socket
    check(idnode("cache", "--socket", sock)[0] == 2, "cache without a subcommand: usage")
    check(idnode("cache", "nosuch", "--socket", sock)[0] == 2, "unknown subcommand: usage")
    check(idnode("cache", "stats", "extra", "--socket", sock)[0] == 2, "stats takes no argument")
    check(idnode("status", "x", "--socket", sock)[0] == 2, "status takes no argument")
    check(idnode("cache", "stats", "--socket", sock + ".none")[0] == 3, "no socket: exit 3")
    env = dict(os.environ, IDNODE_CONTROL_SOCKET=sock)
    p = subprocess.run([IDNODE, "cache", "stats"], capture_output=True, timeout=20, env=env)
    check(p.returncode == 0 and b"entries " in p.stdout, "IDNODE_CONTROL_SOCKET is the default")

    # raw protocol: one line in, status line + answer out, then EOF
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(10)
        c.connect(sock)
        c.sendall(b"help\n")
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
    check(data.startswith(b"OK\n") and b"cache stats" in data and b"status" in data, "help")


def test_reload(node, conf, sock):
    write_conf(conf, sock, cache_size="16m")
    os.kill(node.proc.pid, signal.SIGHUP)
    ok = False
    deadline = time.time() + 10
    while time.time() < deadline and not ok:
        ok = stats_of(sock).get("max_bytes") == str(16 << 20)
        if not ok:
            time.sleep(0.1)
    check(ok, "SIGHUP applies resolver_cache_size")
    check(node.alive(), "node alive after reload")


def main():
    for p in (IDNODED, IDNODE):
        if not os.access(p, os.X_OK):
            print("skip: %s not built" % p)
            return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-control-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        os.makedirs(db)  # idnoded refuses a db directory that does not exist
        os.makedirs(db + "2")
        sock = os.path.join(tmp, "control.sock")
        conf = os.path.join(tmp, "node.conf")
        write_conf(conf, sock)
        node = Node(tmp, db, conf=conf, workers=2)
        nodes.append(node)
        test_commands(node, sock)
        test_reload(node, conf, sock)

        # a second node on the same control socket is refused at start
        try:
            other = Node(tmp, db + "2", conf=conf, workers=1)
            nodes.append(other)
            check(False, "second node on a live control socket refused")
        except RuntimeError as e:
            check("another process is listening" in str(e), "second node: reason logged (%s)" % str(e)[-300:])
        check(stats_of(sock).get("entries") == "0", "first node still answers")

        # SIGKILL leaves the socket file behind; the next start replaces it
        node.stop(sig=signal.SIGKILL)
        nodes.remove(node)
        check(os.path.exists(sock), "stale socket file left by SIGKILL")
        node = Node(tmp, db, conf=conf, workers=2)
        nodes.append(node)
        check("replaced a stale socket file" in node.logtext(), "stale socket replaced")
        check(stats_of(sock).get("entries") == "0", "restarted node answers")
        rc = node.stop()
        nodes.remove(node)
        check(rc == 0, "clean exit (rc %s)" % rc)
        check(not os.path.exists(sock), "socket file removed at a clean stop")
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait(5)
            if FAILS:
                print("---- idnoded log (tail) ----\n" + n.logtext()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("test_control: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
