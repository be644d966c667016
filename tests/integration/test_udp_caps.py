#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""UDP amplification guards of the real idnoded on loopback.

- The UDP answer cap: the captured hdllib UDP requests (resolve, HDLTrace) for a record too big
  for the cap get the TCP redirect (RC_ERROR, their RequestId and opcode, at most 10x their
  size), and `idnode resolve --udp` still prints the whole record (through TCP).
- Error replies to requests that do not parse are never larger than the request: every
  truncation of the captured requests, short garbage of every length, every opcode.
- Response-rate limiting across 2 workers: 8 sockets of one source (spread over the workers by
  SO_REUSEPORT) get at most burst + rate x time answers, every second limited request the
  redirect; a whitelisted address is never limited; the per-prefix log line and the counters at
  SIGHUP and shutdown.
- The reassembly table: one source's flood of partial requests does not evict another
  source's request (the busiest source loses its own).
"""
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

BIG_VALUES = 60


def ask(node, req, src="127.0.0.1", timeout=0.5):
    """All datagrams that answer \\p req within \\p timeout (sent from \\p src)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    out = []
    try:
        s.sendto(req, ("127.0.0.1", node.port))
        while True:
            out.append(s.recv(65536))
            s.settimeout(0.05)
    except socket.timeout:
        pass
    finally:
        s.close()
    return out


def test_redirect(node):
    for cap in ("java-hdllib-resolve-udp.hex", "java-hdllib-HDLTrace-stock-udp.hex"):
        req = load_hex(cap)
        rid = struct.unpack(">I", req[8:12])[0]
        got = ask(node, req)
        check(len(got) == 1, "%s: one datagram (got %d)" % (cap, len(got)))
        if not got:
            continue
        r = parse_reply(got[0])
        check(r["rid"] == rid and r["op"] == 1 and r["rc"] == 2 and "TCP" in r["message"],
              "%s: the TCP redirect (rc %d, %r)" % (cap, r["rc"], r.get("message")))
        check(len(got[0]) <= 10 * len(req), "%s: redirect %d bytes for %d"
              % (cap, len(got[0]), len(req)))
        # the same request over TCP: the whole record
        t = parse_reply(node.tcp(req))
        check(t["rc"] == 1 and len(t["values"]) == BIG_VALUES, "%s over TCP: the record" % cap)
    # with RD: the redirect carries the digest, as an answer must
    req = resolve_request("88.100.1/test", 71, flags=0x19800000)
    r = parse_reply(ask(node, req)[0])
    check(r["rc"] == 2 and r["opflags"] & 0x00800000, "redirect with RD")
    # small answers are not redirected
    r = parse_reply(ask(node, resolve_request("88.100.1/small", 72))[0])
    check(r["rc"] == 1, "small answer over UDP")
    # the CLI: the whole record over --udp (through TCP); UDP alone gets the redirect
    p = subprocess.run([IDNODE, "resolve", "-s", "127.0.0.1:%d" % node.port, "--udp",
                        "88.100.1/test"], capture_output=True, timeout=30)
    lines = [ln for ln in p.stdout.splitlines() if ln.split()[1:2] == [b"DESC"]]
    check(p.returncode == 0 and len(lines) == BIG_VALUES,
          "idnode resolve --udp prints the whole record (rc %d, %d values)"
          % (p.returncode, len(lines)))
    p = subprocess.run([IDNODE, "resolve", "-s", "127.0.0.1:%d" % node.port, "--udp",
                        "--no-fallback", "88.100.1/test"], capture_output=True, timeout=30)
    check(p.returncode == 1 and b"too large for UDP" in p.stderr,
          "idnode resolve --udp --no-fallback: the redirect (%r)" % p.stderr[-120:])


