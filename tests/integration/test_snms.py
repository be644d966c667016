#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The SNMS-compatible API and metadata templates against the real idnoded (python3 stdlib only).

A store with the demo data, the seed templates (pump, gearbox, valve, motor) and a second
manufacturer's prefix 88.200.1; two SNMS users (acme acts as 300:0.NA/88.100.1, other as
300:0.NA/88.200.1). Checked: login (wrong password, unknown user, missing fields, rate limit
shape), every data endpoint (create, detail, update, delete, the batches with per-item results),
idempotent create (a retry writes nothing: no audit entry, no txlog record), a 2000-item
batchCreate with invalid items, the batch bound, an oversized body (413), unauthenticated and
bad-token requests, another manufacturer's prefix (-3, nothing written), the template endpoints
(list, get, create, update that disables an item, delete), an expired token (a second node with
a one-second token lifetime), and acceptance c: one registration that breaks the demo pump
template refused with the same message on the SNMS API, the binary path (`idnode create`),
`idnode import`, and the REST PUT (Basic credentials, plain HTTP from loopback allowed);
SNMS logins over plain HTTP refused where that is not allowed, and HTTPS logins and writes.
Every wait is bounded; every process started here is stopped by PID in a finally block.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403
from admintest import admin_value, seckey_value  # noqa: E402
from tlstest import client_ctx, make_certs  # noqa: E402

OTHER = [
    {"handle": "0.NA/88.200.1", "values": [admin_value("0.NA/88.200.1", 300),
                                           seckey_value("other-secret")]},
]
# the registration that breaks the pump template: FLOW_RATE (index 2005, required) missing
BAD_PUMP_MSG = "Template 88.100.1:pump-1.0: index 2005 (FLOW_RATE) is required"


def sv(index, typ, value):
    return {"index": index, "type": typ, "data": {"format": "string", "value": value},
            "auth": ""}


def pump_values(model="ISG80-160", flow="50", drop=()):
    vals = [sv(2000, "PRODUCT_NAME", "管道离心泵"), sv(2001, "MODEL", model),
            sv(2003, "PRODUCTION_DATE", "2025-03-01"), sv(2004, "MANUFACTURER", "ACME 泵业"),
            sv(2005, "FLOW_RATE", flow), sv(2006, "HEAD", "32")]
    return [v for v in vals if v["index"] not in drop]


def gearbox_item(i, bad=False):
    vals = [sv(2000, "PRODUCT_NAME", "减速机"), sv(2001, "MODEL", "zly" if bad else "ZLY%d" % i),
            sv(2003, "PRODUCTION_DATE", "2025-01-01"), sv(2004, "MANUFACTURER", "ACME"),
            sv(2005, "RATIO", "10"), sv(2006, "TORQUE", "100")]
    return {"handle": "88.100.1/GB-%06d" % i, "templateVersion": "gearbox-1.0", "value": vals}


class Api:
    def __init__(self, node, tls=None):
        self.node = node
        self.token = None
        self.tls = tls  # an ssl.SSLContext: HTTPS on the node's http port

    def call(self, method, path, body=None, token=None, raw=None, timeout=60):
        if self.tls is not None:
            c = http.client.HTTPSConnection("127.0.0.1", self.node.http, timeout=timeout,
                                            context=self.tls)
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.node.http, timeout=timeout)
        try:
            h = {"Content-Type": "application/json"}
            tok = token if token is not None else self.token
            if tok:
                h["Authorization"] = "Bearer " + tok
            data = raw if raw is not None else (None if body is None else json.dumps(body))
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, {"raw": text.decode(errors="replace")}
        finally:
            c.close()

    def login(self, user, pw):
        st, j = self.call("POST", "/identity/token", {"username": user, "password": pw},
                          token="")
        if st == 200 and j.get("status") == 1:
            self.token = j["data"]["token"]
        return st, j


