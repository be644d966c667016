#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""idnoded under a (pretend) systemd, on loopback (python3 stdlib only).

The notification protocol of a Type=notify unit against a test NOTIFY_SOCKET (a Unix datagram
socket this script reads): READY=1 with a STATUS= line once the listeners answer; WATCHDOG=1
while WATCHDOG_USEC is set; RELOADING=1 with MONOTONIC_USEC and READY=1 around a reload, also
one that fails (STATUS says so, the node keeps running); STOPPING=1 on SIGTERM.

Journal records: with JOURNAL_STREAM naming idnoded's stderr, lines go to the journal as
structured records (libsystemd's sd_journal_sendv, sent to a test socket by the
journal_redirect.so shim): MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, IDNODE_THREAD; peer-triggered
lines carry IDNODE_PEER_TRIGGERED=1 and stay rate-limited under a flood of garbage; the query log
(`query_log = log`) carries IDNODE_QUERY_* fields. log_target = stderr keeps plain lines.
Every process is stopped by PID; every wait is bounded.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

SHIM = os.path.join(BUILD, "journal_redirect.so")


class Datagrams(threading.Thread):
    """Reads a Unix datagram socket into a list of (monotonic time, bytes) until stopped (a
    reader that keeps up: a full socket would block idnoded's sender)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.settimeout(0.1)
        self.items = []
        self.lock = threading.Lock()
        self.stopping = False
        self.start()

    def run(self):
        while not self.stopping:
            try:
                d = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.items.append((time.monotonic(), d))

    def snapshot(self):
        with self.lock:
            return list(self.items)

    def wait(self, pred, timeout=10.0, start=0):
        """The first item from index start on that pred(bytes) accepts: (index, bytes), or
        (None, None) after timeout seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            items = self.snapshot()
            for i in range(start, len(items)):
                if pred(items[i][1]):
                    return i, items[i][1]
            time.sleep(0.02)
        return None, None

    def close(self):
        self.stopping = True
        self.join(5)
        self.sock.close()


def notify_fields(d):
    return dict(line.split("=", 1) for line in d.decode().split("\n") if "=" in line)


