#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack: one source (127.0.0.2) floods resolutions of ever new handles under a prefix that is
delegated to an upstream which accepts connections and never answers (black-holed), so every
request would wait in the node for the whole upstream timeout. Another source (127.0.0.3) opens
TCP connections, sends such requests and closes at once (requests cancelled while they wait).
Meanwhile a legitimate client (127.0.0.1) resolves a local handle and one delegated handle.
The node runs with pending_per_source = 32 and upstream_timeout_ms = 2000 on one worker.

Figures: how many of the attacker's requests were refused with RC 3 at once (the per-source
bound held: at most 32 wait), that the legitimate client's local answers all came, that its
delegated request was accepted (waited, then RC 3 at the upstream timeout: not refused at
once), that the node is alive and idle afterwards (no resolution left running), and its RSS
growth.
"""
import os
import socket
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

LONG = "--long" in sys.argv
FLOOD = 4000 if LONG else 400
CLOSERS = 200 if LONG else 40
PER_SOURCE = 32
TIMEOUT_MS = 2000


def black_hole(stop):
    """A TCP listener that accepts and reads, and never answers. Returns (port, thread)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    ls.settimeout(0.2)
    held = []

    def run():
        while not stop.is_set():
            try:
                c, _ = ls.accept()
                c.setblocking(False)
                held.append(c)
            except socket.timeout:
                pass
            for c in held:
                try:
                    c.recv(65536)
                except OSError:
                    pass
        for c in held:
            c.close()
        ls.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return ls.getsockname()[1], t


def rcode(m):
    return struct.unpack(">I", m[24:28])[0]


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="atk-delegate-")
    db = os.path.join(tmp, "db")
    os.makedirs(db)
    local = import_gen(tmp, db, count=50)
    stop = threading.Event()
    bh_port, bh = black_hole(stop)
    conf = os.path.join(tmp, "idnoded.conf")
    with open(conf, "w") as f:
        f.write("upstream = bh 127.0.0.1:%d transport=tcp pipeline=256\n" % bh_port)
        f.write("forward = 88.200 bh\n")
        f.write("pending_per_source = %d\n" % PER_SOURCE)
        f.write("upstream_timeout_ms = %d\nupstream_try_timeout_ms = %d\n" % (TIMEOUT_MS, TIMEOUT_MS))
        f.write("resolver_stale_budget_ms = 0\n")
    nodes = []
    try:
        node = Node(tmp, db, conf=conf, workers=1)
        nodes.append(node)
        rss0 = rss_kb(node.proc.pid)

        # the legitimate delegated request first: it must be accepted, not refused
        legit = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        legit.bind(("127.0.0.1", 0))
        t_legit = time.time()
        legit.sendto(resolve_request("88.200/LEGIT", 7), ("127.0.0.1", node.port))

        # the flood: ever new delegated handles from 127.0.0.2
        atk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        atk.bind(("127.0.0.2", 0))
        atk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        for i in range(FLOOD):
            atk.sendto(resolve_request("88.200/ATK-%d" % i, 1000 + i), ("127.0.0.1", node.port))
        # connections that go away while their requests wait
        for i in range(CLOSERS):
            try:
                with socket.socket() as c:
                    c.bind(("127.0.0.3", 0))
                    c.settimeout(2)
                    c.connect(("127.0.0.1", node.port))
                    c.sendall(resolve_request("88.200/GONE-%d" % i, 5000 + i))
            except OSError:
                pass

        # the attacker's quick answers: RC 3 for everything over the bound
        atk.settimeout(1.0)
        quick = {}
        t0 = time.time()
        while time.time() - t0 < 1.0:
            try:
                m = atk.recv(65536)
            except socket.timeout:
                break
            rc = rcode(m)
            quick[rc] = quick.get(rc, 0) + 1
        refused = quick.get(3, 0)

        # local answers keep coming during the flood
        ok = 0
        for i in range(20):
            m = node.udp(resolve_request(local, 100 + i), timeout=3.0)[0]
            ok += rcode(m) == 1

        legit.settimeout(TIMEOUT_MS / 1000.0 + 5)
        m, _ = legit.recvfrom(65536)
        waited = time.time() - t_legit
        check(rcode(m) == 3 and waited >= TIMEOUT_MS / 1000.0 * 0.75,
              "the legitimate delegated request waited for the upstream (RC %d after %.2f s)" %
              (rcode(m), waited))

        # the waiting attacker requests end at their deadline: RC 3 too
        atk.settimeout(TIMEOUT_MS / 1000.0 + 5)
        late = 0
        deadline = time.time() + TIMEOUT_MS / 1000.0 + 5
        while refused + late < FLOOD and time.time() < deadline:
            try:
                m = atk.recv(65536)
            except socket.timeout:
                break
            late += rcode(m) == 3
        check(refused >= FLOOD - PER_SOURCE - 2,
              "at most %d of the attacker's requests waited (%d refused at once)" %
              (PER_SOURCE, refused))
        check(refused + late == FLOOD, "every attacker request answered (%d + %d of %d)" %
              (refused, late, FLOOD))
        check(ok == 20, "local answers during the flood (%d of 20)" % ok)
        check(node.alive(), "node alive")
        time.sleep(0.5)
        check(node.udp(resolve_request(local, 99))[0][24:28] == b"\0\0\0\1", "node answers after")
        rss1 = rss_kb(node.proc.pid)
        print("FIGURE delegate_flood: %d delegated misses from one source -> %d refused RC 3 at "
              "once, %d waited (bound %d) and got RC 3 at the %d ms deadline; %d connections "
              "closed while waiting; local answers %d/20; RSS %+d kB" %
              (FLOOD, refused, late, PER_SOURCE, TIMEOUT_MS, CLOSERS, ok, rss1 - rss0))
        check(node.stop() == 0, "clean stop")
        check("waiting request(s) left" not in node.logtext(), "nothing left waiting at stop")
    finally:
        stop.set()
        bh.join(5)
        rc = finish(nodes, tmp, "atk_delegate_flood")
    return rc


if __name__ == "__main__":
    sys.exit(main())