def audit_count(db):
    p = subprocess.run([IDNODE, "audit", "--db", db, "--json"], capture_output=True, timeout=60)
    check(p.returncode in (0, 1), "idnode audit: %s" % p.stderr[-300:])
    return len([l for l in p.stdout.splitlines() if l.strip()])


def rest_get(node, handle):
    st, _, body = node.get("/api/handles/" + handle)
    return st, (json.loads(body) if st == 200 else None)


# ---- tests ------------------------------------------------------------------------------------

def test_login(api):
    st, j = api.call("POST", "/identity/token", {"username": "acme", "password": "wrong"})
    check(st == 200 and j["status"] == -2 and j["message"] == "用户名/密码错误",
          "wrong password: %s" % j)
    st, j = api.call("POST", "/identity/token", {"username": "nobody", "password": "x"})
    check(j["status"] == -2 and j["data"] is None, "unknown user: %s" % j)
    st, j = api.call("POST", "/identity/token", {"username": "acme"})
    check(j["status"] == -2, "no password: %s" % j)
    st, j = api.call("POST", "/identity/token", raw="{not json")
    check(j["status"] == -2, "bad JSON body: %s" % j)
    st, j = api.call("GET", "/identity/token")
    check(st == 405 and j["status"] == -2, "GET token: %s %s" % (st, j))
    st, j = api.call("POST", "/identity/token/v1", {"username": "acme", "password": "x"})
    check(j["status"] == -2 and "not supported" in j["message"], "token/v1: %s" % j)
    st, j = api.call("GET", "/identityv2/nothing")
    check(st == 404 and j["status"] == -2, "unknown SNMS path: %s %s" % (st, j))
    st, j = api.login("acme", "acme-secret")
    check(j["status"] == 1 and len(j["data"]["token"]) == 64, "login: %s" % j)


def test_unauthenticated(api, node, db):
    a0 = audit_count(db)
    body = {"handle": "88.100.1/NOAUTH", "templateVersion": "pump-1.0", "value": pump_values()}
    st, j = api.call("POST", "/identityv2/data", body, token="")
    check(st == 200 and j["status"] == -1, "no token: %s" % j)
    st, j = api.call("POST", "/identityv2/data", body, token="0" * 64)
    check(j["status"] == -1, "unknown token: %s" % j)
    st, j = api.call("GET", "/identityv2/data/detail?handle=88.100.1/PUMP-2025-000001",
                     token="short")
    check(j["status"] == -1, "malformed token: %s" % j)
    check(rest_get(node, "88.100.1/NOAUTH")[0] == 404, "nothing created without a token")
    check(audit_count(db) == a0, "no audit entry without a token")


