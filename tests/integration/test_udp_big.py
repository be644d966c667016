#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Multi-datagram UDP answers of every size, against the real idnoded on loopback.

With the UDP answer caps opened up (udp_answer_max_datagrams = 533, udp_answer_max_ratio = 0),
resolves one record with index filters chosen so that the answer takes exactly k datagrams, for
every k from 1 to the protocol maximum (HDL_UDP_MAX_PACKETS = 533: a 262144-byte message), once
with UDP segmentation offload (udp_gso = yes) and once without (udp_gso = no, applied by SIGHUP).
Each answer is reassembled here and compared byte for byte with the TCP answer to the same
request; every datagram is checked (<= 512 bytes, all but the last exactly 512, envelope fields,
TC on multi-packet answers). The requests themselves take two datagrams (reassembled by the node).

Then records of 5, 60, 185, 250, 350 and 400 values of 170 bytes resolve with
`idnode resolve --udp`: over UDP alone (--no-fallback) with the caps open, and through the TCP
redirect with the default caps; the node must stay up throughout (the 65..128-datagram answers
used to overflow the worker's transmit buffer).
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

MAX_PACKETS = (262144 + 491) // 492  # HDL_UDP_MAX_PACKETS
# The record of the every-count check: (encoded size, how many, first index). Any sum of these
# lies within 440 bytes of a combination, so every 492-byte step of answer length is hit; all of
# them together make a 262054-byte answer (533 datagrams) within the 262144-byte store limit.
PIECES = [(1400, 186, 1), (480, 2, 1001), (40, 1, 2001), (600, 1, 3001)]
TIDX = 2001


def value(idx, size):
    # encoded HandleValue: 26 bytes + type (4, "DESC") + data
    return {"index": idx, "type": "DESC",
            "data": {"format": "string", "value": ("%d:" % idx + "x" * size)[:size - 30]}}


def import_data(tmp, db):
    recs = [{"handle": "88.100.1/every",
             "values": [value(first + i, size) for size, n, first in PIECES for i in range(n)]}]
    import_records(tmp, db, recs + [desc_record("88.100.1/v%d" % n, n)
                                    for n in (5, 60, 185, 250, 350, 400)])


def udp_exchange(port, req, timeout=3.0):
    """Send \p req (split as needed), collect its answer: (message, datagrams)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    try:
        for d in split_request(req):
            s.sendto(d, ("127.0.0.1", port))
        return udp_collect(s, struct.unpack(">I", req[8:12])[0], timeout)
    finally:
        s.close()


def rcvbuf_room():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        s.close()


def plan(node):
    """For each datagram count k, an index list whose answer takes exactly k datagrams."""
    # the answer without values: measured from a one-value answer
    one = node.tcp(resolve_request("88.100.1/every", 1, indexes=[TIDX]))
    base = len(one) - 20 - 40
    combos = {}

    def walk(i, mlen, idx):
        if i == len(PIECES):
            if idx and mlen <= 262144:
                k = max(1, (mlen + 491) // 492)
                if k not in combos or len(idx) < len(combos[k]):
                    combos[k] = idx
            return
        size, n, first = PIECES[i]
        for c in range(n + 1):
            walk(i + 1, mlen + size * c, idx + [first + j for j in range(c)])

    walk(0, base, [])
    return combos


def verdict(k, idx, msg, dg, tcp):
    """What is wrong with the UDP answer \\p msg in datagrams \\p dg, against the TCP answer
    \\p tcp to the same request (values \\p idx, \\p k datagrams); None when nothing."""
    if len(dg) != k:
        return "%d datagrams" % len(dg)
    if any(len(p) > 512 for p in dg) or any(len(p) != 512 for p in dg[:-1]):
        return "datagram sizes %s" % sorted(set(len(p) for p in dg))
    mlen = len(msg) - 20
    for seq, p in enumerate(dg):
        if not (struct.unpack(">III", p[8:20]) == (struct.unpack(">I", msg[8:12])[0], seq, mlen)
                and bool(p[2] & 0x20) == (k > 1) and p[:2] == msg[:2]):
            return "envelope of datagram %d" % seq
    # the TCP answer to the same request (its RequestId put back) is the same message, but
    # for the expiration (now + 12 h: the second may tick in between)
    tcp = with_request_id(tcp, struct.unpack(">I", msg[8:12])[0])
    if not (len(tcp) == len(msg) and tcp[:36] == msg[:36] and tcp[40:] == msg[40:] and
            abs(struct.unpack(">I", tcp[36:40])[0] - struct.unpack(">I", msg[36:40])[0]) <= 2):
        return "differs from the TCP answer (%d vs %d bytes)" % (len(msg), len(tcp))
    r = parse_reply(msg)
    if r["rc"] != 1 or len(r["values"]) != len(idx):
        return "not the %d values" % len(idx)
    return None


def check_counts(node, combos, mode, top):
    bad = []
    rid = 100000 if mode == "gso" else 200000
    for k in range(1, top + 1):
        idx = combos.get(k)
        if idx is None:
            bad.append((k, "no index set"))
            continue
        rid += 1
        req = resolve_request("88.100.1/every", rid, indexes=idx)
        try:
            tcp = node.tcp(req, timeout=10)
        except OSError as e:
            bad.append((k, "TCP: %r" % e))
            if not node.alive():
                bad.append((k, "node died"))
                break
            continue
        msg = dg = None
        for attempt in range(3):
            try:
                msg, dg = udp_exchange(node.port, with_request_id(req, rid + 50000 * attempt))
                break
            except socket.timeout:
                continue
        why = verdict(k, idx, msg, dg, tcp) if msg is not None else "no whole UDP answer"
        if why:
            bad.append((k, why))
    check(not bad, "%s: every datagram count 1..%d: %s" % (mode, top, bad[:5]))
    check(node.alive(), "%s: node alive after every count" % mode)
    print("%s: %d datagram counts checked, %d bad" % (mode, top, len(bad)))


def check_gso_refused(tmp, db, conf, combos):
    """A kernel that refuses UDP segmentation offload (the gso_refuse.so shim): the GSO sends
    already queued are sent again datagram by datagram (tx_send_split), later ones go out one
    datagram a message; every answer must still be whole. The node is stopped while 16
    requests (2..17 datagrams each) queue up, so that they are answered in one batch."""
    shim = os.path.join(BUILD, "gso_refuse.so")
    if not os.path.exists(shim):
        print("skip: %s not built (GSO refusal)" % shim)
        return
    env_old = {k: os.environ.get(k) for k in ("LD_PRELOAD", "ASAN_OPTIONS")}
    os.environ["LD_PRELOAD"] = shim
    asan = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    try:
        node = Node(tmp, db, conf=conf, workers=1)
    finally:
        for k, v in env_old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    bad = []
    try:
        for rnd in range(3):
            ks = list(range(2, 18))
            reqs = {k: resolve_request("88.100.1/every", 300000 + 100 * rnd + k, indexes=combos[k])
                    for k in ks}
            tcps = {k: node.tcp(reqs[k], timeout=10) for k in ks}
            socks = {}
            for k in ks:
                socks[k] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks[k].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            node.proc.send_signal(signal.SIGSTOP)
            try:
                for k in ks:
                    socks[k].sendto(reqs[k], ("127.0.0.1", node.port))
                time.sleep(0.05)
            finally:
                node.proc.send_signal(signal.SIGCONT)
            for k in ks:
                try:
                    msg, dg = udp_collect(socks[k], struct.unpack(">I", reqs[k][8:12])[0], 5)
                    why = verdict(k, combos[k], msg, dg, tcps[k])
                except socket.timeout:
                    why = "no whole UDP answer"
                socks[k].close()
                if why:
                    bad.append((rnd, k, why))
        check("segmentation offload refused" in node.logtext(),
              "gso refused: the fallback ran (logged)")
        check(not bad, "gso refused: answers of 2..17 datagrams: %s" % bad[:5])
        check(node.stop() == 0, "gso-refused node exit 0")
        print("gso refused: 3 x 16 answers of 2..17 datagrams checked, %d bad" % len(bad))
    finally:
        if node.alive():
            node.proc.kill()
            node.proc.wait(5)


def cli(node, handle, *extra):
    return subprocess.run([IDNODE, "resolve", "-s", "127.0.0.1:%d" % node.port, "--udp",
                           "--timeout", "10000"] + list(extra) + [handle],
                          capture_output=True, timeout=60)


def check_records(node, over_udp):
    for n in (5, 60, 185, 250, 350, 400):
        h = "88.100.1/v%d" % n
        p = cli(node, h, *(["--no-fallback"] if over_udp else []))
        lines = [ln for ln in p.stdout.splitlines() if ln.split()[1:2] == [b"DESC"]]
        check(p.returncode == 0 and len(lines) == n,
              "idnode resolve --udp%s %s: rc %d, %d of %d values; %s"
              % (" --no-fallback" if over_udp else "", h, p.returncode, len(lines), n,
                 p.stderr[-200:]))
        if not over_udp:
            # the default caps: over UDP alone this is the redirect (RC_ERROR)
            q = cli(node, h, "--no-fallback")
            check(q.returncode == 1 and b"ERROR (2)" in q.stderr,
                  "%s over UDP only with the default caps: the TCP redirect (%r)"
                  % (h, q.stderr[-120:]))
        check(node.alive(), "node alive after %s" % h)


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-udp-big-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        import_data(tmp, db)
        conf = os.path.join(tmp, "big.conf")
        with open(conf, "w") as f:
            f.write("udp_answer_max_datagrams = 533\nudp_answer_max_ratio = 0\nudp_gso = yes\n")
        node = Node(tmp, db, conf=conf, workers=2)
        nodes.append(node)
        combos = plan(node)
        check(all(k in combos for k in range(1, MAX_PACKETS + 1)),
              "an index set for every count 1..%d (missing %s)"
              % (MAX_PACKETS, [k for k in range(1, MAX_PACKETS + 1) if k not in combos][:5]))
        # the receive buffer must hold a whole answer (~2.3 KB of kernel memory per datagram)
        room = rcvbuf_room()
        top = MAX_PACKETS if room >= MAX_PACKETS * 2304 else max(64, room // 2304)
        if top < MAX_PACKETS:
            print("note: receive buffer %d bytes (net.core.rmem_max): counts up to %d only"
                  % (room, top))
        check_counts(node, combos, "gso", top)
        check_records(node, over_udp=True)
        with open(conf, "a") as f:
            f.write("udp_gso = no\n")
        node.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "configuration reloaded" not in node.logtext() and time.time() < deadline:
            time.sleep(0.05)
        check("configuration reloaded" in node.logtext(), "reload with udp_gso = no")
        check_counts(node, combos, "no-gso", top)
        check(node.stop() == 0, "big-answer node exit 0")
        nodes.remove(node)
        with open(conf, "a") as f:
            f.write("udp_gso = yes\n")
        check_gso_refused(tmp, db, conf, combos)
        # the default caps: the same records reach the client through the TCP redirect
        node = Node(tmp, db, workers=2)
        nodes.append(node)
        check_records(node, over_udp=False)
        check(node.stop() == 0, "default node exit 0")
        log = node.logtext()
        check("redirected to TCP" in log and "udp (shutdown)" in log,
              "UDP counters logged at shutdown")
        nodes.remove(node)
    finally:
        rc = finish(nodes, tmp, "test_udp_big")
    return rc


if __name__ == "__main__":
    sys.exit(main())
