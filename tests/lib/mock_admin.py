#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted Handle admin server on 127.0.0.1 for CLI tests (stdlib + the openssl CLI).

It challenges every admin request (OC 100-105, 300, 301) with RC 402 (RD digest of the request's
header + body, a 16-byte nonce, a fresh SessionId), verifies the OC 200 answer itself (HS_SECKEY:
every MAC variant, PBKDF2 with Java's password encoding; HS_PUBKEY: `openssl dgst -verify` with
one of the --pubkey keys), then carries out the remembered request on an in-memory store and answers with the
original opcode and the RequestId of the OC 200. LIST_HANDLES is streamed two handles per message
(CN on all but the last). OC 2001 (IDIS login) challenges with the client's SessionId; after it,
requests with that SessionId on that connection are carried out unchallenged. OC 1 resolves from
the store (what `idnode add` asks before choosing indexes).

Handles whose suffix is "busy" get RC 3, "bad-digest" a challenge whose digest is not of the
request. Every request is logged as one JSON line to --log. The port goes to --port-file once
listening. Stop it with SIGTERM (by PID).

    mock_admin.py --secret FILE [--pubkey PEM]... --log FILE --port-file FILE
"""
import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idtest  # noqa: E402

OC_RESOLUTION, OC_CREATE, OC_DELETE, OC_ADD, OC_REMOVE, OC_MODIFY, OC_LIST = 1, 100, 101, 102, 103, 104, 105
OC_ANSWER, OC_HOME, OC_UNHOME, OC_LOGIN = 200, 300, 301, 2001
ADMIN_OPS = (OC_CREATE, OC_DELETE, OC_ADD, OC_REMOVE, OC_MODIFY, OC_LIST, OC_HOME, OC_UNHOME)
RC_OK, RC_BUSY, RC_NOT_FOUND, RC_EXISTS, RC_VALUES_NOT_FOUND, RC_VALUE_EXISTS = 1, 3, 100, 101, 200, 201
RC_AUTH_NEEDED, RC_AUTH_FAILED, RC_AUTH_TIMEOUT = 402, 403, 405
F_CN, F_RD, F_OVRW = 0x04000000, 0x00800000, 0x00400000


def lstr(b):
    return struct.pack(">I", len(b)) + b


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def u8(self):
        self.p += 1
        return self.b[self.p - 1]

    def u32(self):
        self.p += 4
        return struct.unpack(">I", self.b[self.p - 4:self.p])[0]

    def bytes(self):
        n = self.u32()
        self.p += n
        if self.p > len(self.b):
            raise ValueError("truncated")
        return self.b[self.p - n:self.p]


def java_pw(k):
    return k.decode("latin1").encode("utf-8")


def seckey_ok(secret, nonce, digest, sr):
    d = nonce + digest
    r = Reader(sr)
    alg = r.u8()
    if alg == 0x22:
        salt, it, bits, mac = r.bytes(), r.u32(), r.u32(), r.bytes()
        if it > 100000 or bits % 8:
            return False, alg
        dk = hashlib.pbkdf2_hmac("sha1", java_pw(secret), salt, it, bits // 8)
        want = hmac.new(dk, d, "sha1").digest()
    elif alg in (0x01, 0x02, 0x03):
        h = {1: hashlib.md5, 2: hashlib.sha1, 3: hashlib.sha256}[alg]
        want, mac = h(secret + d + secret).digest(), sr[1:]
    elif alg in (0x12, 0x13):
        want, mac = hmac.new(secret, d, "sha1" if alg == 0x12 else "sha256").digest(), sr[1:]
    else:
        return False, alg
    return hmac.compare_digest(want, mac), alg


def pubkey_ok(pems, nonce, digest, sr):
    """True when the signature verifies with one of the PEM public keys."""
    r = Reader(sr)
    name, sig = r.bytes().decode(), r.bytes()
    md = {"SHA-256": "-sha256", "SHA256": "-sha256", "SHA1": "-sha1", "SHA-1": "-sha1"}.get(name.upper())
    if not md:
        return False, name
    with tempfile.TemporaryDirectory() as t:
        with open(os.path.join(t, "d"), "wb") as f:
            f.write(nonce + digest)
        with open(os.path.join(t, "s"), "wb") as f:
            f.write(sig)
        for pem in pems or ():
            p = subprocess.run(["openssl", "dgst", md, "-verify", pem, "-signature",
                                os.path.join(t, "s"), os.path.join(t, "d")], capture_output=True)
            if p.returncode == 0:
                return True, name
    return False, name


def parse_request(frame):
    """Envelope, header and the body fields of the requests we serve."""
    maj, mnr, fl, smin, sess, rid, seq, mlen = struct.unpack(">BBBBIIII", frame[:20])
    op, rc, flags, serial, rec, _, exp, blen = struct.unpack(">IIIHBBII", frame[20:44])
    q = dict(major=maj, minor=mnr, smaj=fl & 3, smin=smin, session=sess, rid=rid, op=op, opflags=flags,
             signed=frame[20:44 + blen])
    r = Reader(frame[44:44 + blen])
    if op == OC_ANSWER:
        q.update(auth=r.bytes().decode(), id=r.bytes().decode(), idx=r.u32(), sr=r.bytes())
    elif op == OC_LOGIN:
        q.update(id=r.bytes().decode(), idx=r.u32())
    else:
        q["handle"] = r.bytes().decode()
        if op in (OC_CREATE, OC_ADD, OC_MODIFY):
            q["values"], _ = idtest.parse_values(r.b, r.p)
        elif op == OC_REMOVE:
            q["indexes"] = [r.u32() for _ in range(r.u32())]
    return q


def version_for(q):
    smaj, smin = (q["smaj"], q["smin"]) if q["smaj"] else (q["major"], q["minor"])
    return (2, min(smin, 11)) if smaj == 2 else (2, 11)


def response(q, rc, body=b"", rid=None, session=None, op=None, opflags=0x10000000, digest=None):
    major, minor = version_for(q)
    if digest is not None:
        opflags |= F_RD
        body = digest + body
    hdr = struct.pack(">IIIHBBII", op if op is not None else q["op"], rc, opflags, 1, 0, 0,
                      int(time.time()) + 43200, len(body))
    msg = hdr + body + struct.pack(">I", 0)
    env = struct.pack(">BBBBIIII", major, minor, 2, 11, q["session"] if session is None else session,
                      q["rid"] if rid is None else rid, 0, len(msg))
    return env + msg


def encode_values(vals):
    out = struct.pack(">I", len(vals))
    for idx, typ, data, perms in vals:
        out += struct.pack(">IIBIB", idx, 0, 0, 86400, perms) + lstr(typ.encode()) + lstr(data)
        out += struct.pack(">I", 0)
    return out


class Mock:
    def __init__(self, args):
        with open(args.secret, "rb") as f:
            self.secret = f.read().rstrip(b"\r\n")
        self.pubkey = args.pubkey
        self.logf = open(args.log, "a")
        self.lock = threading.Lock()
        self.store = {}  # handle -> {index: (type, data, perms)}
        self.homed = set()
        self.pending = {}  # session -> (request, nonce, digest, conn id)
        self.next_session = 0x1234
        self.conn_ids = 0

    def log(self, **kw):
        with self.lock:
            self.logf.write(json.dumps(kw, sort_keys=True) + "\n")
            self.logf.flush()

    def challenge(self, q, session, conn):
        major, minor = version_for(q)
        alg = 3 if minor >= 7 else 2
        h = hashlib.sha256 if alg == 3 else hashlib.sha1
        digest = h(q["signed"]).digest()
        nonce = os.urandom(16)
        with self.lock:
            self.pending[session] = (q, nonce, digest, conn)
        sent = bytes([alg]) + (bytes([digest[0] ^ 1]) + digest[1:] if q.get("handle", "").endswith("/bad-digest") else digest)
        return response(q, RC_AUTH_NEEDED, lstr(nonce), session=session, digest=sent)

    def execute(self, q, rid, session):
        """Carry out q; the answer frames (several for a list)."""
        op, h = q["op"], q.get("handle", "")
        with self.lock:
            rec = self.store.get(h.upper())
            if op == OC_CREATE:
                if rec is not None and not q["opflags"] & F_OVRW:
                    return [response(q, RC_EXISTS, lstr(b"exists"), rid, session)]
                self.store[h.upper()] = {v[0]: (v[1], v[2], v[3]) for v in q["values"]}
                return [response(q, RC_OK, lstr(h.encode()), rid, session)]
            if op in (OC_HOME, OC_UNHOME):
                (self.homed.add if op == OC_HOME else self.homed.discard)(h)
                return [response(q, RC_OK, b"", rid, session)]
            if op == OC_LIST:
                pre = h[5:].upper() + "/" if h.upper().startswith("0.NA/") else h.upper() + "/"
                names = sorted(k for k in self.store if k.startswith(pre)) or []
                parts = [names[i:i + 2] for i in range(0, len(names), 2)] or [[]]
                out = []
                for i, part in enumerate(parts):
                    body = struct.pack(">I", len(part)) + b"".join(lstr(n.encode()) for n in part)
                    flags = 0x10000000 | (F_CN if i + 1 < len(parts) else 0)
                    out.append(response(q, RC_OK, body, rid, session, opflags=flags))
                return out
            if rec is None:
                return [response(q, RC_NOT_FOUND, lstr(b"no such handle"), rid, session)]
            if op == OC_DELETE:
                del self.store[h.upper()]
            elif op == OC_ADD:
                if any(v[0] in rec for v in q["values"]) and not q["opflags"] & F_OVRW:
                    return [response(q, RC_VALUE_EXISTS, lstr(b"index in use"), rid, session)]
                rec.update({v[0]: (v[1], v[2], v[3]) for v in q["values"]})
            elif op == OC_MODIFY:
                if any(v[0] not in rec for v in q["values"]):
                    return [response(q, RC_VALUES_NOT_FOUND, lstr(b"no value"), rid, session)]
                rec.update({v[0]: (v[1], v[2], v[3]) for v in q["values"]})
            elif op == OC_REMOVE:
                for i in q["indexes"]:
                    rec.pop(i, None)
            return [response(q, RC_OK, b"", rid, session)]

    def resolve(self, q):
        r = Reader(q["signed"][24:])
        h = r.bytes().decode()
        with self.lock:
            rec = self.store.get(h.upper())
            if rec is None:
                return response(q, RC_NOT_FOUND, lstr(b"no such handle"))
            vals = [(i, t, d, p) for i, (t, d, p) in sorted(rec.items()) if p & 0x02]
        return response(q, RC_OK, lstr(h.encode()) + encode_values(vals))

    def answer(self, q, conn, state):
        with self.lock:
            p = self.pending.pop(q["session"], None)
        if p is None:
            return [response(q, RC_AUTH_TIMEOUT, lstr(b"unknown session"))]
        orig, nonce, digest, cconn = p
        if q["auth"] == "HS_SECKEY":
            ok, alg = seckey_ok(self.secret, nonce, digest, q["sr"])
        else:
            ok, alg = pubkey_ok(self.pubkey, nonce, digest, q["sr"])
        ok = ok and q["id"] == "0.NA/88.100" and q["idx"] == 300
        entry = dict(op=orig["op"], handle=orig.get("handle", orig.get("id")), auth=q["auth"], alg=alg,
                     ok=ok, conn="same" if cconn == conn else "new", session=q["session"], challenged=True,
                     opflags=orig["opflags"])
        for k in ("values", "indexes"):
            if k in orig:
                entry[k] = [[v[0], v[1], v[2].hex(), v[3]] for v in orig[k]] if k == "values" else orig[k]
        self.log(**entry)
        if not ok:
            return [response(orig, RC_AUTH_FAILED, lstr(b"authentication failed"), q["rid"], q["session"])]
        if orig["op"] == OC_LOGIN:
            state["login"] = orig["session"]
            return [response(orig, RC_OK, b"", q["rid"], q["session"])]
        return self.execute(orig, q["rid"], q["session"])

    def serve(self, s):
        with self.lock:
            self.conn_ids += 1
            conn = self.conn_ids
        fr, state = idtest.FrameReader(s), {"login": None}
        try:
            while True:
                f = fr.frame(timeout=30)
                if f is None:
                    return
                q = parse_request(f)
                if q["op"] == OC_ANSWER:
                    out = self.answer(q, conn, state)
                elif q["op"] == OC_RESOLUTION:
                    out = [self.resolve(q)]
                elif q["op"] == OC_LOGIN:
                    out = [self.challenge(q, q["session"], conn)]
                elif q["op"] in ADMIN_OPS and state["login"] and q["session"] == state["login"]:
                    self.log(op=q["op"], handle=q["handle"], challenged=False, session=q["session"],
                             conn="same", ok=True, opflags=q["opflags"])
                    out = self.execute(q, q["rid"], q["session"])
                elif q["op"] in ADMIN_OPS and q["handle"].endswith("/busy"):
                    self.log(op=q["op"], handle=q["handle"], busy=True)
                    out = [response(q, RC_BUSY, lstr(b"busy"))]
                elif q["op"] in ADMIN_OPS:
                    with self.lock:
                        self.next_session += 1
                        session = self.next_session
                    out = [self.challenge(q, session, conn)]
                else:
                    out = [response(q, 5, lstr(b"not supported"))]
                for frame in out:
                    s.sendall(frame)
        except (OSError, ValueError, struct.error) as e:
            self.log(error=str(e))
        finally:
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secret", required=True)
    ap.add_argument("--pubkey", action="append", help="PEM public key (repeatable)")
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    mock = Mock(args)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=mock.serve, args=(s,), daemon=True).start()


if __name__ == "__main__":
    main()