def test_single(api, node, db):
    h = "88.100.1/SNMS-PUMP-1"
    body = {"handle": h, "templateVersion": "pump-1.0", "value": pump_values()}
    st, j = api.call("POST", "/identityv2/data", body)
    check(j == {"message": "success", "status": 1, "data": True}, "create: %s" % j)
    st, j = api.call("GET", "/identityv2/data/detail?handle=" + h)
    check(j["status"] == 1 and j["data"]["templateVersion"] == "pump-1.0" and
          j["data"]["prefix"] == "88.100.1", "detail: %s" % j)
    vals = dict((v["index"], v) for v in j["data"]["value"])
    check(vals.get(2001, {}).get("data", {}).get("value") == "ISG80-160", "detail value 2001")
    check(vals.get(1001, {}).get("type") == "TEMPLATE", "detail: TEMPLATE at 1001")
    check(vals.get(100, {}).get("data", {}).get("value", {}).get("handle") == "0.NA/88.100.1",
          "the record's HS_ADMIN names the user's identity: %s" % vals.get(100))
    # a retried create of the same content: success, nothing written (no audit, no txlog)
    a0 = audit_count(db)
    st, j = api.call("POST", "/identityv2/data", body)
    check(j["status"] == 1, "retried create: %s" % j)
    check(audit_count(db) == a0, "retried create files no audit entry")
    body2 = dict(body, value=pump_values(model="ISG99-1"))
    st, j = api.call("POST", "/identityv2/data", body2)
    check(j["status"] == -2 and j["message"] == "标识已存在", "create over other content: %s" % j)
    # update: values by index replaced, checked against the template
    st, j = api.call("PUT", "/identityv2/data",
                     {"handle": h, "templateVersion": "pump-1.0",
                      "value": [sv(2006, "HEAD", "40")]})
    check(j["status"] == 1, "update: %s" % j)
    st, j = api.call("GET", "/identityv2/data/detail?handle=" + h)
    vals = dict((v["index"], v["data"]["value"]) for v in j["data"]["value"])
    check(vals.get(2006) == "40" and vals.get(2001) == "ISG80-160", "updated: %s" % vals)
    st, j = api.call("PUT", "/identityv2/data",
                     {"handle": h, "templateVersion": "pump-1.0",
                      "value": [sv(2006, "HEAD", "forty")]})
    check(j["status"] == -2 and
          j["message"] == "Template 88.100.1:pump-1.0: index 2006 (HEAD) is not a number",
          "update that breaks the template: %s" % j)
    st, j = api.call("PUT", "/identityv2/data",
                     {"handle": "88.100.1/NOPE", "templateVersion": "pump-1.0",
                      "value": [sv(2006, "HEAD", "1")]})
    check(j["status"] == -2 and j["message"] == "标识不存在", "update of nothing: %s" % j)
    # reserved indexes, bad shapes
    st, j = api.call("POST", "/identityv2/data",
                     {"handle": "88.100.1/R1", "templateVersion": "pump-1.0",
                      "value": [sv(1001, "TEMPLATE", "x")]})
    check(j["status"] == -2 and "1001" in j["message"], "index 1001 reserved: %s" % j)
    st, j = api.call("POST", "/identityv2/data", {"handle": "88.100.1/R2", "value": []})
    check(j["status"] == -2 and "templateVersion" in j["message"], "no version: %s" % j)
    st, j = api.call("POST", "/identityv2/data", [1, 2])
    check(j["status"] == -2, "array body for a single create: %s" % j)
    st, j = api.call("GET", "/identityv2/data/detail")
    check(j["status"] == -2 and "handle" in j["message"], "detail without handle: %s" % j)
    st, j = api.call("GET", "/identityv2/data/detail?handle=88.100.1/NOPE")
    check(j["status"] == -2 and j["message"] == "标识不存在", "detail of nothing: %s" % j)
    # delete
    st, j = api.call("DELETE", "/identityv2/data", {"handle": h})
    check(j["status"] == 1, "delete: %s" % j)
    st, j = api.call("DELETE", "/identityv2/data", {"handle": h})
    check(j["status"] == -2 and j["message"] == "标识不存在", "delete again: %s" % j)
    check(rest_get(node, h)[0] == 404, "deleted")


def test_other_manufacturer(api, other, node, db):
    a0 = audit_count(db)
    body = {"handle": "88.100.1/OTHERS", "templateVersion": "pump-1.0", "value": pump_values()}
    st, j = other.call("POST", "/identityv2/data", body)
    check(j["status"] == -3, "another manufacturer's prefix: %s" % j)
    check(rest_get(node, "88.100.1/OTHERS")[0] == 404, "nothing written for the other")
    st, j = other.call("DELETE", "/identityv2/data", {"handle": "88.100.1/PUMP-2025-000001"})
    check(j["status"] == -3, "another manufacturer deletes: %s" % j)
    check(rest_get(node, "88.100.1/PUMP-2025-000001")[0] == 200, "still there")
    st, j = api.call("POST", "/identityv2/data/batchCreate",
                     [{"handle": "88.200.1/X", "templateVersion": "v", "value": []}])
    check(j["status"] == 1 and j["data"][0]["code"] == -3, "acme on 88.200.1: %s" % j)
    # the refusals are in the audit trail (who tried), nothing else changed
    check(audit_count(db) == a0 + 3, "three refusals audited")
    # the other manufacturer works on its own prefix (no template there)
    st, j = other.call("POST", "/identityv2/data",
                       {"handle": "88.200.1/OWN", "templateVersion": "none-yet",
                        "value": [sv(2000, "NAME", "x")]})
    check(j["status"] == -2 and j["message"] == "Template 88.200.1:none-yet not found",
          "a version the prefix does not have: %s" % j)


