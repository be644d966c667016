#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack scenario: a flood of malformed, truncated and garbage UDP datagrams while a
legitimate client resolves (issue 11 item 7).

The attacker (127.0.1.1, 8 sockets by datagram size, so both workers get a share) sends at a fixed rate a mix of
random garbage, envelopes with garbage after them, every truncation of captured requests,
oversized length fields, responses, unknown opcodes, stray fragments and valid requests with
bad bodies. RRL runs as shipped (rate 1000/s per prefix) with only the legitimate client's
address whitelisted (127.0.0.1/32), so the attacker's error replies are rate-limited too.
The legitimate client (127.0.0.1) resolves one request at a time, each given 1 s.

Holds when >= 99 % of the legitimate requests are answered, the node is alive and answers
afterwards, and no reply to the attacker was larger than the datagram it answered.
Prints FIGURE malformed_flood.
    --long   a longer, faster flood
"""
import os
import random
import socket
import struct
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

LONG = "--long" in sys.argv[1:]
RATE, SECONDS = (6000, 15.0) if LONG else (2000, 3.0)


def bad_datagrams(rnd):
    caps = [load_hex(c) for c in ("java-hdllib-resolve-udp.hex", "java-hdllib-siteinfo-tcp.hex",
                                  "java-hdllib-resolve-typed-tcp.hex")]
    out = []
    for c in caps:
        out += [c[:cut] for cut in range(len(c))]
    for _ in range(300):
        n = rnd.randrange(0, 700)
        g = bytes(rnd.randrange(256) for _ in range(n))
        out.append(g)
        if n >= 20:
            e = bytearray(caps[0][:20])
            e[16:20] = struct.pack(">I", rnd.choice([0, n - 20, n, 0x7FFFFFF0, 262145]))
            e[12:16] = struct.pack(">I", rnd.choice([0, 0, 1, 5000]))
            e[2] = rnd.choice([0x02, 0x22, 0x42, 0xFF])
            out.append(bytes(e) + g[20:])
    for c in caps:
        m = bytearray(c)
        m[24:28] = b"\0\0\0\1"  # a response: never answered
        out.append(bytes(m))
        for op in (0, 3, 9, 105, 0xFFFFFFFF):
            m = bytearray(c)
            m[20:24] = struct.pack(">I", op)
            out.append(bytes(m))
        m = bytearray(c)
        m[40:44] = struct.pack(">I", 0xFFFFFF)  # body length past the message
        out.append(bytes(m))
    rnd.shuffle(out)
    return out


# Socket k sends only datagrams of a length in [EDGES[k], EDGES[k + 1]): a reply on it larger
# than EDGES[k + 1] - 1 is larger than the datagram it answers.
EDGES = [0, 20, 44, 56, 72, 100, 200, 450, 1 << 20]


def attacker(port, stop, stats, rnd):
    socks = []
    for _ in range(len(EDGES) - 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.1.1", 0))
        s.setblocking(False)
        socks.append(s)
    pool = [(d, next(k for k in range(len(socks)) if len(d) < EDGES[k + 1]))
            for d in bad_datagrams(rnd)]
    stats.update(sent=0, replies=0, oversized=0, bytes_in=0, bytes_out=0, worst=None)

    def send(i):
        d, k = pool[i % len(pool)]
        try:
            socks[k].sendto(d, ("127.0.0.1", port))
            stats["bytes_in"] += len(d)
        except BlockingIOError:
            pass

    def drain():
        for k, s in enumerate(socks):
            while True:
                try:
                    a = s.recv(65536)
                except BlockingIOError:
                    break
                stats["replies"] += 1
                stats["bytes_out"] += len(a)
                if len(a) >= EDGES[k + 1]:
                    stats["oversized"] += 1
                    stats["worst"] = (len(a), EDGES[k + 1] - 1)

    try:
        stats["sent"], stats["seconds"] = paced(RATE, SECONDS, send, stop, drain)
        drain()
    finally:
        for s in socks:
            s.close()


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-atk-malformed-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [SMALL_RECORD])
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("udp_rrl_whitelist = 127.0.0.1/32\n")
        node = Node(tmp, db, conf=conf, workers=2)
        nodes.append(node)
        stop = threading.Event()
        legit, atk = {}, {}
        tl = threading.Thread(target=legit_client, args=(node.port, "127.0.0.1", stop, legit))
        ta = threading.Thread(target=attacker, args=(node.port, stop, atk, random.Random(5)))
        tl.start()
        ta.start()
        ta.join(SECONDS + 30)
        stop.set()
        tl.join(10)
        share = legit["answered"] / max(1, legit["sent"])
        print("FIGURE malformed_flood: %d bad datagrams in %.1f s (%.0f/s), %d replies "
              "(%d bytes out for %d in, none larger than its datagram: %s); legitimate %d/%d "
              "answered (%.2f %%), median %.1f ms, p99 %.1f ms"
              % (atk["sent"], atk["seconds"], atk["sent"] / atk["seconds"], atk["replies"],
                 atk["bytes_out"], atk["bytes_in"], atk["oversized"] == 0, legit["answered"],
                 legit["sent"], 100 * share, pct_ms(legit["latencies"], 50),
                 pct_ms(legit["latencies"], 99)))
        check(legit["sent"] >= 50, "the legitimate client ran (%d requests)" % legit["sent"])
        check(share >= 0.99, "legitimate answered %.2f %% >= 99 %%" % (100 * share))
        check(atk["oversized"] == 0, "%d replies larger than their datagram (%s)"
              % (atk["oversized"], atk["worst"]))
        check(node.alive(), "node alive after the flood")
        r = parse_reply(node.udp(resolve_request("88.100.1/small", 77))[0])
        check(r["rc"] == 1, "answers after the flood")
        check(node.stop() == 0, "node exit 0")
        nodes.remove(node)
    finally:
        rc = finish(nodes, tmp, "atk_malformed_flood")
    return rc


if __name__ == "__main__":
    sys.exit(main())
