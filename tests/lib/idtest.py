#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Shared helpers of the Python integration and attack tests (stdlib only): paths of the built
binaries, the capture loader, a minimal Handle message encoder/decoder, free ports, a TCP frame
reader and Node, which starts the real idnoded on loopback and stops it by PID.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

SRC = os.environ.get("HDL_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("HDL_BUILD_DIR", os.path.join(SRC, "build"))
IDNODED = os.path.join(BUILD, "idnoded")
IDNODE = os.path.join(BUILD, "idnode")
CAPS = os.path.join(SRC, "tests", "captures")

FAILS = []


def binaries_missing():
    """True (after a "skip" line) when idnoded or idnode is not built."""
    for p in (IDNODED, IDNODE):
        if not os.access(p, os.X_OK):
            print("skip: %s not built" % p)
            return True
    return False


def report(name):
    """Exit status of a test script: 1 when a check failed, else 0 (with a closing line)."""
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("%s: all checks passed" % name)
    return 0


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what, flush=True)
    return cond


def load_hex(name):
    """Bytes of an `xxd -g1` dump."""
    out = bytearray()
    with open(os.path.join(CAPS, name)) as f:
        for line in f:
            if ": " not in line:
                continue
            hexpart = line.split(": ", 1)[1].split("  ", 1)[0]
            out += bytes(int(t, 16) for t in hexpart.split())
    return bytes(out)


def http_body(raw):
    return raw.split(b"\r\n\r\n", 1)[1]


def with_request_id(msg, rid):
    return msg[:8] + struct.pack(">I", rid) + msg[12:]


def parse_reply(b):
    """Envelope + header + (for resolution success) handle and values."""
    if len(b) < 44:
        raise ValueError("short reply (%d bytes)" % len(b))
    maj, mnr, fl, smin, sess, rid, seq, mlen = struct.unpack(">BBBBIIII", b[:20])
    op, rc, flags, serial, rec, _, exp, blen = struct.unpack(">IIIHBBII", b[20:44])
    r = dict(major=maj, minor=mnr, flags=fl, session=sess, rid=rid, seq=seq, msg_len=mlen, op=op,
             rc=rc, opflags=flags, serial=serial, exp=exp, body_len=blen)
    if mlen + 20 != len(b):
        raise ValueError("MessageLength %d vs %d bytes" % (mlen, len(b)))
    body = b[44:44 + blen]
    r["body"] = body
    pos = 0
    if flags & 0x00800000:  # RD block
        alg = body[0]
        pos = 1 + {1: 16, 2: 20, 3: 32}.get(alg, 0)
        if alg == 0:
            pos = 4 + struct.unpack(">I", body[:4])[0]
    if rc == 1 and op == 1:
        hl = struct.unpack(">I", body[pos:pos + 4])[0]
        r["handle"] = body[pos + 4:pos + 4 + hl].decode()
        pos += 4 + hl
        vals, pos = parse_values(body, pos)
        r["values"] = [v[:3] for v in vals]
    elif rc != 1:
        ml = struct.unpack(">I", body[pos:pos + 4])[0] if len(body) >= pos + 4 else 0
        r["message"] = body[pos + 4:pos + 4 + ml].decode(errors="replace")
    return r


def parse_values(body, pos):
    """U32 count + handle values at body[pos:]: ([(index, type, data, perms)...], end)."""
    n = struct.unpack(">I", body[pos:pos + 4])[0]
    pos += 4
    vals = []
    for _ in range(n):
        idx, ts, ttlt, ttl, perms = struct.unpack(">IIBIB", body[pos:pos + 14])
        pos += 14
        tl = struct.unpack(">I", body[pos:pos + 4])[0]
        typ = body[pos + 4:pos + 4 + tl].decode()
        pos += 4 + tl
        dl = struct.unpack(">I", body[pos:pos + 4])[0]
        data = body[pos + 4:pos + 4 + dl]
        pos += 4 + dl
        nr = struct.unpack(">I", body[pos:pos + 4])[0]
        pos += 4
        for _ in range(nr):
            rl = struct.unpack(">I", body[pos:pos + 4])[0]
            pos += 4 + rl + 4
        vals.append((idx, typ, data, perms))
    return vals, pos


