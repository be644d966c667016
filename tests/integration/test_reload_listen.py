#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Listeners re-bound by a reload of a real idnoded on loopback (node/server/rebind.h), python3
stdlib only.

The node starts on UDP+TCP port P1 and HTTP port H1 with a long-lived TCP connection and a
keep-alive HTTP connection open. A reload that adds P2 and H2 and removes P1:
- P2 answers over UDP and TCP, H2 over HTTP;
- new connections to P1 are refused and a UDP query to P1 gets no answer;
- the TCP connection opened on P1 before the reload still answers its next request, and the
  keep-alive connection to H1 (and H1 itself) still serve;
- `idnode reload` lists what was bound and closed, and that HS_SITE keeps the start-up
  addresses until a restart.
A reload that adds a port another process holds is refused with a message naming the address
(and, when not root, one that adds a privileged port with the permission error); nothing
changes: what served before serves, the half-bound UDP side of the refused address is free
again. A reload goes back to P1 and H1. Then the TLS stream (tls_listen): a reload adds T1,
which resolves over TLS; one connection stays open while the next reload removes T1: new ones
are refused, the open one still answers. Every process is stopped by PID; every wait is
bounded.
"""
import http.client
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from tlstest import client_ctx, make_certs, tls_socket  # noqa: E402

HANDLE = "88.100.1/test"


def ports(n, taken=()):
    """\\p n distinct free ports, none of \\p taken."""
    out = []
    while len(out) < n:
        p = free_port()
        if p not in out and p not in taken:
            out.append(p)
    return out


def tcp_rc(port, rid):
    """RC of a resolution over a new TCP connection to \\p port, or None (refused, no answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(resolve_request(HANDLE, rid))
            f = FrameReader(s).frame(5)
            return parse_reply(f)["rc"] if f else None
    except OSError:
        return None


def udp_rc(port, rid, timeout=2.0):
    """RC of a resolution over UDP to \\p port, or None (no answer in \\p timeout)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(resolve_request(HANDLE, rid), ("127.0.0.1", port))
        return parse_reply(s.recv(65536))["rc"]
    except OSError:
        return None
    finally:
        s.close()


def refused(port):
    """True when a TCP connection to \\p port is refused."""
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_for(cond, timeout=5.0):
    """\\p cond() polled until true or \\p timeout seconds passed; its last value."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(0.05)


def http_status(conn, path="/api/handles/" + HANDLE):
    """Status of GET \\p path on the open http.client connection \\p conn, or None."""
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status
    except (OSError, http.client.HTTPException):
        return None


def http_new(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        return http_status(c)
    finally:
        c.close()


def addrs(listen, http_ports):
    return "".join("listen = 127.0.0.1:%d\n" % p for p in listen) + \
        "".join("http = 127.0.0.1:%d\n" % p for p in http_ports)


class Long:
    """A Handle TCP connection kept open across reloads."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.r = FrameReader(self.s)

    def rc(self, rid):
        try:
            self.s.sendall(resolve_request(HANDLE, rid))
            f = self.r.frame(5)
            return parse_reply(f)["rc"] if f else None
        except OSError:
            return None

    def close(self):
        self.s.close()


def test_move(node, p1, h1, p2, h2, tcp1, http1):
    rc, out, err = node.reload(addrs([p2], [h1, h2]))
    check(rc == 0, "reload adding P2, H2 and removing P1: %d %r %r" % (rc, out, err))
    check("listeners_bound listen 127.0.0.1:%d; http 127.0.0.1:%d\n" % (p2, h2) in out,
          "the output lists what was bound: %r" % out)
    check("listeners_closed listen 127.0.0.1:%d\n" % p1 in out,
          "the output lists what was closed: %r" % out)
    check("restart_needed" not in out and "listeners_not_rebound" not in out,
          "nothing about the addresses needs a restart: %r" % out)
    check("site_unchanged HS_SITE names listen 127.0.0.1:%d, http 127.0.0.1:%d" % (p1, h1)
          in out, "HS_SITE keeps the start-up addresses, and says so: %r" % out)
    log = node.logtext()
    check("reload: listeners bound: listen 127.0.0.1:%d; http 127.0.0.1:%d" % (p2, h2) in log
          and "reload: listeners closed (their open connections are served on): listen "
          "127.0.0.1:%d" % p1 in log, "the log says the same")

    check(udp_rc(p2, 10) == 1, "P2 answers over UDP")
    check(tcp_rc(p2, 11) == 1, "P2 answers over TCP")
    check(http_new(h2) == 200, "H2 answers over HTTP")
    check(wait_for(lambda: refused(p1)), "new TCP connections to P1 are refused")
    check(udp_rc(p1, 12, timeout=1.0) is None, "a UDP query to P1 gets no answer")
    check(tcp1.rc(13) == 1, "the TCP connection opened on P1 before the reload still answers")
    check(tcp1.rc(14) == 1, "and again")
    check(http_status(http1) == 200, "the keep-alive HTTP connection to H1 still serves")
    check(http_new(h1) == 200, "H1 still takes new connections")
    # every worker took its socket: SO_REUSEPORT spreads new connections over all of them, and
    # one a worker had not taken would be left unanswered
    check(all(tcp_rc(p2, 20 + i) == 1 for i in range(8)), "8 new connections to P2 served")


def privileged_refused():
    """True when this process may not bind port 1 (not root, privileged ports in force)."""
    if os.geteuid() == 0:
        return False
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip()) > 1
    except (OSError, ValueError):
        return False


def test_refused(node, p1, h1, p2, h2, tcp1, http1, p3):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", p3))
    holder.listen(4)
    try:
        rc, out, err = node.reload(addrs([p2, p3], [h1, h2]))
        check(rc == 1 and ("127.0.0.1:%d/tcp" % p3) in err and "in use" in err,
              "a reload adding a port another process holds is refused, naming it: %d %r"
              % (rc, err))
        check("python" in err and "pid %d" % os.getpid() in err,
              "and naming the holder: %r" % err)
    finally:
        holder.close()
    check("reload failed, keeping the running configuration" in node.logtext(),
          "the refusal is logged")
    # nothing changed: the UDP side the refused reload had bound is free again
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p3))
        free = True
    except OSError:
        free = False
    finally:
        u.close()
    check(free, "the refused reload left nothing bound on P3/udp")
    check(udp_rc(p2, 30) == 1 and tcp_rc(p2, 31) == 1, "P2 still answers")
    check(refused(p1), "P1 is still closed")
    check(http_new(h2) == 200 and http_new(h1) == 200, "H1 and H2 still serve")
    check(tcp1.rc(32) == 1, "the long-lived TCP connection still answers")
    check(http_status(http1) == 200, "the keep-alive HTTP connection still serves")
    if privileged_refused():
        rc, out, err = node.reload(addrs([p2, 1], [h1, h2]))
        check(rc == 1 and "127.0.0.1:1/" in err and "Permission denied" in err,
              "a privileged port is refused with the reason: %d %r" % (rc, err))
        check(udp_rc(p2, 33) == 1, "and P2 still answers")


def test_back(node, p1, h1, p2, h2):
    rc, out, err = node.reload(addrs([p1], [h1]))
    check(rc == 0 and "listeners_bound listen 127.0.0.1:%d\n" % p1 in out
          and "listeners_closed listen 127.0.0.1:%d; http 127.0.0.1:%d\n" % (p2, h2) in out,
          "back to P1 and H1: %d %r %r" % (rc, out, err))
    check("site_unchanged" not in out, "HS_SITE names the served addresses again: %r" % out)
    check(udp_rc(p1, 40) == 1 and tcp_rc(p1, 41) == 1, "P1 answers again")
    check(wait_for(lambda: refused(p2)) and udp_rc(p2, 42, timeout=1.0) is None, "P2 closed")
    check(wait_for(lambda: http_new(h2) is None), "H2 closed")
    check(http_new(h1) == 200, "H1 serves")


def stream_rc(s, fr, rid):
    """RC of a resolution on the open TLS stream socket \\p s (frames read by \\p fr), or None."""
    try:
        s.sendall(resolve_request(HANDLE, rid))
        f = fr.frame(10)
        return parse_reply(f)["rc"] if f else None
    except OSError:
        return None


def test_tls_stream(node, p1, h1, t1, ctx):
    rc, out, err = node.reload(addrs([p1], [h1]) + "tls_listen = 127.0.0.1:%d\n" % t1)
    check(rc == 0 and "listeners_bound tls_listen 127.0.0.1:%d\n" % t1 in out
          and "listeners_closed" not in out, "reload adding the TLS stream T1: %r %r" % (out, err))
    check("site_unchanged HS_SITE names listen 127.0.0.1:%d, http 127.0.0.1:%d, tls_listen off"
          % (p1, h1) in out, "HS_SITE keeps the start-up TLS stream (none): %r" % out)
    held = tls_socket(ctx, t1, timeout=10)
    try:
        fr = FrameReader(held)
        check(stream_rc(held, fr, 50) == 1, "T1 resolves over TLS")
        rc, out, err = node.reload(addrs([p1], [h1]))
        check(rc == 0 and "listeners_closed tls_listen 127.0.0.1:%d\n" % t1 in out,
              "reload removing T1: %r %r" % (out, err))
        check(wait_for(lambda: refused(t1)), "new connections to T1 are refused")
        check(stream_rc(held, fr, 51) == 1, "the TLS connection opened before still answers")
    finally:
        held.close()
    check(udp_rc(p1, 52) == 1 and http_new(h1) == 200, "P1 and H1 serve throughout")


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-reload-listen-")
    node = tcp1 = http1 = None
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [TEST_URL_RECORD])
        p1, h1, p2, h2, p3, t1 = ports(6)
        certs = make_certs(os.path.join(tmp, "certs"))
        # connections stay open between requests (no close after an answer, a long idle
        # timeout); a certificate, so that the TLS stream can be added later
        base = ("db = %s\nworkers = 2\nhome = 88.100.1\ntcp_close_after_answer = no\n"
                "tcp_idle_timeout_ms = 120000\ntls_cert = %s/server.pem\n"
                "tls_key = %s/server.key\n" % (db, certs, certs))
        node = ConfNode(tmp, base, addrs([p1], [h1]))
        tcp1 = Long(p1)
        check(tcp1.rc(1) == 1, "a long-lived TCP connection to P1 answers")
        http1 = http.client.HTTPConnection("127.0.0.1", h1, timeout=5)
        check(http_status(http1) == 200, "a keep-alive HTTP connection to H1 serves")
        check(udp_rc(p1, 2) == 1, "P1 answers over UDP")
        check(refused(p2) and http_new(h2) is None, "P2 and H2 are not bound yet")
        test_move(node, p1, h1, p2, h2, tcp1, http1)
        test_refused(node, p1, h1, p2, h2, tcp1, http1, p3)
        test_back(node, p1, h1, p2, h2)
        test_tls_stream(node, p1, h1, t1, client_ctx(os.path.join(certs, "ca.pem")))
        check(node.proc.poll() is None, "node alive")
        tcp1.close()
        http1.close()
        check(node.stop() == 0, "clean exit")
    finally:
        for c in (tcp1, http1):
            if c:
                c.close()
        rc = finish([node] if node else [], tmp, "test_reload_listen")
    return rc

if __name__ == "__main__":
    sys.exit(main())
