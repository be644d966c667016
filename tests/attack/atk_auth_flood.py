#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack: one source (127.0.0.2) floods administrative requests and never answers their
challenges, so every one of them would hold a pending challenge (a copy of the request) in the
node-wide table; it also floods answers for sessions nobody challenged. Meanwhile a second source
(127.0.0.1) registers handles the way hdllib does (request, RC 402, the answer on a new
connection). Figures: the legitimate creates that succeed (>= 99 %), how many of the attacker's
requests were refused with RC 3 (the per-source bound held), and the node's RSS growth (bounded).
The node runs with auth_pending_per_source = 64 and auth_pending_max = 1000.
"""
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from admintest import *  # noqa: E402,F401,F403

LONG = "--long" in sys.argv
SECONDS = 20 if LONG else 3
LEGIT = 300 if LONG else 40
PER_SOURCE = 64

RECORDS = [
    {"handle": "0.NA/88.100", "values": [admin_value(ID_HANDLE, ID_INDEX), seckey_value("secret")]},
    {"handle": "0.NA/88.100.1", "values": [admin_value(ID_HANDLE, ID_INDEX)]},
]


def attacker(port, stop, counts):
    """Pipelined creates (protocol 2.10: the connection stays open) from 127.0.0.2."""
    big = "x" * 2000  # each challenge keeps a copy of its request: make them weigh
    rid = 1
    while not stop.is_set():
        try:
            with socket.socket() as c:
                c.bind(("127.0.0.2", 0))
                c.settimeout(2)
                c.connect(("127.0.0.1", port))
                fr = FrameReader(c)
                for _ in range(200):
                    if stop.is_set():
                        break
                    burst = b"".join(create_msg("88.100.1/ATK-%d" % (rid + k), rid + k,
                                                url=big, version=(2, 10)) for k in range(20))
                    # and answers for sessions that were never challenged
                    burst += answer_msg(0x7000000 + rid, rid + 100, b"\0" * 16, b"\0" * 32,
                                        version=(2, 10))
                    rid += 21
                    c.sendall(burst)
                    for _ in range(21):
                        m = fr.frame(2)
                        if m is None:
                            raise OSError("closed")
                        rc = header(m)["rc"]
                        counts[rc] = counts.get(rc, 0) + 1
        except (OSError, ValueError):
            counts["reconnects"] = counts.get("reconnects", 0) + 1


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-atk-auth-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, RECORDS)
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("auth_pending_per_source = %d\nauth_pending_max = 1000\n"
                    "auth_timeout_ms = 60000\n" % PER_SOURCE)
        node = Node(tmp, db, extra=["--home", "88.100"], conf=conf, workers=2)
        nodes.append(node)
        rss0 = rss_kb(node.proc.pid)
        stop = threading.Event()
        counts = {}
        t = threading.Thread(target=attacker, args=(node.port, stop, counts))
        t.start()
        ok = 0
        t0 = time.time()
        time.sleep(0.5)  # let the attacker fill its share of the table first
        for i in range(LEGIT):
            try:
                ch, final = hdllib_flow(node, create_msg("88.100.1/LEGIT-%d" % i, 9000 + i))
                ok += header(final)["rc"] == 1
            except (OSError, ValueError):
                pass
        while time.time() - t0 < SECONDS:
            time.sleep(0.1)
        stop.set()
        t.join(10)
        rss1 = rss_kb(node.proc.pid)
        busy = counts.get(3, 0)
        chal = counts.get(402, 0)
        print("FIGURE auth_flood: attacker got %d challenges, %d RC 3 (per-source bound %d), "
              "%d RC 405 for unknown sessions, %d reconnects; legitimate creates %d/%d "
              "(%.2f %%); RSS %d -> %d KiB" % (
                  chal, busy, PER_SOURCE, counts.get(405, 0), counts.get("reconnects", 0), ok,
                  LEGIT, 100.0 * ok / LEGIT, rss0, rss1), flush=True)
        check(ok >= 0.99 * LEGIT, "legitimate creates answered: %d/%d" % (ok, LEGIT))
        check(busy > 0, "the attacker met the per-source bound (RC 3)")
        check(chal <= 1000, "challenges held stay within auth_pending_max (%d)" % chal)
        check(counts.get(405, 0) > 0, "answers for unknown sessions refused with RC 405")
        if sanitized(node.proc.pid):
            print("RSS bound not checked: the node runs under AddressSanitizer")
        else:
            check(rss1 - rss0 < 64 * 1024, "RSS growth under 64 MiB (%d KiB)" % (rss1 - rss0))
        check(node.alive(), "node alive")
    finally:
        ret = finish(nodes, tmp, "atk_auth_flood")
    return ret


if __name__ == "__main__":
    sys.exit(main())