def test_error_sizes(node):
    """Replies to what does not parse are never larger than what came in."""
    worst = []
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    sentinel = [70000]

    def probe(d, what):
        # the probe, then a good request: one socket reaches one worker, which answers in
        # order, so what arrives before the good request's answer is the probe's
        sentinel[0] += 1
        s.sendto(d, ("127.0.0.1", node.port))
        s.sendto(resolve_request("88.100.1/small", sentinel[0]), ("127.0.0.1", node.port))
        got = []
        while True:
            a = s.recv(65536)
            if len(a) >= 12 and struct.unpack(">I", a[8:12])[0] == sentinel[0]:
                return got
            got.append(a)
            if len(a) > len(d):
                worst.append((what, len(d), len(a)))

    try:
        for cap in ("java-hdllib-resolve-udp.hex", "java-hdllib-siteinfo-tcp.hex"):
            req = load_hex(cap)
            for cut in range(len(req)):
                probe(req[:cut], "%s cut at %d" % (cap, cut))
        rnd = random.Random(11)
        env = load_hex("java-hdllib-resolve-udp.hex")[:20]
        for n in range(0, 120):
            g = bytes(rnd.randrange(256) for _ in range(n))
            probe(g, "garbage %d" % n)
            # an envelope that decodes, then garbage: the dispatcher answers these
            g2 = env[:16] + struct.pack(">I", max(0, n - 20)) + g[20:]
            probe(g2[:max(n, 20)], "enveloped garbage %d" % n)
        def probe_any(d):
            # any reply size is fine here: the caller judges it by its response code
            before = len(worst)
            got = probe(d, "")
            del worst[before:]
            return got

        # every opcode with an empty body
        for op in list(range(0, 20)) + [100, 101, 102, 103, 104, 105, 200, 400, 401, 402, 403,
                                        404, 405, 406, 407, 408, 409, 500, 1000, 0xFFFFFFFF]:
            hdr = struct.pack(">IIIHBBII", op, 0, 0, 1, 0, 0, int(time.time()) + 100, 0)
            msg = hdr + struct.pack(">I", 0)
            d = struct.pack(">BBBBIIII", 2, 11, 2, 11, 0, 900 + (op & 0xFFFF), 0, len(msg)) + msg
            for a in probe_any(d):
                # a refusal (RC 4/5) is no larger than the request; a real answer
                # (GetSiteInfo) is within the 10x cap
                r = parse_reply(a)
                if r["rc"] in (4, 5) and len(a) > len(d):
                    worst.append(("opcode %d" % op, len(d), len(a)))
                check(len(a) <= 10 * len(d), "opcode %d: %d bytes for %d"
                      % (op, len(a), len(d)))
    finally:
        s.close()
    check(not worst, "replies larger than their unparsable request: %s" % worst[:5])
    check(node.alive() and parse_reply(ask(node, resolve_request("88.100.1/small", 5))[0])["rc"]
          == 1, "answers after the garbage")


def rrl_flood(node, n_socks, count, rid0):
    """\\p count requests over \\p n_socks sockets of 127.0.0.1, as fast as they go; returns
    (answers, slips, elapsed seconds)."""
    socks = []
    for _ in range(n_socks):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    answers = slips = 0
    t0 = time.time()
    try:
        for i in range(count):
            socks[i % n_socks].sendto(resolve_request("88.100.1/small", rid0 + i),
                                      ("127.0.0.1", node.port))
        elapsed = time.time() - t0
        deadline = time.time() + 1.0
        while time.time() < deadline:
            got = False
            for s in socks:
                try:
                    r = parse_reply(s.recv(65536))
                    got = True
                    if r["rc"] == 1:
                        answers += 1
                    elif r["rc"] == 2:
                        slips += 1
                except BlockingIOError:
                    pass
            if not got:
                time.sleep(0.01)
    finally:
        for s in socks:
            s.close()
    return answers, slips, elapsed


