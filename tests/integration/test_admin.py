#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Registration over the Handle protocol against the real idnoded (python3 stdlib only).

Replays the exact request bytes of the CNRI hdllib 9.2 captures (tests/captures/java-hdllib-*-
seckey-tcp-1-request.hex: create, add value, modify value, remove value, list handles, delete,
home prefix) with fresh request ids, answers each RC 402 challenge the way hdllib does (HS_SECKEY,
PBKDF2-HMAC-SHA1, 10000 iterations, on a NEW TCP connection with the challenge's session id), and
checks the reply and the store afterwards (by resolving). Then the IDIS id-pointer flow (site info,
OC 2001 login with a client-chosen session id, the answer on the same connection, then writes on
that connection without a challenge), and the refusals: wrong secret, expired challenge, replayed
answer, an answer carrying another session's id, an identity that is no admin, an admin without the
needed permission bit, a foreign prefix: each refused with its code and nothing written.
Every wait is bounded; every process started here is stopped by PID in a finally block.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from admintest import *  # noqa: E402,F401,F403





RECORDS = [
    # the capture identity, 300:0.NA/88.100, secret "secret"
    {"handle": "0.NA/88.100", "values": [admin_value(ID_HANDLE, ID_INDEX), seckey_value("secret")]},
    # the prefix where the captures write: its admin is the capture identity
    {"handle": "0.NA/88.100.1", "values": [
        admin_value(ID_HANDLE, ID_INDEX),
        # a limited admin: may add values, not create handles
        admin_value("88.100.1/LIMITED", 300, perms="000001000000", at=101)]},
    {"handle": "88.100.1/NOBODY", "values": [seckey_value("pw")]},
    {"handle": "88.100.1/LIMITED", "values": [seckey_value("pw")]},
    {"handle": "88.100/listed-1", "values": [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://a"}}]},
    {"handle": "88.100/listed-2", "values": [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://b"}}]},
]




# ---- tests -----------------------------------------------------------------------------------

def test_capture_flows(node):
    # create 88.100.1/test (HS_ADMIN + URL)
    req = with_rid(load_hex("java-hdllib-create-seckey-tcp-1-request.hex"), 1001)
    ch, final = hdllib_flow(node, req)
    check(ch["rc"] == 402, "create: challenge (rc %d)" % ch["rc"])
    check(ch["op"] == 100 and ch["flags"] & 0x00800000, "challenge: original opcode, RD forced")
    check(ch["session"] != 0, "challenge: server-chosen session id")
    f = header(final)
    check(f["rc"] == 1 and f["op"] == 100, "create answered RC 1 op 100 (rc %d op %d: %s)" % (
        f["rc"], f["op"], error_text(final)))
    check(f["rid"] == 0x5000 + (ch["session"] & 0xfff), "reply carries the OC 200's request id")
    _, rest = skip_rd(f)
    check(rest[4:4 + struct.unpack(">I", rest[:4])[0]] == b"88.100.1/test",
          "create returns the handle")
    rc, vals = resolve_values(node, "88.100.1/test")
    check(rc == 1 and vals.get(1, ("", b""))[1] == b"http://example.org/" and 100 in vals,
          "created handle resolves with its values (%s)" % vals)

    # create again -> 101 exists
    ch, final = hdllib_flow(node, with_rid(req, 1002))
    check(header(final)["rc"] == 101, "create of an existing handle: RC 101 (%d)" %
          header(final)["rc"])

    # add value EMAIL at 2
    ch, final = hdllib_flow(node, with_rid(load_hex("java-hdllib-addvalue-seckey-tcp-1-request.hex"), 1003))
    check(header(final)["rc"] == 1, "add value: RC 1 (%s)" % error_text(final))
    rc, vals = resolve_values(node, "88.100.1/test")
    check(vals.get(2, ("", b""))[1] == b"a@example.org", "added value resolves")

    # modify URL at 1
    ch, final = hdllib_flow(node, with_rid(load_hex("java-hdllib-modifyvalue-seckey-tcp-1-request.hex"), 1004))
    check(header(final)["rc"] == 1, "modify value: RC 1 (%s)" % error_text(final))
    rc, vals = resolve_values(node, "88.100.1/test")
    check(vals.get(1, ("", b""))[1] == b"http://example.org/new", "modified value resolves")

    # remove index 2
    ch, final = hdllib_flow(node, with_rid(load_hex("java-hdllib-removevalue-seckey-tcp-1-request.hex"), 1005))
    check(header(final)["rc"] == 1, "remove value: RC 1 (%s)" % error_text(final))
    rc, vals = resolve_values(node, "88.100.1/test")
    check(2 not in vals and 1 in vals, "removed value is gone")

    # list handles of 0.NA/88.100 (streamed: read until CN is clear)
    req = with_rid(load_hex("java-hdllib-listhandles-seckey-tcp-1-request.hex"), 1006)
    ch = exchange(node, req)
    h, nonce, digest = challenge_of(ch)
    check(h["rc"] == 402, "list: challenge")
    names = []
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as c:
        c.sendall(answer_msg(h["session"], 0x6006, nonce, digest))
        fr = FrameReader(c)
        for _ in range(100):
            m = fr.frame(10)
            if m is None:
                break
            mh = header(m)
            if mh["rc"] != 1:
                check(False, "list: RC %d %s" % (mh["rc"], error_text(m)))
                break
            _, rest = skip_rd(mh)
            n = struct.unpack(">I", rest[:4])[0]
            pos = 4
            for _ in range(n):
                ln = struct.unpack(">I", rest[pos:pos + 4])[0]
                names.append(rest[pos + 4:pos + 4 + ln].decode())
                pos += 4 + ln
            if not mh["flags"] & 0x04000000:
                break
    check(sorted(names) == ["88.100/LISTED-1", "88.100/LISTED-2"] or
          sorted(n.upper() for n in names) == ["88.100/LISTED-1", "88.100/LISTED-2"],
          "list handles of 88.100: %s" % names)

    # delete
    ch, final = hdllib_flow(node, with_rid(load_hex("java-hdllib-delete-seckey-tcp-1-request.hex"), 1007))
    check(header(final)["rc"] == 1, "delete: RC 1 (%s)" % error_text(final))
    check(resolve_values(node, "88.100.1/test")[0] == 100, "deleted handle is not found")

    # home prefix 0.NA/88.100 (server admin only: the capture identity is one in this config)
    ch, final = hdllib_flow(node, with_rid(load_hex("java-hdllib-homeprefix-seckey-tcp-1-request.hex"), 1008))
    check(header(final)["rc"] == 1, "home prefix: RC 1 (%s)" % error_text(final))




def test_refusals(node):
    # wrong secret -> 403, nothing written
    ch, final = hdllib_flow(node, create_msg("88.100.1/R1", 2001), secret=b"wrong")
    check(header(final)["rc"] == 403, "wrong secret: RC 403 (%d)" % header(final)["rc"])
    check(resolve_values(node, "88.100.1/R1")[0] == 100, "wrong secret: nothing written")

    # replayed answer -> the second gets 405 (single use)
    ch = exchange(node, create_msg("88.100.1/R2", 2002))
    h, nonce, digest = challenge_of(ch)
    ans = answer_msg(h["session"], 2003, nonce, digest)
    first = header(exchange(node, ans))
    again = header(exchange(node, ans))
    check(first["rc"] == 1 and again["rc"] == 405, "replayed answer: %d then %d" % (
        first["rc"], again["rc"]))

    # an answer for another session: signed over challenge A, sent with B's id -> 403
    ha, na, da = challenge_of(exchange(node, create_msg("88.100.1/R3", 2004)))
    hb, nb, db = challenge_of(exchange(node, create_msg("88.100.1/R4", 2005)))
    r = header(exchange(node, answer_msg(hb["session"], 2006, na, da)))
    check(r["rc"] == 403, "answer for another session: RC 403 (%d)" % r["rc"])
    check(resolve_values(node, "88.100.1/R4")[0] == 100, "other session: nothing written")

    # unknown session -> 405
    r = header(exchange(node, answer_msg(0x1234567, 2007, nb, db)))
    check(r["rc"] == 405, "unknown session: RC 405 (%d)" % r["rc"])

    # an identity that is no admin -> 400
    ch, final = hdllib_flow(node, create_msg("88.100.1/R5", 2008), secret=b"pw",
                            ident="88.100.1/NOBODY", index=300)
    check(header(final)["rc"] == 400, "non-admin: RC 400 (%d %s)" % (header(final)["rc"],
                                                                   error_text(final)))
    check(resolve_values(node, "88.100.1/R5")[0] == 100, "non-admin: nothing written")

    # an admin without ADD_HANDLE -> 400
    ch, final = hdllib_flow(node, create_msg("88.100.1/R6", 2009), secret=b"pw",
                            ident="88.100.1/LIMITED", index=300)
    check(header(final)["rc"] == 400, "admin without the permission: RC 400 (%d %s)" % (
        header(final)["rc"], error_text(final)))
    check(resolve_values(node, "88.100.1/R6")[0] == 100, "no permission: nothing written")

    # a foreign prefix -> 301 before any challenge
    r = header(exchange(node, create_msg("99.999/R7", 2010)))
    check(r["rc"] == 301, "foreign prefix: RC 301 (%d)" % r["rc"])

    # unauthenticated OC 200 body garbage -> protocol error, nothing else
    r = header(exchange(node, message(200, b"\x00\x00", session=5, rid=2011)))
    check(r["rc"] in (4, 405), "malformed answer refused (%d)" % r["rc"])


def test_expired(node):
    ch = exchange(node, create_msg("88.100.1/EXP", 3001))
    h, nonce, digest = challenge_of(ch)
    time.sleep(2.5)  # auth_timeout_ms = 1000 in this node's config; expiry checked on use
    r = header(exchange(node, answer_msg(h["session"], 3002, nonce, digest)))
    check(r["rc"] == 405, "expired challenge: RC 405 (%d)" % r["rc"])
    check(resolve_values(node, "88.100.1/EXP")[0] == 100, "expired: nothing written")


def test_idis_login(node):
    sid = 10001
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as c:
        fr = FrameReader(c)
        c.sendall(message(2, s("/"), session=sid, rid=2, version=(2, 10)))
        check(header(fr.frame(10))["rc"] == 1, "IDIS: site info")
        login = message(2001, s(ID_HANDLE) + struct.pack(">I", ID_INDEX), session=sid, rid=3,
                        flags=0x10800000, version=(2, 10))
        c.sendall(login)
        ch = fr.frame(10)
        h, nonce, digest = challenge_of(ch)
        check(h["rc"] == 402 and h["session"] == sid and h["op"] == 2001,
              "IDIS: login challenged with the client's session id (rc %d sid %d)" % (
                  h["rc"], h["session"]))
        c.sendall(answer_msg(sid, 4, nonce, digest, version=(2, 10)))
        r = header(fr.frame(10))
        check(r["rc"] == 1 and r["op"] == 2001 and r["rid"] == 4, "IDIS: login succeeded (%d)" %
              r["rc"])
        # pipelined creates on the logged-in connection: no challenge, answers by request id
        for i in range(5):
            c.sendall(create_msg("88.100.1/IDIS-%d" % i, 100 + i, session=sid, version=(2, 10)))
        got = {}
        for _ in range(5):
            m = fr.frame(10)
            mh = header(m)
            got[mh["rid"]] = mh["rc"]
        check(got == dict((100 + i, 1) for i in range(5)), "IDIS: 5 pipelined creates: %s" % got)
        # another session id on this connection is not logged in: challenged
        c.sendall(create_msg("88.100.1/IDIS-X", 200, session=sid + 1, version=(2, 10)))
        check(header(fr.frame(10))["rc"] == 402, "IDIS: other session id challenged")
    for i in range(5):
        check(resolve_values(node, "88.100.1/IDIS-%d" % i)[0] == 1, "IDIS-%d stored" % i)


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-admin-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        data = os.path.join(tmp, "data.jsonl")
        with open(data, "w") as f:
            for rec in RECORDS:
                f.write(json.dumps(rec) + "\n")
        imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", "--home",
                              "88.100", data], capture_output=True, timeout=60)
        check(imp.returncode == 0, "import: %s" % imp.stderr.decode(errors="replace"))
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write("server_admin = 300:0.NA/88.100\nauth_timeout_ms = 1000\n")
        node = Node(tmp, db, extra=["--home", "88.100"], conf=conf, workers=2)
        nodes.append(node)
        test_capture_flows(node)
        test_refusals(node)
        test_idis_login(node)
        test_expired(node)
        check(node.alive(), "node alive")
        rc = node.stop()
        check(rc == 0, "clean exit (rc %s)" % rc)
    finally:
        ret = finish(nodes, tmp, "test_admin")
    return ret


if __name__ == "__main__":
    sys.exit(main())