def resolve_request(handle, rid, types=(), indexes=(), flags=0x19000000, version=(2, 11)):
    h = handle.encode()
    body = struct.pack(">I", len(h)) + h
    body += struct.pack(">I", len(indexes)) + b"".join(struct.pack(">I", i) for i in indexes)
    body += struct.pack(">I", len(types))
    for t in types:
        body += struct.pack(">I", len(t)) + t.encode()
    hdr = struct.pack(">IIIHBBII", 1, 0, flags, 0xFFFF, 0, 0, int(time.time()) + 43200, len(body))
    msg = hdr + body + struct.pack(">I", 0)
    env = struct.pack(">BBBBIIII", version[0], version[1], 2, 11, 0, rid, 0, len(msg))
    return env + msg


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            t.close()
            u.close()
            continue
        t.close()
        u.close()
        return port
    raise RuntimeError("no free port")


def recv_frame(s, timeout=5.0):
    """One TCP frame (envelope + MessageLength), or None at EOF."""
    s.settimeout(timeout)
    buf = b""
    while len(buf) < 20:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    need = 20 + struct.unpack(">I", buf[16:20])[0]
    while len(buf) < need:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    if len(buf) > need:
        s._extra = buf[need:]  # pipelined frames read together
    return buf[:need]


class FrameReader:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def frame(self, timeout=5.0):
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 20:
                need = 20 + struct.unpack(">I", self.buf[16:20])[0]
                if len(self.buf) >= need:
                    f, self.buf = self.buf[:need], self.buf[need:]
                    return f
            d = self.s.recv(65536)
            if not d:
                return None
            self.buf += d

    def eof(self, timeout=5.0):
        """True when the server closes (after any pending frames)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


class Node:
    def __init__(self, tmp, db, extra=(), conf=None, workers=2, preexec=None):
        # another test may take a port between free_port() and the bind: retry on bind errors
        for attempt in range(3):
            try:
                self._start(tmp, db, extra, conf, workers, preexec)
                return
            except RuntimeError as e:
                if "bind" not in str(e) or attempt == 2:
                    raise
                print("retrying start after a port clash:", str(e).strip()[-200:])

    def _start(self, tmp, db, extra, conf, workers, preexec):
        self.port = free_port()
        self.http = free_port()
        while self.http == self.port:  # two probes may get the same free port
            self.http = free_port()
        self.log = os.path.join(tmp, "idnoded-%d.log" % self.port)
        self.pidfile = os.path.join(tmp, "idnoded-%d.pid" % self.port)
        args = [IDNODED, "--db", db, "--listen", "127.0.0.1:%d" % self.port,
                "--http", "127.0.0.1:%d" % self.http, "--home", "88.100.1",
                "--workers", str(workers), "--pidfile", self.pidfile] + list(extra)
        if conf:
            args = [IDNODED, "-c", conf] + args[1:]
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     preexec_fn=preexec)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.logf.close()
                raise RuntimeError("idnoded exited at start:\n" + self.logtext())
            # sockets are bound before the workers run: wait for the ready line
            if "idnoded ready" in self.logtext():
                return
            time.sleep(0.05)
        raise RuntimeError("idnoded did not start:\n" + self.logtext())

    def logtext(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logf.close()
        return self.proc.returncode

    def alive(self):
        return self.proc.poll() is None

    def udp(self, msg, timeout=2.0, want=1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(timeout)
            s.sendto(msg, ("127.0.0.1", self.port))
            out = []
            for _ in range(want):
                out.append(s.recv(65536))
            return out
        finally:
            s.close()

    def tcp(self, msg, timeout=5.0):
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(msg)
            return FrameReader(s).frame(timeout)

    def http_conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.http, timeout=5)

    def get(self, path, headers=None):
        c = self.http_conn()
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()


class ConfNode:
    """idnoded -c CONF only (no command-line overrides: the file decides everything, so a reload
    can change any key, the addresses included). The file is \\p base (fixed) plus the extra text
    of the last write(); a control socket in \\p tmp is added for `idnode reload`."""

    def __init__(self, tmp, base, extra=""):
        self.tmp = tmp
        self.conf = os.path.join(tmp, "node.conf")
        self.ctl = os.path.join(tmp, "ctl.sock")
        self.base = base + "control_socket = %s\n" % self.ctl
        self.write(extra)
        self.log = os.path.join(tmp, "idnoded.log")
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([IDNODED, "-c", self.conf], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline and "idnoded ready" not in self.logtext():
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if "idnoded ready" not in self.logtext():
            raise RuntimeError("idnoded did not start:\n" + self.logtext())

    def write(self, extra):
        with open(self.conf, "w") as f:
            f.write(self.base + extra)

    def logtext(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log) as f:
            return f.read()

    def reload(self, extra):
        """Rewrite the file with \\p extra and `idnode reload`: (exit code, stdout, stderr)."""
        self.write(extra)
        r = subprocess.run([IDNODE, "reload", "--socket", self.ctl, "--timeout", "20000"],
                           capture_output=True, timeout=60)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.logf.close()
        return self.proc.returncode


def split_request(req):
    """A whole request as <= 512-byte datagrams, as hdllib sends it: 492 message bytes after each
    envelope, SequenceNumber 0, 1, ..., TC set when it takes more than one."""
    body = req[20:]
    env = bytearray(req[:20])
    if len(body) > 492:
        env[2] |= 0x20
    return [bytes(env[:12]) + struct.pack(">I", k) + bytes(env[16:20]) + body[o:o + 492]
            for k, o in enumerate(range(0, max(len(body), 1), 492))]


def udp_collect(s, rid, timeout=3.0):
    """Every datagram of the answer to RequestId \\p rid on socket \\p s (other RequestIds are
    skipped): (the reassembled message with TC and SequenceNumber cleared, [datagrams in
    sequence order]). Raises socket.timeout when it does not arrive whole in time."""
    s.settimeout(timeout)
    pkts, npk = {}, None
    while npk is None or len(pkts) < npk:
        p = s.recv(65536)
        if len(p) < 20 or struct.unpack(">I", p[8:12])[0] != rid:
            continue
        seq, mlen = struct.unpack(">II", p[12:20])
        npk = max(1, (mlen + 491) // 492)
        pkts[seq] = p
    env = bytearray(pkts[0][:20])
    env[2] &= ~0x20 & 0xFF
    env[12:16] = b"\0\0\0\0"
    dg = [pkts[k] for k in range(npk)]
    return bytes(env) + b"".join(p[20:] for p in dg), dg


def finish(nodes, tmp, name):
    """End of a test script: kill any node still running (by PID), show the log tails when a
    check failed, remove \\p tmp, print the verdict; returns the exit code. Called from a finally
    block, it counts an exception on its way out as a failed check."""
    exc = sys.exc_info()[1]
    if exc is not None:
        check(False, "unexpected exception: %r" % exc)
    for n in nodes:
        if n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait(5)
        if FAILS:
            print("---- idnoded log (tail) ----\n" + n.logtext()[-3000:])
    shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("%s: all checks passed" % name)
    return 0


def need_binaries():
    """False (after saying so) when idnoded or idnode is not built: the script should exit 77."""
    for p in (IDNODED, IDNODE):
        if not os.access(p, os.X_OK):
            print("skip: %s not built" % p)
            return False
    return True


def sanitized(pid):
    """True when process \p pid runs with AddressSanitizer (its quarantine and shadow memory
    make RSS figures meaningless)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


