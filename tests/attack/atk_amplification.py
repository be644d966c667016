#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack scenario: idnoded as a UDP amplifier (issue 11 item 2).

1. With the default configuration, bytes out / bytes in over UDP for every kind of request an
   attacker can send with a spoofed source: resolutions of a record far over the UDP cap (with
   and without RD, hdllib's captured bytes), of small records, of missing handles and other
   prefixes, GetSiteInfo (the smallest valid requests), every opcode, multi-packet requests,
   oversized length fields, responses, every truncation of the captures and random garbage.
   The worst ratio must be <= 10.
2. With RRL on (rate R, burst B), one source (127.0.0.3, 8 sockets, so both workers see it)
   floods at ~5 x R for a few seconds: the answers it gets (not counting the slip redirects)
   must stay within B + R x T.

Prints FIGURE amplification and FIGURE rrl_flood; exit 0 when both hold.
    --long   more garbage, a longer flood at ~10 x R
"""
import os
import random
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

LONG = "--long" in sys.argv[1:]
RATE, BURST = 200, 200


def message(op, body, flags=0, rcode=0, rid=1):
    hdr = struct.pack(">IIIHBBII", op, rcode, flags, 1, 0, 0, int(time.time()) + 600, len(body))
    msg = hdr + body + struct.pack(">I", 0)
    return struct.pack(">BBBBIIII", 2, 11, 2, 11, 0, rid, 0, len(msg)) + msg


def probes(rnd):
    """(name, [datagrams]) of every kind of request."""
    out = []
    for cap in ("java-hdllib-resolve-udp.hex", "java-hdllib-HDLTrace-stock-udp.hex",
                "java-hdllib-siteinfo-tcp.hex", "java-hdllib-resolve-tcp.hex",
                "java-hdllib-resolve-typed-tcp.hex", "java-hdllib-resolve-certify-tcp.hex"):
        out.append((cap, [load_hex(cap)]))
    for h in ("88.100.1/test", "88.100.1/small", "88.100.1/none", "99.9/x", "0.NA/88.100.1",
              "a/b", "x"):
        for flags in (0x19000000, 0x19800000, 0x00800000):
            out.append(("resolve %s flags %x" % (h, flags),
                        [resolve_request(h, 5, flags=flags)]))
    # the smallest requests: GetSiteInfo with no body, or with hdllib's "/" handle
    out.append(("siteinfo, no body", [message(2, b"")]))
    out.append(("siteinfo, no body, RD", [message(2, b"", flags=0x00800000)]))
    out.append(("siteinfo '/'", [message(2, struct.pack(">I", 1) + b"/")]))
    for op in list(range(0, 12)) + [100, 101, 102, 103, 104, 105, 200, 400, 401, 402, 403,
                                    404, 405, 406, 500, 0x7FFFFFFF]:
        out.append(("opcode %d" % op, [message(op, b"")]))
        out.append(("opcode %d with a handle" % op,
                    [message(op, struct.pack(">I", 13) + b"88.100.1/test", flags=0x00800000)]))
    out.append(("a response", [message(1, b"", rcode=1)]))
    # multi-packet: a resolution of the big record padded into 2 and 3 datagrams
    for pad in (300, 600):
        req = resolve_request("88.100.1/test", 9, types=["DESC", "X" * pad, "Y" * pad])
        out.append(("multi-packet resolve (%d datagrams)" % len(split_request(req)),
                    split_request(req)))
    big = bytearray(load_hex("java-hdllib-resolve-udp.hex"))
    big[16:20] = struct.pack(">I", 0x7FFFFFF0)
    out.append(("length over the limit", [bytes(big)]))
    for cap in ("java-hdllib-resolve-udp.hex", "java-hdllib-siteinfo-tcp.hex"):
        req = load_hex(cap)
        for cut in range(1, len(req)):
            out.append(("%s cut at %d" % (cap, cut), [req[:cut]]))
    env = load_hex("java-hdllib-resolve-udp.hex")[:16]
    for i in range(400 if LONG else 120):
        n = rnd.randrange(1, 200)
        g = bytes(rnd.randrange(256) for _ in range(n))
        out.append(("garbage %d" % n, [g]))
        if n > 20:
            out.append(("enveloped garbage %d" % n, [env + struct.pack(">I", n - 20) + g[20:]]))
    return out


def measure(node, items):
    """Bytes out of every probe: a good request follows each on the same socket (one worker,
    answered in order), so what arrives before its answer is the probe's."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.settimeout(3)
    rows = []
    try:
        for i, (name, dgrams) in enumerate(items):
            sentinel = 0x40000000 + i
            for d in dgrams:
                s.sendto(d, ("127.0.0.1", node.port))
            s.sendto(resolve_request("88.100.1/small", sentinel), ("127.0.0.1", node.port))
            out, rcs = 0, set()
            while True:
                a = s.recv(65536)
                if len(a) >= 12 and struct.unpack(">I", a[8:12])[0] == sentinel:
                    break
                out += len(a)
                if len(a) >= 28 and struct.unpack(">I", a[12:16])[0] == 0:
                    rcs.add(struct.unpack(">I", a[24:28])[0])
            rows.append((out / sum(len(d) for d in dgrams), name, sum(len(d) for d in dgrams),
                         out, rcs))
    finally:
        s.close()
    return rows


def flood(node, rate, seconds):
    """~\\p rate requests/s from 8 sockets of 127.0.0.3 for \\p seconds; (sent, answers, slips,
    elapsed)."""
    socks = []
    for _ in range(8):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.3", 0))
        s.setblocking(False)
        socks.append(s)
    answers = slips = 0

    def drain():
        nonlocal answers, slips
        for s in socks:
            while True:
                try:
                    a = s.recv(65536)
                except BlockingIOError:
                    break
                rc = struct.unpack(">I", a[24:28])[0] if len(a) >= 28 else 0
                answers += rc == 1
                slips += rc == 2

    def send(i):
        try:
            socks[i % 8].sendto(resolve_request("88.100.1/small", 1000 + i),
                                ("127.0.0.1", node.port))
        except BlockingIOError:
            pass

    try:
        sent, elapsed = paced(rate, seconds, send, tick=drain)
        end = time.time() + 0.5
        while time.time() < end:
            drain()
            time.sleep(0.01)
    finally:
        for s in socks:
            s.close()
    return sent, answers, slips, elapsed


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-atk-amp-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        # 88.100.1/test (what the captured hdllib requests ask for): 400 values, ~80 KB
        import_records(tmp, db, [desc_record("88.100.1/test", 400, fill="a"), SMALL_RECORD])
        # 1. the default configuration
        node = Node(tmp, db, workers=2)
        nodes.append(node)
        items = probes(random.Random(2641))
        rows = measure(node, items)
        rows.sort(reverse=True)
        worst = rows[0]
        # valid requests: those answered (RC 1) or redirected to TCP (RC 2)
        valid = [r for r in rows if r[4] & {1, 2}]
        smallest = min(valid, key=lambda r: r[2])
        for r in rows[:5]:
            print("  %.2fx  %s (%d -> %d bytes)" % (r[0], r[1], r[2], r[3]))
        print("FIGURE amplification: worst %.2fx (%s, %d -> %d bytes) over %d requests; "
              "smallest valid request (%s) %d -> %d bytes (%.2fx)"
              % (worst[0], worst[1], worst[2], worst[3], len(rows), smallest[1], smallest[2],
                 smallest[3], smallest[0]))
        check(worst[0] <= 10.0, "worst amplification %.2fx <= 10x" % worst[0])
        big = [r for r in rows if r[1] == "java-hdllib-resolve-udp.hex"][0]
        check(big[4] == {2} and big[0] <= 10, "the big record gets the redirect within 10x")
        check(node.alive(), "node alive after the probes")
        check(node.stop() == 0, "probe node exit 0")
        nodes.remove(node)

        # 2. RRL: one source flooding at ~5x (10x long) the rate
        conf = os.path.join(tmp, "rrl.conf")
        with open(conf, "w") as f:
            f.write("udp_rrl_rate = %d\nudp_rrl_burst = %d\nudp_rrl_slip = 2\n"
                    "udp_rrl_whitelist = none\n" % (RATE, BURST))
        node = Node(tmp, db, conf=conf, workers=2)
        nodes.append(node)
        mult, secs = (10, 8.0) if LONG else (5, 3.0)
        sent, answers, slips, elapsed = flood(node, RATE * mult, secs)
        most = BURST + RATE * (elapsed + 0.5)  # + the draining time
        print("FIGURE rrl_flood: %d requests in %.1f s (%.0f/s) from one source: %d answered "
              "(%.0f/s; limit %d/s + burst %d = %.0f), %d slipped, %d dropped"
              % (sent, elapsed, sent / elapsed, answers, answers / elapsed, RATE, BURST, most,
                 slips, sent - answers - slips))
        check(answers <= most, "answered %d <= burst + rate x time %.0f" % (answers, most))
        check(answers >= min(sent, BURST), "the burst is answered (%d)" % answers)
        check(slips > 0, "limited requests slip to TCP")
        check(node.alive(), "node alive after the flood")
        check(node.stop() == 0, "rrl node exit 0")
        check("udp (shutdown): rrl limited" in node.logtext(), "rrl counters logged")
        nodes.remove(node)
    finally:
        rc = finish(nodes, tmp, "atk_amplification")
    return rc


if __name__ == "__main__":
    sys.exit(main())
