#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""HS_PUBKEY registration against the real idnoded (python3 stdlib + the built idnode).

1. The hdllib capture java-hdllib-create-pubkey-tcp-1-request.hex replayed byte for byte (fresh
   request id) to a node whose 0.NA/88.100 holds the capture's public key (tests/data/admpub.bin)
   as HS_PUBKEY at index 300; the RC 402 challenge answered as hdllib answers it (captures README
   fact 9: SHA256withRSA over nonce || digest, on a new connection) with tests/data/admpriv.bin
   (the CNRI key file, read and used for signing here in pure Python, so the node's OpenSSL
   verification is checked against an independent signer). The handle must then resolve.
2. Refusals, nothing written: the captured answer itself (signed over another nonce) sent for a
   fresh challenge, a signature with one bit flipped, the right signature under an index that
   holds no key, and an answer naming HS_SECKEY where the identity only has a public key.
3. DSA: `idnode keygen --dsa` makes a pair (PEM, and CNRI format encrypted with a passphrase);
   the public halves go to 0.NA/88.100 at 301 and 302 before the node starts; `idnode create`,
   `modify` and `delete --privkey` then run against the node with each, and an unknown DSA key
   is refused with AUTHENTICATION_FAILED.
Every wait is bounded; the node is stopped by PID in a finally block.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from admintest import *  # noqa: E402,F401,F403

DATA = os.path.join(SRC, "tests", "data")


def hexfile(path):
    with open(path, "rb") as f:
        return f.read().hex()


def pubkey_value(hexdata, at):
    return {"index": at, "type": "HS_PUBKEY", "data": {"format": "hex", "value": hexdata}}