def test_batches(api, node, db):
    # 2000 valid items: one answer with 2000 results; the same call again writes nothing
    items = [gearbox_item(i) for i in range(2000)]
    t0 = time.time()
    st, j = api.call("POST", "/identityv2/data/batchCreate", items)
    dt = time.time() - t0
    codes = [d["code"] for d in j.get("data") or []]
    check(st == 200 and j["status"] == 1 and len(codes) == 2000 and set(codes) == {1},
          "batch of 2000: %s" % (j.get("message"), ))
    check([d["handle"] for d in j["data"][:2]] == ["88.100.1/GB-000000", "88.100.1/GB-000001"],
          "results in request order")
    print("FIGURE snms batchCreate 2000 items: %.3f s (%.0f items/s)" % (dt, 2000 / dt))
    check(dt < 60, "batch answered (%.1f s)" % dt)
    a0 = audit_count(db)
    t0 = time.time()
    st, j = api.call("POST", "/identityv2/data/batchCreate", items)
    dt = time.time() - t0
    check(j["status"] == 1 and [d["code"] for d in j["data"]] == [1] * 2000,
          "retried batch: every item a success")
    check(audit_count(db) == a0, "retried batch writes no audit entry")
    print("FIGURE snms batchCreate 2000 items retried (no writes): %.3f s" % dt)
    # with invalid items: per-item results, the valid ones written
    items = [gearbox_item(10000 + i, bad=(i % 100 == 7)) for i in range(2000)]
    items[3] = {"handle": "no-slash"}
    st, j = api.call("POST", "/identityv2/data/batchCreate", items)
    res = j["data"]
    bad = [r for r in res if r["code"] != 1]
    check(len(res) == 2000 and len(bad) == 21, "21 refused of 2000 (%d)" % len(bad))
    check(res[7] == {"handle": "88.100.1/GB-010007", "code": -2,
                     "msg": "Template 88.100.1:gearbox-1.0: index 2001 (MODEL) does not match "
                            "the pattern"}, "a refused item: %s" % res[7])
    check(res[3]["code"] == -2 and "invalid handle" in res[3]["msg"], "bad handle: %s" % res[3])
    check(rest_get(node, "88.100.1/GB-010008")[0] == 200, "valid item written")
    check(rest_get(node, "88.100.1/GB-010007")[0] == 404, "invalid item not written")
    # the bound: 2001 items
    st, j = api.call("DELETE", "/identityv2/data/batchDelete", ["88.100.1/x"] * 2001)
    check(j["status"] == -2 and "2000" in j["message"], "2001 items refused: %s" % j)
    st, j = api.call("POST", "/identityv2/data/batchCreate", {"handle": "x"})
    check(j["status"] == -2, "a batch must be an array: %s" % j)
    # batchUpdate, batchDelete with per-item codes
    st, j = api.call("PUT", "/identityv2/data/batchUpdate",
                     [{"handle": "88.100.1/GB-000001", "templateVersion": "gearbox-1.0",
                       "value": [sv(2005, "RATIO", "12")]},
                      {"handle": "88.100.1/GB-999999", "templateVersion": "gearbox-1.0",
                       "value": [sv(2005, "RATIO", "12")]}])
    check([d["code"] for d in j["data"]] == [1, -2] and j["data"][1]["msg"] == "标识不存在",
          "batchUpdate: %s" % j)
    st, j = api.call("DELETE", "/identityv2/data/batchDelete",
                     ["88.100.1/GB-000002", "88.100.1/GB-999999", 5])
    check([d["code"] for d in j["data"]] == [1, -2, -2], "batchDelete: %s" % j)
    check(rest_get(node, "88.100.1/GB-000002")[0] == 404, "batch-deleted")
    st, j = api.call("POST", "/identityv2/data/batchDelete", ["88.100.1/GB-000003"])
    check(st == 405, "batchDelete needs DELETE")


