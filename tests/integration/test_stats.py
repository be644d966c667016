#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Usage statistics end to end (python3 stdlib): a real idnoded on loopback takes a scripted run
of registrations (idnode-bench --op create / modify / delete, authenticated) and of resolutions
(16000 distinct existing identifiers over UDP, TCP, the HTTP native tunnel and the REST API, one
hot identifier, missing ones, a prefix not homed here); `idnode stats` then reports the
registrations exactly, the resolutions exactly by transport and response code, the unique
identifiers within 2 % and the hot identifier first, as text, CSV and the JSON export. A restart
goes on counting without counting anything twice. Every wait is bounded; every process started
here is stopped by PID in a finally block.
"""
import csv
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

BENCH = os.path.join(BUILD, "idnode-bench")
DISTINCT = 16000


def stats(db, *args):
    p = subprocess.run([IDNODE, "stats", "--db", db] + list(args), capture_output=True,
                       timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def bench(node, secret, *args):
    p = subprocess.run([BENCH, "-s", "127.0.0.1:%d" % node.port, "--proto", "tcp", "--json",
                        "--timeout", "10000", "--auth", "300:0.NA/88.100.1", "--seckey-file",
                        secret, "--conns", "2", "--depth", "8", "-d", "60"] + list(args),
                       capture_output=True, timeout=120)
    try:
        return json.loads(p.stdout)
    except ValueError:
        check(False, "idnode-bench %s: exit %d %s" % (args, p.returncode, p.stderr[-500:]))
        return {"rcodes": {}}


def udp_many(node, handles, rid0):
    """Resolve each handle once over UDP, 64 in flight; returns (sent, answers by RC)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    rcs = {}
    sent = 0
    try:
        for off in range(0, len(handles), 64):
            want = {}
            for i, h in enumerate(handles[off:off + 64]):
                rid = rid0 + off + i
                s.sendto(resolve_request(h, rid, types=["URL"]), ("127.0.0.1", node.port))
                want[rid] = h
                sent += 1
            s.settimeout(5)
            deadline = time.time() + 10
            while want and time.time() < deadline:
                try:
                    a = s.recv(65536)
                except socket.timeout:
                    break
                rid = struct.unpack(">I", a[8:12])[0]
                if rid in want:
                    del want[rid]
                    rc = struct.unpack(">I", a[24:28])[0]
                    rcs[rc] = rcs.get(rc, 0) + 1
            check(not want, "udp answers missing: %d" % len(want))
    finally:
        s.close()
    return sent, rcs


def tcp_many(node, handles):
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as s:
        fr = FrameReader(s)
        ok = 0
        for off in range(0, len(handles), 100):
            chunk = handles[off:off + 100]
            s.sendall(b"".join(resolve_request(h, 50000 + off + i, flags=0x1B000000)
                               for i, h in enumerate(chunk)))
            for _ in chunk:
                ok += parse_reply(fr.frame(10))["rc"] == 1
        return ok


def http_many(node, handles, native):
    c = node.http_conn()
    ok = 0
    try:
        for i, h in enumerate(handles):
            if native:
                c.request("POST", "/", body=resolve_request(h, 60000 + i, types=["URL"]),
                          headers={"Content-Type": "application/x-hdl-message"})
                r = c.getresponse()
                ok += r.status == 200 and parse_reply(r.read())["rc"] == 1
            else:
                c.request("GET", "/api/handles/" + urllib.parse.quote(h, safe=""))
                r = c.getresponse()
                ok += r.status == 200 and json.loads(r.read())["responseCode"] == 1
    finally:
        c.close()
    return ok


def record(db, prefix):
    rc, out, err = stats(db, "--prefix", prefix, "--merge", "--json", "--top", "5")
    check(rc == 0, "idnode stats --prefix %s: exit %d %s" % (prefix, rc, err))
    try:
        j = json.loads(out)
    except ValueError:
        check(False, "stats JSON: %r" % out[:300])
        return {}
    check(j.get("format") == "idnode-stats" and j.get("version") == 1, "export format header")
    check(len(j.get("records", [])) == 1, "one merged record for %s" % prefix)
    return j["records"][0] if j.get("records") else {}