def idnode(*args, env=None):
    p = subprocess.run([IDNODE] + list(args), capture_output=True, timeout=60,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_capture_flow(node, key):
    req = with_rid(load_hex("java-hdllib-create-pubkey-tcp-1-request.hex"), 7001)
    h, nonce, digest = challenge_of(exchange(node, req))
    check(h["rc"] == 402 and h["op"] == 100 and h["flags"] & 0x00800000,
          "pubkey capture: challenged (rc %d)" % h["rc"])
    check(len(digest) == 32 and len(nonce) == 16, "challenge: SHA-256 digest, 16-byte nonce")
    final = exchange(node, pubkey_answer_msg(h["session"], 7002, nonce, digest, key))
    f = header(final)
    check(f["rc"] == 1 and f["op"] == 100 and f["rid"] == 7002,
          "pubkey capture: created (rc %d op %d: %s)" % (f["rc"], f["op"], error_text(final)))
    rc, vals = resolve_values(node, "88.100.1/test")
    check(rc == 1 and vals.get(1, ("", b""))[1] == b"http://example.org/" and 100 in vals,
          "the capture's handle resolves with its values (%s)" % vals)


def refused(node, req, answer_of, what, rc_want=403, handle=None):
    h, nonce, digest = challenge_of(exchange(node, req))
    if not check(h["rc"] == 402, "%s: challenged (rc %d)" % (what, h["rc"])):
        return
    r = exchange(node, answer_of(h["session"], nonce, digest))
    check(header(r)["rc"] == rc_want, "%s: RC %d (%d %s)" % (what, rc_want, header(r)["rc"],
                                                            error_text(r)))
    if handle:
        check(resolve_values(node, handle)[0] == 100, "%s: nothing written" % what)


def test_refusals(node, key):
    # the captured OC 200 answer, re-addressed to a fresh challenge: signed over another nonce
    cap = load_hex("java-hdllib-create-pubkey-tcp-3-answer.hex")
    refused(node, create_msg("88.100.1/PK-1", 7101),
            lambda sid, n, d: cap[:4] + struct.pack(">I", sid) + cap[8:],
            "captured answer replayed", handle="88.100.1/PK-1")
    refused(node, create_msg("88.100.1/PK-2", 7102),
            lambda sid, n, d: pubkey_answer_msg(sid, 7103, n, d, key, tamper=True),
            "signature with a flipped bit", handle="88.100.1/PK-2")
    refused(node, create_msg("88.100.1/PK-3", 7104),
            lambda sid, n, d: pubkey_answer_msg(sid, 7105, n, d, key, index=299),
            "index without a key", handle="88.100.1/PK-3")
    refused(node, create_msg("88.100.1/PK-4", 7106),
            lambda sid, n, d: answer_msg(sid, 7107, n, d),
            "HS_SECKEY answer for a key-only identity", handle="88.100.1/PK-4")


def test_dsa(node, tmp, dsa_pem, dsa_cnri, pass_file):
    srv = ["-s", "127.0.0.1:%d" % node.port, "--timeout", "10000"]
    pem = ["--auth", "301:0.NA/88.100", "--privkey", dsa_pem]
    cnri = ["--auth", "302:0.NA/88.100", "--privkey", dsa_cnri, "--passphrase-file", pass_file]
    rc, out, err = idnode("create", *srv, *pem, "88.100.1/DSA-1", "URL=https://example.org/dsa-1")
    check(rc == 0 and out.strip() == "88.100.1/DSA-1", "DSA (PEM) create: %d %s" % (rc, err))
    rc, out, err = idnode("modify", *srv, *pem, "88.100.1/DSA-1", "1:URL=https://example.org/d")
    check(rc == 0, "DSA (PEM) modify: %d %s" % (rc, err))
    rc, vals = resolve_values(node, "88.100.1/DSA-1")
    check(rc == 1 and vals.get(1, ("", b""))[1] == b"https://example.org/d",
          "DSA: the modified value resolves (%s)" % vals)
    rc, out, err = idnode("create", *srv, *cnri, "88.100.1/DSA-2", "URL=https://example.org/dsa-2")
    check(rc == 0, "DSA (CNRI, encrypted) create: %d %s" % (rc, err))
    rc, out, err = idnode("delete", *srv, *cnri, "--session", "88.100.1/DSA-2")
    check(rc == 0, "DSA (CNRI) delete in an IDIS session: %d %s" % (rc, err))
    check(resolve_values(node, "88.100.1/DSA-2")[0] == 100, "DSA-2 deleted")
    # a DSA key the node does not know, under the PEM key's index
    other = os.path.join(tmp, "other.pem")
    rc, _, err = idnode("keygen", "--dsa", "--out-priv", other, "--out-pub", other + ".bin")
    check(rc == 0, "keygen of another DSA key: %s" % err)
    rc, out, err = idnode("delete", *srv, "--auth", "301:0.NA/88.100", "--privkey", other,
                          "88.100.1/DSA-1")
    check(rc == 1 and "AUTHENTICATION_FAILED (403)" in err, "unknown DSA key refused: %d %s" % (
        rc, err))
    check(resolve_values(node, "88.100.1/DSA-1")[0] == 1, "DSA-1 still there")
    rc, out, err = idnode("delete", *srv, *pem, "88.100.1/DSA-1")
    check(rc == 0, "DSA (PEM) delete: %d %s" % (rc, err))


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-admin-pubkey-")
    nodes = []
    try:
        key = cnri_rsa_key(os.path.join(DATA, "admpriv.bin"))
        pass_file = os.path.join(tmp, "pass")
        with open(pass_file, "w") as f:
            f.write("dsa pass phrase\n")
        dsa_pem, dsa_cnri = os.path.join(tmp, "dsa.pem"), os.path.join(tmp, "dsa.bin")
        rc, out1, err = idnode("keygen", "--dsa", "--index", "301", "--out-priv", dsa_pem,
                               "--out-pub", os.path.join(tmp, "dsa.pub"))
        check(rc == 0 and '"kty":"DSA"' in out1, "keygen --dsa: %d %s" % (rc, err))
        rc, out2, err = idnode("keygen", "--dsa", "--cnri", "--passphrase-file", pass_file,
                               "--index", "302", "--out-priv", dsa_cnri,
                               "--out-pub", os.path.join(tmp, "dsa2.pub"))
        check(rc == 0, "keygen --dsa --cnri: %d %s" % (rc, err))
        records = [
            {"handle": "0.NA/88.100", "values": [
                admin_value(ID_HANDLE, ID_INDEX),
                pubkey_value(hexfile(os.path.join(DATA, "admpub.bin")), 300),
                json.loads(out1), json.loads(out2)]},
            {"handle": "0.NA/88.100.1", "values": [
                admin_value(ID_HANDLE, 300), admin_value(ID_HANDLE, 301, at=101),
                admin_value(ID_HANDLE, 302, at=102)]},
        ]
        db = os.path.join(tmp, "db")
        import_records(tmp, db, records)
        node = Node(tmp, db)
        nodes.append(node)
        test_capture_flow(node, key)
        test_refusals(node, key)
        test_dsa(node, tmp, dsa_pem, dsa_cnri, pass_file)
        check(node.alive(), "node alive")
        check(node.stop() == 0, "clean exit")
    finally:
        ret = finish(nodes, tmp, "test_admin_pubkey")
    return ret


if __name__ == "__main__":
    sys.exit(main())
