#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack scenario: a flood of partial multi-packet UDP requests (many RequestIds, the largest
declared lengths, stray and duplicate fragments) against the reassembly table, while a
legitimate client resolves with single- and two-datagram requests (issue 11 item 7), the two
datagrams of the latter 20 ms apart (as jitter spreads them on a real network), so that dozens
of attacking fragments arrive in between.

The attackers (127.0.1.1-4; 127.0.1.1-8 with --long; several sockets each, so both workers are
hit) never complete a request: every slot they take stays until it is evicted or expires. Most
declare a MessageLength of max_message_len, so slot buffers grow to the largest size. When the
table (udp_reasm_slots = 8 per worker) is full, a new request evicts the oldest request of the
source holding the most slots, so the attackers evict each other and not the legitimate
client's one. Fragments never reach the rate limiter (only whole requests do), so RRL plays no
part here.

Holds when >= 99 % of the legitimate requests (half of them two-datagram) are answered, the
node stays alive, and its resident memory grows by no more than the table's bound
(workers x slots x (max_message_len + 20)) plus 16 MiB. Prints FIGURE reasm_flood.
    --long   a longer, faster flood from eight addresses
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
RATE, SECONDS, ATTACKERS = (8000, 15.0, 8) if LONG else (4000, 3.0, 4)
WORKERS, SLOTS, MAX_LEN = 2, 8, 262144


def fragment(rnd, rid):
    """One fragment of a request that will never be whole."""
    mlen = rnd.choice([MAX_LEN, MAX_LEN, MAX_LEN - 1, 600, 984, 5000])
    npk = (mlen + 491) // 492
    seq = rnd.choice([0, 0, 1, npk - 1, rnd.randrange(npk)])
    size = 492 if seq < npk - 1 else mlen - 492 * (npk - 1)
    env = struct.pack(">BBBBIIII", 2, 11, 0x22, 11, 0, rid, seq, mlen)
    return env + bytes(rnd.randrange(256) for _ in range(min(size, 16))) + b"\0" * (size - 16)


def attacker(port, stop, stats, rnd):
    socks = []
    for a in range(ATTACKERS):
        for _ in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.1.%d" % (a + 1), 0))
            s.setblocking(False)
            socks.append(s)
    pool = []
    for i in range(512):
        rid = rnd.randrange(1, 1 << 31)
        pool.append(fragment(rnd, rid))
        if i % 8 == 0:
            pool.append(pool[-1])  # a duplicate

    def send(i):
        d = pool[i % len(pool)]
        if i >= len(pool):  # fresh RequestIds every round
            rid = (struct.unpack(">I", d[8:12])[0] + i) & 0x7FFFFFFF
            d = d[:8] + struct.pack(">I", rid) + d[12:]
        try:
            socks[i % len(socks)].sendto(d, ("127.0.0.1", port))
        except BlockingIOError:
            pass

    try:
        stats["sent"], stats["seconds"] = paced(RATE, SECONDS, send, stop)
    finally:
        for s in socks:
            s.close()


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-atk-reasm-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [SMALL_RECORD])
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("udp_reasm_slots = %d\nmax_message_len = %d\n" % (SLOTS, MAX_LEN))
        node = Node(tmp, db, conf=conf, workers=WORKERS)
        nodes.append(node)
        # warm up (buffers, caches), then the baseline
        for i in range(20):
            node.udp(resolve_request("88.100.1/small", 10 + i))
        rss0 = rss_kb(node.proc.pid)
        stop = threading.Event()
        legit, atk = {}, {}
        tl = threading.Thread(target=legit_client, args=(node.port, "127.0.0.1", stop, legit),
                              kwargs={"multi_every": 2, "gap": 0.02})
        ta = threading.Thread(target=attacker, args=(node.port, stop, atk, random.Random(3)))
        tl.start()
        ta.start()
        peak = rss0
        while ta.is_alive():
            peak = max(peak, rss_kb(node.proc.pid))
            ta.join(0.2)
        stop.set()
        tl.join(10)
        peak = max(peak, rss_kb(node.proc.pid))
        bound_kb = WORKERS * SLOTS * (MAX_LEN + 20) // 1024 + 16 * 1024
        share = legit["answered"] / max(1, legit["sent"])
        print("FIGURE reasm_flood: %d partial fragments in %.1f s (%.0f/s) from %d addresses; "
              "legitimate %d/%d answered (%.2f %%; %d of them two-datagram), median %.1f ms, "
              "p99 %.1f ms; RSS %d -> %d KiB peak (+%d, bound +%d)"
              % (atk["sent"], atk["seconds"], atk["sent"] / atk["seconds"], ATTACKERS,
                 legit["answered"], legit["sent"], 100 * share, legit["multi"],
                 pct_ms(legit["latencies"], 50), pct_ms(legit["latencies"], 99),
                 rss0, peak, peak - rss0, bound_kb))
        check(legit["sent"] >= 50 and legit["multi"] >= 20,
              "the legitimate client ran (%d requests)" % legit["sent"])
        check(share >= 0.99, "legitimate answered %.2f %% >= 99 %%" % (100 * share))
        check(peak - rss0 <= bound_kb, "RSS growth %d KiB <= %d" % (peak - rss0, bound_kb))
        check(node.alive(), "node alive after the flood")
        check("udp reassembly" in node.logtext(), "evictions logged")
        r = parse_reply(node.udp(resolve_request("88.100.1/small", 77))[0])
        check(r["rc"] == 1, "answers after the flood")
        check(node.stop() == 0, "node exit 0")
        nodes.remove(node)
    finally:
        rc = finish(nodes, tmp, "atk_reasm_flood")
    return rc


if __name__ == "__main__":
    sys.exit(main())
