#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reload of the upstreams and forward rules of a delegating idnoded (python3 stdlib only).

Three real idnoded on loopback: U1 and U2 both home 88.300 with different data (another URL for
88.300/X), D homes 88.100.1 only and forwards 88.300 to one of them over TCP. Checked:
- D answers 88.300/X from U1; `idnode reload` with the forward rule pointing at U2 is applied
  (no upstream key reported as needing a restart); the cached answer stays (the resolver cache is
  kept) until `idnode cache flush`, then the next miss is answered from U2;
- a reload naming a CA file that does not load (not PEM), and one naming a missing CA file, are
  refused as a whole with the reason: after a flush the running upstream (U2) still answers;
- a request already waiting on an upstream when a reload replaces it finishes there: D forwards
  through a relay to U1 that holds U1's answer back, the request is sent, the reload moves the
  rule to U2, the relay lets the answer go: the waiting client gets U1's answer; the next miss
  goes to U2, and the old engine is freed once its request is done;
- a reload that removes every upstream answers not-homed handles RC 301, and one that adds them
  back resolves again.
Every process is stopped by PID in a finally block; every wait is bounded in count and time.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

HANDLE = "88.300/X"
URL1 = "https://u1.example/x"
URL2 = "https://u2.example/x"


def record(url):
    return {"handle": HANDLE, "values": [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": url}}]}


def upstream_node(tmp, name, url):
    db = os.path.join(tmp, name)
    path = os.path.join(tmp, name + ".jsonl")
    with open(path, "w") as f:
        f.write(json.dumps(record(url)) + "\n")
    p = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.300", path],
                       capture_output=True, timeout=120)
    check(p.returncode == 0, "import %s: %s" % (name, p.stderr[-300:]))
    return Node(tmp, db, extra=["--home", "88.300"], workers=1)


class HoldRelay:
    """A TCP relay to 127.0.0.1:\\p port that passes requests on at once and holds the answers
    until release() (at most 60 s)."""

    def __init__(self, port):
        self.port = port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.ls.settimeout(0.2)
        self.addr = self.ls.getsockname()
        self.released = threading.Event()
        self.forwarded = threading.Event()  # a request went through to the upstream
        self.stopping = False
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def release(self):
        self.released.set()

    def stop(self):
        self.stopping = True
        self.released.set()
        for t in self.threads:
            t.join(10)
        self.ls.close()

    def accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self.serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        except OSError:
            c.close()
            return
        c.settimeout(1.0)
        u.settimeout(1.0)
        t = threading.Thread(target=self.pump, args=(c, u, False), daemon=True)
        t.start()
        self.pump(u, c, True)
        t.join(5)
        c.close()
        u.close()

    def pump(self, src, dst, hold):
        """Copy \\p src to \\p dst until EOF, stop() or 60 s; \\p hold: only once released."""
        deadline = time.time() + 60
        while not self.stopping and time.time() < deadline:
            try:
                b = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not b:
                break
            if hold:
                self.released.wait(max(0.0, deadline - time.time()))
            try:
                dst.sendall(b)
            except OSError:
                break
            if not hold:
                self.forwarded.set()


def ask(node, rid, timeout=30):
    """88.300/X over TCP at \\p node: (rc, [URL values]) or (None, [])."""
    try:
        with socket.create_connection(("127.0.0.1", node.port), timeout=timeout) as s:
            s.sendall(resolve_request(HANDLE, rid))
            f = FrameReader(s).frame(timeout)
    except OSError:
        return None, []
    if not f:
        return None, []
    r = parse_reply(f)
    return r["rc"], [bytes(v[2]).decode() for v in r.get("values", []) if v[1] == "URL"]


def control(ctl, *args):
    r = subprocess.run([IDNODE] + list(args) + ["--socket", ctl, "--timeout", "20000"],
                       capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-reload-ups-")
    nodes = []
    relay = None
    try:
        u1 = upstream_node(tmp, "u1", URL1)
        nodes.append(u1)
        u2 = upstream_node(tmp, "u2", URL2)
        nodes.append(u2)
        relay = HoldRelay(u1.port)
        ctl = os.path.join(tmp, "d.sock")
        conf = os.path.join(tmp, "d.conf")
        base = ("control_socket = %s\nupstream_timeout_ms = 30000\n"
                "upstream_try_timeout_ms = 25000\n"
                "upstream = u1 127.0.0.1:%d transport=tcp\n"
                "upstream = u2 127.0.0.1:%d transport=tcp\n"
                "upstream = slow 127.0.0.1:%d transport=tcp\n"
                % (ctl, u1.port, u2.port, relay.addr[1]))

        def write(extra):
            with open(conf, "w") as f:
                f.write(base + extra)

        write("forward = 88.300 u1\n")
        ddb = os.path.join(tmp, "d")
        import_records(tmp, ddb, [TEST_URL_RECORD])
        d = Node(tmp, ddb, conf=conf, workers=2)
        nodes.append(d)

        def reload(extra):
            write(extra)
            return control(ctl, "reload")

        def flush():
            rc, out, err = control(ctl, "cache", "flush")
            check(rc == 0 and out.startswith("flushed"), "cache flush: %d %r %r" % (rc, out, err))

        rc, urls = ask(d, 1)
        check(rc == 1 and urls == [URL1], "before the reload: U1's answer (%s %r)" % (rc, urls))

        # the forward rule moves to U2
        rc, out, err = reload("forward = 88.300 u2\n")
        check(rc == 0 and out.startswith("reloaded"), "reload to U2: %d %r %r" % (rc, out, err))
        check("restart_needed" not in out, "no key of the upstreams needs a restart: %r" % out)
        rc, urls = ask(d, 2)
        check(rc == 1 and urls == [URL1], "the cached answer stays after the reload (%s %r)"
              % (rc, urls))
        flush()
        rc, urls = ask(d, 3)
        check(rc == 1 and urls == [URL2], "after a flush the miss goes to U2 (%s %r)" % (rc, urls))

        # a CA file that does not load: the whole reload is refused, U2 stays
        garbage = os.path.join(tmp, "not-a-ca.pem")
        with open(garbage, "w") as f:
            f.write("this is not a certificate\n")
        rc, out, err = reload("forward = 88.300 u1\n"
                              "upstream = bad 127.0.0.1:1 transport=tls ca=%s\n" % garbage)
        check(rc == 1 and "upstreams" in err and garbage in err,
              "reload with a CA file that does not load refused with the reason: %d %r"
              % (rc, err))
        missing = os.path.join(tmp, "missing-ca.pem")
        rc, out, err = reload("forward = 88.300 u1\n"
                              "upstream = bad 127.0.0.1:1 transport=tls ca=%s\n" % missing)
        check(rc == 1 and missing in err, "reload with a missing CA file refused: %d %r"
              % (rc, err))
        check(d.logtext().count("reload failed, keeping the running configuration") >= 2,
              "both refusals logged")
        flush()
        rc, urls = ask(d, 4)
        check(rc == 1 and urls == [URL2], "after the refused reloads U2 still answers (%s %r)"
              % (rc, urls))

        # a request waiting on the old upstream when the reload comes finishes there
        rc, out, err = reload("forward = 88.300 slow\n")
        check(rc == 0, "reload to the relay: %d %r" % (rc, err))
        flush()
        got = {}

        def waiting():
            got["r"] = ask(d, 5, timeout=45)

        t = threading.Thread(target=waiting, daemon=True)
        t.start()
        check(relay.forwarded.wait(20), "the request reached U1 through the relay")
        rc, out, err = reload("forward = 88.300 u2\n")
        check(rc == 0, "reload while a request waits: %d %r" % (rc, err))
        time.sleep(0.5)  # the workers move to the new upstreams (notify pipe, or their tick)
        relay.release()
        t.join(50)
        check(not t.is_alive(), "the waiting request was answered")
        rc, urls = got.get("r", (None, []))
        check(rc == 1 and urls == [URL1], "the waiting request got the old upstream's answer "
              "(%s %r)" % (rc, urls))
        flush()
        rc, urls = ask(d, 6)
        check(rc == 1 and urls == [URL2], "the next miss goes to the new upstream (%s %r)"
              % (rc, urls))
        freed = "1 request(s) waiting on it at the reload were answered there"
        deadline = time.time() + 15
        while time.time() < deadline and freed not in d.logtext():
            time.sleep(0.1)
        check(freed in d.logtext(), "the old engine was freed once its request was done")

        # no upstream at all, then back
        with open(conf, "w") as f:
            f.write("control_socket = %s\n" % ctl)
        rc, out, err = control(ctl, "reload")
        check(rc == 0, "reload without upstreams: %d %r" % (rc, err))
        flush()
        rc, urls = ask(d, 7)
        check(rc == 301, "without upstreams 88.300/X is not homed here: RC 301 (%s)" % rc)
        rc, out, err = reload("forward = 88.300 u1\n")
        check(rc == 0, "reload adding them back: %d %r" % (rc, err))
        rc, urls = ask(d, 8)
        check(rc == 1 and urls == [URL1], "the upstreams added back answer (%s %r)" % (rc, urls))

        check(d.alive() and u1.alive() and u2.alive(), "every node alive")
        check(d.stop() == 0, "D exits cleanly")
    finally:
        if relay:
            relay.stop()
        code = finish(nodes, tmp, "test_reload_upstream")
    return code


if __name__ == "__main__":
    sys.exit(main())