def test_rrl(tmp, db):
    conf = os.path.join(tmp, "rrl.conf")
    with open(conf, "w") as f:
        f.write("udp_rrl_rate = 50\nudp_rrl_burst = 50\nudp_rrl_slip = 2\n"
                "udp_rrl_whitelist = 127.0.0.2/32\n")
    node = Node(tmp, db, conf=conf, workers=2)
    try:
        count = 600
        answers, slips, elapsed = rrl_flood(node, 8, count, 10000)
        most = 50 + 50 * (elapsed + 1.0) + 1  # burst + rate x (sending + reading time)
        print("rrl: %d requests in %.2f s from 8 sockets: %d answered, %d slipped (limit %.0f)"
              % (count, elapsed, answers, slips, most))
        check(50 <= answers <= most, "rrl: %d answers, within burst + rate x time (%.0f)"
              % (answers, most))
        limited = count - answers
        check(abs(slips - limited / 2) <= 2 + limited * 0.05,
              "rrl: every second limited request slips (%d of %d)" % (slips, limited))
        # the whitelisted address is answered in full
        ok = 0
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.2", 0))
        s.settimeout(2)
        try:
            for i in range(200):
                s.sendto(resolve_request("88.100.1/small", 20000 + i), ("127.0.0.1", node.port))
                ok += parse_reply(s.recv(65536))["rc"] == 1
        finally:
            s.close()
        check(ok == 200, "rrl: the whitelisted 127.0.0.2 answered 200 of 200 (%d)" % ok)
        check("udp rrl: limiting answers to 127.0.0.0/24" in node.logtext(),
              "rrl: the limited prefix is logged")
        node.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while "udp (reload): rrl limited" not in node.logtext() and time.time() < deadline:
            time.sleep(0.05)
        log = node.logtext()
        m = [ln for ln in log.splitlines() if "udp (reload): rrl limited" in ln]
        check(m and "rrl limited %d request(s)" % limited in m[-1],
              "rrl: counters at reload: %s (want %d limited)" % (m[-1:] or None, limited))
        check(node.stop() == 0, "rrl node exit 0")
        check("udp (shutdown): rrl limited %d" % limited in node.logtext(),
              "rrl: counters at shutdown")
    finally:
        if node.alive():
            node.proc.kill()


def test_reasm_eviction(tmp, db):
    conf = os.path.join(tmp, "reasm.conf")
    with open(conf, "w") as f:
        f.write("udp_reasm_slots = 8\n")
    node = Node(tmp, db, conf=conf, workers=1)
    try:
        big = resolve_request("88.100.1/small", 31000, types=["X" * 300, "Y" * 300])
        legit = split_request(big)
        check(len(legit) == 2, "a two-datagram request")
        flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.2", 0))
        s.settimeout(2)
        try:
            def partials(base):
                for i in range(40):
                    flood.sendto(split_request(with_request_id(big, base + i))[0],
                                 ("127.0.0.1", node.port))
            partials(40000)
            s.sendto(legit[0], ("127.0.0.1", node.port))
            partials(50000)  # 40 new partial requests from one source: only its own evicted
            time.sleep(0.1)
            s.sendto(legit[1], ("127.0.0.1", node.port))
            try:
                r = parse_reply(s.recv(65536))
                check(r["rid"] == 31000 and r["rc"] == 200,
                      "reassembled despite a partial-request flood (rc %d)" % r["rc"])
            except socket.timeout:
                check(False, "no answer: the request was evicted by another source's flood")
        finally:
            s.close()
            flood.close()
        check("dropping request" in node.logtext() and "busiest source" in node.logtext(),
              "evictions logged")
        check(node.stop() == 0, "reasm node exit 0")
    finally:
        if node.alive():
            node.proc.kill()


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-udp-caps-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        # 88.100.1/test (the captured hdllib requests): 60 values of 170 bytes, 25 datagrams
        import_records(tmp, db, [desc_record("88.100.1/test", BIG_VALUES, fill="t"),
                                 SMALL_RECORD])
        node = Node(tmp, db, workers=2)
        nodes.append(node)
        test_redirect(node)
        test_error_sizes(node)
        check(node.stop() == 0, "caps node exit 0")
        check("answer(s) over the UDP answer cap redirected to TCP" in node.logtext(),
              "redirect counter logged at shutdown")
        nodes.remove(node)
        test_rrl(tmp, db)
        test_reasm_eviction(tmp, db)
    finally:
        rc = finish(nodes, tmp, "test_udp_caps")
    return rc


if __name__ == "__main__":
    sys.exit(main())
