#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The Handle.Net REST administration over HTTPS against the real idnoded (python3 stdlib ssl,
certificates from certs/make-dev-certs.sh, openssl(1) for RSA signatures).

Replays the real clients' requests (tests/captures/*-rest.requests.hex) over HTTPS and checks
each status and the store after it:
  - EUDAT pyhandle: all twelve requests on one keep-alive connection, byte for byte (Basic
    `300%3A0.NA/88.100:secret`): resolve, create (201), modify (PUT ?index=2), remove a value
    (DELETE ?index=2), delete;
  - handle-net-node: each call a new connection that opens a session (POST /api/sessions/) and
    authenticates it with HS_PUBKEY (POST /api/sessions/this, `Authorization: Handle ...`); the
    captured sessionId and signature are replaced by this run's (the signature, over our
    nonce and the captured cnonce, is made with tests/data/admpriv.pem; the key index becomes
    301 because index 300 holds the Basic user's HS_SECKEY here); get, create, delete;
  - CodeObia: its session never authenticates, so its create is refused 401 and nothing is
    written; the same body sent in an authenticated session is accepted.
Refusals, each with nothing written: no credentials (401 + WWW-Authenticate), a wrong password
(401), credentials over plain HTTP (403), an unknown session (401), a bad session signature
(401), another manufacturer's prefix (403, RC 400), a prefix not homed here (400, RC 301).
Reading non-public values with credentials (READ_VALUE) and without. The audit trail names
the transport (https) and the peer. On a second node with short limits: an expired session
(401, nothing written), the per-source and node-wide session bounds (503), credentials over
plain HTTP from loopback when http_auth_plain_loopback allows them (audited as http), a write that
waits for its commit longer than the idle timeout, its answer in order before the pipelined
GET behind it. Every wait is bounded; every node started here is stopped by PID.
"""
import base64
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from admintest import admin_value, seckey_value  # noqa: E402
from tlstest import *  # noqa: E402,F401,F403

DATA = os.path.join(SRC, "tests", "data")
PUBKEY_PEM = open(os.path.join(DATA, "admpub.pem")).read()
PRIVKEY = os.path.join(DATA, "admpriv.pem")


def vlist_value(refs, at=200):
    return {"index": at, "type": "HS_VLIST",
            "data": {"format": "vlist", "value": [{"handle": h, "index": i} for h, i in refs]}}


RECORDS = [
    # the capture identity: 300 HS_SECKEY "secret" (pyhandle's Basic), 301 HS_PUBKEY
    # (handle-net-node's sessions; a server admin in this node's configuration)
    {"handle": "0.NA/88.100", "values": [
        admin_value("0.NA/88.100", 300), seckey_value("secret"),
        {"index": 301, "type": "HS_PUBKEY", "data": {"format": "string", "value": PUBKEY_PEM}},
        {"index": 2, "type": "DESC", "data": {"format": "string", "value": "manufacturer A"}}]},
    # the prefix: its admin is the group at index 200, which holds both keys (pyhandle's
    # records name 0.NA/88.100.1:200 as their HS_ADMIN)
    {"handle": "0.NA/88.100.1", "values": [
        admin_value("0.NA/88.100.1", 200),
        vlist_value([("0.NA/88.100", 300), ("0.NA/88.100", 301)])]},
    {"handle": "88.100.1/test", "values": [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.org/t"}}]},
    # another manufacturer's prefix, homed on the same node
    {"handle": "0.NA/88.200", "values": [admin_value("0.NA/88.200", 300),
                                         seckey_value("other")]},
    {"handle": "0.NA/88.100.2", "values": [admin_value("0.NA/88.200", 300)]},
]


def values_of(node, handle):
    """(status, {index: (type, data)}) of a plain REST GET (public values)."""
    st, _, body = node.get("/api/handles/" + handle)
    if st != 200:
        return st, {}
    vals = json.loads(body)["values"]
    return st, dict((v["index"], (v["type"], v["data"]["value"] if isinstance(v["data"], dict)
                                  else v["data"])) for v in vals)


def basic(user, secret):
    return "Basic " + base64.b64encode(("%s:%s" % (user, secret)).encode()).decode()


def new_session(ctx, port, auth=None):
    h = {"Authorization": auth} if auth else {}
    r = https(ctx, port, request("POST", "/api/sessions", h))
    check(r and r[0] == 201, "POST /api/sessions: 201 (%s)" % (r and r[0]))
    check(r and r[1].get("location") == "/api/sessions/this", "session Location header")
    return json.loads(r[2])


def session_auth_header(tmp, sess, cnonce_b64, ident="301:0.NA/88.100", key=PRIVKEY):
    """handle-net-node's header: RSA-SHA256 over the server's nonce || the client's cnonce."""
    sig = rsa_sign_sha256(key, base64.b64decode(sess["nonce"]) + base64.b64decode(cnonce_b64),
                          tmp)
    return ('Handle version="0", sessionId="%s", cnonce="%s", id="%s", type="HS_PUBKEY", '
            'alg="sha256", signature="%s"' % (sess["sessionId"], cnonce_b64, ident,
                                              base64.b64encode(sig).decode()))