def main():
    if binaries_missing() or not os.access(BENCH, os.X_OK):
        print("skip: binaries not built")
        return 0
    tmp = tempfile.mkdtemp(prefix="idnode-stats-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        os.mkdir(db)
        gen = os.path.join(tmp, "gen.jsonl")
        with open(gen, "w") as f:
            subprocess.run([IDNODE, "gen", "--prefix", "88.100.1", "--count", str(DISTINCT),
                            "--seed", "7"], stdout=f, check=True, timeout=120)
        keys = subprocess.run([IDNODE, "gen", "--prefix", "88.100.1", "--count", str(DISTINCT),
                               "--keys-only"], capture_output=True, check=True,
                              timeout=120).stdout.decode().split()
        check(len(set(keys)) == DISTINCT, "distinct generated keys")
        for src in (os.path.join(SRC, "seeds", "demo.jsonl"), gen):
            imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1", src],
                                 capture_output=True, timeout=300)
            check(imp.returncode == 0, "import: %s" % imp.stderr.decode(errors="replace"))
        secret = os.path.join(tmp, "secret")
        with open(secret, "w") as f:
            f.write("secret\n")
        conf = os.path.join(tmp, "node.conf")
        with open(conf, "w") as f:
            # the bench's login is a 2.11 request without KC: keep its connection open
            f.write("stats_flush_interval_s = 1\ntcp_close_after_answer = no\n"
                    "server_admin = 300:0.NA/88.100.1\n")
        node = Node(tmp, db, conf=conf)
        nodes.append(node)

        # ---- registrations ----
        r = bench(node, secret, "--op", "create", "--pattern", "88.100.1/w%s", "--range", "1-200")
        check(r["rcodes"] == {"SUCCESS": 200}, "200 creates: %s" % r["rcodes"])
        r = bench(node, secret, "--op", "create", "--pattern", "88.100.1/w%s", "--range", "1-10")
        check(r["rcodes"] == {"HANDLE_ALREADY_EXISTS": 10}, "10 refused creates: %s" % r["rcodes"])
        r = bench(node, secret, "--op", "modify", "--pattern", "88.100.1/w%s", "--range",
                  "1-200", "-n", "60")
        modified = r["rcodes"].get("SUCCESS", 0)
        check(modified == 60, "60 modifies: %s" % r["rcodes"])
        r = bench(node, secret, "--op", "delete", "--pattern", "88.100.1/w%s", "--range", "1-50")
        check(r["rcodes"] == {"SUCCESS": 50}, "50 deletes: %s" % r["rcodes"])

        # ---- resolutions ----
        hot = keys[5]
        sent_udp, rcs = udp_many(node, keys[:12000], 1)
        check(rcs == {1: 12000}, "udp answers: %s" % rcs)
        s2, rcs = udp_many(node, [hot] * 300, 20000)
        sent_udp += s2
        s3, rcs = udp_many(node, ["88.100.1/NOPE-%d" % i for i in range(200)], 30000)
        check(rcs == {100: 200}, "not found answers: %s" % rcs)
        sent_udp += s3
        s4, rcs = udp_many(node, ["77.7/x%d" % i for i in range(50)], 40000)
        check(rcs == {301: 50}, "not homed answers: %s" % rcs)
        check(tcp_many(node, keys[12000:14000]) == 2000, "tcp answers")
        check(http_many(node, keys[14000:15000], native=False) == 1000, "rest answers")
        check(http_many(node, keys[15000:16000], native=True) == 1000, "native tunnel answers")

        # flushed while running (every second)
        deadline = time.time() + 20
        seen = 0
        while time.time() < deadline:
            rc, out, _ = stats(db, "--prefix", "88.100.1", "--csv")
            rows = list(csv.DictReader(io.StringIO(out))) if rc == 0 else []
            seen = sum(int(x["resolutions"]) for x in rows)
            if seen >= 15000:
                break
            time.sleep(0.5)
        check(seen >= 15000, "statistics flushed while running: %d resolutions" % seen)

        check(node.stop() == 0, "clean stop")
        rec = record(db, "88.100.1")
        reg = rec.get("registrations", {})
        check(reg == {"created": 200, "modified": modified, "deleted": 50},
              "registrations exactly: %s" % reg)
        res = rec.get("resolutions", {})
        want_udp = 12000 + 300 + 200
        check(res.get("by_transport") == {"udp": want_udp, "tcp": 2000, "http": 1000,
                                          "rest": 1000}, "by transport: %s" % res.get("by_transport"))
        check(res.get("total") == want_udp + 4000, "total %s" % res.get("total"))
        by_rc = dict((e["name"], e["count"]) for e in res.get("by_rcode", []))
        check(by_rc == {"SUCCESS": 12300 + 4000, "HANDLE_NOT_FOUND": 200}, "by rcode %s" % by_rc)
        uniq = rec.get("unique_identifiers", 0)
        err = abs(uniq - DISTINCT) / DISTINCT
        print("unique identifiers: %d reported for %d resolved (%.2f %% off)" % (uniq, DISTINCT,
                                                                                100 * err))
        check(err <= 0.02, "unique within 2 %%: %d for %d" % (uniq, DISTINCT))
        top = rec.get("top", [])
        check(top and top[0]["handle"] == hot and top[0]["count"] >= 301,
              "hot identifier first: %s" % top[:2])
        other = record(db, "-")
        check(other.get("resolutions", {}).get("detail") == [
            {"transport": "udp", "rcode": 301, "count": 50}], "not homed under '-': %s" % other)

        # text and CSV forms, filters, exit codes
        rc, out, _ = stats(db, "--prefix", "88.100.1", "--merge")
        check(rc == 0 and "created 200, modified %d, deleted 50" % modified in out,
              "text form: %s" % out[:300])
        rc, out, _ = stats(db, "--csv", "--day", "today")
        rows = list(csv.DictReader(io.StringIO(out)))
        check(rc == 0 and {x["prefix"] for x in rows} <= {"88.100.1", "-"} and rows,
              "CSV rows: %s" % out[:300])
        check(stats(db, "--prefix", "99.99")[0] == 1, "no records: exit 1")
        check(stats(db, "--day", "2026-02-30")[0] == 2, "bad day: exit 2")
        check(stats(db, "--day", "today", "--from", "2020-01-01")[0] == 2, "day and range: 2")
        check(stats(os.path.join(tmp, "nodb"))[0] == 3, "no store: exit 3")

        # a restart goes on from where the last run stopped: nothing counted twice
        node = Node(tmp, db, conf=conf)
        nodes.append(node)
        r = bench(node, secret, "--op", "create", "--pattern", "88.100.1/w%s", "--range",
                  "201-220")
        check(r["rcodes"] == {"SUCCESS": 20}, "20 more creates: %s" % r["rcodes"])
        check(tcp_many(node, keys[:100]) == 100, "tcp answers after the restart")
        check(node.stop() == 0, "clean stop after the restart")
        rec = record(db, "88.100.1")
        check(rec.get("registrations", {}).get("created") == 220, "created across restarts: %s"
              % rec.get("registrations"))
        check(rec.get("resolutions", {}).get("by_transport", {}).get("tcp") == 2100,
              "tcp resolutions across restarts")
        uniq2 = rec.get("unique_identifiers", 0)
        check(uniq2 == uniq, "known identifiers add nothing to the unique count: %d" % uniq2)
    finally:
        return finish(nodes, tmp, "test_stats")


if __name__ == "__main__":
    sys.exit(main())
