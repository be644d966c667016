#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers of the tests that speak TLS to a node (stdlib only): development certificates from
certs/make-dev-certs.sh, client contexts trusting them, raw HTTP/1.1 over TLS (requests sent as
bytes, responses read with idtest.HttpReader), the captured REST requests split into requests,
and HS_PUBKEY signatures made with openssl(1) (Python's stdlib has no RSA).
"""
import os
import socket
import ssl
import subprocess
import time

from idtest import SRC, HttpReader, check  # noqa: F401


def make_certs(out, *names):
    """certs/make-dev-certs.sh into \\p out (CA, server, client, expired, pin)."""
    r = subprocess.run(["bash", os.path.join(SRC, "certs", "make-dev-certs.sh"), out] +
                       list(names), capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("make-dev-certs.sh: " + r.stderr.decode(errors="replace"))
    return out


def client_ctx(ca, max_version=None, cert=None):
    """A client context trusting \\p ca (file), host name checked (localhost / 127.0.0.1)."""
    ctx = ssl.create_default_context(cafile=ca)
    if max_version:
        ctx.maximum_version = max_version
    if cert:
        ctx.load_cert_chain(cert + ".pem", cert + ".key")
    return ctx


def tls_socket(ctx, port, timeout=5.0, session=None, src="127.0.0.1"):
    """A connected TLS socket to 127.0.0.1:port (server name 127.0.0.1)."""
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return ctx.wrap_socket(s, server_hostname="127.0.0.1", session=session)


def request(method, path, headers=None, body=b"", version="1.1"):
    """An HTTP/1.1 request as bytes (Host added, Content-Length when there is a body)."""
    h = {"Host": "127.0.0.1"}
    h.update(headers or {})
    if body or method in ("PUT", "POST"):
        h["Content-Length"] = str(len(body))
    lines = ["%s %s HTTP/%s" % (method, path, version)] + ["%s: %s" % kv for kv in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(sock, raw, timeout=10.0):
    """Send \\p raw, read one response: (status, headers, body) or None."""
    sock.sendall(raw)
    return HttpReader(sock).response(timeout)


def https(ctx, port, raw, timeout=10.0):
    """One request on a fresh TLS connection."""
    with tls_socket(ctx, port, timeout) as s:
        return exchange(s, raw, timeout)


def closed_soon(sock, timeout):
    """True when the peer closes (EOF, reset, or a TLS alert) within \\p timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            d = sock.recv(4096)
        except socket.timeout:
            continue
        except (ssl.SSLError, OSError):
            return True
        if not d:
            return True
    return False


def split_requests(raw):
    """A capture of several HTTP/1.1 requests back to back -> [(head text, body bytes)]."""
    out = []
    while raw:
        head, rest = raw.split(b"\r\n\r\n", 1)
        n = 0
        for ln in head.split(b"\r\n")[1:]:
            k, v = ln.split(b":", 1)
            if k.strip().lower() == b"content-length":
                n = int(v)
        out.append((head.decode("latin-1"), rest[:n]))
        raw = rest[n:]
    return out


def rebuild(head, body, drop=(), put=None):
    """A captured request with headers in \\p drop (lower-case names) removed and \\p put added
    (Content-Length recomputed)."""
    lines = head.split("\r\n")
    keep = [lines[0]] + [ln for ln in lines[1:]
                         if ln.split(":", 1)[0].strip().lower() not in set(drop) |
                         {"content-length"}]
    for k, v in (put or {}).items():
        keep.append("%s: %s" % (k, v))
    if body or lines[0].split(" ")[0] in ("PUT", "POST"):
        keep.append("Content-Length: %d" % len(body))
    return ("\r\n".join(keep) + "\r\n\r\n").encode("latin-1") + body


def rsa_sign_sha256(key_pem, data, tmp):
    """SHA256withRSA signature of \\p data with the PEM private key \\p key_pem (openssl)."""
    path = os.path.join(tmp, "to-sign.bin")
    with open(path, "wb") as f:
        f.write(data)
    r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_pem, path],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl dgst: " + r.stderr.decode(errors="replace"))
    return r.stdout