def rss_kb(pid):
    """Resident set size of process \\p pid in KiB (0 when unknown)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def legit_client(port, src, stop, result, handle="88.100.1/small", multi_every=0, timeout=1.0,
                 pause=0.002, gap=0.0):
    """A legitimate UDP client for flood scenarios: resolves \\p handle from address \\p src one
    request at a time, \\p pause seconds apart, until the threading.Event \\p stop is set; every
    \\p multi_every-th request (0 = none) is padded into a two-datagram request, its datagrams
    \\p gap seconds apart (network jitter). Fills \\p result with sent, answered (RC 1, or 200 for
    the padded ones, within \\p timeout) and latencies (seconds)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    result.update(sent=0, answered=0, multi=0, latencies=[])
    rid = 1 << 30
    try:
        while not stop.is_set():
            rid += 1
            multi = multi_every and result["sent"] % multi_every == 0
            req = resolve_request(handle, rid, types=["X" * 300, "Y" * 300] if multi else ())
            t0 = time.time()
            for k, d in enumerate(split_request(req)):
                if k and gap:
                    time.sleep(gap)
                s.sendto(d, ("127.0.0.1", port))
            result["sent"] += 1
            result["multi"] += 1 if multi else 0
            s.settimeout(timeout)
            try:
                while True:
                    a = s.recv(65536)
                    if len(a) >= 44 and struct.unpack(">I", a[8:12])[0] == rid:
                        rc = struct.unpack(">I", a[24:28])[0]
                        # a padded request matches no value: RC 200 is its right answer
                        if rc == 1 or (multi and rc == 200):
                            result["answered"] += 1
                            result["latencies"].append(time.time() - t0)
                        break
                    s.settimeout(max(0.01, timeout - (time.time() - t0)))
            except socket.timeout:
                pass
            stop.wait(pause)
    finally:
        s.close()