# ---- the captures ----------------------------------------------------------------------------

def test_pyhandle(node, ctx):
    reqs = split_requests(load_hex("pyhandle-rest.requests.hex"))
    check(len(reqs) == 12, "pyhandle capture: 12 requests (%d)" % len(reqs))
    want = [200, 200, 404, 201, 200, 200, 200, 200, 200, 200, 200, 200]
    after = {
        3: lambda: values_of(node, "88.100.1/new")[0] == 404,
        4: lambda: values_of(node, "88.100.1/new")[1].get(1) == ("URL", "http://example.org/new"),
        7: lambda: values_of(node, "88.100.1/new")[1].get(2) == ("EMAIL", "a@example.org"),
        10: lambda: 2 not in values_of(node, "88.100.1/new")[1] and
        1 in values_of(node, "88.100.1/new")[1],
        12: lambda: values_of(node, "88.100.1/new")[0] == 404,
    }
    with tls_socket(ctx, node.http) as s:  # pyhandle keeps one session (keep-alive)
        rd = HttpReader(s)
        for i, (head, body) in enumerate(reqs, 1):
            s.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
            r = rd.response(15)
            line = head.split("\r\n")[0]
            check(r is not None and r[0] == want[i - 1], "pyhandle %d %s: %s (want %d)" % (
                i, line, r and r[0], want[i - 1]))
            if r and r[0] >= 400 and i != 3:
                print("  body:", r[2][:300])
            if i in after:
                check(after[i](), "pyhandle %d: the store after it" % i)
            if r and r[1].get("content-type", "").startswith("application/json") and r[2]:
                j = json.loads(r[2])
                if i in (4, 7, 10, 12):
                    check(j == {"responseCode": 1, "handle": "88.100.1/new"},
                          "pyhandle %d answer entity %s" % (i, j))
    # the HS_ADMIN pyhandle wrote (index given as a string) is stored as an admin value
    # (checked through its effect: the later modify and delete were authorized by it)


def test_handlenetnode(node, ctx, tmp):
    reqs = split_requests(load_hex("handlenetnode-rest.requests.hex"))
    check(len(reqs) == 9, "handle-net-node capture: 9 requests (%d)" % len(reqs))
    sess = None
    results = []
    for i, (head, body) in enumerate(reqs, 1):
        m = re.search(r'Authorization: (Handle [^\r\n]*)', head)
        put = {}
        if head.startswith("POST /api/sessions/ "):
            raw = rebuild(head, body)
        elif m and "cnonce" in m.group(1):
            cnonce = re.search(r'cnonce="([^"]*)"', m.group(1)).group(1)
            put["Authorization"] = session_auth_header(tmp, sess, cnonce)
            raw = rebuild(head, body, drop=["authorization"], put=put)
        elif m:
            put["Authorization"] = 'Handle version="0", sessionId="%s"' % sess["sessionId"]
            raw = rebuild(head, body, drop=["authorization"], put=put)
        else:
            raw = rebuild(head, body)
        r = https(ctx, node.http, raw)
        results.append(r and r[0])
        if head.startswith("POST /api/sessions/ ") and r and r[0] == 201:
            sess = json.loads(r[2])
            check(len(base64.b64decode(sess["nonce"])) == 16 and len(sess["sessionId"]) == 32,
                  "handle-net-node %d: a session id and a 16-byte nonce" % i)
        elif "/api/sessions/this" in head.split("\r\n")[0] and r:
            j = json.loads(r[2])
            check(j.get("authenticated") is True and j.get("id") == "301:0.NA/88.100",
                  "handle-net-node %d: session authenticated (%s)" % (i, j))
        if i == 6:
            check(values_of(node, "88.100.1/new")[1].get(1) == ("URL", "http://example.org/new"),
                  "handle-net-node create: stored")
        if i == 9:
            check(values_of(node, "88.100.1/new")[0] == 404, "handle-net-node delete: gone")
    check(results == [201, 200, 200, 201, 200, 201, 201, 200, 200],
          "handle-net-node statuses %s" % results)


