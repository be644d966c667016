#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers of the tests that administer a node over the Handle protocol (stdlib only): message
building, challenge parsing, HS_SECKEY answers computed the way hdllib 9 computes them
(PBKDF2-HMAC-SHA1, captures README fact 8), and the hdllib flow (the answer on a new connection).
"""
import hashlib
import hmac
import os
import socket
import struct
import time

from idtest import FrameReader, load_hex, parse_reply, resolve_request  # noqa: F401

SECRET = b"secret"
ID_HANDLE = "0.NA/88.100"
ID_INDEX = 300


# ---- messages --------------------------------------------------------------------------------

def message(opcode, body, session=0, rid=1, flags=0x19000000, version=(2, 11), sugg=(2, 11)):
    hdr = struct.pack(">IIIHBBII", opcode, 0, flags, 0xFFFF, 0, 0, int(time.time()) + 43200,
                      len(body))
    msg = hdr + body + struct.pack(">I", 0)
    env = struct.pack(">BBBBIIII", version[0], version[1], sugg[0], sugg[1], session, rid, 0,
                      len(msg))
    return env + msg


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def header(b):
    op, rc, flags = struct.unpack(">III", b[20:32])
    sess, rid = struct.unpack(">II", b[4:12])
    blen = struct.unpack(">I", b[40:44])[0]
    return dict(op=op, rc=rc, flags=flags, session=sess, rid=rid, body=b[44:44 + blen])


def skip_rd(h):
    body = h["body"]
    if h["flags"] & 0x00800000:
        alg = body[0]
        if alg == 0:
            n = struct.unpack(">I", body[:4])[0]
            return body[4:4 + n], body[4 + n:]
        n = {1: 16, 2: 20, 3: 32}[alg]
        return body[1:1 + n], body[1 + n:]
    return b"", body


def challenge_of(frame):
    h = header(frame)
    digest, rest = skip_rd(h)
    n = struct.unpack(">I", rest[:4])[0]
    return h, rest[4:4 + n], digest


def error_text(frame):
    h = header(frame)
    _, rest = skip_rd(h)
    if len(rest) < 4:
        return ""
    n = struct.unpack(">I", rest[:4])[0]
    return rest[4:4 + n].decode(errors="replace")


def seckey_answer(secret, nonce, digest):
    """HS_SECKEY signedResponse as hdllib >= 2.7 sends it (captures README fact 8)."""
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha1", secret, salt, 10000, 20)
    mac = hmac.new(dk, nonce + digest, hashlib.sha1).digest()
    return b"\x22" + s(salt) + struct.pack(">II", 10000, 160) + s(mac)


def answer_msg(sid, rid, nonce, digest, secret=SECRET, ident=ID_HANDLE, index=ID_INDEX,
               version=(2, 11)):
    body = s("HS_SECKEY") + s(ident) + struct.pack(">I", index)
    body += s(seckey_answer(secret, nonce, digest))
    return message(200, body, session=sid, rid=rid, version=version)


def with_rid(msg, rid):
    return msg[:8] + struct.pack(">I", rid) + msg[12:]


def exchange(node, msg):
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as c:
        c.sendall(msg)
        return FrameReader(c).frame(10)


def hdllib_flow(node, req, secret=SECRET, ident=ID_HANDLE, index=ID_INDEX):
    """The request on one connection, the answer on a new one (fact 7). -> (challenge, final)"""
    ch = exchange(node, req)
    h, nonce, digest = challenge_of(ch)
    if h["rc"] != 402:
        return h, ch
    rid = 0x5000 + (h["session"] & 0xfff)
    final = exchange(node, answer_msg(h["session"], rid, nonce, digest, secret, ident, index))
    return h, final


def admin_value(handle, index, perms="111111111111", at=100):
    return {"index": at, "type": "HS_ADMIN",
            "data": {"format": "admin", "value": {"handle": handle, "index": index,
                                                   "permissions": perms}}}


def seckey_value(secret, at=300):
    return {"index": at, "type": "HS_SECKEY", "data": {"format": "string", "value": secret},
            "permissions": "1100"}


def resolve_values(node, handle):
    r = parse_reply(node.tcp(resolve_request(handle, 77, flags=0x10000000)))
    if r["rc"] != 1:
        return r["rc"], {}
    return 1, dict((i, (t, d)) for i, t, d in r["values"])


def create_msg(handle, rid, session=0, url="https://example.org/x", version=(2, 11)):
    val = struct.pack(">IIBIB", 1, 0, 0, 86400, 0x0E) + s("URL") + s(url) + struct.pack(">I", 0)
    body = s(handle) + struct.pack(">I", 1) + val
    return message(100, body, session=session, rid=rid, version=version)


# ---- HS_PUBKEY answers (RSA, pure Python: independent of the node's OpenSSL code) -------------

def cnri_rsa_key(path):
    """(n, d) of an unencrypted CNRI private key file (type 1, RSA_PRIVCRT_KEY: n e d p q dP dQ
    qInv as length-prefixed big-endian numbers), the format hdllib writes admpriv.bin in."""
    with open(path, "rb") as f:
        b = f.read()
    pos = 0

    def lbytes():
        nonlocal pos
        n = struct.unpack(">I", b[pos:pos + 4])[0]
        pos += 4 + n
        return b[pos - n:pos]

    kind = struct.unpack(">I", b[:4])[0]
    pos = 4
    name = lbytes()
    if kind != 1 or name != b"RSA_PRIVCRT_KEY":
        raise ValueError("not an unencrypted RSA_PRIVCRT_KEY file (%d, %r)" % (kind, name))
    n = int.from_bytes(lbytes(), "big")
    lbytes()  # e
    d = int.from_bytes(lbytes(), "big")
    return n, d


def rsa_sha256_sign(key, data):
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2.1) of \\p data with the key (n, d)."""
    n, d = key
    k = (n.bit_length() + 7) // 8
    t = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(data).digest()
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return pow(int.from_bytes(em, "big"), d, n).to_bytes(k, "big")


def pubkey_answer_msg(sid, rid, nonce, digest, key, ident=ID_HANDLE, index=ID_INDEX,
                      version=(2, 11), tamper=False):
    """OC 200 with an HS_PUBKEY answer as hdllib sends it (captures README fact 9):
    signedResponse = BYTES "SHA-256" || BYTES signature over nonce || digest."""
    sig = rsa_sha256_sign(key, nonce + digest)
    if tamper:
        sig = sig[:-1] + bytes([sig[-1] ^ 1])
    body = s("HS_PUBKEY") + s(ident) + struct.pack(">I", index) + s(s("SHA-256") + s(sig))
    return message(200, body, session=sid, rid=rid, version=version)
