#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Three real idnoded on loopback, started by scripts/three-nodes.sh (python3 stdlib only): a
top-level node homing 88.100 (127.0.0.10), secondary node A homing 88.100.1 (127.0.0.11),
secondary node B homing 88.100.2 (127.0.0.12); A and B reach the top and each other over TLS
verified against the development CA (certs/make-dev-certs.sh).

Checks: a client asks A for B's identifiers over UDP, TCP, the HTTP native tunnel, REST and the
proxy and gets B's values; a second ask is a cache hit (A's `cache stats`, B's `status`
resolutions unchanged); B killed -> A answers from its stale entries within the stale budget;
B back (with changed data) -> fresh again; a peer whose certificate another CA signed, and one
whose name does not match, are refused and logged, and nothing they hold is answered; 1000
concurrent identical misses at A -> B's counter shows exactly one query; a referral loop -> RC 6
with a bounded number of queries. Ports are free ones; every process is stopped by PID in a
finally block; every wait is bounded in count and time.

Without the TLS stream in the build (no tls_listen key) the upstreams are asked over TCP and
the certificate checks are skipped (said so on a "skip:" line).
"""
import json
import os
import shutil
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

SCRIPT = os.path.join(SRC, "scripts", "three-nodes.sh")
ADDR = {"top": "127.0.0.10", "a": "127.0.0.11", "b": "127.0.0.12", "c": "127.0.0.13"}
STALE_BUDGET_MS = 600
MAX_TTL = 3


def idnode(*args, timeout=30):
    p = subprocess.run([IDNODE] + list(args), capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def kv(text):
    d = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        d[k] = v
    return d


def control(d, node, *cmd):
    rc, out, err = idnode(*cmd, "--socket", os.path.join(d, node, "control.sock"))
    check(rc == 0, "%s %s on %s: rc %d %s" % (cmd[0], " ".join(cmd[1:]), node, rc, err.strip()))
    return kv(out)


def resolutions(d, node):
    return int(control(d, node, "status").get("resolutions", "-1"))


def tls_supported(tmp):
    """True when this idnoded knows the TLS stream (tls_listen)."""
    conf = os.path.join(tmp, "probe.conf")
    with open(conf, "w") as f:
        f.write("db = %s\ntls_listen = 127.0.0.1:1\n" % tmp)
    p = subprocess.run([IDNODED, "-t", "-c", conf], capture_output=True, timeout=20)
    return "unknown key" not in p.stderr.decode(errors="replace") + p.stdout.decode(
        errors="replace")


def pid_of(d, node):
    with open(os.path.join(d, node, "idnoded.pid")) as f:
        return int(f.read().strip())


def udp_ask(port, handle, rid=7, timeout=5.0, flags=0x19000000, addr=ADDR["a"]):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(resolve_request(handle, rid, flags=flags), (addr, port))
        msg, _ = udp_collect(s, rid, timeout)
        return parse_reply(msg)
    finally:
        s.close()


def tcp_ask(port, handle, rid=9, addr=ADDR["a"]):
    with socket.create_connection((addr, port), timeout=10) as s:
        s.sendall(resolve_request(handle, rid))
        return parse_reply(recv_frame(s, 10))


def http_native(port, handle, rid=11, addr=ADDR["a"]):
    body = resolve_request(handle, rid)
    with socket.create_connection((addr, port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-hdl-message\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        r = HttpReader(s).response(10)
    return r


def get(port, path, addr=ADDR["a"]):
    import http.client
    c = http.client.HTTPConnection(addr, port, timeout=15)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def urls(reply):
    return [v[2] for v in reply.get("values", []) if v[1] == "URL"]


def start_b(d, env):
    """(Re)start node B alone from its configuration in \\p d; returns the process."""
    log = open(os.path.join(d, "b", "idnoded.log"), "a")
    p = subprocess.Popen([os.path.join(BUILD, "idnoded"), "-c", os.path.join(d, "b", "idnoded.conf")],
                         stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return p


def wait_ready(path, count, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            if f.read().count("idnoded ready") >= count:
                return True
        time.sleep(0.05)
    return False


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-3n-")
    d = os.path.join(tmp, "nodes")
    udp, tlsp, httpp = free_port(), free_port(), free_port()
    tls = tls_supported(tmp)
    if not tls:
        print("skip: this idnoded has no TLS stream (tls_listen): upstreams over TCP, "
              "certificate checks skipped")
    extra_top_data = os.path.join(tmp, "top-extra.jsonl")
    site = lambda addr: {"index": 1, "type": "HS_SITE", "ttl": 3600, "data": {  # noqa: E731
        "format": "site", "value": {
            "version": 1, "protocolVersion": "2.10", "serialNumber": 1, "primarySite": True,
            "multiPrimary": False, "servers": [{
                "serverId": 1, "address": addr, "publicKey": {"format": "base64", "value": ""},
                "interfaces": [{"query": True, "admin": True, "protocol": "TCP", "port": 1}]}]}}}
    with open(extra_top_data, "w") as f:
        # 88.100.9 "lives" at A itself: A asking A without REC is referred back to A (a loop)
        f.write(json.dumps({"handle": "0.NA/88.100.9", "values": [site(ADDR["a"])]}) + "\n")
    env = dict(os.environ, IDNODE_PORT=str(udp), IDNODE_TLS_PORT=str(tlsp),
               IDNODE_HTTP_PORT=str(httpp), IDNODE_BUILD=BUILD, IDNODE_TOP_DATA=extra_top_data,
               IDNODE_TRANSPORT="tls" if tls else "tcp")
    env["IDNODE_EXTRA_A"] = "\\n".join([
        "resolver_max_ttl = %d" % MAX_TTL,
        "resolver_stale_budget_ms = %d" % STALE_BUDGET_MS,
        "resolver_stale_refresh_ms = 1500",
        "upstream_timeout_ms = 4000",
        "upstream_try_timeout_ms = 2000",
        "pending_per_source = 4096",
        "log_level = info",
        # A's own address (the referral loop) and the peers refused for their certificates
        "upstream = self 127.0.0.11:@TLS@ transport=tls ca=@DIR@/certs/ca.pem",
        "upstream = c 127.0.0.13:@TLS@ transport=tls ca=@DIR@/certs/ca.pem",
        "forward = 88.100.3 c",
        "upstream = wrongname 127.0.0.12:@TLS@ transport=tls ca=@DIR@/certs/ca.pem "
        "sni=not-b.example",
        "forward = 88.100.4 wrongname",
    ])
    procs = []
    started = False
    try:
        r = subprocess.run(["bash", SCRIPT, "start", d], env=env, capture_output=True,
                           timeout=300)
        out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
        if not check(r.returncode == 0, "three-nodes.sh start: %s" % out[-2000:]):
            return 1
        started = True
        rc, keys, _ = idnode("gen", "--prefix", "88.100.2", "--count", "20", "--seed", "7",
                             "--keys-only")
        keys = keys.split()
        check(len(keys) == 20, "20 keys of B")
        x = keys[0]

        # B's own answer, for comparison
        direct = tcp_ask(udp, x, addr=ADDR["b"])
        check(direct["rc"] == 1 and urls(direct), "B answers %s itself" % x)

        # ---- every transport, at A -------------------------------------------------------
        b0 = resolutions(d, "b")
        u = udp_ask(udp, x)
        check(u["rc"] == 1 and urls(u) == urls(direct), "UDP at A: B's values (%r)" % u.get("rc"))
        check(not (u["opflags"] & 0x80000000), "a delegated answer is not authoritative (AT)")
        t = tcp_ask(udp, keys[1])
        check(t["rc"] == 1 and t["handle"] == keys[1], "TCP at A: B's identifier %s" % keys[1])
        h = http_native(httpp, keys[2])
        check(h is not None and h[0] == 200, "HTTP native at A: 200")
        if h is not None and h[0] == 200:
            hr = parse_reply(h[2])
            check(hr["rc"] == 1 and hr["handle"] == keys[2], "HTTP native: B's values")
        st, _, body = get(httpp, "/api/handles/" + keys[3])
        j = json.loads(body) if st == 200 else {}
        check(st == 200 and j.get("responseCode") == 1 and j.get("handle") == keys[3],
              "REST at A: B's identifier (%d %r)" % (st, body[:200]))
        st, hdrs, _ = get(httpp, "/" + keys[4])
        check(st == 302 and hdrs.get("location", "").startswith("https://"),
              "proxy at A: 302 to B's URL (%d)" % st)
        b1 = resolutions(d, "b")
        check(b1 - b0 == 5, "B asked once per identifier (%d)" % (b1 - b0))

        # ---- a second ask is a cache hit ------------------------------------------------------
        s0 = control(d, "a", "cache", "stats")
        u2 = udp_ask(udp, x, rid=8)
        st, _, body = get(httpp, "/api/handles/" + keys[3])
        s1 = control(d, "a", "cache", "stats")
        check(u2["rc"] == 1 and urls(u2) == urls(direct), "second ask answered")
        check(int(s1["hits"]) >= int(s0["hits"]) + 2, "A's cache hits grew by 2 (%s -> %s)" %
              (s0["hits"], s1["hits"]))
        check(resolutions(d, "b") == b1, "B not asked again")

        # ---- local writes at A never flush its delegated answers -------------------------------
        sec = os.path.join(tmp, "secret")
        with open(sec, "w") as f:
            f.write("secret")
        rc, out, err = idnode("create", "-s", "%s:%d" % (ADDR["a"], udp), "--auth",
                              "300:0.NA/88.100.1", "--seckey-file", sec, "--timeout", "10000",
                              "88.100.1/LOCAL-WRITE", "URL=https://a.example/local")
        check(rc == 0, "a local write at A (rc %d %s)" % (rc, err.strip()))
        s_w = control(d, "a", "cache", "stats")
        check(s_w["entries"] == s1["entries"] and s_w.get("flushes") == s1.get("flushes") and
              s_w.get("invalidations") == s1.get("invalidations"),
              "the local write left A's delegated entries alone (%s -> %s entries)" %
              (s1["entries"], s_w["entries"]))
        u_w = udp_ask(udp, x, rid=9)
        check(u_w["rc"] == 1 and resolutions(d, "b") == b1, "after the write: still a cache hit")

        # ---- B killed: stale within the budget; B back: fresh -----------------------------------
        os.kill(pid_of(d, "b"), signal.SIGKILL)
        time.sleep(MAX_TTL + 0.5)
        t0 = time.time()
        u3 = udp_ask(udp, x, rid=21, timeout=10)
        dt = time.time() - t0
        check(u3["rc"] == 1 and urls(u3) == urls(direct), "B dead: A answers from its stale "
              "entry (rc %r)" % u3["rc"])
        check(dt < STALE_BUDGET_MS / 1000.0 + 2.0, "stale answer within the budget (%.2f s)" % dt)
        s2 = control(d, "a", "cache", "stats")
        check(int(s2["stale_served"]) >= 1, "A's stale_served counted (%s)" % s2["stale_served"])
        t0 = time.time()
        u4 = udp_ask(udp, x, rid=22, timeout=10)
        check(u4["rc"] == 1 and time.time() - t0 < 2.0, "held: stale again at once")
        # new data at B while it is down, then B back
        rec = {"handle": x, "values": [{"index": 1, "type": "URL", "ttl": 86400,
                                        "data": {"format": "string", "value": "https://b.example/new"}}]}
        newf = os.path.join(tmp, "new.jsonl")
        with open(newf, "w") as f:
            f.write(json.dumps(rec) + "\n")
        rc, _, err = idnode("import", "--db", os.path.join(d, "b", "db"), "--home", "88.100.2",
                            newf)
        check(rc == 0, "re-import at B: %s" % err)
        p = start_b(d, env)
        procs.append(p)
        check(wait_ready(os.path.join(d, "b", "idnoded.log"), 2), "B back")
        fresh = None
        deadline = time.time() + 20
        while time.time() < deadline:
            time.sleep(0.5)
            f = udp_ask(udp, x, rid=23, timeout=10)
            if f["rc"] == 1 and urls(f) == [b"https://b.example/new"]:
                fresh = f
                break
        check(fresh is not None, "B back: A answers B's new data")

        # ---- certificates ----------------------------------------------------------------------
        if tls:
            other = os.path.join(tmp, "other-ca")
            subprocess.run(["bash", os.path.join(SRC, "certs", "make-dev-certs.sh"), other,
                            ADDR["c"]], check=True, capture_output=True, timeout=60)
            cdir = os.path.join(tmp, "c")
            os.makedirs(os.path.join(cdir, "db"))
            cdata = os.path.join(cdir, "data.jsonl")
            with open(cdata, "w") as f:
                f.write(json.dumps({"handle": "88.100.3/SECRET", "values": [{
                    "index": 1, "type": "URL", "ttl": 60,
                    "data": {"format": "string", "value": "https://untrusted"}}]}) + "\n")
            idnode("import", "--db", os.path.join(cdir, "db"), "--home", "88.100.3", cdata)
            cconf = os.path.join(cdir, "idnoded.conf")
            with open(cconf, "w") as f:
                f.write("listen = 127.0.0.13:%d\nhttp = 127.0.0.13:%d\ntls_listen = 127.0.0.13:%d\n"
                        "tls_cert = %s/server.pem\ntls_key = %s/server.key\ndb = %s/db\n"
                        "home = 88.100.3\nworkers = 1\n" % (udp, httpp, tlsp, other, other, cdir))
            clog = open(os.path.join(cdir, "idnoded.log"), "w")
            cp = subprocess.Popen([IDNODED, "-c", cconf], stdout=clog, stderr=subprocess.STDOUT)
            clog.close()
            procs.append(cp)
            check(wait_ready(os.path.join(cdir, "idnoded.log"), 1), "C started")
            bad = udp_ask(udp, "88.100.3/SECRET", rid=31, timeout=10)
            check(bad["rc"] != 1 and b"untrusted" not in bad["body"],
                  "a peer with another CA's certificate is not answered from (rc %r)" % bad["rc"])
            bad2 = udp_ask(udp, "88.100.4/" + keys[5].split("/", 1)[1], rid=32, timeout=10)
            check(bad2["rc"] != 1, "a peer whose name does not match is refused (rc %r)" %
                  bad2["rc"])
            with open(os.path.join(d, "a", "idnoded.log")) as f:
                alog = f.read()
            check("certificate verify failed" in alog, "A logs the refused certificate")
            check("mismatch" in alog, "A logs the name mismatch")

        # ---- 1000 concurrent identical misses -------------------------------------------------
        hot = keys[10]
        b2 = resolutions(d, "b")
        n_socks, per = 50, 20
        socks = []
        for i in range(n_socks):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.settimeout(15)
            socks.append(s)
        req = [resolve_request(hot, 1000 + k) for k in range(per)]
        for k in range(per):
            for s in socks:
                s.sendto(req[k], (ADDR["a"], udp))
        ok = 0
        deadline = time.time() + 30
        for s in socks:
            parts, done = {}, 0
            while done < per and time.time() < deadline:
                try:
                    p = s.recv(65536)
                except socket.timeout:
                    break
                rid, seq, mlen = struct.unpack(">III", p[8:20])
                parts.setdefault(rid, {})[seq] = p
                if len(parts[rid]) == max(1, (mlen + 491) // 492):
                    done += 1
                    head = bytearray(parts[rid][0][:20])
                    head[2] &= ~0x20 & 0xFF
                    head[12:16] = b"\0\0\0\0"
                    whole = bytes(head) + b"".join(parts[rid][k][20:]
                                                  for k in range(len(parts[rid])))
                    if parse_reply(whole)["rc"] == 1:
                        ok += 1
        for s in socks:
            s.close()
        check(ok == n_socks * per, "1000 identical misses all answered (%d)" % ok)
        check(resolutions(d, "b") - b2 == 1, "B's counter: exactly one query for 1000 misses "
              "(%d)" % (resolutions(d, "b") - b2))

        # ---- a referral loop -------------------------------------------------------------------
        top0, a0 = resolutions(d, "top"), resolutions(d, "a")
        lp = udp_ask(udp, "88.100.9/LOOP", rid=41, timeout=10)
        check(lp["rc"] == 6, "referral loop: RC 6 (rc %r %s)" % (lp["rc"], lp.get("message")))
        top1, a1 = resolutions(d, "top"), resolutions(d, "a")
        check(top1 - top0 <= 1, "no storm at the top (%d queries)" % (top1 - top0))
        check(a1 - a0 <= 3, "no storm at A (%d resolutions for one request)" % (a1 - a0))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        if started:
            subprocess.run(["bash", SCRIPT, "stop", d], env=env, capture_output=True, timeout=120)
            # a node built with a sanitizer reports in its log (scripts/test.sh --tsan)
            for n in ("top", "a", "b"):
                try:
                    with open(os.path.join(d, n, "idnoded.log")) as f:
                        text = f.read()
                except OSError:
                    continue
                check("ThreadSanitizer" not in text and "AddressSanitizer" not in text and
                      "runtime error" not in text, "node %s ran clean under its sanitizer" % n)
        if FAILS:
            for n in ("top", "a", "b"):
                try:
                    with open(os.path.join(d, n, "idnoded.log")) as f:
                        print("---- %s log (tail) ----\n%s" % (n, f.read()[-3000:]))
                except OSError:
                    pass
        exc = sys.exc_info()[1]
        if exc is not None:
            check(False, "unexpected exception: %r" % exc)
        shutil.rmtree(tmp, ignore_errors=True)
    return report("test_three_nodes")


if __name__ == "__main__":
    sys.exit(main())