def test_codeobia(node, ctx, tmp):
    reqs = split_requests(load_hex("codeobia-rest.requests.hex"))
    check(len(reqs) == 2, "CodeObia capture: 2 requests")
    with tls_socket(ctx, node.http) as s:  # keep-alive, as axios there
        rd = HttpReader(s)
        s.sendall(rebuild(*reqs[0]))
        r = rd.response(10)
        check(r and r[0] == 201, "CodeObia POST /api/sessions: 201")
        sess = json.loads(r[2])
        head, body = reqs[1]
        s.sendall(rebuild(head, body, drop=["authorization"],
                          put={"Authorization": 'Handle sessionId="%s"' % sess["sessionId"]}))
        r = rd.response(10)
        check(r and r[0] == 401 and "www-authenticate" in r[1],
              "CodeObia write in an unauthenticated session: 401 (%s)" % (r and r[0]))
    check(values_of(node, "88.100/cc5a88")[0] == 404, "CodeObia: nothing written")
    # the same body in an authenticated session: its values (HS_ADMIN with "index":"300",
    # legacyByteLength) are accepted
    sess = new_session(ctx, node.http)
    r = https(ctx, node.http, request("POST", "/api/sessions/this", {
        "Authorization": session_auth_header(tmp, sess, base64.b64encode(b"c" * 16).decode())}))
    check(r and r[0] == 200, "session authenticated for the CodeObia body")
    r = https(ctx, node.http, rebuild(head, body, drop=["authorization"], put={
        "Authorization": 'Handle sessionId="%s"' % sess["sessionId"]}))
    check(r and r[0] == 201, "CodeObia body in an authenticated session: 201 (%s %s)" % (
        r and r[0], r and r[2][:200]))
    st, vals = values_of(node, "88.100/cc5a88")
    check(st == 200 and vals.get(1) == ("URL", "http://example.org/x") and 100 in vals,
          "CodeObia record stored with its HS_ADMIN: %s" % vals)


# ---- refusals --------------------------------------------------------------------------------

def put_rec(handle, url="https://example.org/r"):
    return json.dumps({"values": [{"index": 1, "type": "URL", "data": url},
                                  admin_value("0.NA/88.100", 300)]}).encode()


