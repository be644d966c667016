#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reload of the SNMS API users (`snms_user` lines) of a real idnoded (python3 stdlib only).

Users a and b log in; a reload that removes b and leaves a as it was: a's token still works, b's
is refused (status -1, not logged in) and a new login of b is refused; a user c added by a reload
logs in and its token works; a reload that changes a's password revokes a's token, the old
password no longer logs in and the new one does; a reload with a user named twice is refused as
a whole (the tokens in use stay valid). The API is spoken in plain HTTP on loopback
(http_auth_plain_loopback). Every process is stopped by PID in a finally block; every wait is
bounded.
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403

IDENT = "300:0.NA/88.100.1"


def passwd_line(user, pw):
    """The `snms_user = ...` line `idnode passwd` prints for \\p user."""
    p = subprocess.run([IDNODE, "passwd", "--iterations", "1000", "--user", user, "--id", IDENT],
                       input=(pw + "\n").encode(), capture_output=True, timeout=60)
    check(p.returncode == 0, "idnode passwd: %s" % p.stderr)
    return p.stdout.decode().strip()


def call(node, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", node.http, timeout=30)
    try:
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, path, body=None if body is None else json.dumps(body), headers=h)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def login(node, user, pw):
    """(SNMS status, token or None)"""
    st, j = call(node, "POST", "/identity/token", {"username": user, "password": pw})
    tok = j["data"]["token"] if j.get("status") == 1 else None
    return j.get("status"), tok


def detail(node, token):
    """SNMS status of a read with \\p token (1: logged in, -1: not)."""
    st, j = call(node, "GET", "/identityv2/data/detail?handle=88.100.1/test", token=token)
    return j.get("status")


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-reload-snms-")
    nodes = []
    try:
        db = os.path.join(tmp, "db")
        import_records(tmp, db, [TEST_URL_RECORD])
        ctl = os.path.join(tmp, "ctl.sock")
        conf = os.path.join(tmp, "node.conf")
        line_a, line_b = passwd_line("a", "a-secret"), passwd_line("b", "b-secret")
        line_c, line_a2 = passwd_line("c", "c-secret"), passwd_line("a", "a-new-secret")
        base = "control_socket = %s\nhttp_auth_plain_loopback = yes\n" % ctl

        def write(*users):
            with open(conf, "w") as f:
                f.write(base + "".join(u + "\n" for u in users))

        def reload(*users):
            write(*users)
            r = subprocess.run([IDNODE, "reload", "--socket", ctl, "--timeout", "20000"],
                               capture_output=True, timeout=60)
            return r.returncode, r.stdout.decode(), r.stderr.decode()

        write(line_a, line_b)
        node = Node(tmp, db, conf=conf, workers=2)
        nodes.append(node)

        st, ta = login(node, "a", "a-secret")
        check(st == 1 and ta, "a logs in (%s)" % st)
        st, tb = login(node, "b", "b-secret")
        check(st == 1 and tb, "b logs in (%s)" % st)
        check(detail(node, ta) == 1 and detail(node, tb) == 1, "both tokens work")

        # b removed, a unchanged
        rc, out, err = reload(line_a)
        check(rc == 0 and "restart_needed" not in out,
              "reload removing b applied, nothing needs a restart: %d %r %r" % (rc, out, err))
        check("snms: 1 user(s), 1 unchanged; 1 token(s) of removed or changed users revoked"
              in node.logtext(), "the reload logs the revoked token")
        check(detail(node, ta) == 1, "a's token still works")
        check(detail(node, tb) == -1, "b's token is refused: not logged in")
        st, _ = login(node, "b", "b-secret")
        check(st == -2, "a new login of b is refused (%s)" % st)

        # c added
        rc, out, err = reload(line_a, line_c)
        check(rc == 0, "reload adding c: %d %r" % (rc, err))
        st, tc = login(node, "c", "c-secret")
        check(st == 1 and tc and detail(node, tc) == 1, "c logs in and its token works (%s)" % st)
        check(detail(node, ta) == 1, "a's token survives a second reload")

        # a user named twice: refused as a whole, the tokens in use stay
        rc, out, err = reload(line_a, line_c, line_c)
        check(rc == 1 and "c is given twice" in err, "a user named twice is refused: %d %r"
              % (rc, err))
        check(detail(node, ta) == 1 and detail(node, tc) == 1, "after the refusal both tokens work")

        # a's password changed: its token is revoked, the new password logs in
        rc, out, err = reload(line_a2, line_c)
        check(rc == 0, "reload changing a's password: %d %r" % (rc, err))
        check(detail(node, ta) == -1, "a's old token is refused after the password change")
        check(detail(node, tc) == 1, "c's token stays")
        st, _ = login(node, "a", "a-secret")
        check(st == -2, "the old password no longer logs in (%s)" % st)
        st, ta2 = login(node, "a", "a-new-secret")
        check(st == 1 and ta2 and detail(node, ta2) == 1, "the new password does (%s)" % st)

        check(node.alive(), "node alive")
        check(node.stop() == 0, "clean exit")
    finally:
        code = finish(nodes, tmp, "test_reload_snms")
    return code


if __name__ == "__main__":
    sys.exit(main())