def journal_fields(d):
    """A native journal datagram: KEY=value lines, or KEY\\n + 64-bit LE size + data + \\n."""
    out, pos = {}, 0
    while pos < len(d):
        nl = d.index(b"\n", pos)
        line = d[pos:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            out[k.decode()] = v.decode(errors="replace")
            pos = nl + 1
        else:
            n = struct.unpack("<Q", d[nl + 1:nl + 9])[0]
            out[line.decode()] = d[nl + 9:nl + 9 + n].decode(errors="replace")
            pos = nl + 9 + n + 1
    return out


def start(tmp, db, conf_text, env_extra, name):
    """idnoded -c CONF with stderr to a file and the environment systemd would give it."""
    port, http = free_port(), free_port()
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write("listen = 127.0.0.1:%d\nhttp = 127.0.0.1:%d\ndb = %s\nworkers = 2\nhome = 88.100.1\n"
                % (port, http, db) + conf_text)
    errpath = os.path.join(tmp, name + ".stderr")
    err = open(errpath, "w")
    env = dict(os.environ)
    env.update(env_extra(err) if callable(env_extra) else env_extra)
    p = subprocess.Popen([IDNODED, "-c", conf], stdout=err, stderr=err, env=env)
    return p, port, conf, errpath, err


def stop(p, timeout=15):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    return p.returncode


def test_notify(tmp, db, procs):
    ns = Datagrams(os.path.join(tmp, "notify.sock"))
    try:
        p, port, conf, errpath, err = start(tmp, db, "", {
            "NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"}, "notify")
        procs.append(p)
        i, ready = ns.wait(lambda d: b"READY=1" in d, 15)
        check(ready is not None, "READY=1 sent")
        if ready is None:
            return
        f = notify_fields(ready)
        check(f.get("STATUS", "").startswith("serving: ") and " handles" in f["STATUS"],
              "STATUS with READY=1: %r" % f.get("STATUS"))
        # ready means ready: the first query is answered at once
        r = tcp_once(port, resolve_request("88.100.1/test", 7))
        check(r is not None and r["rc"] == 1, "answered right after READY=1")

        # the watchdog: every half interval while the workers turn
        t0 = time.monotonic()
        time.sleep(1.5)
        pets = [t for t, d in ns.snapshot() if d == b"WATCHDOG=1" and t >= t0]
        check(len(pets) >= 3, "WATCHDOG=1 every ~200 ms (%d in 1.5 s)" % len(pets))

        # a reload: RELOADING=1 + MONOTONIC_USEC (now, CLOCK_MONOTONIC), then READY=1
        with open(conf, "a") as f2:
            f2.write("max_message_len = 4096\n")
        n0 = len(ns.snapshot())
        before = time.monotonic()
        p.send_signal(signal.SIGHUP)
        i, rl = ns.wait(lambda d: b"RELOADING=1" in d, 10, n0)
        after = time.monotonic()
        check(rl is not None, "RELOADING=1 on SIGHUP")
        if rl is not None:
            us = int(notify_fields(rl).get("MONOTONIC_USEC", "0"))
            check(before * 1e6 - 1e6 <= us <= after * 1e6 + 1e6,
                  "MONOTONIC_USEC is now on CLOCK_MONOTONIC (%d vs %.0f..%.0f)"
                  % (us, before * 1e6, after * 1e6))
            j, rd = ns.wait(lambda d: b"READY=1" in d, 10, i + 1)
            check(rd is not None and notify_fields(rd).get("STATUS", "").startswith("reloaded"),
                  "READY=1 STATUS=reloaded after the reload: %r" % rd)

        # a reload that fails: the node says so and keeps its configuration
        with open(conf, "a") as f2:
            f2.write("no_such_key = 1\n")
        n0 = len(ns.snapshot())
        p.send_signal(signal.SIGHUP)
        i, rl = ns.wait(lambda d: b"RELOADING=1" in d, 10, n0)
        j, rd = ns.wait(lambda d: b"READY=1" in d, 10, (i or n0) + 1)
        st = notify_fields(rd).get("STATUS", "") if rd else ""
        check(rl is not None and "reload failed" in st and "no_such_key" in st,
              "failed reload: RELOADING=1 then READY=1 with the reason: %r" % st)
        check(p.poll() is None and tcp_once(port, resolve_request("88.100.1/test", 8)) is not None,
              "still serving after a failed reload")

        # STOPPING=1 on SIGTERM, then a clean exit
        n0 = len(ns.snapshot())
        rc = stop(p)
        i, sd = ns.wait(lambda d: b"STOPPING=1" in d, 5, n0)
        check(sd is not None, "STOPPING=1 on SIGTERM")
        check(rc == 0, "exit 0 (%s)" % rc)
        err.close()
        if FAILS:
            print(open(errpath).read()[-3000:])
    finally:
        ns.close()


def tcp_once(port, msg):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(msg)
            f = FrameReader(s).frame(5)
            return parse_reply(f) if f else None
    except OSError:
        return None


def test_journal(tmp, db, procs):
    js = Datagrams(os.path.join(tmp, "journal.sock"))

    def env(err):
        st = os.fstat(err.fileno())
        asan = os.environ.get("ASAN_OPTIONS", "")
        return {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino), "LD_PRELOAD": SHIM,
                "HDL_TEST_JOURNAL_SOCKET": js.path,
                "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    try:
        p, port, conf, errpath, err = start(tmp, db, "query_log = log\n", env, "journal")
        procs.append(p)
        i, rec = js.wait(lambda d: b"idnoded ready" in d, 15)
        check(rec is not None, "the ready line is a journal record")
        if rec is None:
            print(open(errpath).read()[-3000:])
            return
        f = journal_fields(rec)
        check(f.get("PRIORITY") == "5" and f.get("SYSLOG_IDENTIFIER") == "idnoded" and
              f.get("IDNODE_THREAD") == "main", "ready record fields: %r" % f)
        check(not f["MESSAGE"].startswith("20"), "no timestamp in MESSAGE (journald has one)")
        check("idnoded ready" not in open(errpath).read(), "no plain line on stderr as well")

        # the query log as records with fields
        r = tcp_once(port, resolve_request("88.100.1/test", 9))
        check(r is not None and r["rc"] == 1, "resolved")
        i, q = js.wait(lambda d: b"IDNODE_QUERY_HANDLE" in d, 10)
        qf = journal_fields(q) if q else {}
        check(qf.get("IDNODE_QUERY_TRANSPORT") == "tcp" and qf.get("IDNODE_QUERY_RCODE") == "1" and
              qf.get("IDNODE_QUERY_HANDLE") == '"88.100.1/test"' and qf.get("PRIORITY") == "6" and
              qf.get("IDNODE_QUERY_OPCODE") == "1" and
              qf.get("IDNODE_QUERY_PEER", "").startswith("127.0.0.1:") and
              qf.get("IDNODE_THREAD", "").startswith("w"), "query record: %r" % qf)

        # a flood of garbage: peer-triggered records carry the flag and stay rate-limited
        n0 = len(js.snapshot())
        t0 = time.monotonic()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for k in range(600):
            u.sendto(b"\x02\x0agarbage%d" % k, ("127.0.0.1", port))
            if k % 100 == 99:
                time.sleep(0.05)
        u.close()
        time.sleep(1.2)  # let a second pass so the suppression count is reported
        tcp_once(port, resolve_request("88.100.1/test", 10))
        for k in range(20):  # from many source ports: each worker gets some
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.sendto(b"\x02\x0aone-more", ("127.0.0.1", port))
            u.close()
        js.wait(lambda d: b"suppressed" in d, 5, n0)
        secs = time.monotonic() - t0
        recs = [journal_fields(d) for _, d in js.snapshot()[n0:]]
        peer = [r for r in recs if r.get("IDNODE_PEER_TRIGGERED") == "1"]
        bound = 10 * 2 * (int(secs) + 2)  # LOG_PEER_BURST per second per worker
        check(1 <= len(peer) <= bound,
              "peer-triggered records rate-limited: %d for 600 datagrams in %.1f s (<= %d)"
              % (len(peer), secs, bound))
        check(any("suppressed" in r.get("MESSAGE", "") for r in recs),
              "the suppressed lines are counted in a record")
        check(stop(p) == 0, "journal node: exit 0")
        err.close()
    finally:
        js.close()

    # log_target = stderr: plain lines even with JOURNAL_STREAM set
    js = Datagrams(os.path.join(tmp, "journal2.sock"))
    try:
        p, port, conf, errpath, err = start(tmp, db, "log_target = stderr\n", env, "plain")
        procs.append(p)
        deadline = time.time() + 15
        while time.time() < deadline and "idnoded ready" not in open(errpath).read():
            time.sleep(0.05)
        check("idnoded ready" in open(errpath).read(), "log_target = stderr: plain ready line")
        check(stop(p) == 0, "plain node: exit 0")
        err.close()
        check(not js.snapshot(), "log_target = stderr: no journal records")
    finally:
        js.close()


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-systemd-")
    procs = []
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [TEST_URL_RECORD])
        test_notify(tmp, db, procs)
        if os.access(SHIM, os.R_OK):
            test_journal(tmp, db, procs)
        else:
            print("skip: journal tests (%s not built)" % SHIM)
    except Exception as e:  # noqa: BLE001
        check(False, "unexpected exception: %r" % e)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    return report("test_systemd")


if __name__ == "__main__":
    sys.exit(main())