def test_refusals(node, ctx):
    good = basic("300%3A0.NA%2F88.100", "secret")

    def put(handle, hdrs, query="", plain=False):
        raw = request("PUT", "/api/handles/%s%s" % (handle, query), hdrs, put_rec(handle))
        if plain:
            with socket.create_connection(("127.0.0.1", node.http), timeout=10) as s:
                return exchange(s, raw)
        return https(ctx, node.http, raw)

    r = put("88.100.1/R1", {})
    check(r and r[0] == 401 and r[1].get("www-authenticate", "").startswith("Basic"),
          "no credentials: 401 with WWW-Authenticate (%s)" % (r and r[0]))
    check(json.loads(r[2])["responseCode"] == 402, "no credentials: responseCode 402")
    r = put("88.100.1/R2", {"Authorization": basic("300%3A0.NA%2F88.100", "wrong")})
    check(r and r[0] == 401, "wrong password: 401 (%s)" % (r and r[0]))
    r = put("88.100.1/R3", {"Authorization": good}, plain=True)
    check(r and r[0] == 403, "credentials over plain HTTP: 403 (%s)" % (r and r[0]))
    r = put("88.100.1/R4", {}, plain=True)
    check(r and r[0] == 403, "no credentials over plain HTTP: 403 (%s)" % (r and r[0]))
    r = put("88.100.1/R5", {"Authorization": 'Handle sessionId="%s"' % ("ab" * 16)})
    check(r and r[0] == 401, "unknown session: 401 (%s)" % (r and r[0]))
    r = put("88.100.2/R6", {"Authorization": good})
    check(r and r[0] == 403 and json.loads(r[2])["responseCode"] == 400,
          "another manufacturer's prefix: 403 / RC 400 (%s %s)" % (r and r[0], r and r[2][:120]))
    r = put("99.999/R7", {"Authorization": good})
    check(r and r[0] == 400 and json.loads(r[2])["responseCode"] == 301,
          "a prefix not homed here: 400 / RC 301 (%s)" % (r and r[0]))
    for h in ("88.100.1/R1", "88.100.1/R2", "88.100.1/R3", "88.100.1/R4", "88.100.1/R5",
              "88.100.2/R6"):
        check(values_of(node, h)[0] == 404, "%s: nothing written" % h)
    # the other manufacturer itself may write there
    r = put("88.100.2/R8", {"Authorization": basic("300%3A0.NA%2F88.200", "other")},
            query="?overwrite=false")
    check(r and r[0] == 201, "the prefix's own admin: 201 (%s)" % (r and r[0]))
    # a bad session signature: 401, the session stays unauthenticated
    sess = new_session(ctx, node.http)
    hdr = session_auth_header(node.tmp, sess, base64.b64encode(b"x" * 16).decode())
    hdr = re.sub(r'signature="[^"]{8}', 'signature="AAAAAAAA', hdr)
    r = https(ctx, node.http, request("PUT", "/api/sessions/this", {"Authorization": hdr}))
    check(r and r[0] == 401, "bad signature: 401 (%s)" % (r and r[0]))
    r = https(ctx, node.http, request("GET", "/api/sessions/this", {
        "Authorization": 'Handle sessionId="%s"' % sess["sessionId"]}))
    check(r and r[0] == 200 and json.loads(r[2]).get("authenticated") is False,
          "after the bad signature the session is not authenticated")
    # sessions need HTTPS; /api/sessions/other is forbidden; DELETE ends a session
    st, _, _ = node.get("/api/sessions")
    check(st == 403, "sessions over plain HTTP: 403 (%s)" % st)
    r = https(ctx, node.http, request("GET", "/api/sessions/other"))
    check(r and r[0] == 403, "/api/sessions/other: 403")
    r = https(ctx, node.http, request("DELETE", "/api/sessions/this", {
        "Authorization": 'Handle sessionId="%s"' % sess["sessionId"]}))
    check(r and r[0] == 204, "DELETE /api/sessions/this: 204 (%s)" % (r and r[0]))
    r = https(ctx, node.http, request("GET", "/api/sessions/this", {
        "Authorization": 'Handle sessionId="%s"' % sess["sessionId"]}))
    check(r and r[0] == 403, "a deleted session: 403 (%s)" % (r and r[0]))
    # malformed entities and parameters
    r = https(ctx, node.http, request("PUT", "/api/handles/88.100.1/R9", {"Authorization": good},
                                      b"{not json"))
    check(r and r[0] == 400, "not JSON: 400")
    r = https(ctx, node.http, request("PUT", "/api/handles/88.100.1/R9?index=5",
                                      {"Authorization": good}, put_rec("x")))
    check(r and r[0] == 400, "index parameters not the entity's: 400")
    r = https(ctx, node.http, request("PUT", "/api/handles/88.100.1/R9", {"Authorization": good},
                                      json.dumps({"handle": "88.100.1/other",
                                                  "values": []}).encode()))
    check(r and r[0] == 400, "entity for another handle: 400")
    check(values_of(node, "88.100.1/R9")[0] == 404, "R9: nothing written")


def test_read_private(node, ctx):
    good = basic("300%3A0.NA%2F88.100", "secret")
    types = lambda r: sorted(v["type"] for v in json.loads(r[2])["values"])  # noqa: E731
    r = https(ctx, node.http, request("GET", "/api/handles/0.NA/88.100"))
    check(r and "HS_SECKEY" not in types(r), "without credentials: no HS_SECKEY")
    r = https(ctx, node.http, request("GET", "/api/handles/0.NA/88.100?auth=true",
                                      {"Authorization": good}))
    check(r and r[0] == 200 and "HS_SECKEY" in types(r),
          "with READ_VALUE credentials: HS_SECKEY too (%s)" % (r and types(r)))
    r = https(ctx, node.http, request("GET", "/api/handles/0.NA/88.100?publicOnly=true",
                                      {"Authorization": good}))
    check(r and "HS_SECKEY" not in types(r), "publicOnly=true: no HS_SECKEY")
    r = https(ctx, node.http, request("GET", "/api/handles/0.NA/88.100",
                                      {"Authorization": basic("300%3A0.NA%2F88.200", "other")}))
    check(r and r[0] == 200 and "HS_SECKEY" not in types(r),
          "an identity without READ_VALUE there: public values only")


