#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Prometheus listener and /status.json of a real idnoded on loopback (python3 stdlib, and
promtool when installed): a scripted mix of requests over UDP, TCP, the HTTP native tunnel and the
REST API shows up exactly in idnode_requests_total by transport, opcode and response code, and in
the latency histograms; `promtool check metrics` finds nothing to lint; the listener's limits hold
(metrics_max_connections, the 8 KiB request head, metrics_timeout_ms, GET /metrics only) and a scrape
still works afterwards; metrics_listen must be loopback unless metrics_allow_remote; /status.json
adds up. Every wait is bounded; every process is stopped by PID in a finally block.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

PUMP = "88.100.1/PUMP-2024-000123"
PROMTOOL = shutil.which("promtool")


def scrape(port, path="/metrics", timeout=10):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def parse(text):
    """{(name, ((label, value), ...)): float} of the samples of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        labels = ()
        if "{" in head:
            name, rest = head.split("{", 1)
            pairs = []
            for part in rest.rstrip("}").split('",'):
                k, v = part.split('="', 1)
                pairs.append((k, v.rstrip('"')))
            labels = tuple(sorted(pairs))
        else:
            name = head
        out[(name, labels)] = float(value)
    return out


def req(m, transport, opcode, rcode):
    return m.get(("idnode_requests_total", tuple(sorted(
        [("transport", transport), ("opcode", opcode), ("rcode", rcode)]))), 0)


def raw_exchange(port, data, timeout=10):
    """Send data on a new connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            if data:
                s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
        return out


def traffic(node):
    """A known mix; returns what idnode_requests_total must say about it."""
    for i in range(7):
        check(parse_reply(node.udp(resolve_request(PUMP, 100 + i, types=["URL"]))[0])["rc"] == 1,
              "udp answer")
    for i in range(3):
        check(parse_reply(node.udp(resolve_request("88.100.1/NO-SUCH-%d" % i, 200 + i))[0])["rc"]
              == 100, "udp not found")
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as s:
        fr = FrameReader(s)
        for i in range(4):
            s.sendall(resolve_request(PUMP, 300 + i, flags=0x1B000000))  # KC: keep it open
            check(parse_reply(fr.frame(10))["rc"] == 1, "tcp answer")
    for i in range(2):
        c = node.http_conn()
        c.request("POST", "/", body=resolve_request(PUMP, 400 + i),
                  headers={"Content-Type": "application/x-hdl-message"})
        r = c.getresponse()
        check(r.status == 200 and parse_reply(r.read())["rc"] == 1, "native tunnel answer")
        c.close()
    st, _, _ = node.get("/api/handles/" + PUMP)
    check(st == 200, "rest answer")
    st, _, _ = node.get("/api/handles/88.100.1/NOPE")
    check(st == 404, "rest not found")
    st, _, _ = node.get("/api/handles/77.1/elsewhere")
    return {("udp", "resolution", "success"): 7, ("udp", "resolution", "handle_not_found"): 3,
            ("tcp", "resolution", "success"): 4, ("http", "resolution", "success"): 2,
            ("rest", "resolution", "success"): 1, ("rest", "resolution", "handle_not_found"): 1,
            ("rest", "resolution", "server_not_resp"): 1}