def test_oversized(api, node):
    """A body over http_max_body (2m here) is refused from its Content-Length, before it is
    read, and one over snms_max_body before it is parsed, both with 413; nothing is written
    and the node goes on."""
    import socket
    with socket.create_connection(("127.0.0.1", node.http), timeout=10) as s:
        s.sendall(b"POST /identityv2/data/batchCreate HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + api.token.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: 3145728\r\n\r\n[")
        s.settimeout(10)
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                d = s.recv(4096)
                if not d:
                    break
                got += d
        except OSError:
            pass
    check(got.startswith(b"HTTP/1.1 413"), "oversized body refused: %r" % got[:60])
    # under http_max_body but over snms_max_body (1.5 MiB here): refused before the parse
    items = [gearbox_item(50000 + i) for i in range(2600)]
    items[0]["handle"] = "88.100.1/BIG"
    raw = json.dumps(items)
    check((3 << 19) < len(raw) < (2 << 20), "the body is between the two bounds (%d)" % len(raw))
    st, j = api.call("POST", "/identityv2/data/batchCreate", raw=raw)
    check(st == 413 and j.get("status") == -2 and "snms_max_body" in j.get("message", ""),
          "over snms_max_body: %s %s" % (st, j))
    check(rest_get(node, "88.100.1/BIG")[0] == 404, "nothing written")
    check(node.alive(), "node alive after the oversized body")


