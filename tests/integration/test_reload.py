#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Configuration reload of a real idnoded on loopback, through the control path (`idnode reload`,
which waits for the outcome) and SIGHUP (python3 stdlib only).

- the server admins ("users") swap on reload, for the workers (LIST_HANDLES) and the writer
  thread (HOME_NA): refused before, allowed after adding the identity, refused again after
  removing it;
- the reload is all or nothing: a file with a new limit and a query log that cannot be opened
  (or an upstream certificate that cannot be read) is refused with the reason, and the limit
  does not apply either; the same limit alone applies;
- listeners are re-bound: a new listen address is bound and answers (stdout and log say so), the
  old one keeps answering, and the next reload closes it (more: test_reload_listen.py);
- the query log switched on by a reload: lines for real UDP/TCP requests, sampling, and a
  rename + reload starts a new file.
Every process is stopped by PID; every wait is bounded.
"""
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from idtest import ConfNode as ConfNodeBase  # noqa: E402
from admintest import ID_HANDLE, ID_INDEX, admin_value, seckey_value  # noqa: E402


class ConfNode(ConfNodeBase):
    """idnoded -c CONF only (no command-line overrides: the file decides everything)."""

    def __init__(self, tmp, db):
        self.port, self.http = free_port(), free_port()
        while self.http == self.port:
            self.http = free_port()
        super().__init__(tmp, "listen = 127.0.0.1:%d\nhttp = 127.0.0.1:%d\ndb = %s\nworkers = 2\n"
                         "home = 88.100.1\nhome = 88.100\nauth_timeout_ms = 2000\n"
                         % (self.port, self.http, db))


def admin(node, secret, *args):
    r = subprocess.run([IDNODE] + list(args[:1]) + [
        "-s", "127.0.0.1:%d" % node.port, "--auth", "%d:%s" % (ID_INDEX, ID_HANDLE),
        "--seckey-file", secret, "--timeout", "10000"] + list(args[1:]),
        capture_output=True, timeout=60)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_users(node, secret):
    rc, out, err = admin(node, secret, "list", "88.100.1")
    check(rc == 1, "list before: refused, not a server admin (%d %s)" % (rc, err.strip()))
    rc, out, err = admin(node, secret, "home", "88.201")
    check(rc == 1, "home before: refused (%d %s)" % (rc, err.strip()))

    rc, out, err = node.reload("server_admin = %d:%s\n" % (ID_INDEX, ID_HANDLE))
    check(rc == 0 and "reloaded" in out, "reload adding a server admin: %d %s %s" % (rc, out, err))
    rc, out, err = admin(node, secret, "list", "88.100.1")
    check(rc == 0 and "88.100.1/test" in out.lower(),
          "list after: the workers know the admin (%d %r %s)" % (rc, out, err.strip()))
    # the writer thread takes the new list with its next batch
    rc, out, err = admin(node, secret, "home", "88.201")
    check(rc == 0, "home after: the writer knows the admin (%d %s)" % (rc, err.strip()))

    rc, out, err = node.reload("")
    check(rc == 0, "reload removing the server admin")
    rc, out, err = admin(node, secret, "list", "88.100.1")
    check(rc == 1, "list after removal: refused again (%d)" % rc)
    rc, out, err = admin(node, secret, "unhome", "0.NA/88.201")
    check(rc == 1, "unhome after removal: refused again (%d)" % rc)


def long_request(rid):
    """A resolution request of about 3 KB (a type filter of 15 long types)."""
    return resolve_request("88.100.1/test", rid, types=["X%d" % i + "X" * 200 for i in range(15)])


def rc_of(node, msg):
    try:
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
            s.sendall(msg)
            f = FrameReader(s).frame(5)
            return parse_reply(f)["rc"] if f else None
    except OSError:
        return None


def test_atomic(node, tmp):
    rc0 = rc_of(node, long_request(1))
    check(rc0 is not None and rc0 != 4, "a 3 KB request is served before (rc %s)" % rc0)
    bad = os.path.join(tmp, "no-such-dir", "q.log")
    rc, out, err = node.reload("max_message_len = 2048\nquery_log = %s\n" % bad)
    check(rc == 1 and "query log" in err and "cannot open" in err,
          "reload with an unopenable query log refused with the reason: %d %r" % (rc, err))
    check("reload failed, keeping the running configuration" in node.logtext(),
          "failed reload logged")
    check(rc_of(node, long_request(2)) == rc0, "the refused reload's new limit did not apply")
    # an unreadable certificate (an upstream's CA file) is refused the same way
    ca = os.path.join(tmp, "missing-ca.pem")
    rc, out, err = node.reload("max_message_len = 2048\nupstream = up1 127.0.0.1:2642 ca=%s\n"
                               % ca)
    check(rc == 1 and ca in err, "reload naming an unreadable certificate refused: %d %r"
          % (rc, err))
    check(rc_of(node, long_request(5)) == rc0, "and its limit did not apply either")
    rc, out, err = node.reload("max_message_len = 2048\n")
    check(rc == 0, "the limit alone reloads")
    check(rc_of(node, long_request(3)) == 4, "and applies: 3 KB over 2048 is refused (RC 4)")
    node.reload("")


def test_listeners(node):
    """A new listen address is bound by the reload and closed by the next (the whole story,
    connections that stay and refusals included: test_reload_listen.py)."""
    new = free_port()
    while new in (node.port, node.http):
        new = free_port()
    rc, out, err = node.reload("listen = 127.0.0.1:%d\nlisten = 127.0.0.1:%d\n"
                               % (node.port, new))
    check(rc == 0 and "listeners_bound listen 127.0.0.1:%d\n" % new in out
          and "restart_needed" not in out and "listeners_not_rebound" not in out,
          "new listen address bound by the reload: %r %r" % (out, err))
    check("reload: listeners bound: listen 127.0.0.1:%d" % new in node.logtext(), "and logged")
    check(rc_of(node, resolve_request("88.100.1/test", 4)) == 1, "the old address still answers")
    old_port = node.port
    node.port = new
    check(rc_of(node, resolve_request("88.100.1/test", 5)) == 1, "the new one answers")
    node.port = old_port
    rc, out, err = node.reload("")
    check(rc == 0 and "listeners_closed listen 127.0.0.1:%d\n" % new in out,
          "back to the boot addresses: the new one closed: %r" % out)
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", new))
        bound = True
    except OSError:
        bound = False
    finally:
        s.close()
    check(not bound, "the closed address refuses connections")


def udp_query(node, handle, rid):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(2)
        s.sendto(resolve_request(handle, rid), ("127.0.0.1", node.port))
        return s.recv(65536)
    except OSError:
        return None
    finally:
        s.close()


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return []


def wait_lines(path, n, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline and len(lines(path)) < n:
        time.sleep(0.05)
    return lines(path)


def test_query_log(node, tmp):
    q = os.path.join(tmp, "queries.log")
    rc, out, err = node.reload("query_log = %s\n" % q)
    check(rc == 0, "query log on by reload: %s" % err)
    for i in range(3):
        check(udp_query(node, "88.100.1/test", 100 + i) is not None, "udp query answered")
    check(rc_of(node, resolve_request("88.100.1/nothing-here", 110)) == 100, "tcp not found")
    got = wait_lines(q, 4)
    check(len(got) == 4, "4 lines: %r" % got)
    check(all(" udp 127.0.0.1:" in ln and ' op=1 rc=1 "88.100.1/test" ' in ln for ln in got[:3]),
          "udp lines: %r" % got[:3])
    check(len(got) == 4 and ' tcp 127.0.0.1:' in got[3] and ' rc=100 "88.100.1/nothing-here"'
          in got[3], "tcp line: %r" % got[3:])
    # a REST GET: method, HTTP status and target, with the peer and the transport
    c = http.client.HTTPConnection("127.0.0.1", node.http, timeout=30)
    try:
        c.request("GET", "/api/handles/88.100.1/test")
        st = c.getresponse().status
    finally:
        c.close()
    check(st == 200, "REST GET answered (%s)" % st)
    got = wait_lines(q, 5)
    check(len(got) == 5 and ' http 127.0.0.1:' in got[4] and
          ' op=GET rc=200 "/api/handles/88.100.1/test" in=0 out=' in got[4],
          "REST line: %r" % got[4:])

    rc, out, err = node.reload("query_log = %s\nquery_log_sample = 4\n" % q)
    before = len(lines(q))
    for i in range(40):
        udp_query(node, "88.100.1/test", 200 + i)
    time.sleep(0.3)
    n = len(lines(q)) - before
    check(8 <= n <= 12, "one in 4 of 40 sampled per worker: %d lines" % n)

    moved = q + ".old"
    os.rename(q, moved)
    rc, out, err = node.reload("query_log = %s\n" % q)
    check(rc == 0 and os.path.exists(q), "reload re-opens the file after a rename")
    udp_query(node, "88.100.1/test", 300)
    check(len(wait_lines(q, 1)) == 1, "the next line goes to the new file")
    node.reload("")


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-reload-")
    node = None
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [TEST_URL_RECORD, {"handle": ID_HANDLE, "values": [
            admin_value(ID_HANDLE, ID_INDEX), seckey_value("secret")]}])
        secret = os.path.join(tmp, "secret")
        with open(secret, "w") as f:
            f.write("secret\n")
        node = ConfNode(tmp, db)
        rc, out, err = node.reload("")
        check(rc == 0 and out.startswith("reloaded "), "idnode reload: %d %r %r" % (rc, out, err))
        test_users(node, secret)
        test_atomic(node, tmp)
        test_listeners(node)
        test_query_log(node, tmp)
        check(node.proc.poll() is None, "node alive")
        check(node.stop() == 0, "clean exit")
    except Exception as e:  # noqa: BLE001
        check(False, "unexpected exception: %r" % e)
    finally:
        if node and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait(5)
        if FAILS and node:
            print("---- idnoded log (tail) ----\n" + node.logtext()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)
    return report("test_reload")


if __name__ == "__main__":
    sys.exit(main())