SMALL_RECORD = {"handle": "88.100.1/small", "values": [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.org/"}}]}


def desc_record(handle, n, size=170, fill="v"):
    """A record of \\p n DESC values of \\p size bytes each."""
    return {"handle": handle, "values": [
        {"index": i + 1, "type": "DESC",
         "data": {"format": "string", "value": ("%d-" % i + fill * size)[:size]}}
        for i in range(n)]}


def import_records(tmp, db, recs):
    """Load \\p recs (JSON-able records) into the store \\p db with `idnode import`, 88.100.1
    homed."""
    path = os.path.join(tmp, "data.jsonl")
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", path],
                         capture_output=True, timeout=120)
    check(imp.returncode == 0, "import: %s" % imp.stderr.decode(errors="replace"))


def paced(rate, seconds, send, stop=None, tick=None):
    """Call send(i) for i = 0, 1, ... at \\p rate per second for \\p seconds (or until the
    threading.Event \\p stop), and tick() between bursts. Returns (calls, elapsed seconds)."""
    t0 = time.time()
    i = 0
    while not (stop and stop.is_set()):
        now = time.time() - t0
        if now >= seconds:
            break
        due = int(now * rate) + 1
        while i < due:
            send(i)
            i += 1
        if tick:
            tick()
        time.sleep(0.002)
    return i, time.time() - t0


def pct_ms(lat, q):
    """The \\p q-th percentile of \\p lat (seconds) in milliseconds (0 for none)."""
    if not lat:
        return 0.0
    s = sorted(lat)
    return 1000 * s[min(len(s) - 1, len(s) * q // 100)]


class HttpReader:
    """Reads HTTP/1.1 responses (Content-Length bodies) from a raw socket."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def _fill(self, timeout):
        self.s.settimeout(timeout)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""
        self.buf += d
        return d

    def response(self, timeout=5.0, head=False):
        """(status, headers dict lower-case, body) or None on EOF / timeout."""
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in self.buf:
            if time.time() > deadline or not self._fill(max(0.01, deadline - time.time())):
                return None
        hdr, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = hdr.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        h = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            h[k.strip().lower()] = v.strip()
        n = 0 if head else int(h.get("content-length", "0"))
        while len(self.buf) < n:
            if time.time() > deadline or not self._fill(max(0.01, deadline - time.time())):
                return None
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, h, body

    def eof(self, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = self._fill(max(0.01, deadline - time.time()))
            if d == b"":
                return True
        return False


def http_get_raw(path, version="1.1", extra=""):
    return ("GET %s HTTP/%s\r\nHost: 127.0.0.1\r\n%s\r\n" % (path, version, extra)).encode()


def import_gen(tmp, db, count=200, records=()):
    """`idnode gen` COUNT generated handles (prefix 88.100.1) plus RECORDS (dicts in the import
    format) into a new LMDB at DB, homed at 88.100.1. Returns the first generated handle."""
    path = os.path.join(tmp, "data.jsonl")
    gen = subprocess.run([IDNODE, "gen", "--prefix", "88.100.1", "--count", str(count)],
                         capture_output=True, timeout=60)
    check(gen.returncode == 0, "idnode gen")
    with open(path, "wb") as f:
        f.write(gen.stdout)
        for rec in records:
            f.write(json.dumps(rec).encode() + b"\n")
    imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", path],
                         capture_output=True, timeout=120)
    check(imp.returncode == 0, "idnode import: %s" % imp.stderr.decode(errors="replace"))
    return json.loads(gen.stdout.split(b"\n", 1)[0])["handle"]


# one record every scenario can resolve
TEST_URL_RECORD = {"handle": "88.100.1/test", "values": [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.org/test"}}]}


# ---- attack scenarios (tests/attack/) --------------------------------------------------------------

def rss_anon_kb(pid):
    """RssAnon of a process in kB (-1 when unreadable)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def raise_nofile(want):
    """Raise this process's descriptor limit towards want (children inherit it)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def legit_tcp(port, rid, src="127.0.0.1", timeout=3.0):
    """One resolution the way hdllib sends it (a new connection, 2.11): answered?"""
    try:
        with socket.socket() as s:
            s.bind((src, 0))
            s.settimeout(timeout)
            s.connect(("127.0.0.1", port))
            s.sendall(resolve_request("88.100.1/test", rid))
            f = FrameReader(s).frame(timeout)
            return f is not None and parse_reply(f)["rc"] == 1
    except (OSError, ValueError):
        return False


def legit_rest(port, src="127.0.0.1", timeout=3.0):
    """One REST GET on a new connection (Connection: close): answered 200?"""
    try:
        with socket.socket() as s:
            s.bind((src, 0))
            s.settimeout(timeout)
            s.connect(("127.0.0.1", port))
            s.sendall(http_get_raw("/api/handles/88.100.1/test", extra="Connection: close\r\n"))
            r = HttpReader(s).response(timeout)
            return r is not None and r[0] == 200
    except (OSError, ValueError):
        return False


class Legit:
    """Counts of legitimate queries (TCP and REST) answered during an attack."""

    def __init__(self, node):
        self.node = node
        self.tcp = [0, 0]
        self.rest = [0, 0]
        self.lat = []  # seconds per answered query

    def _one(self, count, fn):
        t0 = time.time()
        ok = fn()
        count[1] += 1
        count[0] += ok
        if ok:
            self.lat.append(time.time() - t0)

    def round(self, n, pause=0.0):
        for i in range(n):
            self._one(self.tcp, lambda: legit_tcp(self.node.port, 100000 + self.tcp[1]))
            self._one(self.rest, lambda: legit_rest(self.node.http))
            if pause:
                time.sleep(pause)

    def pct(self, which):
        ok, n = self.tcp if which == "tcp" else self.rest
        return 100.0 * ok / n if n else 0.0

    def text(self):
        lat = sorted(self.lat) or [0.0]
        return "legit TCP %d/%d (%.2f %%), REST %d/%d (%.2f %%), latency p50 %.1f ms max %.1f ms" % (
            self.tcp[0], self.tcp[1], self.pct("tcp"), self.rest[0], self.rest[1],
            self.pct("rest"), 1000 * lat[len(lat) // 2], 1000 * lat[-1])


def attack_node(tmp, conf_text, workers=2):
    """A node with a small data set and the given config, for one attack scenario."""
    db = os.path.join(tmp, "db")
    first = import_gen(tmp, db, 50, [TEST_URL_RECORD])
    conf = os.path.join(tmp, "attack.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    node = Node(tmp, db, conf=conf, workers=workers)
    node.first = first  # a generated handle (a full record: a ~600-byte answer)
    return node


def attack_done(node, tmp, name):
    """End of a scenario: stop the node (exit 0 expected), drop tmp, return the exit status."""
    import shutil
    if node:
        check(node.stop() == 0, "node exit 0")
        if FAILS:
            print(node.logtext()[-3000:])
    shutil.rmtree(tmp, ignore_errors=True)
    return report(name)


def attack_begin(nofile, name):
    """Start of a scenario: None when the binaries are missing, else a fresh temp dir (with the
    descriptor limit raised to nofile for the sockets the scenario opens)."""
    import tempfile
    if binaries_missing():
        return None
    raise_nofile(nofile)
    return tempfile.mkdtemp(prefix="idnode-%s-" % name)


def attacker_socket(port, first=b"", rcvbuf=0, src="127.0.0.2"):
    """A connection from src, first bytes sent, then non-blocking; None when it fails."""
    s = socket.socket()
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.bind((src, 0))
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        if first:
            s.sendall(first)
        s.setblocking(False)
        return s
    except OSError:
        s.close()
        return None