def test_templates(api, other, node):
    st, j = api.call("GET", "/snms/api/v5/template?prefix=88.100.1")
    check(j["status"] == 1 and "pump-1.0" in j["data"]["versions"], "list: %s" % j)
    st, j = api.call("GET", "/snms/api/v5/template?prefix=88.100.1&version=pump-1.0")
    check(j["status"] == 1 and j["data"]["items"][0]["idIndex"] == 2000 and
          j["data"]["default"] is False, "get: %s" % j.get("message"))
    st, j = api.call("GET", "/snms/api/v5/template?prefix=88.100.1&version=none")
    check(j["status"] == -2 and "not found" in j["message"], "get missing: %s" % j)
    tpl = {"prefix": "88.100.1", "version": "t-1.0", "industryCategory": "C", "type": 1,
           "items": [{"name": "名称", "idType": "NAME", "idIndex": "2000", "required": True,
                      "metadata": {"type": "string", "minLength": 1, "maxLength": 10}},
                     {"name": "颜色", "idType": "COLOR",
                      "metadata": {"type": "string", "minLength": 1, "maxLength": 10}}]}
    st, j = api.call("POST", "/snms/api/v5/template", tpl)
    check(j["status"] == 1, "template create: %s" % j)
    st, j = api.call("POST", "/snms/api/v5/template", tpl)
    check(j["status"] == -2 and "already exists" in j["message"], "create twice: %s" % j)
    st, j = other.call("POST", "/snms/api/v5/template", dict(tpl, version="t-2.0"))
    check(j["status"] == -3, "another manufacturer's template: %s" % j)
    bad = dict(tpl, version="t-bad")
    bad["items"] = [{"name": "x", "idType": "X", "metadata": {"pattern": "(a)\\1"}}]
    st, j = api.call("POST", "/snms/api/v5/template", bad)
    check(j["status"] == -2 and "back-references" in j["message"], "bad pattern: %s" % j)
    body = {"handle": "88.100.1/T-1", "templateVersion": "t-1.0",
            "value": [sv(2000, "NAME", "a"), sv(2001, "COLOR", "red")]}
    st, j = api.call("POST", "/identityv2/data", body)
    check(j["status"] == 1, "create under t-1.0: %s" % j)
    # disable COLOR (items are never removed)
    st, j = api.call("PUT", "/snms/api/v5/template",
                     {"prefix": "88.100.1", "version": "t-1.0",
                      "items": [{"name": "颜色", "idType": "COLOR", "idIndex": 2001,
                                 "state": 0, "metadata": {"type": "string"}}]})
    check(j["status"] == 1, "disable an item: %s" % j)
    st, j = api.call("GET", "/snms/api/v5/template?prefix=88.100.1&version=t-1.0")
    items = j["data"]["items"]
    check(len(items) == 2 and items[1]["state"] == 0, "disabled, kept: %s" % items)
    body["handle"] = "88.100.1/T-2"
    st, j = api.call("POST", "/identityv2/data", body)
    check(j["status"] == -2 and
          j["message"] == "Template 88.100.1:t-1.0: index 2001 (COLOR) is disabled",
          "a disabled item refused: %s" % j)
    st, j = api.call("PUT", "/snms/api/v5/template",
                     {"prefix": "88.100.1", "version": "t-1.0",
                      "items": [{"name": "x", "idType": "SIZE", "idIndex": 2001}]})
    check(j["status"] == -2 and "is 'COLOR'" in j["message"], "idIndex/idType clash: %s" % j)
    st, j = api.call("DELETE", "/snms/api/v5/template", {"prefix": "88.100.1", "version": "t-1.0"})
    check(j["status"] == 1, "template delete: %s" % j)
    st, j = api.call("DELETE", "/snms/api/v5/template", {"prefix": "88.100.1", "version": "t-1.0"})
    check(j["status"] == -2, "delete again: %s" % j)


def test_same_message(api, node, db, tmp):
    """Acceptance c: the pump template's refusal, word for word, on every path."""
    h = "88.100.1/SAME-1"
    st, j = api.call("POST", "/identityv2/data",
                     {"handle": h, "templateVersion": "pump-1.0",
                      "value": pump_values(drop=(2005,))})
    check(j["status"] == -2 and j["message"] == BAD_PUMP_MSG, "SNMS: %s" % j)
    # the binary path: idnode create, HS_SECKEY of the prefix handle
    secret = os.path.join(tmp, "secret")
    with open(secret, "w") as f:
        f.write("secret")
    args = [IDNODE, "create", "-s", "127.0.0.1:%d" % node.port, "--auth", "300:0.NA/88.100.1",
            "--seckey-file", secret, "--timeout", "20000", h, "1001:TEMPLATE=pump-1.0",
            "100:HS_ADMIN=300:0.NA/88.100.1"]
    args += ["%d:%s=%s" % (v["index"], v["type"], v["data"]["value"])
             for v in pump_values(drop=(2005,))]
    p = subprocess.run(args, capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "(202): " + BAD_PUMP_MSG in err, "idnode create: %s" % err)
    # the same values pass once FLOW_RATE is there
    p = subprocess.run(args + ["2005:FLOW_RATE=12.5"], capture_output=True, timeout=60)
    check(p.returncode == 0, "idnode create, valid: %s" % p.stderr[-300:])
    # idnode import (into a copy of the store's templates: the node holds this one open, so
    # the import goes to a fresh store loaded with the same seed templates)
    db2 = os.path.join(tmp, "db-import")
    subprocess.run([IDNODE, "import", "--db", db2, "--home", "88.100.1", os.devnull],
                   capture_output=True, timeout=60)
    tpls = sorted(os.path.join(SRC, "seeds", "templates", n)
                  for n in os.listdir(os.path.join(SRC, "seeds", "templates")))
    p = subprocess.run([IDNODE, "template", "load", "--db", db2] + tpls, capture_output=True,
                       timeout=60)
    check(p.returncode == 0, "template load: %s" % p.stderr)
    rec = {"handle": h, "values": [
        {"index": 1001, "type": "TEMPLATE", "data": "pump-1.0"}] +
        [{"index": v["index"], "type": v["type"], "data": v["data"]}
         for v in pump_values(drop=(2005,))]}
    data = os.path.join(tmp, "bad.jsonl")
    with open(data, "w") as f:
        f.write(json.dumps(rec) + "\n")
    p = subprocess.run([IDNODE, "import", "--db", db2, data], capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 4 and ("line 1: " + BAD_PUMP_MSG) in err, "import: %s" % err)
    # the REST PUT, when this node serves it (the Handle.Net REST admin API)
    c = http.client.HTTPConnection("127.0.0.1", node.http, timeout=30)
    try:
        basic = base64.b64encode(b"300%3A0.NA%2F88.100.1:secret").decode()
        c.request("PUT", "/api/handles/" + h, body=json.dumps({"values": rec["values"]}),
                  headers={"Content-Type": "application/json",
                           "Authorization": "Basic " + basic})
        r = c.getresponse()
        body = r.read().decode(errors="replace")
    finally:
        c.close()
    check(r.status >= 400 and BAD_PUMP_MSG in body, "REST PUT: %s %s" % (r.status, body[:300]))


