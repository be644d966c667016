#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""HTTPS and the TLS stream against the real idnoded (python3 stdlib ssl, certificates from
certs/make-dev-certs.sh).

Checks: port unification on the http port (HTTPS and plain HTTP on one port, keep-alive,
pipelining over TLS, ALPN http/1.1); TLS 1.2 and 1.3 session resumption; request smuggling
shapes (CL+TE, two Content-Lengths, obs-fold) and an oversized body refused over HTTPS and the
connection closed; a TLS ClientHello on a plain-HTTP-only node and plain HTTP (and a plain
Handle frame) on the TLS stream port closed cleanly, the node serving on; a client that opens a
connection to the TLS port and sends nothing, or half a ClientHello, closed after
tls_handshake_timeout_ms (one silent on the http port after the idle timeout); the
TLS stream answering pipelined Handle frames on one persistent connection; HS_SITE advertising
idnode.tls_port; SIGHUP loading a new certificate, then keeping it when the next one is broken;
a stop that drains with a handshake in progress. Every wait is bounded; every node started here
is stopped by PID in the finally block.
"""
import json
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from tlstest import *  # noqa: E402,F401,F403

HS_TIMEOUT_MS = 1000
IDLE_MS = 1500


def wait_log(node, text, timeout=10.0, start=0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in node.logtext()[start:]:
            return True
        time.sleep(0.05)
    return False


def test_unified(node, ctx, first):
    st, _, body = https(ctx, node.http, request("GET", "/api/handles/" + first))
    check(st == 200 and json.loads(body)["responseCode"] == 1, "HTTPS GET on the http port: %s" % st)
    st, _, body = node.get("/api/handles/" + first)
    check(st == 200, "plain HTTP GET on the same port: %s" % st)
    # keep-alive and pipelining inside TLS: three requests in one write, answers in order
    with tls_socket(ctx, node.http) as s:
        check(s.selected_alpn_protocol() in (None, "http/1.1"), "ALPN none or http/1.1")
        s.sendall(request("GET", "/api/handles/" + first) + request("GET", "/api/site") +
                  request("GET", "/api/handles/88.100.1/none"))
        rd = HttpReader(s)
        got = [rd.response(10) for _ in range(3)]
        check([g and g[0] for g in got] == [200, 200, 404], "pipelined over TLS: %s" %
              [g and g[0] for g in got])
        site = json.loads(got[1][2])["site"]
        attrs = dict((a["name"], a["value"]) for a in site.get("attributes", []))
        check(attrs.get("idnode.tls_port") == str(node.tls_port),
              "HS_SITE names the TLS stream port: %s" % attrs)
    # ALPN offered: http/1.1 chosen
    actx = client_ctx(ctx.ca)
    actx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_socket(actx, node.http) as s:
        check(s.selected_alpn_protocol() == "http/1.1", "ALPN picks http/1.1 (%s)" %
              s.selected_alpn_protocol())


def test_resumption(node, ca, first):
    for ver, name in ((ssl.TLSVersion.TLSv1_2, "1.2"), (ssl.TLSVersion.TLSv1_3, "1.3")):
        ctx = client_ctx(ca, max_version=ver)
        with tls_socket(ctx, node.http) as s:
            check(s.version() == "TLSv" + name, "TLS %s negotiated (%s)" % (name, s.version()))
            exchange(s, request("GET", "/api/handles/" + first))  # 1.3: the ticket comes here
            sess = s.session
        with tls_socket(ctx, node.http, session=sess) as s:
            check(s.session_reused, "TLS %s session resumed" % name)
            st = exchange(s, request("GET", "/api/handles/" + first))
            check(st and st[0] == 200, "resumed connection answers")


def test_smuggling(node, ctx):
    shapes = {
        "CL+TE": request("POST", "/api/handles/x", {"Transfer-Encoding": "chunked"}, b"abc"),
        "two CLs": b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3"
                   b"\r\n\r\nabc",
        "obs-fold": b"GET /api/site HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Content-Length: 5\r\n\r\n",
        "space before colon": b"GET /api/site HTTP/1.1\r\nHost : a\r\n\r\n",
    }
    for name, raw in shapes.items():
        with tls_socket(ctx, node.http) as s:
            # a smuggled second request must never be answered
            r = exchange(s, raw + request("GET", "/api/site"))
            check(r is not None and r[0] == 400, "%s refused with 400 (%s)" % (name, r and r[0]))
            check(closed_soon(s, 5), "%s: connection closed after the refusal" % name)
    with tls_socket(ctx, node.http) as s:
        s.sendall(b"PUT /api/handles/88.100.1/big HTTP/1.1\r\nHost: a\r\nContent-Length: 100000"
                  b"\r\n\r\n" + b"x" * 1000)
        r = HttpReader(s).response(10)
        check(r is not None and r[0] == 413, "oversized body refused with 413 (%s)" % (r and r[0]))
        check(closed_soon(s, 5), "oversized body: connection closed")


def test_misdirected(node, plain_node, ctx):
    # TLS on a plain-HTTP-only node: the handshake fails at once, the node serves on
    t0 = time.time()
    try:
        with tls_socket(ctx, plain_node.http, timeout=5) as s:
            s.sendall(request("GET", "/api/site"))
            ok = s.recv(100)
            check(not ok, "no answer over TLS from a plain-only port")
    except (ssl.SSLError, OSError):
        pass
    check(time.time() - t0 < 4, "TLS on the plain port refused promptly (%.1f s)" % (time.time() - t0))
    check(wait_log(plain_node, "TLS handshake from 127.0.0.1 on a plain"),
          "plain node logs the ClientHello")
    st, _, _ = plain_node.get("/api/site")
    check(st == 200, "plain node still answers HTTP")

    # plain HTTP and a plain Handle frame on the TLS stream port: closed, node serves on
    for name, raw in (("HTTP", request("GET", "/api/site")),
                      ("Handle TCP", resolve_request("88.100.1/test", 9))):
        with socket.create_connection(("127.0.0.1", node.tls_port), timeout=5) as s:
            s.sendall(raw)
            t0 = time.time()
            check(closed_soon(s, 5), "plain %s on the TLS port closed" % name)
            check(time.time() - t0 < 4, "plain %s closed promptly" % name)
    check(wait_log(node, "TLS handshake from 127.0.0.1 failed"), "TLS port logs the failure")


def test_handshake_timeout(node, ctx):
    # half a ClientHello, or nothing on the TLS stream port: closed after the handshake timeout,
    # not before (nothing at all on the http port is an idle connection: IDLE_MS)
    half = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20
    for name, port, first in (("silent on the TLS port", node.tls_port, b""),
                              ("half a ClientHello on the http port", node.http, half),
                              ("half a ClientHello on the TLS port", node.tls_port, half)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            t0 = time.time()
            if first:
                s.sendall(first)
            closed = closed_soon(s, HS_TIMEOUT_MS / 1000.0 + 4)
            took = time.time() - t0
            check(closed, "%s: closed by the handshake timeout" % name)
            check(took >= HS_TIMEOUT_MS / 1000.0 * 0.8,
                  "%s: not closed before the timeout (%.2f s)" % (name, took))
    check(wait_log(node, "not done after %d ms" % HS_TIMEOUT_MS), "handshake timeout logged")
    with socket.create_connection(("127.0.0.1", node.http), timeout=5) as s:
        t0 = time.time()
        check(closed_soon(s, IDLE_MS / 1000.0 + 4), "silent on the http port: closed as idle")
        check(time.time() - t0 >= IDLE_MS / 1000.0 * 0.8, "silent: not before the idle timeout")
    st = https(ctx, node.http, request("GET", "/api/site"))
    check(st and st[0] == 200, "served after the handshake timeouts")


def test_stream(node, ctx):
    with tls_socket(ctx, node.tls_port) as s:
        for rid in (11, 12, 13):
            s.sendall(resolve_request("88.100.1/test", rid))
        fr = FrameReader(s)
        got = [parse_reply(fr.frame(10)) for _ in range(3)]
        check([(g["rid"], g["rc"]) for g in got] == [(11, 1), (12, 1), (13, 1)],
              "TLS stream: three pipelined resolutions answered")
        # 2.11 without KC closes after the answer on 2641; the stream stays open
        s.sendall(resolve_request("88.100.1/test", 14))
        g = parse_reply(fr.frame(10))
        check(g["rid"] == 14 and g["rc"] == 1, "TLS stream: still open for a fourth")


def test_reload(node, tmp, conf, certs_a, ca_a):
    certs_b = make_certs(os.path.join(tmp, "certs-b"))
    ctx_a = client_ctx(ca_a)
    ctx_b = client_ctx(os.path.join(certs_b, "ca.pem"))
    held = tls_socket(ctx_a, node.http)  # opened before the reload: keeps working after it
    # the live files get certificate B
    for f in ("server.pem", "server.key"):
        shutil.copy(os.path.join(certs_b, f), os.path.join(certs_a, "live-" + f))
    mark = len(node.logtext())
    node.proc.send_signal(signal.SIGHUP)
    check(wait_log(node, "TLS certificate", start=mark), "reload logs the new certificate")
    st = https(ctx_b, node.http, request("GET", "/api/site"))
    check(st and st[0] == 200, "after the reload: the new certificate (CA B) is presented")
    try:
        https(ctx_a, node.http, request("GET", "/api/site"))
        check(False, "after the reload the old CA must not verify")
    except ssl.SSLError:
        pass
    r = exchange(held, request("GET", "/api/site"))
    check(r and r[0] == 200, "a connection from before the reload still answers")
    held.close()
    # a broken certificate: the reload fails, B stays
    with open(os.path.join(certs_a, "live-server.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    mark = len(node.logtext())
    node.proc.send_signal(signal.SIGHUP)
    check(wait_log(node, "reload failed, keeping the running configuration: tls:", start=mark),
          "failed reload logged, old certificate kept")
    st = https(ctx_b, node.http, request("GET", "/api/site"))
    check(st and st[0] == 200, "after the failed reload: certificate B still served")
    check(node.alive(), "node alive after the reloads")


def test_drain(node, ctx):
    # a handshake in progress does not hold the stop
    s = socket.create_connection(("127.0.0.1", node.http), timeout=5)
    s.sendall(b"\x16\x03\x01")
    t0 = time.time()
    rc = node.stop()
    check(rc == 0, "clean exit with a handshake in progress (rc %s)" % rc)
    check(time.time() - t0 < 4, "stop not held by the handshake (%.1f s)" % (time.time() - t0))
    s.close()


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-https-")
    nodes = []
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        ca = os.path.join(certs, "ca.pem")
        for f in ("server.pem", "server.key"):
            shutil.copy(os.path.join(certs, f), os.path.join(certs, "live-" + f))
        db = os.path.join(tmp, "db")
        first = import_gen(tmp, db, 50, [TEST_URL_RECORD])
        tls_port = free_port()
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("tls_cert = %s/live-server.pem\ntls_key = %s/live-server.key\n"
                    "tls_listen = 127.0.0.1:%d\ntls_handshake_timeout_ms = %d\n"
                    "tcp_idle_timeout_ms = %d\nhttp_max_body = 4k\n"
                    % (certs, certs, tls_port, HS_TIMEOUT_MS, IDLE_MS))
        node = Node(tmp, db, conf=conf)
        node.tls_port = tls_port
        nodes.append(node)
        plain_db = os.path.join(tmp, "db-plain")
        import_gen(tmp, plain_db, 5, [TEST_URL_RECORD])
        plain = Node(tmp, plain_db)
        nodes.append(plain)

        ctx = client_ctx(ca)
        ctx.ca = ca
        test_unified(node, ctx, first)
        test_resumption(node, ca, first)
        test_smuggling(node, ctx)
        test_misdirected(node, plain, ctx)
        test_handshake_timeout(node, ctx)
        test_stream(node, ctx)
        test_reload(node, tmp, conf, certs, ca)
        check(node.alive() and plain.alive(), "nodes alive")
        test_drain(node, ctx)
        check(plain.stop() == 0, "plain node clean exit")
    finally:
        ret = finish(nodes, tmp, "test_https")
    return ret


if __name__ == "__main__":
    sys.exit(main())
