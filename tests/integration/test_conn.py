#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The stream connection layer of build/idnoded (node/server/conn.c) on loopback:

- max_connections counted node-wide over TCP and HTTP and over the workers; the longest idle
  connection is closed to make room (LRU order), a new one is refused only when none is idle;
- max_connections_per_source (127.0.0.1 / .2 / .3 as sources), across TCP and HTTP;
- out of descriptors: idle connections make room; a low descriptor limit is logged at start;
- tcp_frame_timeout_ms by a timer: half a request and then silence is closed on time;
- tcp_close_after_answer (auto / yes / no, reloaded by SIGHUP) on the captured clients' bytes,
  and HTTP "Connection: close";
- SIGTERM: every request already sent (128 pipelined over TCP, 128 over HTTP, behind
  back-pressure) is answered before the connections close.

Every wait is bounded; every node started here is stopped by PID in a finally block.
"""
import os
import resource
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403


def conf_file(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def connect(port, src="127.0.0.1", rcvbuf=0):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def tcp_idle(node, src="127.0.0.1", rid=1):
    """A TCP connection that was answered once (2.10: kept open) and is now idle."""
    s = connect(node.port, src)
    s.sendall(resolve_request("88.100.1/test", rid, version=(2, 10)))
    f = FrameReader(s).frame(5)
    check(f is not None and parse_reply(f)["rid"] == rid, "idle TCP connection from %s set up" % src)
    return s


def http_idle(node, src="127.0.0.1"):
    s = connect(node.http, src)
    s.sendall(http_get_raw("/api/site"))
    r = HttpReader(s).response(5)
    check(r is not None and r[0] == 200, "idle HTTP connection from %s set up" % src)
    return s


def tcp_busy(node, src="127.0.0.1"):
    """A TCP connection holding half a request (busy: not idle)."""
    s = connect(node.port, src)
    s.sendall(resolve_request("88.100.1/test", 7)[:30])
    return s


def answered_tcp(node, src="127.0.0.1", rid=5, version=(2, 11)):
    """True when a new TCP connection from src gets its answer."""
    try:
        s = connect(node.port, src)
    except OSError:
        return False
    try:
        s.sendall(resolve_request("88.100.1/test", rid, version=version))
        f = FrameReader(s).frame(3)
        return f is not None and parse_reply(f)["rid"] == rid
    except OSError:
        return False
    finally:
        s.close()


def answered_http(node, src="127.0.0.1"):
    try:
        s = connect(node.http, src)
    except OSError:
        return False
    try:
        s.sendall(http_get_raw("/api/site"))
        r = HttpReader(s).response(3)
        return r is not None and r[0] == 200
    except OSError:
        return False
    finally:
        s.close()


def closed(s, timeout=3.0):
    return FrameReader(s).eof(timeout)


def still_open(s, wait=0.4):
    return not FrameReader(s).eof(wait)


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    socks.clear()


def wait_log(node, text, timeout=5.0, count=1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if node.logtext().count(text) >= count:
            return True
        time.sleep(0.05)
    return False


# ---- limits --------------------------------------------------------------------------------------

def test_max_connections_nodewide(tmp, db):
    """Two workers, TCP and HTTP: max_connections is one count for all of them."""
    conf = conf_file(tmp, "nodewide.conf", "max_connections = 4\ntcp_frame_timeout_ms = 30000\n")
    node = Node(tmp, db, conf=conf, workers=2)
    socks = []
    try:
        socks += [tcp_busy(node), tcp_busy(node)]
        for _ in range(2):
            s = connect(node.http)
            s.sendall(b"GET /api/site HTTP/1.1\r\nHo")  # half a request
            socks.append(s)
        time.sleep(0.3)
        check(not answered_tcp(node), "TCP refused with 4 busy connections open (2 TCP, 2 HTTP)")
        check(not answered_http(node), "HTTP refused with 4 busy connections open")
        check("max_connections reached (4), refusing" in node.logtext(), "refusal logged")
        close_all(socks)
        ok = False
        deadline = time.time() + 5
        while not ok and time.time() < deadline:
            ok = answered_tcp(node) and answered_http(node)
            time.sleep(0.05)
        check(ok, "served again once the busy connections are gone")
    finally:
        close_all(socks)
        check(node.stop() == 0, "node-wide limit node exit 0")


def test_idle_eviction(tmp, db):
    """At max_connections the longest idle connection (TCP or HTTP) makes room, in LRU order."""
    conf = conf_file(tmp, "evict.conf", "max_connections = 3\ntcp_idle_timeout_ms = 30000\n")
    node = Node(tmp, db, conf=conf, workers=1)
    socks = []
    try:
        c1 = tcp_idle(node, rid=11)
        time.sleep(0.05)
        c2 = http_idle(node)
        time.sleep(0.05)
        c3 = tcp_idle(node, rid=13)
        socks += [c1, c2, c3]
        time.sleep(0.05)
        c4 = http_idle(node)  # a 4th connection is served at max_connections 3
        socks.append(c4)
        check(closed(c1), "the longest idle connection (c1, TCP) made room")
        check(still_open(c2) and still_open(c3), "the other idle connections stay")
        # c2 works again: c3 is now the longest idle
        c2.sendall(http_get_raw("/api/site"))
        r = HttpReader(c2).response(5)
        check(r is not None and r[0] == 200, "c2 answered on its kept connection")
        time.sleep(0.05)
        check(answered_tcp(node, rid=15), "a 5th connection is served")
        check(closed(c3), "then c3 (idle longest) made room")
        check(still_open(c2), "c2 (used since) stays")
        check("closing the longest idle connection" in node.logtext(), "eviction logged")
    finally:
        close_all(socks)
        check(node.stop() == 0, "eviction node exit 0")


def test_per_source(tmp, db):
    conf = conf_file(tmp, "persrc.conf", "max_connections_per_source = 3\n"
                     "tcp_idle_timeout_ms = 30000\ntcp_frame_timeout_ms = 30000\n")
    node = Node(tmp, db, conf=conf, workers=1)
    socks = []
    try:
        socks += [tcp_busy(node, "127.0.0.2") for _ in range(3)]
        time.sleep(0.3)
        check(not answered_tcp(node, "127.0.0.2"), "4th TCP connection of 127.0.0.2 refused")
        check(not answered_http(node, "127.0.0.2"), "HTTP of 127.0.0.2 counts against it too")
        check("max_connections_per_source reached (3), refusing a connection from 127.0.0.2"
              in node.logtext(), "per-source refusal logged with the source")
        check(answered_tcp(node, "127.0.0.1") and answered_http(node, "127.0.0.1"),
              "another source is served")
        # idle connections of the source at its limit make room for it, and only its own
        other = tcp_idle(node, "127.0.0.1", rid=21)
        socks.append(other)
        mine = []
        for i in range(3):
            mine.append(tcp_idle(node, "127.0.0.3", rid=31 + i))
            time.sleep(0.05)
        socks += mine
        check(answered_tcp(node, "127.0.0.3", rid=35), "127.0.0.3 at its limit is served")
        check(closed(mine[0]), "by closing its own longest idle connection")
        check(still_open(other), "an older idle connection of another source stays")
    finally:
        close_all(socks)
        check(node.stop() == 0, "per-source node exit 0")


def lowest_free_fd(pid):
    used = set(int(x) for x in os.listdir("/proc/%d/fd" % pid))
    n = 0
    while n in used:
        n += 1
    return n


def test_descriptors(tmp, db):
    """Out of descriptors with idle connections: they make room. A low limit at start: logged."""
    node = Node(tmp, db, conf=conf_file(tmp, "fd.conf", "tcp_idle_timeout_ms = 30000\n"),
                workers=1)
    socks = []
    try:
        socks += [tcp_idle(node, rid=40 + i) for i in range(12)]
        time.sleep(0.2)
        limit = lowest_free_fd(node.proc.pid)  # the next accept runs out
        resource.prlimit(node.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
        got = sum(answered_tcp(node, rid=60 + i) for i in range(6))
        check(got == 6, "served while out of descriptors, by closing idle connections (%d/6)" % got)
        check("closing the longest idle connection" in node.logtext(),
              "EMFILE eviction logged")
    finally:
        close_all(socks)
        check(node.stop() == 0, "descriptor node exit 0")

    def low():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    node = Node(tmp, db, workers=2, preexec=low)
    try:
        check(wait_log(node, "over what the descriptor limit (64) leaves room for"),
              "a low descriptor limit is logged at start")
        check(answered_tcp(node) and answered_http(node), "and the node serves")
    finally:
        check(node.stop() == 0, "low-limit node exit 0")


# ---- timers --------------------------------------------------------------------------------------

def closed_after(s, timeout):
    """Seconds until the server closes s (None: not within timeout)."""
    t0 = time.time()
    return time.time() - t0 if FrameReader(s).eof(timeout) else None


def test_frame_timer(tmp, db):
    """Half a request and then nothing: closed at tcp_frame_timeout_ms, not at the idle timeout
    and not on a next byte."""
    conf = conf_file(tmp, "frame.conf", "tcp_frame_timeout_ms = 1000\ntcp_idle_timeout_ms = 8000\n")
    node = Node(tmp, db, conf=conf, workers=1)
    try:
        s = connect(node.port)
        s.sendall(resolve_request("88.100.1/test", 3)[:25])
        t = closed_after(s, 6)
        check(t is not None and 0.6 < t < 4.5, "TCP half frame closed by the frame timer (%s s)" % t)
        s.close()
        s = connect(node.http)
        s.sendall(b"GET /api/site HTTP/1.1\r\nHost: x")
        t = closed_after(s, 6)
        check(t is not None and 0.6 < t < 4.5, "HTTP half request closed by the timer (%s s)" % t)
        s.close()
        # a request that arrives in pieces within the limit is answered
        s = connect(node.port)
        req = resolve_request("88.100.1/test", 4, version=(2, 10))
        for k in (0, 20, 40):
            s.sendall(req[k:k + 20] if k < 40 else req[40:])
            time.sleep(0.15)
        f = FrameReader(s).frame(3)
        check(f is not None and parse_reply(f)["rid"] == 4, "request in pieces within the limit")
        # once whole, the idle timeout applies again, not the frame deadline
        check(still_open(s, 1.5), "kept past the frame limit once the request was whole")
        s.close()
        check(wait_log(node, "request not complete after 1000 ms", count=2), "frame timeouts logged")
    finally:
        check(node.stop() == 0, "frame node exit 0")


# ---- close after answer ----------------------------------------------------------------------

def reload(node, conf, text):
    before = node.logtext().count("configuration reloaded")
    with open(conf, "a") as f:
        f.write(text)
    os.kill(node.proc.pid, signal.SIGHUP)
    check(wait_log(node, "configuration reloaded", count=before + 1), "reload: " + text.strip())


def one(node, req, keep_wait=1.0):
    """Send req on a new connection: (answer parsed, closed right after?, socket)."""
    s = connect(node.port)
    s.sendall(req)
    fr = FrameReader(s)
    f = fr.frame(5)
    r = parse_reply(f) if f else None
    return r, fr.eof(keep_wait), s


def test_close_rule(tmp, db):
    conf = conf_file(tmp, "close.conf", "tcp_idle_timeout_ms = 20000\n")
    node = Node(tmp, db, conf=conf, workers=2)
    hdllib = load_hex("java-hdllib-resolve-tcp.hex")
    idis = load_hex("idpointer-sdk-resolve-tcp.hex")
    kc = bytearray(hdllib)
    kc[28] |= 0x02  # OpFlag KC
    try:
        # auto: hdllib (2.11) is closed right after its answer (idle timeout is 20 s here)
        r, eof, s = one(node, hdllib, 3.0)
        check(r and r["rc"] == 1 and eof, "auto: hdllib request answered, then closed")
        s.close()
        # the IDIS SDK (2.10) keeps its connection and sends more on it
        r, eof, s = one(node, idis)
        check(r and r["rc"] == 1 and not eof, "auto: IDIS SDK connection kept open")
        s.sendall(resolve_request("0", 77, version=(2, 10)))
        f = FrameReader(s).frame(5)
        check(f is not None and parse_reply(f)["rid"] == 77, "IDIS heartbeat on the kept connection")
        s.close()
        r, eof, s = one(node, bytes(kc))
        check(r and r["rc"] == 1 and not eof, "auto: a 2.11 request with KC keeps the connection")
        s.close()
        # two 2.11 requests in one write: both answered, then closed
        s = connect(node.port)
        s.sendall(resolve_request("88.100.1/test", 81) + resolve_request("88.100.1/test", 82))
        fr = FrameReader(s)
        got = [parse_reply(fr.frame(5))["rid"] for _ in range(2)]
        check(got == [81, 82] and fr.eof(3), "auto: pipelined 2.11 answered in order, then closed")
        s.close()
        # HTTP: Connection: close ends it, keep-alive keeps it
        s = connect(node.http)
        s.sendall(http_get_raw("/api/site", extra="Connection: close\r\n"))
        hr = HttpReader(s)
        r = hr.response(5)
        check(r is not None and r[0] == 200 and hr.eof(3), "HTTP Connection: close: answer, close")
        s.close()
        reload(node, conf, "tcp_close_after_answer = no\n")
        r, eof, s = one(node, hdllib)
        check(r and r["rc"] == 1 and not eof, "no: hdllib connection kept")
        s.close()
        reload(node, conf, "tcp_close_after_answer = yes\n")
        r, eof, s = one(node, idis, 3.0)
        check(r and r["rc"] == 1 and eof, "yes: even the IDIS SDK connection is closed")
        s.close()
    finally:
        check(node.stop() == 0, "close-rule node exit 0")


# ---- drain -----------------------------------------------------------------------------------

def test_sigterm_drain(tmp, db):
    """SIGTERM: the requests already sent are all answered (behind back-pressure), then close."""
    conf = conf_file(tmp, "drain.conf", "tcp_buffer_max = 16k\n")
    node = Node(tmp, db, conf=conf, workers=2)
    n = 128
    try:
        idle = tcp_idle(node, rid=9)
        t = connect(node.port, rcvbuf=4096)
        t.sendall(b"".join(resolve_request("88.100.1/test", 1000 + i, version=(2, 10))
                           for i in range(n)))
        h = connect(node.http, rcvbuf=4096)
        h.sendall(b"".join(http_get_raw("/api/handles/88.100.1/test?index=1") for _ in range(n)))
        time.sleep(0.5)  # the node has read what fits and is waiting for us to read
        node.proc.send_signal(signal.SIGTERM)
        check(closed(idle, 3), "drain: an idle connection closes at once")
        fr = FrameReader(t)
        rids = []
        for _ in range(n):
            f = fr.frame(5)
            if f is None:
                break
            rids.append(parse_reply(f)["rid"])
        check(rids == [1000 + i for i in range(n)],
              "drain: all %d pipelined TCP requests answered in order (got %d)" % (n, len(rids)))
        check(fr.eof(5), "drain: the TCP connection closes after its answers")
        hr = HttpReader(h)
        got = 0
        for _ in range(n):
            r = hr.response(5)
            if r is None or r[0] != 200:
                break
            got += 1
        check(got == n, "drain: all %d pipelined HTTP requests answered (got %d)" % (n, got))
        check(hr.eof(5), "drain: the HTTP connection closes after its answers")
        for s in (idle, t, h):
            s.close()
        rc = node.stop(timeout=15)
        check(rc == 0, "drain: exit 0 (%s)" % rc)
    finally:
        if node.alive():
            node.stop()


def main():
    if binaries_missing():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-conn-")
    try:
        db = os.path.join(tmp, "db")
        import_gen(tmp, db, 50, [TEST_URL_RECORD])
        test_max_connections_nodewide(tmp, db)
        test_idle_eviction(tmp, db)
        test_per_source(tmp, db)
        test_descriptors(tmp, db)
        test_frame_timer(tmp, db)
        test_close_rule(tmp, db)
        test_sigterm_drain(tmp, db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report("test_conn")


if __name__ == "__main__":
    sys.exit(main())