def test_expired(tmp, db_conf_user):
    """A second node, HTTPS only (no plain credentials from loopback), whose tokens live one
    second and that takes one login a second."""
    db2 = os.path.join(tmp, "db-expiry")
    subprocess.run([IDNODE, "import", "--db", db2, "--home", "88.100.1",
                    os.path.join(SRC, "seeds", "demo.jsonl")], capture_output=True, timeout=60)
    tpls = sorted(os.path.join(SRC, "seeds", "templates", n)
                  for n in os.listdir(os.path.join(SRC, "seeds", "templates")))
    subprocess.run([IDNODE, "template", "load", "--db", db2] + tpls, capture_output=True,
                   timeout=60)
    certs = make_certs(os.path.join(tmp, "certs"))
    conf = os.path.join(tmp, "expiry.conf")
    with open(conf, "w") as f:
        f.write(db_conf_user + "\nsnms_token_ttl_s = 1\nsnms_login_rate = 1\n"
                "snms_login_burst = 2\n")
    node = Node(tmp, db2, conf=conf, workers=1,
                extra=["--tls-cert", os.path.join(certs, "server.pem"),
                       "--tls-key", os.path.join(certs, "server.key")])
    try:
        # passwords never over plain HTTP: 403 before the password is looked at
        st, j = Api(node).call("POST", "/identity/token",
                               {"username": "acme", "password": "acme-secret"})
        check(st == 403 and "token" not in json.dumps(j), "plain HTTP login refused: %s %s" %
              (st, j))
        check("over plain HTTP refused" in node.logtext(), "the refusal is logged")
        api = Api(node, tls=client_ctx(os.path.join(certs, "ca.pem")))
        st, j = api.login("acme", "acme-secret")
        check(j["status"] == 1, "login over HTTPS on the expiry node: %s" % j)
        # a write over HTTPS is audited as https
        h = "88.100.1/SNMS-TLS-1"
        st, j = api.call("POST", "/identityv2/data",
                         {"handle": h, "templateVersion": "pump-1.0", "value": pump_values()})
        check(j["status"] == 1, "create over HTTPS: %s" % j)
        p = subprocess.run([IDNODE, "audit", "--db", db2, "--handle", h, "--json"],
                           capture_output=True, timeout=60)
        check(p.returncode == 0 and b'"https"' in p.stdout, "audited as https: %s %s" %
              (p.stdout[-300:], p.stderr[-300:]))
        st, j = api.call("GET", "/identityv2/data/detail?handle=88.100.1/PUMP-2024-000123")
        check(j["status"] == 1, "fresh token works: %s" % j.get("message"))
        deadline = time.time() + 10
        while time.time() < deadline:
            time.sleep(0.5)
            st, j = api.call("GET", "/identityv2/data/detail?handle=88.100.1/PUMP-2024-000123")
            if j["status"] != 1:
                break
        check(j["status"] == -1, "expired token refused: %s" % j)
        # the login bucket (1/s, burst 2): a burst of logins meets 429 before the password
        # is even checked
        codes = [api.call("POST", "/identity/token",
                          {"username": "acme", "password": "wrong"})[0] for _ in range(4)]
        check(429 in codes, "login rate limit answered 429: %s" % codes)
        check("login rate limit" in node.logtext(), "the limit is logged")
    finally:
        node.stop()
    return node