def test_audit(node, db):
    out = subprocess.run([IDNODE, "audit", "--db", db, "--json"], capture_output=True,
                         timeout=60)
    check(out.returncode == 0, "idnode audit")
    recs = [json.loads(ln) for ln in out.stdout.decode().splitlines() if ln.strip()]
    mine = [r for r in recs if r["handle"] == "88.100.1/new"]
    check(len(mine) >= 6, "audit: the REST writes of 88.100.1/new (%d)" % len(mine))
    check(all(r["transport"] == "https" and r["peer"].startswith("127.0.0.1") for r in mine),
          "audit: transport https and the peer address (%s)" %
          set((r["transport"], r["peer"]) for r in mine))
    ops = [r["op"] for r in mine]
    check("CREATE_HANDLE" in ops and "ADD_VALUE" in ops and "REMOVE_VALUE" in ops and
          "DELETE_HANDLE" in ops, "audit: create, add, remove, delete (%s)" % ops)
    refused = [r for r in recs if r["handle"] == "88.100.2/R6"]
    check(refused and refused[0]["rcode"] == 400 and refused[0]["admin"] == "0.NA/88.100",
          "audit: the refused write on another manufacturer's prefix")


def test_bench_writes(node, tmp, ca):
    """idnode-bench's write modes against the node: REST creates over HTTPS (Basic) and the
    binary path's (IDIS login per connection), as bench/rest_write.sh runs them."""
    bench = os.path.join(BUILD, "idnode-bench")
    secret = os.path.join(tmp, "secret")
    with open(secret, "w") as f:
        f.write("secret")
    for name, target, extra in (("https", node.http, ["--proto", "https", "--cacert", ca]),
                                ("tcp", node.port, ["--proto", "tcp"])):
        r = subprocess.run([bench, "-s", "127.0.0.1:%d" % target] + extra +
                           ["--op", "create", "--auth", "300:0.NA/88.100", "--seckey-file",
                            secret, "--pattern", "88.100.1/bench-%s-%%s" % name, "--range",
                            "1-1000", "-n", "30", "-d", "20", "--conns", "4", "--timeout",
                            "10000", "--json"], capture_output=True, timeout=120)
        check(r.returncode == 0, "idnode-bench %s: exit %d %s" % (name, r.returncode,
                                                                 r.stderr.decode()[-300:]))
        try:
            j = json.loads(r.stdout)
        except ValueError:
            j = {}
        w = j.get("write", {})
        check(w.get("acks") == j.get("completed") and w.get("acks", 0) >= 30,
              "idnode-bench %s: every create acknowledged (%s of %s)" % (
                  name, w.get("acks"), j.get("completed")))
        if name == "https":
            check(j.get("tls_handshakes") == 4, "idnode-bench https: one handshake per connection")
        check(values_of(node, "88.100.1/bench-%s-1" % name)[0] == 200,
              "idnode-bench %s: the first key was created" % name)


# ---- the second node: expiry, bounds, waiting ----------------------------------------------

