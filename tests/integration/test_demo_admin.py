#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The registration quick start of README.md, run as written against a real idnoded.

The node is set up as scripts/demo.sh sets it up (seeds/demo.jsonl imported with --home
88.100.1), but on free loopback ports and in a temporary directory. The test reads the shell
block that follows the "registration-quick-start" marker in README.md and runs every line with
bash, replacing only `build/` (the build directory under test), `127.0.0.1:2641` (the node's
port) and `var/demo-db` (the temporary database); the last line (`demo.sh stop`) is replaced by
stopping the node by PID. Then it checks what each line printed and its exit status: the
create, the resolution showing the value, the modify and add, the delete, the handle gone, and
`idnode audit` (while the node runs and holds the database) listing the four changes in order,
each a SUCCESS by 300:0.NA/88.100.1 over TCP. Every wait is bounded.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import BUILD, IDNODE, SRC, Node, check, finish, need_binaries  # noqa: E402

MARKER = "<!-- registration-quick-start"
HANDLE = "88.100.1/NEW-1"
IDENT = "300:0.NA/88.100.1"


def quick_start_lines():
    """The command lines of the fenced block after the marker in README.md."""
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        text = f.read()
    at = text.find(MARKER)
    if at < 0:
        return []
    block = re.search(r"```sh\n(.*?)```", text[at:], re.S)
    if not block:
        return []
    return [ln for ln in block.group(1).splitlines() if ln.strip()]


def run_line(line, port, db):
    cmd = line.replace("127.0.0.1:2641", "127.0.0.1:%d" % port).replace("var/demo-db", db)
    cmd = re.sub(r"(^|\s)build/", lambda m: m.group(1) + BUILD + "/", cmd)
    p = subprocess.run(["bash", "-c", cmd], cwd=SRC, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def main():
    if not need_binaries():
        return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-demo-admin-")
    nodes = []
    try:
        lines = quick_start_lines()
        verbs = [ln.split()[1] if ln.startswith("build/idnode") else ln for ln in lines]
        want = ["create", "resolve", "modify", "add", "resolve", "delete", "resolve", "audit",
                "bash scripts/demo.sh stop"]
        check(verbs == want, "README quick start lines: %s" % verbs)
        check(all("2641" in ln for ln in lines if ln.startswith("build/idnode") and " -s " in ln),
              "every network line talks to the demo port")
        check(os.path.exists(os.path.join(SRC, "seeds", "demo-admin.secret")),
              "seeds/demo-admin.secret is shipped")
        if verbs != want:
            return finish(nodes, tmp, "test_demo_admin")

        db = os.path.join(tmp, "demo-db")
        imp = subprocess.run([IDNODE, "import", "--db", db, "--home", "88.100.1",
                              os.path.join(SRC, "seeds", "demo.jsonl")],
                             capture_output=True, timeout=120)
        check(imp.returncode == 0, "import of seeds/demo.jsonl: %s" % imp.stderr[-300:])
        node = Node(tmp, db)
        nodes.append(node)
        out = []
        for ln in lines[:-1]:
            out.append(run_line(ln, node.port, db))
            print("$ %s\n  -> exit %d %s%s" % (ln, out[-1][0], out[-1][1].strip()[:300],
                                             (" / " + out[-1][2].strip()[:300]) if out[-1][2] else ""))

        rc, so, se = out[0]
        check(rc == 0 and so.strip() == HANDLE, "create: exit %d, printed %r" % (rc, so))
        rc, so, se = out[1]
        check(rc == 0 and "https://example.com/p/NEW-1" in so and "HS_ADMIN" in so,
              "resolve after create shows the URL and the HS_ADMIN: %r" % so)
        check(out[2][0] == 0, "modify: exit %d %s" % (out[2][0], out[2][2]))
        check(out[3][0] == 0, "add: exit %d %s" % (out[3][0], out[3][2]))
        rc, so, se = out[4]
        check(rc == 0 and "https://example.com/p/NEW-1/v2" in so and "ops@example.com" in so,
              "resolve after modify and add shows both: %r" % so)
        check(out[5][0] == 0, "delete: exit %d %s" % (out[5][0], out[5][2]))
        check(out[6][0] == 1, "resolve after delete: exit %d (want 1, not found)" % out[6][0])
        rc, so, se = out[7]
        check(rc == 0, "audit while the node runs: exit %d %s" % (rc, se))
        check(so.splitlines()[0].split()[1:2] == ["IMPORT"],
              "audit lists the import of the demo data first: %r" % so[:200])
        rows = [r for r in so.splitlines() if HANDLE in r]
        ops = [r.split()[1] for r in rows]
        check(ops == ["CREATE_HANDLE", "MODIFY_VALUE", "ADD_VALUE", "DELETE_HANDLE"],
              "audit lists the four changes in order: %s" % ops)
        check(all(" 1 SUCCESS " in r and ("by " + IDENT) in r and "via tcp 127.0.0.1:" in r
                  for r in rows), "audit: each a success by %s over TCP: %s" % (IDENT, rows))
        check(node.alive(), "the node still runs after the audit read its database")
        rc = node.stop()
        check(rc == 0, "node stops cleanly (exit %s)" % rc)
        # after the stop the trail is still there, read without the node
        rc, so, se = run_line("build/idnode audit --db var/demo-db --handle %s" % HANDLE,
                              node.port, db)
        check(rc == 0 and so.count(HANDLE) == 4, "audit after the stop: %d lines" %
              so.count(HANDLE))
    finally:
        ret = finish(nodes, tmp, "test_demo_admin")
    return ret


if __name__ == "__main__":
    sys.exit(main())