def passwd_line(user, pw, ident):
    p = subprocess.run([IDNODE, "passwd", "--iterations", "1000", "--user", user, "--id", ident],
                       input=(pw + "\n").encode(), capture_output=True, timeout=60)
    check(p.returncode == 0, "idnode passwd: %s" % p.stderr)
    return p.stdout.decode().strip()


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-snms-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        other = os.path.join(tmp, "other.jsonl")
        with open(other, "w") as f:
            for rec in OTHER:
                f.write(json.dumps(rec) + "\n")
        for src, extra in ((os.path.join(SRC, "seeds", "demo.jsonl"), []), (other, [])):
            p = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", "--home",
                                "88.200.1", src] + extra, capture_output=True, timeout=120)
            check(p.returncode == 0, "import %s: %s" % (src, p.stderr[-300:]))
        tpls = sorted(os.path.join(SRC, "seeds", "templates", n)
                      for n in os.listdir(os.path.join(SRC, "seeds", "templates")))
        p = subprocess.run([IDNODE, "template", "load", "--db", db] + tpls, capture_output=True,
                           timeout=60)
        check(p.returncode == 0 and b"created 88.100.1:pump-1.0" in p.stdout,
              "template load: %s %s" % (p.stdout, p.stderr))
        p = subprocess.run([IDNODE, "import", "--db", db,
                            os.path.join(SRC, "seeds", "templated.jsonl")],
                           capture_output=True, timeout=60)
        check(p.returncode == 0, "the seed records follow their templates: %s" % p.stderr)
        acme = passwd_line("acme", "acme-secret", "300:0.NA/88.100.1")
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            f.write(acme + "\n")
            f.write(passwd_line("other", "other-secret", "300:0.NA/88.200.1") + "\n")
            f.write("http_max_body = 2m\nsnms_max_body = 1536k\n")
            # the tests below speak plain HTTP on loopback; test_expired runs HTTPS only
            f.write("http_auth_plain_loopback = yes\n")
        node = Node(tmp, db, extra=["--home", "88.200.1"], conf=conf, workers=2)
        nodes.append(node)
        api, oth = Api(node), Api(node)
        test_login(api)
        st, j = oth.login("other", "other-secret")
        check(j["status"] == 1, "other logs in: %s" % j)
        test_unauthenticated(api, node, db)
        test_single(api, node, db)
        test_other_manufacturer(api, oth, node, db)
        test_batches(api, node, db)
        test_oversized(api, node)
        test_templates(api, oth, node)
        test_same_message(api, node, db, tmp)
        check(node.alive(), "node alive")
        rc = node.stop()
        check(rc == 0, "clean exit (rc %s)" % rc)
        check("snms:" in node.logtext(), "SNMS counters logged at shutdown")
        nodes.append(test_expired(tmp, acme))
    finally:
        ret = finish(nodes, tmp, "test_snms")
    return ret


if __name__ == "__main__":
    sys.exit(main())
