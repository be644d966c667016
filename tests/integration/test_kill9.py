#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Acknowledged creates survive SIGKILL of idnoded (python3 stdlib + the built idnode).

A client keeps creating handles over several TCP connections, each logged in once with the IDIS
OC 2001 (session id of its own, answer on the connection) and pipelined, and logs every create
the node ACKNOWLEDGED (RC 1) with the value it sent. Mid-load, idnoded is killed with SIGKILL
(KILLS times, after a random 1-2 s of load each) and started again on the same database. After
each restart, read alongside the running node with `idnode export` and `idnode audit`:
  * every acknowledged handle is there with exactly the value sent (zero lost acks);
  * every record of the database decodes (export and audit exit 0) and every handle of this
    test that is there (acknowledged or caught in flight) holds exactly what was sent;
  * the audit trail matches the records: one CREATE_HANDLE SUCCESS entry per handle of this
    test that exists, none for one that does not (a change and its entry commit together);
  * the restarted node itself answers for the last handles acknowledged before the kill.
Prints one FIGURE line. Short by default (ctest); --kills N for a longer run. Every wait is
bounded; every node is stopped by PID (killed at the latest in the finally block).
"""
import json
import os
import random
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
from admintest import *  # noqa: E402,F401,F403

IDENT, INDEX = "0.NA/88.100.1", 300
CONNS, DEPTH = 4, 16
V = (2, 10)  # the IDIS SDK's version: connections stay open after answers


def url_of(handle):
    return "https://example.org/k9/" + handle


class Loader(threading.Thread):
    """One connection: IDIS login, then pipelined creates until stopped or the node dies."""

    def __init__(self, port, cycle, conn, acked, stop):
        super().__init__(daemon=True)
        self.port, self.cycle, self.conn = port, cycle, conn
        self.acked, self.stop = acked, stop
        self.sent = self.acks = self.other = 0
        self.login_ok = False
        self.error = None

    def run(self):
        sid = 1000 * self.cycle + self.conn + 1
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as c:
                c.settimeout(10)
                fr = FrameReader(c)
                c.sendall(message(2001, s(IDENT) + struct.pack(">I", INDEX), session=sid, rid=1,
                                  flags=0x10800000, version=V))
                h, nonce, digest = challenge_of(fr.frame(10))
                c.sendall(answer_msg(sid, 2, nonce, digest, ident=IDENT, index=INDEX, version=V))
                if header(fr.frame(10))["rc"] != 1:
                    self.error = "login refused"
                    return
                self.login_ok = True
                pending, rid = {}, 100
                while True:
                    while not self.stop.is_set() and len(pending) < DEPTH:
                        rid += 1
                        hd = "88.100.1/K9-%d-%d-%d" % (self.cycle, self.conn, rid)
                        c.sendall(create_msg(hd, rid, session=sid, url=url_of(hd), version=V))
                        pending[rid] = hd
                        self.sent += 1
                    if not pending:
                        return
                    f = fr.frame(10)
                    if f is None:
                        return  # the node died: what is pending was never acknowledged
                    r = header(f)
                    hd = pending.pop(r["rid"], None)
                    if hd is not None and r["rc"] == 1:
                        self.acked.append(hd)  # list.append is atomic under the GIL
                        self.acks += 1
                    else:
                        self.other += 1
        except (OSError, struct.error, ValueError) as e:
            self.error = repr(e)


def load(port, cycle, acked):
    stop = threading.Event()
    ts = [Loader(port, cycle, k, acked, stop) for k in range(CONNS)]
    for t in ts:
        t.start()
    return stop, ts


def kill9(node):
    node.proc.send_signal(signal.SIGKILL)
    node.proc.wait(15)
    node.logf.close()


def verify(node, db, acked, last, what):
    """The checks after a restart (node running); returns the handles of this test present."""
    ex = subprocess.run([IDNODE, "export", "--db", db], capture_output=True, timeout=300)
    check(ex.returncode == 0, "%s: export exit %d (every record decodes): %s" % (
        what, ex.returncode, ex.stderr[-300:]))
    have = {}
    for ln in ex.stdout.decode().splitlines():
        rec = json.loads(ln)
        if rec.get("handle", "").startswith("88.100.1/K9-"):
            have[rec["handle"]] = rec["values"]
    lost = [hd for hd in acked if hd not in have]
    check(not lost, "%s: %d of %d acknowledged creates lost (%s)" % (
        what, len(lost), len(acked), lost[:5]))
    bad = []
    for hd, vals in have.items():
        ok = len(vals) == 1 and vals[0]["index"] == 1 and vals[0]["type"] == "URL"
        data = vals[0]["data"] if vals else None
        if isinstance(data, dict):
            data = data.get("value")
        if not ok or data != url_of(hd):
            bad.append((hd, vals))
    check(not bad, "%s: %d records not exactly as sent: %s" % (what, len(bad), bad[:2]))
    au = subprocess.run([IDNODE, "audit", "--db", db, "--json"], capture_output=True,
                        timeout=300)
    check(au.returncode == 0, "%s: audit exit %d" % (what, au.returncode))
    created = {}
    for ln in au.stdout.decode().splitlines():
        e = json.loads(ln)
        if e["op"] == "CREATE_HANDLE" and e["handle"].startswith("88.100.1/K9-"):
            check(e["outcome"] == "SUCCESS", "%s: create refused: %s" % (what, e))
            created[e["handle"]] = created.get(e["handle"], 0) + 1
    check(set(created) == set(have) and all(n == 1 for n in created.values()),
          "%s: audit entries match the records (%d entries, %d records; without a record %s; "
          "without an entry %s)" % (what, len(created), len(have),
                                    sorted(set(created) - set(have))[:3],
                                    sorted(set(have) - set(created))[:3]))
    for hd in last:
        rc, vals = resolve_values(node, hd)
        check(rc == 1 and vals.get(1, ("", b""))[1] == url_of(hd).encode(),
              "%s: the node answers for %s (rc %d)" % (what, hd, rc))
    return have


def main():
    kills = 5
    if "--kills" in sys.argv:
        kills = int(sys.argv[sys.argv.index("--kills") + 1])
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-kill9-")
    nodes = []
    acked = []
    rnd = random.Random(9)
    t_start = time.time()
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [{"handle": IDENT, "values": [
            admin_value(IDENT, INDEX), seckey_value("secret")]}])
        node = Node(tmp, db)
        nodes.append(node)
        have = {}
        for cycle in range(1, kills + 2):
            final = cycle == kills + 1
            before = len(acked)
            stop, ts = load(node.port, cycle, acked)
            time.sleep(rnd.uniform(1.0, 2.0))
            if final:
                stop.set()  # the last round ends cleanly: drain, then a normal stop
            else:
                kill9(node)
            for t in ts:
                t.join(30)
                check(not t.is_alive(), "cycle %d: a client connection did not end" % cycle)
            check(all(t.login_ok for t in ts), "cycle %d: logins (%s)" % (
                cycle, [t.error for t in ts if not t.login_ok]))
            n = len(acked) - before
            check(n > 0, "cycle %d: creates acknowledged under load (%d)" % (cycle, n))
            last = [hd for hd in acked[before:]][-8:]
            what = "after kill %d" % cycle if not final else "after the last round"
            if not final:
                node = Node(tmp, db)
                nodes.append(node)
            have = verify(node, db, acked, last, what)
            print("cycle %d: %d acknowledged (%d sent), %d of this test's handles in the store"
                  % (cycle, n, sum(t.sent for t in ts), len(have)), flush=True)
        check(node.stop() == 0, "clean exit after the last round")
        print("FIGURE kill9: %d SIGKILLs mid-load, %d acknowledged creates, %d lost, %d in the "
              "store (%d caught in flight and committed), %.1f s" % (
                  kills, len(acked), len([h for h in acked if h not in have]), len(have),
                  len(have) - len(set(acked)), time.time() - t_start))
    finally:
        ret = finish(nodes, tmp, "test_kill9")
    return ret


if __name__ == "__main__":
    sys.exit(main())