def test_limits(node, ctx, tmp):
    good = basic("300%3A0.NA%2F88.100", "secret")
    # expired: authenticated, then unused past rest_session_idle_ms
    sess = new_session(ctx, node.http)
    r = https(ctx, node.http, request("PUT", "/api/sessions/this", {
        "Authorization": session_auth_header(tmp, sess, base64.b64encode(b"e" * 16).decode())}))
    check(r and r[0] == 200, "session authenticated")
    time.sleep(2.5)  # rest_session_idle_ms = 1000
    r = https(ctx, node.http, request("PUT", "/api/handles/88.100.1/EXP", {
        "Authorization": 'Handle sessionId="%s"' % sess["sessionId"]}, put_rec("x")))
    check(r and r[0] == 401, "expired session: 401 (%s)" % (r and r[0]))
    check(values_of(node, "88.100.1/EXP")[0] == 404, "expired session: nothing written")

    # bounds: 3 per source, 5 in all
    def post(src):
        with tls_socket(ctx, node.http, src=src) as s:
            r = exchange(s, request("POST", "/api/sessions"))
            return r and r[0]
    a = [post("127.0.0.1") for _ in range(4)]
    b = [post("127.0.0.2") for _ in range(3)]
    check(a == [201, 201, 201, 503], "3 sessions per source, then 503: %s" % a)
    check(b == [201, 201, 503], "5 sessions node-wide, then 503: %s" % b)
    check("rest_sessions_max or rest_sessions_per_source" in node.logtext(), "bound logged")
    time.sleep(2.5)  # rest_session_unauth_ms = 1000: they expire
    check(post("127.0.0.3") == 201, "after expiry a new session is made")

    # http_auth_plain_loopback = yes: Basic over plain HTTP from loopback is taken, audited as
    # transport http
    with socket.create_connection(("127.0.0.1", node.http), timeout=10) as s:
        r = exchange(s, request("PUT", "/api/handles/88.100.1/PLAIN?overwrite=false",
                                {"Authorization": good}, put_rec("p")))
    check(r and r[0] == 201, "plain HTTP from loopback, allowed by the config: 201 (%s)" % (
        r and r[0]))
    out = subprocess.run([IDNODE, "audit", "--db", node.db, "--handle", "88.100.1/PLAIN",
                          "--json"], capture_output=True, timeout=60)
    recs = [json.loads(ln) for ln in out.stdout.decode().splitlines() if ln.strip()]
    check(recs and recs[-1]["transport"] == "http" and recs[-1]["rcode"] == 1,
          "audited with transport http (%s)" % [(x["transport"], x["rcode"]) for x in recs])

    # a write that waits for its commit (write_batch_wait_us 600 ms, past the 300 ms idle
    # timeout) is answered, in order, before the GET pipelined behind it
    with tls_socket(ctx, node.http) as s:
        t0 = time.time()
        s.sendall(request("PUT", "/api/handles/88.100.1/WAIT?overwrite=false",
                          {"Authorization": good}, put_rec("w")) +
                  request("GET", "/api/handles/88.100.1/WAIT"))
        rd = HttpReader(s)
        r1, r2 = rd.response(15), rd.response(15)
        check(r1 and r1[0] == 201, "waiting write answered 201 (%s)" % (r1 and r1[0]))
        check(r2 and r2[0] == 200, "the GET behind it sees the write (%s)" % (r2 and r2[0]))
        check(time.time() - t0 >= 0.3, "the write waited past the idle timeout")


def start_node(tmp, name, db, certs, extra):
    conf = os.path.join(tmp, name + ".conf")
    with open(conf, "w") as f:
        f.write("tls_cert = %s/server.pem\ntls_key = %s/server.key\n"
                "server_admin = 301:0.NA/88.100\n%s" % (certs, certs, extra))
    node = Node(tmp, db, extra=["--home", "88.100", "--home", "88.100.2"], conf=conf)
    node.tmp = tmp
    node.db = db
    return node


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-rest-")
    nodes = []
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        ctx = client_ctx(os.path.join(certs, "ca.pem"))
        dbs = []
        for name in ("db", "db2"):
            db = os.path.join(tmp, name)
            path = os.path.join(tmp, "data.jsonl")
            with open(path, "w") as f:
                for rec in RECORDS:
                    f.write(json.dumps(rec) + "\n")
            imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", "--home",
                                  "88.100", "--home", "88.100.2", path],
                                 capture_output=True, timeout=60)
            check(imp.returncode == 0, "import: %s" % imp.stderr.decode(errors="replace"))
            dbs.append(db)
        node = start_node(tmp, "main", dbs[0], certs, "")
        nodes.append(node)
        test_pyhandle(node, ctx)
        test_handlenetnode(node, ctx, tmp)
        test_codeobia(node, ctx, tmp)
        test_refusals(node, ctx)
        test_read_private(node, ctx)
        test_audit(node, dbs[0])
        test_bench_writes(node, tmp, os.path.join(certs, "ca.pem"))
        check(node.alive(), "node alive")
        node2 = start_node(tmp, "limits", dbs[1], certs,
                           "rest_session_idle_ms = 1000\nrest_session_unauth_ms = 1000\n"
                           "rest_sessions_per_source = 3\nrest_sessions_max = 5\n"
                           "tcp_idle_timeout_ms = 300\nwrite_batch_wait_us = 600000\n"
                           "http_auth_plain_loopback = yes\n")
        nodes.append(node2)
        test_limits(node2, ctx, tmp)
        check(node2.alive(), "second node alive")
        for n in nodes:
            rc = n.stop()
            check(rc == 0, "clean exit (rc %s)" % rc)
    finally:
        ret = finish(nodes, tmp, "test_rest_admin")
    return ret


if __name__ == "__main__":
    sys.exit(main())
