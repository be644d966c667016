#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Attack: stalled and slow TLS handshakes. One source (127.0.0.2) opens many connections to the
HTTPS (unified http) port and to the TLS stream port (short: 240; --long: 4,000) and never
finishes a handshake: a third send nothing, a third send the first half of a ClientHello and
stop, a third drip a ClientHello one byte every 300 ms. Meanwhile a second source (127.0.0.1)
makes full HTTPS requests, each on a new connection with a new handshake, and plain TCP
resolutions. Figures: the second source's share answered (>= 99 %), and how long the node let an
attacker's connection live: every one must be closed within tls_handshake_timeout_ms (2 s here;
a connection silent on the http port has not begun a handshake and is closed as idle,
tcp_idle_timeout_ms, also 2 s) plus 2.5 s of scheduling slack, although the drippers keep
sending and the frame timeout (20 s) never fires.
"""
import os
import select
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from tlstest import client_ctx, make_certs, request, tls_socket  # noqa: E402

LONG = "--long" in sys.argv
STALLERS = 4000 if LONG else 240
LEGIT = 600 if LONG else 100
HS_MS = 2000
SLACK_MS = 2500
# the start of a ClientHello record: type 22, TLS 1.0 record version, 512 bytes announced
HELLO_HEAD = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))


class Stallers:
    def __init__(self):
        self.open = {}     # fd -> [socket, time of connect, drip]
        self.lived = []    # seconds each closed connection lived
        self.failed = 0    # connects that did not complete (refused at the limits)
        self.stop = threading.Event()

    def start(self, ports, n):
        for i in range(n):
            port = ports[i % len(ports)]
            kind = i % 3
            s = attacker_socket(port, HELLO_HEAD[:len(HELLO_HEAD) // 2] if kind == 1 else b"")
            if s is None:
                self.failed += 1
                continue
            self.open[s.fileno()] = [s, time.time(), 0 if kind == 2 else None]

    def closed(self, fd):
        s, t0, _ = self.open.pop(fd)
        self.lived.append(time.time() - t0)
        s.close()

    def run(self, until):
        p = select.poll()
        for fd in self.open:
            p.register(fd, select.POLLIN | select.POLLRDHUP)
        next_drip = time.time()
        while self.open and not self.stop.is_set() and time.time() < until:
            for fd, _ in p.poll(50):
                if fd in self.open:
                    p.unregister(fd)
                    self.closed(fd)
            if time.time() >= next_drip:
                next_drip += 0.3
                for fd, ent in list(self.open.items()):
                    if ent[2] is None or ent[2] >= len(HELLO_HEAD):
                        continue
                    try:
                        ent[0].send(HELLO_HEAD[ent[2]:ent[2] + 1])
                        ent[2] += 1
                    except OSError:
                        p.unregister(fd)
                        self.closed(fd)


def legit_https(port, ctx):
    try:
        with tls_socket(ctx, port, timeout=3) as s:
            s.sendall(request("GET", "/api/handles/88.100.1/test", {"Connection": "close"}))
            r = HttpReader(s).response(3)
            return r is not None and r[0] == 200
    except (OSError, ssl.SSLError):
        return False


def main():
    tmp = attack_begin(STALLERS + 4096, "atk-tls-hs")
    if tmp is None:
        return 77
    node = st = t = None
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        ctx = client_ctx(os.path.join(certs, "ca.pem"))
        tls_port = free_port()
        node = attack_node(tmp, "tls_cert = %s/server.pem\ntls_key = %s/server.key\n"
                           "tls_listen = 127.0.0.1:%d\ntls_handshake_timeout_ms = %d\n"
                           "tcp_frame_timeout_ms = 20000\ntcp_idle_timeout_ms = %d\n"
                           "max_connections_per_source = 100000\n"
                           % (certs, certs, tls_port, HS_MS, HS_MS))
        st = Stallers()
        st.start([node.http, tls_port], STALLERS)
        started = len(st.open)
        t = threading.Thread(target=st.run, args=(time.time() + (HS_MS + SLACK_MS) / 1000.0 + 30,))
        t.start()
        t0 = time.time()
        https_ok = https_n = 0
        tcp_ok = tcp_n = 0
        lat = []
        for i in range(LEGIT):
            a = time.time()
            ok = legit_https(node.http, ctx)
            https_n += 1
            https_ok += ok
            if ok:
                lat.append(time.time() - a)
            tcp_n += 1
            tcp_ok += legit_tcp(node.port, 200000 + i)
            time.sleep(0.005)
        t.join((HS_MS + SLACK_MS) / 1000.0 + 30)
        st.stop.set()
        t.join(10)
        worst = max(st.lived) if st.lived else 0.0
        lat.sort()
        check(not st.open, "every stalled handshake was closed (%d still open)" % len(st.open))
        check(started > STALLERS * 0.9, "the stallers connected (%d of %d)" % (started, STALLERS))
        check(worst * 1000 <= HS_MS + SLACK_MS,
              "stalled handshakes closed within the handshake timeout (worst %.2f s)" % worst)
        check(100.0 * https_ok / https_n >= 99.0 and 100.0 * tcp_ok / tcp_n >= 99.0,
              "second source >= 99 %% (HTTPS %d/%d, TCP %d/%d)" % (https_ok, https_n, tcp_ok,
                                                                 tcp_n))
        check(node.alive(), "node alive")
        timeouts = node.logtext().count("not done after %d ms" % HS_MS)
        print("FIGURE tls_handshake: %d stalled handshakes from 127.0.0.2 on the HTTPS and TLS "
              "stream ports (%d connected, %d refused), all closed, longest lived %.2f s "
              "(tls_handshake_timeout_ms %d; %d timeout log lines, rate-limited); during %.1f s: "
              "legit HTTPS (new handshake each) %d/%d (%.2f %%), p50 %.1f ms max %.1f ms, TCP "
              "%d/%d" % (STALLERS, started, st.failed, worst, HS_MS, timeouts, time.time() - t0,
                         https_ok, https_n, 100.0 * https_ok / https_n,
                         1000 * lat[len(lat) // 2] if lat else 0, 1000 * lat[-1] if lat else 0,
                         tcp_ok, tcp_n))
    finally:
        if st:
            st.stop.set()
            if t:
                t.join(10)
            for s, _, _ in st.open.values():
                s.close()
    return attack_done(node, tmp, "atk_tls_handshake")


if __name__ == "__main__":
    sys.exit(main())
