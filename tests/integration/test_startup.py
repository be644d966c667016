#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""idnoded start-up on loopback (python3 stdlib only): a second idnoded on the same ports or the
same database is refused with a message naming the first (which keeps serving); a missing
database directory is refused, an empty one gets a new store; homed prefixes follow the
configuration at start and on SIGHUP, `idnode home/unhome` while the node runs, the start line
counts them from the store; warnings for no homed prefix and for an unfinished import; a full
disk at start is named; --version and --help. Every wait is bounded; every process started here
is stopped by PID in a finally block.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from idtest import *  # noqa: E402,F401,F403  (shared helpers: Node, free_port, ...)

SHIM = os.path.join(BUILD, "libdiskfull_shim.so")
PROCS = []


def rc_of_resolve(port, handle):
    """Response code of a TCP resolution of handle at 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(resolve_request(handle, 77))
        return parse_reply(FrameReader(s).frame(5))["rc"]


class Proc:
    """idnoded with exactly the given arguments, its output in a log file."""

    def __init__(self, tmp, name, args, env=None):
        self.log = os.path.join(tmp, name + ".log")
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([IDNODED] + args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=env)
        PROCS.append(self)

    def text(self):
        if not self.logf.closed:
            self.logf.flush()
        with open(self.log) as f:
            return f.read()

    def wait_ready(self, timeout=15):
        """True when the ready line came, False when the process exited first."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "idnoded ready" in self.text():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def wait_exit(self, timeout=15):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_log(self, pattern, timeout=10, count=1):
        """True once \p pattern occurs \p count times in the log."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logf.close()
        return self.proc.returncode


def idnode(*args, timeout=60, **kw):
    return subprocess.run([IDNODE] + list(args), capture_output=True, text=True, timeout=timeout,
                          **kw)


def import_db(tmp, db, records, *extra):
    path = os.path.join(tmp, "in-%d.jsonl" % len(os.listdir(tmp)))
    with open(path, "w") as f:
        for h in records:
            f.write('{"handle":"%s","values":[{"index":1,"type":"URL","data":"https://x/%s"}]}\n'
                    % (h, h))
    r = idnode("import", "--db", db, *extra, path)
    check(r.returncode == 0, "import into %s: %s" % (db, r.stderr))
    return r


# ---- 4. double start --------------------------------------------------------------------------

def test_double_start(tmp):
    db1, db2 = os.path.join(tmp, "db1"), os.path.join(tmp, "db2")
    import_db(tmp, db1, ["88.100.1/one"], "--home", "88.100.1")
    import_db(tmp, db2, ["88.100.1/one"], "--home", "88.100.1")
    first = Node(tmp, db1, workers=2)
    try:
        pid = first.proc.pid
        check(rc_of_resolve(first.port, "88.100.1/one") == 1, "the first node answers")
        # same ports, another database
        for name, args, want in (
                ("same-udp-tcp", ["--db", db2, "--listen", "127.0.0.1:%d" % first.port,
                                  "--http", "127.0.0.1:%d" % free_port()],
                 r"127\.0\.0\.1:%d/udp: bind: address already in use by idnoded \(pid %d\)"
                 % (first.port, pid)),
                ("same-http", ["--db", db2, "--listen", "127.0.0.1:%d" % free_port(),
                               "--http", "127.0.0.1:%d" % first.http],
                 r"127\.0\.0\.1:%d/tcp: bind: address already in use by idnoded \(pid %d\)"
                 % (first.http, pid)),
                ("wildcard", ["--db", db2, "--listen", "0.0.0.0:%d" % first.port,
                              "--http", "127.0.0.1:%d" % free_port()],
                 r"0\.0\.0\.0:%d/udp: bind: address already in use by idnoded \(pid %d\)"
                 % (first.port, pid)),
                # same database, other ports
                ("same-db", ["--db", db1, "--listen", "127.0.0.1:%d" % free_port(),
                             "--http", "127.0.0.1:%d" % free_port()],
                 r"db %s is in use by another idnoded \(pid %d, lock %s/idnoded\.lock\)"
                 % (re.escape(db1), pid, re.escape(db1)))):
            second = Proc(tmp, name, args + ["--workers", "1"])
            rc = second.wait_exit()
            text = second.text()
            second.stop()
            check(rc not in (0, None), "%s: a second idnoded exits non-zero (rc %s)" % (name, rc))
            check(re.search(want, text) is not None,
                  "%s: the message names the first (pid %d): %s" % (name, pid, text[-600:]))
            check("idnoded ready" not in text, "%s: the second never got ready" % name)
            check(first.alive() and rc_of_resolve(first.port, "88.100.1/one") == 1,
                  "%s: the first keeps serving" % name)
            check(first.get("/api/handles/88.100.1/one")[0] == 200,
                  "%s: the first keeps serving HTTP" % name)
            check(parse_reply(first.udp(resolve_request("88.100.1/one", 78))[0])["rc"] == 1,
                  "%s: the first keeps serving UDP" % name)
        with open(os.path.join(db1, "idnoded.lock")) as f:
            check(f.read().strip() == str(pid), "the lock file holds the first node's pid")
    finally:
        check(first.stop() == 0, "the first node stops cleanly")
    # the lock goes with the process: a new node on db1 starts
    again = Proc(tmp, "again", ["--db", db1, "--listen", "127.0.0.1:%d" % free_port(),
                                "--http", "127.0.0.1:%d" % free_port(), "--workers", "1"])
    check(again.wait_ready(), "after the first stopped, a node on its database starts: "
          + again.text()[-300:])
    check(again.stop() == 0, "and stops cleanly")
    # a port held by another program (no idnoded) is refused too
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as a careless server would
    s.bind(("127.0.0.1", 0))
    try:
        p = Proc(tmp, "other-prog", ["--db", db2, "--listen", "127.0.0.1:%d" % s.getsockname()[1],
                                     "--http", "127.0.0.1:%d" % free_port(), "--workers", "1"])
        rc = p.wait_exit()
        text = p.text()
        p.stop()
        check(rc not in (0, None) and re.search(r"already in use by python3 \(pid %d\)"
                                                % os.getpid(), text) is not None,
              "a port another program holds (with SO_REUSEPORT) is refused, naming it: "
              + text[-300:])
    finally:
        s.close()


# ---- 6. the database directory ----------------------------------------------------------------

def test_db_dir(tmp):
    missing = os.path.join(tmp, "no", "such", "db")
    p = Proc(tmp, "missing", ["--db", missing, "--listen", "127.0.0.1:%d" % free_port(),
                              "--http", "127.0.0.1:%d" % free_port(), "--workers", "1"])
    rc = p.wait_exit()
    text = p.text()
    p.stop()
    check(rc == 1, "a missing db directory: exit 1 (rc %s)" % rc)
    check("db %s: no such directory" % missing in text and "idnode import --db %s" % missing in text
          and "mkdir -p %s" % missing in text,
          "the message says how to create a store: " + text[-400:])
    check(not os.path.exists(missing) and not os.path.exists(os.path.dirname(missing)),
          "nothing was created")
    empty = os.path.join(tmp, "empty")
    os.mkdir(empty)
    p = Proc(tmp, "empty", ["--db", empty, "--listen", "127.0.0.1:%d" % free_port(),
                            "--http", "127.0.0.1:%d" % free_port(), "--workers", "1"])
    ok = p.wait_ready()
    text = p.text()
    check(ok, "an existing empty directory is fine: " + text[-300:])
    check("db %s holds no store yet: creating an empty one" % empty in text, "with a notice")
    check(re.search(r"no prefix is homed: every resolution gets RC 301", text) is not None,
          "and a warning that no prefix is homed")
    check("0 homed prefix(es), 0 handles" in text, "start line: 0 homed, 0 handles")
    check(p.stop() == 0, "empty-store node stops cleanly")
    check(os.path.exists(os.path.join(empty, "data.mdb")), "a store was created there")


# ---- 5. homing is explicit --------------------------------------------------------------------

def test_homing(tmp):
    db = os.path.join(tmp, "dbh")
    r = import_db(tmp, db, ["88.100.1/one", "20.500.7/two"])
    check("warning: no prefix homed in %s: the node will answer RC 301" % db in r.stderr,
          "import without --home warns")
    conf = os.path.join(tmp, "home.conf")
    with open(conf, "w") as f:
        f.write("home = 88.100.1\n")
    port, http = free_port(), free_port()
    args = ["-c", conf, "--db", db, "--listen", "127.0.0.1:%d" % port,
            "--http", "127.0.0.1:%d" % http, "--workers", "1"]
    p = Proc(tmp, "homing", args)
    try:
        check(p.wait_ready(), "node starts: " + p.text()[-300:])
        text = p.text()
        check("start: homed 88.100.1 (listed in the configuration)" in text, "start logs the homing")
        check("homed prefixes (1): 88.100.1 (config)" in text, "start lists the homed prefixes")
        check("1 homed prefix(es), 2 handles" in text, "start line counts them from the store")
        check(rc_of_resolve(port, "88.100.1/one") == 1, "a configured prefix is answered")
        check(rc_of_resolve(port, "20.500.7/two") == 301, "another is not (RC 301)")
        out = idnode("prefixes", "--db", db)
        check(re.search(r"^88\.100\.1 +config +20\d\d-", out.stdout, re.M) is not None,
              "idnode prefixes shows source config: " + out.stdout)

        # idnode home / unhome while the node runs
        out = idnode("home", "--db", db, "20.500.7")
        check(out.returncode == 0 and "homed 20.500.7" in out.stdout, "idnode home: " + out.stderr)
        check(rc_of_resolve(port, "20.500.7/two") == 1, "homed by the CLI: answered at once")
        out = idnode("unhome", "--db", db, "20.500.7")
        check(out.returncode == 0, "idnode unhome: " + out.stderr)
        check(rc_of_resolve(port, "20.500.7/two") == 301, "unhomed by the CLI: RC 301 at once")
        out = idnode("unhome", "--db", db, "20.500.7")
        check(out.returncode == 1, "unhome again: exit 1 (not homed)")

        # the configuration drops the prefix: SIGHUP unhomes it
        with open(conf, "w") as f:
            f.write("# nothing homed here any more\n")
        p.proc.send_signal(signal.SIGHUP)
        check(p.wait_log(r"reload: unhomed 88\.100\.1: no longer listed in the configuration"),
              "reload logs the unhoming: " + p.text()[-400:])
        # (the reload line comes after the commit: from then on the workers see it)
        check(p.wait_log(r"configuration reloaded .*homed prefixes: 0"), "reload counts 0")
        check(rc_of_resolve(port, "88.100.1/one") == 301, "after the reload: RC 301")
        # ... and homes it again when listed again
        with open(conf, "w") as f:
            f.write("home = 88.100.1\nhome = 20.500.7\n")
        p.proc.send_signal(signal.SIGHUP)
        check(p.wait_log(r"reload: homed 20\.500\.7 \(listed in the configuration\)"),
              "reload homes what the configuration lists")
        check(p.wait_log(r"configuration reloaded ", count=2), "second reload done")
        check(rc_of_resolve(port, "88.100.1/one") == 1 and rc_of_resolve(port, "20.500.7/two") == 1,
              "both answered after the reload")
        # a prefix also homed by the CLI stays when the configuration drops it
        idnode("home", "--db", db, "20.500.7")
        with open(conf, "w") as f:
            f.write("home = 88.100.1\n")
        p.proc.send_signal(signal.SIGHUP)
        check(p.wait_log(r"reload: 20\.500\.7 is no longer listed in the configuration; it stays "
                         r"homed \(by: cli"), "a prefix the CLI also homed stays")
        check(p.wait_log(r"configuration reloaded ", count=3), "third reload done")
        check(rc_of_resolve(port, "20.500.7/two") == 1, "and is still answered")
    finally:
        check(p.stop() == 0, "homing node stops cleanly")

    # restart without any configuration: the config's prefix goes, the CLI's stays
    p = Proc(tmp, "homing2", args[2:])
    try:
        check(p.wait_ready(), "restart without -c")
        text = p.text()
        check("start: unhomed 88.100.1: no longer listed in the configuration" in text,
              "a prefix the configuration no longer lists is unhomed at start")
        check("1 homed prefix(es)" in text and "homed prefixes (1): 20.500.7 (cli)" in text,
              "start line counts the store's prefixes (not --home flags): " + text[-500:])
        check(rc_of_resolve(port, "88.100.1/one") == 301, "88.100.1 is no longer answered")
    finally:
        check(p.stop() == 0, "restarted node stops cleanly")
    idnode("unhome", "--db", db, "20.500.7")
    # nothing homed at all: a warning at start
    p = Proc(tmp, "homing3", args[2:])
    try:
        check(p.wait_ready(), "start with nothing homed")
        check("no prefix is homed: every resolution gets RC 301" in p.text(),
              "start warns when no prefix is homed")
        check("0 homed prefix(es)" in p.text(), "start line: 0 homed")
    finally:
        check(p.stop() == 0, "node without prefixes stops cleanly")


def test_partial_import_at_start(tmp):
    db = os.path.join(tmp, "dbp")
    fifo = os.path.join(tmp, "feed")
    os.mkfifo(fifo)
    gen = subprocess.run([IDNODE, "gen", "--count", "150"], capture_output=True, timeout=60)
    imp = subprocess.Popen([IDNODE, "import", "--db", db, "--batch", "50", "--home", "88.100.1",
                            fifo], stderr=subprocess.DEVNULL)
    try:
        with open(fifo, "wb") as w:
            w.write(b"\n".join(gen.stdout.split(b"\n")[:120]) + b"\n")
            w.flush()
            deadline = time.time() + 20
            seen = False
            while time.time() < deadline and not seen:
                out = idnode("prefixes", "--db", db) if os.path.exists(db) else None
                seen = out is not None and "stopped after 100 records" in out.stderr
                time.sleep(0.1)
            check(seen, "the importer committed two batches")
            imp.kill()  # kill -9 half-way, the FIFO still open
            imp.wait(10)
    finally:
        if imp.poll() is None:
            imp.kill()
            imp.wait(10)
    p = Proc(tmp, "partial", ["--db", db, "--listen", "127.0.0.1:%d" % free_port(),
                              "--http", "127.0.0.1:%d" % free_port(), "--workers", "1"])
    try:
        check(p.wait_ready(), "a node starts on a partly imported store")
        text = p.text()
        check(re.search(r"\[warn\].*db %s holds an unfinished import: %s, started 20\d\d-\d\d-\d\d "
                        r"[\d:]+ UTC by pid %d, stopped after 100 records"
                        % (re.escape(db), re.escape(fifo), imp.pid), text) is not None,
              "the node warns, naming the file, the time and the importer: " + text[-600:])
        check("no prefix is homed" in text, "and that nothing is homed")
    finally:
        check(p.stop() == 0, "partial-store node stops cleanly")


def test_disk_full_at_start(tmp):
    if not os.path.exists(SHIM):
        print("skip: %s not built" % SHIM)
        return
    db = os.path.join(tmp, "dbf")
    import_db(tmp, db, ["88.100.1/one"], "--home", "88.100.1")
    env = dict(os.environ, IDNODE_DISKFULL_BYTES="0", LD_PRELOAD=SHIM)
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    p = Proc(tmp, "full", ["--db", db, "--listen", "127.0.0.1:%d" % free_port(),
                           "--http", "127.0.0.1:%d" % free_port(), "--workers", "1"], env=env)
    rc = p.wait_exit()
    text = p.text()
    p.stop()
    check(rc == 1, "a full disk at start: exit 1 (rc %s)" % rc)
    check("disk full" in text and "input/output error" not in text.lower(),
          "the node says 'disk full': " + text[-400:])


def test_version_help():
    for prog in (IDNODED, IDNODE, os.path.join(BUILD, "idnode-bench")):
        r = subprocess.run([prog, "--version"], capture_output=True, text=True, timeout=10)
        name = os.path.basename(prog)
        check(r.returncode == 0 and re.fullmatch(r"%s \d+\.\d+\.\d+\n" % name, r.stdout) is not None,
              "%s --version: %r" % (name, r.stdout))
    r = subprocess.run([IDNODED, "--help"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and "(default /var/lib/idnode/db)" in r.stdout
          and "(default 127.0.0.1:2641)" in r.stdout and "(default 64m;" in r.stdout,
          "idnoded --help shows the defaults: " + r.stdout)


def main():
    for p in (IDNODED, IDNODE):
        if not os.access(p, os.X_OK):
            print("skip: %s not built" % p)
            return 77
    tmp = tempfile.mkdtemp(prefix="idnode-test-startup-")
    try:
        test_version_help()
        test_double_start(tmp)
        test_db_dir(tmp)
        test_homing(tmp)
        test_partial_import_at_start(tmp)
        test_disk_full_at_start(tmp)
    finally:
        for pr in PROCS:
            if pr.proc.poll() is None:
                pr.proc.kill()
                pr.proc.wait(5)
            if FAILS:
                print("---- %s (tail) ----\n%s" % (pr.log, pr.text()[-1500:]))
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("test_startup: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