def test_counts(node, mport):
    want = traffic(node)
    st, ctype, text = scrape(mport)
    check(st == 200 and ctype.startswith("text/plain; version=0.0.4"), "content type %r" % ctype)
    m = parse(text)
    for (t, op, rc), n in want.items():
        check(req(m, t, op, rc) == n, "requests %s/%s/%s = %s, want %d" % (t, op, rc,
                                                                            req(m, t, op, rc), n))
    total = sum(v for (name, _), v in m.items() if name == "idnode_requests_total")
    check(total == sum(want.values()), "no other requests counted: %s" % total)
    for t in ("udp", "tcp", "http", "rest"):
        n = sum(v for (t2, _, _), v in want.items() if t2 == t)
        cnt = m.get(("idnode_request_duration_seconds_count", (("transport", t),)))
        inf = m.get(("idnode_request_duration_seconds_bucket", (("le", "+Inf"), ("transport", t))))
        check(cnt == n and inf == n, "histogram count of %s: %s / %s, want %d" % (t, cnt, inf, n))
        buckets = sorted((float(dict(lb)["le"]), v) for (name, lb), v in m.items()
                         if name == "idnode_request_duration_seconds_bucket"
                         and dict(lb)["transport"] == t)
        check(all(buckets[i][1] <= buckets[i + 1][1] for i in range(len(buckets) - 1)),
              "cumulative buckets of %s" % t)
        s = m.get(("idnode_request_duration_seconds_sum", (("transport", t),)), -1)
        check(0 < s < 10 * n, "latency sum of %s: %s" % (t, s))
    check(m.get(("idnode_store_handles", ())) == 232, "store handles gauge")
    check(m.get(("idnode_store_homed_prefixes", ())) == 1, "homed prefixes gauge")
    check(m.get(("idnode_build_info", (("version", "0.1.0"),))) == 1, "build info")
    check(m.get(("idnode_workers", ())) == 2, "workers gauge")
    # the resolver's shared cache and flight table exist in every node (nothing upstream here)
    check(m.get(("idnode_resolver_cache_limit_bytes", ()), 0) > 0, "resolver cache limit")
    check(("idnode_resolver_cache_stale_total", ()) in m, "resolver cache stale counter")
    check(("idnode_resolver_flight_events_total", (("event", "leader"),)) in m, "flight events")
    # connection and cache figures are published by each worker once a second
    deadline = time.time() + 10
    while m.get(("idnode_connections_accepted_total", ()), 0) < 5 and time.time() < deadline:
        time.sleep(0.2)
        m = parse(scrape(mport)[2])
    check(m.get(("idnode_connections_accepted_total", ()), 0) >= 5, "connections accepted")
    check(m.get(("idnode_response_cache_hits_total", ()), 0) >= 1, "response cache hits")
    check(m.get(("process_resident_memory_bytes", ()), 0) > 0, "process metrics")
    if PROMTOOL:
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode()
        check(p.returncode == 0 and not out.strip(), "promtool check metrics: rc %d %s" % (
            p.returncode, out[:2000]))
        print("promtool check metrics: clean (%d lines)" % len(text.splitlines()))
    else:
        print("note: promtool not installed (Debian package prometheus): format checked here only")
    # /status.json says the same
    st, _, body = node.get("/status.json")
    j = json.loads(body)
    check(st == 200 and j["requests"]["by_transport"]["udp"] == 10, "status.json udp count")
    check(j["requests"]["by_rcode"]["handle_not_found"] == 4, "status.json not-found count")
    check(j["prefixes"] == ["88.100.1"] and j["store"]["handles"] == 232, "status.json store")
    check(j["node"]["workers"] == 2 and j["node"]["uptime_seconds"] > 0, "status.json node")
    check(j["resolver_cache"]["limit_bytes"] > 0, "status.json resolver cache")


def test_listener_limits(node, mport):
    # the 9th byte of a request head past 8 KiB: 431, closed
    out = raw_exchange(mport, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
    check(out.startswith(b"HTTP/1.1 431 "), "long head: %r" % out[:60])
    check(raw_exchange(mport, b"GET /other HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 "), "404")
    check(raw_exchange(mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
          .startswith(b"HTTP/1.1 405 "), "405")
    check(raw_exchange(mport, b"hello\r\n\r\n").startswith(b"HTTP/1.1 400 "), "400")
    head = raw_exchange(mport, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n"), "HEAD: no body")
    # metrics_max_connections = 2: two silent connections hold the slots, a third is closed
    a = socket.create_connection(("127.0.0.1", mport), timeout=10)
    b = socket.create_connection(("127.0.0.1", mport), timeout=10)
    try:
        time.sleep(0.3)
        t0 = time.time()
        out = raw_exchange(mport, b"GET /metrics HTTP/1.1\r\n\r\n", timeout=10)
        check(out == b"" and time.time() - t0 < 5, "third connection closed at once: %r"
              % out[:40])
        # a silent connection is closed after metrics_timeout_ms (1 s here)
        a.settimeout(15)
        t0 = time.time()
        try:
            gone = a.recv(10) == b""
        except (ConnectionResetError, socket.timeout):
            gone = False
        check(gone and time.time() - t0 < 14, "silent connection closed on time")
    finally:
        a.close()
        b.close()
    # a peer trickling its request a byte at a time is closed on time all the same
    with socket.create_connection(("127.0.0.1", mport), timeout=10) as t:
        t0 = time.time()
        closed = False
        for ch in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 100:
            try:
                t.sendall(bytes([ch]))
                t.settimeout(0.3)
                if t.recv(100) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if time.time() - t0 > 20:
                break
        check(closed and time.time() - t0 < 15, "trickling peer closed after %.1f s"
              % (time.time() - t0))
    # the slots come back: a scrape works again and counts what was refused
    deadline = time.time() + 15
    m = {}
    while time.time() < deadline:
        try:
            m = parse(scrape(mport)[2])
            break
        except OSError:
            time.sleep(0.2)
    check(m.get(("idnode_metrics_refused_total", ()), 0) >= 1, "refusals counted")
    check(m.get(("idnode_metrics_errors_total", ()), 0) >= 6, "errors counted")
    check(m.get(("idnode_metrics_scrapes_total", ()), 0) >= 1, "scrapes counted")
    check(node.alive(), "node alive after the listener was attacked")


def test_conf_checks(tmp):
    def check_conf(text):
        path = os.path.join(tmp, "chk.conf")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([IDNODED, "-t", "-c", path], capture_output=True, timeout=30)
        return p.returncode, (p.stdout + p.stderr).decode()
    rc, out = check_conf("metrics_listen = 192.0.2.1:9100\n")
    check(rc == 1 and "not a loopback address" in out, "non-loopback refused: %s" % out)
    rc, out = check_conf("metrics_listen = 192.0.2.1:9100\nmetrics_allow_remote = yes\n")
    check(rc == 0, "metrics_allow_remote: %s" % out)
    rc, out = check_conf("metrics_listen = [::1]:9100\n")
    check(rc == 0, "IPv6 loopback: %s" % out)
    rc, out = check_conf("metrics_listen = localhost\n")
    check(rc == 1 and "ADDR:PORT" in out, "not an address: %s" % out)
    rc, out = check_conf("metrics_max_connections = 0\n")
    check(rc == 1, "metrics_max_connections 0 refused")


def main():
    if binaries_missing():
        return 0
    tmp = tempfile.mkdtemp(prefix="idnode-metrics-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        os.mkdir(db)
        imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1",
                              os.path.join(SRC, "seeds", "demo.jsonl")], capture_output=True,
                             timeout=120)
        check(imp.returncode == 0, "import: %s" % imp.stderr.decode(errors="replace"))
        test_conf_checks(tmp)
        mport = free_port()
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("metrics_listen = 127.0.0.1:%d\nmetrics_max_connections = 2\n"
                    "metrics_timeout_ms = 1000\n" % mport)
        node = Node(tmp, db, conf=conf)
        nodes.append(node)
        test_counts(node, mport)
        test_listener_limits(node, mport)
        rc = node.stop()
        check(rc == 0, "clean stop: %s" % rc)
        # off by default: no listener; web_status = no: no status page either
        conf2 = os.path.join(tmp, "node2.conf")
        with open(conf2, "w") as f:
            f.write("web_status = no\n")
        node2 = Node(tmp, db, conf=conf2)
        nodes.append(node2)
        try:
            socket.create_connection(("127.0.0.1", mport), timeout=2).close()
            check(False, "no metrics listener without metrics_listen")
        except OSError:
            pass
        st, _, body = node2.get("/")
        check(st == 200 and b"app.js" not in body and b"Resolve a handle" in body,
              "web_status = no: the proxy's help page at /")
        st, _, _ = node2.get("/status.json")
        check(st != 200, "web_status = no: no /status.json (%d)" % st)
        node2.stop()
    finally:
        return finish(nodes, tmp, "test_metrics")


if __name__ == "__main__":
    sys.exit(main())
